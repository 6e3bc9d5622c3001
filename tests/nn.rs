//! Secure layers against their plaintext twins (gradient checks over the
//! test axes: N = 2, 3, 4, the dealer's truncation and the local shift,
//! every test device; `tests/common/axes.rs`), and a short secure
//! training run on real MNIST.

mod common;

use std::sync::Arc;

use common::*;
use spindle::backend::Conv2dParams;
use spindle::io::mnist;
use spindle::nn::{
    loss, softmax_rows, Init, LayerSpec, ModelSpec, ModelWeights, PlainModel, PlainTensor,
    SecureModel, Sgd,
};
use spindle::prg::Prg;
use spindle::protocol::pool::Pool2d;
use spindle::Error;

fn one_layer(layer: LayerSpec, input: Vec<usize>) -> ModelSpec {
    // A leading identity (dropout p = 0) so the layer under test computes its input gradient.
    ModelSpec {
        name: "check".into(),
        input,
        layers: vec![LayerSpec::Dropout { p: 0.0 }, layer],
    }
}

/// Runs forward + backward securely and in plaintext; returns the max abs
/// differences of (output, input gradient, parameter gradients).
fn gradient_check(spec: ModelSpec, batch: usize, case: &axes::Case) -> (f64, f64, f64) {
    let weights = ModelWeights::init(&spec, Init::KaimingUniform, 7);
    let mut prg = Prg::new(&fresh_seed("gradcheck"), 0);
    let shapes = spec.shapes(batch).unwrap();
    let x = reals(&mut prg, shapes[0].numel(), 2.0);
    let g = reals(&mut prg, shapes.last().unwrap().numel(), 1.0);
    let mut plain = PlainModel::new(&spec, weights.clone()).unwrap();
    let to_f32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let y_plain = plain
        .forward(
            &PlainTensor::new(shapes[0].clone(), to_f32(&x)).unwrap(),
            true,
        )
        .unwrap();
    let dx_plain = plain
        .backward(&PlainTensor::new(shapes.last().unwrap().clone(), to_f32(&g)).unwrap())
        .unwrap();
    let (xa, ga, wa, sa, shp) = (
        Arc::new(x),
        Arc::new(g),
        Arc::new(weights),
        Arc::new(spec),
        Arc::new(shapes),
    );
    let report = case.run(move |sess| {
        let (x, g, w, spec, shapes) = (xa.clone(), ga.clone(), wa.clone(), sa.clone(), shp.clone());
        async move {
            let me = sess.party();
            let mut model = SecureModel::<u64>::share(&sess, &spec, 1, (me == 1).then_some(&*w))?;
            let xs =
                sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), shapes[0].clone())?;
            let gs = sess.share_input_f64::<u64>(
                0,
                (me == 0).then_some(&g[..]),
                shapes.last().unwrap().clone(),
            )?;
            let y = model.forward(&sess, &xs, true).await?;
            let dx = model
                .backward(&sess, &gs, true)
                .await?
                .expect("input gradient requested");
            let mut grads = Vec::new();
            for p in model.params_mut() {
                grads.push(sess.reveal_f64(p.grad.as_ref().expect("gradient")).await?);
            }
            Ok((
                sess.reveal_f64(&y).await?,
                sess.reveal_f64(&dx).await?,
                grads,
            ))
        }
    });
    let maxdiff = |a: &[f64], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - *q as f64).abs())
            .fold(0.0, f64::max)
    };
    let (y, dx, grads) = &report.parties[0].output;
    let dp = grads
        .iter()
        .zip(plain.grads())
        .map(|(a, b)| maxdiff(a, b))
        .fold(0.0, f64::max);
    (maxdiff(y, &y_plain.data), maxdiff(dx, &dx_plain.data), dp)
}

#[test]
fn every_layer_matches_its_plaintext_twin() {
    let pool = |k, s, p| Pool2d {
        kernel: (k, k),
        geometry: Conv2dParams {
            stride: (s, s),
            padding: (p, p),
        },
    };
    let cases = vec![
        (
            LayerSpec::Linear {
                inputs: 6,
                outputs: 4,
            },
            vec![6],
        ),
        (
            LayerSpec::Conv2d {
                in_channels: 2,
                out_channels: 3,
                kernel: (3, 3),
                params: Conv2dParams {
                    stride: (1, 1),
                    padding: (1, 1),
                },
            },
            vec![2, 5, 5],
        ),
        (
            LayerSpec::Conv2d {
                in_channels: 1,
                out_channels: 2,
                kernel: (2, 3),
                params: Conv2dParams {
                    stride: (2, 1),
                    padding: (0, 1),
                },
            },
            vec![1, 6, 5],
        ),
        (LayerSpec::ReLU, vec![12]),
        (LayerSpec::MaxPool2d(pool(2, 2, 0)), vec![2, 4, 4]),
        (LayerSpec::MaxPool2d(pool(3, 2, 1)), vec![1, 5, 5]),
        (LayerSpec::AvgPool2d(pool(2, 2, 0)), vec![2, 4, 4]),
        (LayerSpec::Flatten, vec![3, 2, 2]),
    ];
    for case in axes::cases(axes::Truncs::DealerAndLocalShift) {
        let n = case.label::<u64>();
        for (layer, input) in &cases {
            let (dy, dx, dp) = gradient_check(one_layer(layer.clone(), input.clone()), 3, &case);
            // Fixed point with f = 20: each product is within 1 ulp; sums of a
            // few dozen terms stay far below 1e-3.
            assert!(
                dy < 1e-3 && dx < 1e-3 && dp < 1e-3,
                "{layer:?} {n}: output {dy:e}, input grad {dx:e}, param grads {dp:e}"
            );
        }
    }
}

#[test]
fn inference_only_layers_say_so() {
    let spec = ModelSpec {
        name: "bn".into(),
        input: vec![2, 3, 3],
        layers: vec![LayerSpec::BatchNorm2d { channels: 2 }],
    };
    let weights = ModelWeights::init(&spec, Init::KaimingUniform, 1);
    let err =
        spindle::runner::run_parties_blocking(&spindle::runner::RunOptions::new(2), move |sess| {
            let (spec, weights) = (spec.clone(), weights.clone());
            async move {
                let mut model = SecureModel::<u64>::share(
                    &sess,
                    &spec,
                    0,
                    (sess.party() == 0).then_some(&weights),
                )?;
                let x = sess.share_input_f64::<u64>(
                    0,
                    (sess.party() == 0).then_some(&[0.5; 18][..]),
                    [1, 2, 3, 3],
                )?;
                let y = model.forward(&sess, &x, true).await?;
                model.backward(&sess, &y, false).await
            }
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(ref m) if m.contains("inference-only")),
        "{err}"
    );
    let bad = ModelWeights { tensors: vec![] };
    assert!(matches!(
        bad.check(&spindle::models::lenet()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn secure_training_on_mnist_lowers_the_loss_and_learns() {
    const BATCH: usize = 32;
    const STEPS: usize = 12;
    const LR: f64 = 0.05;
    const MOMENTUM: f64 = 0.5;
    let sample = mnist::embedded_sample().unwrap();
    let x: Vec<f64> = sample
        .images
        .normalized()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let labels = sample.labels.clone();
    let onehot: Vec<f64> = labels
        .iter()
        .flat_map(|&l| (0..10).map(move |c| (c == l as usize) as u8 as f64))
        .collect();
    let spec = spindle::models::secureml();
    let weights = ModelWeights::init(&spec, Init::KaimingUniform, 3);
    // The plaintext twin, same weights, batches and hyperparameters.
    let mut twin = PlainModel::new(&spec, weights.clone()).unwrap();
    let mut twin_losses = Vec::new();
    for step in 0..STEPS {
        let r = step * BATCH..(step + 1) * BATCH;
        let xb: Vec<f32> = x[r.start * 784..r.end * 784]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let logits = twin
            .forward(&PlainTensor::new([BATCH, 784], xb).unwrap(), true)
            .unwrap();
        let p = softmax_rows(&logits);
        let mut g = p.clone();
        let mut l = 0.0;
        for i in 0..BATCH {
            let t = labels[r.start + i] as usize;
            l -= (p[i * 10 + t] as f64).max(1e-9).ln();
            g[i * 10 + t] -= 1.0;
        }
        g.iter_mut().for_each(|v| *v /= BATCH as f32);
        twin.backward(&PlainTensor::new([BATCH, 10], g).unwrap())
            .unwrap();
        twin.sgd_step(LR as f32, MOMENTUM as f32, 0.0);
        twin_losses.push(l / BATCH as f64);
    }
    let (xa, ya, wa, sa) = (
        Arc::new(x),
        Arc::new(onehot),
        Arc::new(weights),
        Arc::new(spec),
    );
    let report = run(3, move |sess| {
        let (x, y, w, spec) = (xa.clone(), ya.clone(), wa.clone(), sa.clone());
        async move {
            let me = sess.party();
            let mut model = SecureModel::<u64>::share(&sess, &spec, 1, (me == 1).then_some(&*w))?;
            let opt = Sgd {
                lr: LR,
                momentum: MOMENTUM,
                weight_decay: 0.0,
            };
            let mut losses = Vec::new();
            for step in 0..STEPS {
                let r = step * BATCH..(step + 1) * BATCH;
                let xb = sess.share_input_f64::<u64>(
                    0,
                    (me == 0).then_some(&x[r.start * 784..r.end * 784]),
                    [BATCH, 784],
                )?;
                let yb = sess.share_input_f64::<u64>(
                    0,
                    (me == 0).then_some(&y[r.start * 10..r.end * 10]),
                    [BATCH, 10],
                )?;
                let logits = model.forward(&sess, &xb, true).await?;
                let (grad, probs) = loss::softmax_cross_entropy_grad(&sess, &logits, &yb).await?;
                model.backward(&sess, &grad, false).await?;
                opt.step(&sess, model.params_mut()).await?;
                // The data owner learns the batch loss (revealed to everyone in this test).
                let p = sess.reveal_f64(&probs).await?;
                let l: f64 = (0..BATCH)
                    .map(|i| {
                        -(p[i * 10
                            + y[(r.start + i) * 10..]
                                .iter()
                                .position(|&v| v == 1.0)
                                .unwrap()])
                        .max(1e-9)
                        .ln()
                    })
                    .sum();
                losses.push(l / BATCH as f64);
            }
            // Held-out accuracy on the last 128 images of the sample.
            let xt = sess.share_input_f64::<u64>(
                0,
                (me == 0).then_some(&x[384 * 784..512 * 784]),
                [128, 784],
            )?;
            let logits = sess
                .reveal_f64(&model.forward(&sess, &xt, false).await?)
                .await?;
            Ok((losses, logits))
        }
    });
    let (losses, logits) = &report.parties[0].output;
    let first: f64 = losses[..3].iter().sum::<f64>() / 3.0;
    let last: f64 = losses[STEPS - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        last < 0.7 * first,
        "loss falls: {losses:?} (plaintext twin: {twin_losses:?})"
    );
    for (s, t) in losses.iter().zip(&twin_losses) {
        assert!(
            (s - t).abs() < 0.05,
            "secure and plaintext losses agree: {losses:?} vs {twin_losses:?}"
        );
    }
    let correct = (0..128)
        .filter(|&i| {
            let row = &logits[i * 10..(i + 1) * 10];
            let pred = (0..10)
                .max_by(|&a, &b| row[a].partial_cmp(&row[b]).unwrap())
                .unwrap();
            pred == labels[384 + i] as usize
        })
        .count();
    assert!(
        correct > 64,
        "accuracy {correct}/128 beats chance (13) by a wide margin"
    );
}

/// Secure inference through one shared model on forks, several
/// micro-batches in flight (`SecureModel::infer`, the inter-batch
/// pipeline): the logits match the plaintext twin, and 1 or 3 in flight
/// give bit-identical logits (N = 2, 3).
#[test]
fn micro_batches_share_one_model_in_flight() {
    let pool = Pool2d {
        kernel: (2, 2),
        geometry: Conv2dParams {
            stride: (2, 2),
            padding: (0, 0),
        },
    };
    let spec = ModelSpec {
        name: "small-cnn".into(),
        input: vec![1, 6, 6],
        layers: vec![
            LayerSpec::Conv2d {
                in_channels: 1,
                out_channels: 2,
                kernel: (3, 3),
                params: Conv2dParams {
                    stride: (1, 1),
                    padding: (1, 1),
                },
            },
            LayerSpec::ReLU,
            LayerSpec::MaxPool2d(pool),
            LayerSpec::Flatten,
            LayerSpec::Linear {
                inputs: 18,
                outputs: 4,
            },
        ],
    };
    let weights = ModelWeights::init(&spec, Init::KaimingUniform, 3);
    let (items, d) = (7, 36);
    let mut prg = Prg::new(&fresh_seed("micro-batch cnn"), 0);
    let x = reals(&mut prg, items * d, 2.0);
    let mut plain = PlainModel::new(&spec, weights.clone()).unwrap();
    let to_f32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let want = plain
        .forward(
            &PlainTensor::new(vec![items, 1, 6, 6], to_f32(&x)).unwrap(),
            false,
        )
        .unwrap();
    let run = |n: usize, in_flight: usize| {
        let (x, w, spec) = (Arc::new(x.clone()), Arc::new(weights.clone()), spec.clone());
        let mut opts = options(n);
        opts.dealer_seed = Some(spindle::prg::Seed([9; 16]));
        spindle::runner::run_parties_blocking(&opts, move |sess| {
            let (x, w, spec) = (x.clone(), w.clone(), spec.clone());
            async move {
                let me = sess.party();
                let model = SecureModel::<u64>::share(&sess, &spec, 1, (me == 1).then_some(&*w))?;
                let ranges = spindle::pipeline::InterBatch {
                    micro_batch: 3,
                    in_flight,
                }
                .ranges(items);
                let (model, ranges) = (&model, &ranges);
                let parts = spindle::pipeline::run_micro_batches(
                    &sess,
                    ranges.len(),
                    in_flight,
                    |fork, i| {
                        let x = x.clone();
                        async move {
                            let r = ranges[i].clone();
                            let mine =
                                (fork.party() == 0).then(|| x[r.start * d..r.end * d].to_vec());
                            let xs = fork.share_input_f64::<u64>(
                                0,
                                mine.as_deref(),
                                [r.len(), 1, 6, 6],
                            )?;
                            let y = model.infer(&fork, &xs).await?;
                            fork.reveal_f64(&y).await
                        }
                    },
                    |_| {},
                )
                .await?;
                Ok(parts.concat())
            }
        })
        .unwrap()
        .parties
        .remove(0)
        .output
    };
    for n in [2, 3] {
        let serial = run(n, 1);
        assert_eq!(serial, run(n, 3), "N = {n}: 1 and 3 in flight");
        let err = serial
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - *b as f64).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-3, "N = {n}: logits off the twin by {err}");
    }
}

/// The round budget of a LeNet inference (issue 26): the forward pass of
/// a batch of 2 with the weights opened at load (as `spindle classify`),
/// lanes off (rounds, not message tags), N = 2 and 3. Per layer: each
/// convolution and linear layer 2 (product, truncation), each of the 2
/// ReLU + max-pool pairs 5 (fused: one max over the 4 window values and
/// 0: MSB 3, the AND over 4 comparison bits 1, the bit injection 1), the
/// last ReLU 4 (MSB 3, bit injection 1): 8 + 10 + 4 = 22. Before session
/// 21 (radix-2 trees, ReLU and pool apart) 42, before session 20 (MSB 7
/// rounds) 52.
#[test]
fn lenet_inference_takes_22_rounds() {
    let spec = spindle::models::lenet();
    let w = Arc::new(ModelWeights::init(&spec, Init::KaimingUniform, 5));
    for n in [2, 3] {
        let mut opts = options(n);
        opts.session.pipeline = spindle::pipeline::InnerPipeline::OFF;
        let (w, spec) = (w.clone(), spec.clone());
        let rep = spindle::runner::run_parties_blocking(&opts, move |sess| {
            let (w, spec) = (w.clone(), spec.clone());
            async move {
                let me = sess.party();
                let mut model =
                    SecureModel::<u64>::share(&sess, &spec, 1, (me == 1).then_some(&*w))?;
                model.prepare_inference(&sess).await?;
                let x = vec![0.25; 2 * 784];
                let xs =
                    sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [2, 1, 28, 28])?;
                let (_, cost) = measured(&sess, model.infer(&sess, &xs)).await?;
                Ok(cost.rounds)
            }
        })
        .unwrap();
        for p in &rep.parties {
            assert_eq!(
                p.output, 22,
                "N = {n}, party {}: LeNet inference rounds",
                p.party
            );
        }
    }
}
