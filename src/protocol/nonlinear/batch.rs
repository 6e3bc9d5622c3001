//! Round batching: many Beaver products and many truncations (each by its
//! own number of bits) opened in ONE round.
//!
//! Rounds dominate the latency of every non-linear function, so each
//! function here is a short sequence of levels, and every level opens all
//! of its masked values in a single [`Session::open`] call. The protocols
//! are those of [`crate::protocol::beaver`] (Beaver, CRYPTO 1991) and
//! [`crate::protocol::trunc`] (Escudero et al., CRYPTO 2020) with the same
//! dealer material; only the openings are merged, and the local steps are
//! fused into single passes over memory ([`super::kernels`]).

use super::kernels;
use crate::backend::{Backend, BilinearOp};
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::protocol::beaver::take;
use crate::protocol::trunc;
use crate::ring::{Ring, RingTensor};
use crate::session::{Session, TruncMode};
use crate::share::Shared;

/// One elementwise Beaver product of a batch.
#[derive(Clone, Debug)]
pub(crate) enum Prod<'a, R: Ring> {
    /// x * y (a triple; opens two values per element).
    Mul(&'a Shared<R>, &'a Shared<R>),
    /// x * x (a square pair; opens one value per element).
    Sq(&'a Shared<R>),
    /// x * y_j for every y_j (and x * x after them if the flag is set), one
    /// fan triple: x - a is opened once, so 1 + len(ys) values per element
    /// instead of 2 len(ys) (+ 1); results come back in order, the square
    /// last.
    Fan(&'a Shared<R>, Vec<&'a Shared<R>>, bool),
}

/// One truncation of a batch: the share and the number of bits to drop.
pub(crate) type Trunc<'a, R> = (&'a Shared<R>, u32);

enum Pending<R: Ring> {
    Mul {
        c: RingTensor<R>,
        b: RingTensor<R>,
    },
    Sq {
        a: RingTensor<R>,
        c: RingTensor<R>,
    },
    Fan {
        a: RingTensor<R>,
        b: RingTensor<R>,
        c: RingTensor<R>,
        c_sq: Option<RingTensor<R>>,
    },
}

/// Runs the products and truncations in one round (no round at all when
/// nothing is opened: empty lists, zero-bit or local truncations).
/// Products come back raw: exact in Z_2^k, with the sum of the operands'
/// scales. Truncations are exact up to one unit in the last place.
///
/// Elements sent to each peer, per element of each operand: 2 per `Mul`,
/// 1 per `Sq`, 1 + len(ys) per `Fan`, 1 per truncation that is opened.
pub(crate) async fn round<R: Ring>(
    sess: &Session,
    prods: &[Prod<'_, R>],
    truncs: &[Trunc<'_, R>],
) -> Result<(Vec<Shared<R>>, Vec<Shared<R>>)> {
    let local_trunc = sess.config().trunc == TruncMode::LocalShift;
    let mut opened: Vec<RingTensor<R>> = Vec::new();
    let mut pending = Vec::with_capacity(prods.len());
    for p in prods {
        match p {
            Prod::Mul(x, y) => {
                if x.shape() != y.shape() {
                    return Err(Error::shape(
                        "nonlinear product",
                        format!("operands have shapes {} and {}", x.shape(), y.shape()),
                    ));
                }
                let req = Request::Triple {
                    ring: R::ID,
                    op: BilinearOp::Mul,
                    lhs: x.shape().clone(),
                    rhs: y.shape().clone(),
                };
                let [a, b, c] = take::<3, R>(sess.fetch::<R>(&req)?, &req)?;
                opened.push(kernels::sub(x.share(), &a));
                opened.push(kernels::sub(y.share(), &b));
                pending.push(Pending::Mul { c, b });
            }
            Prod::Sq(x) => {
                let req = Request::Square {
                    ring: R::ID,
                    shape: x.shape().clone(),
                };
                let [a, c] = take::<2, R>(sess.fetch::<R>(&req)?, &req)?;
                opened.push(kernels::sub(x.share(), &a));
                pending.push(Pending::Sq { a, c });
            }
            Prod::Fan(x, ys, square) => {
                let square = *square;
                if let Some(y) = ys.iter().find(|y| y.shape() != x.shape()) {
                    return Err(Error::shape(
                        "nonlinear fan product",
                        format!("operands have shapes {} and {}", x.shape(), y.shape()),
                    ));
                }
                let req = Request::FanTriple {
                    ring: R::ID,
                    shape: x.shape().clone(),
                    fan: ys.len(),
                    square,
                };
                let m = sess.fetch::<R>(&req)?;
                let (a, b, c, c_sq) = if square {
                    let [a, b, c, c_sq] = take::<4, R>(m, &req)?;
                    (a, b, c, Some(c_sq))
                } else {
                    let [a, b, c] = take::<3, R>(m, &req)?;
                    (a, b, c, None)
                };
                opened.push(kernels::sub(x.share(), &a));
                opened.push(kernels::fan_sub(ys, &b));
                pending.push(Pending::Fan { a, b, c, c_sq });
            }
        }
    }
    // Dealer truncation: open c = x + 2^(k-2) + r (built in r's buffer).
    let mut trunc_mat = Vec::with_capacity(truncs.len());
    for &(x, bits) in truncs {
        check_bits::<R>(bits)?;
        if bits == 0 || local_trunc {
            trunc_mat.push(None);
            continue;
        }
        let req = Request::Trunc {
            ring: R::ID,
            shape: x.shape().clone(),
            frac_bits: bits,
        };
        let [mut r, r_shifted, r_msb] = take::<3, R>(sess.fetch::<R>(&req)?, &req)?;
        let bias = if sess.party() == 0 {
            R::ONE.shl(R::BITS - 2)
        } else {
            R::ZERO
        };
        kernels::add_assign_biased(&mut r, x.share(), bias);
        opened.push(r);
        trunc_mat.push(Some((r_shifted, r_msb, bits)));
    }
    let opened = if opened.is_empty() {
        opened
    } else {
        let refs: Vec<&RingTensor<R>> = opened.iter().collect();
        sess.open(&refs).await?
    };
    let mut it = opened.into_iter();
    let mut out_p = Vec::with_capacity(prods.len());
    for (p, pend) in prods.iter().zip(pending) {
        match (p, pend) {
            (Prod::Mul(x, _), Pending::Mul { mut c, b }) => {
                let (e, f) = (it.next().expect("e"), it.next().expect("f"));
                // z_i = c_i + e * b_i + x_i * f
                kernels::beaver_mul_combine(&mut c, &e, &b, x.share(), &f);
                out_p.push(Shared::from_share(c));
            }
            (Prod::Sq(x), Pending::Sq { a, mut c }) => {
                let e = it.next().expect("e");
                // z_i = c_i + e * (a_i + x_i)
                kernels::beaver_sq_combine(&mut c, &e, &a, x.share());
                out_p.push(Shared::from_share(c));
            }
            (Prod::Fan(x, _, _), Pending::Fan { a, b, c, c_sq }) => {
                let (e, f) = (it.next().expect("e"), it.next().expect("f"));
                // z_j = c_j + e * b_j + x_i * f_j; x^2: c_sq + e * (a + x_i)
                for z in kernels::fan_combine(&c, &e, &b, x.share(), &f) {
                    out_p.push(Shared::from_share(z));
                }
                if let Some(mut c_sq) = c_sq {
                    kernels::beaver_sq_combine(&mut c_sq, &e, &a, x.share());
                    out_p.push(Shared::from_share(c_sq));
                }
            }
            _ => unreachable!("pending matches its product"),
        }
    }
    let mut out_t = Vec::with_capacity(truncs.len());
    for (&(x, bits), m) in truncs.iter().zip(trunc_mat) {
        out_t.push(match m {
            None if bits == 0 => x.clone(),
            None => trunc::truncate(sess, x, bits).await?,
            Some((r_shifted, r_msb, bits)) => {
                let c = it.next().expect("c");
                Shared::from_share(sess.backend().trunc_combine(
                    &c,
                    &r_shifted,
                    &r_msb,
                    bits,
                    sess.party() == 0,
                )?)
            }
        });
    }
    Ok((out_p, out_t))
}

fn check_bits<R: Ring>(bits: u32) -> Result<()> {
    if bits + 2 > R::BITS {
        return Err(Error::InvalidFixedPoint(format!(
            "cannot truncate {bits} bits in Z_2^{}",
            R::BITS
        )));
    }
    Ok(())
}
