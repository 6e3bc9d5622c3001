//! Inverse square root and square root for positive x, by range reduction
//! ([`super::normalize`]) and degree-7 Chebyshev polynomials on [1/2, 1]:
//! 1/sqrt(x) = 2^-((e+1)/2) / sqrt(x') and sqrt(x) = 2^((e+1)/2) sqrt(x'),
//! the half powers of two being public coefficients of the one-hot
//! exponent.

use super::cheb;
use super::normalize::{reduced, Reduced};
use crate::error::Result;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// [1/sqrt(x)] for positive fixed-point x.
///
/// Algorithm: range reduction as in [`super::reciprocal`], a degree-7
/// Chebyshev polynomial for x'^(-1/2) on [1/2, 1] (relative error 3.4e-7),
/// times the secret 2^(-(e+1)/2). CrypTen's 3 Newton iterations from
/// 2.2 exp(-(x/2 + 0.2)) + 0.2 - x/1024 are off by 61% at the 0.004
/// variances of real LayerNorms; this is not (the whole domain is covered
/// uniformly).
///
/// Domain: as [`super::reciprocal`]: x in [0.001, 4095] in Z_2^64, [0.0632,
/// 255] in Z_2^32; below it the result is about 0. Max error against f64
/// (tests `tests/nonlinear_reciprocal.rs`): Z_2^64: relative 3.3e-6 where
/// the result is >= 0.25, absolute 9.6e-7 elsewhere; Z_2^32: relative
/// 1.4e-2, absolute 4e-3. Rounds and bytes: as [`super::reciprocal`] (8
/// with the exponent by comparisons, 17 by bit decomposition; 193.25 and
/// 102.5 bytes per element in Z_2^64 and Z_2^32 with comparisons).
///
/// Errors: as [`super::reciprocal`].
pub async fn rsqrt<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let g = Reduced {
        coeffs: cheb::interpolate(|v| 1.0 / v.sqrt(), 0.5, 1.0, 7),
        post: Some(Box::new(|e| (-(e + 1) as f64 / 2.0).exp2())),
        add: None,
    };
    reduced(sess, x, &g).await
}

/// [sqrt(x)] for non-negative fixed-point x.
///
/// Algorithm: as [`rsqrt`] with sqrt(x') on [1/2, 1] (relative error 3e-8)
/// times 2^((e+1)/2). sqrt(0) = 0 (every exponent bit is 0, so the factor
/// is 0).
///
/// Domain: x = 0 or x in [0.001, 4095] in Z_2^64 ([0.0632, 255] in
/// Z_2^32). Max error against f64 (tests): Z_2^64: relative 3.3e-6 where
/// the result is >= 0.25, absolute 9.6e-7 elsewhere; sqrt(0) within 2
/// units of 0. Rounds and bytes: as [`rsqrt`].
///
/// Errors: as [`super::reciprocal`].
pub async fn sqrt<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let g = Reduced {
        coeffs: cheb::interpolate(f64::sqrt, 0.5, 1.0, 7),
        post: Some(Box::new(|e| ((e + 1) as f64 / 2.0).exp2())),
        add: None,
    };
    reduced(sess, x, &g).await
}
