//! Secure matmul 1024x1024 by 1024x1024 for 2 and 3 parties (online phase,
//! in one process over the in-memory transport), with the plaintext f32
//! matmul of the same shape in the same run as the baseline.
//!
//! Criterion times only the online phase (`iter_custom`): the dry run and
//! the dealer run before each measured iteration. Bytes and rounds per
//! party are printed once per configuration. `*_online` expands each
//! party's material from its seed as the product asks for it;
//! `*_online_expanded_ahead` expands it in the offline phase
//! (`RunOptions::expand_ahead`), as a preprocessing phase would.

// Large short-lived buffers: mimalloc avoids a page fault per fresh allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use spindle::prg::{Prg, Seed};
use spindle::protocol::fixed;
use spindle::runner::{run_parties_blocking, RunOptions};

const N: usize = 1024;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("secure_matmul_1024");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));

    let mut prg = Prg::new(&Seed([3; 16]), 0);
    let mut raw = vec![0u64; 2 * N * N];
    prg.fill(&mut raw);
    let vals: Vec<f64> = raw
        .iter()
        .map(|&v| (v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect();
    let x = Arc::new(vals[..N * N].to_vec());
    let y = Arc::new(vals[N * N..].to_vec());

    for (parties, expand_ahead) in [(2usize, false), (2, true), (3, false), (3, true)] {
        let mut opts = RunOptions::new(parties);
        opts.expand_ahead = expand_ahead;
        let name = format!(
            "{parties}pc_online{}",
            if expand_ahead { "_expanded_ahead" } else { "" }
        );
        let (xa, ya) = (x.clone(), y.clone());
        let program = move |sess: Arc<spindle::Session>| {
            let (x, y) = (xa.clone(), ya.clone());
            async move {
                let me = sess.party();
                let a = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [N, N])?;
                let b = sess.share_input_f64::<u64>(1, (me == 1).then_some(&y[..]), [N, N])?;
                let before = sess.link_stats();
                let t0 = std::time::Instant::now();
                let z = fixed::matmul(&sess, &a, &b).await?;
                Ok((t0.elapsed(), sess.link_stats() - before, z.numel()))
            }
        };
        let report = run_parties_blocking(&opts, program.clone()).expect("secure matmul runs");
        for p in &report.parties {
            let (_, stats, _) = p.output;
            println!(
                "secure_matmul_1024/{name} party {}: {:.1} MiB sent, {} rounds, {:.1} KiB from dealer",
                p.party,
                stats.bytes_sent as f64 / (1 << 20) as f64,
                stats.rounds,
                p.dealer_bytes as f64 / 1024.0
            );
        }
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r =
                        run_parties_blocking(&opts, program.clone()).expect("secure matmul runs");
                    // The slowest party's product time is the online latency.
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

    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let mut zf = vec![0f32; N * N];
    g.bench_function("plaintext_f32_sgemm", |b| {
        b.iter(|| unsafe {
            // SAFETY: the slices hold N*N elements in row-major order, as the strides say.
            matrixmultiply::sgemm(
                N,
                N,
                N,
                1.0,
                xf.as_ptr(),
                N as isize,
                1,
                yf.as_ptr(),
                N as isize,
                1,
                0.0,
                zf.as_mut_ptr(),
                N as isize,
                1,
            );
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
