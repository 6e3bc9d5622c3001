//! Helpers of the non-linear function tests (`tests/nonlinear_*.rs`).
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;

use spindle::prg::Prg;
use spindle::ring::{FixedPoint, Ring};
use spindle::runner::run_parties_blocking;
use spindle::{Session, SessionConfig, Shared};
use spindle_transport::LinkStats;

/// Reals rounded to the fixed-point values they encode to, so the f64
/// reference sees exactly what the parties compute on.
pub fn quantize<R: Ring>(fp: FixedPoint, xs: &[f64]) -> Vec<f64> {
    xs.iter()
        .map(|&a| fp.decode(fp.encode::<R>(a).unwrap()))
        .collect()
}

/// Uniform reals in [lo, hi).
pub fn uniform_reals(prg: &mut Prg, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut raw = vec![0u64; n];
    prg.fill(&mut raw);
    raw.iter()
        .map(|&v| lo + (v >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo))
        .collect()
}

/// Runs `op` on a shared input (owned by party 0) at every party of an
/// N-party run; returns each party's revealed output (decoded) and the
/// traffic of `op` alone.
pub fn run_unary<R, F, Fut>(
    n: usize,
    cfg: SessionConfig,
    xs: Vec<f64>,
    shape: Vec<usize>,
    op: F,
) -> Vec<(Vec<f64>, LinkStats)>
where
    R: Ring,
    F: Fn(Arc<Session>, Shared<R>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = spindle::Result<Shared<R>>> + Send + 'static,
{
    run_unary_with::<R, F, Fut>(crate::common::options(n), cfg, xs, shape, op)
}

/// [`run_unary`] with the given run options (a case of the test axes):
/// the session is `cfg` with the options' truncation mode.
pub fn run_unary_with<R, F, Fut>(
    mut opts: spindle::runner::RunOptions,
    cfg: SessionConfig,
    xs: Vec<f64>,
    shape: Vec<usize>,
    op: F,
) -> Vec<(Vec<f64>, LinkStats)>
where
    R: Ring,
    F: Fn(Arc<Session>, Shared<R>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = spindle::Result<Shared<R>>> + Send + 'static,
{
    let xs = Arc::new(xs);
    let trunc = opts.session.trunc;
    opts.session = SessionConfig { trunc, ..cfg };
    let report = run_parties_blocking(&opts, move |sess: Arc<Session>| {
        let (xs, shape, op) = (xs.clone(), shape.clone(), op.clone());
        async move {
            let me = sess.party();
            let x = sess.share_input_f64::<R>(0, (me == 0).then_some(&xs[..]), shape)?;
            let before = sess.link_stats();
            let y = op(sess.clone(), x).await?;
            let cost = sess.link_stats() - before;
            Ok((sess.reveal_f64(&y).await?, cost))
        }
    })
    .expect("run succeeds");
    report.parties.into_iter().map(|p| p.output).collect()
}

/// Asserts the traffic of one party for an op: `rounds` rounds and
/// `elems` ring elements to each of the N - 1 peers.
pub fn assert_traffic<R: Ring>(cost: &LinkStats, n: usize, rounds: u64, elems: usize, what: &str) {
    assert_eq!(cost.rounds, rounds, "{what}: rounds");
    assert_eq!(
        cost.bytes_sent,
        ((n - 1) * elems * R::BYTES) as u64,
        "{what}: bytes sent ({} elements per peer expected)",
        elems
    );
}

/// Largest |got - want| where `abs(x)` says to measure absolutely, and
/// |got - want| / |want| elsewhere; returns (max error, input where it occurs).
pub fn max_err(
    xs: &[f64],
    got: &[f64],
    want: impl Fn(f64) -> f64,
    relative: impl Fn(f64) -> bool,
) -> (f64, f64) {
    let mut worst = (0.0, f64::NAN);
    for (&x, &g) in xs.iter().zip(got) {
        let w = want(x);
        let e = if relative(x) {
            (g - w).abs() / w.abs()
        } else {
            (g - w).abs()
        };
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    }
    worst
}

/// Largest |got - want| over each row of `width` values.
pub fn row_errors(got: &[f64], want: &[f64], width: usize) -> Vec<f64> {
    got.chunks(width)
        .zip(want.chunks(width))
        .map(|(g, w)| {
            g.iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        })
        .collect()
}

/// Errors for a log line: "1.2e-6" each.
pub fn sci(errs: &[f64]) -> Vec<String> {
    errs.iter().map(|e| format!("{e:.1e}")).collect()
}

/// One elementwise function under test.
pub struct Unary {
    pub name: &'static str,
    pub lo: f64,
    pub hi: f64,
    /// Extra inputs (edges) inside [lo, hi].
    pub edges: Vec<f64>,
    /// Max absolute error against `reference`.
    pub tol: f64,
    pub rounds: u64,
    /// Bytes sent to each peer for `len` inputs (`None`: not checked).
    pub bytes: Option<u64>,
    pub len: usize,
}

/// Runs `op` on fresh uniform inputs over [lo, hi] plus the edges for
/// N = 2, 3, 4 and checks error, rounds and bytes.
pub fn check_unary<R, F, Fut>(u: Unary, reference: fn(f64) -> f64, op: F)
where
    R: Ring,
    F: Fn(Arc<Session>, Shared<R>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = spindle::Result<Shared<R>>> + Send + 'static,
{
    let fp = FixedPoint::default_for::<R>();
    // N = 2, 3, 4 on every test device (the dealer's truncation: the
    // non-linear protocols' error and round budgets assume it).
    for case in crate::common::axes::cases(crate::common::axes::Truncs::Dealer) {
        let n = case.n;
        let seed = spindle::prg::Seed::random().expect("OS randomness");
        eprintln!("{} {}: seed {:02x?}", u.name, case.label::<R>(), seed.0);
        let mut prg = Prg::new(&seed, 0);
        let mut xs = uniform_reals(&mut prg, u.len - u.edges.len(), u.lo, u.hi);
        xs.extend(&u.edges);
        let xs = quantize::<R>(fp, &xs);
        let out = run_unary_with::<R, _, _>(
            case.options(),
            SessionConfig::default(),
            xs.clone(),
            vec![u.len],
            op.clone(),
        );
        for (got, cost) in &out {
            let (err, at) = max_err(&xs, got, reference, |_| false);
            eprintln!(
                "{} Z_2^{} N={n}: max error {err:.2e} at {at}, rounds {}, bytes per element to each peer {:.2}",
                u.name,
                R::BITS,
                cost.rounds,
                cost.bytes_sent as f64 / (n - 1) as f64 / u.len as f64
            );
            assert!(
                err <= u.tol,
                "{}: error {err} at x = {at} above {}",
                u.name,
                u.tol
            );
            assert_eq!(cost.rounds, u.rounds, "{}: rounds", u.name);
            if let Some(b) = u.bytes {
                assert_eq!(cost.bytes_sent, b * (n as u64 - 1), "{}: bytes", u.name);
            }
        }
    }
}
