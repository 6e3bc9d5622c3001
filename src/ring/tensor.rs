//! [`RingTensor`]: a shape plus contiguous row-major storage of ring elements.

use super::{Ring, RingId};
use crate::error::{Error, Result};

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

/// A dense tensor over the ring `R`: shape plus row-major host storage.
///
/// This is the unit every backend op, share and preprocessing item is made
/// of. Invariant: `data.len() == shape.numel()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingTensor<R: Ring> {
    shape: Shape,
    data: Vec<R>,
}

impl<R: Ring> RingTensor<R> {
    /// A tensor from its shape and row-major data.
    ///
    /// Errors: [`Error::ShapeMismatch`] when `data.len()` is not the product
    /// of the dimensions.
    pub fn new(shape: impl Into<Shape>, data: Vec<R>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(Error::shape(
                "RingTensor::new",
                format!(
                    "shape {shape} holds {} elements, got {}",
                    shape.numel(),
                    data.len()
                ),
            ));
        }
        Ok(Self { shape, data })
    }

    /// All-zero tensor of the given shape.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let data = vec![R::ZERO; shape.numel()];
        Self { shape, data }
    }

    /// A tensor filled with one value.
    pub fn full(shape: impl Into<Shape>, v: R) -> Self {
        let shape = shape.into();
        let data = vec![v; shape.numel()];
        Self { shape, data }
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
        self.data.len()
    }
    /// Row-major elements.
    pub fn data(&self) -> &[R] {
        &self.data
    }
    /// Mutable row-major elements.
    pub fn data_mut(&mut self) -> &mut [R] {
        &mut self.data
    }
    /// The storage, consuming the tensor.
    pub fn into_data(self) -> Vec<R> {
        self.data
    }

    /// The same elements under another shape with the same element count.
    ///
    /// Errors: [`Error::ShapeMismatch`] when the element counts differ.
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Self> {
        RingTensor::new(shape, self.data)
    }

    /// Little-endian bytes of the elements (k/8 bytes each), as sent on the wire.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() * R::BYTES);
        append_le_bytes(&self.data, &mut out);
        out
    }

    /// Decodes `shape.numel()` little-endian elements from `bytes`.
    ///
    /// Errors: [`Error::Format`] when the byte count is wrong.
    pub fn from_le_bytes(shape: impl Into<Shape>, bytes: &[u8]) -> Result<Self> {
        let shape = shape.into();
        let n = shape.numel();
        if bytes.len() != n * R::BYTES {
            return Err(Error::Format {
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
            for v in data.iter_mut() {
                *v = R::from_u64(if R::BITS == 64 {
                    v.to_u64().swap_bytes()
                } else {
                    (v.to_u64() as u32).swap_bytes() as u64
                });
            }
        }
        Ok(Self { shape, data })
    }

    /// Checks that `other` has the same shape, for elementwise ops.
    pub fn check_same_shape(&self, other: &Self, op: &'static str) -> Result<()> {
        if self.shape != other.shape {
            return Err(Error::shape(
                op,
                format!("operands have shapes {} and {}", self.shape, other.shape),
            ));
        }
        Ok(())
    }
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
