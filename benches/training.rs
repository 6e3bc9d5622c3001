//! One secure training iteration (forward, softmax cross-entropy, backward,
//! SGD) at 3 parties for the zoo models, on random MNIST- or CIFAR-shaped
//! inputs, in one process with the online dealer. Prints bytes and rounds
//! per party; criterion times the slowest party's iteration.
//!
//! SecureML and LeNet (batch 64 and 128) always run; AlexNet (batch 128)
//! and VGG16 (batch 32) take minutes per iteration on 2 CPU cores and run
//! only with SPINDLE_BENCH_LARGE=1.
//!
//! `SPINDLE_BENCH_DEVICE=cpu|auto|cuda:N` picks the backend (default
//! `cpu`; ids carry it, e.g. `lenet_batch64/cuda:0`): `scripts/gpu-check.sh`
//! times LeNet on the GPU against the CPU with it (issue 7).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use spindle::backend::{select_device, Backend, Device, DeviceChoice};
use spindle::nn::{loss, Init, ModelSpec, ModelWeights, SecureModel, Sgd};
use spindle::prg::{Prg, Seed};
use spindle::runner::{run_parties_blocking, Preprocessing, RunOptions};

// Large short-lived buffers: mimalloc avoids a page fault per fresh allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTIES: usize = 3;

fn iteration(
    spec: &ModelSpec,
    batch: usize,
    device: Device,
) -> impl Fn() -> (Duration, spindle_transport::LinkStats) {
    let d: usize = spec.input.iter().product();
    let mut raw = vec![0u64; batch * d];
    Prg::new(&Seed([9; 16]), 0).fill(&mut raw);
    let x: Arc<Vec<f64>> = Arc::new(
        raw.iter()
            .map(|&v| (v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
            .collect(),
    );
    let y: Arc<Vec<f64>> = Arc::new(
        (0..batch)
            .flat_map(|i| (0..10).map(move |c| (c == i % 10) as u8 as f64))
            .collect(),
    );
    let weights = Arc::new(ModelWeights::init(spec, Init::PyTorchDefault, 1));
    let spec = Arc::new(spec.clone());
    let mut opts = RunOptions::new(PARTIES);
    opts.backend = device;
    opts.preprocessing = Preprocessing::OnlineDealer;
    opts.timeout = Duration::from_secs(3600);
    move || {
        let (x, y, w, spec) = (x.clone(), y.clone(), weights.clone(), spec.clone());
        let r = run_parties_blocking(&opts, move |sess| {
            let (x, y, w, spec) = (x.clone(), y.clone(), w.clone(), spec.clone());
            async move {
                let me = sess.party();
                let mut model =
                    SecureModel::<u64>::share(&sess, &spec, 1, (me == 1).then_some(&*w))?;
                let shape = [vec![batch], spec.input.clone()].concat();
                let xs = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), shape)?;
                let ys =
                    sess.share_input_f64::<u64>(0, (me == 0).then_some(&y[..]), [batch, 10])?;
                let before = sess.link_stats();
                let t0 = Instant::now();
                let logits = model.forward(&sess, &xs, true).await?;
                let (grad, _) = loss::softmax_cross_entropy_grad(&sess, &logits, &ys).await?;
                model.backward(&sess, &grad, false).await?;
                Sgd {
                    lr: 0.01,
                    momentum: 0.9,
                    weight_decay: 0.0,
                }
                .step(&sess, model.params_mut())
                .await?;
                Ok((t0.elapsed(), sess.link_stats() - before))
            }
        })
        .expect("training iteration runs");
        let slowest = r
            .parties
            .iter()
            .map(|p| p.output.0)
            .max()
            .unwrap_or_default();
        (slowest, r.parties[0].output.1)
    }
}

/// The backend of `SPINDLE_BENCH_DEVICE` (default `cpu`).
fn bench_device() -> Device {
    let choice = std::env::var("SPINDLE_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let choice: DeviceChoice = choice
        .parse()
        .unwrap_or_else(|e| panic!("SPINDLE_BENCH_DEVICE={choice:?}: {e}"));
    select_device(choice).unwrap_or_else(|e| panic!("SPINDLE_BENCH_DEVICE: {e}"))
}

fn bench(c: &mut Criterion) {
    let device = bench_device();
    let label = device.name();
    let mut g = c.benchmark_group("training_iteration_3pc");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    let mut cases = vec![
        (spindle::models::secureml(), 128),
        (spindle::models::lenet(), 64),
        (spindle::models::lenet(), 128),
    ];
    if std::env::var("SPINDLE_BENCH_LARGE").is_ok_and(|v| v == "1") {
        cases.push((spindle::models::alexnet(), 128));
        cases.push((spindle::models::vgg16(), 32));
    }
    for (spec, batch) in cases {
        let step = iteration(&spec, batch, device.clone());
        let (t, s) = step();
        println!(
            "{}/batch{batch} on {label}: first iteration {:.3} s, party 0 sent {:.1} MiB in {} rounds",
            spec.name,
            t.as_secs_f64(),
            s.bytes_sent as f64 / (1 << 20) as f64,
            s.rounds
        );
        g.bench_function(format!("{}_batch{batch}/{label}", spec.name), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| step().0).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
