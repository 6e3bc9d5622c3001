//! Polynomials in the Chebyshev basis, evaluated on shares in the fewest
//! rounds: a degree 2^R - 1 polynomial costs R rounds (R + 1 with the
//! truncation of the result).
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
//! Schedule (rounds): 1: square t (the leaves' public coefficients are
//! applied exactly at a higher scale, locally), and truncate every leaf
//! that level 2 needs truncated through the same opening ([`super::linked`]:
//! a leaf is affine in t, so its mask can be the same affine map of the
//! square's mask); level i = 2..=R: one truncation group
//! ([`super::batch::TruncGroup`]) truncates T_(2^(i-1)) and the hi nodes
//! (at level 2, the linked leaves, already truncated) and yields, with no
//! opening of its own, the next power T_(2^(i-1))^2 and every node product
//! T_(2^(i-1)) * hi: products of truncation outputs are linear in dealer
//! shares of products of the truncations' masks, so a level costs one
//! opening where a Beaver round and a truncation round cost two. With a
//! secret factor e (the result is e * p(t)), one more group truncates p and
//! e together and yields e p.

use super::batch::{round, trunc_group, Trunc, TruncGroup};
use super::fx::{affine, affine_into, affine_owned, enc, int_bits, lift, work_scale, Fx};
use super::linked::{square_linked, LinkSpec};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::protocol::axis::broadcast;
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

/// A node of the evaluation tree.
enum Node<R: Ring> {
    /// Identically zero.
    Zero,
    /// A share at its scale.
    Share(Fx<R>),
    /// A leaf c0 + c1 t at the products' scale, formed where it is
    /// consumed (added into the node product it is summed with: no buffer
    /// of its own).
    Leaf([f64; 2]),
    /// A leaf truncated by the round-1 opening of t: link `i` of the
    /// square ([`super::linked`]).
    Linked(usize),
}

/// Where a node of a group comes from: one of the group's own items, or a
/// linked truncation.
enum Ref {
    Item(usize),
    Link(usize),
}

/// A secret factor of the result: e * p(t), e of t's shape, or of a
/// shape that t's spans along `axis` (p broadcast along it first: a
/// LayerNorm's or a softmax's rows times one value per row).
pub(crate) struct Mult<'a, R: Ring> {
    /// The factor, at its own scale.
    pub(crate) e: &'a Fx<R>,
    /// |e| <= bound (and |e p| <= bound * sum |c_k|).
    pub(crate) bound: f64,
    /// The axis along which p is repeated to e's shape (`None`: e has
    /// t's shape).
    pub(crate) axis: Option<usize>,
    /// The scale e is truncated to in the product's round (at most e's
    /// own; `None`: e's own, exactly).
    pub(crate) to: Option<u32>,
}

impl<'a, R: Ring> Mult<'a, R> {
    /// A factor of t's shape, kept at its own scale.
    pub(crate) fn same(e: &'a Fx<R>, bound: f64) -> Self {
        Mult {
            e,
            bound,
            axis: None,
            to: None,
        }
    }
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
/// least 32 bits (Z_2^64) of precision; with a factor, p is rounded to
/// about 2^-(k - 4 - scale(e) - log2(bound |e|)) before the product.
/// Rounds: R + 1 ([`eval_raw`] and the truncation of the result); R + 2
/// with a factor. Elements opened per element of t: see [`eval_raw`], plus
/// 1 (plus 2 with a factor).
///
/// Errors: [`Error::ShapeMismatch`] for a factor of another shape,
/// [`Error::InvalidFixedPoint`] when t's scale is too large to square or
/// the output scale too fine; preprocessing and transport errors.
pub(crate) async fn eval<R: Ring>(
    sess: &Session,
    t: &Fx<R>,
    coeffs: &[f64],
    mult: Option<Mult<'_, R>>,
    out_scale: u32,
) -> Result<Shared<R>> {
    let raw = eval_raw(sess, t, coeffs).await?;
    let Some(m) = mult else {
        return lower(sess, &raw, out_scale).await;
    };
    let p = match m.axis {
        None => raw.v,
        Some(axis) => broadcast(sess, &raw.v, m.e.v.shape(), axis)?,
    };
    if m.e.v.shape() != p.shape() {
        return Err(Error::shape(
            "polynomial factor",
            format!("factor {} for input {}", m.e.v.shape(), t.v.shape()),
        ));
    }
    // One round: p down to s_p and e down to `to` (or lifted one bit, so
    // the truncation gives it back exactly) with the product e * p; then
    // e p to out_scale.
    let k = R::BITS;
    let to = m.to.unwrap_or(m.e.scale).min(m.e.scale);
    let ib = int_bits(bound(coeffs) * m.bound);
    let room = (k - 3 - MARGIN).saturating_sub(ib + to);
    let s_p = work_scale::<R>().min(room).min(raw.scale);
    // e itself when it is truncated (no copy), else lifted one bit.
    let lifted;
    let (e_item, e_bits) = match to < m.e.scale {
        true => (&m.e.v, m.e.scale - to),
        false => {
            lifted = lift(sess, m.e, m.e.scale + 1)?;
            (&lifted, 1)
        }
    };
    if s_p + to < out_scale || int_bits(m.bound) + to + e_bits + 1 > k - 3 {
        return Err(Error::InvalidFixedPoint(format!(
            "polynomial with a factor at scale {} cannot reach scale {out_scale} in Z_2^{k} (internal)",
            m.e.scale
        )));
    }
    let g = TruncGroup {
        items: vec![(&p, raw.scale - s_p), (e_item, e_bits)],
        linked: None,
        pairs: vec![(0, 1)],
        values: vec![],
    };
    let out = trunc_group(sess, &g).await?;
    let ep = out.products.into_iter().next().expect("one product");
    lower(sess, &Fx::new(ep, s_p + to), out_scale).await
}

/// x truncated to scale `to` (one round; none when already there).
async fn lower<R: Ring>(sess: &Session, x: &Fx<R>, to: u32) -> Result<Shared<R>> {
    if x.scale < to {
        return Err(Error::InvalidFixedPoint(format!(
            "cannot raise scale {} to {to} by truncation (internal)",
            x.scale
        )));
    }
    let (_, t) = round(sess, &[], &[(&x.v, x.scale - to)]).await?;
    Ok(t.into_iter().next().expect("one truncation"))
}

/// The largest sum |c| of any sub-polynomial of the evaluation tree: a
/// bound on every node (and the result) for |t| <= 1.
fn bound(coeffs: &[f64]) -> f64 {
    let mut c = coeffs.to_vec();
    c.resize(1 << levels(coeffs.len()), 0.0);
    let (mut lv, mut b) = (Vec::new(), 0.0f64);
    leaves(&c, &mut lv, &mut b);
    b
}

/// a + b, written over a.
fn sum_into<R: Ring>(sess: &Session, a: Shared<R>, b: &Shared<R>) -> Result<Shared<R>> {
    let mut a = a.into_share();
    a.check_same_shape(b.share(), "polynomial node")?;
    sess.backend().add_assign(&mut a, b.share())?;
    Ok(Shared::from_share(a))
}

/// sum_k c_k T_k(t) on shares, untruncated: the result comes back raw at
/// the scale it was formed at (the caller truncates it, possibly together
/// with products of it: [`TruncGroup`]).
///
/// Schedule: round 1 squares t (T_2 = 2 t^2 - 1, raw) and truncates the
/// leaves through its opening ([`super::linked`]); at each level i = 2..=R
/// one [`TruncGroup`] truncates T_(2^(i-1)) and the hi nodes (at level 2,
/// none: the leaves are linked) and returns, with no further opening,
/// T_(2^(i-1))^2 (the next power) and every node product T_(2^(i-1)) * hi;
/// the lo nodes enter raw. Rounds: R (0 for R = 1). Elements opened per
/// element of t, to each peer: 2 + sum over levels 3..=R of (1 + hi
/// nodes), i.e. 2 + (1 + 1) = 4 for degree 7 (R = 3) and 2 + 5 + 3 + 2 = 12
/// for degree 31 (R = 5); 2 for degree 3. Without the linked leaves: 6 for
/// degree 7, 20 for degree 31.
///
/// Errors: [`Error::InvalidFixedPoint`] when t's scale is too large to
/// square or the coefficients do not fit; preprocessing and transport
/// errors.
pub(crate) async fn eval_raw<R: Ring>(sess: &Session, t: &Fx<R>, coeffs: &[f64]) -> Result<Fx<R>> {
    let k = R::BITS;
    let w = work_scale::<R>();
    let big_r = levels(coeffs.len());
    let mut c = coeffs.to_vec();
    c.resize(1 << big_r, 0.0);
    let mut lv = Vec::new();
    let mut bound = 0.0f64;
    leaves(&c, &mut lv, &mut bound);
    let ib = int_bits(bound);
    if 2 * t.scale + 1 > k - 3 || 2 * t.scale < w {
        return Err(Error::InvalidFixedPoint(format!(
            "polynomial input at scale {} is too fine to square in Z_2^{k} (internal)",
            t.scale
        )));
    }
    // Node scale: a node times T (scale w) must stay below 2^(k-3-margin).
    let s_node = w.min(k - 3 - MARGIN - w - ib);
    // Every level's products T * hi have scale raw_scale; lo nodes enter
    // that sum raw.
    let raw_scale = w + s_node;
    let leaf_raw = (t.scale + 40).min(k - 3 - MARGIN - ib);
    if leaf_raw < t.scale || s_node > leaf_raw {
        return Err(Error::InvalidFixedPoint(format!(
            "polynomial with coefficients up to {bound} does not fit Z_2^{k} (internal)"
        )));
    }
    if big_r == 1 {
        let [c0, c1] = lv[0];
        return Ok(Fx::new(affine(sess, &[(t, c1)], c0, leaf_raw)?, leaf_raw));
    }
    // Leaves: lo ones at raw_scale, locally, when t can be lifted there;
    // every other leaf (c0 + c1 t at leaf_raw, truncated at level 2) is
    // linked to the round-1 opening of t and costs no opening.
    let mut links = Vec::new();
    let mut nodes: Vec<Node<R>> = Vec::with_capacity(lv.len());
    for (j, [c0, c1]) in lv.iter().enumerate() {
        let lo = j % 2 == 0;
        nodes.push(if *c0 == 0.0 && *c1 == 0.0 {
            Node::Zero
        } else if lo && raw_scale >= t.scale {
            Node::Leaf([*c0, *c1])
        } else {
            let to = if lo { raw_scale } else { s_node };
            links.push(LinkSpec {
                mult: enc::<R>(*c1, leaf_raw - t.scale)?,
                add: enc::<R>(*c0, leaf_raw)?,
                bits: leaf_raw - to,
            });
            Node::Linked(links.len() - 1)
        });
    }
    // Round 1: T_2 = 2 t^2 - 1, raw, and the linked leaves.
    let (square, sq) = square_linked(sess, &t.v, &links).await?;
    let t2 = Fx::new(square, 2 * t.scale);
    let mut t_raw = Fx::new(affine_owned(sess, t2, 2.0, -1.0, 2 * t.scale)?, 2 * t.scale);
    for level in 2..=big_r {
        let last = level == big_r;
        // Items: T first, then every hi node and every lo node above
        // raw_scale; T's partners in the products: T itself (the next
        // power) and every hi node.
        let mut items: Vec<Trunc<R>> = vec![(&t_raw.v, t_raw.scale - w)];
        let mut partners = if last { vec![] } else { vec![Ref::Item(0)] };
        let mut values = Vec::new();
        let mut slot: Vec<(Option<usize>, Option<usize>)> = Vec::with_capacity(nodes.len() / 2);
        for pair in nodes.chunks(2) {
            let lo = match &pair[0] {
                Node::Share(l) if l.scale > raw_scale => {
                    items.push((&l.v, l.scale - raw_scale));
                    values.push(items.len() - 1);
                    Some(values.len() - 1)
                }
                _ => None,
            };
            let hi = match pair.get(1) {
                Some(Node::Share(h)) => {
                    items.push((&h.v, h.scale - s_node));
                    partners.push(Ref::Item(items.len() - 1));
                    Some(partners.len() - 1)
                }
                Some(Node::Linked(i)) => {
                    partners.push(Ref::Link(*i));
                    Some(partners.len() - 1)
                }
                _ => None,
            };
            slot.push((lo, hi));
        }
        let n = items.len();
        let pairs = partners
            .iter()
            .map(|r| match r {
                Ref::Item(i) => (0, *i),
                Ref::Link(i) => (0, n + i),
            })
            .collect();
        let linked = (level == 2 && !sq.links.is_empty()).then_some(&sq);
        let out = trunc_group(
            sess,
            &TruncGroup {
                items,
                linked,
                pairs,
                values,
            },
        )
        .await?;
        let mut prods: Vec<Option<Shared<R>>> = out.products.into_iter().map(Some).collect();
        let next_raw = match last {
            true => None,
            false => {
                let sq = Fx::new(prods[0].take().expect("T^2"), 2 * w);
                Some(Fx::new(affine_owned(sess, sq, 2.0, -1.0, 2 * w)?, 2 * w))
            }
        };
        // Consume this level's nodes and values: no copies of shares.
        let mut values: Vec<Option<Shared<R>>> = out.values.into_iter().map(Some).collect();
        let mut old = std::mem::take(&mut nodes).into_iter();
        let mut next = Vec::with_capacity(slot.len());
        for (lo_at, hi_at) in slot {
            let (lo_node, _hi_node) = (old.next(), old.next());
            let prod = hi_at.map(|p| prods[p].take().expect("node product"));
            if let (None, Some(Node::Leaf([c0, c1]))) = (lo_at, &lo_node) {
                let v = match prod {
                    Some(p) => affine_into(sess, p, t, *c1, *c0, raw_scale)?,
                    None => affine(sess, &[(t, *c1)], *c0, raw_scale)?,
                };
                next.push(Node::Share(Fx::new(v, raw_scale)));
                continue;
            }
            let lo = match (lo_at, lo_node) {
                (Some(i), _) => values[i].take(),
                (None, Some(Node::Share(l))) if l.scale == raw_scale => Some(l.v),
                (None, Some(Node::Share(l))) => Some(lift(sess, &l, raw_scale)?),
                (None, Some(Node::Linked(i))) => Some(sq.links[i].value(sess)?),
                (None, _) => None,
            };
            next.push(match (lo, prod) {
                (Some(a), Some(b)) => Node::Share(Fx::new(sum_into(sess, a, &b)?, raw_scale)),
                (a, b) => match a.or(b) {
                    Some(v) => Node::Share(Fx::new(v, raw_scale)),
                    None => Node::Zero,
                },
            });
        }
        nodes = next;
        if let Some(r) = next_raw {
            t_raw = r;
        }
    }
    Ok(match nodes.pop() {
        Some(Node::Share(p)) => p,
        _ => Fx::new(
            Shared::from_public(sess, &RingTensor::zeros(t.v.shape().clone())),
            raw_scale,
        ),
    })
}
