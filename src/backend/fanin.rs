//! Multi-input ANDs of XOR-shared bits in one round: the local steps and
//! the dealer's products.
//!
//! A circuit layer of XOR sums of products of up to [`MAX_DEGREE`] shared
//! bits costs one round when the dealer supplies the products of random
//! masks (function-dependent preprocessing: Ben-Efraim, Nielsen and Omri,
//! ACNS 2019 "Turbospeedz"; Patra et al., USENIX Security 2021 "ABY2.0").
//! Every input w that takes part in a product of two or more is opened
//! masked, d_w = w ^ l_w, with l_w a dealer mask that the parties hold in
//! XOR shares; then a product over the set M of inputs is
//! AND_(w in M) (d_w ^ l_w) = XOR over S subset of M of
//! (AND_(w in M \ S) d_w) & l_S, where l_S = AND_(w in S) l_w: public
//! coefficients times shares of l_S, which the dealer supplies for
//! |S| >= 2 (11 per product of 4). An input that appears only alone in a
//! sum is not opened: its share is added as it is.
//!
//! Layout: words as in `backend/binary.rs` (u64 words, plane-major, one
//! plane of `words` words per input or output). The opened planes are the
//! inputs of [`FanIn::opened`] in increasing order; the dealer's products
//! are those of [`product_subsets`] of [`FanIn::monomials`], in order.

use std::collections::{BTreeSet, HashMap};

use super::binary::{check_len, p0mask};
use crate::error::{Error, Result};
use crate::ring::RingTensor;

/// Most inputs in one product (the dealer's material grows as 2^degree:
/// 247 products of masks for one product of 8).
pub const MAX_DEGREE: usize = 8;

/// One output: the XOR of its terms, each the AND of a set of inputs (by
/// index; a set of one is the input itself). An empty sum is zero.
pub type Poly = Vec<Vec<u32>>;

/// A layer of XOR sums of products over `inputs` shared bit planes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanIn {
    inputs: usize,
    polys: Vec<Poly>,
    /// Inputs in a product of two or more, increasing.
    opened: Vec<u32>,
}

impl FanIn {
    /// The layer computing `polys` over `inputs` planes.
    ///
    /// Errors: [`Error::Unsupported`] for a term of no inputs, of more
    /// than [`MAX_DEGREE`], with an input twice or out of range.
    pub fn new(inputs: usize, polys: Vec<Poly>) -> Result<Self> {
        let mut opened = BTreeSet::new();
        for term in polys.iter().flatten() {
            let distinct: BTreeSet<u32> = term.iter().copied().collect();
            let bad = term.is_empty()
                || term.len() > MAX_DEGREE
                || distinct.len() != term.len()
                || term.iter().any(|&i| i as usize >= inputs);
            if bad {
                return Err(Error::Unsupported(format!(
                    "an AND of inputs {term:?} over {inputs} inputs: needs 1 to {MAX_DEGREE} \
                     distinct inputs in range"
                )));
            }
            if term.len() >= 2 {
                opened.extend(distinct);
            }
        }
        Ok(FanIn {
            inputs,
            polys,
            opened: opened.into_iter().collect(),
        })
    }

    /// Input planes.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The outputs, one plane each.
    pub fn polys(&self) -> &[Poly] {
        &self.polys
    }

    /// The inputs opened masked (those in a product of two or more).
    pub fn opened(&self) -> &[u32] {
        &self.opened
    }

    /// The distinct products of two or more inputs, as sorted indices into
    /// [`FanIn::opened`], in order of first appearance: what the dealer's
    /// request names.
    pub fn monomials(&self) -> Vec<Vec<u32>> {
        let at: HashMap<u32, u32> = self
            .opened
            .iter()
            .enumerate()
            .map(|(k, &i)| (i, k as u32))
            .collect();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for term in self.polys.iter().flatten().filter(|t| t.len() >= 2) {
            let mut m: Vec<u32> = term.iter().map(|i| at[i]).collect();
            m.sort_unstable();
            if seen.insert(m.clone()) {
                out.push(m);
            }
        }
        out
    }
}

/// The sets of two or more inputs whose mask products the dealer supplies
/// for `monomials`: every subset of each, once, in order of first
/// appearance (subsets of a monomial by increasing bit mask over its
/// sorted members).
pub fn product_subsets(monomials: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in monomials {
        for mask in 1usize..1 << m.len() {
            if mask.count_ones() < 2 {
                continue;
            }
            let s: Vec<u32> = (0..m.len())
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| m[i])
                .collect();
            if seen.insert(s.clone()) {
                out.push(s);
            }
        }
    }
    out
}

/// Checks a dealer request's products: each of 2 to [`MAX_DEGREE`]
/// distinct inputs below `inputs`, sorted.
///
/// Errors: [`Error::Unsupported`] otherwise.
pub fn check_monomials(inputs: usize, monomials: &[Vec<u32>]) -> Result<()> {
    for m in monomials {
        let ok = (2..=MAX_DEGREE).contains(&m.len())
            && m.windows(2).all(|w| w[0] < w[1])
            && m.iter().all(|&i| (i as usize) < inputs);
        if !ok {
            return Err(Error::Unsupported(format!(
                "a product of inputs {m:?} over {inputs} inputs: needs 2 to {MAX_DEGREE} \
                 sorted distinct inputs in range"
            )));
        }
    }
    Ok(())
}

/// The dealer's side: the full products of the masks over every subset of
/// [`product_subsets`]`(monomials)`, from the full mask planes `lambda`
/// (plane-major, `words` words each).
///
/// Errors: [`Error::ShapeMismatch`] when `lambda` is shorter than the
/// inputs named.
pub fn full_products(lambda: &[u64], monomials: &[Vec<u32>], words: usize) -> Result<Vec<u64>> {
    let subsets = product_subsets(monomials);
    let planes = lambda.len() / words.max(1);
    if let Some(s) = subsets
        .iter()
        .find(|s| s.iter().any(|&i| i as usize >= planes))
    {
        return Err(Error::shape(
            "AND masks",
            format!("a product of inputs {s:?} over {planes} mask planes"),
        ));
    }
    let mut out = Vec::with_capacity(subsets.len() * words);
    for s in &subsets {
        out.extend((0..words).map(|w| {
            s.iter()
                .fold(u64::MAX, |acc, &i| acc & lambda[i as usize * words + w])
        }));
    }
    Ok(out)
}

/// The masked planes to open: input `opened[k]` XOR mask plane k, from
/// this party's shares of the inputs (`x`, [inputs * words]) and of the
/// masks (`lambda`, [opened * words]).
///
/// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
pub(crate) fn fanin_mask_host(
    x: &RingTensor<u64>,
    lambda: &RingTensor<u64>,
    spec: &FanIn,
    words: usize,
) -> Result<RingTensor<u64>> {
    check_len(x, spec.inputs * words, "AND inputs")?;
    check_len(lambda, spec.opened.len() * words, "AND masks")?;
    let (x, l) = (x.try_data()?, lambda.try_data()?);
    let mut out = Vec::with_capacity(l.len());
    for (k, &i) in spec.opened.iter().enumerate() {
        let plane = &x[i as usize * words..(i as usize + 1) * words];
        out.extend(plane.iter().zip(&l[k * words..]).map(|(a, b)| a ^ b));
    }
    Ok(RingTensor::new([out.len()], out)?)
}

/// Where a term's share of l_S comes from.
#[derive(Clone, Copy)]
enum Source {
    /// S empty: the public 1 (party 0 holds it).
    One,
    /// One mask plane.
    Mask(usize),
    /// A dealer product plane.
    Product(usize),
}

/// The outputs (one plane per poly, [polys * words]) from the opened
/// planes `delta` ([opened * words], off the wire), this party's shares
/// of the inputs `x` (for inputs that appear alone), of the masks and of
/// the dealer's products.
///
/// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
pub(crate) fn fanin_combine_host(
    delta: &[u64],
    x: &RingTensor<u64>,
    lambda: &RingTensor<u64>,
    products: &RingTensor<u64>,
    spec: &FanIn,
    words: usize,
    party0: bool,
) -> Result<RingTensor<u64>> {
    let monomials = spec.monomials();
    let subsets = product_subsets(&monomials);
    let n_open = spec.opened.len();
    if delta.len() != n_open * words {
        return Err(Error::shape(
            "AND opened planes",
            format!("{} words, expected {}", delta.len(), n_open * words),
        ));
    }
    check_len(x, spec.inputs * words, "AND inputs")?;
    check_len(lambda, n_open * words, "AND masks")?;
    check_len(products, subsets.len() * words, "AND mask products")?;
    let (x, l, prods) = (x.try_data()?, lambda.try_data()?, products.try_data()?);
    let at: HashMap<u32, usize> = spec
        .opened
        .iter()
        .enumerate()
        .map(|(k, &i)| (i, k))
        .collect();
    let product_at: HashMap<&[u32], usize> = subsets
        .iter()
        .enumerate()
        .map(|(k, s)| (s.as_slice(), k))
        .collect();
    // Each product's expansion over its subsets S (bit masks over its
    // sorted members): the source of this party's share of l_S.
    let expand = |term: &[u32]| -> (Vec<usize>, Vec<Source>) {
        let mut m: Vec<usize> = term.iter().map(|i| at[i]).collect();
        m.sort_unstable();
        let sources = (0usize..1 << m.len())
            .map(|mask| {
                let s: Vec<u32> = (0..m.len())
                    .filter(|i| mask >> i & 1 == 1)
                    .map(|i| m[i] as u32)
                    .collect();
                match s.len() {
                    0 => Source::One,
                    1 => Source::Mask(s[0] as usize),
                    _ => Source::Product(product_at[s.as_slice()]),
                }
            })
            .collect();
        (m, sources)
    };
    let one = p0mask(party0);
    let mut out = vec![0u64; spec.polys.len() * words];
    // Public products of d over every subset, per word (AND of the
    // members, built from the subset without its lowest member).
    let mut public = vec![0u64; 1 << MAX_DEGREE];
    for (o, poly) in spec.polys.iter().enumerate() {
        let plane = &mut out[o * words..(o + 1) * words];
        for term in poly {
            if let [i] = term[..] {
                let xi = &x[i as usize * words..(i as usize + 1) * words];
                plane.iter_mut().zip(xi).for_each(|(v, s)| *v ^= s);
                continue;
            }
            let (members, sources) = expand(term);
            let full = (1usize << members.len()) - 1;
            for (w, v) in plane.iter_mut().enumerate() {
                public[0] = u64::MAX;
                for mask in 1..=full {
                    let low = mask.trailing_zeros() as usize;
                    public[mask] = public[mask & (mask - 1)] & delta[members[low] * words + w];
                }
                let mut acc = 0u64;
                for (sub, source) in sources.iter().enumerate() {
                    let share = match *source {
                        Source::One => one,
                        Source::Mask(k) => l[k * words + w],
                        Source::Product(k) => prods[k * words + w],
                    };
                    acc ^= public[full ^ sub] & share;
                }
                *v ^= acc;
            }
        }
    }
    Ok(RingTensor::new([out.len()], out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(stream: u64, n: usize) -> Vec<u64> {
        let mut v = vec![0u64; n];
        crate::prg::Prg::new(&crate::prg::Seed([7; 16]), stream).fill(&mut v);
        v
    }

    fn xor(a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter().zip(b).map(|(x, y)| x ^ y).collect()
    }

    #[test]
    fn a_product_of_four_needs_eleven_mask_products() {
        assert_eq!(product_subsets(&[vec![0, 1, 2, 3]]).len(), 11);
        // Shared subsets are supplied once.
        assert_eq!(product_subsets(&[vec![0, 1], vec![0, 1, 2]]).len(), 4);
        assert!(FanIn::new(9, vec![vec![(0..9).collect()]]).is_err());
        assert_eq!(product_subsets(&[(0..8).collect()]).len(), 247);
        assert!(FanIn::new(2, vec![vec![vec![0, 0]]]).is_err());
        assert!(FanIn::new(2, vec![vec![vec![2]]]).is_err());
        assert!(FanIn::new(2, vec![vec![vec![]]]).is_err());
        assert!(check_monomials(3, &[vec![1, 0]]).is_err());
        let f = FanIn::new(4, vec![vec![vec![3], vec![2, 0]], vec![vec![0, 2, 1]]]).unwrap();
        assert_eq!(f.opened(), &[0, 1, 2]);
        assert_eq!(f.monomials(), vec![vec![0, 2], vec![0, 1, 2]]);
    }

    /// Three parties' outputs XOR to the plaintext sums of products.
    #[test]
    fn shared_outputs_are_the_sums_of_products() {
        let (w, inputs) = (3, 9);
        let spec = FanIn::new(
            inputs,
            vec![
                vec![vec![5], vec![4, 3], vec![4, 2, 1], vec![4, 2, 1, 0]],
                vec![vec![4, 3, 2, 1]],
                vec![],
                vec![vec![1]],
                vec![(1..9).collect(), vec![8, 0]],
            ],
        )
        .unwrap();
        let n_open = spec.opened().len();
        let x = words(1, inputs * w);
        let lambda = words(2, n_open * w);
        let prods = full_products(&lambda, &spec.monomials(), w).unwrap();
        // Parties 1 and 2 random, party 0 the rest.
        let share3 = |v: &[u64], s: u64| {
            let (a, b) = (words(s, v.len()), words(s + 1, v.len()));
            [xor(&xor(v, &a), &b), a, b]
        };
        let (xs, ls, ps) = (share3(&x, 10), share3(&lambda, 20), share3(&prods, 30));
        let t = |v: &Vec<u64>| RingTensor::new([v.len()], v.clone()).unwrap();
        let masked: Vec<Vec<u64>> = (0..3)
            .map(|p| {
                fanin_mask_host(&t(&xs[p]), &t(&ls[p]), &spec, w)
                    .unwrap()
                    .data()
                    .to_vec()
            })
            .collect();
        let delta = xor(&xor(&masked[0], &masked[1]), &masked[2]);
        let outs: Vec<Vec<u64>> = (0..3)
            .map(|p| {
                fanin_combine_host(&delta, &t(&xs[p]), &t(&ls[p]), &t(&ps[p]), &spec, w, p == 0)
                    .unwrap()
                    .data()
                    .to_vec()
            })
            .collect();
        let out = xor(&xor(&outs[0], &outs[1]), &outs[2]);
        for (o, poly) in spec.polys().iter().enumerate() {
            for k in 0..w {
                let want = poly.iter().fold(0u64, |acc, term| {
                    acc ^ term
                        .iter()
                        .fold(u64::MAX, |a, &i| a & x[i as usize * w + k])
                });
                assert_eq!(out[o * w + k], want, "output {o} word {k}");
            }
        }
    }
}
