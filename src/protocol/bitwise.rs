//! AND of XOR-shared bits with dealer binary triples (Beaver's trick over
//! GF(2), as in CrypTen's binary shares and Piranha's bit-sliced circuits).
//!
//! With a triple ([a], [b], [c = a AND b]) the parties open e = x ^ a and
//! f = y ^ b in one round, then z_i = c_i ^ (e & b_i) ^ (f & a_i) ^ [p0](e & f).
//! Exact. Rounds: 1 for any number of ANDs batched in one call. Bytes sent
//! per party: (N - 1) * 2 * 8 * words, words = planes * ceil(numel / 64).

use crate::error::{Error, Result};
use crate::preprocess::Request;
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
        if x.share().data().len() != y.share().data().len() || x.planes() != y.planes() {
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
    let words: Vec<(&[u64], &[u64])> = pairs
        .iter()
        .map(|(x, y)| (x.share().data(), y.share().data()))
        .collect();
    let z = and_words(sess, &words).await?;
    pairs
        .iter()
        .zip(z)
        .map(|((x, _), z)| {
            Ok(BinShared::from_share(BitPlanes::from_words(
                x.shape().clone(),
                x.planes(),
                z,
            )?))
        })
        .collect()
}

/// AND of XOR-shared packed words, pair by pair, all in ONE round: the
/// layout-free core of [`and_many`] for circuits that keep raw planes.
///
/// Errors: [`Error::ShapeMismatch`] when the two sides of a pair differ in
/// length; preprocessing and transport errors.
pub async fn and_words(sess: &Session, pairs: &[(&[u64], &[u64])]) -> Result<Vec<Vec<u64>>> {
    if let Some((x, y)) = pairs.iter().find(|(x, y)| x.len() != y.len()) {
        return Err(Error::shape(
            "and",
            format!("{} words AND {} words", x.len(), y.len()),
        ));
    }
    let words: usize = pairs.iter().map(|(x, _)| x.len()).sum();
    let req = Request::BinTriple { words };
    let m = sess.fetch::<u64>(&req)?;
    let [a, b, c]: [_; 3] = m.try_into().map_err(|_| Error::Format {
        what: "preprocessing material".into(),
        detail: format!("{req} should have 3 tensors"),
    })?;
    let (a, b, c) = (a.data(), b.data(), c.data());
    // e = x ^ a and f = y ^ b, each formed in one pass.
    let mut e = Vec::with_capacity(words);
    let mut f = Vec::with_capacity(words);
    let mut off = 0;
    for (x, y) in pairs {
        let r = off..off + x.len();
        e.extend(x.iter().zip(&a[r.clone()]).map(|(x, m)| x ^ m));
        f.extend(y.iter().zip(&b[r.clone()]).map(|(y, m)| y ^ m));
        off = r.end;
    }
    let opened = sess.open_xor_owned(vec![e, f]).await?;
    let (e, f) = (&opened[0], &opened[1]);
    let party0 = if sess.party() == 0 { u64::MAX } else { 0 };
    let mut out = Vec::with_capacity(pairs.len());
    let mut off = 0;
    for (x, _) in pairs {
        let r = off..off + x.len();
        // Slices of the pair's length: no bounds checks in the loop.
        let (a, b, c, e, f) = (
            &a[r.clone()],
            &b[r.clone()],
            &c[r.clone()],
            &e[r.clone()],
            &f[r.clone()],
        );
        let z: Vec<u64> = (0..r.len())
            .map(|i| c[i] ^ (e[i] & b[i]) ^ (f[i] & a[i]) ^ (e[i] & f[i] & party0))
            .collect();
        out.push(z);
        off = r.end;
    }
    Ok(out)
}

/// [x AND y]: one round.
///
/// Errors: as [`and_many`].
pub async fn and(sess: &Session, x: &BinShared, y: &BinShared) -> Result<BinShared> {
    Ok(and_many(sess, &[(x, y)]).await?.pop().expect("one pair"))
}
