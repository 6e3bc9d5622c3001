//! The first level of MSB's carry tree without a round: groups of up to
//! [`GROUP`] bit positions whose (G, P) the parties compute locally from
//! the dealer's products of r's bits.
//!
//! With c = x + r public and y_j = NOT r_j, a position's generate and
//! propagate are affine in y_j: g_j = c_j y_j (bit 0, with the carry-in
//! of 1: g_0 = c_0 OR y_0 = c_0 ^ NOT c_0 y_0) and p_j = c_j ^ y_j. A
//! group's G = g_(s-1) ^ p_(s-1) (g_(s-2) ^ p_(s-2) (...)) and
//! P = p_0 ... p_(s-1) are therefore polynomials over GF(2) in the group's
//! y_j whose coefficients are public (products of c's bits): the
//! parties need XOR shares of every monomial y_S, S a subset of the
//! group, and the dealer, who knows r, supplies those of |S| >= 2 (11 per
//! group of 4) next to the bits themselves. This is function-dependent
//! preprocessing (Ben-Efraim, Nielsen and Omri, ACNS 2019 "Turbospeedz";
//! Patra et al., USENIX Security 2021 "ABY2.0") applied to the leaves of
//! the carry tree: the tree then starts from ceil((b - 1) / 4) nodes
//! instead of b - 1, two levels (two rounds) fewer in Z_2^64, and its
//! binary ANDs (the online bytes) shrink about fourfold; the dealer's
//! material per element grows by the products (169 bits in Z_2^64).
//!
//! Layout: words as in `backend/binary.rs` (u64 words, plane-major,
//! `words` per plane). Products: group by group from bit 0 up, within a
//! group the subsets S (bit i of the mask = the group's i-th position) of
//! two or more members in increasing mask order, one plane each.

use super::binary::{check_len, p0mask};
use crate::error::{Error, Result};
use crate::ring::RingTensor;

/// Bit positions per group.
pub const GROUP: usize = 4;

/// The groups over bit positions 0..positions: (first position, size).
pub fn groups(positions: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..positions)
        .step_by(GROUP)
        .map(move |s| (s, GROUP.min(positions - s)))
}

/// The subsets of a group of `size` positions whose products the dealer
/// supplies (two or more members), as bit masks in increasing order.
pub fn product_masks(size: usize) -> impl Iterator<Item = usize> {
    (0..1usize << size).filter(|m| m.count_ones() >= 2)
}

/// Product planes for bit positions 0..positions.
pub fn product_planes(positions: usize) -> usize {
    groups(positions)
        .map(|(_, s)| (1 << s) - s - 1)
        .sum::<usize>()
}

/// The dealer's side: the full products of y = NOT r over every group of
/// positions 0..positions, from the full bit planes of r (`r_bits`,
/// plane-major, at least `positions` planes of `words` words).
///
/// Errors: [`Error::ShapeMismatch`] for too few planes.
pub fn full_products(r_bits: &[u64], positions: usize, words: usize) -> Result<Vec<u64>> {
    if r_bits.len() < positions * words {
        return Err(Error::shape(
            "carry group products",
            format!(
                "{positions} planes of {words} words from {} words",
                r_bits.len()
            ),
        ));
    }
    let plane = |j: usize| &r_bits[j * words..(j + 1) * words];
    let mut out = Vec::with_capacity(product_planes(positions) * words);
    for (start, size) in groups(positions) {
        for mask in product_masks(size) {
            for w in 0..words {
                let mut v = u64::MAX;
                for i in (0..size).filter(|i| mask >> i & 1 == 1) {
                    v &= !plane(start + i)[w];
                }
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// A polynomial over GF(2) in a group's y variables, one u64 word of
/// coefficients (64 elements side by side) per subset mask.
type Poly = [u64; 1 << GROUP];

/// a * (c ^ y_i) for a variable i that a does not contain: the terms of
/// a times c, and each term S of a moved to S + {i}.
fn times_affine(a: &Poly, c: u64, i: usize) -> Poly {
    let mut out = [0u64; 1 << GROUP];
    for (s, &coef) in a.iter().enumerate().take(1 << i) {
        out[s] = coef & c;
        out[s | 1 << i] = coef;
    }
    out
}

/// One word of a group's (G, P) coefficients from the public words of c
/// at its positions (`c[i]` for position start + i); `carry_in`: the
/// group holds bit 0 (G includes the carry-in of 1).
fn group_polys(c: &[u64], carry_in: bool) -> (Poly, Poly) {
    let (mut g, mut p) = ([0u64; 1 << GROUP], [0u64; 1 << GROUP]);
    if carry_in {
        // g_0 = c_0 OR y_0 = c_0 ^ NOT c_0 y_0.
        g[0] = c[0];
        g[1] = !c[0];
    } else {
        g[1] = c[0];
    }
    p[0] = c[0];
    p[1] = u64::MAX;
    for (i, &ci) in c.iter().enumerate().skip(1) {
        g = times_affine(&g, ci, i);
        g[1 << i] ^= ci;
        p = times_affine(&p, ci, i);
    }
    (g, p)
}

/// The leaves of MSB's carry tree over bit positions 0..bits-1 (bits >=
/// 2) in groups: from the public bit planes of c (>= bits planes), this
/// party's shares of r's bits (>= bits planes) and of the products of
/// NOT r (`products`, [`product_planes`]`(bits - 1)` planes), all of
/// `words` words. Returns G and P [one plane per group; node 0's P is
/// zero, as the tree expects] and top = p_(bits-1) [1 plane].
///
/// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
pub(crate) fn carry_group_leaves_host(
    c: &RingTensor<u64>,
    r: &RingTensor<u64>,
    products: &RingTensor<u64>,
    bits: usize,
    words: usize,
    party0: bool,
) -> Result<[RingTensor<u64>; 3]> {
    super::binary::check_leaves(c, r, bits, words)?;
    let positions = bits - 1;
    check_len(products, product_planes(positions) * words, "carry groups")?;
    let (c, r, prods) = (c.try_data()?, r.try_data()?, products.try_data()?);
    let flip = p0mask(party0);
    let nodes = positions.div_ceil(GROUP);
    let (mut g_out, mut p_out) = (vec![0u64; nodes * words], vec![0u64; nodes * words]);
    let mut base = 0;
    for (node, (start, size)) in groups(positions).enumerate() {
        let masks: Vec<usize> = product_masks(size).collect();
        for w in 0..words {
            // No allocation per word: this loop runs for every 64 elements.
            let mut cw = [0u64; GROUP];
            for (i, v) in cw.iter_mut().enumerate().take(size) {
                *v = c[(start + i) * words + w];
            }
            let (gp, pp) = group_polys(&cw[..size], start == 0);
            // This party's share of y_S for every subset S of the group.
            let mut y = [0u64; 1 << GROUP];
            y[0] = flip;
            for i in 0..size {
                y[1 << i] = r[(start + i) * words + w] ^ flip;
            }
            for (k, &m) in masks.iter().enumerate() {
                y[m] = prods[(base + k) * words + w];
            }
            let eval =
                |poly: &Poly| (0..1usize << size).fold(0u64, |acc, s| acc ^ (poly[s] & y[s]));
            g_out[node * words + w] = eval(&gp);
            if start > 0 {
                p_out[node * words + w] = eval(&pp);
            }
        }
        base += masks.len();
    }
    let top_plane = positions * words;
    let top = (0..words)
        .map(|w| {
            let cv = c[top_plane + w];
            // p = c ^ NOT r, party 0 adding the public c and the NOT.
            (cv & flip) ^ r[top_plane + w] ^ flip
        })
        .collect();
    Ok([
        RingTensor::new([nodes * words], g_out)?,
        RingTensor::new([nodes * words], p_out)?,
        RingTensor::new([words], top)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words from the crate's PRG (AES-CTR), stream `stream` of a fixed seed.
    fn words(stream: u64, n: usize) -> Vec<u64> {
        let mut v = vec![0u64; n];
        crate::prg::Prg::new(&crate::prg::Seed([9; 16]), stream).fill(&mut v);
        v
    }

    #[test]
    fn the_layout_counts_groups_and_products() {
        assert_eq!(groups(63).count(), 16);
        assert_eq!(groups(63).last(), Some((60, 3)));
        assert_eq!(product_masks(4).count(), 11);
        assert_eq!(product_planes(63), 15 * 11 + 4);
        assert_eq!(product_planes(27), 6 * 11 + 4);
        assert_eq!(product_planes(1), 0);
    }

    /// Two parties' group leaves XOR to the plaintext (G, P) of each group:
    /// G = carry out of the group's positions of c + NOT r (with the
    /// carry-in of 1 into bit 0), P = every position propagates.
    #[test]
    fn shared_group_leaves_are_the_groups_carries() {
        for bits in [2usize, 3, 5, 6, 28, 33, 64] {
            let w = 3;
            let positions = bits - 1;
            let c = words(bits as u64, bits * w);
            let r = words(100 + bits as u64, bits * w);
            let prods = full_products(&r, positions, w).unwrap();
            // Party 1's shares random, party 0's the rest.
            let r1 = words(200 + bits as u64, bits * w);
            let p1 = words(300 + bits as u64, prods.len());
            let r0: Vec<u64> = r.iter().zip(&r1).map(|(a, b)| a ^ b).collect();
            let p0: Vec<u64> = prods.iter().zip(&p1).map(|(a, b)| a ^ b).collect();
            let t = |v: &Vec<u64>| RingTensor::new([v.len()], v.clone()).unwrap();
            let ct = t(&c);
            let [g0, q0, top0] =
                carry_group_leaves_host(&ct, &t(&r0), &t(&p0), bits, w, true).unwrap();
            let [g1, q1, top1] =
                carry_group_leaves_host(&ct, &t(&r1), &t(&p1), bits, w, false).unwrap();
            let xor = |a: &RingTensor<u64>, b: &RingTensor<u64>| -> Vec<u64> {
                a.data().iter().zip(b.data()).map(|(x, y)| x ^ y).collect()
            };
            let (g, q, top) = (xor(&g0, &g1), xor(&q0, &q1), xor(&top0, &top1));
            for e in 0..64 * w {
                let (word, bit) = (e / 64, e % 64);
                let at = |v: &[u64], j: usize| v[j * w + word] >> bit & 1;
                for (node, (start, size)) in groups(positions).enumerate() {
                    let mut carry = u64::from(start == 0);
                    let mut all_p = 1;
                    for j in start..start + size {
                        let (cj, yj) = (at(&c, j), 1 ^ at(&r, j));
                        carry = (cj & yj) | ((cj ^ yj) & carry);
                        all_p &= cj ^ yj;
                    }
                    if start == 0 {
                        assert_eq!(at(&g, node), carry, "bits {bits} element {e} node 0");
                    } else {
                        // G: the group's carry out with no carry in.
                        let mut gen = 0;
                        for j in start..start + size {
                            let (cj, yj) = (at(&c, j), 1 ^ at(&r, j));
                            gen = (cj & yj) | ((cj ^ yj) & gen);
                        }
                        assert_eq!(at(&g, node), gen, "bits {bits} element {e} G {node}");
                        assert_eq!(at(&q, node), all_p, "bits {bits} element {e} P {node}");
                    }
                }
                let p_top = at(&c, positions) ^ 1 ^ at(&r, positions);
                assert_eq!(top[word] >> bit & 1, p_top, "top");
            }
        }
    }
}
