//! Rings Z_2^k (k = 32, 64), fixed-point encoding and ring tensors.
//!
//! Every share, mask and opened value in Spindle lives in one of two rings:
//! `u64` (Z_2^64, the default) and `u32` (Z_2^32, for quantized layers).
//! Code is generic over the [`Ring`] trait, never over a runtime type tag.
//! [`BitPlanes`] packs ring values bit-sliced, 64 elements per word (the
//! layout of binary shares).

mod bits;
mod device;
mod element;
mod error;
mod fixed;
mod opened;
mod tensor;
mod trunc;

pub use bits::{transpose64, words_for, BitPlanes};
pub use device::DeviceBuffer;
pub use element::{Ring, RingId};
pub use error::RingError;
pub use fixed::FixedPoint;
pub use opened::Opened;
pub(crate) use opened::{with_elems, Elems, OpenedSlice, SumOf2};
pub(crate) use tensor::append_le_bytes;
pub use tensor::{AnyTensor, RingTensor, Shape};
pub(crate) use trunc::{signed, TruncStep};
