//! LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta,
//! with the biased variance (PyTorch's `nn.LayerNorm`).
//!
//! Levels: the mean (the 1/H factor split into a power of two that rides
//! on the truncation and a factor in (1/2, 1] applied exactly at a higher
//! scale: one truncation round); the squares of d = x - mean and d * gamma
//! in one Beaver round; their truncation (the variance's 1/H again split,
//! its remaining factor moved into the inverse square root's public
//! scaling); the range-reduced inverse square root ([`super::sqrt::rsqrt`]'s
//! algorithm, valid down to the 0.004 variances of real embedding
//! LayerNorms where CrypTen's is off by 61%) with the product by d gamma
//! folded into its rounds where the link prefers rounds
//! ([`super::normalize::reduced_fx_times`]: d gamma times the secret
//! power of two in the round that truncates x c, the polynomial's last
//! round multiplying it by p(x')), else one product after it; beta added.

use super::batch::{round, Prod};
use super::cheb;
use super::fx::Fx;
use super::fx::{enc, int_bits};
use super::normalize::{reduced_fx, reduced_fx_times, Reduced, Times};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::pipeline::RowLanes;
use crate::protocol::axis;
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::Shared;

/// [LayerNorm(x)] over the last axis of x [.., H], with eps > 0 and
/// optional shared gamma and beta of shape [H] (None: 1 and 0; public
/// parameters can be passed as [`Shared::from_public`]).
///
/// Algorithm: see the module docs. Domain: |x| <= 1024, H <= 4096,
/// |gamma| <= 64, and per row var + eps in [0.002, 4000] (the inverse
/// square root's domain after the variance's power-of-two scaling). Max
/// error against f64 (tests `tests/nonlinear_layernorm.rs`, H = 384,
/// standard deviations 0.063 to 10, |gamma| <= 2): Z_2^64, f = 20: 3.5e-5
/// absolute (1.8e-5 to 3.1e-5 in the latest runs), at the rows of
/// standard deviation 0.063 and 0.1 (variance 0.004: a unit of 2^-20 in
/// x - mean is 1.6e-5 of the normalized value there; rows with sd >= 0.5:
/// 1.9e-5). Rounds: 12 with the product folded (1 mean, 2 squares, 9
/// inverse square root of the finer variance times d gamma), 14 without
/// (2 for the product). The fold is chosen when 2 more elements opened
/// per input element take less time on the session's link than 2 rounds
/// ([`crate::session::LinkCost::prefers_rounds`]: on the default lan
/// model up to about 15,600 elements in Z_2^64, on wan 125,000). Bytes per
/// party to each peer: 9 ring elements per input element with gamma and
/// the fold (7 without the fold, 6 and 4 without gamma) plus the inverse
/// square root of each row (binary parts padded to 64 rows): 174,544
/// (folded) and 137,824 for 6 x 384 in Z_2^64.
///
/// Errors: [`Error::ShapeMismatch`] for a scalar x or gamma/beta not of
/// shape [H]; [`Error::InvalidFixedPoint`] for eps <= 0; preprocessing and
/// transport errors.
pub async fn layer_norm<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    eps: f64,
    gamma: Option<&Shared<R>>,
    beta: Option<&Shared<R>>,
) -> Result<Shared<R>> {
    let shape = x.shape().clone();
    let rank = shape.rank();
    if rank == 0 {
        return Err(Error::shape("layer_norm", "needs at least one axis"));
    }
    let axis = rank - 1;
    let (_, h, _) = axis::split(&shape, axis, "layer_norm")?;
    for (name, p) in [("gamma", gamma), ("beta", beta)] {
        if let Some(p) = p {
            if p.shape().dims() != [h] {
                return Err(Error::shape(
                    "layer_norm",
                    format!("{name} has shape {}, expected [{h}]", p.shape()),
                ));
            }
        }
    }
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::InvalidFixedPoint(format!(
            "layer_norm eps must be > 0, got {eps}"
        )));
    }
    // Row lanes (the inner-layer pipeline) over the rows of [rows, H].
    let rows = shape.numel() / h.max(1);
    let flat = x.clone().reshape(Shape(vec![rows, h]))?;
    let lanes = RowLanes::new(sess, &flat)?;
    let y = lanes
        .run(sess, &flat, |s, c, _| async move {
            Ok(vec![layer_norm_rows(s, c, eps, gamma, beta).await?])
        })
        .await?;
    match y.into_iter().next() {
        Some(y) => y.reshape(shape),
        None => Err(Error::shape("layer_norm", "no output")),
    }
}

/// [`layer_norm`] of x [rows, H] in one piece (validated by the caller).
async fn layer_norm_rows<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    eps: f64,
    gamma: Option<&Shared<R>>,
    beta: Option<&Shared<R>>,
) -> Result<Shared<R>> {
    let shape = x.shape().clone();
    let axis = 1;
    let h = shape.dims()[1];
    let f = sess.fixed_point::<R>()?.frac_bits();
    let p = (h as u64).next_power_of_two().trailing_zeros();
    let ratio = (1u64 << p) as f64 / h as f64; // in [1, 2)
                                               // 1. mean = S * ratio / 2^p, ratio applied at s_k bits.
    let s = axis::sum(sess, x, axis)?;
    let s_k = (R::BITS - 3)
        .saturating_sub(int_bits(h as f64 * 1024.0) + f + 1)
        .min(30);
    let sk = s.mul_scalar(sess, enc::<R>(ratio, s_k)?)?;
    let (_, m) = round(sess, &[], &[(&sk, s_k + p)]).await?;
    let mean = axis::broadcast(sess, &m[0], &shape, axis)?;
    let d = x.sub(sess, &mean)?;
    // 2. d^2 and d * gamma in one Beaver round.
    let gb = gamma.map(|g| tile(sess, g, &shape)).transpose()?;
    let mut prods = vec![Prod::Sq(&d)];
    if let Some(g) = gb.as_ref() {
        prods.push(Prod::Mul(&d, g));
    }
    let (pr, _) = round(sess, &prods, &[]).await?;
    // 3. V = sum d^2 / 2^p = var / ratio at scale f + 8 (variances as
    // small as 0.004 keep 20 significant bits); d * gamma at scale f.
    let sv = f + VAR_EXTRA;
    let ssq = axis::sum(sess, &pr[0], axis)?;
    let mut tr = vec![(&ssq, 2 * f + p - sv)];
    if gb.is_some() {
        tr.push((&pr[1], f));
    }
    let (_, tv) = round(sess, &[], &tr).await?;
    let v = tv[0].add_public(
        sess,
        &RingTensor::full(tv[0].shape().clone(), enc::<R>(eps / ratio, f)?),
    )?;
    let dg = if gb.is_some() { tv[1].clone() } else { d };
    // 4. 1/sqrt(var + eps) = ratio^(-1/2) / sqrt(V + eps / ratio).
    let scale = ratio.sqrt().recip();
    let g = Reduced {
        coeffs: cheb::interpolate(|v| 1.0 / v.sqrt(), 0.5, 1.0, 7),
        post: Some(Box::new(move |e| scale * (-(e + 1) as f64 / 2.0).exp2())),
        add: None,
    };
    // 5. (d gamma) r: folded into the inverse square root's rounds (2
    // rounds fewer) where rounds cost more on the session's link than the
    // 2 elements per element it opens more; else one product after it.
    let elem_bytes = (shape.numel() * R::BITS as usize / 8) as f64;
    let y = if sess.config().link.prefers_rounds(2.0 * elem_bytes, 2) {
        let gmax = if gamma.is_some() { GAMMA_MAX } else { 1.0 };
        let times = Times {
            v: &Fx::new(dg, f),
            axis,
            bound: (h as f64).sqrt() * gmax,
        };
        reduced_fx_times(sess, &Fx::new(v, sv), &g, Some(times)).await?
    } else {
        let r = reduced_fx(sess, &Fx::new(v, sv), &g).await?;
        let rb = axis::broadcast(sess, &r, &shape, axis)?;
        let (pr, _) = round(sess, &[Prod::Mul(&dg, &rb)], &[]).await?;
        let (_, y) = round(sess, &[], &[(&pr[0], f)]).await?;
        y.into_iter().next().expect("output")
    };
    match beta {
        None => Ok(y),
        Some(b) => y.add(sess, &tile(sess, b, &shape)?),
    }
}

/// Extra fractional bits of the variance.
const VAR_EXTRA: u32 = 8;

/// Largest |gamma| in the domain (the folded product's bound).
const GAMMA_MAX: f64 = 64.0;

/// A [H] share repeated over the leading axes of `shape` [.., H].
fn tile<R: Ring>(sess: &Session, p: &Shared<R>, shape: &crate::ring::Shape) -> Result<Shared<R>> {
    let reps = shape.numel() / p.numel().max(1);
    let rows = sess
        .backend()
        .broadcast_axis(p.share(), &[reps, p.numel()].into(), 0)?;
    Ok(Shared::from_share(rows.reshape(shape.clone())?))
}
