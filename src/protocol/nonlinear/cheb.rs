//! Polynomials in the Chebyshev basis, evaluated on shares in the fewest
//! rounds: a degree 2^R - 1 polynomial costs R levels (2R rounds).
//!
//! p(t) = sum_k c_k T_k(t) on t in [-1, 1] is split as p = lo + T_M hi with
//! M = 2^(R-1), using T_(M+j) = 2 T_M T_j - T_(M-j): hi = c_M + 2 sum_j
//! c_(M+j) T_j and lo = sum_(k<M) c_k T_k - sum_j c_(M+j) T_(M-j), both of
//! degree < M, recursively, down to linear leaves c_0 + c_1 t (the
//! Chebyshev form of Estrin's scheme, as used for polynomial evaluation in
//! homomorphic encryption; coefficients stay bounded by 2 sum |c_k|, so it
//! is stable in fixed point where the monomial form is not). The powers
//! T_(2^i) = 2 T_(2^(i-1))^2 - 1 come from one square per level.
//!
//! Schedule (rounds): 1: square t, truncate the leaves (their public
//! coefficients are applied exactly at a higher scale); 2: truncate T_2;
//! level i >= 2: one Beaver round for T_(2^(i-1))^2 and every node product
//! T_(2^(i-1)) * hi, one truncation round. With a secret factor e (the
//! result is e * p(t)), e multiplies the leaves in round 2 and everything
//! after shifts by one round: 2R + 1 rounds instead of 2R + 2 for a
//! separate product.

use super::batch::{round, Prod, Trunc};
use super::fx::{affine, int_bits, lift, work_scale, Fx};
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;

/// Chebyshev interpolant of `f` on [a, b] with `deg + 1` coefficients:
/// p(x) = sum_k c_k T_k(t), t = (2x - a - b) / (b - a), interpolating f at
/// the deg + 1 Chebyshev nodes (near-minimax for smooth f).
pub(crate) fn interpolate(f: impl Fn(f64) -> f64, a: f64, b: f64, deg: usize) -> Vec<f64> {
    let n = deg + 1;
    let fx: Vec<f64> = (0..n)
        .map(|k| {
            let th = std::f64::consts::PI * (k as f64 + 0.5) / n as f64;
            f((th.cos() + 1.0) / 2.0 * (b - a) + a)
        })
        .collect();
    (0..n)
        .map(|j| {
            let s: f64 = fx
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    let th = std::f64::consts::PI * (k as f64 + 0.5) / n as f64;
                    v * (j as f64 * th).cos()
                })
                .sum();
            if j == 0 {
                s / n as f64
            } else {
                2.0 * s / n as f64
            }
        })
        .collect()
}

/// Levels R of a polynomial with `len` coefficients: ceil(log2(len)), >= 1.
pub(crate) fn levels(len: usize) -> u32 {
    let mut r = 1;
    while (1usize << r) < len {
        r += 1;
    }
    r
}

fn split(c: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let m = c.len() / 2;
    let mut lo = c[..m].to_vec();
    let mut hi = vec![0.0; m];
    hi[0] = c[m];
    for j in 1..m {
        hi[j] = 2.0 * c[m + j];
        lo[m - j] -= c[m + j];
    }
    (lo, hi)
}

/// Leaves (c0, c1) in evaluation order, and the largest sum |c| of any
/// sub-polynomial (a bound on every node for |t| <= 1).
fn leaves(c: &[f64], out: &mut Vec<[f64; 2]>, bound: &mut f64) {
    *bound = bound.max(c.iter().map(|v| v.abs()).sum());
    if c.len() == 2 {
        out.push([c[0], c[1]]);
        return;
    }
    let (lo, hi) = split(c);
    leaves(&lo, out, bound);
    leaves(&hi, out, bound);
}

/// Broadcasts a share of t's shape to the factor's shape.
pub(crate) type Expand<'a, R> = dyn Fn(&Shared<R>) -> Result<Shared<R>> + Sync + 'a;

/// A node of the evaluation tree: `None` when identically zero.
type Node<R> = Option<Fx<R>>;

/// A secret factor of the result: e * p(t).
pub(crate) struct Mult<'a, R: Ring> {
    /// The factor, at its own scale.
    pub(crate) e: &'a Fx<R>,
    /// |e| <= bound.
    pub(crate) bound: f64,
    /// Maps a share of t's shape to e's shape (broadcast), when they differ.
    pub(crate) expand: Option<&'a Expand<'a, R>>,
}

/// Spare bit for inputs slightly outside [-1, 1] and rounding.
const MARGIN: u32 = 1;

/// Evaluates sum_k c_k T_k(t) (times `mult.e` if given) on shares, result at
/// `out_scale`. `t` should satisfy |t| <= 1 (values slightly outside are
/// tolerated up to the margin; far outside, the result is meaningless but
/// finite in the ring).
///
/// Error: each truncation adds up to 2^-scale; the powers T_(2^i) carry
/// about 4^i 2^-W (W = [`work_scale`]); leaves apply coefficients with at
/// least 32 bits (Z_2^64) of precision. Rounds: 2R (1 for R = 1), plus 1
/// with a factor (3 for R = 1).
///
/// Errors: [`Error::ShapeMismatch`], [`Error::InvalidFixedPoint`] when t's
/// scale is too large to square; preprocessing and transport errors.
pub(crate) async fn eval<R: Ring>(
    sess: &Session,
    t: &Fx<R>,
    coeffs: &[f64],
    mult: Option<Mult<'_, R>>,
    out_scale: u32,
) -> Result<Shared<R>> {
    let k = R::BITS;
    let w = work_scale::<R>();
    let big_r = levels(coeffs.len());
    let mut c = coeffs.to_vec();
    c.resize(1 << big_r, 0.0);
    let mut lv = Vec::new();
    let mut bound = 0.0f64;
    leaves(&c, &mut lv, &mut bound);
    let ib = int_bits(bound);
    // T_2 = 2 t^2 - 1 is formed from the raw square at scale 2 t.scale.
    if 2 * t.scale + 1 > k - 3 || 2 * t.scale < w {
        return Err(Error::InvalidFixedPoint(format!(
            "polynomial input at scale {} is too fine to square in Z_2^{k} (internal)",
            t.scale
        )));
    }
    let (e_bound, e_scale) = mult
        .as_ref()
        .map(|m| (m.bound, m.e.scale))
        .unwrap_or((1.0, 0));
    let ibe = int_bits(bound * e_bound);
    // Node scale: a node times T (scale w) must stay below 2^(k-3-margin).
    let s_node = w.min(k - 3 - MARGIN - w - if mult.is_some() { ibe } else { ib });
    // Leaves before the factor: e * leaf must fit as well.
    let s_leaf = if mult.is_some() {
        w.min((k - 3 - MARGIN - ibe).saturating_sub(e_scale))
    } else {
        s_node
    };
    let leaf_raw = (t.scale + 40).min(k - 3 - MARGIN - ib);
    if leaf_raw < t.scale || s_leaf > leaf_raw {
        return Err(Error::InvalidFixedPoint(format!(
            "polynomial with coefficients up to {bound} does not fit Z_2^{k} (internal)"
        )));
    }
    let single = big_r == 1;
    let expand = |s: &Shared<R>| -> Result<Shared<R>> {
        match mult.as_ref().and_then(|m| m.expand) {
            Some(f) => f(s),
            None => Ok(s.clone()),
        }
    };

    // Every level's raw products T * hi have scale w + s_node. A "lo" node
    // (even position) enters that sum without a product, so it stays raw
    // (untruncated) whenever its scale does not exceed it: only the nodes
    // multiplied next ("hi", odd positions) and the result are truncated,
    // half the truncations of truncating every node.
    let raw_scale = w + s_node;

    // Round 1: square t; truncate the hi leaves (without a factor the lo
    // leaves are formed at raw_scale directly).
    let leaf_target = if single && mult.is_none() {
        out_scale
    } else {
        s_leaf
    };
    let lo_leaves_raw = mult.is_none() && !single && raw_scale >= t.scale;
    let mut nodes: Vec<Option<Fx<R>>> = Vec::with_capacity(lv.len());
    let mut to_trunc: Vec<(usize, Shared<R>)> = Vec::new();
    for (j, [c0, c1]) in lv.iter().enumerate() {
        if *c0 == 0.0 && *c1 == 0.0 {
            nodes.push(None);
        } else if lo_leaves_raw && j.is_multiple_of(2) {
            let v = affine(sess, &[(t, *c1)], *c0, raw_scale)?;
            nodes.push(Some(Fx::new(v, raw_scale)));
        } else {
            to_trunc.push((j, affine(sess, &[(t, *c1)], *c0, leaf_raw)?));
            nodes.push(None);
        }
    }
    let tr: Vec<Trunc<R>> = to_trunc
        .iter()
        .map(|(_, r)| (r, leaf_raw - leaf_target))
        .collect();
    let sq: Vec<Prod<R>> = if single { vec![] } else { vec![Prod::Sq(&t.v)] };
    let (p, tv) = round(sess, &sq, &tr).await?;
    for ((j, _), v) in to_trunc.iter().zip(tv) {
        nodes[*j] = Some(Fx::new(v, leaf_target));
    }
    // T_2 raw (2 t^2 - 1 at scale 2 t.scale), truncated in round 2.
    let mut t_raw = p
        .into_iter()
        .next()
        .map(|sq| affine(sess, &[(&Fx::new(sq, 2 * t.scale), 2.0)], -1.0, 2 * t.scale))
        .transpose()?;
    let t_raw_scale = 2 * t.scale;
    let mut t_pow: Option<Shared<R>> = None; // T_(2^j) at scale w

    if let Some(m) = mult.as_ref() {
        // Round 2 (with a factor): truncate T_2, multiply the leaves by e.
        let ex: Vec<Option<Shared<R>>> = nodes
            .iter()
            .map(|n| n.as_ref().map(|n| expand(&n.v)).transpose())
            .collect::<Result<_>>()?;
        // Every leaf is multiplied by e: one fan opens e - a once.
        let leaves_x: Vec<&Shared<R>> = ex.iter().flatten().collect();
        let prods: Vec<Prod<R>> = match leaves_x.len() {
            0 => vec![],
            1 => vec![Prod::Mul(&m.e.v, leaves_x[0])],
            _ => vec![Prod::Fan(&m.e.v, leaves_x, false)],
        };
        let tr: Vec<Trunc<R>> = t_raw.iter().map(|r| (r, t_raw_scale - w)).collect();
        let (p, tv) = round(sess, &prods, &tr).await?;
        t_pow = tv.into_iter().next();
        let mut p = p.into_iter();
        let raw_nodes: Vec<Option<Shared<R>>> = ex
            .iter()
            .map(|x| x.as_ref().map(|_| p.next().expect("e*leaf")))
            .collect();
        // Round 3: truncate e * leaves (the lo ones only if above
        // raw_scale); square T_2 if more levels follow.
        let target = if single { out_scale } else { s_node };
        let raw_e = e_scale + leaf_target;
        let keep = |j: usize| !single && j.is_multiple_of(2) && raw_e <= raw_scale;
        let tr: Vec<Trunc<R>> = raw_nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| !keep(*j))
            .filter_map(|(_, r)| r.as_ref().map(|r| (r, raw_e - target)))
            .collect();
        let tp = t_pow.clone();
        let sq: Vec<Prod<R>> = if big_r > 2 {
            tp.iter().map(Prod::Sq).collect()
        } else {
            vec![]
        };
        let (p, tv) = round(sess, &sq, &tr).await?;
        let mut tv = tv.into_iter();
        nodes = raw_nodes
            .into_iter()
            .enumerate()
            .map(|(j, r)| {
                r.map(|r| match keep(j) {
                    true => Fx::new(r, raw_e),
                    false => Fx::new(tv.next().expect("node"), target),
                })
            })
            .collect();
        t_raw = p
            .into_iter()
            .next()
            .map(|sq| affine(sess, &[(&Fx::new(sq, 2 * w), 2.0)], -1.0, 2 * w))
            .transpose()?;
    }
    if single {
        return Ok(nodes.pop().flatten().map_or_else(
            || zeros_like(sess, mult.as_ref().map(|m| &m.e.v).unwrap_or(&t.v)),
            |n| n.v,
        ));
    }

    // Levels 2..=R: a Beaver round (node products T_cur * hi; without a
    // factor also T_cur^2; with a factor the pending power's truncation),
    // then a truncation round (the hi nodes and the result; without a
    // factor also the new power; with a factor the next power's square).
    let mut t_cur = match t_pow {
        Some(tp) => tp,
        None => {
            // No factor: round 2 truncates T_2 alone.
            let r = t_raw.take().expect("T_2 pending");
            let (_, tv) = round(sess, &[], &[(&r, t_raw_scale - w)]).await?;
            tv.into_iter().next().expect("T_2")
        }
    };
    for level in 2..=big_r {
        let last = level == big_r;
        let t_x = expand(&t_cur)?;
        let mut pairs: Vec<(Node<R>, Node<R>)> = Vec::with_capacity(nodes.len() / 2);
        let mut it = nodes.into_iter();
        while let Some(lo) = it.next() {
            pairs.push((lo, it.next().flatten()));
        }
        let his: Vec<&Shared<R>> = pairs
            .iter()
            .filter_map(|(_, hi)| hi.as_ref().map(|h| &h.v))
            .collect();
        let square_now = mult.is_none() && !last;
        // Every node product shares T: one fan opens T - a once, and
        // T^2 comes with it (without a factor, t_x is t_cur).
        let prods: Vec<Prod<R>> = match (his.len(), square_now) {
            (0, false) => vec![],
            (0, true) => vec![Prod::Sq(&t_cur)],
            (1, false) => vec![Prod::Mul(&t_x, his[0])],
            _ => vec![Prod::Fan(&t_x, his, square_now)],
        };
        let pending = t_raw.take();
        let tr: Vec<Trunc<R>> = pending.iter().map(|r| (r, 2 * w - w)).collect();
        let (p, tv) = round(sess, &prods, &tr).await?;
        drop(prods);
        let mut t_next = tv.into_iter().next();
        let mut p = p.into_iter();
        let mut raw_nodes = Vec::with_capacity(pairs.len());
        for (lo, hi) in pairs {
            // hi is at s_node, so T * hi is at raw_scale.
            let prod = hi.map(|_| p.next().expect("node product"));
            let lo_l = lo
                .map(|l| match l.scale == raw_scale {
                    true => Ok(l.v),
                    false => lift(sess, &l, raw_scale),
                })
                .transpose()?;
            raw_nodes.push(match (prod, lo_l) {
                (Some(a), Some(b)) => Some(a.add(sess, &b)?),
                (a, b) => a.or(b),
            });
        }
        let new_raw = if square_now {
            let sq = p.next().expect("square");
            Some(affine(sess, &[(&Fx::new(sq, 2 * w), 2.0)], -1.0, 2 * w)?)
        } else {
            None
        };
        let target = if last { out_scale } else { s_node };
        let keep = |j: usize| !last && j.is_multiple_of(2);
        let mut tr: Vec<Trunc<R>> = raw_nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| !keep(*j))
            .filter_map(|(_, r)| r.as_ref().map(|r| (r, raw_scale - target)))
            .collect();
        if let Some(r) = new_raw.as_ref() {
            tr.push((r, w));
        }
        let sq_next: Vec<Prod<R>> = if mult.is_some() && level + 1 < big_r {
            t_next.iter().map(Prod::Sq).collect()
        } else {
            vec![]
        };
        let (p, tv) = round(sess, &sq_next, &tr).await?;
        drop(tr);
        let mut tv = tv.into_iter();
        nodes = raw_nodes
            .into_iter()
            .enumerate()
            .map(|(j, r)| {
                r.map(|r| match keep(j) {
                    true => Fx::new(r, raw_scale),
                    false => Fx::new(tv.next().expect("node"), target),
                })
            })
            .collect();
        if new_raw.is_some() {
            t_next = tv.next();
        }
        if let Some(sq) = p.into_iter().next() {
            t_raw = Some(affine(sess, &[(&Fx::new(sq, 2 * w), 2.0)], -1.0, 2 * w)?);
        }
        if let Some(tn) = t_next {
            t_cur = tn;
        }
    }
    Ok(nodes.pop().flatten().map_or_else(
        || zeros_like(sess, mult.as_ref().map(|m| &m.e.v).unwrap_or(&t.v)),
        |n| n.v,
    ))
}

fn zeros_like<R: Ring>(sess: &Session, x: &Shared<R>) -> Shared<R> {
    Shared::from_public(sess, &RingTensor::zeros(x.shape().clone()))
}
