//! Fixed-point shares with an explicit scale, and exact local linear maps.
//!
//! Inside a non-linear function every intermediate carries its own number
//! of fractional bits (its scale): values known to be small are kept at up
//! to k/2 - 3 bits, raw Beaver products at the sum of their operands'
//! scales, and a public coefficient is applied as an exact integer multiple
//! of a share at a higher scale, to be removed by a truncation that the
//! function performs anyway. That way linear maps with real coefficients
//! cost no round of their own.

use crate::backend::MpcSteps;
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::Shared;

/// A shared fixed-point value: real = signed ring value / 2^scale.
#[derive(Clone, Debug)]
pub(crate) struct Fx<R: Ring> {
    pub(crate) v: Shared<R>,
    pub(crate) scale: u32,
}

impl<R: Ring> Fx<R> {
    pub(crate) fn new(v: Shared<R>, scale: u32) -> Self {
        Fx { v, scale }
    }
}

/// The largest scale at which a value of magnitude up to `bound` can be
/// squared (or multiplied by a value of the same kind) and truncated: the
/// raw product must stay below 2^(k-2) with a bit to spare.
pub(crate) fn work_scale<R: Ring>() -> u32 {
    (R::BITS - 6) / 2
}

/// ceil(log2(max(b, 1))): bits of integer part needed for |v| <= b.
pub(crate) fn int_bits(b: f64) -> u32 {
    if b <= 1.0 {
        0
    } else {
        b.log2().ceil() as u32
    }
}

/// round(c * 2^bits) as a ring element.
///
/// Errors: [`Error::InvalidFixedPoint`] when it does not fit the signed range.
pub(crate) fn enc<R: Ring>(c: f64, bits: u32) -> Result<R> {
    let v = (c * (bits as f64).exp2()).round();
    let lim = ((R::BITS - 1) as f64).exp2();
    if !v.is_finite() || v >= lim || v < -lim {
        return Err(Error::InvalidFixedPoint(format!(
            "coefficient {c} at {bits} fractional bits does not fit Z_2^{}",
            R::BITS
        )));
    }
    Ok(R::from_i64(v as i64))
}

/// x + c0, with x's raw share read at scale `to` and c0 encoded at `to`
/// (party 0 adds it): one pass, no multiplication, no copy of x first.
///
/// Errors: [`Error::InvalidFixedPoint`] for a c0 that does not fit.
pub(crate) fn offset<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    c0: f64,
    to: u32,
) -> Result<Shared<R>> {
    combine(sess, &[(x.share(), R::ONE)], c0, to, x.shape())
}

/// sum_i k_i x_i + c0 (c0 encoded at `to`, added by party 0) as a share of
/// `shape`: the step [`offset`] and [`affine`] share.
fn combine<R: Ring>(
    sess: &Session,
    ks: &[(&RingTensor<R>, R)],
    c0: f64,
    to: u32,
    shape: &Shape,
) -> Result<Shared<R>> {
    let c = if sess.party() == 0 {
        enc::<R>(c0, to)?
    } else {
        R::ZERO
    };
    Ok(Shared::from_share(sess.backend().lincomb(ks, c, shape)?))
}

/// sum_i c_i x_i + c0 as a raw share at scale `to` (>= every x_i's scale):
/// each c_i is encoded with (to - scale_i) fractional bits and applied as
/// an integer, so the result is exact; party 0 adds c0.
///
/// Errors: [`Error::ShapeMismatch`]; [`Error::InvalidFixedPoint`] for a
/// term above the target scale or a coefficient that does not fit.
pub(crate) fn affine<R: Ring>(
    sess: &Session,
    terms: &[(&Fx<R>, f64)],
    c0: f64,
    to: u32,
) -> Result<Shared<R>> {
    let first = terms
        .first()
        .ok_or_else(|| Error::Unsupported("affine map of no terms (internal)".into()))?;
    let shape = first.0.v.shape().clone();
    let mut ks = Vec::with_capacity(terms.len());
    for (x, c) in terms {
        if x.v.shape() != &shape {
            return Err(Error::shape(
                "nonlinear affine map",
                format!("terms of shapes {shape} and {}", x.v.shape()),
            ));
        }
        if x.scale > to {
            return Err(Error::InvalidFixedPoint(format!(
                "term at scale {} cannot be lifted to scale {to} (internal)",
                x.scale
            )));
        }
        ks.push((x.v.share(), enc::<R>(*c, to - x.scale)?));
    }
    combine(sess, &ks, c0, to, &shape)
}

/// The ring constants of c1 x + c0 for x at `scale`, result at `to`: c1
/// with to - scale fractional bits, and c0 at `to` at party 0 (0
/// elsewhere).
///
/// Errors: as [`affine`].
fn one_term<R: Ring>(sess: &Session, scale: u32, c1: f64, c0: f64, to: u32) -> Result<(R, R)> {
    if scale > to {
        return Err(Error::InvalidFixedPoint(format!(
            "term at scale {scale} cannot be lifted to scale {to} (internal)"
        )));
    }
    let c = if sess.party() == 0 {
        enc::<R>(c0, to)?
    } else {
        R::ZERO
    };
    Ok((enc::<R>(c1, to - scale)?, c))
}

/// c1 x + c0 as a raw share at scale `to` (>= x's scale), as [`affine`]
/// with one term, written over x's share (no fresh buffer: x is consumed).
///
/// Errors: as [`affine`].
pub(crate) fn affine_owned<R: Ring>(
    sess: &Session,
    x: Fx<R>,
    c1: f64,
    c0: f64,
    to: u32,
) -> Result<Shared<R>> {
    let (k, c) = one_term::<R>(sess, x.scale, c1, c0, to)?;
    let v = x.v.into_share();
    Ok(Shared::from_share(sess.backend().scale_add(v, k, c)?))
}

/// acc + c1 x + c0 with acc a raw share at scale `to` (>= x's scale), as
/// [`affine`], written over acc (no fresh buffer: acc is consumed).
///
/// Errors: [`Error::ShapeMismatch`]; as [`affine`].
pub(crate) fn affine_into<R: Ring>(
    sess: &Session,
    acc: Shared<R>,
    x: &Fx<R>,
    c1: f64,
    c0: f64,
    to: u32,
) -> Result<Shared<R>> {
    let (k, c) = one_term::<R>(sess, x.scale, c1, c0, to)?;
    let acc = acc.into_share();
    acc.check_same_shape(x.v.share(), "nonlinear affine map")?;
    Ok(Shared::from_share(sess.backend().add_scaled(
        acc,
        x.v.share(),
        k,
        c,
    )?))
}

/// x at a higher scale `to` (exact).
pub(crate) fn lift<R: Ring>(sess: &Session, x: &Fx<R>, to: u32) -> Result<Shared<R>> {
    affine(sess, &[(x, 1.0)], 0.0, to)
}
