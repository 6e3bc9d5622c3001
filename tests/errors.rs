//! Bad input is a typed error, never a panic or a hang.

mod common;

use std::sync::Arc;
use std::time::Duration;

use spindle::backend::Device;
use spindle::preprocess::{Dealer, PartyStore};
use spindle::protocol::{beaver, fixed, trunc};
use spindle::ring::{FixedPoint, RingError, RingTensor};
use spindle::runner::{run_parties_blocking, RunOptions};
use spindle::session::ProviderSpec;
use spindle::{Error, Session, SessionConfig};
use spindle_transport::{InMemoryNetwork, Transport, TransportError};

fn run_err<F, Fut, T>(n: usize, program: F) -> Error
where
    F: Fn(Arc<Session>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = spindle::Result<T>> + Send + 'static,
    T: Send + 'static + std::fmt::Debug,
{
    let mut opts = RunOptions::new(n);
    opts.timeout = Duration::from_secs(10);
    run_parties_blocking(&opts, program).expect_err("run must fail")
}

#[test]
fn shape_mismatches_are_errors() {
    let err = run_err(3, |sess| async move {
        let x = sess.share_input(
            0,
            Some(&RingTensor::<u64>::zeros([2, 3])).filter(|_| sess.party() == 0),
            [2, 3],
        )?;
        let y = sess.share_input(
            1,
            Some(&RingTensor::<u64>::zeros([4, 5])).filter(|_| sess.party() == 1),
            [4, 5],
        )?;
        beaver::matmul(&sess, &x, &y).await
    });
    assert!(
        matches!(err, Error::ShapeMismatch { op: "matmul", .. }),
        "{err}"
    );

    let err = run_err(2, |sess| async move {
        let v = RingTensor::<u64>::zeros([3]);
        sess.share_input(0, (sess.party() == 0).then_some(&v), [4])
    });
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");

    let err = run_err(2, |sess| async move {
        let x = sess.share_input(
            0,
            Some(&RingTensor::<u64>::zeros([1, 2, 5, 5])).filter(|_| sess.party() == 0),
            [1, 2, 5, 5],
        )?;
        let w = sess.share_input(
            1,
            Some(&RingTensor::<u64>::zeros([1, 3, 3, 3])).filter(|_| sess.party() == 1),
            [1, 3, 3, 3],
        )?;
        beaver::conv2d(&sess, &x, &w, Default::default()).await
    });
    assert!(
        matches!(err, Error::ShapeMismatch { op: "conv2d", .. }),
        "{err}"
    );
    assert!(RingTensor::<u64>::new([2, 2], vec![1, 2, 3]).is_err());
}

#[test]
fn invalid_fixed_point_parameters_are_errors() {
    assert!(matches!(
        FixedPoint::new::<u64>(32),
        Err(RingError::InvalidFixedPoint(_))
    ));
    assert!(matches!(
        FixedPoint::new::<u32>(16),
        Err(RingError::InvalidFixedPoint(_))
    ));
    assert!(FixedPoint::new::<u32>(15).is_ok());
    let fp = FixedPoint::default_for::<u64>();
    assert!(matches!(
        fp.encode::<u64>(f64::NAN),
        Err(RingError::Encode { .. })
    ));
    assert!(matches!(
        fp.encode::<u64>(f64::INFINITY),
        Err(RingError::Encode { .. })
    ));
    assert!(matches!(
        fp.encode::<u64>(1e13),
        Err(RingError::Encode { .. })
    ));
    assert!(
        matches!(fp.encode::<u32>(1.0), Err(RingError::InvalidFixedPoint(_))),
        "params of another ring"
    );

    // Ring-level errors become the engine's variants of the same name.
    assert!(matches!(
        Error::from(FixedPoint::new::<u64>(32).unwrap_err()),
        Error::InvalidFixedPoint(_)
    ));

    let mut opts = RunOptions::new(2);
    opts.session = SessionConfig {
        frac_bits: Some(40),
        ..Default::default()
    };
    let err = run_parties_blocking(&opts, |_sess| async move { Ok(()) }).unwrap_err();
    assert!(matches!(err, Error::InvalidFixedPoint(_)), "{err}");

    let err = run_err(2, |sess| async move {
        let x = sess.share_input(
            0,
            Some(&RingTensor::<u32>::zeros([2])).filter(|_| sess.party() == 0),
            [2],
        )?;
        trunc::truncate(&sess, &x, 31).await
    });
    assert!(matches!(err, Error::InvalidFixedPoint(_)), "{err}");
}

/// Runs `online` with stores generated for the plan of `planned`.
fn run_with_plan_of<P, PF, O, OF>(n: usize, planned: P, online: O) -> Vec<spindle::Result<()>>
where
    P: Fn(Arc<Session>) -> PF,
    PF: std::future::Future<Output = spindle::Result<()>>,
    O: Fn(Arc<Session>) -> OF + Clone + Send + 'static,
    OF: std::future::Future<Output = spindle::Result<()>> + Send + 'static,
{
    run_with_plan(n, planned, online, false)
}

/// As [`run_with_plan_of`]; with `expand_ahead`, every party expands the
/// material of the plan before the online phase.
fn run_with_plan<P, PF, O, OF>(
    n: usize,
    planned: P,
    online: O,
    expand_ahead: bool,
) -> Vec<spindle::Result<()>>
where
    P: Fn(Arc<Session>) -> PF,
    PF: std::future::Future<Output = spindle::Result<()>>,
    O: Fn(Arc<Session>) -> OF + Clone + Send + 'static,
    OF: std::future::Future<Output = spindle::Result<()>> + Send + 'static,
{
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let (dry, handle) = Session::dry_run(0, n, SessionConfig::default()).unwrap();
        planned(Arc::new(dry)).await.unwrap();
        let plan = handle.plan();
        let stores = Dealer::new(n, Device::default())
            .unwrap()
            .generate(&plan)
            .unwrap();
        let mut tasks = Vec::new();
        for (t, store) in InMemoryNetwork::with_timeout(n, Duration::from_secs(10))
            .into_iter()
            .zip(stores)
        {
            let online = online.clone();
            let spec = if expand_ahead {
                let mut p = store.into_provider(Device::default());
                p.expand_ahead(&plan.requests).unwrap();
                ProviderSpec::Custom(Box::new(p))
            } else {
                ProviderSpec::Store(store)
            };
            tasks.push(tokio::spawn(async move {
                let t: Arc<dyn Transport> = Arc::new(t);
                let sess =
                    Session::connect(t, Device::default(), spec, SessionConfig::default()).await?;
                online(Arc::new(sess)).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("no panic"));
        }
        out
    })
}

async fn muls(sess: Arc<Session>, count: usize, len: usize) -> spindle::Result<()> {
    let v = RingTensor::<u64>::full([len], 3);
    let x = sess.share_input(0, (sess.party() == 0).then_some(&v), [len])?;
    for _ in 0..count {
        beaver::mul(&sess, &x, &x).await?;
    }
    Ok(())
}

#[test]
fn exhausted_preprocessing_is_an_error_at_every_party() {
    let results = run_with_plan_of(3, |s| muls(s, 1, 4), |s| muls(s, 2, 4));
    for (p, r) in results.iter().enumerate() {
        assert!(
            matches!(r, Err(Error::PreprocessingExhausted { index: 1, .. })),
            "party {p}: {r:?}"
        );
    }
}

#[test]
fn material_expanded_ahead_is_checked_against_the_plan_at_every_party() {
    let results = run_with_plan(3, |s| muls(s, 1, 4), |s| muls(s, 1, 5), true);
    for (p, r) in results.iter().enumerate() {
        assert!(
            matches!(r, Err(Error::PreprocessingMismatch { index: 0, .. })),
            "party {p}: {r:?}"
        );
    }
    let results = run_with_plan(3, |s| muls(s, 1, 4), |s| muls(s, 2, 4), true);
    for (p, r) in results.iter().enumerate() {
        assert!(
            matches!(r, Err(Error::PreprocessingExhausted { index: 1, .. })),
            "party {p}: {r:?}"
        );
    }
    let results = run_with_plan(2, |s| muls(s, 2, 4), |s| muls(s, 2, 4), true);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

#[test]
fn preprocessing_that_does_not_match_the_plan_is_an_error() {
    let results = run_with_plan_of(3, |s| muls(s, 1, 4), |s| muls(s, 1, 5));
    assert!(
        matches!(
            results[0],
            Err(Error::PreprocessingMismatch { index: 0, .. })
        ),
        "{:?}",
        results[0]
    );
    // The others learn of it as a dead peer, not a hang.
    for r in &results[1..] {
        assert!(r.is_err(), "{r:?}");
    }
    let results = run_with_plan_of(2, |s| muls(s, 2, 4), |s| muls(s, 2, 4));
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

#[test]
fn a_dead_peer_is_an_error_not_a_hang() {
    let started = std::time::Instant::now();
    let err = run_err(4, |sess| async move {
        if sess.party() == 2 {
            return Err(Error::Unsupported("party 2 crashed on purpose".into()));
        }
        let x =
            sess.share_input_f64::<u64>(0, (sess.party() == 0).then_some(&[1.0, 2.0][..]), [2])?;
        fixed::mul(&sess, &x, &x).await
    });
    assert!(
        matches!(&err, Error::Unsupported(m) if m.contains("crashed")),
        "root cause reported: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no waiting for the timeout"
    );
}

#[test]
fn a_silent_peer_times_out() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async {
        let mut eps = InMemoryNetwork::with_timeout(2, Duration::from_millis(200));
        let silent = eps.pop().unwrap();
        let t0: Arc<dyn Transport> = Arc::new(eps.pop().unwrap());
        // The silent party answers setup but never the online round.
        let t1: Arc<dyn Transport> = Arc::new(silent);
        let s1 = tokio::spawn(Session::connect(
            t1,
            Device::default(),
            ProviderSpec::TrustedFirstParty,
            SessionConfig::default(),
        ));
        let s0 = Session::connect(
            t0,
            Device::default(),
            ProviderSpec::TrustedFirstParty,
            SessionConfig::default(),
        )
        .await
        .unwrap();
        let _keep_alive = s1.await.unwrap().unwrap();
        let x = s0
            .share_input(0, Some(&RingTensor::<u64>::zeros([2])), [2])
            .unwrap();
        s0.reveal(&x).await.unwrap_err()
    });
    assert!(
        matches!(
            err,
            Error::Transport(TransportError::Timeout { peer: 1, .. })
        ),
        "{err}"
    );
}

#[test]
fn malformed_stores_are_format_errors() {
    let plan = spindle::preprocess::Plan {
        requests: vec![spindle::preprocess::Request::Square {
            ring: spindle::ring::RingId::Z64,
            shape: [3].into(),
        }],
        ..Default::default()
    };
    let stores = Dealer::new(2, Device::default())
        .unwrap()
        .generate(&plan)
        .unwrap();
    let bytes = stores[0].to_bytes();
    assert_eq!(PartyStore::from_bytes(&bytes, "ok").unwrap(), stores[0]);
    for cut in [0, 7, 20, 47, bytes.len() - 1] {
        assert!(
            matches!(
                PartyStore::from_bytes(&bytes[..cut], "cut"),
                Err(Error::Format { .. })
            ),
            "cut {cut}"
        );
    }
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(matches!(
        PartyStore::from_bytes(&bad, "magic"),
        Err(Error::Format { .. })
    ));
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(matches!(
        PartyStore::from_bytes(&extra, "trailing"),
        Err(Error::Format { .. })
    ));

    let dir = std::env::temp_dir().join(format!("spindle-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("party0.bin");
    stores[0].write_file(&path).unwrap();
    assert_eq!(PartyStore::read_file(&path).unwrap(), stores[0]);
    assert!(matches!(
        PartyStore::read_file(&dir.join("missing.bin")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_store_for_another_party_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = Dealer::new(2, Device::default())
        .unwrap()
        .generate(&Default::default())
        .unwrap();
    let err = rt.block_on(async move {
        let mut eps = InMemoryNetwork::new(2);
        let t1: Arc<dyn Transport> = Arc::new(eps.pop().unwrap());
        let t0: Arc<dyn Transport> = Arc::new(eps.pop().unwrap());
        let other = tokio::spawn(Session::connect(
            t1,
            Device::default(),
            ProviderSpec::TrustedFirstParty,
            SessionConfig::default(),
        ));
        let s = Session::connect(
            t0,
            Device::default(),
            ProviderSpec::Store(stores[1].clone()),
            SessionConfig::default(),
        )
        .await;
        drop(other);
        s.err().expect("refused")
    });
    assert!(matches!(err, Error::InvalidParty(_)), "{err}");
}
