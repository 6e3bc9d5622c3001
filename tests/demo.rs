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
