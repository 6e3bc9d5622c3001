//! The dealer's recipes for binary shares and conversions
//! ([`crate::protocol::bitwise`], [`crate::protocol::compare`],
//! [`crate::protocol::convert`]): binary triples c = a AND b, edaBits (a
//! mask's bit planes; Escudero et al., CRYPTO 2020), daBits (a bit shared
//! both ways; Rotaru and Wood, INDOCRYPT 2019) and bit injection (daBits
//! plus a product triple against them).

use crate::backend::{Backend, Device};
use crate::error::Result;
use crate::prg::Seed;
use crate::ring::{AnyTensor, BitPlanes, Ring, RingTensor, Shape};

/// `[c]` = a AND b over the full words a and b.
///
/// Errors: none beyond tensor construction.
pub(super) fn bin_triple(a: &RingTensor<u64>, b: &RingTensor<u64>) -> Result<AnyTensor> {
    let c: Vec<u64> = a.data().iter().zip(b.data()).map(|(x, y)| x & y).collect();
    Ok(AnyTensor::Z64(RingTensor::new(a.shape().clone(), c)?))
}

/// `[r's bit planes]` (k planes, words per plane) of the full edaBit mask r.
///
/// Errors: none beyond tensor construction.
pub(super) fn edabit_bits<R: Ring>(r: &RingTensor<R>) -> Result<AnyTensor> {
    let planes = BitPlanes::from_ring(r);
    let n = planes.data().len();
    Ok(AnyTensor::Z64(RingTensor::new(
        [n],
        planes.data().to_vec(),
    )?))
}

/// `[r's low bits planes, the products of NOT r over each group]` of the
/// full mask r of a grouped edaBit (`backend/carry_groups.rs`).
///
/// Errors: none beyond tensor construction.
pub(super) fn edabit_groups<R: Ring>(r: &RingTensor<R>, bits: usize) -> Result<Vec<AnyTensor>> {
    let planes = BitPlanes::from_ring(r);
    let words = planes.data().len() / R::BITS as usize;
    let low = planes.data()[..bits * words].to_vec();
    let products = crate::backend::carry_groups::full_products(&low, bits - 1, words)?;
    Ok(vec![
        AnyTensor::Z64(RingTensor::new([low.len()], low)?),
        AnyTensor::Z64(RingTensor::new([products.len()], products)?),
    ])
}

/// `[c, s_arith, s_bits]` of [`super::Request::InjectPlanes`]: daBits s
/// for `planes` planes of n bits laid out as [`crate::protocol::convert::
/// b2a_weighted`] reads them (plane j at j * 64 * words), and c = a * s
/// with element i of a scaling bit i of every plane (0 on padding bits).
///
/// Errors: device errors.
pub(super) fn inject_planes<R: Ring>(
    be: &Device,
    private: &Seed,
    stream: u64,
    a: &RingTensor<R>,
    n: usize,
    planes: usize,
) -> Result<Vec<AnyTensor>> {
    let stride = 64 * n.div_ceil(64);
    let len = super::inject_planes_len(n, planes);
    let bits = dealer_bits(be, private, stream, len)?;
    let s = bits_to_ring::<R>(&bits, len)?;
    let c: Vec<R> = s
        .data()
        .iter()
        .enumerate()
        .map(|(k, &sk)| match a.data().get(k % stride.max(1)) {
            Some(&ak) if k % stride.max(1) < n => ak.wrapping_mul(sk),
            _ => R::ZERO,
        })
        .collect();
    Ok(vec![
        R::into_any(RingTensor::new([len], c)?),
        R::into_any(s),
        AnyTensor::Z64(RingTensor::new([bits.len()], bits)?),
    ])
}

/// The products of the masks of a layer of multi-input ANDs
/// ([`super::Request::AndFanIn`]): from the full mask planes `lambda`,
/// one plane per subset of [`crate::backend::fanin::product_subsets`].
pub(super) fn and_fanin(
    lambda: &RingTensor<u64>,
    monomials: &[Vec<u32>],
    words: usize,
) -> Result<AnyTensor> {
    let products = crate::backend::fanin::full_products(lambda.try_data()?, monomials, words)?;
    Ok(AnyTensor::Z64(RingTensor::new([products.len()], products)?))
}

/// n random bits only the dealer knows, from its private seed's `stream`
/// (words, the bits past n cleared).
fn dealer_bits(be: &Device, private: &Seed, stream: u64, n: usize) -> Result<Vec<u64>> {
    let mut w = be
        .prg_tensor::<u64>(private, stream, &Shape(vec![n.div_ceil(64)]))?
        .into_data();
    if !n.is_multiple_of(64) {
        if let Some(last) = w.last_mut() {
            *last &= (1u64 << (n % 64)) - 1;
        }
    }
    Ok(w)
}

/// The bits of `bits` as ring elements 0/1 [n].
fn bits_to_ring<R: Ring>(bits: &[u64], n: usize) -> Result<RingTensor<R>> {
    let data = (0..n)
        .map(|e| R::from_u64((bits[e / 64] >> (e % 64)) & 1))
        .collect();
    Ok(RingTensor::new([n], data)?)
}

/// `[s_arith, s_bits]`: n daBits of the dealer's choosing.
///
/// Errors: device errors.
pub(super) fn dabits<R: Ring>(
    be: &Device,
    private: &Seed,
    stream: u64,
    n: usize,
) -> Result<Vec<AnyTensor>> {
    let bits = dealer_bits(be, private, stream, n)?;
    Ok(vec![
        R::into_any(bits_to_ring::<R>(&bits, n)?),
        AnyTensor::Z64(RingTensor::new([bits.len()], bits)?),
    ])
}

/// `[c, s_arith, s_bits]` of a bit injection: n daBits s and c = a * s,
/// bit e scaling a's values e*width..(e+1)*width.
///
/// Errors: device errors.
pub(super) fn bit_inject<R: Ring>(
    be: &Device,
    private: &Seed,
    stream: u64,
    a: &RingTensor<R>,
    n: usize,
    width: usize,
) -> Result<Vec<AnyTensor>> {
    let bits = dealer_bits(be, private, stream, n)?;
    let s = bits_to_ring::<R>(&bits, n)?;
    let c: Vec<R> = a
        .data()
        .iter()
        .enumerate()
        .map(|(i, &v)| v.wrapping_mul(s.data()[i / width]))
        .collect();
    Ok(vec![
        R::into_any(RingTensor::new([n * width], c)?),
        R::into_any(s),
        AnyTensor::Z64(RingTensor::new([bits.len()], bits)?),
    ])
}
