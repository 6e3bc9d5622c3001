//! Multi-input ANDs in one round: a layer of XOR sums of products of up
//! to eight XOR-shared bits, from dealer masks and their products
//! (function-dependent preprocessing: Ben-Efraim, Nielsen and Omri, ACNS
//! 2019 "Turbospeedz"; Patra et al., USENIX Security 2021 "ABY2.0"; the
//! local steps and the algebra in `backend/fanin.rs`).
//!
//! Where Beaver's binary triples give one AND of two bits per round, this
//! gives products of up to eight per round, so a tree over n leaves takes
//! ceil(log4(n)) rounds in radix 4 instead of ceil(log2(n)), and one
//! round for up to 8 leaves: the (G, P) carry tree of MSB
//! ([`carry_level`]) and the AND trees of the max. Exact. Rounds: 1
//! for any number of layers batched in one call. Bytes sent per party to
//! each peer: 8 * words per opened input plane (an input that appears in a
//! product of two or more); the dealer's material per word: one mask per
//! opened input and one product per subset of two or more of each product
//! (11 for a product of 4, 247 for a product of 8).

use crate::backend::fanin::{FanIn, Poly, MAX_DEGREE};
use crate::backend::MpcSteps;
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::RingTensor;
use crate::session::Session;

/// One layer: its input planes (`x`, [spec.inputs() * words] XOR-shared
/// words, plane-major) and what it computes.
pub struct FanInLayer<'a> {
    /// This party's shares of the inputs.
    pub x: &'a RingTensor<u64>,
    /// Words per plane.
    pub words: usize,
    /// The outputs.
    pub spec: FanIn,
}

/// Bytes each party sends to each peer for `layers`: 8 per word of each
/// opened plane.
pub fn fanin_bytes(layers: &[(usize, &FanIn)]) -> u64 {
    layers
        .iter()
        .map(|(words, spec)| (spec.opened().len() * words * 8) as u64)
        .sum()
}

/// Every layer's outputs ([polys * words] each, plane-major), all in ONE
/// round: one opening of every layer's masked inputs.
///
/// Rounds, bytes and dealer material: see the module docs.
/// Errors: [`Error::ShapeMismatch`] for inputs of the wrong length;
/// preprocessing and transport errors.
pub async fn and_fanin(sess: &Session, layers: &[FanInLayer<'_>]) -> Result<Vec<RingTensor<u64>>> {
    let be = sess.backend();
    let mut masks = Vec::with_capacity(layers.len());
    let mut masked = Vec::with_capacity(layers.len());
    for l in layers {
        if l.x.numel() != l.spec.inputs() * l.words {
            return Err(Error::shape(
                "multi-input AND",
                format!(
                    "{} words of inputs, expected {} planes of {}",
                    l.x.numel(),
                    l.spec.inputs(),
                    l.words
                ),
            ));
        }
        let req = Request::AndFanIn {
            words: l.words,
            inputs: l.spec.opened().len(),
            monomials: l.spec.monomials(),
        };
        let m = sess.fetch::<u64>(&req)?;
        let [lambda, products]: [RingTensor<u64>; 2] = m.try_into().map_err(|_| Error::Format {
            what: "preprocessing material".into(),
            detail: format!("{req} should have 2 tensors"),
        })?;
        masked.push(be.fanin_mask(l.x, &lambda, &l.spec, l.words)?);
        masks.push((lambda, products));
    }
    let delta = sess.open_xor_owned(masked).await?;
    let party0 = sess.party() == 0;
    layers
        .iter()
        .zip(&masks)
        .zip(&delta)
        .map(|((l, (lambda, products)), d)| {
            be.fanin_combine(d, l.x, lambda, products, &l.spec, l.words, party0)
        })
        .collect()
}

/// One level of MSB's (G, P) carry tree in radix `radix` (2 to
/// [`MAX_DEGREE`]): over `nodes` nodes (inputs: G planes 0..nodes, then P
/// planes nodes..2 nodes; node 0 has no P), the ceil(nodes / radix) nodes
/// of the next level as outputs (their G planes, then their P planes,
/// node 0's P zero). Children c_0 (low) .. c_(m-1) of a node give G =
/// G_(m-1) ^ XOR_(i < m-1) P_(m-1) .. P_(i+1) G_i and P = P_(m-1) .. P_0
/// (G and P of a node are never both 1, so the terms are disjoint and XOR
/// is OR).
///
/// Errors: [`Error::Unsupported`] for fewer than 2 nodes or a radix
/// outside 2..=[`MAX_DEGREE`].
pub fn carry_level(nodes: usize, radix: usize) -> Result<FanIn> {
    if nodes < 2 || !(2..=MAX_DEGREE).contains(&radix) {
        return Err(Error::Unsupported(format!(
            "a carry-tree level over {nodes} node(s) in radix {radix}"
        )));
    }
    let (g, p) = (|j: usize| j as u32, |j: usize| (nodes + j) as u32);
    let mut gs: Vec<Poly> = Vec::new();
    let mut ps: Vec<Poly> = Vec::new();
    for first in (0..nodes).step_by(radix) {
        let m = radix.min(nodes - first);
        let top = first + m - 1;
        let mut gpoly: Poly = vec![vec![g(top)]];
        for i in first..top {
            let mut term: Vec<u32> = (i + 1..=top).map(p).collect();
            term.push(g(i));
            gpoly.push(term);
        }
        gs.push(gpoly);
        ps.push(match first {
            0 => vec![],
            _ => vec![(first..=top).map(p).collect()],
        });
    }
    gs.extend(ps);
    FanIn::new(2 * nodes, gs)
}

/// One level of AND trees in radix `radix` (2 to [`MAX_DEGREE`]): `trees`
/// trees of `leaves` inputs each (input t * leaves + i is leaf i of tree
/// t) to trees of ceil(leaves / radix) (output t * ceil(leaves / radix) +
/// q, the AND of leaves q radix .. (q + 1) radix - 1).
///
/// Errors: [`Error::Unsupported`] for no leaves or a radix outside
/// 2..=[`MAX_DEGREE`].
pub fn and_level(trees: usize, leaves: usize, radix: usize) -> Result<FanIn> {
    if leaves == 0 || !(2..=MAX_DEGREE).contains(&radix) {
        return Err(Error::Unsupported(format!(
            "an AND tree level of {leaves} leaves in radix {radix}"
        )));
    }
    let polys = (0..trees)
        .flat_map(|t| {
            (0..leaves).step_by(radix).map(move |first| {
                vec![(first..leaves.min(first + radix))
                    .map(|i| (t * leaves + i) as u32)
                    .collect()]
            })
        })
        .collect();
    FanIn::new(trees * leaves, polys)
}

/// The radix of a tree level over `nodes` nodes (carry nodes or AND
/// leaves): all of them at once when they are at most 8 (one round; a
/// carry level of 8 needs about 500 products of masks per element), else
/// 4 (11 per product of 4).
pub fn tree_radix(nodes: usize) -> usize {
    if nodes <= MAX_DEGREE {
        nodes.max(2)
    } else {
        4
    }
}

/// Levels of a tree over `nodes` leaves with [`tree_radix`] at each level.
pub fn tree_levels(mut nodes: usize) -> u64 {
    let mut levels = 0;
    while nodes > 1 {
        nodes = nodes.div_ceil(tree_radix(nodes));
        levels += 1;
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_of_16_nodes_makes_4_and_opens_27_planes() {
        let l = carry_level(16, 4).unwrap();
        assert_eq!(l.polys().len(), 8);
        // G: 4 x (G_0..G_2), P: P_1..P_3 in node 0, P_0..P_3 elsewhere.
        assert_eq!(l.opened().len(), 4 * 3 + 3 + 3 * 4);
        assert!(l.polys()[4].is_empty());
        let l = carry_level(5, 4).unwrap();
        // The lone fifth node is carried over unopened.
        assert_eq!(l.polys()[1], vec![vec![4]]);
        assert_eq!(l.polys()[3], vec![vec![9]]);
        assert!(carry_level(1, 4).is_err());
        assert!(carry_level(9, 9).is_err());
        // Up to 8 nodes: one level of all of them.
        assert_eq!(tree_radix(7), 7);
        assert_eq!(tree_radix(16), 4);
        let l = carry_level(7, 7).unwrap();
        assert_eq!(l.polys().len(), 2);
        assert_eq!(l.polys()[0].len(), 7);
        let a = and_level(2, 5, 4).unwrap();
        assert_eq!(tree_levels(11), 2);
        assert_eq!(tree_levels(8), 1);
        assert_eq!(tree_levels(16), 2);
        assert_eq!(tree_levels(1), 0);
        assert_eq!(a.polys().len(), 4);
        assert_eq!(a.polys()[3], vec![vec![9]]);
        assert_eq!(a.opened().len(), 8);
    }
}
