//! The comparison family: MSB/DReLU, comparisons, ReLU, select, max/argmax.
//!
//! MSB with a dealer edaBit (Escudero, Ghosh, Keller, Rachuri, Scholl,
//! CRYPTO 2020; the bit-sliced carry circuit as in Falcon and Piranha): the
//! dealer gives [r] arithmetically and the bits of r XOR-shared. Parties open
//! c = x + r, so x = c - r = c + NOT(r) + 1 in binary. With c public, the
//! generate g_j = c_j AND NOT r_j and propagate p_j = c_j XOR NOT r_j bits are
//! local; the carry into bit k-1 is a prefix tree of (G, P) combinations,
//! (G, P) o (G', P') = (G ^ (P & G'), P & P'). The tree's first level,
//! groups of 4 positions, costs no round: each group's (G, P) is a
//! polynomial in r's bits with public coefficients, evaluated on the
//! dealer's shares of the products of r's bits (function-dependent
//! preprocessing as in Turbospeedz and ABY2.0; `backend/carry_groups.rs`).
//! Every further level combines several nodes at once with multi-input
//! ANDs from dealer masks ([`crate::protocol::fanin`]): all of them in one
//! round when there are at most 8, else 4 per round. MSB(x) = p_{k-1} ^
//! carry.
//!
//! Domain: any ring element (MSB is exact); comparisons x < y need
//! |x - y| < 2^(k-1). Error: none. Rounds: MSB 1 + the tree's levels over
//! g = ceil((k - 1) / 4) groups ([`crate::protocol::fanin::tree_levels`]):
//! 3 in Z_2^64 (16 groups), 2 in Z_2^32 and for |x| < 2^32 (at most 8
//! groups); 5 and 4 with a radix-2 tree, 7 and 6 with a tree from single
//! bits. DReLU, ReLU, comparisons one more (bit injection or B2A with
//! daBits). Bytes: see [`msb_cost`]. Dealer material per element: r, its
//! bits and the products of its bits (169 planes in Z_2^64: 11 per group
//! of 4), plus the tree's masks (33 planes in Z_2^64, 14 in Z_2^32) and
//! their products (96 planes in Z_2^64, 494 in Z_2^32).

use crate::backend::carry_groups::{product_planes, GROUP};
use crate::backend::{Backend, MpcSteps};
use crate::error::{Error, Result};
use crate::pipeline::{Lanes, RowLanes};
use crate::preprocess::Request;
use crate::ring::{AnyTensor, Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::{words_for, BinShared, BitPlanes, Shared};

use super::axis;
use super::beaver;
use super::convert::{b2a, inject};
use super::fanin::{and_fanin, and_level, carry_level, tree_levels, tree_radix, FanInLayer};

/// Cost of [`msb`] for `n` elements in Z_2^k: (rounds, bytes sent to EACH
/// peer). Bytes: k/8 per element for opening c, plus one bit per element
/// for each plane the carry tree opens over ceil((k - 1) / 4) groups (33
/// in Z_2^64: 12.125 bytes per element in all; 14 in Z_2^32: 5.75).
pub fn msb_cost(k: u32, n: usize) -> (u64, u64) {
    msb_bounded_cost(k, k, n)
}

/// Cost of [`msb_bounded`] with `bits` for `n` elements in Z_2^k: (rounds,
/// bytes sent to EACH peer): 1 + the tree's levels over ceil((b - 1) / 4)
/// groups for b = min(bits, k) (2 rounds for b <= 33); c is opened in
/// Z_2^32 when k = 64 and b <= 32.
pub fn msb_bounded_cost(k: u32, bits: u32, n: usize) -> (u64, u64) {
    let b = bits.clamp(2, k);
    let (planes, levels) = carry_tree_planes((b as usize - 1).div_ceil(GROUP));
    let open_bits = opened_width(k, b) as u64;
    let bytes = n as u64 * open_bits / 8 + (planes * 8 * words_for(n)) as u64;
    (1 + levels as u64, bytes)
}

/// Width of the ring c = x + r is opened in: only its low b bits matter.
fn opened_width(k: u32, b: u32) -> u32 {
    if k == 64 && b <= 32 {
        32
    } else {
        k
    }
}

/// (planes opened per word of elements, levels) of the carry tree over
/// `nodes` leaves ([`tree_radix`] at each level).
fn carry_tree_planes(mut nodes: usize) -> (usize, usize) {
    let (mut planes, mut levels) = (0, 0);
    while nodes > 1 {
        let radix = tree_radix(nodes);
        planes += carry_level(nodes, radix).map_or(0, |l| l.opened().len());
        nodes = nodes.div_ceil(radix);
        levels += 1;
    }
    (planes, levels)
}

/// [MSB(x)] as a one-plane binary share: 1 where x is negative (two's complement).
///
/// Rounds and bytes: [`msb_cost`]. Errors: preprocessing and transport errors.
pub async fn msb<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<BinShared> {
    msb_bounded(sess, x, R::BITS).await
}

/// [MSB(x)] for x known to lie in [-2^(bits-1), 2^(bits-1)): there every
/// bit from bits-1 up equals the sign, and bit bits-1 of x = c - r depends
/// only on the low `bits` bits of c and r, so the carry tree runs over
/// bits-1 positions instead of k-1, and c is opened in Z_2^32 when it fits
/// (c mod 2^32 still hides x mod 2^32 perfectly). `bits >= k` is [`msb`].
///
/// Domain: |x| < 2^(bits-1) (outside it the result is bit bits-1 of x, not
/// its sign). Exact. Rounds and bytes: [`msb_bounded_cost`] (bits 28 in
/// Z_2^64: 2 rounds, 5.5 bytes per element to each peer, against 3 and
/// 12.125 for the full MSB). Errors: preprocessing and transport errors.
pub async fn msb_bounded<R: Ring>(sess: &Session, x: &Shared<R>, bits: u32) -> Result<BinShared> {
    let b = bits.clamp(2, R::BITS) as usize;
    let shape = x.shape().clone();
    let req = Request::EdaBitGroups {
        ring: R::ID,
        shape: shape.clone(),
        bits: b as u32,
    };
    let m = sess.fetch_any(&req)?;
    let [r, r_bits, products]: [AnyTensor; 3] =
        m.try_into().map_err(|m: Vec<_>| Error::Format {
            what: "preprocessing material".into(),
            detail: format!("{req} should have 3 tensors, got {}", m.len()),
        })?;
    let (r, r_bits, products) = (
        R::from_any(r)?,
        u64::from_any(r_bits)?,
        u64::from_any(products)?,
    );
    let words = words_for(shape.numel());
    let want = (b * words, product_planes(b - 1) * words);
    if (r_bits.numel(), products.numel()) != want {
        return Err(Error::Format {
            what: "preprocessing material".into(),
            detail: format!(
                "{req}: {} bit words and {} product words, expected {} and {}",
                r_bits.numel(),
                products.numel(),
                want.0,
                want.1
            ),
        });
    }
    let be = sess.backend();
    let party0 = sess.party() == 0;
    let c_i = be.add(x.share(), &r)?;
    let c_bits = if opened_width(R::BITS, b as u32) < R::BITS {
        let low = be.cast_u32(&c_i, R::ZERO, 0)?;
        BitPlanes::from_ring(&sess.open(&[&low]).await?.pop().expect("one value"))
    } else {
        BitPlanes::from_ring(&sess.open(&[&c_i]).await?.pop().expect("one value"))
    };
    // The (G, P) tree on the backend: the first level (groups of 4 bits,
    // bit 0 with the carry-in of 1) local from c's bits and the dealer's
    // products of r's bits, then one round of binary ANDs per level.
    let [mut g, mut p, top] =
        be.carry_group_leaves(c_bits.words_tensor(), &r_bits, &products, b, words, party0)?;
    // Then one round per level of the tree (multi-input ANDs).
    let mut nodes = (b - 1).div_ceil(GROUP);
    while nodes > 1 {
        let x = be.concat_axis(&[&g, &p], 0)?;
        let radix = tree_radix(nodes);
        let layer = FanInLayer {
            x: &x,
            words,
            spec: carry_level(nodes, radix)?,
        };
        let out = and_fanin(sess, &[layer]).await?.pop().expect("one layer");
        nodes = nodes.div_ceil(radix);
        g = be.slice_axis(&out, 0, 0, nodes * words)?;
        p = be.slice_axis(&out, 0, nodes * words, nodes * words)?;
    }
    let msb = be.xor_words(&top, &g)?;
    Ok(BinShared::from_share(BitPlanes::from_tensor(
        shape, 1, msb,
    )?))
}

/// [1{x >= 0}] as an arithmetic 0/1 share (DReLU, the ReLU derivative).
///
/// Rounds: MSB + 1. Bytes per peer: [`msb_cost`] + 8 * ceil(n / 64).
/// Errors: preprocessing and transport errors.
pub async fn drelu<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let m = msb(sess, x).await?;
    let neg = b2a::<R>(sess, &m).await?;
    neg.neg(sess)?.add_scalar(sess, R::ONE)
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
    let m = msb(sess, &x.neg(sess)?).await?;
    b2a::<R>(sess, &m).await
}

/// [ReLU(x)] = [x * 1{x >= 0}]. Exact for any ring value (a fixed-point x
/// keeps its scale). Rounds: MSB + 1 (4 in Z_2^64). Bytes per peer:
/// [`msb_cost`] + n * k / 8 + 8 * ceil(n / 64). Large inputs run as an
/// inner-layer pipeline ([`crate::pipeline::Lanes`]): the same rounds and
/// bytes, one message per lane and round.
///
/// Errors: preprocessing and transport errors.
pub async fn relu<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    Lanes::new(sess, x)?
        .run(sess, x, |s, x| async move {
            Ok(relu_with_derivative_piece(s, x, R::BITS).await?.0)
        })
        .await
}

/// ([ReLU(x)], [DReLU(x)]) from one MSB and one bit injection: the
/// derivative comes free with the ReLU (training's forward pass). Rounds
/// and bytes: as [`relu`]; large inputs run in lanes of elements
/// ([`crate::pipeline::RowLanes`] over x flattened).
///
/// Errors: preprocessing and transport errors.
pub async fn relu_with_derivative<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
) -> Result<(Shared<R>, Shared<R>)> {
    relu_with_derivative_bounded(sess, x, R::BITS).await
}

/// [`relu_with_derivative`] for x known to lie in [-2^(bits-1),
/// 2^(bits-1)) as ring values: the sign by [`msb_bounded`] (2 rounds
/// instead of 3 for bits <= 33 in Z_2^64, and fewer bytes). Domain: as
/// [`msb_bounded`] (outside it the result is wrong). Exact.
///
/// Errors: preprocessing and transport errors.
pub async fn relu_with_derivative_bounded<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    bits: u32,
) -> Result<(Shared<R>, Shared<R>)> {
    let flat = x.clone().reshape(Shape(vec![x.numel()]))?;
    let lanes = RowLanes::new(sess, &flat)?;
    if lanes.count() == 1 {
        return relu_with_derivative_piece(sess, x, bits).await;
    }
    let outs = lanes
        .run(sess, &flat, |s, c, _| async move {
            let (y, d) = relu_with_derivative_piece(s, c, bits).await?;
            Ok(vec![y, d])
        })
        .await?;
    let mut outs = outs.into_iter();
    match (outs.next(), outs.next()) {
        (Some(y), Some(d)) => Ok((y.reshape(x.shape().clone())?, d.reshape(x.shape().clone())?)),
        _ => Err(Error::shape("relu", "lanes returned no derivative")),
    }
}

/// [`relu_with_derivative`] in one piece.
async fn relu_with_derivative_piece<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    bits: u32,
) -> Result<(Shared<R>, Shared<R>)> {
    let m = msb_bounded(sess, x, bits).await?;
    let (x_neg, neg) = inject(sess, x, &m).await?;
    Ok((
        x.sub(sess, &x_neg)?,
        neg.neg(sess)?.add_scalar(sess, R::ONE)?,
    ))
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

/// Largest group compared all-pairs in one level by [`max`] and [`argmax`].
pub const DEFAULT_MAX_GROUP: usize = 16;

/// Rounds of [`max_grouped`] over `len` candidates in Z_2^k with groups of
/// `group`: per level, one MSB of all pairwise differences, an AND tree
/// over each candidate's group-1 comparison bits (multi-input ANDs, up to
/// 8 per round, [`crate::protocol::fanin`]), and one bit injection.
pub fn max_rounds(k: u32, len: usize, group: usize) -> u64 {
    max_bounded_rounds(k, k, len, group)
}

/// Rounds of [`max_bounded`] with `bits` (as [`max_rounds`], with the
/// MSB's rounds of [`msb_bounded_cost`]).
pub fn max_bounded_rounds(k: u32, bits: u32, len: usize, group: usize) -> u64 {
    let (msb_rounds, _) = msb_bounded_cost(k, bits, 1);
    let mut len = len;
    let mut rounds = 0;
    while len > 1 {
        let g = group.min(len);
        rounds += msb_rounds + tree_levels(g - 1) + 1;
        len = len.div_ceil(g);
    }
    rounds
}

/// The candidates of one tournament level, on the backend: values
/// [ncand, mp] and payloads [ncand, mp * width].
struct Cands<R: Ring> {
    vals: RingTensor<R>,
    payload: RingTensor<R>,
}

/// `count` groups of `size` consecutive candidates from candidate `first`:
/// a level is one block of full groups and at most one smaller group, so
/// every step of a level is a few whole-tensor ops, not one per pair.
#[derive(Clone, Copy, Debug)]
struct Block {
    first: usize,
    count: usize,
    size: usize,
}

fn level_blocks(ncand: usize, group: usize) -> Vec<Block> {
    let (full, rest) = (ncand / group, ncand % group);
    let mut out = Vec::with_capacity(2);
    if full > 0 {
        out.push(Block {
            first: 0,
            count: full,
            size: group,
        });
    }
    if rest > 0 {
        out.push(Block {
            first: full * group,
            count: 1,
            size: rest,
        });
    }
    out
}

/// One level of the grouped tournament: candidates of `mp` values (a
/// multiple of 64) with `width` payload values per element; groups of
/// up to `group` candidates, each reduced to its winner (ties: lower
/// index). Every step runs on the backend, a few ops per offset within a
/// group; only the openings' payloads reach the host.
async fn max_level<R: Ring>(
    sess: &Session,
    cands: Cands<R>,
    mp: usize,
    width: usize,
    group: usize,
    bits: u32,
) -> Result<Cands<R>> {
    let be = sess.backend();
    let ncand = cands.vals.dims()[0];
    let blocks = level_blocks(ncand, group);
    // 1. All pairwise differences x_j - x_i - 1 (i < j) in one MSB, by
    //    offset d = j - i: bit c_ij = [x_j <= x_i]. `first_pair[b][d - 1]`
    //    is where block b's offset-d pairs start in the MSB's input.
    let minus_one = if sess.party() == 0 {
        R::ONE.wrapping_neg()
    } else {
        R::ZERO
    };
    let neg_one = R::ONE.wrapping_neg();
    let mut diffs = Vec::new();
    let mut first_pair: Vec<Vec<usize>> = Vec::with_capacity(blocks.len());
    let mut pairs = 0;
    for b in &blocks {
        let x = be
            .slice_axis(&cands.vals, 0, b.first, b.count * b.size)?
            .reshape([b.count, b.size, mp])?;
        let mut starts = Vec::with_capacity(b.size.saturating_sub(1));
        for d in 1..b.size {
            let hi = be.slice_axis(&x, 1, d, b.size - d)?;
            let lo = be.slice_axis(&x, 1, 0, b.size - d)?;
            let diff = be.lincomb(&[(&hi, R::ONE), (&lo, neg_one)], minus_one, hi.shape())?;
            starts.push(pairs);
            pairs += b.count * (b.size - d);
            diffs.push(diff.reshape([b.count * (b.size - d) * mp])?);
        }
        first_pair.push(starts);
    }
    let wpp = mp / 64; // words per pair (or per candidate)
    let c = match diffs.len() {
        0 => RingTensor::zeros([0]),
        n => {
            let diff = if n == 1 {
                diffs.pop().expect("one")
            } else {
                be.concat_axis(&diffs.iter().collect::<Vec<_>>(), 0)?
            };
            msb_bounded(sess, &Shared::from_share(diff), bits)
                .await?
                .share()
                .words_tensor()
                .clone()
        }
    };
    // NOT of a share's words: party 0 flips them.
    let not = |t: RingTensor<u64>| -> Result<RingTensor<u64>> {
        match sess.party() {
            0 => be.xor_words(&t, &RingTensor::full(t.shape().clone(), u64::MAX)),
            _ => Ok(t),
        }
    };
    // 2. Winner bits w_i = AND_{j>i} c_ij AND AND_{j<i} NOT c_ji, by AND
    //    trees over s - 1 slots per group of s: slot d of candidate i is
    //    c_{i,i+d} for i + d < s, else NOT c_{j,i} with j = i + d - s (the
    //    pair at offset s - d), so each slot is two slices of the bits.
    let mut trees: Vec<Vec<RingTensor<u64>>> = Vec::with_capacity(blocks.len());
    for (b, starts) in blocks.iter().zip(&first_pair) {
        let by_offset = (1..b.size)
            .map(|d| {
                Ok(be
                    .slice_axis(&c, 0, starts[d - 1] * wpp, b.count * (b.size - d) * wpp)?
                    .reshape([b.count, b.size - d, wpp])?)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut slots = Vec::with_capacity(b.size.saturating_sub(1));
        for d in 1..b.size {
            let wrapped = not(be.slice_axis(&by_offset[b.size - d - 1], 1, 0, d)?)?;
            slots.push(be.concat_axis(&[&by_offset[d - 1], &wrapped], 1)?);
        }
        trees.push(slots);
    }
    // One round per level of AND trees (multi-input ANDs).
    while trees.iter().any(|t| t.len() > 1) {
        let joined: Vec<Option<RingTensor<u64>>> = trees
            .iter()
            .map(|t| match t.len() > 1 {
                true => be.concat_axis(&t.iter().collect::<Vec<_>>(), 0).map(Some),
                false => Ok(None),
            })
            .collect::<Result<_>>()?;
        let mut layers = Vec::new();
        for (t, x) in trees.iter().zip(&joined) {
            if let Some(x) = x {
                layers.push(FanInLayer {
                    x,
                    words: t[0].numel(),
                    spec: and_level(1, t.len(), tree_radix(t.len()))?,
                });
            }
        }
        let mut outs = and_fanin(sess, &layers).await?.into_iter();
        trees = trees
            .into_iter()
            .map(|t| {
                // Done (one slot), or a group of one (no slots).
                if t.len() <= 1 {
                    return Ok(t);
                }
                let (len, shape) = (t[0].numel(), t[0].shape().clone());
                let out = outs.next().expect("one layer per tree");
                (0..t.len().div_ceil(tree_radix(t.len())))
                    .map(|q| {
                        Ok(be
                            .slice_axis(&out, 0, q * len, len)?
                            .reshape(shape.clone())?)
                    })
                    .collect()
            })
            .collect::<Result<_>>()?;
    }
    let wbits = trees
        .into_iter()
        .zip(&blocks)
        .map(|(t, b)| match t.into_iter().next() {
            Some(w) => Ok(w.reshape([b.count * b.size * wpp])?),
            // A group of one: its candidate wins (party 0 holds the 1 bits).
            None => not(RingTensor::zeros([b.count * wpp])),
        })
        .collect::<Result<Vec<_>>>()?;
    // 3. One injection: every candidate's values and payload times its w_i,
    //    laid out [candidate][element][value, payload..].
    let w = be.concat_axis(&wbits.iter().collect::<Vec<_>>(), 0)?;
    let w = BinShared::from_share(BitPlanes::from_tensor([ncand * mp], 1, w)?);
    let vals = cands.vals.reshape([ncand, mp, 1])?;
    let x = match width {
        0 => vals,
        _ => be.concat_axis(&[&vals, &cands.payload.reshape([ncand, mp, width])?], 2)?,
    };
    let (scaled, _) = inject(
        sess,
        &Shared::from_share(x.reshape([ncand * mp * (1 + width)])?),
        &w,
    )
    .await?;
    let scaled = scaled.into_share();
    // 4. Sum each group's scaled candidates: exactly one has w = 1.
    let sums = blocks
        .iter()
        .map(|b| {
            let part = be
                .slice_axis(
                    &scaled,
                    0,
                    b.first * mp * (1 + width),
                    b.count * b.size * mp * (1 + width),
                )?
                .reshape([b.count, b.size, mp, 1 + width])?;
            Ok(be.sum_axis(&part, 1)?.reshape([b.count, mp, 1 + width])?)
        })
        .collect::<Result<Vec<_>>>()?;
    let sum = be.concat_axis(&sums.iter().collect::<Vec<_>>(), 0)?;
    let ngroups = sum.dims()[0];
    let payload = match width {
        0 => RingTensor::zeros([ngroups, 0]),
        _ => be
            .slice_axis(&sum, 2, 1, width)?
            .reshape([ngroups, mp * width])?,
    };
    Ok(Cands {
        vals: be.slice_axis(&sum, 2, 0, 1)?.reshape([ngroups, mp])?,
        payload,
    })
}

/// Grouped tournament down to one candidate; returns (values [mp],
/// payload [mp * width]).
async fn tournament<R: Ring>(
    sess: &Session,
    mut cands: Cands<R>,
    mp: usize,
    width: usize,
    group: usize,
    bits: u32,
) -> Result<(RingTensor<R>, RingTensor<R>)> {
    while cands.vals.dims()[0] > 1 {
        let g = group.min(cands.vals.dims()[0]);
        cands = max_level(sess, cands, mp, width, g, bits).await?;
    }
    Ok((
        cands.vals.reshape([mp])?,
        cands.payload.reshape([mp * width])?,
    ))
}

/// [max of x along `axis`], the axis kept with size 1, with groups of
/// [`DEFAULT_MAX_GROUP`] (see [`max_grouped`]).
///
/// Errors: as [`max_grouped`].
pub async fn max<R: Ring>(sess: &Session, x: &Shared<R>, axis: usize) -> Result<Shared<R>> {
    max_grouped(sess, x, axis, DEFAULT_MAX_GROUP).await
}

/// [max of x along `axis`], the axis kept with size 1: a tournament whose
/// levels compare groups of up to `group` candidates all-pairs at once
/// (group 2 is the binary tree). Per level: one MSB over all pairwise
/// differences, an AND tree over each candidate's comparison bits, and one
/// bit injection that keeps each group's winner.
///
/// Domain: pairwise differences below 2^(k-1) - 1 in magnitude. Exact.
/// Rounds: [`max_rounds`] (len 128, group 16: 23 in Z_2^64; group 2: 56).
/// Bytes per peer, per level with P pairs and C candidates over m slices
/// (m padded to a multiple of 64): msb_cost(k, P m).1 + AND-tree bytes
/// (1 bit per leaf opened, [`crate::protocol::fanin::fanin_bytes`]) + C m
/// k/8 + C m / 8.
///
/// Errors: [`Error::ShapeMismatch`] for a missing or empty axis or a group
/// below 2; preprocessing and transport errors.
pub async fn max_grouped<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
    group: usize,
) -> Result<Shared<R>> {
    Ok(argmax_impl(sess, x, axis, group, R::BITS, false).await?.0)
}

/// [`max_grouped`] for values whose pairwise differences along the axis are
/// below 2^(bits-2) in magnitude (e.g. softmax rows of bounded spread): the
/// comparisons use [`msb_bounded`] with `bits`, one round and more than
/// half the comparison bytes fewer per level in Z_2^64 for bits <= 32.
///
/// Domain: |x_i - x_j| < 2^(bits-2) along the axis (outside it the result
/// is wrong). Exact. Rounds: [`max_bounded_rounds`] (len 128, bits 28 in
/// Z_2^64: 17 with groups of 16, 12 with one group of 128).
///
/// Errors: as [`max_grouped`].
pub async fn max_bounded<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
    group: usize,
    bits: u32,
) -> Result<Shared<R>> {
    Ok(argmax_impl(sess, x, axis, group, bits, false).await?.0)
}

/// ([max along `axis`], [one-hot argmax]): the one-hot has x's shape with
/// exactly one 1 along the axis, at the first maximum on ties (as PyTorch's
/// argmax). Same rounds as [`max`]; each injection also carries the one-hot
/// (len values per candidate element, len * k/8 more bytes each).
///
/// Errors: as [`max_grouped`].
pub async fn argmax<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
) -> Result<(Shared<R>, Shared<R>)> {
    let (m, oh) = argmax_impl(sess, x, axis, DEFAULT_MAX_GROUP, R::BITS, true).await?;
    Ok((m, oh.expect("one-hot requested")))
}

async fn argmax_impl<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    axis: usize,
    group: usize,
    bits: u32,
    with_onehot: bool,
) -> Result<(Shared<R>, Option<Shared<R>>)> {
    if group < 2 {
        return Err(Error::shape(
            "max",
            format!("group size must be at least 2, got {group}"),
        ));
    }
    let (outer, len, inner) = axis::split(x.shape(), axis, "max")?;
    let m = outer * inner;
    let mp = words_for(m) * 64;
    let width = if with_onehot { len } else { 0 };
    let party0 = sess.party() == 0;
    let be = sess.backend();
    // Candidate i: the [outer, inner] slice at position i along the axis,
    // flat and padded to mp: row i of [len, mp].
    let vals = be
        .permute(&x.share().clone().reshape([outer, len, inner])?, &[1, 0, 2])?
        .reshape([len, m])?;
    let vals = match mp - m {
        0 => vals,
        pad => be.concat_axis(&[&vals, &RingTensor::zeros([len, pad])], 1)?,
    };
    // Public one-hot e_i for every element of candidate i (held by party 0).
    let mut oh = vec![R::ZERO; len * mp * width];
    if party0 && with_onehot {
        for i in 0..len {
            for e in 0..m {
                oh[(i * mp + e) * len + i] = R::ONE;
            }
        }
    }
    let cands = Cands {
        vals,
        payload: RingTensor::new([len, mp * width], oh)?,
    };
    let (best, oh) = tournament(sess, cands, mp, width, group, bits).await?;
    let best = be.slice_axis(&best, 0, 0, m)?;
    let best = Shared::from_share(best.reshape(axis::reduced(x.shape(), axis))?);
    if !with_onehot {
        return Ok((best, None));
    }
    // oh is [mp, len] = [outer, inner, len] (padded); lay it out as x's
    // shape [outer, len, inner].
    let oh = be.slice_axis(&oh.reshape([mp, len])?, 0, 0, m)?;
    let oh = be.permute(&oh.reshape([outer, inner, len])?, &[0, 2, 1])?;
    Ok((
        best,
        Some(Shared::from_share(oh.reshape(x.shape().clone())?)),
    ))
}
