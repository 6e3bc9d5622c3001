//! The dealer's recipes for truncation ([`crate::protocol::trunc`];
//! Escudero et al., CRYPTO 2020) and its fusions in
//! [`crate::protocol::nonlinear`]: truncation pairs (the mask r reduced
//! mod 2^(k-1) and shifted, and r's top bit), products of truncated masks
//! for truncation groups ([`super::Request::TruncProducts`]), and square
//! pairs whose mask also masks linked truncations
//! ([`super::Request::SquareLinked`]).

use crate::backend::{Backend, Device};
use crate::error::{Error, Result};
use crate::ring::{AnyTensor, Ring, RingId, RingTensor};

use super::{Link, LinkedItems};

/// `[r', r_msb]` of a truncation by `bits` from its full mask r.
///
/// Errors: none beyond tensor construction.
pub(super) fn pair<R: Ring>(r: &RingTensor<R>, bits: u32) -> Result<Vec<AnyTensor>> {
    let (s, m) = trunc_parts(r, bits)?;
    Ok(vec![R::into_any(s), R::into_any(m)])
}

/// `[a^2]`, then `[r'_j, r_msb_j]` of each link's mask r_j = -mult_j a
/// ([`super::Request::SquareLinked`]).
///
/// Errors: device errors.
pub(super) fn square_linked<R: Ring>(
    be: &Device,
    a: &RingTensor<R>,
    links: &[Link],
) -> Result<Vec<AnyTensor>> {
    let mut out = vec![R::into_any(be.mul(a, a)?)];
    for (s, m) in linked_parts(a, links)? {
        out.push(R::into_any(s));
        out.push(R::into_any(m));
    }
    Ok(out)
}

/// The material of a [`super::Request::TruncProducts`] after its masks: `[r'_i,
/// r_msb_i]` for each truncation i (mask `masks[i]`, shift `frac_bits[i]`),
/// then for each pair (i, j) the products of their parts (two for a
/// square, four otherwise), the linked truncations of an earlier square
/// pair (its mask a and links) counting as items n.. .
///
/// Errors: device errors.
pub(super) fn products<R: Ring>(
    be: &Device,
    masks: &[RingTensor<R>],
    frac_bits: &[u32],
    square_mask: Option<(RingTensor<R>, &[Link])>,
    pairs: &[(usize, usize)],
) -> Result<Vec<AnyTensor>> {
    let mut parts = Vec::with_capacity(frac_bits.len());
    for (r, &bits) in masks.iter().zip(frac_bits) {
        parts.push(trunc_parts(r, bits)?);
    }
    let mut out: Vec<AnyTensor> = parts
        .iter()
        .flat_map(|(s, m)| [R::into_any(s.clone()), R::into_any(m.clone())])
        .collect();
    if let Some((a, links)) = square_mask {
        parts.extend(linked_parts(&a, links)?);
    }
    for &(i, j) in pairs {
        let ((si, mi), (sj, mj)) = (&parts[i], &parts[j]);
        let mut prods = vec![be.mul(si, sj)?, be.mul(si, mj)?];
        if i != j {
            prods.push(be.mul(mi, sj)?);
            prods.push(be.mul(mi, mj)?);
        }
        out.extend(prods.into_iter().map(R::into_any));
    }
    Ok(out)
}

/// r' = (r mod 2^(k-1)) >> bits and r_msb, the correlated parts of a
/// truncation pair.
fn trunc_parts<R: Ring>(r: &RingTensor<R>, bits: u32) -> Result<(RingTensor<R>, RingTensor<R>)> {
    let low = R::ONE.shl(R::BITS - 1).wrapping_sub(R::ONE);
    let shifted: Vec<R> = r.data().iter().map(|&v| (v & low).shr(bits)).collect();
    let msb: Vec<R> = r.data().iter().map(|&v| v.shr(R::BITS - 1)).collect();
    Ok((
        RingTensor::new(r.shape().clone(), shifted)?,
        RingTensor::new(r.shape().clone(), msb)?,
    ))
}

/// The truncation parts of each link's mask r_j = -mult_j * a.
fn linked_parts<R: Ring>(
    a: &RingTensor<R>,
    links: &[Link],
) -> Result<Vec<(RingTensor<R>, RingTensor<R>)>> {
    links
        .iter()
        .map(|l| {
            let k = R::from_u64(l.mult).wrapping_neg();
            let r: Vec<R> = a.data().iter().map(|&v| v.wrapping_mul(k)).collect();
            trunc_parts(&RingTensor::new(a.shape().clone(), r)?, l.bits)
        })
        .collect()
}

/// Shifts that fit the ring, and few enough tensors for the per-request
/// PRG streams (256).
pub(super) fn check_links(ring: RingId, links: &[Link]) -> Result<()> {
    if let Some(l) = links.iter().find(|l| l.bits + 2 > ring.bits()) {
        return Err(Error::InvalidFixedPoint(format!(
            "cannot truncate {} bits in Z_2^{}",
            l.bits,
            ring.bits()
        )));
    }
    if 2 + 2 * links.len() > 256 {
        return Err(Error::Unsupported(format!(
            "a square pair with {} linked truncations exceeds one request's 256 tensors",
            links.len()
        )));
    }
    Ok(())
}

/// Checks a [`super::Request::TruncProducts`]: shifts that fit the ring, pairs
/// (i <= j) of existing truncations (linked ones after the group's own),
/// and few enough tensors for the per-request PRG streams (256).
pub(super) fn check_trunc_products(
    ring: RingId,
    frac_bits: &[u32],
    linked: Option<&LinkedItems>,
    pairs: &[(usize, usize)],
) -> Result<()> {
    if let Some(b) = frac_bits.iter().find(|&&b| b + 2 > ring.bits()) {
        return Err(Error::InvalidFixedPoint(format!(
            "cannot truncate {b} bits in Z_2^{}",
            ring.bits()
        )));
    }
    if let Some(l) = linked {
        check_links(ring, &l.links)?;
    }
    let n = frac_bits.len() + linked.map_or(0, |l| l.links.len());
    if let Some(p) = pairs.iter().find(|(i, j)| i > j || *j >= n) {
        return Err(Error::Unsupported(format!(
            "truncation product {p:?} is not a pair i <= j of the {n} truncations"
        )));
    }
    if 3 * n + 4 * pairs.len() > 256 {
        return Err(Error::Unsupported(format!(
            "{n} truncations with {} products exceed one request's 256 tensors",
            pairs.len()
        )));
    }
    Ok(())
}
