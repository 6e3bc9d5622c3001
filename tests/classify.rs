//! Secure CNN inference over an image file (`spindle classify`): the
//! inter-batch pipeline gives bit-identical results and bytes for any
//! window, the logits match the plaintext model, the labels are the
//! argmax of the secure logits, and the model comes from plaintext weights
//! or from every party's share checkpoint.

mod common;

use std::path::PathBuf;

use spindle::classify::{classify, plaintext_labels, ClassifyJob, ModelSource, Reveal};
use spindle::io::checkpoint::ShareCheckpoint;
use spindle::nn::{Init, ModelWeights, PlainModel, PlainTensor};
use spindle::pipeline::InterBatch;
use spindle::prg::{Prg, Seed};
use spindle::ring::{FixedPoint, RingTensor};
use spindle::runner::{Preprocessing, RunOptions};

fn sample_images() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/mnist-sample/t10k-images-512-idx3-ubyte.gz")
}

fn run_options(n: usize) -> RunOptions {
    let mut run = common::options(n);
    run.preprocessing = Preprocessing::OnlineDealer;
    run.dealer_seed = Some(Seed([7; 16]));
    run
}

fn job(source: ModelSource, count: usize, in_flight: usize, reveal: Reveal) -> ClassifyJob {
    ClassifyJob {
        model: "lenet".into(),
        source,
        images: sample_images(),
        count,
        pipeline: InterBatch {
            micro_batch: 16,
            in_flight,
        },
        reveal,
        static_weights: true,
    }
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

/// LeNet logits of 40 images (micro-batches 16, 16, 8) from plaintext
/// weights: the same bits and the same bytes per party with 1 micro-batch
/// in flight and every op inline, or 3 in flight and the compute stage, within 2^-10 of the plaintext model; N = 2, 3.
#[test]
fn classify_is_bit_identical_for_any_window_and_matches_the_plaintext_model() {
    let spec = spindle::models::lenet();
    let w = ModelWeights::init(&spec, Init::PyTorchDefault, 11);
    let dir = common::temp_dir("classify-weights");
    let path = dir.join("lenet.safetensors");
    w.write_state_dict(&spec, &path).unwrap();
    let images = spindle::io::mnist::read_images(&sample_images())
        .unwrap()
        .take(40)
        .unwrap();
    let mut plain = PlainModel::new(&spec, w.clone()).unwrap();
    let x = PlainTensor::new([40, 1, 28, 28], images.normalized()).unwrap();
    let expected = plain.forward(&x, false).unwrap().data;
    for n in [2, 3] {
        let mut results = Vec::new();
        // The serial engine (one in flight, every op inline) and the
        // pipeline (three in flight, GEMMs on the compute stage).
        for (in_flight, compute_workers) in [(1, 0), (3, 1)] {
            let j = job(
                ModelSource::StateDict(path.clone()),
                40,
                in_flight,
                Reveal::Logits,
            );
            let mut ro = run_options(n);
            ro.session.compute_workers = compute_workers;
            let r = classify(&j, &ro, None).unwrap();
            let bytes: Vec<u64> = r
                .phases
                .iter()
                .map(|p| p.iter().map(|ph| ph.link.bytes_sent).sum())
                .collect();
            results.push((r.output, bytes));
        }
        assert_eq!(results[0].0.len(), 400);
        assert!(
            results[0] == results[1],
            "N = {n}: in flight 1 and 3 differ"
        );
        let err = results[0]
            .0
            .iter()
            .zip(&expected)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(0.0, f64::max);
        eprintln!("N = {n}: max |secure - plaintext| logit error {err:.2e}");
        assert!(err < 2f64.powi(-10), "N = {n}: logit error {err}");
        // Inter-linear off: every product opens W - B again, 3 micro-batches
        // x 430,500 weights more in the classify phase, the load 430,500 less.
        let mut fresh = job(ModelSource::StateDict(path.clone()), 40, 3, Reveal::Logits);
        fresh.static_weights = false;
        let r = classify(&fresh, &run_options(n), None).unwrap();
        let on = job(ModelSource::StateDict(path.clone()), 40, 3, Reveal::Logits);
        let on = classify(&on, &run_options(n), None).unwrap();
        let weights: u64 = spec
            .param_shapes()
            .iter()
            .step_by(2)
            .map(|s| s.numel() as u64)
            .sum();
        assert_eq!(weights, 430_500);
        let per_peer = (n as u64 - 1) * weights * 8;
        for party in 0..n {
            let phase = |r: &spindle::classify::ClassifyReport, i: usize| {
                r.phases[party][i].link.bytes_sent
            };
            assert_eq!(
                phase(&r, 1) - phase(&on, 1),
                3 * per_peer,
                "party {party}: classify"
            );
            assert_eq!(
                phase(&on, 0) - phase(&r, 0),
                per_peer,
                "party {party}: load"
            );
        }
        let err = r
            .output
            .iter()
            .zip(&expected)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(0.0, f64::max);
        assert!(
            err < 2f64.powi(-10),
            "N = {n}, fresh weights: logit error {err}"
        );
        // Inner-layer lanes on every layer (row blocks of the products with
        // the opened weights, lanes of the comparisons): the same accuracy,
        // and still the same bits for any window.
        let mut laned = run_options(n);
        laned.session.pipeline = spindle::pipeline::InnerPipeline {
            lanes: 3,
            min_elems: 1,
        };
        let outs: Vec<Vec<f64>> = [1, 2]
            .iter()
            .map(|&k| {
                let j = job(ModelSource::StateDict(path.clone()), 40, k, Reveal::Logits);
                classify(&j, &laned, None).unwrap().output
            })
            .collect();
        assert_eq!(outs[0], outs[1], "N = {n}: lanes, in flight 1 and 2");
        let err = outs[0]
            .iter()
            .zip(&expected)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(0.0, f64::max);
        assert!(err < 2f64.powi(-10), "N = {n}, in lanes: logit error {err}");
    }
}

/// Writes every party's share checkpoint of `w` (random additive shares
/// of its fixed-point encoding) for `n` parties, run `run_id`.
fn write_checkpoints(dir: &std::path::Path, w: &ModelWeights, n: usize, run_id: u128) {
    let spec = spindle::models::lenet();
    let fp = FixedPoint::new::<u64>(20).unwrap();
    let mut prg = Prg::new(&Seed([run_id as u8; 16]), 1);
    let mut shares: Vec<Vec<RingTensor<u64>>> = vec![Vec::new(); n];
    for (shape, values) in &w.tensors {
        let mut last: Vec<u64> = values
            .iter()
            .map(|&v| fp.encode::<u64>(v as f64).unwrap())
            .collect();
        for s in shares.iter_mut().take(n - 1) {
            let r: RingTensor<u64> = prg.tensor(shape.clone());
            for (l, v) in last.iter_mut().zip(r.data()) {
                *l = l.wrapping_sub(*v);
            }
            s.push(r);
        }
        shares[n - 1].push(RingTensor::new(shape.clone(), last).unwrap());
    }
    for (party, params) in shares.into_iter().enumerate() {
        ShareCheckpoint::<u64> {
            model: "lenet".into(),
            party,
            n_parties: n,
            frac_bits: 20,
            epoch: 2,
            run_id,
            spec: spec.fingerprint(),
            params,
            velocity: Vec::new(),
        }
        .write(&dir.join(format!("lenet-party{party}-epoch2.safetensors")))
        .unwrap();
    }
}

/// Labels from share checkpoints (each party reads only its own) are the
/// argmax of the secure logits of the same run and agree with the
/// plaintext model; checkpoints of two runs mixed are refused, naming why.
#[test]
fn classify_from_share_checkpoints_reveals_the_labels_of_the_secret_model() {
    let n = 3;
    let spec = spindle::models::lenet();
    let w = ModelWeights::init(&spec, Init::KaimingUniform, 5);
    let dir = common::temp_dir("classify-checkpoints");
    write_checkpoints(&dir, &w, n, 41);
    let source = ModelSource::Checkpoints {
        dir: dir.to_path_buf(),
        epoch: None,
    };
    let labels = classify(
        &job(source.clone(), 24, 2, Reveal::Label),
        &run_options(n),
        None,
    )
    .unwrap()
    .output;
    let logits = classify(
        &job(source.clone(), 24, 2, Reveal::Logits),
        &run_options(n),
        None,
    )
    .unwrap()
    .output;
    let from_logits: Vec<f64> = logits.chunks(10).map(|r| argmax(r) as f64).collect();
    assert_eq!(labels, from_logits);
    let images = spindle::io::mnist::read_images(&sample_images())
        .unwrap()
        .take(24)
        .unwrap();
    let plain = plaintext_labels(&spec, w.clone(), &images).unwrap();
    let agree = plain
        .iter()
        .zip(&labels)
        .filter(|(p, &l)| **p == l as usize)
        .count();
    assert!(
        agree >= 23,
        "only {agree} of 24 labels agree with the plaintext model"
    );
    // The reconstruction for --check gives the weights back (to fixed point).
    let back = spindle::classify::reconstruct_checkpoints(&dir, &spec, n, None).unwrap();
    let err = back.tensors[0]
        .1
        .iter()
        .zip(&w.tensors[0].1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-5, "{err}");
    // Party 2's share from another run: refused before anything is revealed.
    let other = common::temp_dir("classify-checkpoints-other");
    write_checkpoints(&other, &w, n, 42);
    std::fs::copy(
        other.join("lenet-party2-epoch2.safetensors"),
        dir.join("lenet-party2-epoch2.safetensors"),
    )
    .unwrap();
    let e = classify(&job(source, 24, 2, Reveal::Label), &run_options(n), None).unwrap_err();
    assert!(e.to_string().contains("different training runs"), "{e}");
}

/// Bad input is a clear error: a missing image file (named), weights of
/// another model, a window of 0.
#[test]
fn classify_refuses_bad_input_with_clear_errors() {
    let dir = common::temp_dir("classify-errors");
    let secureml = spindle::models::secureml();
    let path = dir.join("secureml.safetensors");
    ModelWeights::init(&secureml, Init::PyTorchDefault, 1)
        .write_state_dict(&secureml, &path)
        .unwrap();
    let mut j = job(ModelSource::StateDict(path.clone()), 8, 1, Reveal::Label);
    let e = classify(&j, &run_options(2), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("tensor 0.weight has dims [128, 784]"),
        "{e}"
    );
    j.images = dir.join("absent-idx3-ubyte");
    let e = classify(&j, &run_options(2), None).unwrap_err();
    assert!(e.to_string().contains("absent-idx3-ubyte"), "{e}");
    j.pipeline.in_flight = 0;
    let e = classify(&j, &run_options(2), None).unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
}
