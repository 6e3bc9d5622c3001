//! Natural logarithm for positive x: ln x = ln x' + (e + 1) ln 2 after range
//! reduction ([`super::normalize`]); ln x' by a degree-7 Chebyshev
//! polynomial on [1/2, 1]; the exponent term is a local linear map of the
//! one-hot exponent.

use super::cheb;
use super::normalize::{reduced, Reduced};
use crate::error::Result;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// [ln x] for positive fixed-point x.
///
/// Algorithm: range reduction (as [`super::reciprocal`]), ln x' on [1/2, 1]
/// by a degree-7 Chebyshev polynomial (absolute error 2.6e-7), plus
/// (e + 1) ln 2 from the one-hot exponent (no round). CrypTen runs 3
/// Householder iterations, each an exponential, from a start valid near 1.
///
/// Domain: x in [0.001, 4095] in Z_2^64, [0.0632, 255] in Z_2^32. Max
/// error against f64 (tests `tests/nonlinear_reciprocal.rs`): Z_2^64:
/// relative 6e-6 where |ln x| >= 0.25, absolute 1.6e-6 elsewhere;
/// Z_2^32: relative 1.9e-2, absolute 5.2e-3. Rounds: 7 with the exponent
/// by comparisons (16 by bit decomposition, 15 in Z_2^32; see
/// [`super::reciprocal`]). Bytes per party per element to each peer
/// (4096 elements, comparisons): 177.25 in Z_2^64, 94.5 in Z_2^32.
///
/// Errors: as [`super::reciprocal`].
pub async fn log<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let g = Reduced {
        coeffs: cheb::interpolate(f64::ln, 0.5, 1.0, 7),
        post: None,
        add: Some(|e| (e + 1) as f64 * std::f64::consts::LN_2),
    };
    reduced(sess, x, &g).await
}
