//! Truncation: dividing shared fixed-point values by 2^f.
//!
//! Default: N-party dealer-assisted probabilistic truncation (Escudero,
//! Ghosh, Keller, Rachuri, Scholl, "Improved Primitives for MPC over Mixed
//! Arithmetic-Binary Circuits", CRYPTO 2020; SPU's TruncAPr). With dealer
//! shares of r, r' = (r mod 2^(k-1)) >> f and r_msb: open
//! c = x + 2^(k-2) + r, then [x >> f] = c' - [r'] + [b] 2^(k-1-f) - 2^(k-2-f)
//! where c' = (c mod 2^(k-1)) >> f and b = c_msb XOR r_msb, linear in [r_msb].
//!
//! Domain: signed |x| < 2^(k-2) (as ring values; for fixed point with f
//! fractional bits, reals below 2^(k-2-f)). Error: the result is
//! floor(x / 2^f) or floor(x / 2^f) + 1, so at most 1 ulp (2^-f) against
//! f64. Rounds: 1. Bytes sent per party: (N - 1) * numel * k / 8.
//!
//! Opt-in for N = 2: SecureML's local shift ([`TruncMode::LocalShift`]),
//! 0 rounds, 0 bytes, 1 ulp error except with probability ~|x| / 2^(k-1).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::Ring;
use crate::session::{Session, TruncMode};
use crate::share::Shared;

/// [x / 2^frac_bits] with the session's [`TruncMode`].
///
/// Errors: [`Error::InvalidFixedPoint`] if frac_bits + 2 > k;
/// [`Error::Unsupported`] for the local shift with N != 2; preprocessing and
/// transport errors.
pub async fn truncate<R: Ring>(sess: &Session, x: &Shared<R>, frac_bits: u32) -> Result<Shared<R>> {
    if frac_bits + 2 > R::BITS {
        return Err(Error::InvalidFixedPoint(format!(
            "cannot truncate {frac_bits} bits in Z_2^{}",
            R::BITS
        )));
    }
    if frac_bits == 0 {
        return Ok(x.clone());
    }
    match sess.config().trunc {
        TruncMode::Dealer => truncate_dealer(sess, x, frac_bits).await,
        TruncMode::LocalShift => truncate_local(sess, x, frac_bits),
    }
}

/// Truncates several shares in ONE round (dealer mode; zero rounds with the
/// local shift). Same domain, error and bytes per element as [`truncate`].
///
/// Errors: as [`truncate`].
pub async fn truncate_many<R: Ring>(
    sess: &Session,
    xs: &[&Shared<R>],
    frac_bits: u32,
) -> Result<Vec<Shared<R>>> {
    if frac_bits + 2 > R::BITS {
        return Err(Error::InvalidFixedPoint(format!(
            "cannot truncate {frac_bits} bits in Z_2^{}",
            R::BITS
        )));
    }
    if frac_bits == 0 {
        return Ok(xs.iter().map(|x| (*x).clone()).collect());
    }
    if sess.config().trunc == TruncMode::LocalShift {
        return xs
            .iter()
            .map(|x| truncate_local(sess, x, frac_bits))
            .collect();
    }
    let be = sess.backend();
    let mut pairs = Vec::with_capacity(xs.len());
    let mut masked = Vec::with_capacity(xs.len());
    for x in xs {
        let req = Request::Trunc {
            ring: R::ID,
            shape: x.shape().clone(),
            frac_bits,
        };
        let [r, r_shifted, r_msb]: [_; 3] =
            sess.fetch::<R>(&req)?
                .try_into()
                .map_err(|_| Error::Format {
                    what: "preprocessing material".into(),
                    detail: format!("{req} should have 3 tensors"),
                })?;
        let x_biased = x.add_scalar(sess, R::ONE.shl(R::BITS - 2))?;
        masked.push(be.add(x_biased.share(), &r)?);
        pairs.push((r_shifted, r_msb));
    }
    let refs: Vec<&crate::ring::RingTensor<R>> = masked.iter().collect();
    let opened = sess.open(&refs).await?;
    opened
        .iter()
        .zip(pairs)
        .map(|(c, (rs, rm))| {
            Ok(Shared::from_share(be.trunc_combine_into(
                c,
                rs,
                &rm,
                frac_bits,
                sess.party() == 0,
            )?))
        })
        .collect()
}

async fn truncate_dealer<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    frac_bits: u32,
) -> Result<Shared<R>> {
    let req = Request::Trunc {
        ring: R::ID,
        shape: x.shape().clone(),
        frac_bits,
    };
    let m = sess.fetch::<R>(&req)?;
    let [r, r_shifted, r_msb]: [_; 3] = m.try_into().map_err(|_| Error::Format {
        what: "preprocessing material".into(),
        detail: format!("{req} should have 3 tensors"),
    })?;
    let be = sess.backend();
    let x_biased = x.add_scalar(sess, R::ONE.shl(R::BITS - 2))?;
    let c_i = be.add(x_biased.share(), &r)?;
    let c = sess.open(&[&c_i]).await?.pop().expect("one value");
    Ok(Shared::from_share(be.trunc_combine_into(
        &c,
        r_shifted,
        &r_msb,
        frac_bits,
        sess.party() == 0,
    )?))
}

/// SecureML local truncation: party 0 shifts its share, party 1 negates,
/// shifts and negates back.
fn truncate_local<R: Ring>(sess: &Session, x: &Shared<R>, frac_bits: u32) -> Result<Shared<R>> {
    if sess.n_parties() != 2 {
        return Err(Error::Unsupported(format!(
            "local-shift truncation is a two-party protocol; this session has {} parties (use TruncMode::Dealer)",
            sess.n_parties()
        )));
    }
    let be = sess.backend();
    let share = if sess.party() == 0 {
        be.ashr(x.share(), frac_bits)?
    } else {
        be.neg(&be.ashr(&be.neg(x.share())?, frac_bits)?)?
    };
    Ok(Shared::from_share(share))
}
