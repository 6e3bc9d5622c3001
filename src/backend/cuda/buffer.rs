//! GPU-resident ring tensors: [`CudaBuffer`], a tensor's bytes in device
//! memory (the CUDA [`DeviceBuffer`]), and [`Transfers`], the one path by
//! which bytes cross between host and device: page-locked staging buffers
//! on a dedicated copy stream.
//!
//! UNVERIFIED: no GPU has run this code yet (see `kernels/README.md`).
//!
//! Copies go through two pinned buffers of [`STAGE`] bytes used in turn, so
//! the DMA of one chunk overlaps the host memcpy of the previous one
//! (pageable memory would make the driver stage every copy itself, with no
//! overlap). A device-to-host copy waits only for the kernels that write
//! its buffer: cudarc records a write event on every buffer a launch
//! writes, and the copy stream waits on it.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaSlice, CudaStream, PinnedHostSlice};

use crate::error::{Error, Result};
use crate::ring::{DeviceBuffer, RingError};

/// Bytes per pinned staging buffer (two per device).
pub(super) const STAGE: usize = 16 << 20;

/// A ring tensor's bytes on one CUDA device, written once by the backend
/// before it is wrapped (so tensors may share it).
pub(super) struct CudaBuffer {
    pub(super) slice: CudaSlice<u8>,
    /// Meaningful bytes (the allocation is at least one byte long).
    len: usize,
    link: Arc<Transfers>,
}

impl CudaBuffer {
    pub(super) fn new(slice: CudaSlice<u8>, len: usize, link: Arc<Transfers>) -> Self {
        CudaBuffer { slice, len, link }
    }

    /// Whether this buffer lives on the device `link` copies to.
    pub(super) fn is_on(&self, link: &Arc<Transfers>) -> bool {
        Arc::ptr_eq(&self.link, link)
    }
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaBuffer({} bytes on cuda:{})",
            self.len, self.link.ordinal
        )
    }
}

impl DeviceBuffer for CudaBuffer {
    fn location(&self) -> String {
        format!("cuda:{}", self.link.ordinal)
    }
    fn len_bytes(&self) -> usize {
        self.len
    }
    fn read_to_host(&self, dst: &mut [u8]) -> std::result::Result<(), RingError> {
        if dst.len() != self.len {
            return Err(RingError::shape(
                "device to host copy",
                format!("{} bytes into a buffer of {}", self.len, dst.len()),
            ));
        }
        self.link.to_host(&self.slice, dst).map_err(|e| match e {
            Error::Gpu { op, detail } => RingError::Gpu { op, detail },
            other => RingError::Gpu {
                op: "device to host copy".into(),
                detail: other.to_string(),
            },
        })
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Host<->device copies of one device: a copy stream and two pinned
/// staging buffers (allocated on first use).
pub(super) struct Transfers {
    ordinal: usize,
    stream: Arc<CudaStream>,
    staging: Mutex<Vec<PinnedHostSlice<u8>>>,
}

fn gpu(op: &str) -> impl FnOnce(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::Gpu {
        op: op.to_string(),
        detail: e.to_string(),
    }
}

impl Transfers {
    pub(super) fn new(ordinal: usize, stream: Arc<CudaStream>) -> Self {
        Transfers {
            ordinal,
            stream,
            staging: Mutex::new(Vec::new()),
        }
    }

    /// Waits for every copy enqueued on the copy stream.
    ///
    /// Errors: [`Error::Gpu`] when the device reports a failure.
    pub(super) fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(gpu("copy stream synchronize"))
    }

    /// The two staging buffers, allocated on first use (page-locked,
    /// cached: the device writes and the host reads them).
    fn staging(&self) -> Result<std::sync::MutexGuard<'_, Vec<PinnedHostSlice<u8>>>> {
        let mut st = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        while st.len() < 2 {
            let ctx = self.stream.context();
            // SAFETY: the contents are unset until a copy writes them, and
            // nothing reads a staging buffer before its copy.
            let b = unsafe { ctx.alloc_pinned_with_flags::<u8>(STAGE, 0) }
                .map_err(gpu("pinned host alloc"))?;
            st.push(b);
        }
        Ok(st)
    }

    /// Copies `src` (its first `dst.len()` bytes) into `dst`, chunk by
    /// chunk through the staging buffers; returns when `dst` is filled.
    ///
    /// Errors: [`Error::Gpu`] when a copy fails.
    pub(super) fn to_host(&self, src: &CudaSlice<u8>, dst: &mut [u8]) -> Result<()> {
        let mut st = self.staging()?;
        let (first, second) = st.split_at_mut(1);
        let bufs = [&mut first[0], &mut second[0]];
        let chunks: Vec<(usize, usize)> = (0..dst.len())
            .step_by(STAGE)
            .map(|s| (s, (s + STAGE).min(dst.len())))
            .collect();
        for (i, &(s, e)) in chunks.iter().enumerate() {
            self.stream
                .memcpy_dtoh(&src.slice(s..e), bufs[i % 2])
                .map_err(gpu("copy to host"))?;
            if i > 0 {
                let (ps, pe) = chunks[i - 1];
                finish(bufs[(i - 1) % 2], &mut dst[ps..pe])?;
            }
        }
        if let Some(&(s, e)) = chunks.last() {
            finish(bufs[(chunks.len() - 1) % 2], &mut dst[s..e])?;
        }
        Ok(())
    }

    /// A new device buffer holding `src` (at least one byte allocated),
    /// copied through the staging buffers; the tail shorter than a stage
    /// goes straight from pageable memory.
    ///
    /// Errors: [`Error::Gpu`] when the allocation or a copy fails.
    pub(super) fn to_device(&self, src: &[u8]) -> Result<CudaSlice<u8>> {
        let mut out = self
            .stream
            .alloc_zeros::<u8>(src.len().max(1))
            .map_err(gpu("device alloc"))?;
        let mut st = self.staging()?;
        let full = src.len() / STAGE;
        for i in 0..full {
            let (s, e) = (i * STAGE, (i + 1) * STAGE);
            let b = &mut st[i % 2];
            // Waits for this buffer's previous copy before overwriting it.
            b.as_mut_slice()
                .map_err(gpu("pinned host buffer"))?
                .copy_from_slice(&src[s..e]);
            self.stream
                .memcpy_htod(&*b, &mut out.slice_mut(s..e))
                .map_err(gpu("copy to device"))?;
        }
        if full * STAGE < src.len() {
            let s = full * STAGE;
            self.stream
                .memcpy_htod(&src[s..], &mut out.slice_mut(s..src.len()))
                .map_err(gpu("copy to device"))?;
        }
        Ok(out)
    }
}

/// Waits for the copy into `buf` and moves its first `dst.len()` bytes out.
fn finish(buf: &PinnedHostSlice<u8>, dst: &mut [u8]) -> Result<()> {
    let host = buf.as_slice().map_err(gpu("copy to host"))?;
    dst.copy_from_slice(&host[..dst.len()]);
    Ok(())
}
