//! The CPU backend's fused MPC steps ([`MpcSteps`]): one pass over memory
//! where the generic backend ops would take three or four (each
//! allocating), rayon-parallel above a size threshold.

use rayon::prelude::*;

use super::CpuBackend;
use crate::backend::steps::{
    check_b2a, check_bits, check_inject, check_products, check_shape, pow2, TruncParts,
    TruncProduct,
};
use crate::backend::MpcSteps;
use crate::error::Result;
use crate::ring::{
    signed, with_elems, Elems, Opened, OpenedSlice, Ring, RingTensor, Shape, TruncStep,
};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn par(n: usize) -> bool {
    n >= 4 * CHUNK
}

/// a = x - a (a Beaver mask becomes the masked value to open, in place).
fn rsub_assign<R: Ring>(a: &mut RingTensor<R>, x: &RingTensor<R>) {
    debug_assert_eq!(a.shape(), x.shape());
    zip1(a.data_mut(), x.data(), |o, v| *o = v.wrapping_sub(*o));
}

/// a = k a + c.
fn scale_add_assign<R: Ring>(a: &mut RingTensor<R>, k: R, c: R) {
    for_chunks(a.data_mut(), |_, out| {
        out.iter_mut()
            .for_each(|v| *v = v.wrapping_mul(k).wrapping_add(c))
    });
}

/// a += k x + c.
fn add_scaled_assign<R: Ring>(a: &mut RingTensor<R>, x: &RingTensor<R>, k: R, c: R) {
    debug_assert_eq!(a.shape(), x.shape());
    zip1(a.data_mut(), x.data(), |o, v| {
        *o = o.wrapping_add(v.wrapping_mul(k)).wrapping_add(c)
    });
}

/// r += x + bias.
fn add_assign_biased<R: Ring>(r: &mut RingTensor<R>, x: &RingTensor<R>, bias: R) {
    debug_assert_eq!(r.shape(), x.shape());
    zip1(r.data_mut(), x.data(), |o, v| {
        *o = o.wrapping_add(v).wrapping_add(bias)
    });
}

/// c += e * b + x * f, with the opened e and f summed as they are read.
fn mul_combine_slice<R: Ring>(
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
fn sq_combine_slice<R: Ring>(
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
fn lincomb_vec<R: Ring>(terms: &[(&RingTensor<R>, R)], c: R, len: usize) -> Vec<R> {
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
struct TruncView<'a, R: Ring> {
    c: OpenedSlice<'a, R>,
    r_shifted: &'a [R],
    r_msb: &'a [R],
    bits: u32,
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
struct GroupProduct<'a, R> {
    pair: (usize, usize),
    corr: Vec<&'a [R]>,
}

/// Every product of a truncation group ([`square_block`] for i == j,
/// [`product_block`] otherwise), each written over its r'_i r'_j in
/// `outs`, block by block of elements: a view that takes part in several
/// products is read from memory once per block and from the cache after
/// that (T_2 at the second level of a degree-7 polynomial is in three).
fn group_products<R: Ring>(
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
fn square_masked_slice<R: Ring>(
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
/// of [`MpcSteps::trunc_value`] on the CPU.
fn trunc_value_slice<R: Ring>(
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

/// The kernels' view of one truncation (shapes checked by the caller).
fn view<'a, R: Ring>(v: &TruncParts<'a, R>) -> TruncView<'a, R> {
    TruncView {
        c: v.c.elems(),
        r_shifted: v.r_shifted.data(),
        r_msb: v.r_msb.data(),
        bits: v.bits,
    }
}

/// Every tensor of `ts` has `shape`.
fn same<R: Ring>(shape: &Shape, ts: &[&RingTensor<R>], op: &'static str) -> Result<()> {
    ts.iter().try_for_each(|t| check_shape(t, shape, op))
}

impl MpcSteps for CpuBackend {
    fn mask<R: Ring>(
        &self,
        mut r: RingTensor<R>,
        x: &RingTensor<R>,
        bias: R,
    ) -> Result<RingTensor<R>> {
        same(r.shape(), &[x], "mask")?;
        add_assign_biased(&mut r, x, bias);
        Ok(r)
    }
    fn rsub<R: Ring>(&self, mut a: RingTensor<R>, x: &RingTensor<R>) -> Result<RingTensor<R>> {
        same(a.shape(), &[x], "masked difference")?;
        rsub_assign(&mut a, x);
        Ok(a)
    }
    fn scale_add<R: Ring>(&self, mut a: RingTensor<R>, k: R, c: R) -> Result<RingTensor<R>> {
        scale_add_assign(&mut a, k, c);
        Ok(a)
    }
    fn add_scaled<R: Ring>(
        &self,
        mut acc: RingTensor<R>,
        x: &RingTensor<R>,
        k: R,
        c: R,
    ) -> Result<RingTensor<R>> {
        same(acc.shape(), &[x], "affine map")?;
        add_scaled_assign(&mut acc, x, k, c);
        Ok(acc)
    }
    fn lincomb<R: Ring>(
        &self,
        terms: &[(&RingTensor<R>, R)],
        c: R,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        if terms.is_empty() {
            return Ok(RingTensor::full(shape.clone(), c));
        }
        for (t, _) in terms {
            check_shape(t, shape, "linear combination")?;
        }
        Ok(RingTensor::new(
            shape.clone(),
            lincomb_vec(terms, c, shape.numel()),
        )?)
    }
    fn beaver_mul_opened<R: Ring>(
        &self,
        mut c: RingTensor<R>,
        e: &Opened<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &Opened<R>,
    ) -> Result<RingTensor<R>> {
        same(e.shape(), &[&c, b, x], "Beaver product")?;
        same(f.shape(), &[&c], "Beaver product")?;
        mul_combine_slice(&mut c, e.elems(), b, x, f.elems());
        Ok(c)
    }
    fn beaver_sq_combine<R: Ring>(
        &self,
        mut c: RingTensor<R>,
        e: &Opened<R>,
        x: &RingTensor<R>,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        same(e.shape(), &[&c, x], "square")?;
        sq_combine_slice(&mut c, e.elems(), x, party0);
        Ok(c)
    }
    fn trunc_value<R: Ring>(
        &self,
        c: &Opened<R>,
        mut r_shifted: RingTensor<R>,
        r_msb: &RingTensor<R>,
        bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        same(c.shape(), &[&r_shifted, r_msb], "truncation")?;
        check_bits::<R>(bits)?;
        trunc_value_slice(c.elems(), r_shifted.data_mut(), r_msb.data(), bits, party0);
        Ok(r_shifted)
    }
    fn trunc_products<R: Ring>(
        &self,
        views: &[TruncParts<'_, R>],
        prods: &[TruncProduct<'_, R>],
        mut outs: Vec<RingTensor<R>>,
        party0: bool,
    ) -> Result<Vec<RingTensor<R>>> {
        check_products(views, prods, &outs)?;
        let tv: Vec<TruncView<'_, R>> = views.iter().map(view).collect();
        let gp: Vec<GroupProduct<'_, R>> = prods
            .iter()
            .map(|p| GroupProduct {
                pair: p.pair,
                corr: p.corr.iter().map(|t| t.data()).collect(),
            })
            .collect();
        group_products(
            &tv,
            &gp,
            outs.iter_mut().map(|t| t.data_mut()).collect(),
            party0,
        );
        Ok(outs)
    }
    fn trunc_square_masked<R: Ring>(
        &self,
        v: &TruncParts<'_, R>,
        rr: &RingTensor<R>,
        rm: &RingTensor<R>,
        mut next: RingTensor<R>,
        bias: R,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        same(
            v.c.shape(),
            &[v.r_shifted, v.r_msb, rr, rm, &next],
            "masked square",
        )?;
        check_bits::<R>(v.bits)?;
        square_masked_slice(
            &view(v),
            rr.data(),
            rm.data(),
            next.data_mut(),
            bias,
            party0,
        );
        Ok(next)
    }
    fn inject_combine<R: Ring>(
        &self,
        x: &RingTensor<R>,
        c: &RingTensor<R>,
        s: &RingTensor<R>,
        d: &RingTensor<R>,
        e: &[u64],
        party0: bool,
    ) -> Result<[RingTensor<R>; 2]> {
        let width = check_inject(x, c, s, d, e)?;
        let n = s.numel();
        let mut xb = vec![R::ZERO; x.numel()];
        let mut bits = vec![R::ZERO; n];
        let (x_i, s_arith, c, d) = (x.data(), s.data(), c.data(), d.data());
        for (i, b) in bits.iter_mut().enumerate() {
            let s = s_arith[i];
            let ei = (e[i / 64] >> (i % 64)) & 1 == 1;
            // [b] = e + s - 2 e s
            *b = if ei {
                let v = s.wrapping_neg();
                if party0 {
                    v.wrapping_add(R::ONE)
                } else {
                    v
                }
            } else {
                s
            };
            for j in i * width..(i + 1) * width {
                // [x s] = c + d [s]; [x b] = e x + (1 - 2e) [x s]
                let xs = c[j].wrapping_add(d[j].wrapping_mul(s));
                xb[j] = if ei { x_i[j].wrapping_sub(xs) } else { xs };
            }
        }
        Ok([
            RingTensor::new(x.shape().clone(), xb)?,
            RingTensor::new([n], bits)?,
        ])
    }
    fn b2a_combine<R: Ring>(
        &self,
        e: &[u64],
        s: &RingTensor<R>,
        weights: &[Vec<R>],
        n: usize,
        words: usize,
        party0: bool,
    ) -> Result<Vec<RingTensor<R>>> {
        check_b2a(e, s, weights, n, words)?;
        let one = if party0 { R::ONE } else { R::ZERO };
        super::dabit::dabit_linear(e, s.data(), one, weights, n, words)
            .into_iter()
            .map(|o| Ok(RingTensor::new([n], o)?))
            .collect()
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
