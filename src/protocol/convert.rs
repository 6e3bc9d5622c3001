//! Conversions between binary and arithmetic shares: A2B with edaBits and a
//! parallel-prefix adder, B2A of single bits and of whole values with dealer
//! daBits, and bit injection (an arithmetic value times a binary bit) in one
//! round.
//!
//! daBits: Rotaru and Wood, "MArBled Circuits", INDOCRYPT 2019. A random bit
//! s shared both ways lets parties open e = b ^ s and set
//! [b] = e + [s] - 2e[s] (exact, 1 round, (N - 1) * 8 * ceil(n / 64) bytes).
//! Bit injection adds a product triple (a, c = a * s): opening d = x - a in
//! the same round gives [x s] = c + d [s] and [x b] = e x + (1 - 2e) [x s].

use crate::backend::{Backend, MpcSteps};
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::{words_for, BinShared, BitPlanes, Shared};

use super::bitwise::and_tensors;

fn check_one_plane(b: &BinShared, op: &'static str) -> Result<()> {
    if b.planes() != 1 {
        return Err(Error::shape(
            op,
            format!("needs one bit plane, got {}", b.planes()),
        ));
    }
    Ok(())
}

/// b ^ s (this party's share of a bit-sliced value masked by a daBit's
/// binary part), the words to open, on the backend.
///
/// Errors: [`Error::ShapeMismatch`] for a mask of another length.
fn masked_bits(
    be: &impl MpcSteps,
    b: &BinShared,
    s_bits: &RingTensor<u64>,
) -> Result<RingTensor<u64>> {
    let words = b.share().words_tensor();
    let s = s_bits.clone().reshape(words.shape().clone())?;
    be.xor_words(words, &s)
}

/// [b] as an arithmetic 0/1 share (not fixed-point scaled) from a one-plane
/// binary share. Rounds: 1. Bytes sent per party: (N - 1) * 8 * ceil(n / 64).
///
/// Errors: [`Error::ShapeMismatch`] for more than one plane; preprocessing
/// and transport errors.
pub async fn b2a<R: Ring>(sess: &Session, b: &BinShared) -> Result<Shared<R>> {
    check_one_plane(b, "b2a")?;
    let out = b2a_weighted::<R>(sess, b, &[vec![R::ONE]]).await?;
    Ok(out.into_iter().next().expect("one weight vector"))
}

/// Public linear maps of bits, converted to arithmetic shares in one round:
/// for a binary share of J planes over n values, and weight vectors w_o of
/// length J, out_o[i] = sum_j w_o[j] b_j[i] mod 2^k (shape of `b`).
///
/// The daBit method of [`b2a`] on all J planes at once (one opening of
/// J * ceil(n / 64) words), except that no per-bit arithmetic share is
/// formed: each party adds w_o[j] times its share of b_j = e + s - 2 e s
/// straight into the outputs, in one pass over the daBits. A one-hot
/// vector times a table of J values (the range reduction of
/// reciprocal, rsqrt and log) is one such map.
///
/// Exact. Rounds: 1. Bytes sent per party: (N - 1) * 8 * J * ceil(n / 64).
/// Material: (J - 1) * 64 * ceil(n / 64) + n daBits.
///
/// Errors: [`Error::ShapeMismatch`] for no planes or a weight vector whose
/// length is not J; preprocessing and transport errors.
pub async fn b2a_weighted<R: Ring>(
    sess: &Session,
    b: &BinShared,
    weights: &[Vec<R>],
) -> Result<Vec<Shared<R>>> {
    let planes = b.planes();
    if planes == 0 {
        return Err(Error::shape("b2a_weighted", "needs at least one bit plane"));
    }
    if let Some(w) = weights.iter().find(|w| w.len() != planes) {
        return Err(Error::shape(
            "b2a_weighted",
            format!("{} weights for {planes} bit planes", w.len()),
        ));
    }
    let n = b.shape().numel();
    let words = b.share().words();
    // Bit i of plane j is daBit j * 64 * words + i (the last plane unpadded).
    let req = Request::DaBit {
        ring: R::ID,
        n: (planes - 1) * 64 * words + n,
    };
    let mut m = sess.fetch_any(&req)?;
    let s_bits = u64::from_any(m.pop().expect("2 parts"))?;
    let s_arith = R::from_any(m.pop().expect("2 parts"))?;
    let be = sess.backend();
    let e = masked_bits(be, b, &s_bits)?;
    let e = sess
        .open_xor_owned(vec![e])
        .await?
        .pop()
        .expect("one value");
    let outs = be.b2a_combine(&e, &s_arith, weights, n, words, sess.party() == 0)?;
    outs.into_iter()
        .map(|o| Ok(Shared::from_share(o.reshape(b.shape().clone())?)))
        .collect()
}

/// [`b2a_weighted`] and, in the same round, x times one more public map of
/// the bits: ([out_o], [x * sum_j w[j] b_j]) for x of n values (the
/// elements of `b`). The range reduction's x c (c = 2^-(e+1) a table of
/// the one-hot exponent) this way costs no round of its own.
///
/// Bit injection of one value into J planes: the dealer's daBits s_j
/// ([`Request::InjectPlanes`]) come with a mask a of x and c_j = a s_j;
/// opening d = x - a with the masked bits gives [x s_j] = c_j + d [s_j],
/// so x sum_j w_j b_j = x P + sum_j w_j (1 - 2 e_j) (c_j + d [s_j]) with P =
/// sum_j w_j e_j public (b_j = e_j + s_j - 2 e_j s_j; Rotaru and Wood's
/// daBits, as [`inject`]). Exact. Rounds: 1. Bytes sent per party to
/// each peer: 8 J ceil(n / 64) + n k / 8. Material: J 64 ceil(n / 64)
/// daBits, their products with a, and a.
///
/// Errors: as [`b2a_weighted`], and [`Error::ShapeMismatch`] when x does
/// not have n values or `x_weights` not J; preprocessing and transport
/// errors.
pub async fn b2a_weighted_times<R: Ring>(
    sess: &Session,
    b: &BinShared,
    weights: &[Vec<R>],
    x: &Shared<R>,
    x_weights: &[R],
) -> Result<(Vec<Shared<R>>, Shared<R>)> {
    let planes = b.planes();
    let n = b.shape().numel();
    if planes == 0 || x.numel() != n || x_weights.len() != planes {
        return Err(Error::shape(
            "b2a_weighted_times",
            format!(
                "{} values and {} weights for {planes} bit planes of {n} values",
                x.numel(),
                x_weights.len()
            ),
        ));
    }
    if let Some(w) = weights.iter().find(|w| w.len() != planes) {
        return Err(Error::shape(
            "b2a_weighted_times",
            format!("{} weights for {planes} bit planes", w.len()),
        ));
    }
    let words = b.share().words();
    let req = Request::InjectPlanes {
        ring: R::ID,
        n,
        planes,
    };
    let m = sess.fetch_any(&req)?;
    let [a, c, s_arith, s_bits]: [_; 4] = m.try_into().map_err(|m: Vec<_>| Error::Format {
        what: "preprocessing material".into(),
        detail: format!("{req} should have 4 tensors, got {}", m.len()),
    })?;
    let (a, c, s_arith, s_bits) = (
        R::from_any(a)?,
        R::from_any(c)?,
        R::from_any(s_arith)?,
        u64::from_any(s_bits)?,
    );
    let be = sess.backend();
    let e = masked_bits(be, b, &s_bits)?;
    let flat_x = x.share().clone().reshape([n])?;
    let d = be.sub(&flat_x, &a)?;
    let (mut ds, mut es) = sess.open_mixed_owned(vec![d], vec![e]).await?;
    let (d, e) = (ds.pop().expect("one value"), es.pop().expect("one value"));
    let party0 = sess.party() == 0;
    let w = [x_weights.to_vec()];
    // The tables and T = sum_j w_j b_j in one pass (T = P + V with V =
    // sum_j w_j (1 - 2 e_j) [s_j], P added by party 0). With x = d + a,
    // x T = d T + a P + U, U = sum_j w_j (1 - 2 e_j) c_j: d T is local (d
    // public); P is needed at every party (zero shares, the public part
    // added by all).
    let all: Vec<Vec<R>> = weights.iter().cloned().chain(w.iter().cloned()).collect();
    let mut outs = be.b2a_combine(&e, &s_arith, &all, n, words, party0)?;
    let t = outs.pop().expect("the x map");
    let zeros = RingTensor::zeros(s_arith.shape().clone());
    let p = be.b2a_combine(&e, &zeros, &w, n, words, true)?.remove(0);
    let u = be.b2a_combine(&e, &c, &w, n, words, false)?.remove(0);
    let xt = be.add(&be.add(&be.mul(&d, &t)?, &be.mul(&a, &p)?)?, &u)?;
    let outs = outs
        .into_iter()
        .map(|o| Ok(Shared::from_share(o.reshape(b.shape().clone())?)))
        .collect::<Result<Vec<_>>>()?;
    Ok((outs, Shared::from_share(xt.reshape(b.shape().clone())?)))
}

/// Bit injection: [x * b] and [b] (arithmetic 0/1) for a one-plane bit b,
/// where bit e scales the `width` consecutive values e*width..(e+1)*width
/// of x (x.numel() = numel(b) * width). Exact. Rounds: 1. Bytes sent per
/// party: (N - 1) * (numel(x) * k / 8 + 8 * ceil(numel(b) / 64)).
///
/// Errors: [`Error::ShapeMismatch`] for more than one plane or a size
/// mismatch; preprocessing and transport errors.
pub async fn inject<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    b: &BinShared,
) -> Result<(Shared<R>, Shared<R>)> {
    check_one_plane(b, "inject")?;
    let n = b.shape().numel();
    if n == 0 || !x.numel().is_multiple_of(n) {
        return Err(Error::shape(
            "inject",
            format!("{} values cannot be split over {n} bits", x.numel()),
        ));
    }
    let width = x.numel() / n;
    let req = Request::BitInject {
        ring: R::ID,
        n,
        width,
    };
    let mut m = sess.fetch_any(&req)?;
    let s_bits = u64::from_any(m.pop().expect("4 parts"))?;
    let s_arith = R::from_any(m.pop().expect("4 parts"))?;
    let c = R::from_any(m.pop().expect("4 parts"))?;
    let a = R::from_any(m.pop().expect("4 parts"))?;
    let be = sess.backend();
    let e = masked_bits(be, b, &s_bits)?;
    // The dealer's tensors are viewed in x's shape (a reshape, no copy).
    let (a, c) = (a.reshape(x.shape().clone())?, c.reshape(x.shape().clone())?);
    let x_i = x.share();
    let d_i = be.sub(x_i, &a)?;
    let (mut d, mut e) = sess.open_mixed_owned(vec![d_i], vec![e]).await?;
    let (d, e) = (d.pop().expect("one"), e.pop().expect("one"));
    let [xb, bits] = be.inject_combine(x_i, &c, &s_arith, &d, &e, sess.party() == 0)?;
    Ok((
        Shared::from_share(xb),
        Shared::from_share(bits.reshape(b.shape().clone())?),
    ))
}

/// [x] as XOR-shared bits (k planes, bit-sliced) from an arithmetic share:
/// A2B with a dealer edaBit. Open c = x + r, then x = c + NOT(r) + 1 through a
/// Kogge-Stone parallel-prefix adder (Kogge and Stone, 1973) whose generate
/// and propagate bits are local because c is public.
///
/// Exact. Rounds: 1 + ceil(log2 k) (7 in Z_2^64). Bytes sent per party:
/// (N - 1) * (n k/8 + 2 * 8 * ceil(n/64) * sum over levels d = 1, 2, 4,
/// ... < k of ((k - d) + max(k - 2d, 0))): per level one AND for each
/// generate bit above d and one for each propagate bit above 2d (the
/// others are known to be 0), 579 ANDs in Z_2^64 and 227 in Z_2^32.
///
/// Errors: preprocessing and transport errors.
pub async fn a2b<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<BinShared> {
    let k = R::BITS as usize;
    let shape = x.shape().clone();
    let words = words_for(shape.numel());
    let req = Request::EdaBit {
        ring: R::ID,
        shape: shape.clone(),
    };
    let mut m = sess.fetch_any(&req)?;
    let r_bits = u64::from_any(m.pop().expect("2 parts"))?;
    let r = R::from_any(m.pop().expect("2 parts"))?;
    let be = sess.backend();
    let party0 = sess.party() == 0;
    let c_i = be.add(x.share(), &r)?;
    let c = sess.open(&[&c_i]).await?.pop().expect("one value");
    let c_bits = BitPlanes::from_ring(&c);
    // The adder on the backend: leaves from c's and r's bits, then one
    // round of binary ANDs per level, span 1, 2, 4, ... < k.
    let [mut g, mut pp, p] = be.adder_leaves(c_bits.words_tensor(), &r_bits, k, words, party0)?;
    let mut dist = 1;
    while dist < k {
        // For j >= dist: G_j ^= P_j & G_(j-dist); P_j &= P_(j-dist). With
        // P_0 = 0, P_j is 0 for every j < dist at this level (its span
        // reaches bit 0), so the new P_j is 0 for j < 2 dist: only j >= 2
        // dist takes an AND, and the last level needs no P at all.
        let planes = |t: &RingTensor<u64>, from: usize, to: usize| {
            be.slice_axis(t, 0, from * words, (to - from) * words)
        };
        let mut pairs = vec![(planes(&pp, dist, k)?, planes(&g, 0, k - dist)?)];
        if 2 * dist < k {
            pairs.push((planes(&pp, 2 * dist, k)?, planes(&pp, dist, k - dist)?));
        }
        let refs: Vec<_> = pairs.iter().map(|(a, b)| (a, b)).collect();
        let ands = and_tensors(sess, &refs).await?;
        [g, pp] = be.adder_level(&g, &pp, &ands[0], ands.get(1), dist, k, words)?;
        dist *= 2;
    }
    let sum = be.adder_sum(&p, &g, k, words, party0)?;
    Ok(BinShared::from_share(BitPlanes::from_tensor(
        shape, k, sum,
    )?))
}

/// [x] as an arithmetic share from k XOR-shared bit planes (B2A of whole
/// ring values): [`b2a_weighted`] with the weights 2^j, every bit through
/// a daBit in ONE round. Exact. Rounds: 1. Bytes sent per party:
/// (N - 1) * 8 * k * ceil(n / 64).
///
/// Errors: [`Error::ShapeMismatch`] unless there are exactly k planes;
/// preprocessing and transport errors.
pub async fn b2a_value<R: Ring>(sess: &Session, x: &BinShared) -> Result<Shared<R>> {
    let k = R::BITS as usize;
    if x.planes() != k {
        return Err(Error::shape(
            "b2a_value",
            format!("needs {k} bit planes, got {}", x.planes()),
        ));
    }
    // The map with weights 2^j: one B2A of all k planes.
    let pow2: Vec<R> = (0..k as u32).map(|j| R::ONE.shl(j)).collect();
    let out = b2a_weighted::<R>(sess, x, &[pow2]).await?;
    Ok(out.into_iter().next().expect("one weight vector"))
}
