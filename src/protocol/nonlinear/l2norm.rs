//! Rows divided by their Euclidean norm (sentence-transformers' final
//! `Normalize` layer): y / ||y|| with the product folded into the inverse
//! square root's rounds.

use super::cheb;
use super::fx::Fx;
use super::normalize::{reduced_fx_times, Reduced, Times};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::protocol::{beaver, trunc};
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// Extra fractional bits of the sum of squares (the inverse square root
/// then truncates x c in a round that also forms y 2^-(e+1)/2).
const SUM_EXTRA: u32 = 8;

/// [y / ||y||] for each row of y [B, H].
///
/// Algorithm: one Beaver square of y, the row sums of squares truncated to
/// scale f + 8, and [`super::rsqrt`]'s range reduction with y as the
/// factor ([`reduced_fx_times`]): y times the secret 2^-(e+1)/2 is a
/// Beaver product in the round that truncates x c, and the polynomial's
/// last round truncates and multiplies it by p(x'); no product after the
/// inverse square root.
///
/// Domain: each row's sum of squares in [0.001, 4095] (the inverse square
/// root's); |y| <= 64. Max error against f64 (test
/// `tests/nonlinear_reciprocal.rs::l2_normalize_rows_z64`, asserted
/// below 4e-6): 1.9e-6 absolute in Z_2^64 at f = 20. Rounds: 11 (square 1, sum truncation 1, exponent
/// by comparisons 2, tables 1, x c with the factor's product 1,
/// polynomial 3, its product 1, output 1); 20 with the exponent by bit
/// decomposition. Bytes per party to each peer: 6 ring elements per
/// element of y plus the inverse square root's per row (82,224 for 4 x 384
/// in Z_2^64).
///
/// Errors: [`Error::ShapeMismatch`] unless y is [B, H];
/// [`Error::InvalidFixedPoint`] for a fixed point without room for the
/// range reduction; preprocessing and transport errors.
pub async fn l2_normalize<R: Ring>(sess: &Session, y: &Shared<R>) -> Result<Shared<R>> {
    let dims = y.shape().dims();
    if dims.len() != 2 {
        return Err(Error::shape(
            "l2_normalize",
            format!("expects rows [B, H], got {}", y.shape()),
        ));
    }
    let (b, f) = (dims[0], sess.fixed_point::<R>()?.frac_bits());
    let sq = beaver::square(sess, y).await?;
    let sums = sess.backend().sum_axis(sq.share(), 1)?.reshape([b])?;
    let ss = trunc::truncate(sess, &Shared::from_share(sums), f - SUM_EXTRA.min(f)).await?;
    let g = Reduced {
        coeffs: cheb::interpolate(|v| 1.0 / v.sqrt(), 0.5, 1.0, 7),
        post: Some(Box::new(|e| (-(e + 1) as f64 / 2.0).exp2())),
        add: None,
    };
    let times = Times {
        v: &Fx::new(y.clone(), f),
        axis: 1,
        // |y_i| / ||y|| <= 1, with room for the truncations' errors.
        bound: 2.0,
    };
    let x = Fx::new(ss, f + SUM_EXTRA.min(f));
    reduced_fx_times(sess, &x, &g, Some(times)).await
}
