//! [`DeviceBuffer`]: a ring tensor's copy in an accelerator's memory.
//!
//! A [`super::RingTensor`] lives where it was last written. A GPU backend
//! returns its results as device copies only ([`super::RingTensor::from_device`])
//! and reads its operands' device copies when they have one, so a chain of
//! backend ops keeps shares on the device (DESIGN.md, "GPU"). The host copy is
//! made on the first host read (protocol logic on the CPU, or the transport
//! boundary) and kept next to the device copy, which stays valid until the
//! host copy is mutated. The trait keeps `ring` free of any device API: the
//! backend that made a buffer downcasts it through [`DeviceBuffer::as_any`].

use super::error::Result;

/// The bytes of one ring tensor (row-major, k/8 little-endian bytes per
/// element) in a device's memory.
///
/// Implementations are immutable once handed to a tensor: a backend writes
/// a buffer before wrapping it and never after, so tensors may share one
/// through an `Arc` (cloning a tensor clones no device memory).
pub trait DeviceBuffer: Send + Sync + std::fmt::Debug + 'static {
    /// Where the buffer lives, for logs and errors ("cuda:0").
    fn location(&self) -> String;
    /// Its length in bytes (element count times k/8).
    fn len_bytes(&self) -> usize;
    /// Copies the whole buffer into `dst` (exactly [`Self::len_bytes`] long),
    /// after the device work that writes it has finished.
    ///
    /// Errors: the device's copy error ([`crate::Error::Gpu`] for CUDA), or
    /// [`crate::Error::ShapeMismatch`] when `dst` has the wrong length.
    fn read_to_host(&self, dst: &mut [u8]) -> Result<()>;
    /// The concrete type, for the backend that made the buffer.
    fn as_any(&self) -> &dyn std::any::Any;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::ring::RingError;
    use crate::ring::RingTensor;

    /// A device double: bytes in host memory, a count of copies to the
    /// host, and an optional failure (a lost device).
    #[derive(Debug)]
    struct FakeDevice {
        bytes: Vec<u8>,
        reads: AtomicUsize,
        lost: bool,
    }

    impl FakeDevice {
        fn of(v: &[u64], lost: bool) -> Arc<FakeDevice> {
            Self::of_bytes(v.iter().flat_map(|x| x.to_le_bytes()).collect(), lost)
        }
        fn of_bytes(bytes: Vec<u8>, lost: bool) -> Arc<FakeDevice> {
            Arc::new(FakeDevice {
                bytes,
                reads: AtomicUsize::new(0),
                lost,
            })
        }
    }

    impl DeviceBuffer for FakeDevice {
        fn location(&self) -> String {
            "fake:0".into()
        }
        fn len_bytes(&self) -> usize {
            self.bytes.len()
        }
        fn read_to_host(&self, dst: &mut [u8]) -> Result<()> {
            if self.lost {
                return Err(RingError::Gpu {
                    op: "copy to host".into(),
                    detail: "device lost".into(),
                });
            }
            self.reads.fetch_add(1, Ordering::SeqCst);
            dst.copy_from_slice(&self.bytes);
            Ok(())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn a_device_tensor_is_copied_to_the_host_once_and_keeps_its_device_copy() {
        let dev = FakeDevice::of(&[1, 2, u64::MAX, 4, 5, 6], false);
        let t = RingTensor::<u64>::from_device([2, 3], dev.clone()).unwrap();
        assert!(!t.is_on_host());
        assert_eq!(t.numel(), 6);
        assert_eq!(dev.reads.load(Ordering::SeqCst), 0, "no copy before a read");
        assert_eq!(t.data(), &[1, 2, u64::MAX, 4, 5, 6]);
        assert_eq!(t.data()[2], u64::MAX);
        assert_eq!(
            dev.reads.load(Ordering::SeqCst),
            1,
            "one copy for two reads"
        );
        assert!(t.is_on_host() && t.device_copy().is_some(), "mirrored");
        // A clone shares the device copy and copies the host one.
        let c = t.clone();
        assert!(Arc::ptr_eq(
            c.device_copy().unwrap(),
            t.device_copy().unwrap()
        ));
        assert_eq!(c, t);
        // Reshape keeps both copies.
        let r = c.reshape([3, 2]).unwrap();
        assert!(r.is_on_host() && r.device_copy().is_some());
        assert_eq!(dev.reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn mutating_the_host_copy_drops_the_device_copy() {
        let dev = FakeDevice::of(&[7, 8], false);
        let mut t = RingTensor::<u64>::from_device([2], dev).unwrap();
        t.data_mut()[0] = 9;
        assert!(t.device_copy().is_none(), "stale device copy dropped");
        assert_eq!(t.data(), &[9, 8]);
        assert_eq!(t.into_data(), vec![9, 8]);
    }

    #[test]
    fn equality_and_into_data_read_device_tensors() {
        let bytes: Vec<u8> = [1u32, 2, u32::MAX]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = RingTensor::<u32>::from_device([3], FakeDevice::of_bytes(bytes.clone(), false))
            .unwrap();
        let b = RingTensor::<u32>::new([3], vec![1, 2, u32::MAX]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, RingTensor::<u32>::new([3], vec![1, 2, 3]).unwrap());
        let a = RingTensor::<u32>::from_device([3], FakeDevice::of_bytes(bytes, false)).unwrap();
        assert_eq!(a.try_into_data().unwrap(), vec![1, 2, u32::MAX]);
    }

    #[test]
    fn a_failed_copy_is_an_error_where_one_can_be_returned() {
        let t = RingTensor::<u64>::from_device([2], FakeDevice::of(&[1, 2], true)).unwrap();
        let e = t.try_data().unwrap_err();
        assert!(e.to_string().contains("device lost"), "{e}");
        assert!(!t.is_on_host(), "nothing kept from a failed copy");
        let e = t.try_into_data().unwrap_err();
        assert!(e.to_string().contains("device lost"), "{e}");
    }

    #[test]
    fn a_buffer_of_the_wrong_length_is_refused() {
        let e = RingTensor::<u64>::from_device([3], FakeDevice::of(&[1, 2], false)).unwrap_err();
        assert!(e.to_string().contains("fake:0"), "{e}");
        let t = RingTensor::<u64>::zeros([3]);
        assert!(t
            .attach_device_copy(FakeDevice::of(&[1, 2], false))
            .is_err());
        t.attach_device_copy(FakeDevice::of(&[0, 0, 0], false))
            .unwrap();
        assert!(t.device_copy().is_some() && t.is_on_host());
    }
}
