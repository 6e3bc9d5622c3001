//! ReLU (and max) on 1,000,000 elements for 2 and 3 parties, online phase,
//! in one process over the in-memory transport. Prints bytes and rounds per
//! party once per configuration; criterion times the slowest party's ReLU.

// Large short-lived buffers: mimalloc avoids a page fault per fresh allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use spindle::prg::{Prg, Seed};
use spindle::protocol::compare;
use spindle::runner::{run_parties_blocking, RunOptions};

const N: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("relu_1m");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    let mut raw = vec![0u64; N];
    Prg::new(&Seed([5; 16]), 0).fill(&mut raw);
    let x = Arc::new(
        raw.iter()
            .map(|&v| ((v >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 200.0)
            .collect::<Vec<f64>>(),
    );
    for parties in [2usize, 3] {
        let opts = RunOptions::new(parties);
        let xa = x.clone();
        let program = move |sess: Arc<spindle::Session>| {
            let x = xa.clone();
            async move {
                let xs =
                    sess.share_input_f64::<u64>(0, (sess.party() == 0).then_some(&x[..]), [N])?;
                let before = sess.link_stats();
                let t0 = Instant::now();
                compare::relu(&sess, &xs).await?;
                Ok((t0.elapsed(), sess.link_stats() - before))
            }
        };
        let report = run_parties_blocking(&opts, program.clone()).expect("relu runs");
        for p in &report.parties {
            let (t, s) = p.output;
            println!(
                "relu_1m/{parties}pc party {}: {:.1} MB sent, {} rounds, {:.0} ms (first run)",
                p.party,
                s.bytes_sent as f64 / 1e6,
                s.rounds,
                t.as_secs_f64() * 1e3
            );
        }
        g.bench_function(format!("{parties}pc_online"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let r = run_parties_blocking(&opts, program.clone()).expect("relu runs");
                        r.parties
                            .iter()
                            .map(|p| p.output.0)
                            .max()
                            .unwrap_or_default()
                    })
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
