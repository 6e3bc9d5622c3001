//! [`RingTensor`]: a shape plus contiguous row-major storage of ring
//! elements, on the host, on a device ([`DeviceBuffer`]), or both.

use std::sync::{Arc, OnceLock};

use super::error::{Result, RingError};
use super::{DeviceBuffer, Ring, RingId};

/// A tensor shape: dimensions, outermost first (row-major).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// Number of elements (product of the dimensions; 1 for a scalar `[]`).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}
impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A dense tensor over the ring `R`: shape plus row-major storage on the
/// host, on a device, or mirrored on both.
///
/// This is the unit every backend op, share and preprocessing item is made
/// of. A tensor made on the host has a host copy; one a GPU backend made has
/// a device copy only ([`RingTensor::from_device`]) until something reads it
/// on the host: [`RingTensor::data`] then copies it down once and keeps both
/// (the device copy serves later GPU ops). Mutating the host copy drops the
/// device copy. Invariants: at least one copy exists, and each holds
/// `shape.numel()` elements.
#[derive(Clone, Debug)]
pub struct RingTensor<R: Ring> {
    shape: Shape,
    host: OnceLock<Vec<R>>,
    device: OnceLock<Arc<dyn DeviceBuffer>>,
}

impl<R: Ring> PartialEq for RingTensor<R> {
    /// Same shape and elements, wherever they live (reads device copies).
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data() == other.data()
    }
}

impl<R: Ring> Eq for RingTensor<R> {}

impl<R: Ring> RingTensor<R> {
    fn host(shape: Shape, data: Vec<R>) -> Self {
        RingTensor {
            shape,
            host: OnceLock::from(data),
            device: OnceLock::new(),
        }
    }

    /// A tensor from its shape and row-major data.
    ///
    /// Errors: [`RingError::ShapeMismatch`] when `data.len()` is not the product
    /// of the dimensions.
    pub fn new(shape: impl Into<Shape>, data: Vec<R>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(RingError::shape(
                "RingTensor::new",
                format!(
                    "shape {shape} holds {} elements, got {}",
                    shape.numel(),
                    data.len()
                ),
            ));
        }
        Ok(Self::host(shape, data))
    }

    /// A tensor whose only copy is `buf` on a device (a GPU backend's
    /// result); the host copy is made on the first host read.
    ///
    /// Errors: [`RingError::ShapeMismatch`] when `buf` does not hold
    /// `shape.numel()` elements of k/8 bytes.
    pub fn from_device(shape: impl Into<Shape>, buf: Arc<dyn DeviceBuffer>) -> Result<Self> {
        let shape = shape.into();
        check_device_len::<R>(&shape, buf.as_ref())?;
        Ok(RingTensor {
            shape,
            host: OnceLock::new(),
            device: OnceLock::from(buf),
        })
    }

    /// All-zero tensor of the given shape.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let data = vec![R::ZERO; shape.numel()];
        Self::host(shape, data)
    }

    /// A tensor filled with one value.
    pub fn full(shape: impl Into<Shape>, v: R) -> Self {
        let shape = shape.into();
        let data = vec![v; shape.numel()];
        Self::host(shape, data)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The dimensions (shorthand for `shape().dims()`).
    pub fn dims(&self) -> &[usize] {
        &self.shape.0
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// Row-major elements, copied down from the device on the first read
    /// of a device-only tensor (then kept).
    ///
    /// # Panics
    ///
    /// When that copy fails (a lost or faulted device): the signature has
    /// no room for the error. Code that can report errors (the transport
    /// boundary, `Session::open`) uses [`RingTensor::try_data`] or
    /// [`RingTensor::try_into_data`], which return it instead.
    pub fn data(&self) -> &[R] {
        match self.try_data() {
            Ok(d) => d,
            Err(e) => panic!("reading a device tensor on the host failed: {e}"),
        }
    }

    /// [`RingTensor::data`], with a failed device copy as an error.
    ///
    /// Errors: the device's copy error ([`RingError::Gpu`] for CUDA).
    pub fn try_data(&self) -> Result<&[R]> {
        if let Some(h) = self.host.get() {
            return Ok(h);
        }
        let v = self.download()?;
        // Another thread may have copied it first: either copy is the same.
        let _ = self.host.set(v);
        Ok(self.host.get().map(Vec::as_slice).unwrap_or_default())
    }

    /// Mutable row-major elements on the host; drops the device copy, which
    /// would no longer match. Panics as [`RingTensor::data`].
    pub fn data_mut(&mut self) -> &mut [R] {
        self.data();
        self.device.take();
        self.host
            .get_mut()
            .map(Vec::as_mut_slice)
            .unwrap_or_default()
    }

    /// The host storage, consuming the tensor. Panics as [`RingTensor::data`].
    pub fn into_data(self) -> Vec<R> {
        match self.try_into_data() {
            Ok(d) => d,
            Err(e) => panic!("reading a device tensor on the host failed: {e}"),
        }
    }

    /// [`RingTensor::into_data`], with a failed device copy as an error.
    ///
    /// Errors: the device's copy error ([`RingError::Gpu`] for CUDA).
    pub fn try_into_data(mut self) -> Result<Vec<R>> {
        match self.host.take() {
            Some(h) => Ok(h),
            None => self.download(),
        }
    }

    /// The device copy, if the tensor has one.
    pub fn device_copy(&self) -> Option<&Arc<dyn DeviceBuffer>> {
        self.device.get()
    }

    /// Whether the host copy exists (false for a device result not yet read
    /// on the host).
    pub fn is_on_host(&self) -> bool {
        self.host.get().is_some()
    }

    /// Records `buf` as this tensor's device copy (a backend that uploaded
    /// the host copy keeps it for later ops). No-op when one is already set.
    ///
    /// Errors: [`RingError::ShapeMismatch`] when `buf` has the wrong length.
    /// The caller guarantees that `buf` holds the same elements.
    pub fn attach_device_copy(&self, buf: Arc<dyn DeviceBuffer>) -> Result<()> {
        check_device_len::<R>(&self.shape, buf.as_ref())?;
        let _ = self.device.set(buf);
        Ok(())
    }

    fn download(&self) -> Result<Vec<R>> {
        let buf = self.device.get().ok_or_else(|| {
            RingError::Unsupported(
                "a ring tensor with neither a host nor a device copy (internal)".into(),
            )
        })?;
        let mut data = vec![R::ZERO; self.numel()];
        buf.read_to_host(bytemuck::cast_slice_mut(&mut data))?;
        if cfg!(target_endian = "big") {
            data.iter_mut().for_each(|v| *v = from_le::<R>(*v));
        }
        Ok(data)
    }

    /// The same elements under another shape with the same element count
    /// (both copies kept).
    ///
    /// Errors: [`RingError::ShapeMismatch`] when the element counts differ.
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(RingError::shape(
                "RingTensor::reshape",
                format!("{} elements into shape {shape}", self.numel()),
            ));
        }
        Ok(RingTensor {
            shape,
            host: self.host,
            device: self.device,
        })
    }

    /// Little-endian bytes of the elements (k/8 bytes each), as sent on the wire.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.numel() * R::BYTES);
        append_le_bytes(self.data(), &mut out);
        out
    }

    /// Decodes `shape.numel()` little-endian elements from `bytes`.
    ///
    /// Errors: [`RingError::Format`] when the byte count is wrong.
    pub fn from_le_bytes(shape: impl Into<Shape>, bytes: &[u8]) -> Result<Self> {
        let shape = shape.into();
        let n = shape.numel();
        if bytes.len() != n * R::BYTES {
            return Err(RingError::Format {
                what: "ring tensor bytes".into(),
                detail: format!(
                    "shape {shape} in Z_2^{} needs {} bytes, got {}",
                    R::BITS,
                    n * R::BYTES,
                    bytes.len()
                ),
            });
        }
        let mut data = vec![R::ZERO; n];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
        dst.copy_from_slice(bytes);
        if cfg!(target_endian = "big") {
            data.iter_mut().for_each(|v| *v = from_le::<R>(*v));
        }
        Ok(Self::host(shape, data))
    }

    /// Checks that `other` has the same shape, for elementwise ops.
    pub fn check_same_shape(&self, other: &Self, op: &'static str) -> Result<()> {
        if self.shape != other.shape {
            return Err(RingError::shape(
                op,
                format!("operands have shapes {} and {}", self.shape, other.shape),
            ));
        }
        Ok(())
    }
}

/// An element read as little-endian bytes into native order (a byte swap
/// on big-endian hosts).
fn from_le<R: Ring>(v: R) -> R {
    R::from_u64(if R::BITS == 64 {
        v.to_u64().swap_bytes()
    } else {
        (v.to_u64() as u32).swap_bytes() as u64
    })
}

fn check_device_len<R: Ring>(shape: &Shape, buf: &dyn DeviceBuffer) -> Result<()> {
    if buf.len_bytes() != shape.numel() * R::BYTES {
        return Err(RingError::shape(
            "device tensor",
            format!(
                "{} bytes on {} for shape {shape} in Z_2^{} ({} bytes)",
                buf.len_bytes(),
                buf.location(),
                R::BITS,
                shape.numel() * R::BYTES
            ),
        ));
    }
    Ok(())
}

/// Appends the little-endian bytes of `data` to `out`.
pub(crate) fn append_le_bytes<R: Ring>(data: &[R], out: &mut Vec<u8>) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(data));
    } else {
        for v in data {
            let w = v.to_u64().to_le_bytes();
            out.extend_from_slice(&w[..R::BYTES]);
        }
    }
}

/// A ring tensor of either ring, for places that cannot be generic:
/// serialized preprocessing material and plans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyTensor {
    /// A tensor over Z_2^32.
    Z32(RingTensor<u32>),
    /// A tensor over Z_2^64.
    Z64(RingTensor<u64>),
}

impl AnyTensor {
    /// Which ring it lives in.
    pub fn ring(&self) -> RingId {
        match self {
            AnyTensor::Z32(_) => RingId::Z32,
            AnyTensor::Z64(_) => RingId::Z64,
        }
    }
    /// Its shape.
    pub fn shape(&self) -> &Shape {
        match self {
            AnyTensor::Z32(t) => t.shape(),
            AnyTensor::Z64(t) => t.shape(),
        }
    }
}
