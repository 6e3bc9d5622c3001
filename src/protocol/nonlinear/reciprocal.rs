//! Reciprocal 1/x for positive x, by range reduction ([`super::normalize`])
//! and a degree-7 Chebyshev polynomial on [1/2, 1].

use super::cheb;
use super::normalize::{reduced, Reduced};
use crate::error::Result;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// [1/x] for positive fixed-point x.
///
/// Algorithm: the highest set bit of x gives x = x' 2^(e+1) with x' in
/// [1/2, 1) (one A2B on a locally made 32-bit copy, a suffix OR, one B2A:
/// [`super::normalize`], as in SPU's reciprocal); 1/x' by a degree-7
/// Chebyshev polynomial (relative error 1.5e-6), multiplied by the secret
/// 2^-(e+1) in the truncation group that ends it (no round of its own;
/// [`super::cheb::eval`]). CrypTen
/// instead runs 10 Newton iterations from 3 exp(1 - 2x) + 0.003 (about 56
/// rounds in Spindle's cost model) and diverges above x = 666.
///
/// Domain: x in [0.001, 4095] in Z_2^64 (f = 20: octaves 2^-10 to 2^12,
/// less 1% at the bottom and 6 units at the top for the error of the local
/// 32-bit copy); x in [0.0632, 255] in Z_2^32 (f = 8). Outside, the result
/// is about 0 (x = 0 gives 0, not infinity). Max error against f64 (tests
/// `tests/nonlinear_reciprocal.rs`, log-uniform inputs): Z_2^64: relative
/// 4.6e-6 where 1/x >= 0.25, absolute 1.2e-6 elsewhere; Z_2^32: relative
/// 1.4e-2, absolute 3.9e-3 (one unit of 2^-8). Rounds: 8 where the
/// session's link favours rounds (the exponent by one batch of MSBs in
/// Z_2^32 2, the tables and x c in one injection 1, polynomial 3, the
/// factor's group 1, truncation 1), else 17 (A2B in Z_2^32 6 and suffix
/// OR 5 instead of the MSBs; 16 in Z_2^32). Bytes sent per party per
/// element to each peer, for any N (4096 elements, comparisons): 193.25
/// in Z_2^64 (the binary range reduction 129.25, arithmetic 8 ring
/// elements: x c 1, polynomial 4, factor 2, truncation 1), 102.5 in
/// Z_2^32.
///
/// Errors: [`crate::Error::InvalidFixedPoint`] when f leaves no room for
/// the range reduction (f > 28 in Z_2^64); preprocessing and transport
/// errors.
pub async fn reciprocal<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let g = Reduced {
        coeffs: cheb::interpolate(|v| 1.0 / v, 0.5, 1.0, 7),
        post: Some(Box::new(|e| (-(e + 1) as f64).exp2())),
        add: None,
    };
    reduced(sess, x, &g).await
}
