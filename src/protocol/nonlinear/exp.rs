//! Exponential: e^x = p(x / m)^m with p a degree-7 polynomial fitted for
//! this composition, then log2(m) squarings.
//!
//! The classic MPC exponential (CrypTen) is the limit form (1 + x/2^n)^(2^n)
//! with n = 8 squarings: 16 rounds in Spindle's cost model, a relative error
//! of x^2 / 2^(n+1) (28% at x = 12) and garbage below x = -512. Here the
//! base p is a degree-7 polynomial in the Chebyshev basis ([`super::cheb`],
//! 3 levels) whose coefficients minimize the error of the composed p^m (a
//! linear program over the weighted error: absolute for x <= 0, relative
//! for x > 0, with p^m held below 1e-7 on the tail); m = 16 leaves 4
//! squarings. Intermediate values carry as many fractional bits as their
//! magnitude allows (29 in Z_2^64 for values near 1), so rounding adds
//! little to the approximation error.
//!
//! Each squaring costs one opened element and one round: the truncation
//! that brings p^(2^j) down to its scale also yields its square, from
//! dealer shares of products of the truncation's masks
//! ([`super::batch::TruncGroup`]), where a Beaver square and a separate
//! truncation would open two. The squarings run as one chain
//! ([`super::batch::trunc_square_chain`]): each square is masked for the
//! next truncation in the pass that forms it.

use super::batch::{round, trunc_square_chain};
use super::cheb;
use super::fx::{int_bits, offset, work_scale, Fx};
use crate::error::{Error, Result};
use crate::pipeline::Lanes;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// One exponential design: p on t = (x / m - center) / h, then n squarings.
pub(crate) struct ExpDesign {
    /// Squarings n (m = 2^n).
    pub(crate) squarings: u32,
    /// log2 of the half-width h of p's interval in y = x / m.
    pub(crate) log2_h: u32,
    /// Center of p's interval in y.
    pub(crate) center: f64,
    /// Chebyshev coefficients of p on t in [-1, 1].
    pub(crate) coeffs: &'static [f64],
    /// Upper end of the domain (for the squarings' scales).
    pub(crate) upper: f64,
}

/// [`exp`]: m = 16, p fitted on x in [-64, 12] (t = x/64 + 1/2).
pub(crate) const EXP: ExpDesign = ExpDesign {
    squarings: 4,
    log2_h: 2,
    center: -2.0,
    coeffs: &[
        -0.3612200236103129,
        6.165280284042059,
        -1.1036893025270924,
        2.849596826689598,
        -0.7210971868228918,
        0.6315407906865115,
        -0.12251647883394176,
        0.045059106787676356,
    ],
    upper: 12.0,
};

/// [`exp_nonpositive`]: m = 8, p fitted on x in [-64, 0] (t = x/32 + 1).
pub(crate) const EXP_NONPOS: ExpDesign = ExpDesign {
    squarings: 3,
    log2_h: 2,
    center: -4.0,
    coeffs: &[
        0.19133321576437295,
        0.35654733674264144,
        0.2709877588705425,
        0.11934453094032611,
        -0.0016771292036467606,
        0.08136154438170048,
        -0.027319918933238825,
        0.009422657649693807,
    ],
    upper: 0.0,
};

/// (scale of t, bits to truncate x first).
fn t_scale<R: Ring>(d: &ExpDesign, frac_bits: u32) -> (u32, u32) {
    let s = frac_bits + d.squarings + d.log2_h;
    let max = (R::BITS - 4) / 2;
    if s > max {
        (max, s - max)
    } else {
        (s, 0)
    }
}

/// e^x with the given design, x at scale `scale`; result at `out_scale`.
pub(crate) async fn exp_with<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    scale: u32,
    d: &ExpDesign,
    out_scale: u32,
) -> Result<Shared<R>> {
    let (s_t, pre) = t_scale::<R>(d, scale);
    let truncated;
    let x = if pre > 0 {
        let (_, t) = round(sess, &[], &[(x, pre)]).await?;
        truncated = t.into_iter().next().expect("one");
        &truncated
    } else {
        x
    };
    // t = (x / m - center) / h: x reinterpreted at scale s_t, plus a constant.
    let t = Fx::new(
        offset(sess, x, -d.center / (1u64 << d.log2_h) as f64, s_t)?,
        s_t,
    );
    // Scale of each power p^(2^j): as fine as its magnitude allows.
    let w = work_scale::<R>();
    // Z_2^32 has room for e^8 at most once squared at useful precision.
    let upper = if R::BITS == 32 {
        d.upper.min(8.0)
    } else {
        d.upper
    };
    let scale_for = |j: u32| -> u32 {
        let v = (upper / (1u64 << (d.squarings - j)) as f64).exp() * 1.01;
        w.min((R::BITS - 3 - 2 * int_bits(v)) / 2)
    };
    // p raw, then each squaring as the product of one truncation group:
    // truncating p^(2^j) to its scale yields its square with no opening of
    // its own; the last square is truncated to the output scale.
    let drop_to = |from: u32, to: u32| {
        from.checked_sub(to).ok_or_else(|| {
            Error::InvalidFixedPoint(format!(
                "exp: scale {to} above the precision {from} of the value it comes from (internal)"
            ))
        })
    };
    let raw = cheb::eval_raw(sess, &t, d.coeffs).await?;
    let mut bits = Vec::with_capacity(d.squarings as usize);
    let mut scale = raw.scale;
    for j in 0..d.squarings {
        let s = scale_for(j);
        bits.push(drop_to(scale, s)?);
        scale = 2 * s;
    }
    trunc_square_chain(sess, &raw.v, &bits, drop_to(scale, out_scale)?).await
}

/// [e^x] on fixed-point shares with the session's f fractional bits.
///
/// Algorithm: e^x = p(x/16)^16, p a degree-7 polynomial (Chebyshev basis,
/// 3 levels) fitted by linear programming so that the composition is
/// accurate (see the module docs), then 4 squarings. Replaces CrypTen's
/// (1 + x/256)^256 (16 rounds here, 28% relative error at x = 12).
///
/// Domain: x in [-64, 12] in Z_2^64 (f = 20), [-64, 8] in Z_2^32 (f = 8);
/// below -64 the result is meaningless (it stays near 0 down to about -68).
/// Max error against f64, as measured by the tests (`tests/nonlinear_exp.rs`):
/// Z_2^64: 1.2e-6 absolute for x <= 0 and 1.3e-6 relative for x > 0 (the
/// approximation alone: 1.1e-7; the rest is rounding to f = 20 bits);
/// Z_2^32: 0.011 absolute for x <= 0 and 1.1% relative for x > 0 (30 bits
/// cannot hold e^8 and fine fractions at once: prefer [`exp_nonpositive`]).
/// Rounds: 8 (polynomial 3, squarings 4, output truncation 1). Bytes sent
/// per party per element: 9 ring elements to each of the N - 1 peers
/// (polynomial 4, one per squaring, 1), i.e. 72 (N - 1) bytes in Z_2^64,
/// 36 (N - 1) in Z_2^32. Large inputs run as an inner-layer pipeline
/// ([`Lanes`]): the same rounds and bytes, one message per lane and round.
///
/// Errors: [`Error::InvalidFixedPoint`] for an f too large for the design
/// (f > 24 in Z_2^64, where x is first truncated: one more round and
/// element); preprocessing and transport errors.
pub async fn exp<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    Lanes::new(sess, x)?
        .run(sess, x, |s, x| exp_with(s, x, f, &EXP, f))
        .await
}

/// [e^x] for x <= 0 (softmax numerators, sigmoid, Gaussian kernels): one
/// squaring fewer than [`exp`] for the same accuracy.
///
/// Algorithm: e^x = p(x/8)^8, p of degree 7 fitted for x in [-64, 0].
/// Domain: x in [-64, 0]. Max error against f64 (tests): Z_2^64, f = 20:
/// 1.0e-6 absolute (one unit in the last place); Z_2^32, f = 8: 4.1e-3
/// absolute (1.05 units). Rounds: 7. Bytes sent per party per element: 8
/// ring elements to each peer, 64 (N - 1) bytes in Z_2^64.
///
/// Errors: as [`exp`].
pub async fn exp_nonpositive<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    Lanes::new(sess, x)?
        .run(sess, x, |s, x| exp_with(s, x, f, &EXP_NONPOS, f))
        .await
}
