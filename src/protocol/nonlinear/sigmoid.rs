//! Sigmoid and tanh through the sign, one exponential of -|x| and a
//! degree-7 polynomial of u = e^-|x| in [0, 1].
//!
//! sigma(-|x|) = u / (1 + u) and tanh(|x|) = (1 - u') / (1 + u') with
//! u' = e^(-2|x|) are smooth on u in [0, 1] (poles at u = -1: a degree-7
//! Chebyshev polynomial is accurate to 1.3e-6), and the sign s = [x >= 0]
//! (one MSB and one bit injection, which also gives ReLU(x) hence |x|)
//! restores the symmetry: sigma(x) = s + (1 - 2s) sigma(-|x|) and
//! tanh(x) = (2s - 1) tanh(|x|), the +-1 factor multiplied in by the
//! truncation group that ends the polynomial ([`super::cheb::eval`]).
//! CrypTen computes sigma through exp and a 10-iteration reciprocal.

use super::cheb;
use super::exp::{exp_with, EXP_NONPOS};
use super::fx::{affine, affine_owned, work_scale, Fx};
use crate::error::Result;
use crate::pipeline::Lanes;
use crate::protocol::compare;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// (s = [x >= 0], |x|) as integer-scaled and f-scaled shares. Rounds: MSB + 1.
async fn sign_abs<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<(Shared<R>, Shared<R>)> {
    // The sign over f + 12 bits: exact for |x| < 2048, beyond the domain.
    let f = sess.fixed_point::<R>()?.frac_bits();
    let (relu, s) = compare::relu_with_derivative_bounded(sess, x, f + 12).await?;
    let abs = relu.mul_scalar(sess, R::from_u64(2))?.sub(sess, x)?;
    Ok((s, abs))
}

async fn odd_family<R: Ring>(sess: &Session, x: &Shared<R>, tanh: bool) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    let (s, abs) = sign_abs(sess, x).await?;
    // u = e^(-|x|) (sigmoid) or e^(-2|x|) (tanh), at a fine scale.
    let k = if tanh { 2 } else { 1 };
    let neg = abs.mul_scalar(sess, R::from_i64(-k))?;
    let su = work_scale::<R>();
    let u = exp_with(sess, &neg, f, &EXP_NONPOS, su).await?;
    // t = 2u - 1 at scale su - 1.
    let t = Fx::new(
        affine_owned(sess, Fx::new(u, su - 1), 1.0, -1.0, su - 1)?,
        su - 1,
    );
    // The +-1 factor: 1 - 2s (sigmoid) or 2s - 1 (tanh), integer scale 0.
    let pm = if tanh {
        s.mul_scalar(sess, R::from_u64(2))?
            .add_scalar(sess, R::ONE.wrapping_neg())?
    } else {
        s.mul_scalar(sess, R::from_i64(-2))?
            .add_scalar(sess, R::ONE)?
    };
    let pm = Fx::new(pm, 0);
    let coeffs = if tanh {
        cheb::interpolate(|u| (1.0 - u) / (1.0 + u), 0.0, 1.0, 7)
    } else {
        cheb::interpolate(|u| u / (1.0 + u), 0.0, 1.0, 7)
    };
    let m = cheb::Mult::same(&pm, 1.0);
    let v = cheb::eval(sess, &t, &coeffs, Some(m), f).await?;
    if tanh {
        Ok(v)
    } else {
        // + s, lifted to scale f.
        v.add(sess, &affine(sess, &[(&Fx::new(s, 0), 1.0)], 0.0, f)?)
    }
}

/// [sigmoid(x)] = [1 / (1 + e^-x)].
///
/// Algorithm: see the module docs. Domain: |x| <= 64 (sigmoid(+-64) is 1
/// or 0 to 1e-28; beyond, the exponential's garbage shows). Max error
/// against f64 (tests `tests/nonlinear_sigmoid.rs`): Z_2^64, f = 20:
/// 2.4e-6 absolute; Z_2^32, f = 8: 4.0e-3 (one unit). Rounds: 15 in
/// Z_2^64 and in Z_2^32 (the sign: an MSB over f + 12 bits 2 and its
/// injection 1; exp; polynomial and the sign factor;
/// `tests/nonlinear_sigmoid.rs` counts them). Bytes per party per element
/// to each peer: 133.875 in Z_2^64 (2048 elements), 69.125 in Z_2^32
/// (1024).
///
/// Errors: preprocessing and transport errors.
pub async fn sigmoid<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    Lanes::new(sess, x)?
        .run(sess, x, |s, x| odd_family(s, x, false))
        .await
}

/// [tanh(x)].
///
/// Algorithm: see the module docs. Domain: |x| <= 32. Max error against
/// f64 (tests): Z_2^64: 3.8e-6 absolute; Z_2^32: 5e-3 (usually below
/// 4.3e-3; 1.2 units of 2^-8 seen). Rounds: 15 (15 in
/// Z_2^32). Bytes: as [`sigmoid`].
///
/// Errors: preprocessing and transport errors.
pub async fn tanh<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    Lanes::new(sess, x)?
        .run(sess, x, |s, x| odd_family(s, x, true))
        .await
}
