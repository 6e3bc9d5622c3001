//! What each kind of correlated randomness is, and how it is made.
//!
//! This file holds the vocabulary ([`Request`]: what a protocol asks the
//! dealer for, recorded in plans and stores), the shapes of each kind's
//! parts, and the expansion from seeds that every provider shares. How the
//! dealer makes each kind's correlated values (its recipe) sits in the file
//! of its protocol family: `beaver.rs` (Beaver triples, squares, static
//! operands: `protocol::beaver`, `protocol::lookup`), `trunc.rs`
//! (truncation pairs, truncation products, linked squares:
//! `protocol::trunc`, `protocol::nonlinear`), `binary.rs` (binary triples,
//! edaBits, daBits, bit injection: `protocol::bitwise`, `compare`,
//! `convert`). The recipes stay in `preprocess/` because the dealer runs
//! them: the protocols sit above it (docs/architecture.md, Layering).

mod beaver;
mod binary;
mod trunc;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BilinearOp, Device};
use crate::error::{Error, Result};
use crate::prg::Seed;
use crate::ring::{AnyTensor, Ring, RingId, RingTensor, Shape};

/// A request for correlated randomness, recorded in the plan and served by a
/// provider. The material of each kind, as this party's shares, in order:
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Request {
    /// Beaver triple for x (op) y with x of shape `lhs` and y of `rhs`:
    /// `[a, b, c]` with c = a (op) b (Beaver, CRYPTO 1991).
    Triple {
        /// Ring of the shares.
        ring: RingId,
        /// The bilinear operation.
        op: BilinearOp,
        /// Shape of the left operand (and of a).
        lhs: Shape,
        /// Shape of the right operand (and of b).
        rhs: Shape,
    },
    /// Square pair for x * x: `[a, c]` with c = a * a (elementwise).
    Square {
        /// Ring of the shares.
        ring: RingId,
        /// Shape of x.
        shape: Shape,
    },
    /// Square pair whose mask also masks affine functions of x for
    /// truncation: `[a, c]` with c = a * a, then `[r'_j, r_msb_j]` for each
    /// link j, the truncation parts ([`Request::Trunc`]) of the mask
    /// r_j = -mult_j * a. Opening e = x - a for the square also opens
    /// y_j + 2^(k-2) + r_j = mult_j e + d_j + 2^(k-2) for y_j = mult_j x + d_j
    /// (d_j public), so every y_j is truncated with no opening of its own:
    /// the masks of linear functions of an opened value are the same linear
    /// functions of its mask, as in function-dependent preprocessing
    /// (Ben-Efraim, Nielsen and Omri, ACNS 2019 "Turbospeedz"; Patra et al.,
    /// USENIX Security 2021 "ABY2.0"). The dealer keeps a under `id` for
    /// the [`Request::TruncProducts`] that multiplies the linked outputs
    /// (its `linked`), which releases it.
    SquareLinked {
        /// Ring of the shares.
        ring: RingId,
        /// Shape of x.
        shape: Shape,
        /// Session-unique id under which the dealer keeps a.
        id: u64,
        /// The linked truncations, in order.
        links: Vec<Link>,
    },
    /// Mask of a static operand (e.g. model weights) y: `[b]`. The masked
    /// value y - b is opened once and reused by every [`Request::StaticTriple`]
    /// with the same `id`.
    StaticMask {
        /// Ring of the shares.
        ring: RingId,
        /// Session-unique id of the static operand.
        id: u64,
        /// Shape of y.
        shape: Shape,
    },
    /// Mask of a static operand y that party 0 knows (its own model
    /// weights), held by party 0 alone: `[b]` at party 0, an empty tensor
    /// (shape [0]) elsewhere. The opened y - b hides y from the others as
    /// well as a shared mask does, and products against it need the
    /// product e (op) b at party 0 only (see
    /// [`crate::protocol::beaver::prepare_static_owned`]).
    OwnedMask {
        /// Ring of the mask.
        ring: RingId,
        /// Session-unique id of the static operand.
        id: u64,
        /// Shape of y.
        shape: Shape,
    },
    /// Half triple against a static operand: `[a, c]` with c = a (op) b,
    /// b the mask of static operand `id` (a [`Request::StaticMask`] or an
    /// [`Request::OwnedMask`]).
    StaticTriple {
        /// Ring of the shares.
        ring: RingId,
        /// Id of the static operand (the right operand).
        id: u64,
        /// The bilinear operation.
        op: BilinearOp,
        /// Shape of the left operand.
        lhs: Shape,
        /// Shape of the static right operand.
        rhs: Shape,
    },
    /// Truncation pair for dividing by 2^frac_bits: `[r, r', r_msb]` with r
    /// uniform, r' = (r mod 2^(k-1)) >> frac_bits and r_msb the top bit of r
    /// as a ring element (Escudero et al., CRYPTO 2020).
    Trunc {
        /// Ring of the shares.
        ring: RingId,
        /// Shape of x.
        shape: Shape,
        /// Bits to shift out.
        frac_bits: u32,
    },
    /// Truncations whose outputs are also multiplied together, with no
    /// opening beyond the truncations' own; optionally also multiplied
    /// with the outputs of the truncations linked to an earlier
    /// [`Request::SquareLinked`] (`linked`). Each truncation i (by
    /// `frac_bits[i]`) is a [`Request::Trunc`] whose output has the form
    /// v_i = P_i + L_i with P_i public after the opening and
    /// L_i = -r'_i + s_i 2^(k-1-f_i) r_msb_i (s_i = +-1, public), so
    /// v_i v_j is linear in shares of r'_i r'_j, r'_i r_msb_j, r_msb_i r'_j
    /// and r_msb_i r_msb_j, which the dealer supplies for each wanted pair.
    /// Material: `[r_0 .. r_(n-1)]`, then `[r'_i, r_msb_i]` for each i, then
    /// for each pair (i, j) in order: `[r'_i^2, r'_i r_msb_i]` when i == j
    /// (r_msb^2 = r_msb), else `[r'_i r'_j, r'_i r_msb_j, r_msb_i r'_j,
    /// r_msb_i r_msb_j]`. Every tensor has `shape`. Linked truncations
    /// count as items n.. (in link order) in `pairs` and bring no material
    /// of their own (their r' and r_msb came with the square pair).
    /// (Spindle's fusion of Escudero et al.'s truncation, CRYPTO 2020, with
    /// Beaver's products of dealer-known masks.)
    TruncProducts {
        /// Ring of the shares.
        ring: RingId,
        /// Shape of every truncated value.
        shape: Shape,
        /// Bits shifted out of each value.
        frac_bits: Vec<u32>,
        /// Pairs (i, j), i <= j, of outputs to multiply.
        pairs: Vec<(usize, usize)>,
        /// The linked truncations of a [`Request::SquareLinked`] taking part.
        #[serde(default)]
        linked: Option<LinkedItems>,
    },
    /// Binary Beaver triple of `words` packed words (64 bits each), XOR-shared:
    /// `[a, b, c]` with c = a AND b, each a Z_2^64 tensor of shape [words].
    BinTriple {
        /// Number of 64-bit words.
        words: usize,
    },
    /// edaBit (Escudero et al., CRYPTO 2020): a random ring element shared
    /// arithmetically and its k bits XOR-shared, bit-sliced: `[r, r_bits]`,
    /// r of `shape` in `ring`, r_bits a Z_2^64 tensor [k * words(numel)]
    /// holding plane j = bit j of every element ([`crate::share::BitPlanes`]).
    EdaBit {
        /// Ring of r.
        ring: RingId,
        /// Shape of r.
        shape: Shape,
    },
    /// edaBit for an MSB over the low `bits` bits, with the products that
    /// make the carry tree's first level local (function-dependent
    /// preprocessing, `backend/carry_groups.rs`): `[r, r_bits, products]`,
    /// r of `shape` in `ring`, r_bits a Z_2^64 tensor of the low `bits`
    /// planes of r (plane j = bit j of every element), products a Z_2^64
    /// tensor of [`crate::backend::carry_groups::product_planes`]`(bits -
    /// 1)` planes: the products of NOT r's bits over each group of 4
    /// positions below bit `bits - 1`, every subset of two or more.
    EdaBitGroups {
        /// Ring of r.
        ring: RingId,
        /// Shape of r.
        shape: Shape,
        /// The MSB's bit width b (2 <= b <= k): planes of r's bits.
        bits: u32,
    },
    /// Bit injection of one value per element into `planes` bit planes
    /// ([`crate::protocol::convert::b2a_weighted_times`]): `[a, c, s_arith,
    /// s_bits]` with a uniform [n] (x's mask), daBits s over `planes`
    /// planes of n bits laid out as [`crate::protocol::convert::
    /// b2a_weighted`] reads them (plane j's bit i at index j W + i with W
    /// = 64 ceil(n / 64); s_arith and c of that length, L = (planes - 1)
    /// W + n, s_bits [words(L)]), and c = a * s with element i of a
    /// scaling bit i of every plane (0 on padding bits).
    InjectPlanes {
        /// Ring of the arithmetic values.
        ring: RingId,
        /// Elements.
        n: usize,
        /// Bit planes per element.
        planes: usize,
    },
    /// Masks for a layer of multi-input ANDs in one round
    /// (`backend/fanin.rs`; function-dependent preprocessing as in
    /// Turbospeedz and ABY2.0): `[lambda, products]`, lambda a Z_2^64
    /// tensor [inputs * words] of XOR-shared random mask planes, products
    /// [s * words] with plane j the AND of lambda's planes in subset j of
    /// [`crate::backend::fanin::product_subsets`]`(monomials)` (s subsets).
    AndFanIn {
        /// Words per plane.
        words: usize,
        /// Mask planes (the inputs opened).
        inputs: usize,
        /// The products of two to four inputs the layer computes (sorted
        /// input indices).
        monomials: Vec<Vec<u32>>,
    },
    /// daBits (Rotaru and Wood, INDOCRYPT 2019): `n` random bits s shared both
    /// ways: `[s_arith, s_bits]`, s_arith in `ring` of shape [n], s_bits a
    /// Z_2^64 tensor [words(n)].
    DaBit {
        /// Ring of the arithmetic side.
        ring: RingId,
        /// Number of bits.
        n: usize,
    },
    /// Bit injection: daBits s plus a product triple against them:
    /// `[a, c, s_arith, s_bits]` with a uniform of shape [n * width],
    /// c = a * s (bit e of s scaling values e*width..(e+1)*width), s_arith
    /// [n], s_bits [words(n)].
    BitInject {
        /// Ring of the arithmetic values.
        ring: RingId,
        /// Number of bits.
        n: usize,
        /// Values scaled by each bit.
        width: usize,
    },
}

/// One truncation linked to a square pair's mask ([`Request::SquareLinked`]):
/// the value mult * x + d (d public) truncated by `bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The multiplier of x, as a ring element (its low bits in Z_2^32).
    pub mult: u64,
    /// Bits shifted out.
    pub bits: u32,
}

/// The linked truncations of the [`Request::SquareLinked`] with id `id`,
/// taking part in a [`Request::TruncProducts`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkedItems {
    /// The square pair's id.
    pub id: u64,
    /// Its links, as it requested them.
    pub links: Vec<Link>,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Triple { ring, op, lhs, rhs } => {
                write!(f, "{} triple {lhs}x{rhs} in {ring:?}", op.name())
            }
            Request::Square { ring, shape } => write!(f, "square pair {shape} in {ring:?}"),
            Request::SquareLinked {
                ring,
                shape,
                id,
                links,
            } => {
                let bits: Vec<u32> = links.iter().map(|l| l.bits).collect();
                write!(
                    f,
                    "square pair #{id} {shape} with linked truncations >>{bits:?} in {ring:?}"
                )
            }
            Request::StaticMask { ring, id, shape } => {
                write!(f, "static mask #{id} {shape} in {ring:?}")
            }
            Request::OwnedMask { ring, id, shape } => {
                write!(f, "party 0's static mask #{id} {shape} in {ring:?}")
            }
            Request::StaticTriple {
                ring,
                id,
                op,
                lhs,
                rhs,
            } => write!(
                f,
                "{} half triple {lhs}x{rhs} against static #{id} in {ring:?}",
                op.name()
            ),
            Request::Trunc {
                ring,
                shape,
                frac_bits,
            } => {
                write!(f, "truncation pair >>{frac_bits} {shape} in {ring:?}")
            }
            Request::TruncProducts {
                ring,
                shape,
                frac_bits,
                pairs,
                linked,
            } => {
                write!(
                    f,
                    "truncations >>{frac_bits:?} with products {pairs:?} {shape} in {ring:?}"
                )?;
                match linked {
                    Some(l) => write!(f, " and {} linked to square #{}", l.links.len(), l.id),
                    None => Ok(()),
                }
            }
            Request::BinTriple { words } => write!(f, "binary triple of {words} words"),
            Request::EdaBit { ring, shape } => write!(f, "edaBits {shape} in {ring:?}"),
            Request::EdaBitGroups { ring, shape, bits } => {
                write!(f, "grouped edaBits {shape} of {bits} bits in {ring:?}")
            }
            Request::InjectPlanes { ring, n, planes } => write!(
                f,
                "injection of {n} values into {planes} bit planes in {ring:?}"
            ),
            Request::AndFanIn {
                words,
                inputs,
                monomials,
            } => write!(
                f,
                "masks of {} ANDs over {inputs} inputs of {words} words",
                monomials.len()
            ),
            Request::DaBit { ring, n } => write!(f, "{n} daBits in {ring:?}"),
            Request::BitInject { ring, n, width } => {
                write!(f, "bit injection of {n} bits x {width} values in {ring:?}")
            }
        }
    }
}

/// PRG stream of tensor `j` of request `index`: every tensor of every request
/// has its own stream, so expansion can run in any order (and on a GPU).
pub(crate) fn stream_id(index: usize, j: usize) -> u64 {
    (index as u64) << 8 | j as u64
}

/// One tensor of a request's material: its ring, its shape, and whether
/// parties hold it as additive (sum) or XOR shares.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    ring: RingId,
    shape: Shape,
    xor: bool,
    /// Expanded by party 0 alone (the full value is party 0's part); the
    /// other parties hold an empty tensor.
    party0_only: bool,
}

impl Part {
    fn arith(ring: RingId, shape: Shape) -> Self {
        Part {
            ring,
            shape,
            xor: false,
            party0_only: false,
        }
    }
    fn bits(words: usize) -> Self {
        Part {
            ring: RingId::Z64,
            shape: Shape(vec![words]),
            xor: true,
            party0_only: false,
        }
    }
}

/// The bit width of an MSB in `ring`: 2 <= bits <= k.
///
/// Errors: [`Error::Unsupported`] outside that range.
fn check_msb_bits(ring: RingId, bits: u32) -> Result<usize> {
    if !(2..=ring.bits()).contains(&bits) {
        return Err(Error::Unsupported(format!(
            "an MSB over {bits} bits in Z_2^{}: needs 2 to {} bits",
            ring.bits(),
            ring.bits()
        )));
    }
    Ok(bits as usize)
}

fn words_for(n: usize) -> usize {
    n.div_ceil(64)
}

/// Bits of an [`Request::InjectPlanes`]: `planes` planes of n bits, each
/// but the last padded to whole words.
fn inject_planes_len(n: usize, planes: usize) -> usize {
    planes.saturating_sub(1) * 64 * words_for(n) + n
}

impl Request {
    /// The ring of the arithmetic material (binary material is always
    /// packed in Z_2^64 words).
    pub fn ring(&self) -> RingId {
        match self {
            Request::Triple { ring, .. }
            | Request::Square { ring, .. }
            | Request::SquareLinked { ring, .. }
            | Request::StaticMask { ring, .. }
            | Request::OwnedMask { ring, .. }
            | Request::StaticTriple { ring, .. }
            | Request::Trunc { ring, .. }
            | Request::TruncProducts { ring, .. }
            | Request::EdaBit { ring, .. }
            | Request::EdaBitGroups { ring, .. }
            | Request::DaBit { ring, .. }
            | Request::BitInject { ring, .. }
            | Request::InjectPlanes { ring, .. } => *ring,
            Request::BinTriple { .. } | Request::AndFanIn { .. } => RingId::Z64,
        }
    }

    /// The random parts, which every party expands from its seed.
    pub(crate) fn random_parts(&self) -> Vec<Part> {
        match self {
            Request::Triple { ring, lhs, rhs, .. } => {
                vec![
                    Part::arith(*ring, lhs.clone()),
                    Part::arith(*ring, rhs.clone()),
                ]
            }
            Request::Square { ring, shape }
            | Request::SquareLinked { ring, shape, .. }
            | Request::StaticMask { ring, shape, .. }
            | Request::Trunc { ring, shape, .. }
            | Request::EdaBit { ring, shape }
            | Request::EdaBitGroups { ring, shape, .. } => vec![Part::arith(*ring, shape.clone())],
            Request::OwnedMask { ring, shape, .. } => vec![Part {
                party0_only: true,
                ..Part::arith(*ring, shape.clone())
            }],
            Request::StaticTriple { ring, lhs, .. } => vec![Part::arith(*ring, lhs.clone())],
            Request::TruncProducts {
                ring,
                shape,
                frac_bits,
                ..
            } => vec![Part::arith(*ring, shape.clone()); frac_bits.len()],
            Request::BinTriple { words } => vec![Part::bits(*words), Part::bits(*words)],
            Request::AndFanIn { words, inputs, .. } => vec![Part::bits(inputs * words)],
            Request::InjectPlanes { ring, n, .. } => vec![Part::arith(*ring, Shape(vec![*n]))],
            Request::DaBit { .. } => vec![],
            Request::BitInject { ring, n, width } => {
                vec![Part::arith(*ring, Shape(vec![n * width]))]
            }
        }
    }

    /// The correlated parts: expanded from the seed by parties 1..N-1, sent
    /// as a correction to party 0.
    pub(crate) fn correlated_parts(&self) -> Result<Vec<Part>> {
        Ok(match self {
            Request::Triple { ring, op, lhs, rhs }
            | Request::StaticTriple {
                ring, op, lhs, rhs, ..
            } => {
                vec![Part::arith(*ring, op.output_shape(lhs, rhs)?)]
            }
            Request::Square { ring, shape } => vec![Part::arith(*ring, shape.clone())],
            Request::SquareLinked {
                ring, shape, links, ..
            } => {
                trunc::check_links(*ring, links)?;
                vec![Part::arith(*ring, shape.clone()); 1 + 2 * links.len()]
            }
            Request::StaticMask { .. } | Request::OwnedMask { .. } => vec![],
            Request::Trunc {
                shape,
                frac_bits,
                ring,
            } => {
                if *frac_bits + 2 > ring.bits() {
                    return Err(Error::InvalidFixedPoint(format!(
                        "cannot truncate {frac_bits} bits in Z_2^{}",
                        ring.bits()
                    )));
                }
                vec![
                    Part::arith(*ring, shape.clone()),
                    Part::arith(*ring, shape.clone()),
                ]
            }
            Request::TruncProducts {
                ring,
                shape,
                frac_bits,
                pairs,
                linked,
            } => {
                trunc::check_trunc_products(*ring, frac_bits, linked.as_ref(), pairs)?;
                let n = 2 * frac_bits.len()
                    + pairs
                        .iter()
                        .map(|(i, j)| if i == j { 2 } else { 4 })
                        .sum::<usize>();
                vec![Part::arith(*ring, shape.clone()); n]
            }
            Request::BinTriple { words } => vec![Part::bits(*words)],
            Request::InjectPlanes { ring, n, planes } => {
                if *planes == 0 {
                    return Err(Error::Unsupported("an injection into no bit planes".into()));
                }
                let len = inject_planes_len(*n, *planes);
                vec![
                    Part::arith(*ring, Shape(vec![len])),
                    Part::arith(*ring, Shape(vec![len])),
                    Part::bits(words_for(len)),
                ]
            }
            Request::AndFanIn {
                words,
                inputs,
                monomials,
            } => {
                crate::backend::fanin::check_monomials(*inputs, monomials)?;
                let subsets = crate::backend::fanin::product_subsets(monomials).len();
                vec![Part::bits(subsets * words)]
            }
            Request::EdaBit { ring, shape } => {
                vec![Part::bits(ring.bits() as usize * words_for(shape.numel()))]
            }
            Request::EdaBitGroups { ring, shape, bits } => {
                let b = check_msb_bits(*ring, *bits)?;
                let w = words_for(shape.numel());
                vec![
                    Part::bits(b * w),
                    Part::bits(crate::backend::carry_groups::product_planes(b - 1) * w),
                ]
            }
            Request::DaBit { ring, n } => vec![
                Part::arith(*ring, Shape(vec![*n])),
                Part::bits(words_for(*n)),
            ],
            Request::BitInject { ring, n, width } => vec![
                Part::arith(*ring, Shape(vec![n * width])),
                Part::arith(*ring, Shape(vec![*n])),
                Part::bits(words_for(*n)),
            ],
        })
    }

    /// Total elements of all of the material (for sizing and logs).
    pub fn elements(&self) -> Result<usize> {
        let r: usize = self.random_parts().iter().map(|p| p.shape.numel()).sum();
        let c: usize = self
            .correlated_parts()?
            .iter()
            .map(|p| p.shape.numel())
            .sum();
        Ok(r + c)
    }
}

fn prg_any(
    be: &Device,
    ring: RingId,
    seed: &Seed,
    stream: u64,
    shape: &Shape,
) -> Result<AnyTensor> {
    Ok(match ring {
        RingId::Z32 => AnyTensor::Z32(be.prg_tensor::<u32>(seed, stream, shape)?),
        RingId::Z64 => AnyTensor::Z64(be.prg_tensor::<u64>(seed, stream, shape)?),
    })
}

/// A tensor of shape [0]: a party's part that only party 0 holds.
fn empty_any(ring: RingId) -> AnyTensor {
    match ring {
        RingId::Z32 => AnyTensor::Z32(RingTensor::zeros(vec![0])),
        RingId::Z64 => AnyTensor::Z64(RingTensor::zeros(vec![0])),
    }
}

/// a + b (additive parts) or a ^ b (XOR parts).
fn combine(be: &Device, a: &AnyTensor, b: &AnyTensor, xor: bool) -> Result<AnyTensor> {
    match (a, b) {
        (AnyTensor::Z64(a), AnyTensor::Z64(b)) if xor => {
            let data = a.data().iter().zip(b.data()).map(|(x, y)| x ^ y).collect();
            Ok(AnyTensor::Z64(RingTensor::new(a.shape().clone(), data)?))
        }
        (AnyTensor::Z64(a), AnyTensor::Z64(b)) => Ok(AnyTensor::Z64(be.add(a, b)?)),
        (AnyTensor::Z32(a), AnyTensor::Z32(b)) if !xor => Ok(AnyTensor::Z32(be.add(a, b)?)),
        _ => Err(Error::Format {
            what: "preprocessing material".into(),
            detail: "parts of different rings combined".into(),
        }),
    }
}

/// a - b (additive parts) or a ^ b (XOR parts).
fn uncombine(be: &Device, a: &AnyTensor, b: &AnyTensor, xor: bool) -> Result<AnyTensor> {
    match (a, b) {
        (AnyTensor::Z64(a), AnyTensor::Z64(b)) if !xor => Ok(AnyTensor::Z64(be.sub(a, b)?)),
        (AnyTensor::Z32(a), AnyTensor::Z32(b)) if !xor => Ok(AnyTensor::Z32(be.sub(a, b)?)),
        _ => combine(be, a, b, xor),
    }
}

/// Expands party material for request number `index` from `seed`.
///
/// `correction` is `None` for parties 1..N-1 (correlated parts come from the
/// seed) and `Some` for party 0.
pub(crate) fn expand_party(
    be: &Device,
    req: &Request,
    index: usize,
    seed: &Seed,
    correction: Option<Vec<AnyTensor>>,
) -> Result<Vec<AnyTensor>> {
    let party0 = correction.is_some();
    let randoms = req.random_parts();
    let mut out: Vec<AnyTensor> = randoms
        .iter()
        .enumerate()
        .map(|(j, p)| match p.party0_only && !party0 {
            true => Ok(empty_any(p.ring)),
            false => prg_any(be, p.ring, seed, stream_id(index, j), &p.shape),
        })
        .collect::<Result<_>>()?;
    let parts = req.correlated_parts()?;
    match correction {
        Some(corr) => {
            let ok = corr.len() == parts.len()
                && corr
                    .iter()
                    .zip(&parts)
                    .all(|(t, p)| t.shape() == &p.shape && t.ring() == p.ring);
            if !ok {
                return Err(Error::Format {
                    what: "preprocessing correction".into(),
                    detail: format!("correction for request #{index} ({req}) has the wrong shapes"),
                });
            }
            out.extend(corr);
        }
        None => {
            for (j, p) in parts.iter().enumerate() {
                let stream = stream_id(index, randoms.len() + j);
                out.push(prg_any(be, p.ring, seed, stream, &p.shape)?);
            }
        }
    }
    Ok(out)
}

/// The dealer's side: from every party's seed, computes party 0's correction
/// for request `index`. `statics` holds the full masks of static operands
/// (filled by [`Request::StaticMask`], read by [`Request::StaticTriple`]);
/// `private` is the dealer's own seed, for values only it chooses (daBits).
pub(crate) fn party0_correction(
    be: &Device,
    req: &Request,
    index: usize,
    seeds: &[Seed],
    private: &Seed,
    statics: &mut HashMap<u64, AnyTensor>,
) -> Result<Vec<AnyTensor>> {
    // Full random values: the sum (or XOR) of every party's expansion.
    let randoms = req.random_parts();
    let mut full = Vec::with_capacity(randoms.len());
    for (j, p) in randoms.iter().enumerate() {
        let mut acc = prg_any(be, p.ring, &seeds[0], stream_id(index, j), &p.shape)?;
        let holders = if p.party0_only { &[][..] } else { &seeds[1..] };
        for seed in holders {
            acc = combine(
                be,
                &acc,
                &prg_any(be, p.ring, seed, stream_id(index, j), &p.shape)?,
                p.xor,
            )?;
        }
        full.push(acc);
    }
    let correlated = match req.ring() {
        RingId::Z32 => correlate::<u32>(be, req, index, full, private, statics)?,
        RingId::Z64 => correlate::<u64>(be, req, index, full, private, statics)?,
    };
    // Party 0's share = full value minus (or XOR) what parties 1..N-1 expand.
    let parts = req.correlated_parts()?;
    correlated
        .into_iter()
        .zip(&parts)
        .enumerate()
        .map(|(j, (mut corr, p))| {
            let stream = stream_id(index, randoms.len() + j);
            for seed in &seeds[1..] {
                corr = uncombine(
                    be,
                    &corr,
                    &prg_any(be, p.ring, seed, stream, &p.shape)?,
                    p.xor,
                )?;
            }
            Ok(corr)
        })
        .collect()
}

/// The full (unshared) correlated values of a request from its full random
/// values: each kind's recipe, in the file of its protocol family.
fn correlate<R: Ring>(
    be: &Device,
    req: &Request,
    index: usize,
    full: Vec<AnyTensor>,
    private: &Seed,
    statics: &mut HashMap<u64, AnyTensor>,
) -> Result<Vec<AnyTensor>> {
    let arith = |t: &AnyTensor| R::from_any(t.clone());
    Ok(match req {
        Request::Triple { op, .. } => vec![beaver::triple(
            be,
            *op,
            &arith(&full[0])?,
            &arith(&full[1])?,
        )?],
        Request::Square { .. } => vec![beaver::square(be, &arith(&full[0])?)?],
        Request::SquareLinked { id, links, .. } => {
            statics.insert(*id, full[0].clone());
            trunc::square_linked(be, &arith(&full[0])?, links)?
        }
        Request::StaticMask { id, .. } | Request::OwnedMask { id, .. } => {
            statics.insert(*id, full[0].clone());
            vec![]
        }
        Request::StaticTriple { id, op, rhs, .. } => {
            let b = statics
                .get(id)
                .cloned()
                .ok_or_else(|| Error::PreprocessingMismatch {
                    index,
                    expected: format!("a static mask #{id} requested earlier"),
                    got: req.to_string(),
                })?;
            let b = R::from_any(b)?;
            if b.shape() != rhs {
                return Err(Error::PreprocessingMismatch {
                    index,
                    expected: format!("static operand #{id} of shape {}", b.shape()),
                    got: req.to_string(),
                });
            }
            vec![beaver::triple(be, *op, &arith(&full[0])?, &b)?]
        }
        Request::Trunc { frac_bits, .. } => trunc::pair(&arith(&full[0])?, *frac_bits)?,
        Request::TruncProducts {
            frac_bits,
            pairs,
            linked,
            ..
        } => {
            let masks = full
                .iter()
                .map(arith)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            // The square's mask, kept since its request and released here.
            let square_mask = match linked {
                None => None,
                Some(l) => {
                    let a = statics
                        .remove(&l.id)
                        .ok_or_else(|| Error::PreprocessingMismatch {
                            index,
                            expected: format!("a square pair #{} requested earlier", l.id),
                            got: req.to_string(),
                        })?;
                    Some((R::from_any(a)?, &l.links[..]))
                }
            };
            trunc::products(be, &masks, frac_bits, square_mask, pairs)?
        }
        Request::BinTriple { .. } => {
            vec![binary::bin_triple(
                &u64::from_any(full[0].clone())?,
                &u64::from_any(full[1].clone())?,
            )?]
        }
        Request::EdaBit { .. } => vec![binary::edabit_bits(&arith(&full[0])?)?],
        Request::AndFanIn {
            words, monomials, ..
        } => vec![binary::and_fanin(
            &u64::from_any(full[0].clone())?,
            monomials,
            *words,
        )?],
        Request::EdaBitGroups { bits, .. } => {
            binary::edabit_groups(&arith(&full[0])?, *bits as usize)?
        }
        Request::DaBit { n, .. } => binary::dabits::<R>(be, private, stream_id(index, 0), *n)?,
        Request::InjectPlanes { n, planes, .. } => binary::inject_planes(
            be,
            private,
            stream_id(index, 0),
            &arith(&full[0])?,
            *n,
            *planes,
        )?,
        Request::BitInject { n, width, .. } => binary::bit_inject(
            be,
            private,
            stream_id(index, 0),
            &arith(&full[0])?,
            *n,
            *width,
        )?,
    })
}

/// Zero material of the right shapes, for dry runs.
pub(crate) fn zero_material(req: &Request) -> Result<Vec<AnyTensor>> {
    let mut parts = req.random_parts();
    parts.extend(req.correlated_parts()?);
    Ok(parts
        .into_iter()
        .map(|p| match p.ring {
            RingId::Z32 => AnyTensor::Z32(RingTensor::zeros(p.shape)),
            RingId::Z64 => AnyTensor::Z64(RingTensor::zeros(p.shape)),
        })
        .collect())
}
