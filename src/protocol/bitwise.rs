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
    let words: usize = pairs.iter().map(|(x, _)| x.share().data().len()).sum();
    let req = Request::BinTriple { words };
    let m = sess.fetch::<u64>(&req)?;
    let [a, b, c]: [_; 3] = m.try_into().map_err(|_| Error::Format {
        what: "preprocessing material".into(),
        detail: format!("{req} should have 3 tensors"),
    })?;
    let (a, b) = (a.data(), b.data());
    let mut e = Vec::with_capacity(words);
    let mut f = Vec::with_capacity(words);
    for (x, y) in pairs {
        e.extend(x.share().data().iter());
        f.extend(y.share().data().iter());
    }
    e.iter_mut().zip(a).for_each(|(v, m)| *v ^= m);
    f.iter_mut().zip(b).for_each(|(v, m)| *v ^= m);
    let opened = sess.open_xor(&[&e, &f]).await?;
    let (e, f) = (&opened[0], &opened[1]);
    let party0 = sess.party() == 0;
    let z: Vec<u64> = (0..words)
        .map(|i| {
            let mut v = c.data()[i] ^ (e[i] & b[i]) ^ (f[i] & a[i]);
            if party0 {
                v ^= e[i] & f[i];
            }
            v
        })
        .collect();
    let mut out = Vec::with_capacity(pairs.len());
    let mut off = 0;
    for (x, _) in pairs {
        let len = x.share().data().len();
        out.push(BinShared::from_share(BitPlanes::from_words(
            x.shape().clone(),
            x.planes(),
            z[off..off + len].to_vec(),
        )?));
        off += len;
    }
    Ok(out)
}

/// [x AND y]: one round.
///
/// Errors: as [`and_many`].
pub async fn and(sess: &Session, x: &BinShared, y: &BinShared) -> Result<BinShared> {
    Ok(and_many(sess, &[(x, y)]).await?.pop().expect("one pair"))
}
