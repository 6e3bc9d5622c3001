//! What each kind of correlated randomness is, and how it is made.

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
    /// Half triple against a static operand: `[a, c]` with c = a (op) b,
    /// b the mask of static operand `id`.
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
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Triple { ring, op, lhs, rhs } => {
                write!(f, "{} triple {lhs}x{rhs} in {ring:?}", op.name())
            }
            Request::Square { ring, shape } => write!(f, "square pair {shape} in {ring:?}"),
            Request::StaticMask { ring, id, shape } => {
                write!(f, "static mask #{id} {shape} in {ring:?}")
            }
            Request::StaticTriple {
                ring,
                id,
                op,
                lhs,
                rhs,
            } => {
                write!(
                    f,
                    "{} half triple {lhs}x{rhs} against static #{id} in {ring:?}",
                    op.name()
                )
            }
            Request::Trunc {
                ring,
                shape,
                frac_bits,
            } => write!(f, "truncation pair >>{frac_bits} {shape} in {ring:?}"),
        }
    }
}

/// PRG stream of tensor `j` of request `index`: every tensor of every request
/// has its own stream, so expansion can run in any order (and on a GPU).
pub(crate) fn stream_id(index: usize, j: usize) -> u64 {
    (index as u64) << 8 | j as u64
}

impl Request {
    /// The ring of the material.
    pub fn ring(&self) -> RingId {
        match self {
            Request::Triple { ring, .. }
            | Request::Square { ring, .. }
            | Request::StaticMask { ring, .. }
            | Request::StaticTriple { ring, .. }
            | Request::Trunc { ring, .. } => *ring,
        }
    }

    /// Shapes of the random parts, which every party expands from its seed.
    pub(crate) fn random_shapes(&self) -> Vec<Shape> {
        match self {
            Request::Triple { lhs, rhs, .. } => vec![lhs.clone(), rhs.clone()],
            Request::Square { shape, .. }
            | Request::StaticMask { shape, .. }
            | Request::Trunc { shape, .. } => {
                vec![shape.clone()]
            }
            Request::StaticTriple { lhs, .. } => vec![lhs.clone()],
        }
    }

    /// Shapes of the correlated parts: expanded from the seed by parties
    /// 1..N-1, sent as a correction to party 0.
    pub(crate) fn correlated_shapes(&self) -> Result<Vec<Shape>> {
        Ok(match self {
            Request::Triple { op, lhs, rhs, .. } | Request::StaticTriple { op, lhs, rhs, .. } => {
                vec![op.output_shape(lhs, rhs)?]
            }
            Request::Square { shape, .. } => vec![shape.clone()],
            Request::StaticMask { .. } => vec![],
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
                vec![shape.clone(), shape.clone()]
            }
        })
    }

    /// Total elements of all of the material (for sizing and logs).
    pub fn elements(&self) -> Result<usize> {
        let r: usize = self.random_shapes().iter().map(Shape::numel).sum();
        let c: usize = self.correlated_shapes()?.iter().map(Shape::numel).sum();
        Ok(r + c)
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
    fn typed<R: Ring>(
        be: &Device,
        req: &Request,
        index: usize,
        seed: &Seed,
        correction: Option<Vec<AnyTensor>>,
    ) -> Result<Vec<AnyTensor>> {
        let randoms = req.random_shapes();
        let mut out: Vec<AnyTensor> = randoms
            .iter()
            .enumerate()
            .map(|(j, s)| R::into_any(be.prg_tensor::<R>(seed, stream_id(index, j), s)))
            .collect();
        let shapes = req.correlated_shapes()?;
        match correction {
            Some(corr) => {
                let ok = corr.len() == shapes.len()
                    && corr
                        .iter()
                        .zip(&shapes)
                        .all(|(t, s)| t.shape() == s && t.ring() == R::ID);
                if !ok {
                    return Err(Error::Format {
                        what: "preprocessing correction".into(),
                        detail: format!(
                            "correction for request #{index} ({req}) has the wrong shapes"
                        ),
                    });
                }
                out.extend(corr);
            }
            None => out.extend(shapes.iter().enumerate().map(|(j, s)| {
                R::into_any(be.prg_tensor::<R>(seed, stream_id(index, randoms.len() + j), s))
            })),
        }
        Ok(out)
    }
    match req.ring() {
        RingId::Z32 => typed::<u32>(be, req, index, seed, correction),
        RingId::Z64 => typed::<u64>(be, req, index, seed, correction),
    }
}

/// The dealer's side: from every party's seed, computes party 0's correction
/// for request `index`. `statics` holds the full masks of static operands
/// (filled by [`Request::StaticMask`], read by [`Request::StaticTriple`]).
pub(crate) fn party0_correction(
    be: &Device,
    req: &Request,
    index: usize,
    seeds: &[Seed],
    statics: &mut HashMap<u64, AnyTensor>,
) -> Result<Vec<AnyTensor>> {
    fn typed<R: Ring>(
        be: &Device,
        req: &Request,
        index: usize,
        seeds: &[Seed],
        statics: &mut HashMap<u64, AnyTensor>,
    ) -> Result<Vec<AnyTensor>> {
        // Full random values: the sum of every party's expansion.
        let randoms = req.random_shapes();
        let full: Vec<RingTensor<R>> = randoms
            .iter()
            .enumerate()
            .map(|(j, s)| {
                let mut acc = RingTensor::<R>::zeros(s.clone());
                for seed in seeds {
                    be.add_assign(&mut acc, &be.prg_tensor::<R>(seed, stream_id(index, j), s))?;
                }
                Ok(acc)
            })
            .collect::<Result<_>>()?;
        let correlated: Vec<RingTensor<R>> = match req {
            Request::Triple { op, .. } => vec![op.apply(be, &full[0], &full[1])?],
            Request::Square { .. } => vec![be.mul(&full[0], &full[0])?],
            Request::StaticMask { id, .. } => {
                statics.insert(*id, R::into_any(full[0].clone()));
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
                vec![op.apply(be, &full[0], &b)?]
            }
            Request::Trunc { frac_bits, .. } => {
                let r = &full[0];
                let low = R::ONE.shl(R::BITS - 1).wrapping_sub(R::ONE);
                let shifted: Vec<R> = r
                    .data()
                    .iter()
                    .map(|&v| (v & low).shr(*frac_bits))
                    .collect();
                let msb: Vec<R> = r.data().iter().map(|&v| v.shr(R::BITS - 1)).collect();
                vec![
                    RingTensor::new(r.shape().clone(), shifted)?,
                    RingTensor::new(r.shape().clone(), msb)?,
                ]
            }
        };
        // Party 0's share = full value minus what parties 1..N-1 expand.
        correlated
            .into_iter()
            .enumerate()
            .map(|(j, mut corr)| {
                let stream = stream_id(index, randoms.len() + j);
                for seed in &seeds[1..] {
                    corr = be.sub(&corr, &be.prg_tensor::<R>(seed, stream, corr.shape()))?;
                }
                Ok(R::into_any(corr))
            })
            .collect()
    }
    match req.ring() {
        RingId::Z32 => typed::<u32>(be, req, index, seeds, statics),
        RingId::Z64 => typed::<u64>(be, req, index, seeds, statics),
    }
}

/// Zero material of the right shapes, for dry runs.
pub(crate) fn zero_material(req: &Request) -> Result<Vec<AnyTensor>> {
    fn typed<R: Ring>(req: &Request) -> Result<Vec<AnyTensor>> {
        let mut shapes = req.random_shapes();
        shapes.extend(req.correlated_shapes()?);
        Ok(shapes
            .into_iter()
            .map(|s| R::into_any(RingTensor::<R>::zeros(s)))
            .collect())
    }
    match req.ring() {
        RingId::Z32 => typed::<u32>(req),
        RingId::Z64 => typed::<u64>(req),
    }
}
