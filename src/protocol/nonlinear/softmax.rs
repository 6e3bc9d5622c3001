//! Softmax along an axis: max subtraction, exponential, one reciprocal of
//! the row sum folded into the final product; and MPCFormer's "2Quad"
//! replacement as an explicit opt-in.
//!
//! softmax(x)_i = e_i / s with e_i = exp(x_i - max) in (0, 1] and
//! s = sum_i e_i in [1, n]. The max comes from the comparison family
//! ([`compare::max_bounded`]: all pairs of a row compared in one MSB over
//! the f + 9 low bits that a spread of 64 needs, an AND tree, one bit
//! injection: 6 rounds for rows up to 128 in one level). The
//! exponential of x - max in [-64, 0] is ONE Chebyshev polynomial of
//! degree 31 (5 levels; error 6e-8 before rounding), which beats squaring
//! schemes in rounds when only a few thousand rows are involved. 1/s on
//! [1, n] is a single Chebyshev polynomial too (degree 63 for n = 128:
//! absolute error 1e-5 at s = 1, far less elsewhere), and every output
//! e_i / s = e_i q(s) comes out of q's last round: q, repeated along the
//! row, and e are truncated together and multiplied with no opening of
//! their own ([`cheb::Mult`]), then the product is truncated. Each
//! polynomial of R levels costs R + 1 rounds ([`cheb::eval`]), R + 2 with
//! the product.

use super::batch::{round, Prod};
use super::cheb;
use super::fx::{affine, affine_owned, Fx};
use crate::error::{Error, Result};
use crate::pipeline::RowLanes;
use crate::protocol::axis;
use crate::protocol::compare;
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;

/// Mask values at or below this are "masked out": the output there is 0.
pub const MASKED: f64 = -1e4;

/// Chebyshev coefficients of e^x on [-64, 0] (t = x/32 + 1), degree 31.
fn exp_coeffs() -> Vec<f64> {
    cheb::interpolate(f64::exp, -64.0, 0.0, 31)
}

/// Degree and interval [1, 1 + 2^w] of the reciprocal of the row sum for
/// rows of `n`: the smallest 2^R - 1 whose interpolation error is below
/// 3e-5 on a fine grid (R <= 8), else degree 255.
fn recip_design(n: usize) -> (u32, Vec<f64>) {
    let w = (n.max(2) - 1).next_power_of_two().trailing_zeros().max(1);
    let b = 1.0 + (w as f64).exp2();
    for r in 1..=8u32 {
        let deg = (1usize << r) - 1;
        let c = cheb::interpolate(|s| 1.0 / s, 1.0, b, deg);
        let err = (0..=2000)
            .map(|i| {
                let s = 1.0 + (b - 1.0) * i as f64 / 2000.0;
                let t = (2.0 * s - 1.0 - b) / (b - 1.0);
                (eval_cheb(&c, t) - 1.0 / s).abs()
            })
            .fold(0.0, f64::max);
        if err <= 3e-5 || r == 8 {
            return (w, c);
        }
    }
    unreachable!("the loop returns at r = 8")
}

fn eval_cheb(c: &[f64], t: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c.iter().skip(1).rev() {
        let b0 = 2.0 * t * b1 - b2 + ck;
        b2 = b1;
        b1 = b0;
    }
    t * b1 - b2 + c[0]
}

/// Public mask handling: the values to add (0 where masked), the 0/1 keep
/// flags, and the rows (as reduced-shape indices) with nothing kept.
struct Mask {
    add: Vec<f64>,
    keep: Vec<bool>,
}

fn read_mask(mask: Option<&[f64]>, n: usize) -> Result<Option<Mask>> {
    let Some(m) = mask else { return Ok(None) };
    if m.len() != n {
        return Err(Error::shape(
            "softmax mask",
            format!("mask of {} values for {n} inputs", m.len()),
        ));
    }
    if m.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return Err(Error::shape(
            "softmax mask",
            "mask values must be finite or -inf (not NaN or +inf)",
        ));
    }
    Ok(Some(Mask {
        add: m
            .iter()
            .map(|&v| if v <= MASKED { 0.0 } else { v })
            .collect(),
        keep: m.iter().map(|&v| v > MASKED).collect(),
    }))
}

/// [softmax(x + mask)] along `axis`, with an optional public additive mask
/// of x's shape (row-major). Mask entries <= [`MASKED`] (-1e4) or -inf are
/// masked out: their output is exactly 0, as in f64; other entries are
/// added to x. A row with every entry masked gives 0 everywhere (PyTorch
/// gives NaN for -inf masks).
///
/// Algorithm: see the module docs (max by grouped all-pairs comparison,
/// exp by one degree-31 Chebyshev polynomial, 1/sum by one Chebyshev
/// polynomial multiplied into the outputs). CrypTen: 116 rounds.
///
/// Domain: within each row, x_max - x_i <= 64 for unmasked entries (larger
/// gaps give garbage, not 0) and |x| < 2^20; rows of length n <= 4096.
/// Max error against f64 (tests `tests/nonlinear_softmax.rs`): Z_2^64,
/// f = 20: absolute 1.4e-5 for rows of 128 (the degree-63 reciprocal near
/// s = 1), 1e-6 for rows of 16; masked entries within 2 units of 0.
/// Z_2^32 (f = 8, rows of 16): absolute 4e-3.
/// Rounds: max + 6 (exp) + R + 2 (1/s times e, 2^R - 1 coefficients:
/// R = 6 for n = 128, 5 for n = 16; one round fewer than a product after
/// 1/s since session 22, for the same elements opened). Without a mask the max compares
/// only f + 9 bits ([`compare::max_bounded`]: the domain bounds every gap
/// by 64; also with a mask that masks nothing out): an MSB of 2 rounds
/// instead of 3 in Z_2^64 and fewer bytes. With the default groups of 16
/// the max takes 9 rounds for rows of 17 to 256: 23 rounds for 128 x 128
/// in Z_2^64; 19 for masked rows of 16 (18 in Z_2^32); with
/// [`SoftmaxOptions::max_group`] = 128 the max is one level of 6 rounds
/// and the total 20 (more bytes). Bytes sent per party to each peer:
/// 2,995,456 for 128 x 128 in Z_2^64 (182.8 per element), 121,024 for
/// 8 x 16 (Z_2^64, masked).
///
/// Errors: [`Error::ShapeMismatch`] for a bad axis or mask; preprocessing
/// and transport errors.
pub async fn softmax<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
    mask: Option<&[f64]>,
) -> Result<Shared<R>> {
    softmax_with(sess, x, axis, mask, SoftmaxOptions::default()).await
}

/// Knobs of [`softmax_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftmaxOptions {
    /// Group size of the max ([`compare::max_bounded`]): rows of up to this
    /// length are reduced in one level (6 rounds for rows of 128 in Z_2^64
    /// without a mask, n(n-1)/2 comparisons per row); longer rows take
    /// several levels of fewer comparisons. `None`: 16 (two levels for
    /// rows of 17 to 256: 9 rounds, 8x fewer comparisons than one level of
    /// 128).
    pub max_group: Option<usize>,
}

/// [`softmax`] with explicit options (the max's rounds/bytes trade-off).
///
/// Errors: as [`softmax`].
pub async fn softmax_with<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
    mask: Option<&[f64]>,
    opts: SoftmaxOptions,
) -> Result<Shared<R>> {
    axis::split(x.shape(), axis, "softmax")?;
    if axis == 0 {
        return softmax_piece(sess, x, axis, mask, opts).await;
    }
    // Row lanes (the inner-layer pipeline) along axis 0, each with its
    // rows of the mask.
    read_mask(mask, x.numel())?;
    let per_row = x.numel() / x.shape().dims()[0].max(1);
    let lanes = RowLanes::new(sess, x)?;
    let y = lanes
        .run(sess, x, |s, c, rows| async move {
            let m = mask.map(|m| &m[rows.start * per_row..rows.end * per_row]);
            Ok(vec![softmax_piece(s, c, axis, m, opts).await?])
        })
        .await?;
    y.into_iter()
        .next()
        .ok_or_else(|| Error::shape("softmax", "no output"))
}

/// [`softmax_with`] in one piece.
async fn softmax_piece<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
    mask: Option<&[f64]>,
    opts: SoftmaxOptions,
) -> Result<Shared<R>> {
    let shape = x.shape().clone();
    let (outer, n, inner) = axis::split(&shape, axis, "softmax")?;
    let fp = sess.fixed_point::<R>()?;
    let f = fp.frac_bits();
    let mask = read_mask(mask, shape.numel())?;
    // Masked entries sink far below any kept one for the max.
    let sink = -((R::BITS - 2 - f - 2) as f64).exp2().min(1e6);
    let xm = match &mask {
        None => x.clone(),
        Some(m) => {
            let add: Vec<f64> = m
                .add
                .iter()
                .zip(&m.keep)
                .map(|(&a, &k)| if k { a } else { sink })
                .collect();
            x.add_public(sess, &fp.encode_tensor::<R>(shape.clone(), &add)?)?
        }
    };
    let group = opts.max_group.unwrap_or(16).clamp(2, n.max(2));
    // With nothing masked out every pairwise gap is within the domain's
    // 64, so the comparisons need only f + 9 bits; a sink needs them all.
    let bits = match &mask {
        Some(m) if m.keep.iter().any(|k| !k) => R::BITS,
        _ => f + 9,
    };
    let mx = compare::max_bounded(sess, &xm, axis, group, bits).await?;
    let d = xm.sub(sess, &axis::broadcast(sess, &mx, &shape, axis)?)?;
    // e = exp(d) for d in [-64, 0]: t = d / 32 + 1 at scale f + 5.
    let (w, rc) = recip_design(n);
    let s_e = 24u32.min(31 - w).min(work_e::<R>(w));
    let ts = f + 5;
    let t = Fx::new(affine_owned(sess, Fx::new(d, ts), 1.0, 1.0, ts)?, ts);
    let mut e = cheb::eval(sess, &t, &exp_coeffs(), None, s_e).await?;
    if let Some(m) = &mask {
        let keep: Vec<R> = m
            .keep
            .iter()
            .map(|&k| if k { R::ONE } else { R::ZERO })
            .collect();
        e = e.mul_public(sess, &RingTensor::new(shape.clone(), keep)?)?;
    }
    // s = sum e in [1, n]; rows with nothing kept get s = 1 (output 0).
    let mut s = axis::sum(sess, &e, axis)?;
    if let Some(m) = &mask {
        let mut empty = vec![0.0; outer * inner];
        for o in 0..outer {
            for i in 0..inner {
                if (0..n).all(|j| !m.keep[(o * n + j) * inner + i]) {
                    empty[o * inner + i] = 1.0;
                }
            }
        }
        let one = affine_const::<R>(&empty, s_e, s.shape().clone())?;
        s = s.add_public(sess, &one)?;
    }
    // t_r = (s - 1 - 2^(w-1)) / 2^(w-1) at scale s_e + w - 1.
    let trs = s_e + w - 1;
    let tr = Fx::new(
        affine(
            sess,
            &[(&Fx::new(s, trs), 1.0)],
            -(1.0 + ((w - 1) as f64).exp2()) / ((w - 1) as f64).exp2(),
            trs,
        )?,
        trs,
    );
    // e * (1/s): the polynomial of 1/s per row, repeated along the axis,
    // times e in the round that truncates both (the same elements opened
    // as a product after it, one round fewer).
    let m = cheb::Mult {
        e: &Fx::new(e, s_e),
        bound: 1.0,
        axis: Some(axis),
        to: None,
    };
    cheb::eval(sess, &tr, &rc, Some(m), f).await
}

/// Largest scale of e such that t_r = (s - ...) / 2^(w-1) can be squared.
fn work_e<R: Ring>(w: u32) -> u32 {
    ((R::BITS - 4) / 2).saturating_sub(w - 1)
}

fn affine_const<R: Ring>(
    v: &[f64],
    scale: u32,
    shape: crate::ring::Shape,
) -> Result<RingTensor<R>> {
    let data = v
        .iter()
        .map(|&c| super::fx::enc::<R>(c, scale))
        .collect::<Result<Vec<R>>>()?;
    Ok(RingTensor::new(shape, data)?)
}

/// MPCFormer's "2Quad" softmax (Li et al., ICLR 2023), an explicit opt-in
/// that changes the model: (x + c)^2 / sum (x + c)^2 along `axis`, c = 5,
/// no max and no exponential. Masked entries (public mask <= [`MASKED`])
/// get 0.
///
/// Algorithm: one square (the 2^-p row scaling rides on its truncation,
/// 2^p >= n), [`super::reciprocal`] of the scaled row sum, one product.
/// Domain: |x + 5| <= 64 and a row mean of (x + 5)^2 2^-p in [0.001, 4095]
/// (2^p >= n). Max error against the f64 2Quad (tests): 5.9e-6 absolute in
/// Z_2^64. Rounds: 12 (the reciprocal's exponent by comparisons: few
/// values). Bytes per party to each peer: 51,792 for 16 x 64 in Z_2^64 (32
/// per element plus the reciprocal's 1,189 per row, whose binary parts
/// are padded to 64 rows).
///
/// Errors: as [`softmax`].
pub async fn softmax_2quad<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
    mask: Option<&[f64]>,
) -> Result<Shared<R>> {
    let shape = x.shape().clone();
    let (_, n, _) = axis::split(&shape, axis, "softmax_2quad")?;
    let fp = sess.fixed_point::<R>()?;
    let f = fp.frac_bits();
    let mask = read_mask(mask, shape.numel())?;
    let p = (n.max(1)).next_power_of_two().trailing_zeros();
    let y = x.add_public(sess, &RingTensor::full(shape.clone(), fp.encode::<R>(5.0)?))?;
    let (sq, _) = round(sess, &[Prod::Sq(&y)], &[]).await?;
    let (_, sq) = round(sess, &[], &[(&sq[0], f + p)]).await?;
    let mut sq = sq.into_iter().next().expect("square");
    if let Some(m) = &mask {
        let keep: Vec<R> = m
            .keep
            .iter()
            .map(|&k| if k { R::ONE } else { R::ZERO })
            .collect();
        sq = sq.mul_public(sess, &RingTensor::new(shape.clone(), keep)?)?;
    }
    let s = axis::sum(sess, &sq, axis)?;
    let r = super::reciprocal::reciprocal(sess, &s).await?;
    let rb = axis::broadcast(sess, &r, &shape, axis)?;
    let (pr, _) = round(sess, &[Prod::Mul(&sq, &rb)], &[]).await?;
    let (_, out) = round(sess, &[], &[(&pr[0], f)]).await?;
    Ok(out.into_iter().next().expect("output"))
}
