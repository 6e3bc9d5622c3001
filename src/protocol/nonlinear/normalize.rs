//! Range reduction by the position of the highest set bit: x = x' / c with
//! c = 2^-(e+1) for x in [2^e, 2^(e+1)), so x' = x c lies in [1/2, 1) where
//! a degree-7 polynomial is accurate to about 1e-6 (SPU's reciprocal and
//! log work this way; CrypTen instead iterates from an exp-based guess).
//!
//! The exponent comes from comparisons on a 32-bit copy of x made
//! locally: each party shifts its Z_2^64
//! share right by d bits and keeps the low 32 bits, which yields shares of
//! floor(x / 2^d) - c (0 <= c < N) in Z_2^32 (party 0 first adds
//! (N - 1) 2^d so that x = 0 stays 0 or above) because the wrap-around terms
//! are multiples of 2^(64-d) (SecureML's local truncation fails only
//! through those terms, which vanish mod 2^32 for d <= 32). Guard bits
//! below the lowest exponent absorb the small error c. One batch of MSBs
//! (`compare::msb` in Z_2^32, 2 rounds) of the copy minus each power of
//! two gives o_e = [x >= 2^e] for every exponent at once; where bytes
//! cost more than rounds on the session's link (many values on a fast
//! link), an A2B of the copy (edaBits and a Kogge-Stone adder) and a
//! suffix OR over its bits give the same o_e in 6 + ceil(log2(J)) rounds
//! for J exponents with fewer bytes (the comparisons send about 5.75
//! bytes per exponent and value, 126.5 for J = 22, against 80.5);
//! h_e = o_e XOR o_(e+1) is one-hot, so c, sqrt(c), log2(c) are public
//! tables indexed by it: one B2A with daBits yields them directly, without
//! an arithmetic share per bit, and x c in the same round (x injected into
//! the one-hot planes weighted by c: [`b2a_weighted_times`]).

use super::batch::{round, Prod};
use super::cheb;
use super::fx::{affine_owned, enc, int_bits, Fx};
use crate::backend::{Backend, MpcSteps};
use crate::error::{Error, Result};
use crate::pipeline::Lanes;
use crate::protocol::axis::broadcast;
use crate::protocol::bitwise::and_tensors;
use crate::protocol::compare::msb;
use crate::protocol::convert::{a2b, b2a_weighted_times};
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::{words_for, BinShared, BitPlanes, Shared};

/// Exponent range of a ring: x in [2^lo, 2^hi), and the scale of c.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Range {
    /// Lowest exponent e (bucket [2^lo, 2^(lo+1))).
    pub(crate) lo: i32,
    /// One past the highest exponent.
    pub(crate) hi: i32,
    /// Scale of c = 2^-(e+1): the polynomial input t = 4 x c - 3 must be
    /// squarable, so f + s_c - 2 <= k/2 - 2.
    pub(crate) s_c: u32,
}

/// The exponent range for ring `R` with f fractional bits: 22 octaves in
/// Z_2^64 ([2^-10, 2^12) at f = 20), 12 in Z_2^32 ([2^-4, 2^8) at f = 8).
pub(crate) fn range<R: Ring>(f: u32) -> Result<Range> {
    let t_max = (R::BITS - 4) / 2;
    if f + 2 > t_max {
        return Err(Error::InvalidFixedPoint(format!(
            "range reduction needs f <= {} in Z_2^{}",
            t_max - 2,
            R::BITS
        )));
    }
    let s_c = t_max + 2 - f;
    let hi = s_c as i32;
    let octaves = if R::BITS == 64 { 22 } else { 12 };
    let lo = (hi - octaves).max(-(f as i32));
    Ok(Range { lo, hi, s_c })
}

/// Guard bits kept below 2^lo in the 32-bit copy (Z_2^64 only).
const GUARD: i32 = 9;

/// One-hot binary shares, one plane per exponent: h_j = [x in [2^(lo+j),
/// 2^(lo+j+1))], j < hi - lo (all zero when x < 2^lo). Rounds: 2 (one
/// batch of MSBs in Z_2^32, hi - lo per element, each copy padded to whole
/// words of 64 elements) where the session's link favours rounds
/// ([`exponent_by_comparisons`]), else 6 + ceil(log2(hi - lo)) (an A2B in
/// Z_2^32 and a suffix OR: fewer bytes).
pub(crate) async fn onehot<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    f: u32,
    rg: Range,
) -> Result<BinShared> {
    let j_count = (rg.hi - rg.lo) as usize;
    // A 32-bit copy and the plane of exponent lo in it.
    let (v, base) = if R::BITS == 64 {
        let d = f as i32 + rg.lo - GUARD;
        if d < 0 {
            return Err(Error::InvalidFixedPoint(
                "range reduction: too few fractional bits (internal)".into(),
            ));
        }
        let d = d as u32;
        // Party 0 adds (N - 1) 2^d first, so that the copy is
        // floor(x / 2^d) + (N - 1) - c >= 0 for x >= 0 (0 stays below 2^lo).
        let bias = if sess.party() == 0 {
            (sess.n_parties() as u64 - 1) << d
        } else {
            0
        };
        let copy = sess.backend().cast_u32(x.share(), R::from_u64(bias), d)?;
        (copy, GUARD as usize)
    } else {
        let copy = sess.backend().cast_u32(x.share(), R::ZERO, 0)?;
        (copy, (f as i32 + rg.lo) as usize)
    };
    let n = x.numel();
    let planes = match exponent_by_comparisons(sess, n, j_count) {
        true => suffix_by_comparisons(sess, v, n, base, j_count).await?,
        false => suffix_by_bits(sess, v, base, j_count).await?,
    };
    // h_j = o_j ^ o_(j+1); h_(J-1) = o_(J-1).
    let be = sess.backend();
    let words = words_for(n);
    let plane = |t: &RingTensor<u64>, from: usize, to: usize| {
        be.slice_axis(t, 0, from * words, (to - from) * words)
    };
    let diff = be.xor_words(
        &plane(&planes, 0, j_count - 1)?,
        &plane(&planes, 1, j_count)?,
    )?;
    let h = be.concat_axis(&[&diff, &plane(&planes, j_count - 1, j_count)?], 0)?;
    Ok(BinShared::from_share(BitPlanes::from_tensor(
        x.shape().clone(),
        j_count,
        h,
    )?))
}

/// Bytes to each peer per 64 values (one word of each plane) of the two
/// ways to find o_j = [v >= 2^(base + j)] for `j_count` exponents: (by
/// comparisons, by bit decomposition). Comparisons: an MSB in Z_2^32 per
/// exponent (4 bytes opened and the carry tree's 14 planes per value).
/// Bit
/// decomposition: an A2B in Z_2^32 (4 bytes and 227 ANDs) and the suffix
/// OR's ANDs over the exponent planes.
fn exponent_bytes_per_word(j_count: usize) -> (f64, f64) {
    let (_, msb_bytes) = crate::protocol::compare::msb_cost(32, 64);
    let mut or_ands = 0;
    let mut dist = 1;
    while dist < j_count {
        or_ands += j_count - dist;
        dist *= 2;
    }
    let a2b = 64.0 * 4.0 + 227.0 * 16.0;
    (
        j_count as f64 * msb_bytes as f64,
        a2b + (or_ands * 16) as f64,
    )
}

/// Rounds the comparisons save against the bit decomposition: the A2B's 6
/// and the suffix OR's ceil(log2(J)), against one batch of MSBs in Z_2^32
/// (2).
fn exponent_rounds_saved(j_count: usize) -> u32 {
    let (msb_rounds, _) = crate::protocol::compare::msb_cost(32, 64);
    6 + (j_count.max(1) as u64).next_power_of_two().trailing_zeros() - msb_rounds as u32
}

/// Whether the exponent of `n` values comes from comparisons (fewer
/// rounds, more bytes) rather than from a bit decomposition: when the
/// extra bytes take less time on the session's link than the saved rounds
/// ([`crate::session::LinkCost::prefers_rounds`]). Every party and the
/// dealer's dry run decide alike (the same link in their configuration).
fn exponent_by_comparisons(sess: &Session, n: usize, j_count: usize) -> bool {
    let (cmp, bits) = exponent_bytes_per_word(j_count);
    let extra = (cmp - bits).max(0.0) * words_for(n) as f64;
    sess.config()
        .link
        .prefers_rounds(extra, exponent_rounds_saved(j_count))
}

/// o_j = [v >= 2^(base + j)] for j < `j_count` (plane-major words) in ONE
/// batch of MSBs: on the domain v lies in [0, 2^31), so v - 2^(base + j)
/// is in (-2^31, 2^31) and its sign is exact. Each copy is padded to whole
/// words, so that the batch's one plane holds the planes of o one after
/// another. Rounds: 2.
async fn suffix_by_comparisons(
    sess: &Session,
    v: RingTensor<u32>,
    n: usize,
    base: usize,
    j_count: usize,
) -> Result<RingTensor<u64>> {
    let words = words_for(n);
    let be = sess.backend();
    // Padded before the shift: a padding value is 0 - 2^(base + j) < 0, so
    // its o is 0.
    let pad = RingTensor::<u32>::zeros([words * 64 - n]);
    let flat = be.concat_axis(&[&v.reshape([n])?, &pad], 0)?;
    let copies = (0..j_count)
        .map(|j| {
            let t = 1u32 << (base + j);
            match sess.party() {
                0 => be.add_scalar(&flat, t.wrapping_neg()),
                _ => Ok(flat.clone()),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&RingTensor<u32>> = copies.iter().collect();
    let neg = msb(sess, &Shared::from_share(be.concat_axis(&refs, 0)?)).await?;
    // o = NOT neg: party 0 flips its share (on the backend: no host copy).
    let neg = neg.share().words_tensor();
    match sess.party() {
        0 => be.xor_words(
            neg,
            &RingTensor::new([neg.numel()], vec![u64::MAX; neg.numel()])?,
        ),
        _ => Ok(neg.clone()),
    }
}

/// o_j as [`suffix_by_comparisons`], from an A2B of v and a suffix OR over
/// its exponent planes (o_j = OR of bits base + j and up). Rounds: 6 +
/// ceil(log2(j_count)).
async fn suffix_by_bits(
    sess: &Session,
    v: RingTensor<u32>,
    base: usize,
    j_count: usize,
) -> Result<RingTensor<u64>> {
    let bits = a2b::<u32>(sess, &Shared::from_share(v)).await?;
    let be = sess.backend();
    let words = bits.share().words();
    // Planes from..to of a words tensor (a slice on the backend).
    let planes = |t: &RingTensor<u64>, from: usize, to: usize| {
        be.slice_axis(t, 0, from * words, (to - from) * words)
    };
    let mut o = planes(bits.share().words_tensor(), base, base + j_count)?;
    // Suffix OR: o_j = OR_{i >= j} p_i, with a OR b = a ^ b ^ (a & b).
    let mut dist = 1;
    while dist < j_count {
        let hi = planes(&o, dist, j_count)?;
        let lo = planes(&o, 0, j_count - dist)?;
        let and = and_tensors(sess, &[(&lo, &hi)])
            .await?
            .pop()
            .expect("one AND");
        let or = be.xor_words(&be.xor_words(&lo, &hi)?, &and)?;
        o = be.concat_axis(&[&or, &planes(&o, j_count - dist, j_count)?], 0)?;
        dist *= 2;
    }
    Ok(o)
}

/// The table coef(lo + j), j < hi - lo, encoded at `scale`: one-hot bits
/// times it (one [`b2a_weighted_times`] map) give coef(e) exactly.
pub(crate) fn table<R: Ring>(rg: Range, coef: impl Fn(i32) -> f64, scale: u32) -> Result<Vec<R>> {
    (rg.lo..rg.hi).map(|e| enc::<R>(coef(e), scale)).collect()
}

/// What to do after range reduction: g(x) = post(e) * p(x') + add(e) where
/// x' = x 2^-(e+1) in [1/2, 1), p a polynomial (Chebyshev on [1/2, 1]).
pub(crate) struct Reduced {
    /// Chebyshev coefficients of p on t = 4 x' - 3.
    pub(crate) coeffs: Vec<f64>,
    /// Multiplier as a function of the exponent e (`None`: 1).
    pub(crate) post: Option<Box<dyn Fn(i32) -> f64 + Send + Sync>>,
    /// Additive term as a function of e (`None`: 0).
    pub(crate) add: Option<fn(i32) -> f64>,
}

/// g(x) by range reduction for x in [2^lo, 2^hi) ([`range`]); result at
/// scale f. Rounds: [`onehot`] + 1 (the tables and x c) + polynomial (4,
/// 5 with `post`: [`cheb::eval`]). Large inputs run as an inner-layer
/// pipeline.
pub(crate) async fn reduced<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    g: &Reduced,
) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    Lanes::new(sess, x)?
        .run(sess, x, |s, x| async move {
            reduced_fx(s, &Fx::new(x.clone(), f), g).await
        })
        .await
}

/// [`reduced`] for an input at its own scale (finer than f for small
/// values): the same exponent range, one more round (a truncation of
/// x c) when the scale is above f.
pub(crate) async fn reduced_fx<R: Ring>(
    sess: &Session,
    x: &Fx<R>,
    g: &Reduced,
) -> Result<Shared<R>> {
    reduced_fx_times(sess, x, g, None).await
}

/// A secret factor of a range-reduced function of each slice of it: the
/// result is v * g(x) with x holding one value per slice of v along
/// `axis` (x of v's shape with that axis of size 1), as in a LayerNorm's
/// (x - mean) gamma / sqrt(var).
pub(crate) struct Times<'a, R: Ring> {
    /// The factor.
    pub(crate) v: &'a Fx<R>,
    /// The axis along which g(x) is repeated to v's shape.
    pub(crate) axis: usize,
    /// |v post(e)| <= bound on the domain (post: [`Reduced::post`], 1
    /// without one).
    pub(crate) bound: f64,
}

/// [`reduced_fx`], the result multiplied by `times` (if given) in the
/// function's own rounds: v post(e) is a Beaver product in the round
/// that truncates x c (or in a round of its own when x is at scale f or
/// below), and the polynomial's product with its factor takes v post(e)
/// in place of post(e) ([`cheb::Mult`] along the axis). Saves the two
/// rounds of a product after the function for about two more elements
/// opened per element of v. Result at scale f, of v's shape.
///
/// Errors: as [`reduced_fx`]; [`Error::Unsupported`] with an additive
/// term ([`Reduced::add`]) and a factor.
pub(crate) async fn reduced_fx_times<R: Ring>(
    sess: &Session,
    x: &Fx<R>,
    g: &Reduced,
    times: Option<Times<'_, R>>,
) -> Result<Shared<R>> {
    if times.is_some() && g.add.is_some() {
        return Err(Error::Unsupported(
            "range reduction with an additive term and a factor (internal)".into(),
        ));
    }
    let f = sess.fixed_point::<R>()?.frac_bits();
    let rg = range::<R>(f)?;
    let h = onehot(sess, &x.v, x.scale, rg).await?;
    // c = 2^-(e+1) at scale s_c (exact integers 2^(s_c - e - 1)), the
    // factor post(e) and the term add(e): one B2A of the one-hot bits.
    let mut tables = vec![table::<R>(rg, |e| (-(e + 1) as f64).exp2(), rg.s_c)?];
    let post = match &g.post {
        None => None,
        Some(post) => {
            let bound = (rg.lo..rg.hi).map(|e| post(e).abs()).fold(0.0, f64::max);
            // The factor at a scale that leaves room for the leaves.
            let s_m = (R::BITS / 2 - 2).saturating_sub(int_bits(bound)).min(f + 4);
            tables.push(table(rg, post.as_ref(), s_m)?);
            Some((bound, s_m))
        }
    };
    if let Some(add) = g.add {
        tables.push(table(rg, add, f)?);
    }
    // x c in the same round as the tables (one injection of x into the
    // one-hot planes weighted by c).
    let c = tables.remove(0);
    let (conv, mut xc) = b2a_weighted_times::<R>(sess, &h, &tables, &x.v, &c).await?;
    let mut conv = conv.into_iter();
    let post = post.map(|(bound, s_m)| (Fx::new(conv.next().expect("post"), s_m), bound));
    // With a factor v and post(e): v post(e), raw, in the next round.
    let post_b = match (&times, &post) {
        (Some(tm), Some((m, _))) => Some(broadcast(sess, &m.v, tm.v.v.shape(), tm.axis)?),
        _ => None,
    };
    let prods: Vec<Prod<'_, R>> = match (&times, &post_b) {
        (Some(tm), Some(mb)) => vec![Prod::Mul(&tm.v.v, mb)],
        _ => vec![],
    };
    // t = 4 x' - 3, x' = x c at scale x.scale + s_c: reinterpret at scale
    // - 2, after bringing it down to a squarable scale if needed.
    let t_max = (R::BITS - 4) / 2;
    let mut ts = x.scale + rg.s_c - 2;
    let lower_xc = ts > t_max;
    let mut vm = None;
    if lower_xc || !prods.is_empty() {
        let truncs = match lower_xc {
            true => vec![(&xc, ts - t_max)],
            false => vec![],
        };
        let (p, t) = round(sess, &prods, &truncs).await?;
        vm = p.into_iter().next();
        if lower_xc {
            xc = t.into_iter().next().expect("x c");
            ts = t_max;
        }
    }
    let t = Fx::new(affine_owned(sess, Fx::new(xc, ts), 1.0, -3.0, ts)?, ts);
    let out = match (times, post) {
        (None, None) => cheb::eval(sess, &t, &g.coeffs, None, f).await?,
        (None, Some((m, bound))) => {
            cheb::eval(sess, &t, &g.coeffs, Some(cheb::Mult::same(&m, bound)), f).await?
        }
        (Some(tm), post) => {
            // The factor: v post(e) (raw, at the sum of the scales), or v.
            let vp;
            let e = match (vm, post) {
                (Some(vm), Some((m, _))) => {
                    vp = Fx::new(vm, tm.v.scale + m.scale);
                    &vp
                }
                _ => tm.v,
            };
            let m = cheb::Mult {
                e,
                bound: tm.bound,
                axis: Some(tm.axis),
                to: Some(f),
            };
            cheb::eval(sess, &t, &g.coeffs, Some(m), f).await?
        }
    };
    match conv.next() {
        None => Ok(out),
        Some(add) => out.add(sess, &add),
    }
}
