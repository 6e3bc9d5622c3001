//! Fused local kernels for the Beaver and truncation steps of
//! [`super::batch`]: one pass over memory where the generic backend ops
//! would take three or four (each allocating). CPU only, rayon-parallel
//! above a size threshold; candidates for [`crate::backend::Backend`] ops
//! once a GPU backend exists.

use rayon::prelude::*;

use crate::ring::{signed, Ring, RingTensor, TruncStep};
use crate::share::{with_elems, Elems, OpenedSlice};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn par(n: usize) -> bool {
    n >= 4 * CHUNK
}

/// a - b (same shapes, checked by the caller's request).
pub(crate) fn sub<R: Ring>(a: &RingTensor<R>, b: &RingTensor<R>) -> RingTensor<R> {
    debug_assert_eq!(a.shape(), b.shape());
    let data: Vec<R> = if par(a.numel()) {
        a.data()
            .par_iter()
            .zip(b.data().par_iter())
            .map(|(x, y)| x.wrapping_sub(*y))
            .collect()
    } else {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| x.wrapping_sub(*y))
            .collect()
    };
    RingTensor::new(a.shape().clone(), data).expect("same numel")
}

/// a = x - a (a Beaver mask becomes the masked value to open, in place).
pub(crate) fn rsub_assign<R: Ring>(a: &mut RingTensor<R>, x: &RingTensor<R>) {
    debug_assert_eq!(a.shape(), x.shape());
    zip1(a.data_mut(), x.data(), |o, v| *o = v.wrapping_sub(*o));
}

/// a += b.
pub(crate) fn add_assign<R: Ring>(a: &mut RingTensor<R>, b: &RingTensor<R>) {
    debug_assert_eq!(a.shape(), b.shape());
    zip1(a.data_mut(), b.data(), |o, v| *o = o.wrapping_add(v));
}

/// a = k a + c.
pub(crate) fn scale_add_assign<R: Ring>(a: &mut RingTensor<R>, k: R, c: R) {
    for_chunks(a.data_mut(), |_, out| {
        out.iter_mut()
            .for_each(|v| *v = v.wrapping_mul(k).wrapping_add(c))
    });
}

/// a += k x + c.
pub(crate) fn add_scaled_assign<R: Ring>(a: &mut RingTensor<R>, x: &RingTensor<R>, k: R, c: R) {
    debug_assert_eq!(a.shape(), x.shape());
    zip1(a.data_mut(), x.data(), |o, v| {
        *o = o.wrapping_add(v.wrapping_mul(k)).wrapping_add(c)
    });
}

/// r += x + bias.
pub(crate) fn add_assign_biased<R: Ring>(r: &mut RingTensor<R>, x: &RingTensor<R>, bias: R) {
    debug_assert_eq!(r.shape(), x.shape());
    zip1(r.data_mut(), x.data(), |o, v| {
        *o = o.wrapping_add(v).wrapping_add(bias)
    });
}

/// c += e * b + x * f, with the opened e and f summed as they are read.
pub(crate) fn beaver_mul_combine<R: Ring>(
    c: &mut RingTensor<R>,
    e: OpenedSlice<'_, R>,
    b: &RingTensor<R>,
    x: &RingTensor<R>,
    f: OpenedSlice<'_, R>,
) {
    let (b, x) = (b.data(), x.data());
    with_elems!(e, e => with_elems!(f, f => for_chunks(c.data_mut(), |i0, out| {
        let n = out.len();
        let (e, b, x, f) = (e.chunk(i0, n), at(b, i0, n), at(x, i0, n), f.chunk(i0, n));
        for i in 0..n {
            out[i] = out[i]
                .wrapping_add(e.elem(i).wrapping_mul(b[i]))
                .wrapping_add(x[i].wrapping_mul(f.elem(i)));
        }
    })))
}

/// c += 2 e x - [party0] e^2: this party's share of x^2 from a square
/// pair (a, c = a^2) and the opened e = x - a (the sum over parties is
/// a^2 + 2 e x - e^2 = x^2, so the mask a itself is not needed).
pub(crate) fn beaver_sq_combine<R: Ring>(
    c: &mut RingTensor<R>,
    e: OpenedSlice<'_, R>,
    x: &RingTensor<R>,
    party0: bool,
) {
    let one = R::from_u64(u64::from(party0));
    let x = x.data();
    with_elems!(e, e => for_chunks(c.data_mut(), |i0, out| {
        let n = out.len();
        let (e, x) = (e.chunk(i0, n), at(x, i0, n));
        for i in 0..n {
            let e = e.elem(i);
            let t = x[i].shl(1).wrapping_sub(e.wrapping_mul(one));
            out[i] = out[i].wrapping_add(e.wrapping_mul(t));
        }
    }))
}

/// out = sum_i k_i * x_i + c (party 0 adds c): an exact integer linear
/// combination of shares, in one pass.
pub(crate) fn lincomb<R: Ring>(terms: &[(&RingTensor<R>, R)], c: R, len: usize) -> Vec<R> {
    // The slices once, outside the per-element loop.
    let slices: Vec<(&[R], R)> = terms.iter().map(|(x, k)| (x.data(), *k)).collect();
    let at = |i: usize| {
        slices
            .iter()
            .fold(c, |acc, (x, k)| acc.wrapping_add(x[i].wrapping_mul(*k)))
    };
    match terms {
        [(x, k)] => {
            let f = |v: &R| v.wrapping_mul(*k).wrapping_add(c);
            if par(len) {
                x.data().par_iter().map(f).collect()
            } else {
                x.data().iter().map(f).collect()
            }
        }
        _ if par(len) => (0..len).into_par_iter().map(at).collect(),
        _ => (0..len).map(at).collect(),
    }
}

fn zip1<R: Ring>(out: &mut [R], b: &[R], f: impl Fn(&mut R, R) + Sync) {
    if par(out.len()) {
        out.par_chunks_mut(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .for_each(|(o, y)| o.iter_mut().zip(y).for_each(|(o, y)| f(o, *y)));
    } else {
        out.iter_mut().zip(b).for_each(|(o, y)| f(o, *y));
    }
}

/// A truncation output v = P + L as one party sees it after the opening:
/// the opened c, this party's shares of r' and r_msb, and the shift
/// ([`crate::protocol::trunc`]: P is public, L = -r' + s 2^(k-1-f) r_msb
/// with s = 1 - 2 c_msb).
pub(crate) struct TruncView<'a, R: Ring> {
    pub(crate) c: OpenedSlice<'a, R>,
    pub(crate) r_shifted: &'a [R],
    pub(crate) r_msb: &'a [R],
    pub(crate) bits: u32,
}

/// 2^e in Z_2^k (0 when e >= k).
fn pow2<R: Ring>(e: u32) -> R {
    if e >= R::BITS {
        R::ZERO
    } else {
        R::ONE.shl(e)
    }
}

/// Runs `body(offset, chunk)` over chunks of `out`, rayon-parallel above
/// the size threshold.
fn for_chunks<R: Ring>(out: &mut [R], body: impl Fn(usize, &mut [R]) + Sync + Send) {
    if par(out.len()) {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, o)| body(c * CHUNK, o));
    } else {
        out.chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, o)| body(c * CHUNK, o));
    }
}

/// `x[i0..i0 + len]` (every input of a chunk has the chunk's length, so
/// the inner loops carry no bounds checks).
#[inline(always)]
fn at<R>(x: &[R], i0: usize, len: usize) -> &[R] {
    &x[i0..i0 + len]
}

/// This party's share of v^2 for a truncation output v, on the elements
/// from i0 on that `out` covers, written over the dealer's shares of r'^2
/// (`out`) with those of r' r_msb (`rm`):
/// v^2 = P^2 + 2 P L + L^2 with L^2 = r'^2 - 2 s 2^u r' r_msb + 2^(2u)
/// r_msb (u = k - 1 - f; r_msb is a bit). Party 0 adds P^2.
fn square_block<R: Ring>(
    sq: &SquareConsts<R>,
    v: &TruncView<'_, R>,
    i0: usize,
    out: &mut [R],
    rm: &[R],
) {
    let n = out.len();
    let (rs, ms, rm) = (at(v.r_shifted, i0, n), at(v.r_msb, i0, n), at(rm, i0, n));
    with_elems!(v.c, c => {
        let c = c.chunk(i0, n);
        for i in 0..n {
            out[i] = sq.at(c.elem(i), rs[i], ms[i], out[i], rm[i]);
        }
    })
}

/// One product of a truncation group for [`group_products`]: the pair of
/// views (i, j), i <= j, and the dealer shares besides r'_i r'_j (the
/// output buffer): `[r'_i r_msb_i]` for a square, `[r'_i r_msb_j, r_msb_i
/// r'_j, r_msb_i r_msb_j]` otherwise.
pub(crate) struct GroupProduct<'a, R> {
    pub(crate) pair: (usize, usize),
    pub(crate) corr: Vec<&'a [R]>,
}

/// Every product of a truncation group ([`square_block`] for i == j,
/// [`product_block`] otherwise), each written over its r'_i r'_j in
/// `outs`, block by block of elements: a view that takes part in several
/// products is read from memory once per block and from the cache after
/// that (T_2 at the second level of a degree-7 polynomial is in three).
pub(crate) fn group_products<R: Ring>(
    views: &[TruncView<'_, R>],
    prods: &[GroupProduct<'_, R>],
    outs: Vec<&mut [R]>,
    party0: bool,
) {
    debug_assert_eq!(prods.len(), outs.len());
    let Some(len) = outs.first().map(|o| o.len()) else {
        return;
    };
    let mut blocks: Vec<Vec<&mut [R]>> = (0..len.div_ceil(CHUNK))
        .map(|_| Vec::with_capacity(outs.len()))
        .collect();
    for out in outs {
        for (b, piece) in out.chunks_mut(CHUNK).enumerate() {
            blocks[b].push(piece);
        }
    }
    let body = |(b, outs): (usize, Vec<&mut [R]>)| {
        for (p, out) in prods.iter().zip(outs) {
            let (i, j) = p.pair;
            match p.corr[..] {
                [rm] => square_block(
                    &SquareConsts::new(views[i].bits, party0),
                    &views[i],
                    b * CHUNK,
                    out,
                    rm,
                ),
                [rm, mr, mm] => {
                    product_block(&views[i], &views[j], b * CHUNK, out, [rm, mr, mm], party0)
                }
                _ => unreachable!("1 or 3 shares per product, counted by the caller"),
            }
        }
    };
    if par(len) {
        blocks.into_par_iter().enumerate().for_each(body);
    } else {
        blocks.into_iter().enumerate().for_each(body);
    }
}

/// [`square_block`] masked for its next truncation in the same pass:
/// `next` (the next truncation's mask r) += v^2 + `bias`, for a square
/// that is used for nothing but that opening (v^2 is never written
/// out: one pass over memory fewer than the square and then the mask).
pub(crate) fn trunc_square_masked<R: Ring>(
    v: &TruncView<'_, R>,
    rr: &[R],
    rm: &[R],
    next: &mut [R],
    bias: R,
    party0: bool,
) {
    let sq = SquareConsts::new(v.bits, party0);
    with_elems!(v.c, c => for_chunks(next, |i0, out| {
        let n = out.len();
        let (c, rs, ms, rr, rm) = (
            c.chunk(i0, n),
            at(v.r_shifted, i0, n),
            at(v.r_msb, i0, n),
            at(rr, i0, n),
            at(rm, i0, n),
        );
        for i in 0..n {
            let s = sq.at(c.elem(i), rs[i], ms[i], rr[i], rm[i]);
            out[i] = out[i].wrapping_add(s).wrapping_add(bias);
        }
    }))
}

/// The loop-invariant constants of [`square_block`].
#[derive(Clone, Copy)]
struct SquareConsts<R> {
    k: TruncStep<R>,
    /// 2^(u + 1) and 2^(2u), u = k - 1 - f.
    u1: R,
    two_u: R,
    /// 1 at party 0, else 0.
    one: R,
}

impl<R: Ring> SquareConsts<R> {
    fn new(bits: u32, party0: bool) -> Self {
        let k = TruncStep::<R>::new(bits);
        SquareConsts {
            k,
            u1: pow2::<R>(k.top + 1),
            two_u: pow2::<R>(2 * k.top),
            one: R::from_u64(u64::from(party0)),
        }
    }

    /// This party's share of v^2 from the opened c and its shares of r',
    /// r_msb, r'^2 and r' r_msb.
    #[inline(always)]
    fn at(&self, c: R, rs: R, ms: R, rr: R, rm: R) -> R {
        let (p, neg, l) = self.k.at(c, rs, ms);
        let ll = rr
            .wrapping_sub(signed(rm.wrapping_mul(self.u1), neg))
            .wrapping_add(ms.wrapping_mul(self.two_u));
        ll.wrapping_add(p.wrapping_mul(l.shl(1)))
            .wrapping_add(p.wrapping_mul(p).wrapping_mul(self.one))
    }
}

/// This party's share of v_a v_b for two truncation outputs of one round
/// on elements i0..i0 + out.len(), written over the dealer's shares of
/// r'_a r'_b (`out`), with
/// those of r'_a m_b, m_a r'_b and m_a m_b (`corr`, in that order; m =
/// r_msb): v_a v_b is P_a P_b + P_a L_b + P_b L_a + L_a L_b, each L_a L_b
/// term a dealer product with a public sign and power of two. Party 0 adds
/// P_a P_b.
fn product_block<R: Ring>(
    a: &TruncView<'_, R>,
    b: &TruncView<'_, R>,
    i0: usize,
    out: &mut [R],
    corr: [&[R]; 3],
    party0: bool,
) {
    with_elems!(a.c, ca => with_elems!(b.c, cb => product_block_with(ca, cb, a, b, i0, out, corr, party0)))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn product_block_with<R: Ring>(
    ca: impl Elems<R>,
    cb: impl Elems<R>,
    a: &TruncView<'_, R>,
    b: &TruncView<'_, R>,
    i0: usize,
    out: &mut [R],
    corr: [&[R]; 3],
    party0: bool,
) {
    let (ka, kb) = (TruncStep::<R>::new(a.bits), TruncStep::<R>::new(b.bits));
    let (ua, ub) = (ka.top, kb.top);
    let (uab, one) = (pow2::<R>(ua + ub), R::from_u64(u64::from(party0)));
    let n = out.len();
    let (ca, rsa, msa) = (ca.chunk(i0, n), at(a.r_shifted, i0, n), at(a.r_msb, i0, n));
    let (cb, rsb, msb) = (cb.chunk(i0, n), at(b.r_shifted, i0, n), at(b.r_msb, i0, n));
    let (rm, mr, mm) = (at(corr[0], i0, n), at(corr[1], i0, n), at(corr[2], i0, n));
    for i in 0..n {
        let (pa, na, la) = ka.at(ca.elem(i), rsa[i], msa[i]);
        let (pb, nb, lb) = kb.at(cb.elem(i), rsb[i], msb[i]);
        let ll = out[i]
            .wrapping_sub(signed(rm[i].shl(ub), nb))
            .wrapping_sub(signed(mr[i].shl(ua), na))
            .wrapping_add(signed(mm[i].wrapping_mul(uab), na ^ nb));
        out[i] = ll
            .wrapping_add(pa.wrapping_mul(lb))
            .wrapping_add(pb.wrapping_mul(la))
            .wrapping_add(pa.wrapping_mul(pb).wrapping_mul(one));
    }
}

/// This party's share of the truncation output v = [party0] P + L
/// ([`TruncView`]), written over its share of r' (`r_shifted`), from the
/// opened c (summed as it is read) and its share of r_msb: the local step
/// of [`crate::backend::Backend::trunc_combine_into`] on the CPU.
pub(crate) fn trunc_value<R: Ring>(
    c: OpenedSlice<'_, R>,
    r_shifted: &mut [R],
    r_msb: &[R],
    bits: u32,
    party0: bool,
) {
    let k = TruncStep::<R>::new(bits);
    let one = R::from_u64(u64::from(party0));
    with_elems!(c, c => for_chunks(r_shifted, |i0, out| {
        let n = out.len();
        let (c, ms) = (c.chunk(i0, n), at(r_msb, i0, n));
        for i in 0..n {
            let (p, _, l) = k.at(c.elem(i), out[i], ms[i]);
            out[i] = l.wrapping_add(p.wrapping_mul(one));
        }
    }))
}

/// The local step of [`crate::protocol::convert::b2a_weighted`]: with the
/// opened words e = b ^ s and this party's arithmetic daBit shares
/// `s_arith` (bit i of plane j at j * 64 * words + i), returns for each
/// weight vector w the shares sum_j w[j] * ([one] e + (1 - 2e) [s]) of the
/// n values; `one` is 1 at party 0 and 0 elsewhere. One pass over the
/// daBits, all outputs accumulated per chunk of values (branch-free, so
/// the inner loop vectorizes; up to 3 outputs unrolled).
pub(crate) fn dabit_linear<R: Ring>(
    e: &[u64],
    s_arith: &[R],
    one: R,
    weights: &[Vec<R>],
    n: usize,
    words: usize,
) -> Vec<Vec<R>> {
    let d = Dabits {
        e,
        s_arith,
        one,
        n,
        words,
        planes: weights.first().map_or(0, Vec::len),
    };
    match weights {
        [a] => Vec::from(d.linear([a])),
        [a, b] => Vec::from(d.linear([a, b])),
        [a, b, c] => Vec::from(d.linear([a, b, c])),
        _ => weights.iter().flat_map(|w| d.linear([w])).collect(),
    }
}

/// Values i0..i1 (i0 a multiple of 64) of [`Dabits::linear`]. Compiled
/// for AVX-512 and AVX2 as well, picked at run time: the multiply-adds by
/// the weights are the bulk of the work, and wide u64 multiplies need
/// AVX-512 (the baseline x86-64 target has none).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2",
    "aarch64+neon"
))]
#[allow(clippy::needless_range_loop)] // j indexes three arrays
fn dabit_chunk<R: Ring, const O: usize>(
    d: &Dabits<'_, R>,
    w: [&[R]; O],
    i0: usize,
    i1: usize,
) -> [Vec<R>; O] {
    let mut acc: [Vec<R>; O] = std::array::from_fn(|_| vec![R::ZERO; i1 - i0]);
    // Plane j: its weights, its daBits and its opened words.
    for j in 0..d.planes {
        let wj: [R; O] = std::array::from_fn(|o| w[o][j]);
        let base = j * 64 * d.words;
        let s = &d.s_arith[base + i0..base + i1];
        // i0 is a multiple of 64: word i0 / 64 holds bit i0.
        let ew = &d.e[j * d.words + i0 / 64..(j + 1) * d.words];
        let mut b = [R::ZERO; 64];
        for (blk, (sb, &bits)) in s.chunks(64).zip(ew).enumerate() {
            for (t, (bt, &sv)) in b.iter_mut().zip(sb).enumerate() {
                let m = R::from_u64(((bits >> t) & 1).wrapping_neg());
                *bt = (sv ^ m).wrapping_sub(m).wrapping_add(d.one & m);
            }
            for (a, wo) in acc.iter_mut().zip(wj) {
                let a = &mut a[blk * 64..blk * 64 + sb.len()];
                for (av, bv) in a.iter_mut().zip(&b) {
                    *av = av.wrapping_add(wo.wrapping_mul(*bv));
                }
            }
        }
    }
    acc
}

/// Opened daBit words and this party's arithmetic daBit shares.
struct Dabits<'a, R> {
    e: &'a [u64],
    s_arith: &'a [R],
    one: R,
    n: usize,
    words: usize,
    planes: usize,
}

impl<R: Ring> Dabits<'_, R> {
    /// O weighted sums of the n values.
    fn linear<const O: usize>(&self, w: [&Vec<R>; O]) -> [Vec<R>; O] {
        let len = self.n;
        let w: [&[R]; O] = std::array::from_fn(|o| &w[o][..]);
        let chunk = |c: usize| -> [Vec<R>; O] {
            let (i0, i1) = (c * CHUNK, ((c + 1) * CHUNK).min(len));
            dabit_chunk(self, w, i0, i1)
        };
        let parts: Vec<[Vec<R>; O]> = if par(len) {
            (0..len.div_ceil(CHUNK))
                .into_par_iter()
                .map(chunk)
                .collect()
        } else {
            (0..len.div_ceil(CHUNK)).map(chunk).collect()
        };
        std::array::from_fn(|o| {
            let mut out = Vec::with_capacity(len);
            parts.iter().for_each(|p| out.extend_from_slice(&p[o]));
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::{Prg, Seed};

    fn random(len: usize, stream: u64) -> Vec<u64> {
        let mut v = vec![0u64; len];
        Prg::new(&Seed([4; 16]), stream).fill(&mut v);
        v
    }

    /// group_products, block by block (in sequence and with rayon), equals
    /// each product formed over the whole length at once, with views whose
    /// opened values are kept as parts and as sums.
    #[test]
    fn group_products_match_products_formed_one_by_one() {
        for len in [3 * CHUNK + 5, 4 * CHUNK + 7] {
            let data: Vec<Vec<u64>> = (0..16).map(|s| random(len, s)).collect();
            let views = [
                TruncView {
                    c: OpenedSlice::Parts(&data[0], &data[1]),
                    r_shifted: &data[2],
                    r_msb: &data[3],
                    bits: 20,
                },
                TruncView {
                    c: OpenedSlice::Sum(&data[4]),
                    r_shifted: &data[5],
                    r_msb: &data[6],
                    bits: 13,
                },
            ];
            let prods = [
                GroupProduct {
                    pair: (0, 0),
                    corr: vec![&data[7][..]],
                },
                GroupProduct {
                    pair: (0, 1),
                    corr: vec![&data[8][..], &data[9], &data[10]],
                },
                GroupProduct {
                    pair: (1, 1),
                    corr: vec![&data[11][..]],
                },
            ];
            for party0 in [true, false] {
                let mut outs = vec![data[12].clone(), data[13].clone(), data[14].clone()];
                group_products(
                    &views,
                    &prods,
                    outs.iter_mut().map(|o| &mut o[..]).collect(),
                    party0,
                );
                let mut want = vec![data[12].clone(), data[13].clone(), data[14].clone()];
                let sq = |v: &TruncView<'_, u64>| SquareConsts::new(v.bits, party0);
                square_block(&sq(&views[0]), &views[0], 0, &mut want[0], &data[7]);
                let c3 = [&data[8][..], &data[9], &data[10]];
                product_block(&views[0], &views[1], 0, &mut want[1], c3, party0);
                square_block(&sq(&views[1]), &views[1], 0, &mut want[2], &data[11]);
                assert!(outs == want, "{len} elements, party 0: {party0}");
            }
        }
    }
}
