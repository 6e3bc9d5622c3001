//! Conversions between binary and arithmetic shares: B2A of single bits
//! with dealer daBits, and bit injection (an arithmetic value times a
//! binary bit) in one round.
//!
//! daBits: Rotaru and Wood, "MArBled Circuits", INDOCRYPT 2019. A random bit
//! s shared both ways lets parties open e = b ^ s and set
//! [b] = e + [s] - 2e[s] (exact, 1 round, (N - 1) * 8 * ceil(n / 64) bytes).
//! Bit injection adds a product triple (a, c = a * s): opening d = x - a in
//! the same round gives [x s] = c + d [s] and [x b] = e x + (1 - 2e) [x s].

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::{BinShared, Shared};

fn check_one_plane(b: &BinShared, op: &'static str) -> Result<()> {
    if b.planes() != 1 {
        return Err(Error::shape(
            op,
            format!("needs one bit plane, got {}", b.planes()),
        ));
    }
    Ok(())
}

/// The bit of element e of public words.
fn bit(words: &[u64], e: usize) -> bool {
    (words[e / 64] >> (e % 64)) & 1 == 1
}

/// [b] as an arithmetic 0/1 share (not fixed-point scaled) from a one-plane
/// binary share. Rounds: 1. Bytes sent per party: (N - 1) * 8 * ceil(n / 64).
///
/// Errors: [`Error::ShapeMismatch`] for more than one plane; preprocessing
/// and transport errors.
pub async fn b2a<R: Ring>(sess: &Session, b: &BinShared) -> Result<Shared<R>> {
    check_one_plane(b, "b2a")?;
    let n = b.shape().numel();
    let req = Request::DaBit { ring: R::ID, n };
    let mut m = sess.fetch_any(&req)?;
    let s_bits = u64::from_any(m.pop().expect("2 parts"))?;
    let s_arith = R::from_any(m.pop().expect("2 parts"))?;
    let mut e: Vec<u64> = b.share().data().to_vec();
    e.iter_mut().zip(s_bits.data()).for_each(|(v, s)| *v ^= s);
    let e = sess.open_xor(&[&e]).await?.pop().expect("one value");
    let party0 = sess.party() == 0;
    let data = (0..n)
        .map(|i| {
            let s = s_arith.data()[i];
            if bit(&e, i) {
                // b = 1 - s
                let v = s.wrapping_neg();
                if party0 {
                    v.wrapping_add(R::ONE)
                } else {
                    v
                }
            } else {
                s
            }
        })
        .collect();
    Ok(Shared::from_share(RingTensor::new(
        b.shape().clone(),
        data,
    )?))
}

/// Bit injection: [x * b] and [b] (arithmetic 0/1) for a one-plane bit b,
/// where bit e scales the `width` consecutive values e*width..(e+1)*width
/// of x (x.numel() = numel(b) * width). Exact. Rounds: 1. Bytes sent per
/// party: (N - 1) * (numel(x) * k / 8 + 8 * ceil(numel(b) / 64)).
///
/// Errors: [`Error::ShapeMismatch`] for more than one plane or a size
/// mismatch; preprocessing and transport errors.
pub async fn inject<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    b: &BinShared,
) -> Result<(Shared<R>, Shared<R>)> {
    check_one_plane(b, "inject")?;
    let n = b.shape().numel();
    if n == 0 || x.numel() % n != 0 {
        return Err(Error::shape(
            "inject",
            format!("{} values cannot be split over {n} bits", x.numel()),
        ));
    }
    let width = x.numel() / n;
    let req = Request::BitInject {
        ring: R::ID,
        n,
        width,
    };
    let mut m = sess.fetch_any(&req)?;
    let s_bits = u64::from_any(m.pop().expect("4 parts"))?;
    let s_arith = R::from_any(m.pop().expect("4 parts"))?;
    let c = R::from_any(m.pop().expect("4 parts"))?;
    let a = R::from_any(m.pop().expect("4 parts"))?;
    let mut e: Vec<u64> = b.share().data().to_vec();
    e.iter_mut().zip(s_bits.data()).for_each(|(v, s)| *v ^= s);
    let flat_x = x.share().clone().reshape([x.numel()])?;
    let d_i = sess.backend().sub(&flat_x, &a)?;
    let (mut d, mut e) = sess.open_mixed(&[&d_i], &[&e]).await?;
    let (d, e) = (d.pop().expect("one"), e.pop().expect("one"));
    let party0 = sess.party() == 0;
    let mut xb = vec![R::ZERO; x.numel()];
    let mut bits = vec![R::ZERO; n];
    for i in 0..n {
        let s = s_arith.data()[i];
        let ei = bit(&e, i);
        // [b] = e + s - 2 e s
        bits[i] = if ei {
            let v = s.wrapping_neg();
            if party0 {
                v.wrapping_add(R::ONE)
            } else {
                v
            }
        } else {
            s
        };
        for j in i * width..(i + 1) * width {
            // [x s] = c + d [s]; [x b] = e x + (1 - 2e) [x s]
            let xs = c.data()[j].wrapping_add(d.data()[j].wrapping_mul(s));
            xb[j] = if ei {
                flat_x.data()[j].wrapping_sub(xs)
            } else {
                xs
            };
        }
    }
    Ok((
        Shared::from_share(RingTensor::new(x.shape().clone(), xb)?),
        Shared::from_share(RingTensor::new(b.shape().clone(), bits)?),
    ))
}
