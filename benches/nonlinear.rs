//! Non-linear functions for 2 and 3 parties, online phase, in one process
//! over the in-memory transport: exp, exp_nonpositive, reciprocal, rsqrt,
//! log, sigmoid, tanh, GeLU on 1,000,000 elements; softmax on 128 rows of
//! 128 (default max groups of 16, and groups of 128); LayerNorm on 128 x
//! 384. Prints bytes sent per party (to all peers) and rounds once per
//! configuration; criterion times the slowest party's call (the dry run and
//! the dealer run before each measured iteration).
//!
//! Run one function: `cargo bench --bench nonlinear -- exp_1m/2pc`. With
//! `SPINDLE_EXPAND_AHEAD=1` every party expands its material in the offline
//! phase (`RunOptions::expand_ahead`) and the ids end in `_expanded_ahead`.

// Large short-lived buffers: mimalloc avoids a page fault per fresh allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use spindle::prg::{Prg, Seed};
use spindle::protocol::nonlinear::{self, GeluForm, SoftmaxOptions};
use spindle::runner::{run_parties_blocking, RunOptions};
use spindle::{Session, Shared};

const N: usize = 1_000_000;

fn reals(n: usize, lo: f64, hi: f64, seed: u8) -> Arc<Vec<f64>> {
    let mut raw = vec![0u64; n];
    Prg::new(&Seed([seed; 16]), 0).fill(&mut raw);
    Arc::new(
        raw.iter()
            .map(|&v| lo + (v >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo))
            .collect(),
    )
}

/// Benchmarks `op` on x (shared by party 0) for 2 and 3 parties.
fn bench_op<F, Fut>(c: &mut Criterion, name: &str, x: Arc<Vec<f64>>, shape: Vec<usize>, op: F)
where
    F: Fn(Arc<Session>, Shared<u64>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = spindle::Result<Shared<u64>>> + Send + 'static,
{
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500));
    let expand_ahead = std::env::var("SPINDLE_EXPAND_AHEAD").is_ok_and(|v| v == "1");
    let suffix = if expand_ahead { "_expanded_ahead" } else { "" };
    for parties in [2usize, 3] {
        let mut opts = RunOptions::new(parties);
        opts.expand_ahead = expand_ahead;
        let (xa, sa, opa) = (x.clone(), shape.clone(), op.clone());
        let program = move |sess: Arc<Session>| {
            let (x, shape, op) = (xa.clone(), sa.clone(), opa.clone());
            async move {
                let me = sess.party();
                let xs = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), shape)?;
                let before = sess.link_stats();
                let t0 = Instant::now();
                let _y = op(sess.clone(), xs).await?;
                Ok((t0.elapsed(), sess.link_stats() - before))
            }
        };
        let report = run_parties_blocking(&opts, program.clone()).expect("runs");
        for p in &report.parties {
            let (t, stats) = p.output;
            println!(
                "{name}/{parties}pc{suffix} party {}: {:.1} ms, {:.2} MiB sent, {} rounds",
                p.party,
                t.as_secs_f64() * 1e3,
                stats.bytes_sent as f64 / (1 << 20) as f64,
                stats.rounds
            );
        }
        g.bench_function(format!("{parties}pc{suffix}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = run_parties_blocking(&opts, program.clone()).expect("runs");
                    total += r
                        .parties
                        .iter()
                        .map(|p| p.output.0)
                        .max()
                        .unwrap_or_default();
                }
                total
            })
        });
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let wide = reals(N, -20.0, 10.0, 1);
    let neg = reals(N, -30.0, 0.0, 2);
    let pos = Arc::new(
        reals(N, -9.9, 11.9, 3)
            .iter()
            .map(|e| e.exp2())
            .collect::<Vec<f64>>(),
    );
    let act = reals(N, -12.0, 17.0, 4);
    bench_op(c, "exp_1m", wide.clone(), vec![N], |s, x| async move {
        nonlinear::exp(&s, &x).await
    });
    bench_op(c, "exp_nonpositive_1m", neg, vec![N], |s, x| async move {
        nonlinear::exp_nonpositive(&s, &x).await
    });
    bench_op(
        c,
        "reciprocal_1m",
        pos.clone(),
        vec![N],
        |s, x| async move { nonlinear::reciprocal(&s, &x).await },
    );
    bench_op(c, "rsqrt_1m", pos.clone(), vec![N], |s, x| async move {
        nonlinear::rsqrt(&s, &x).await
    });
    bench_op(c, "log_1m", pos, vec![N], |s, x| async move {
        nonlinear::log(&s, &x).await
    });
    bench_op(c, "sigmoid_1m", wide.clone(), vec![N], |s, x| async move {
        nonlinear::sigmoid(&s, &x).await
    });
    bench_op(c, "tanh_1m", wide, vec![N], |s, x| async move {
        nonlinear::tanh(&s, &x).await
    });
    bench_op(c, "gelu_1m", act, vec![N], |s, x| async move {
        nonlinear::gelu(&s, &x, GeluForm::Erf).await
    });
    let scores = reals(128 * 128, -20.0, 20.0, 5);
    bench_op(
        c,
        "softmax_128x128",
        scores.clone(),
        vec![128, 128],
        |s, x| async move { nonlinear::softmax(&s, &x, 1, None).await },
    );
    bench_op(
        c,
        "softmax_128x128_group128",
        scores,
        vec![128, 128],
        |s, x| async move {
            let opts = SoftmaxOptions {
                max_group: Some(128),
            };
            nonlinear::softmax_with(&s, &x, 1, None, opts).await
        },
    );
    let hidden = reals(128 * 384, -3.0, 3.0, 6);
    bench_op(
        c,
        "layer_norm_128x384",
        hidden,
        vec![128, 384],
        |s, x| async move { nonlinear::layer_norm(&s, &x, 1e-12, None, None).await },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
