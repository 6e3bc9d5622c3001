//! The binary family of fused MPC steps ([`super::MpcSteps`]): the local
//! steps of the bit-sliced carry circuit of MSB/DReLU (Escudero et al.,
//! CRYPTO 2020, with the (G, P) prefix tree of Falcon and Piranha;
//! [`crate::protocol::compare::msb_bounded`]) on words of XOR shares.
//!
//! Layout (as `kernels/carry.cu`): a tensor of u64 words [planes * words],
//! plane-major; G and P hold one plane per tree node, node 0 (the group
//! holding bit 0) has no P (its plane is kept zero). The ANDs of a level
//! are ordered pair by pair: pair i (nodes 2i, 2i + 1) has P_hi & G_lo at
//! index 0 for i = 0 and 2i - 1 otherwise, and P_hi & P_lo at 2i (i >= 1).
//!
//! This file holds the host loops: the CPU backend's implementation and
//! the steps' defaults; the CUDA backend launches `kernels/carry.cu`, the
//! audit backend runs these loops on its simulated device memory.

use crate::error::{Error, Result};
use crate::ring::RingTensor;

/// Words of a tensor, checked to be `want` long.
fn checked<'a>(t: &'a RingTensor<u64>, want: usize, what: &'static str) -> Result<&'a [u64]> {
    check_len(t, want, what)?;
    Ok(t.try_data()?)
}

/// `t` holds `want` words (the checks the CUDA launches share).
///
/// Errors: [`Error::ShapeMismatch`].
pub(crate) fn check_len(t: &RingTensor<u64>, want: usize, what: &'static str) -> Result<()> {
    if t.numel() != want {
        return Err(Error::shape(
            what,
            format!("{} words, expected {want}", t.numel()),
        ));
    }
    Ok(())
}

/// The carry tree's leaves need bits >= 2 planes of `words` words of c
/// and of r.
///
/// Errors: [`Error::ShapeMismatch`].
pub(crate) fn check_leaves(
    c: &RingTensor<u64>,
    r: &RingTensor<u64>,
    bits: usize,
    words: usize,
) -> Result<()> {
    if bits < 2 || c.numel() < bits * words || r.numel() < bits * words {
        return Err(Error::shape(
            "carry leaves",
            format!(
                "{bits} bit planes of {words} words from {} and {} words",
                c.numel(),
                r.numel()
            ),
        ));
    }
    Ok(())
}

/// Words of an opened value, checked to be `want` long.
fn opened(v: &[u64], want: usize, what: &'static str) -> Result<()> {
    if v.len() != want {
        return Err(Error::shape(
            what,
            format!("{} opened words, expected {want}", v.len()),
        ));
    }
    Ok(())
}

/// All ones at party 0, zero elsewhere.
pub(crate) fn p0mask(party0: bool) -> u64 {
    if party0 {
        u64::MAX
    } else {
        0
    }
}

/// The leaves of the carry tree over bit positions 0..bits-1 (bits >= 2)
/// from the public bit planes of c (`c` [>= bits planes]) and this party's
/// shares of r's bits (`r` [>= bits planes]): with NOT r = r ^ [party 0],
/// g_j = c_j & NOT r_j and p_j = c_j ^ NOT r_j; node 0 = (g_0 ^ p_0, no
/// P: bit 0 with the carry-in of 1), node j = (g_j, p_j) for 1 <= j <=
/// bits - 2, and top = p_(bits-1). Returns (G, P) [bits - 1 planes] and
/// top [1 plane].
///
/// Errors: [`Error::ShapeMismatch`] for planes shorter than `bits`.
pub(crate) fn carry_leaves_host(
    c: &RingTensor<u64>,
    r: &RingTensor<u64>,
    bits: usize,
    words: usize,
    party0: bool,
) -> Result<[RingTensor<u64>; 3]> {
    check_leaves(c, r, bits, words)?;
    let (c, r) = (c.try_data()?, r.try_data()?);
    let flip = p0mask(party0);
    let nodes = bits - 1;
    let mut g = vec![0u64; nodes * words];
    let mut p = vec![0u64; nodes * words];
    let mut top = vec![0u64; words];
    // Plane by plane over word slices (no index arithmetic per word).
    for j in 0..bits {
        let (cj, rj) = (
            &c[j * words..(j + 1) * words],
            &r[j * words..(j + 1) * words],
        );
        let gv = |(cv, rv): (&u64, &u64)| cv & (rv ^ flip);
        let pv = |(cv, rv): (&u64, &u64)| (cv & flip) ^ rv ^ flip;
        if j == 0 {
            let g0 = &mut g[..words];
            for (o, cr) in g0.iter_mut().zip(cj.iter().zip(rj)) {
                *o = gv(cr) ^ pv(cr);
            }
        } else if j < nodes {
            let pair = cj.iter().zip(rj);
            let (gj, pj) = (
                &mut g[j * words..(j + 1) * words],
                &mut p[j * words..(j + 1) * words],
            );
            for ((go, po), cr) in gj.iter_mut().zip(pj.iter_mut()).zip(pair) {
                *go = gv(cr);
                *po = pv(cr);
            }
        } else {
            for (o, cr) in top.iter_mut().zip(cj.iter().zip(rj)) {
                *o = pv(cr);
            }
        }
    }
    Ok([
        RingTensor::new([nodes * words], g)?,
        RingTensor::new([nodes * words], p)?,
        RingTensor::new([words], top)?,
    ])
}

/// ANDs of one level of `nodes` nodes: 2 * (nodes / 2) - 1 (0 for one node).
pub fn level_ands(nodes: usize) -> usize {
    let pairs = nodes / 2;
    if pairs == 0 {
        0
    } else {
        2 * pairs - 1
    }
}

/// The masked inputs of one level's ANDs: e[t] = P_hi ^ a[t] and
/// f[t] = (G_lo or P_lo) ^ b[t] for the [`level_ands`] ANDs of `nodes`
/// nodes, with this party's binary triple shares a, b [ands * words].
///
/// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
pub(crate) fn carry_level_mask_host(
    g: &RingTensor<u64>,
    p: &RingTensor<u64>,
    a: &RingTensor<u64>,
    b: &RingTensor<u64>,
    nodes: usize,
    words: usize,
) -> Result<[RingTensor<u64>; 2]> {
    let ands = level_ands(nodes);
    let what = "carry level";
    let (g, p) = (
        checked(g, nodes * words, what)?,
        checked(p, nodes * words, what)?,
    );
    let (a, b) = (
        checked(a, ands * words, what)?,
        checked(b, ands * words, what)?,
    );
    let mut e = vec![0u64; ands * words];
    let mut f = vec![0u64; ands * words];
    for t in 0..ands {
        // AND t: P_hi & G_lo for t = 0 or odd t, P_hi & P_lo for even t > 0.
        let lo = 2 * t.div_ceil(2);
        let hi = lo + 1;
        let x = &p[hi * words..(hi + 1) * words];
        let y = if t > 0 && t % 2 == 0 { p } else { g };
        let y = &y[lo * words..(lo + 1) * words];
        let r = t * words..(t + 1) * words;
        let (et, ft) = (&mut e[r.clone()], &mut f[r.clone()]);
        let (at, bt) = (&a[r.clone()], &b[r]);
        for i in 0..words {
            et[i] = x[i] ^ at[i];
            ft[i] = y[i] ^ bt[i];
        }
    }
    Ok([
        RingTensor::new([ands * words], e)?,
        RingTensor::new([ands * words], f)?,
    ])
}

/// The next level, ceil(nodes / 2) nodes, from the opened e, f [ands *
/// words] and this party's triple shares a, b, c: node i < nodes / 2 is
/// (G_hi ^ (P_hi & G_lo), P_hi & P_lo), with no P for i = 0; an odd last
/// node is carried over. Each AND is c ^ (e & b) ^ (f & a) ^ (e & f &
/// [party 0]) (Beaver over GF(2), `protocol/bitwise.rs`).
///
/// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
#[allow(clippy::too_many_arguments)]
pub(crate) fn carry_level_combine_host(
    g: &RingTensor<u64>,
    p: &RingTensor<u64>,
    e: &[u64],
    f: &[u64],
    abc: [&RingTensor<u64>; 3],
    nodes: usize,
    words: usize,
    party0: bool,
) -> Result<[RingTensor<u64>; 2]> {
    let ands = level_ands(nodes);
    let what = "carry level";
    let (g, p) = (
        checked(g, nodes * words, what)?,
        checked(p, nodes * words, what)?,
    );
    opened(e, ands * words, what)?;
    opened(f, ands * words, what)?;
    let [a, b, c] = abc.map(|t| checked(t, ands * words, what));
    let (a, b, c) = (a?, b?, c?);
    let m = p0mask(party0);
    // AND t over one plane of words, into `out`.
    let and_into = |t: usize, out: &mut [u64]| {
        let r = t * words..(t + 1) * words;
        let (et, ft, at, bt, ct) = (
            &e[r.clone()],
            &f[r.clone()],
            &a[r.clone()],
            &b[r.clone()],
            &c[r],
        );
        for i in 0..words {
            out[i] = ct[i] ^ (et[i] & bt[i]) ^ (ft[i] & at[i]) ^ (et[i] & ft[i] & m);
        }
    };
    let (pairs, next) = (nodes / 2, nodes.div_ceil(2));
    let mut g2 = vec![0u64; next * words];
    let mut p2 = vec![0u64; next * words];
    for n in 0..next {
        let (gn, pn) = (
            &mut g2[n * words..(n + 1) * words],
            &mut p2[n * words..(n + 1) * words],
        );
        if n < pairs {
            let hi = 2 * n + 1;
            and_into(if n == 0 { 0 } else { 2 * n - 1 }, gn);
            gn.iter_mut()
                .zip(&g[hi * words..(hi + 1) * words])
                .for_each(|(o, gh)| *o ^= gh);
            if n > 0 {
                and_into(2 * n, pn);
            }
        } else {
            gn.copy_from_slice(&g[(nodes - 1) * words..nodes * words]);
            pn.copy_from_slice(&p[(nodes - 1) * words..nodes * words]);
        }
    }
    Ok([
        RingTensor::new([next * words], g2)?,
        RingTensor::new([next * words], p2)?,
    ])
}

/// a ^ b over words of equal length.
///
/// Errors: [`Error::ShapeMismatch`] for different lengths.
pub(crate) fn xor_host(a: &RingTensor<u64>, b: &RingTensor<u64>) -> Result<RingTensor<u64>> {
    let bw = checked(b, a.numel(), "xor")?;
    let out = a.try_data()?.iter().zip(bw).map(|(x, y)| x ^ y).collect();
    Ok(RingTensor::new(a.shape().clone(), out)?)
}

/// This party's share of x AND y for XOR-shared words from a binary Beaver
/// triple (a, b, c = a AND b) after the opening of e = x ^ a and f = y ^ b
/// (host words, off the wire): c ^ (e & b) ^ (f & a) ^ (e & f & [party
/// 0]) (Beaver over GF(2), `protocol/bitwise.rs`).
///
/// Errors: [`Error::ShapeMismatch`] for inputs of other lengths.
pub(crate) fn and_combine_host(
    e: &[u64],
    f: &[u64],
    abc: [&RingTensor<u64>; 3],
    party0: bool,
) -> Result<RingTensor<u64>> {
    let n = e.len();
    opened(f, n, "and")?;
    let [a, b, c] = abc.map(|t| checked(t, n, "and"));
    let (a, b, c) = (a?, b?, c?);
    let m = p0mask(party0);
    let z = (0..n)
        .map(|i| c[i] ^ (e[i] & b[i]) ^ (f[i] & a[i]) ^ (e[i] & f[i] & m))
        .collect();
    Ok(RingTensor::new([n], z)?)
}
