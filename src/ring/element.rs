//! The [`Ring`] trait: wrapping arithmetic in Z_2^k for k = 32 and 64.

use std::fmt::Debug;
use std::hash::Hash;

use super::error::{Result, RingError};
use super::{AnyTensor, RingTensor};

/// Which ring a value lives in; used where a type parameter cannot go
/// (serialized preprocessing material, plans, wire headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RingId {
    /// Z_2^32, elements stored as `u32`.
    Z32,
    /// Z_2^64, elements stored as `u64`.
    Z64,
}

impl RingId {
    /// Bit width k of the ring Z_2^k.
    pub fn bits(self) -> u32 {
        match self {
            RingId::Z32 => 32,
            RingId::Z64 => 64,
        }
    }
}

/// An element of the ring Z_2^k, k = [`Ring::BITS`].
///
/// All arithmetic wraps modulo 2^k. The signed view of an element is its
/// two's-complement value in [-2^(k-1), 2^(k-1)). Implemented for `u32` and
/// `u64` only; the trait is the single abstraction over both rings (DESIGN.md,
/// "Numbers").
pub trait Ring:
    Copy
    + Clone
    + Debug
    + Default
    + PartialEq
    + Eq
    + Hash
    + Send
    + Sync
    + bytemuck::Pod
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::BitXor<Output = Self>
    + std::ops::Not<Output = Self>
    + 'static
{
    /// k: the ring is Z_2^k.
    const BITS: u32;
    /// Bytes per element on the wire and on disk (k / 8).
    const BYTES: usize;
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// Runtime tag of this ring.
    const ID: RingId;
    /// Default number of fractional bits for fixed-point values in this ring.
    ///
    /// Z_2^64: 20, because deep CNN training collapses below about 20-22
    /// fractional bits (Piranha, USENIX Security 2022) while products of two
    /// values still leave 64 - 2*20 - 2 = 22 integer bits. Z_2^32: 8, which
    /// leaves 32 - 2*8 - 2 = 14 integer bits for a product before truncation.
    const DEFAULT_FRAC_BITS: u32;

    /// (a + b) mod 2^k.
    fn wrapping_add(self, rhs: Self) -> Self;
    /// (a - b) mod 2^k.
    fn wrapping_sub(self, rhs: Self) -> Self;
    /// (a * b) mod 2^k.
    fn wrapping_mul(self, rhs: Self) -> Self;
    /// (-a) mod 2^k.
    fn wrapping_neg(self) -> Self;
    /// Logical left shift (a << s) mod 2^k; `s` must be < k.
    fn shl(self, s: u32) -> Self;
    /// Logical right shift of the unsigned value; `s` must be < k.
    fn shr(self, s: u32) -> Self;
    /// Arithmetic right shift of the signed (two's complement) value; `s` < k.
    fn ashr(self, s: u32) -> Self;
    /// The signed value in [-2^(k-1), 2^(k-1)), widened to i64.
    fn to_signed(self) -> i64;
    /// v mod 2^k (wrapping).
    fn from_i64(v: i64) -> Self;
    /// The unsigned value widened to u64.
    fn to_u64(self) -> u64;
    /// v mod 2^k (the low k bits of v).
    fn from_u64(v: u64) -> Self;
    /// Wraps a typed tensor into the ring-tagged [`AnyTensor`].
    fn into_any(t: RingTensor<Self>) -> AnyTensor;
    /// Unwraps an [`AnyTensor`]; [`RingError::Format`] if it is over another ring.
    fn from_any(t: AnyTensor) -> Result<RingTensor<Self>>;
    /// The most significant bit (bit k-1), i.e. the sign of the signed view.
    fn msb(self) -> bool {
        (self.to_u64() >> (Self::BITS - 1)) & 1 == 1
    }
}

macro_rules! impl_ring {
    ($t:ty, $s:ty, $id:expr, $variant:ident, $frac:expr) => {
        impl Ring for $t {
            const BITS: u32 = <$t>::BITS;
            const BYTES: usize = std::mem::size_of::<$t>();
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const ID: RingId = $id;
            const DEFAULT_FRAC_BITS: u32 = $frac;

            #[inline(always)]
            fn wrapping_add(self, rhs: Self) -> Self {
                <$t>::wrapping_add(self, rhs)
            }
            #[inline(always)]
            fn wrapping_sub(self, rhs: Self) -> Self {
                <$t>::wrapping_sub(self, rhs)
            }
            #[inline(always)]
            fn wrapping_mul(self, rhs: Self) -> Self {
                <$t>::wrapping_mul(self, rhs)
            }
            #[inline(always)]
            fn wrapping_neg(self) -> Self {
                <$t>::wrapping_neg(self)
            }
            #[inline(always)]
            fn shl(self, s: u32) -> Self {
                self << s
            }
            #[inline(always)]
            fn shr(self, s: u32) -> Self {
                self >> s
            }
            #[inline(always)]
            fn ashr(self, s: u32) -> Self {
                ((self as $s) >> s) as $t
            }
            #[inline(always)]
            fn to_signed(self) -> i64 {
                (self as $s) as i64
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_u64(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            fn into_any(t: RingTensor<Self>) -> AnyTensor {
                AnyTensor::$variant(t)
            }
            fn from_any(t: AnyTensor) -> Result<RingTensor<Self>> {
                match t {
                    AnyTensor::$variant(t) => Ok(t),
                    other => Err(RingError::Format {
                        what: "ring-tagged tensor".into(),
                        detail: format!("expected Z_2^{}, got {:?}", <$t>::BITS, other.ring()),
                    }),
                }
            }
        }
    };
}

impl_ring!(u32, i32, RingId::Z32, Z32, 8);
impl_ring!(u64, i64, RingId::Z64, Z64, 20);
