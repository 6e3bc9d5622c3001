//! Forked sessions: independent streams of one party's computation, run
//! concurrently with a different interleaving on every party, give the
//! right results with every preprocessing mode that serves forks; their
//! material depends on the program alone, not on the timing; the modes
//! that cannot serve forks say so.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fresh_seed, reals};
use spindle::preprocess::Request;
use spindle::prg::Prg;
use spindle::protocol::{compare, fixed, nonlinear};
use spindle::ring::{FixedPoint, RingTensor};
use spindle::runner::{run_parties_blocking, Preprocessing};
use spindle::{Error, Session, Shared};

const N_ELEMS: usize = 300;

/// One party's shares of two forks' triples.
type TwoTriples = (Vec<RingTensor<u64>>, Vec<RingTensor<u64>>);

/// Waits `ms` milliseconds: a party-dependent start makes each party run
/// its forks in another interleaving.
async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Three forks and the parent, concurrently: a product on fork 0, a ReLU
/// on fork 1, an exp on a fork of fork 2, a product on the parent. Party p
/// starts fork i after (p + i) % 3 * 15 ms. Returns the revealed outputs.
async fn forked_program(
    sess: Arc<Session>,
    xs: Vec<f64>,
    ys: Vec<f64>,
) -> spindle::Result<Vec<Vec<f64>>> {
    let p = sess.party() as u64;
    let n = xs.len();
    let own = |v: &Vec<f64>| (sess.party() == 0).then_some(v.clone());
    let x: Shared<u64> = sess.share_input_f64(0, own(&xs).as_deref(), [n])?;
    let y: Shared<u64> = sess.share_input_f64(0, own(&ys).as_deref(), [n])?;
    let forks = sess.fork_n(3)?;
    let grandchild = forks[2].fork()?;
    let delay = |i: u64| pause((p + i) % 3 * 15);
    let (a, b, c, d) = tokio::join!(
        async {
            delay(0).await;
            fixed::mul(&forks[0], &x, &y).await
        },
        async {
            delay(1).await;
            compare::relu(&forks[1], &x).await
        },
        async {
            delay(2).await;
            let x3 = x.mul_scalar(&grandchild, 1)?;
            nonlinear::exp(&grandchild, &x3).await
        },
        async { fixed::mul(&sess, &x, &x).await },
    );
    let (a, b, c, d) = (a?, b?, c?, d?);
    // Reveal on the forks too, concurrently.
    let (ra, rb, rc, rd) = tokio::join!(
        forks[0].reveal_f64(&a),
        forks[1].reveal_f64(&b),
        grandchild.reveal_f64(&c),
        sess.reveal_f64(&d),
    );
    Ok(vec![ra?, rb?, rc?, rd?])
}

fn check_forked_outputs(out: &[Vec<f64>], xs: &[f64], ys: &[f64]) {
    for i in 0..xs.len() {
        let (x, y) = (xs[i], ys[i]);
        assert!(
            (out[0][i] - x * y).abs() < 1e-4,
            "x*y at {i}: {} vs {}",
            out[0][i],
            x * y
        );
        assert!((out[1][i] - x.max(0.0)).abs() < 1e-5, "relu at {i}");
        let e = x.exp();
        assert!(
            (out[2][i] - e).abs() < 1e-2 * e.max(1.0),
            "exp at {i}: {} vs {e}",
            out[2][i]
        );
        assert!((out[3][i] - x * x).abs() < 1e-4, "x*x at {i}");
    }
}

/// Forks in any interleaving: right results for N = 2, 3 with the
/// dealer's store (a dry run records each fork's plan), the online dealer
/// (party 0 opens each fork at the dealer) and the trusted first party,
/// and every party reveals the same values.
#[test]
fn forks_run_concurrently_in_any_interleaving() {
    let mut prg = Prg::new(&fresh_seed("fork"), 0);
    let xs = reals(&mut prg, N_ELEMS, 4.0);
    let ys = reals(&mut prg, N_ELEMS, 4.0);
    for pre in [
        Preprocessing::Dealer,
        Preprocessing::OnlineDealer,
        Preprocessing::TrustedFirstParty,
    ] {
        for n in [2, 3] {
            let mut opts = common::options(n);
            opts.preprocessing = pre;
            let (xs2, ys2) = (xs.clone(), ys.clone());
            let r =
                run_parties_blocking(&opts, move |s| forked_program(s, xs2.clone(), ys2.clone()))
                    .unwrap_or_else(|e| panic!("{pre:?}, N = {n}: {e}"));
            if let Some(plan) = &r.plan {
                // Three forks of the root and one of fork 2, after its parent.
                assert_eq!(plan.forks.len(), 4, "{pre:?}");
                assert_eq!(plan.forks[3].parent, plan.forks[2].stream);
                assert!(plan
                    .forks
                    .iter()
                    .all(|f| !f.requests.is_empty() || f.parent == 0));
            }
            for party in &r.parties {
                assert_eq!(party.output, r.parties[0].output, "{pre:?}, N = {n}");
            }
            check_forked_outputs(&r.parties[0].output, &xs, &ys);
        }
    }
}

/// A fork's material is a function of the program and the dealer's seed:
/// runs whose forks fetch in opposite orders, with the dealer's store or
/// the online dealer, get bit-identical material on every party, and it
/// is a valid triple (c = a * b summed over parties).
#[test]
fn fork_material_does_not_depend_on_the_interleaving() {
    let req = Request::Triple {
        ring: spindle::ring::RingId::Z64,
        op: spindle::backend::BilinearOp::Mul,
        lhs: [64].into(),
        rhs: [64].into(),
    };
    let dealer_seed = fresh_seed("fork-material");
    let run = |reverse: bool, pre: Preprocessing| {
        let mut opts = common::options(3);
        opts.dealer_seed = Some(dealer_seed);
        opts.preprocessing = pre;
        let req = req.clone();
        run_parties_blocking(&opts, move |sess| {
            let req = req.clone();
            async move {
                let forks = sess.fork_n(2)?;
                let first = if reverse { 1 } else { 0 };
                let a = forks[first].fetch::<u64>(&req)?;
                let b = forks[1 - first].fetch::<u64>(&req)?;
                let (m0, m1) = if reverse { (b, a) } else { (a, b) };
                Ok((m0, m1))
            }
        })
        .unwrap()
    };
    let fwd = run(false, Preprocessing::Dealer);
    for (reverse, pre) in [
        (true, Preprocessing::Dealer),
        (false, Preprocessing::OnlineDealer),
        (true, Preprocessing::OnlineDealer),
    ] {
        let other = run(reverse, pre);
        for (f, r) in fwd.parties.iter().zip(&other.parties) {
            assert_eq!(f.output, r.output, "party {}, {pre:?}", f.party);
        }
    }
    // Fork 0's triple sums to a valid one; fork 1's differs from it.
    let sum = |pick: fn(&TwoTriples) -> &Vec<RingTensor<u64>>| {
        let mut acc: Vec<Vec<u64>> = vec![vec![0; 64]; 3];
        for p in &fwd.parties {
            for (j, t) in pick(&p.output).iter().enumerate() {
                for (a, v) in acc[j].iter_mut().zip(t.data()) {
                    *a = a.wrapping_add(*v);
                }
            }
        }
        acc
    };
    let t0 = sum(|o| &o.0);
    let t1 = sum(|o| &o.1);
    for i in 0..64 {
        assert_eq!(t0[2][i], t0[0][i].wrapping_mul(t0[1][i]));
        assert_eq!(t1[2][i], t1[0][i].wrapping_mul(t1[1][i]));
    }
    assert_ne!(t0[0], t1[0], "two forks must not share masks");
}

/// Many short-lived forks on the online dealer: each is released at the
/// dealer when its session is dropped, so a long run (a fork per
/// micro-batch of every training step) does not grow the dealer, and the
/// parent goes on after its forks are gone.
#[test]
fn online_dealer_forks_come_and_go() {
    let mut opts = common::options(2);
    opts.preprocessing = Preprocessing::OnlineDealer;
    let r = run_parties_blocking(&opts, |sess| async move {
        let own = (sess.party() == 0).then_some(&[1.5, -2.0][..]);
        let x: Shared<u64> = sess.share_input_f64(0, own, [2])?;
        let mut last = Vec::new();
        for _ in 0..40 {
            let f = sess.fork()?;
            let y = fixed::mul(&f, &x, &x).await?;
            last = f.reveal_f64(&y).await?;
        }
        let z = fixed::mul(&sess, &x, &x).await?;
        Ok((last, sess.reveal_f64(&z).await?))
    })
    .unwrap();
    for p in &r.parties {
        for v in [&p.output.0, &p.output.1] {
            assert!(
                (v[0] - 2.25).abs() < 1e-4 && (v[1] - 4.0).abs() < 1e-4,
                "{v:?}"
            );
        }
    }
}

/// A provider that cannot serve a fork says so: a clear error, not wrong
/// results.
#[test]
fn a_provider_without_forks_refuses_them_clearly() {
    struct Single;
    impl spindle::preprocess::Provider for Single {
        fn next(&mut self, _: &Request) -> spindle::Result<spindle::preprocess::Material> {
            Err(Error::Unsupported("unused".into()))
        }
        fn label(&self) -> &'static str {
            "test"
        }
    }
    let mut p = Single;
    let err = spindle::preprocess::Provider::fork(&mut p, 5)
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Unsupported(m) if m.contains("cannot serve a forked session")),
        "{err}"
    );
}

/// Fixed-point parameters reach the forks (they share the parent's
/// configuration).
#[test]
fn forks_share_the_configuration() {
    let opts = common::options(2);
    let r = run_parties_blocking(&opts, |sess| async move {
        let f = sess.fork()?;
        Ok((
            f.fixed_point::<u64>()?,
            sess.fixed_point::<u64>()?,
            f.stream_id(),
            sess.stream_id(),
        ))
    })
    .unwrap();
    let (ff, fp, fid, pid) = r.parties[1].output;
    assert_eq!(ff, fp);
    assert_eq!(fp, FixedPoint::default_for::<u64>());
    assert_eq!(pid, 0);
    assert_ne!(fid, 0);
    assert_eq!(
        r.parties[0].output.2, fid,
        "the same fork has the same id on every party"
    );
}
