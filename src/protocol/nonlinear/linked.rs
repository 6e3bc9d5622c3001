//! Linked truncations: the opening of a square's mask also truncates any
//! number of affine functions of the squared value, with no opening of
//! their own.
//!
//! A square pair (a, a^2) squares x by opening e = x - a (Beaver). Give
//! y = m x + d (m, d public) the truncation mask r = -m a: its masked value
//! y + 2^(k-2) + r = m e + d + 2^(k-2) is then public as soon as e is. The
//! dealer supplies the truncation parts r' and r_msb of each such mask
//! ([`Request::SquareLinked`]), so y >> bits follows from the square's
//! round: the masks of linear functions of an opened value are the same
//! linear functions of its mask, as in function-dependent preprocessing
//! (Ben-Efraim, Nielsen, Omri, "Turbospeedz", ACNS 2019; Patra et al.,
//! "ABY2.0", USENIX Security 2021). The truncated outputs keep the form
//! P + L of every dealer truncation, so a later truncation group can
//! multiply them with its own outputs ([`super::batch::TruncGroup::linked`])
//! from dealer products of the masks, again with no opening.
//!
//! The Chebyshev evaluation ([`super::cheb`]) opens t once for
//! T_2 = 2t^2 - 1 and needs every leaf c_0 + c_1 t truncated for the next
//! level: the leaves ride on that opening. Security: nothing is opened but e, which
//! the Beaver square opens anyway (each m_j e + d_j is a public function
//! of it), and the shares of r'_j and r_msb_j are fresh sharings. The
//! truncation's rounding (floor or one more) holds for any mask, uniform
//! or not.

pub(crate) use super::linked_output::{Linked, LinkedSquare};
use crate::backend::MpcSteps;
use crate::error::Result;
use crate::preprocess::{Link, LinkedItems, Request};
use crate::protocol::beaver::take;
use crate::protocol::trunc;
use crate::ring::{Opened, Ring};
use crate::session::{Session, TruncMode};
use crate::share::Shared;

/// An affine function m x + d of the squared value and the bits to shift
/// out of it (|m x + d| < 2^(k-2) as ring values: the truncation's domain).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkSpec<R> {
    /// m, as a ring element.
    pub(crate) mult: R,
    /// d, as a ring element (added by party 0).
    pub(crate) add: R,
    /// Bits to shift out.
    pub(crate) bits: u32,
}

/// x^2 (raw: exact in Z_2^k at twice x's scale) and (m_j x + d_j) >>
/// bits_j for every link j, in one round that opens x's mask only.
///
/// Rounds: 1. Elements sent per element of x, to each peer: 1 (as a Beaver
/// square alone). With the local shift, the links are truncated locally
/// (0 rounds, 2 parties only).
///
/// Errors: [`crate::Error::InvalidFixedPoint`] for a shift that does not
/// fit the ring; preprocessing and transport errors.
pub(crate) async fn square_linked<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    links: &[LinkSpec<R>],
) -> Result<(Shared<R>, LinkedSquare<R>)> {
    let party0 = sess.party() == 0;
    let be = sess.backend();
    // No links: a plain square pair (the dealer then keeps no mask for a
    // group that would never release it).
    if links.is_empty() || sess.config().trunc == TruncMode::LocalShift {
        let (p, _) = super::batch::round(sess, &[super::batch::Prod::Sq(x)], &[]).await?;
        let mut out = Vec::with_capacity(links.len());
        for l in links {
            let add = if party0 { l.add } else { R::ZERO };
            let y = Shared::from_share(be.lincomb(&[(x.share(), l.mult)], add, x.shape())?);
            out.push(Linked::Value(trunc::truncate(sess, &y, l.bits).await?));
        }
        let square = p.into_iter().next().expect("one square");
        let linked = LinkedSquare {
            shape: x.shape().clone(),
            links: out,
            items: None,
        };
        return Ok((square, linked));
    }
    let items = LinkedItems {
        id: sess.next_static_id(),
        links: links
            .iter()
            .map(|l| Link {
                mult: l.mult.to_u64(),
                bits: l.bits,
            })
            .collect(),
    };
    let req = Request::SquareLinked {
        ring: R::ID,
        shape: x.shape().clone(),
        id: items.id,
        links: items.links.clone(),
    };
    req.elements()?; // checks the shifts before anything is fetched
    let mut m = sess.fetch::<R>(&req)?;
    let parts = m.split_off(2.min(m.len()));
    let [a, c] = take::<2, R>(m, &req)?;
    if parts.len() != 2 * links.len() {
        return Err(crate::Error::Format {
            what: "preprocessing material".into(),
            detail: format!("{req} should have {} tensors", 2 + 2 * links.len()),
        });
    }
    // e = x - a over a.
    let a = be.rsub(a, x.share())?;
    let e = sess.open_parts(vec![a]).await?.pop().expect("one opening");
    let c = be.beaver_sq_combine(c, &e, x.share(), party0)?;
    // y_j + 2^(k-2) + r_j = m_j e + d_j + 2^(k-2), the same at every party.
    let bias = R::ONE.shl(R::BITS - 2);
    let mut parts = parts.into_iter();
    let mut out = Vec::with_capacity(links.len());
    for l in links {
        let (r_shifted, r_msb) = (
            parts.next().expect("counted"),
            parts.next().expect("counted"),
        );
        out.push(Linked::Opened {
            c: {
                let add = l.add.wrapping_add(bias);
                Opened::from_sum(e.map(|v| v.wrapping_mul(l.mult).wrapping_add(add)))
            },
            r_shifted,
            r_msb,
            bits: l.bits,
        });
    }
    let linked = LinkedSquare {
        shape: x.shape().clone(),
        links: out,
        items: Some(items),
    };
    Ok((Shared::from_share(c), linked))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::prg::{Prg, Seed};
    use crate::protocol::nonlinear::batch::{trunc_group, TruncGroup};
    use crate::ring::RingTensor;
    use crate::runner::{run_parties_blocking, RunOptions};

    const LEN: usize = 555;

    /// Signed x below 2^(k/2 - 8), and links whose values m x + d stay far
    /// inside the truncation's domain: (m, d, bits), with a negative m,
    /// an even one and a zero shift.
    fn links<R: Ring>() -> Vec<LinkSpec<R>> {
        [(3i64, 5i64, 4u32), (-7, -1, 9), (4, 0, 0), (1, 1 << 10, 12)]
            .iter()
            .map(|&(m, d, bits)| LinkSpec {
                mult: R::from_i64(m),
                add: R::from_i64(d),
                bits,
            })
            .collect()
    }

    fn inputs<R: Ring>() -> Vec<R> {
        let mut prg = Prg::new(&Seed([9; 16]), 0);
        let mut raw = vec![0u64; LEN];
        prg.fill(&mut raw);
        let half = R::BITS / 2 - 8;
        raw.iter()
            .map(|&v| R::from_i64(((v >> (64 - half)) as i64) - (1i64 << (half - 1))))
            .collect()
    }

    /// Products asked of the group after the square: a fresh value (x
    /// shifted by 2) with itself and with links 0 and 1, and link 3 squared.
    const PAIRS: [(usize, usize); 4] = [(0, 0), (0, 1), (0, 2), (4, 4)];

    /// (x^2, link values, group products, rounds and bytes of the square,
    /// of the group) at party 0.
    #[allow(clippy::type_complexity)]
    fn run<R: Ring>(
        n: usize,
        trunc: TruncMode,
    ) -> (Vec<R>, Vec<Vec<R>>, Vec<Vec<R>>, [(u64, u64); 2]) {
        let x = Arc::new(inputs::<R>());
        let mut opts = RunOptions::new(n);
        opts.session.trunc = trunc;
        let report = run_parties_blocking(&opts, move |sess: Arc<Session>| {
            let x = x.clone();
            async move {
                let t = RingTensor::new([LEN], x.to_vec())?;
                let x = sess.share_input::<R>(0, (sess.party() == 0).then_some(&t), [LEN])?;
                let s0 = sess.link_stats();
                let (square, sq) = square_linked(&sess, &x, &links::<R>()).await?;
                let s1 = sess.link_stats();
                let group = TruncGroup {
                    items: vec![(&x, 2)],
                    linked: Some(&sq),
                    pairs: PAIRS.to_vec(),
                    values: vec![],
                };
                let out = trunc_group(&sess, &group).await?;
                let s2 = sess.link_stats();
                let cost = [
                    ((s1 - s0).rounds, (s1 - s0).bytes_sent),
                    ((s2 - s1).rounds, (s2 - s1).bytes_sent),
                ];
                let square = sess.reveal(&square).await?.into_data();
                let mut values = Vec::new();
                for l in &sq.links {
                    values.push(sess.reveal(&l.value(&sess)?).await?.into_data());
                }
                let mut products = Vec::new();
                for p in &out.products {
                    products.push(sess.reveal(p).await?.into_data());
                }
                Ok((square, values, products, cost))
            }
        })
        .expect("runs");
        report.parties.into_iter().next().expect("party 0").output
    }

    fn check<R: Ring>(n: usize, trunc: TruncMode) {
        let xs = inputs::<R>();
        let (square, values, products, cost) = run::<R>(n, trunc);
        for (x, s) in xs.iter().zip(&square) {
            assert_eq!(*s, x.wrapping_mul(*x), "square");
        }
        for (l, v) in links::<R>().iter().zip(&values) {
            for (x, got) in xs.iter().zip(v) {
                // floor(y / 2^bits) or one more.
                let lo = x.wrapping_mul(l.mult).wrapping_add(l.add).ashr(l.bits);
                assert!(
                    *got == lo || *got == lo.wrapping_add(R::ONE),
                    "link >>{}",
                    l.bits
                );
            }
        }
        // The group's values: x >> 2 (floor or one more), then the links.
        for (&(i, j), p) in PAIRS.iter().zip(&products) {
            for (e, x) in xs.iter().enumerate() {
                let a = |i: usize| match i {
                    0 => vec![x.ashr(2), x.ashr(2).wrapping_add(R::ONE)],
                    l => vec![values[l - 1][e]],
                };
                let ok = a(i)
                    .iter()
                    .any(|u| a(j).iter().any(|v| p[e] == u.wrapping_mul(*v)));
                assert!(ok, "product {i} x {j} at {e}");
            }
        }
        // The square opens one element per element; the group its one item
        // (with the local shift: Beaver products instead).
        let elems = ((n - 1) * LEN * R::BYTES) as u64;
        assert_eq!(cost[0], (1, elems), "square");
        match trunc {
            TruncMode::Dealer => assert_eq!(cost[1], (1, elems), "group"),
            TruncMode::LocalShift => assert_eq!(cost[1], (1, 6 * elems), "group"),
        }
    }

    #[test]
    fn linked_truncations_ride_on_the_square_for_every_party_count_and_ring() {
        for n in [2, 3, 4] {
            check::<u64>(n, TruncMode::Dealer);
            check::<u32>(n, TruncMode::Dealer);
        }
    }

    #[test]
    fn linked_truncations_with_the_local_shift() {
        check::<u64>(2, TruncMode::LocalShift);
    }

    #[test]
    fn a_square_without_links_is_a_plain_square_pair() {
        let x = Arc::new(inputs::<u64>());
        let report = run_parties_blocking(&RunOptions::new(3), move |sess: Arc<Session>| {
            let x = x.clone();
            async move {
                let t = RingTensor::new([LEN], x.to_vec())?;
                let x = sess.share_input::<u64>(0, (sess.party() == 0).then_some(&t), [LEN])?;
                let (square, sq) = square_linked(&sess, &x, &[]).await?;
                assert!(sq.links.is_empty() && sq.items.is_none());
                Ok(sess.reveal(&square).await?.into_data())
            }
        })
        .expect("runs");
        let xs = inputs::<u64>();
        for p in report.parties {
            for (x, s) in xs.iter().zip(&p.output) {
                assert_eq!(*s, x.wrapping_mul(*x));
            }
        }
    }

    #[test]
    fn a_group_linked_to_no_square_is_a_dealer_error() {
        use crate::preprocess::{Dealer, Plan};
        let req = Request::TruncProducts {
            ring: R64,
            shape: [4].into(),
            frac_bits: vec![3],
            pairs: vec![(0, 1)],
            linked: Some(LinkedItems {
                id: 7,
                links: vec![Link { mult: 3, bits: 2 }],
            }),
        };
        let plan = Plan {
            requests: vec![req],
            ..Plan::default()
        };
        let err = Dealer::new(2, Default::default())
            .unwrap()
            .generate(&plan)
            .unwrap_err();
        assert!(
            matches!(err, crate::Error::PreprocessingMismatch { .. }),
            "{err}"
        );
    }

    const R64: crate::ring::RingId = crate::ring::RingId::Z64;
}
