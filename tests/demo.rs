//! The demo job end to end: real MNIST sample, secret classifier, N parties.

use std::process::Command;

use spindle::demo::{run, DemoOptions};
use spindle::runner::Preprocessing;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_classifies_like_plaintext_for_2_3_4_parties() {
    for n in [2, 3, 4] {
        for preprocessing in [Preprocessing::Dealer, Preprocessing::TrustedFirstParty] {
            let r = run(&DemoOptions {
                n_parties: n,
                images: 64,
                preprocessing,
                frac_bits: None,
                ..Default::default()
            })
            .await
            .unwrap();
            assert_eq!(
                r.agreeing_predictions, 64,
                "N={n}: secure and plaintext predictions agree"
            );
            assert_eq!(r.secure_accuracy, r.plaintext_accuracy);
            assert!(
                r.plaintext_accuracy > 0.85,
                "the shipped classifier works: {}",
                r.plaintext_accuracy
            );
            // 784 products of encoded values: encoding error dominates, far below a logit gap.
            assert!(r.max_abs_error < 1e-3, "max error {}", r.max_abs_error);
            for c in &r.costs {
                // product (x: 64x784, w: 784x10) + truncation (64x10) + reveal (64x10), to N-1 peers.
                let elems = 64 * 784 + 784 * 10 + 2 * 64 * 10;
                assert_eq!(c.online.bytes_sent, ((n - 1) * elems * 8) as u64);
                assert_eq!(c.online.rounds, 3);
                if preprocessing == Preprocessing::Dealer && c.party > 0 {
                    assert_eq!(c.dealer_bytes, 48, "seed-only dealer message");
                }
            }
        }
    }
}

#[test]
fn demo_binary_runs_and_rejects_bad_options() {
    let exe = env!("CARGO_BIN_EXE_spindle");
    let out = Command::new(exe)
        .args(["demo", "--images", "16", "--no-train"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("predictions agree on 16/16"), "{stdout}");

    let out = Command::new(exe)
        .args(["demo", "--parties", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 2 parties"));

    let out = Command::new(exe)
        .args(["demo", "--images", "100000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--images"));
}

/// Runs the binary with `args`; returns (success, stderr).
fn spindle_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_too_large_for_the_machine_are_refused_up_front_with_the_flags_to_change() {
    // 100 parties of LeNet training in one process need far more than any
    // test machine has: a clear error naming the estimate and the flags.
    let lenet = spindle::models::by_name("lenet").unwrap();
    let need = spindle::resources::train_estimate(&lenet, 100, 128).unwrap();
    if spindle::resources::available_memory().is_none_or(|a| a >= need) {
        eprintln!(
            "skipping: this machine could hold the run (or does not say how much memory it has)"
        );
        return;
    }
    let (ok, err) = spindle_cli(&["train", "--parties", "100", "--train-limit", "128"]);
    assert!(!ok);
    assert!(
        err.contains("not enough memory") && err.contains("GiB") && err.contains("--parties"),
        "{err}"
    );
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/minilm");
    if !model.join("config.json").exists() {
        eprintln!(
            "skipping the inference case: no model at {}",
            model.display()
        );
        return;
    }
    let m = model.display().to_string();
    let (ok, err) = spindle_cli(&[
        "infer",
        "--model",
        &m,
        "--text",
        "hello",
        "--parties",
        "100",
        "--layers",
        "1",
    ]);
    assert!(!ok);
    assert!(
        err.contains("not enough memory") && err.contains("--parties"),
        "{err}"
    );
}
