//! The local steps of A2B's parallel-prefix adder
//! ([`crate::protocol::convert::a2b`]; Kogge and Stone, 1973) on words of
//! XOR shares: with c = x + r public and r's bits XOR-shared,
//! x = c + NOT(r) + 1, whose generate and propagate bits are local.
//!
//! Layout (as `kernels/adder.cu`): tensors of u64 words [k * words],
//! plane-major, plane j holding bit j of every element. The adder keeps
//! three of them: G (prefix generates, G_0 including the carry-in of 1),
//! P (prefix propagates, P_j = 0 for every j below the current span) and
//! p (bit j's propagate, for the sum). A level with span `dist` takes the
//! ANDs P_j & G_(j-dist) for j >= dist and P_j & P_(j-dist) for
//! j >= 2 dist (the others are known to be 0) in one round
//! ([`crate::protocol::bitwise::and_tensors`]).
//!
//! This file holds the host loops: the CPU backend's implementation and
//! the steps' defaults; the CUDA backend launches `kernels/adder.cu`, the
//! audit backend runs these loops on its simulated device memory.

use super::binary::{check_len, p0mask};
use crate::error::{Error, Result};
use crate::ring::RingTensor;

/// Lengths of one adder level's inputs: G and P hold `bits * words` words,
/// the ANDs P_hi & G_lo `(bits - dist) * words`, and the ANDs of the
/// propagates `(bits - 2 dist) * words` when 2 dist < bits (none
/// otherwise).
///
/// Errors: [`crate::Error::ShapeMismatch`].
pub(crate) fn check_level(
    g: &RingTensor<u64>,
    p: &RingTensor<u64>,
    pg: &RingTensor<u64>,
    new_p: Option<&RingTensor<u64>>,
    dist: usize,
    bits: usize,
    words: usize,
) -> Result<()> {
    check_len(g, bits * words, "adder level")?;
    check_len(p, bits * words, "adder level")?;
    check_len(pg, bits.saturating_sub(dist) * words, "adder level")?;
    match new_p {
        Some(np) => check_len(np, bits.saturating_sub(2 * dist) * words, "adder level"),
        None if 2 * dist < bits => Err(Error::shape(
            "adder level",
            format!("span {dist} of {bits} bits needs the propagates' ANDs"),
        )),
        None => Ok(()),
    }
}

/// The adder's leaves from the public bit planes of c and this party's
/// shares of r's bits (both [bits * words]): with NOT r = r ^ [party 0],
/// g_j = c_j & NOT r_j and p_j = c_j ^ NOT r_j; returns (G, P, p) with
/// G_0 = g_0 ^ p_0 (the carry-in of 1), P_0 = 0 and G_j = g_j, P_j = p_j
/// above, each [bits * words].
///
/// Errors: [`crate::Error::ShapeMismatch`] for tensors of other lengths.
pub(crate) fn adder_leaves_host(
    c: &RingTensor<u64>,
    r: &RingTensor<u64>,
    bits: usize,
    words: usize,
    party0: bool,
) -> Result<[RingTensor<u64>; 3]> {
    check_len(c, bits * words, "adder leaves")?;
    check_len(r, bits * words, "adder leaves")?;
    let (c, r) = (c.try_data()?, r.try_data()?);
    let flip = p0mask(party0);
    let n = bits * words;
    let (mut g, mut pp, mut p) = (vec![0u64; n], vec![0u64; n], vec![0u64; n]);
    for i in 0..n {
        let not_r = r[i] ^ flip;
        let (gv, pv) = (c[i] & not_r, (c[i] & flip) ^ not_r);
        p[i] = pv;
        if i < words {
            g[i] = gv ^ pv;
        } else {
            g[i] = gv;
            pp[i] = pv;
        }
    }
    Ok([
        RingTensor::new([n], g)?,
        RingTensor::new([n], pp)?,
        RingTensor::new([n], p)?,
    ])
}

/// One level of span `dist` after its ANDs: G_j ^= (P_j & G_(j-dist)) for
/// j >= dist (`pg`, [(bits - dist) * words]); P_j = 0 for
/// dist <= j < 2 dist and P_j = P_j & P_(j-dist) above (`new_p`,
/// [(bits - 2 dist) * words], `None` once 2 dist >= bits). Returns the
/// new (G, P).
///
/// Errors: [`crate::Error::ShapeMismatch`] for tensors of other lengths.
pub(crate) fn adder_level_host(
    g: &RingTensor<u64>,
    p: &RingTensor<u64>,
    pg: &RingTensor<u64>,
    new_p: Option<&RingTensor<u64>>,
    dist: usize,
    bits: usize,
    words: usize,
) -> Result<[RingTensor<u64>; 2]> {
    check_level(g, p, pg, new_p, dist, bits, words)?;
    let lo = dist * words;
    let mut g = g.try_data()?.to_vec();
    g[lo..]
        .iter_mut()
        .zip(pg.try_data()?)
        .for_each(|(a, b)| *a ^= b);
    let mut p = p.try_data()?.to_vec();
    let zero_to = (2 * dist).min(bits) * words;
    p[lo..zero_to].fill(0);
    if let Some(np) = new_p {
        p[zero_to..].copy_from_slice(np.try_data()?);
    }
    Ok([
        RingTensor::new([bits * words], g)?,
        RingTensor::new([bits * words], p)?,
    ])
}

/// The sum bits x_j = p_j ^ carry_j with carry_0 = 1 (party 0 flips) and
/// carry_j = G_(j-1): this party's XOR share of x's planes [bits * words].
///
/// Errors: [`crate::Error::ShapeMismatch`] for tensors of other lengths.
pub(crate) fn adder_sum_host(
    p: &RingTensor<u64>,
    g: &RingTensor<u64>,
    bits: usize,
    words: usize,
    party0: bool,
) -> Result<RingTensor<u64>> {
    check_len(p, bits * words, "adder sum")?;
    check_len(g, bits * words, "adder sum")?;
    let (p, g) = (p.try_data()?, g.try_data()?);
    let flip = p0mask(party0);
    let sum = (0..bits * words)
        .map(|i| p[i] ^ if i < words { flip } else { g[i - words] })
        .collect();
    Ok(RingTensor::new([bits * words], sum)?)
}
