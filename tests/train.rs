//! `spindle train` end to end on the shipped MNIST sample: the loss falls,
//! accuracy beats chance, the plaintext twin agrees, checkpoints resume
//! exactly, and bad checkpoints are refused.

use spindle::nn::Sgd;
use spindle::runner::Preprocessing;
use spindle::train::{train, Data, Evaluation, TrainOptions};
use spindle::Error;

fn small(model: &str) -> TrainOptions {
    TrainOptions {
        model: model.into(),
        data: Data::EmbeddedSample,
        parties: 3,
        epochs: 1,
        batch: 16,
        sgd: Sgd {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
        },
        train_limit: Some(256),
        test_limit: Some(64),
        seed: 11,
        plaintext_twin: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn lenet_trains_on_real_mnist() {
    let r = train(&small("lenet")).await.unwrap();
    let e = &r.epochs[0];
    eprintln!(
        "losses {:?} accuracy {} twin {:?}",
        r.losses, e.accuracy, e.plaintext_accuracy
    );
    let (first, last) = (
        r.losses[..2].iter().sum::<f64>() / 2.0,
        r.losses[r.losses.len() - 2..].iter().sum::<f64>() / 2.0,
    );
    assert!(last < 0.8 * first, "loss falls: {:?}", r.losses);
    assert!(
        e.accuracy > 0.4,
        "accuracy {} beats chance (0.1) by a wide margin",
        e.accuracy
    );
    let twin = e.plaintext_accuracy.unwrap();
    assert!(
        (e.accuracy - twin).abs() <= 0.1,
        "secure {} vs plaintext twin {}",
        e.accuracy,
        twin
    );
    assert!(e.per_iteration.rounds > 0 && e.per_iteration.bytes_sent > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn resume_continues_exactly_and_checkpoints_are_checked() {
    let dir = std::env::temp_dir().join(format!("spindle-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = small("secureml");
    o.plaintext_twin = false;
    o.parties = 2;
    o.train_limit = Some(128);
    o.evaluation = Evaluation::RevealToOwner;
    o.epochs = 2;
    // Bit-exact resume needs the same dealer material: a fixed seed.
    o.dealer_seed = Some(spindle::prg::Seed([0x5e; 16]));
    let straight = train(&o).await.unwrap();
    o.checkpoint_dir = Some(dir.clone());
    o.epochs = 1;
    let first = train(&o).await.unwrap();
    o.epochs = 2;
    o.resume = true;
    let resumed = train(&o).await.unwrap();
    let k = first.losses.len();
    assert_eq!(first.losses[..], straight.losses[..k]);
    assert_eq!(
        resumed.losses[..],
        straight.losses[k..],
        "resumed epoch 2 equals the uninterrupted one"
    );
    assert_eq!(resumed.epochs[0].accuracy, straight.epochs[1].accuracy);

    // A checkpoint of another party or model is refused.
    let a = dir.join("secureml-party0-epoch2.safetensors");
    let b = dir.join("secureml-party1-epoch2.safetensors");
    std::fs::copy(&a, &b).unwrap();
    let err = train(&o).await.unwrap_err();
    assert!(
        matches!(&err, Error::Format { detail, .. } if detail.contains("party 0")),
        "{err}"
    );
    std::fs::write(&a, b"not a checkpoint").unwrap();
    assert!(matches!(train(&o).await.unwrap_err(), Error::Format { .. }));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn bad_training_requests_are_errors() {
    let mut o = small("alexnet");
    assert!(matches!(
        train(&o).await.unwrap_err(),
        Error::Unsupported(_)
    ));
    o.model = "lenet".into();
    o.parties = 1;
    assert!(matches!(
        train(&o).await.unwrap_err(),
        Error::InvalidParty(_)
    ));
    o.parties = 2;
    o.batch = 1000;
    assert!(matches!(
        train(&o).await.unwrap_err(),
        Error::ShapeMismatch { .. }
    ));
    o.batch = 32;
    o.data = Data::Dir("/nonexistent/mnist".into());
    assert!(matches!(
        train(&o).await.unwrap_err(),
        Error::Io { .. } | Error::Format { .. }
    ));
    o.data = Data::EmbeddedSample;
    o.preprocessing = Preprocessing::OnlineDealer;
    o.resume = true;
    assert!(
        matches!(train(&o).await.unwrap_err(), Error::Unsupported(_)),
        "--resume needs a directory"
    );
    // A micro-batch of 0: refused in one process and as a party's job.
    o.resume = false;
    o.pipeline = Some(spindle::pipeline::InterBatch {
        micro_batch: 0,
        in_flight: 2,
    });
    assert!(matches!(train(&o).await.unwrap_err(), Error::Format { .. }));
    let job = spindle::jobs::AnyJob::Train(Box::new(o));
    assert!(matches!(job.validate().unwrap_err(), Error::Format { .. }));
}

/// Writes the four IDX files of an MNIST-like set of `n` images of
/// `rows x cols` pixels (uncompressed) into `dir`.
fn write_idx(dir: &std::path::Path, n: usize, rows: usize, cols: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (images, labels) in [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ] {
        let mut img = vec![0, 0, 8, 3];
        for d in [n, rows, cols] {
            img.extend((d as u32).to_be_bytes());
        }
        img.extend((0..n * rows * cols).map(|i| (i * 7 % 256) as u8));
        std::fs::write(dir.join(images), img).unwrap();
        let mut lab = vec![0, 0, 8, 1];
        lab.extend((n as u32).to_be_bytes());
        lab.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(labels), lab).unwrap();
    }
}

#[tokio::test]
async fn data_that_does_not_fit_the_model_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("spindle-idx10-{}", std::process::id()));
    write_idx(&dir, 64, 10, 10);
    let mut o = small("lenet");
    o.data = Data::Dir(dir.clone());
    o.plaintext_twin = false;
    let err = train(&o).await.unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { .. }) && err.to_string().contains("10x10"),
        "{err}"
    );
    // A limit above the data's size takes all of it (28x28 images this time).
    write_idx(&dir, 40, 28, 28);
    o.model = "secureml".into();
    o.parties = 2;
    o.train_limit = Some(100_000);
    o.test_limit = Some(100_000);
    let r = train(&o).await.unwrap();
    assert_eq!(r.losses.len(), 40 / o.batch);
    // No test images, no epochs: errors that say so.
    o.test_limit = Some(0);
    let err = train(&o).await.unwrap_err();
    assert!(err.to_string().contains("test set is empty"), "{err}");
    o.test_limit = None;
    o.epochs = 0;
    let err = train(&o).await.unwrap_err();
    assert!(err.to_string().contains("--epochs"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_that_do_not_belong_together_are_refused() {
    let root = std::env::temp_dir().join(format!("spindle-ckmix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (a, b) = (root.join("a"), root.join("b"));
    let mut o = small("secureml");
    o.plaintext_twin = false;
    o.parties = 2;
    o.train_limit = Some(32);
    o.test_limit = Some(16);
    o.evaluation = Evaluation::RevealToOwner;
    for dir in [&a, &b] {
        o.checkpoint_dir = Some(dir.clone());
        train(&o).await.unwrap();
    }
    let file =
        |dir: &std::path::Path, p: usize| dir.join(format!("secureml-party{p}-epoch1.safetensors"));
    o.epochs = 2;
    o.resume = true;
    let refused = |err: Error, want: &str| {
        assert!(
            matches!(&err, Error::Format { .. }) && err.to_string().contains(want),
            "expected {want:?}: {err}"
        );
    };

    // Share files of two runs mixed.
    let mixed = root.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::copy(file(&a, 0), file(&mixed, 0)).unwrap();
    std::fs::copy(file(&b, 1), file(&mixed, 1)).unwrap();
    o.checkpoint_dir = Some(mixed.clone());
    refused(train(&o).await.unwrap_err(), "different training runs");

    // One party's file missing: named, not skipped.
    std::fs::remove_file(file(&mixed, 1)).unwrap();
    refused(
        train(&o).await.unwrap_err(),
        "party 1's checkpoint of epoch 1 is missing",
    );

    // Flipped bytes in the share data (the end of the file).
    o.checkpoint_dir = Some(a.clone());
    let good = std::fs::read(file(&a, 1)).unwrap();
    let mut bad = good.clone();
    let len = bad.len();
    for byte in &mut bad[len - 200..] {
        *byte ^= 0x5a;
    }
    std::fs::write(file(&a, 1), &bad).unwrap();
    refused(train(&o).await.unwrap_err(), "SHA-256");
    std::fs::write(file(&a, 1), &good).unwrap();

    // Another precision than the checkpoint's.
    o.frac_bits = Some(16);
    refused(train(&o).await.unwrap_err(), "--frac-bits 20");
    o.frac_bits = None;

    // The intact run resumes.
    let r = train(&o).await.unwrap();
    assert_eq!(r.epochs.len(), 1);
    assert_eq!(r.epochs[0].epoch, 2);
    std::fs::remove_dir_all(&root).ok();
}

/// The inter-batch pipeline in training: each step's batch of 16 as two
/// micro-batches of 8 on forks, their gradients summed before the step.
/// One in flight with every op inline and two in flight with the compute
/// stage give the same losses, accuracy and bytes bit for bit (same dealer
/// seed); against the batch in one piece the losses stay
/// within the fixed-point noise. LeNet, 3 parties, 4 steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn micro_batched_steps_are_bit_identical_for_any_window() {
    use spindle::pipeline::InterBatch;
    let base = TrainOptions {
        train_limit: Some(64),
        test_limit: Some(32),
        plaintext_twin: false,
        dealer_seed: Some(spindle::prg::Seed([3; 16])),
        ..small("lenet")
    };
    // The serial engine (one in flight, every op inline) against two in
    // flight with the GEMMs on the compute stage.
    let run = |in_flight: usize, compute_workers: usize| {
        let o = TrainOptions {
            pipeline: Some(InterBatch {
                micro_batch: 8,
                in_flight,
            }),
            compute_workers,
            ..base.clone()
        };
        async move { train(&o).await.unwrap() }
    };
    let (one, two) = (run(1, 0).await, run(2, 1).await);
    assert_eq!(one.losses, two.losses);
    assert_eq!(one.epochs[0].accuracy, two.epochs[0].accuracy);
    assert_eq!(one.epochs[0].per_iteration, two.epochs[0].per_iteration);
    let whole = train(&base).await.unwrap();
    eprintln!(
        "losses micro-batched {:?}, whole {:?}",
        one.losses, whole.losses
    );
    for (a, b) in one.losses.iter().zip(&whole.losses) {
        assert!((a - b).abs() < 1e-3, "micro-batched {a} vs whole {b}");
    }
}
