//! Fixed-point encoding of reals into Z_2^k.
//!
//! A real x is encoded as round(x * 2^f) mod 2^k and decoded as the signed
//! value divided by 2^f (DESIGN.md, "Numbers"). The same convention as
//! CrypTen's `FixedPointEncoder` and MP-SPDZ's `sfix`.

use super::error::{Result, RingError};
use super::{Ring, RingTensor, Shape};

/// Fixed-point parameters: `frac_bits` fractional bits in the ring `R`.
///
/// Valid when 2 * frac_bits + 2 <= k, so that the product of two encoded
/// values of magnitude below 1 still fits the signed range with the two
/// bits of headroom that truncation needs ([`crate::protocol::trunc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    frac_bits: u32,
    ring_bits: u32,
}

impl FixedPoint {
    /// Parameters for the ring `R` with `frac_bits` fractional bits.
    ///
    /// Errors: [`RingError::InvalidFixedPoint`] if 2 * frac_bits + 2 > k.
    pub fn new<R: Ring>(frac_bits: u32) -> Result<Self> {
        if 2 * frac_bits + 2 > R::BITS {
            return Err(RingError::InvalidFixedPoint(format!(
                "{frac_bits} fractional bits do not fit Z_2^{}: need 2*f + 2 <= {}",
                R::BITS,
                R::BITS
            )));
        }
        Ok(Self {
            frac_bits,
            ring_bits: R::BITS,
        })
    }

    /// The ring's default ([`Ring::DEFAULT_FRAC_BITS`]).
    pub fn default_for<R: Ring>() -> Self {
        Self {
            frac_bits: R::DEFAULT_FRAC_BITS,
            ring_bits: R::BITS,
        }
    }

    /// Number of fractional bits f.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// The scale 2^f.
    pub fn scale(&self) -> f64 {
        (self.frac_bits as f64).exp2()
    }

    /// Largest magnitude that encodes without wrapping: 2^(k-1-f).
    pub fn max_abs(&self) -> f64 {
        ((self.ring_bits - 1 - self.frac_bits) as f64).exp2()
    }

    fn check_ring<R: Ring>(&self) -> Result<()> {
        if R::BITS != self.ring_bits {
            return Err(RingError::InvalidFixedPoint(format!(
                "parameters made for Z_2^{} used in Z_2^{}",
                self.ring_bits,
                R::BITS
            )));
        }
        Ok(())
    }

    /// Encodes one real: round(x * 2^f) mod 2^k (ties away from zero).
    ///
    /// Errors: [`RingError::Encode`] for NaN, infinities and |x| >= 2^(k-1-f);
    /// [`RingError::InvalidFixedPoint`] if these parameters belong to another ring.
    pub fn encode<R: Ring>(&self, x: f64) -> Result<R> {
        self.check_ring::<R>()?;
        let err = |reason| RingError::Encode {
            value: x,
            frac_bits: self.frac_bits,
            bits: R::BITS,
            reason,
        };
        if !x.is_finite() {
            return Err(err("not a finite number"));
        }
        let v = (x * self.scale()).round();
        let limit = ((R::BITS - 1) as f64).exp2();
        if v >= limit || v < -limit {
            return Err(err("magnitude exceeds the signed range 2^(k-1-f)"));
        }
        Ok(R::from_i64(v as i64))
    }

    /// Decodes one element: signed value / 2^f.
    pub fn decode<R: Ring>(&self, v: R) -> f64 {
        v.to_signed() as f64 / self.scale()
    }

    /// Encodes a slice of f64 into a tensor of the given shape.
    ///
    /// Errors: as [`FixedPoint::encode`], plus [`RingError::ShapeMismatch`].
    pub fn encode_tensor<R: Ring>(
        &self,
        shape: impl Into<Shape>,
        xs: &[f64],
    ) -> Result<RingTensor<R>> {
        let data = xs
            .iter()
            .map(|&x| self.encode::<R>(x))
            .collect::<Result<Vec<R>>>()?;
        RingTensor::new(shape, data)
    }

    /// Encodes a slice of f32 into a tensor of the given shape.
    ///
    /// Errors: as [`FixedPoint::encode_tensor`].
    pub fn encode_tensor_f32<R: Ring>(
        &self,
        shape: impl Into<Shape>,
        xs: &[f32],
    ) -> Result<RingTensor<R>> {
        let data = xs
            .iter()
            .map(|&x| self.encode::<R>(x as f64))
            .collect::<Result<Vec<R>>>()?;
        RingTensor::new(shape, data)
    }

    /// Decodes every element of a tensor to f64, row-major.
    pub fn decode_tensor<R: Ring>(&self, t: &RingTensor<R>) -> Vec<f64> {
        t.data().iter().map(|&v| self.decode(v)).collect()
    }
}
