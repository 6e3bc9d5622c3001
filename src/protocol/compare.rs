//! The comparison family: MSB/DReLU, comparisons, ReLU, select, max/argmax.
//!
//! MSB with a dealer edaBit (Escudero, Ghosh, Keller, Rachuri, Scholl,
//! CRYPTO 2020; the bit-sliced carry circuit as in Falcon and Piranha): the
//! dealer gives [r] arithmetically and the bits of r XOR-shared. Parties open
//! c = x + r, so x = c - r = c + NOT(r) + 1 in binary. With c public, the
//! generate g_j = c_j AND NOT r_j and propagate p_j = c_j XOR NOT r_j bits are
//! local; the carry into bit k-1 is a log-depth tree of (G, P) combinations,
//! (G, P) o (G', P') = (G ^ (P & G'), P & P'), each level one round of
//! batched binary ANDs; MSB(x) = p_{k-1} ^ carry.
//!
//! Domain: any ring element (MSB is exact); comparisons x < y need
//! |x - y| < 2^(k-1). Error: none. Rounds: MSB 1 + ceil(log2(k - 1))
//! (7 in Z_2^64, 6 in Z_2^32); DReLU, ReLU, comparisons one more (bit
//! injection or B2A with daBits). Bytes: see [`msb_cost`].

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::{words_for, BinShared, BitPlanes, Shared};

use super::beaver;
use super::bitwise::and_words;
use super::convert::{b2a, inject};

/// Cost of [`msb`] for `n` elements in Z_2^k: (rounds, bytes sent to EACH
/// peer). Bytes: k/8 per element for opening c, plus 2 bits per binary AND
/// (packed 64 per word) for the `and_gates(k)` ANDs of the carry tree.
pub fn msb_cost(k: u32, n: usize) -> (u64, u64) {
    let (gates, levels) = carry_tree_gates(k as usize - 1);
    let bytes = n as u64 * k as u64 / 8 + (gates * 2 * 8 * words_for(n)) as u64;
    (1 + levels as u64, bytes)
}

/// (AND gates per element, levels) of the carry tree over `items` bit positions.
fn carry_tree_gates(mut items: usize) -> (usize, usize) {
    let (mut gates, mut levels) = (0, 0);
    while items > 1 {
        let pairs = items / 2;
        // The pair holding bit 0 needs only G (its P is known to be 0).
        gates += 2 * pairs - 1;
        items = pairs + items % 2;
        levels += 1;
    }
    (gates, levels)
}

/// One node of the carry tree: group generate and propagate, one plane of
/// packed words each; `p` is `None` for the group containing bit 0 (its
/// propagate is 0).
struct Node {
    g: Vec<u64>,
    p: Option<Vec<u64>>,
}

/// [MSB(x)] as a one-plane binary share: 1 where x is negative (two's complement).
///
/// Rounds and bytes: [`msb_cost`]. Errors: preprocessing and transport errors.
pub async fn msb<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<BinShared> {
    let k = R::BITS as usize;
    let shape = x.shape().clone();
    let req = Request::EdaBit {
        ring: R::ID,
        shape: shape.clone(),
    };
    let mut m = sess.fetch_any(&req)?;
    let r_bits = u64::from_any(m.pop().expect("2 parts"))?.into_data();
    let r = R::from_any(m.pop().expect("2 parts"))?;
    let words = words_for(shape.numel());
    if r_bits.len() != k * words {
        return Err(Error::Format {
            what: "preprocessing material".into(),
            detail: format!("{req}: {} bit words, expected {}", r_bits.len(), k * words),
        });
    }
    let c_i = sess.backend().add(x.share(), &r)?;
    let c = sess.open(&[&c_i]).await?.pop().expect("one value");
    let c_bits = BitPlanes::from_ring(&c);
    // With NOT r_j = r_j ^ [p0]: g_j = c_j & NOT r_j, p_j = c_j ^ NOT r_j.
    let flip = if sess.party() == 0 { u64::MAX } else { 0 };
    let g_of = |j: usize| -> Vec<u64> {
        let (r, c) = (&r_bits[j * words..(j + 1) * words], c_bits.plane(j));
        r.iter().zip(c).map(|(r, c)| c & (r ^ flip)).collect()
    };
    let p_of = |j: usize| -> Vec<u64> {
        let (r, c) = (&r_bits[j * words..(j + 1) * words], c_bits.plane(j));
        r.iter()
            .zip(c)
            .map(|(r, c)| (c & flip) ^ r ^ flip)
            .collect()
    };
    // Bit 0 with the carry-in of 1: G = g_0 OR p_0 = g_0 ^ p_0 (disjoint).
    let g0: Vec<u64> = g_of(0).iter().zip(p_of(0)).map(|(g, p)| g ^ p).collect();
    let mut nodes: Vec<Node> = vec![Node { g: g0, p: None }];
    for j in 1..k - 1 {
        nodes.push(Node {
            g: g_of(j),
            p: Some(p_of(j)),
        });
    }
    while nodes.len() > 1 {
        let mut pairs: Vec<(&[u64], &[u64])> = Vec::new();
        for pair in nodes.chunks(2) {
            if let [lo, hi] = pair {
                let hp = hi.p.as_deref().expect("only the lowest node lacks P");
                pairs.push((hp, &lo.g));
                if let Some(lp) = &lo.p {
                    pairs.push((hp, lp));
                }
            }
        }
        let mut ands = and_words(sess, &pairs).await?.into_iter();
        let mut next = Vec::with_capacity(nodes.len().div_ceil(2));
        let mut iter = nodes.into_iter();
        while let Some(lo) = iter.next() {
            match iter.next() {
                Some(hi) => {
                    let pg = ands.next().expect("one AND per pair");
                    let g = hi.g.iter().zip(&pg).map(|(a, b)| a ^ b).collect();
                    let p = lo.p.map(|_| ands.next().expect("P AND"));
                    next.push(Node { g, p });
                }
                None => next.push(lo),
            }
        }
        nodes = next;
    }
    let carry = nodes.pop().expect("one node left").g;
    let msb: Vec<u64> = p_of(k - 1).iter().zip(&carry).map(|(p, c)| p ^ c).collect();
    Ok(BinShared::from_share(BitPlanes::from_words(shape, 1, msb)?))
}

/// [1{x >= 0}] as an arithmetic 0/1 share (DReLU, the ReLU derivative).
///
/// Rounds: MSB + 1. Bytes per peer: [`msb_cost`] + 8 * ceil(n / 64).
/// Errors: preprocessing and transport errors.
pub async fn drelu<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let m = msb(sess, x).await?;
    let neg = b2a::<R>(sess, &m).await?;
    Ok(neg.neg(sess).add_scalar(sess, R::ONE))
}

/// [1{x < y}] as an arithmetic 0/1 share. Domain: |x - y| < 2^(k-1).
///
/// Rounds and bytes: as [`drelu`]. Errors: [`Error::ShapeMismatch`],
/// preprocessing and transport errors.
pub async fn less_than<R: Ring>(sess: &Session, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>> {
    let m = msb(sess, &x.sub(sess, y)?).await?;
    b2a::<R>(sess, &m).await
}

/// [1{x > y}] as an arithmetic 0/1 share. Domain: |x - y| < 2^(k-1).
///
/// Errors: as [`less_than`].
pub async fn greater_than<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    y: &Shared<R>,
) -> Result<Shared<R>> {
    less_than(sess, y, x).await
}

/// [1{x > 0}] as an arithmetic 0/1 share. Domain: x != -2^(k-1).
///
/// Errors: preprocessing and transport errors.
pub async fn greater_than_zero<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let m = msb(sess, &x.neg(sess)).await?;
    b2a::<R>(sess, &m).await
}

/// [ReLU(x)] = [x * 1{x >= 0}]. Exact for any ring value (a fixed-point x
/// keeps its scale). Rounds: MSB + 1 (8 in Z_2^64). Bytes per peer:
/// [`msb_cost`] + n * k / 8 + 8 * ceil(n / 64).
///
/// Errors: preprocessing and transport errors.
pub async fn relu<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    Ok(relu_with_derivative(sess, x).await?.0)
}

/// ([ReLU(x)], [DReLU(x)]) from one MSB and one bit injection: the
/// derivative comes free with the ReLU. Rounds and bytes: as [`relu`].
///
/// Errors: preprocessing and transport errors.
pub async fn relu_with_derivative<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
) -> Result<(Shared<R>, Shared<R>)> {
    let m = msb(sess, x).await?;
    let (x_neg, neg) = inject(sess, x, &m).await?;
    Ok((x.sub(sess, &x_neg)?, neg.neg(sess).add_scalar(sess, R::ONE)))
}

/// [cond ? a : b] for an arithmetic 0/1 share `cond`: b + cond * (a - b)
/// with one Beaver product (exact, no truncation). Rounds: 1. Bytes per
/// peer: 2 * n * k / 8.
///
/// Errors: [`Error::ShapeMismatch`], preprocessing and transport errors.
pub async fn select<R: Ring>(
    sess: &Session,
    cond: &Shared<R>,
    a: &Shared<R>,
    b: &Shared<R>,
) -> Result<Shared<R>> {
    let d = a.sub(sess, b)?;
    b.add(sess, &beaver::mul(sess, cond, &d).await?)
}

/// [bit ? a : b] for a one-plane binary share `bit`, by bit injection.
/// Rounds: 1. Bytes per peer: n * k / 8 + 8 * ceil(n / 64).
///
/// Errors: [`Error::ShapeMismatch`], preprocessing and transport errors.
pub async fn select_bit<R: Ring>(
    sess: &Session,
    bit: &BinShared,
    a: &Shared<R>,
    b: &Shared<R>,
) -> Result<Shared<R>> {
    let d = a.sub(sess, b)?;
    b.add(sess, &inject(sess, &d, bit).await?.0)
}

/// Splits a shape at `axis` into (outer, len, inner) sizes.
fn split_axis(shape: &Shape, axis: usize) -> Result<(usize, usize, usize)> {
    let d = shape.dims();
    if axis >= d.len() || d[axis] == 0 {
        return Err(Error::shape(
            "max",
            format!("axis {axis} of shape {shape} is missing or empty"),
        ));
    }
    Ok((
        d[..axis].iter().product(),
        d[axis],
        d[axis + 1..].iter().product(),
    ))
}

/// Candidate `i` along the axis: the [outer * inner] slice at position i.
fn gather<R: Ring>(
    t: &RingTensor<R>,
    (outer, len, inner): (usize, usize, usize),
    i: usize,
) -> Vec<R> {
    let mut v = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        let base = (o * len + i) * inner;
        v.extend_from_slice(&t.data()[base..base + inner]);
    }
    v
}

/// Tournament over `cands` (each a flat share of `m` values, with an optional
/// one-hot payload of `width` values per element): per level one MSB of the
/// differences and one bit injection of [difference, payload difference].
async fn tournament<R: Ring>(
    sess: &Session,
    mut cands: Vec<(Vec<R>, Vec<R>)>,
    m: usize,
    width: usize,
) -> Result<(Vec<R>, Vec<R>)> {
    while cands.len() > 1 {
        let pairs = cands.len() / 2;
        let mut diff = Vec::with_capacity(pairs * m);
        let mut payload = Vec::with_capacity(pairs * m * (1 + width));
        for p in 0..pairs {
            let (lo, hi) = (&cands[2 * p], &cands[2 * p + 1]);
            for e in 0..m {
                let d = hi.0[e].wrapping_sub(lo.0[e]);
                diff.push(d);
                payload.push(d);
                for w in 0..width {
                    payload.push(hi.1[e * width + w].wrapping_sub(lo.1[e * width + w]));
                }
            }
        }
        // bit = 1 where hi - lo - 1 < 0, i.e. hi <= lo: keep lo (ties go to
        // the lower index), by subtracting the difference from hi.
        let d = Shared::from_share(RingTensor::new([pairs * m], diff)?)
            .add_scalar(sess, R::ONE.wrapping_neg());
        let bit = msb(sess, &d).await?;
        let x = Shared::from_share(RingTensor::new([pairs * m * (1 + width)], payload)?);
        let (scaled, _) = inject(sess, &x, &bit).await?;
        let scaled = scaled.into_share().into_data();
        let mut next = Vec::with_capacity(pairs + 1);
        for p in 0..pairs {
            let hi = &cands[2 * p + 1];
            let mut v = Vec::with_capacity(m);
            let mut oh = Vec::with_capacity(m * width);
            for e in 0..m {
                let row = &scaled[(p * m + e) * (1 + width)..(p * m + e + 1) * (1 + width)];
                v.push(hi.0[e].wrapping_sub(row[0]));
                for w in 0..width {
                    oh.push(hi.1[e * width + w].wrapping_sub(row[1 + w]));
                }
            }
            next.push((v, oh));
        }
        if cands.len() % 2 == 1 {
            next.push(cands.pop().expect("odd candidate"));
        }
        cands = next;
    }
    Ok(cands.pop().expect("at least one candidate"))
}

fn reduced_shape(shape: &Shape, axis: usize) -> Shape {
    let mut d = shape.dims().to_vec();
    d[axis] = 1;
    Shape(d)
}

/// [max of x along `axis`], the axis kept with size 1. A tournament tree of
/// ceil(log2(len)) levels, each one MSB of the pairwise differences and one
/// bit injection. Domain: pairwise differences below 2^(k-1) - 1 in
/// magnitude. Exact. Rounds: ceil(log2(len)) * (MSB rounds + 1), i.e. 8 per
/// level in Z_2^64 and 7 in Z_2^32. Bytes per peer, per level with q pairs
/// of m slices: msb_cost(k, q m).1 + q m k/8 + 8 ceil(q m / 64).
///
/// Errors: [`Error::ShapeMismatch`] for a missing or empty axis;
/// preprocessing and transport errors.
pub async fn max<R: Ring>(sess: &Session, x: &Shared<R>, axis: usize) -> Result<Shared<R>> {
    let dims = split_axis(x.shape(), axis)?;
    let (outer, len, inner) = dims;
    let cands = (0..len)
        .map(|i| (gather(x.share(), dims, i), Vec::new()))
        .collect();
    let (best, _) = tournament(sess, cands, outer * inner, 0).await?;
    Ok(Shared::from_share(RingTensor::new(
        reduced_shape(x.shape(), axis),
        best,
    )?))
}

/// ([max along `axis`], [one-hot argmax]): the one-hot has x's shape with
/// exactly one 1 along the axis, at the first maximum on ties (as PyTorch's
/// argmax). Same rounds as [`max`]; each level's injection also carries
/// the one-hot difference (len values per element, so len * k/8 more bytes
/// per compared pair).
///
/// Errors: as [`max`].
pub async fn argmax<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
) -> Result<(Shared<R>, Shared<R>)> {
    let dims = split_axis(x.shape(), axis)?;
    let (outer, len, inner) = dims;
    let m = outer * inner;
    let party0 = sess.party() == 0;
    let cands = (0..len)
        .map(|i| {
            // Public one-hot e_i for every element (held by party 0).
            let mut oh = vec![R::ZERO; m * len];
            if party0 {
                for e in 0..m {
                    oh[e * len + i] = R::ONE;
                }
            }
            (gather(x.share(), dims, i), oh)
        })
        .collect();
    let (best, oh) = tournament(sess, cands, m, len).await?;
    // oh is [outer*inner, len]; lay it out as x's shape [outer, len, inner].
    let mut onehot = vec![R::ZERO; outer * len * inner];
    for o in 0..outer {
        for j in 0..inner {
            for i in 0..len {
                onehot[(o * len + i) * inner + j] = oh[(o * inner + j) * len + i];
            }
        }
    }
    Ok((
        Shared::from_share(RingTensor::new(reduced_shape(x.shape(), axis), best)?),
        Shared::from_share(RingTensor::new(x.shape().clone(), onehot)?),
    ))
}
