//! AND of XOR-shared bits with dealer binary triples (Beaver's trick over
//! GF(2), as in CrypTen's binary shares and Piranha's bit-sliced circuits).
//!
//! With a triple ([a], [b], [c = a AND b]) the parties open e = x ^ a and
//! f = y ^ b in one round, then z_i = c_i ^ (e & b_i) ^ (f & a_i) ^ [p0](e & f).
//! Exact. Rounds: 1 for any number of ANDs batched in one call. Bytes sent
//! per party: (N - 1) * 2 * 8 * words, words = planes * ceil(numel / 64).

use std::borrow::Cow;

use crate::backend::{Backend, MpcSteps};
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::RingTensor;
use crate::session::Session;
use crate::share::{BinShared, BitPlanes};

/// [x AND y] for each pair, all in ONE round.
///
/// Errors: [`Error::ShapeMismatch`] when the two sides of a pair differ in
/// layout; preprocessing and transport errors.
pub async fn and_many(
    sess: &Session,
    pairs: &[(&BinShared, &BinShared)],
) -> Result<Vec<BinShared>> {
    for (x, y) in pairs {
        if x.share().words_tensor().numel() != y.share().words_tensor().numel()
            || x.planes() != y.planes()
        {
            return Err(Error::shape(
                "and",
                format!(
                    "{} planes of {} AND {} planes of {}",
                    x.planes(),
                    x.shape(),
                    y.planes(),
                    y.shape()
                ),
            ));
        }
    }
    let words: Vec<(&RingTensor<u64>, &RingTensor<u64>)> = pairs
        .iter()
        .map(|(x, y)| (x.share().words_tensor(), y.share().words_tensor()))
        .collect();
    let z = and_tensors(sess, &words).await?;
    pairs
        .iter()
        .zip(z)
        .map(|((x, _), z)| {
            Ok(BinShared::from_share(BitPlanes::from_tensor(
                x.shape().clone(),
                x.planes(),
                z,
            )?))
        })
        .collect()
}

/// AND of XOR-shared words held as tensors (any shapes; each pair's two
/// sides of one size), pair by pair, all in ONE round, on the backend:
/// the masked e = x ^ a and f = y ^ b of every pair in one opening, then
/// [`MpcSteps::and_combine`]. Outputs are flat ([len] words).
///
/// Errors: [`Error::ShapeMismatch`] when the two sides of a pair differ in
/// length; preprocessing and transport errors.
pub async fn and_tensors(
    sess: &Session,
    pairs: &[(&RingTensor<u64>, &RingTensor<u64>)],
) -> Result<Vec<RingTensor<u64>>> {
    if let Some((x, y)) = pairs.iter().find(|(x, y)| x.numel() != y.numel()) {
        return Err(Error::shape(
            "and",
            format!("{} words AND {} words", x.numel(), y.numel()),
        ));
    }
    let words: usize = pairs.iter().map(|(x, _)| x.numel()).sum();
    let req = Request::BinTriple { words };
    let m = sess.fetch::<u64>(&req)?;
    let [a, b, c]: [RingTensor<u64>; 3] = m.try_into().map_err(|_| Error::Format {
        what: "preprocessing material".into(),
        detail: format!("{req} should have 3 tensors"),
    })?;
    let be = sess.backend();
    let flat = |t: &RingTensor<u64>| t.clone().reshape([t.numel()]);
    let (a, b, c) = (flat(&a)?, flat(&b)?, flat(&c)?);
    // All the pairs' x (and y) as one run of words, masked in one op.
    let xs = joined(be, pairs.iter().map(|p| p.0).collect())?;
    let ys = joined(be, pairs.iter().map(|p| p.1).collect())?;
    let e = be.xor_words(&xs, &a)?;
    let f = be.xor_words(&ys, &b)?;
    let opened = sess.open_xor_owned(vec![e, f]).await?;
    let z = be.and_combine(&opened[0], &opened[1], [&a, &b, &c], sess.party() == 0)?;
    if pairs.len() == 1 {
        return Ok(vec![z]);
    }
    let mut out = Vec::with_capacity(pairs.len());
    let mut off = 0;
    for (x, _) in pairs {
        out.push(be.slice_axis(&z, 0, off, x.numel())?);
        off += x.numel();
    }
    Ok(out)
}

/// The words of `parts` as one flat run: no copy for a single rank-1
/// part, one concatenation otherwise.
fn joined<'a>(
    be: &impl Backend,
    parts: Vec<&'a RingTensor<u64>>,
) -> Result<Cow<'a, RingTensor<u64>>> {
    if let [one] = parts[..] {
        if one.shape().rank() == 1 {
            return Ok(Cow::Borrowed(one));
        }
    }
    if parts.is_empty() {
        return Ok(Cow::Owned(RingTensor::zeros([0])));
    }
    let all_flat = parts.iter().all(|t| t.shape().rank() == 1);
    let flat: Vec<RingTensor<u64>> = match all_flat {
        true => Vec::new(),
        false => parts
            .iter()
            .map(|t| (*t).clone().reshape([t.numel()]))
            .collect::<std::result::Result<_, _>>()?,
    };
    let refs: Vec<&RingTensor<u64>> = match all_flat {
        true => parts,
        false => flat.iter().collect(),
    };
    Ok(Cow::Owned(be.concat_axis(&refs, 0)?))
}

/// [x AND y]: one round.
///
/// Errors: as [`and_many`].
pub async fn and(sess: &Session, x: &BinShared, y: &BinShared) -> Result<BinShared> {
    Ok(and_many(sess, &[(x, y)]).await?.pop().expect("one pair"))
}
