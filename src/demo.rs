//! `spindle demo`: the main job on an embedded default.
//!
//! N parties in one process and a dealer. Party 0 owns real MNIST test
//! images (the sample shipped in `data/mnist-sample`), party 1 (party 0 when
//! N = 1 is refused) owns a linear classifier trained in plaintext
//! (`data/mnist-linear.safetensors`). The images and the weights are
//! secret-shared, the parties compute logits = X W + bias with a secure
//! fixed-point matmul and truncation, and the logits are revealed. The
//! report compares them with f64 and counts bytes and rounds per party,
//! online and offline separately.

use std::sync::Arc;
use std::time::Duration;

use spindle_transport::LinkStats;

use crate::backend::Device;
use crate::error::{Error, Result};
use crate::io::mnist;
use crate::protocol::fixed;
use crate::runner::{run_parties, Preprocessing, RunOptions};

/// Settings of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Number of parties (>= 2). Party 0 owns the images, party 1 the model.
    pub n_parties: usize,
    /// How many of the shipped test images to classify (1..=512).
    pub images: usize,
    /// Dealer (default) or trusted first party.
    pub preprocessing: Preprocessing,
    /// Fractional bits (default: the Z_2^64 default, 20).
    pub frac_bits: Option<u32>,
    /// Where share arithmetic runs ([`crate::backend::select_device`]).
    pub backend: Device,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            n_parties: 3,
            images: 128,
            preprocessing: Preprocessing::Dealer,
            frac_bits: None,
            backend: Device::default(),
        }
    }
}

/// Traffic of one party.
#[derive(Clone, Debug)]
pub struct DemoPartyCost {
    /// Party id.
    pub party: usize,
    /// Bytes received from the dealer in the offline phase.
    pub dealer_bytes: usize,
    /// Setup traffic (pairwise seeds).
    pub setup: LinkStats,
    /// Online traffic.
    pub online: LinkStats,
}

/// What the demo computed and measured.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Parties.
    pub n_parties: usize,
    /// Images classified.
    pub images: usize,
    /// Fractional bits used.
    pub frac_bits: u32,
    /// Largest |secure logit - f64 logit| over all images and classes.
    pub max_abs_error: f64,
    /// Images whose secure and plaintext predictions agree.
    pub agreeing_predictions: usize,
    /// Accuracy of the secure predictions against the true labels.
    pub secure_accuracy: f64,
    /// Accuracy of the f64 plaintext classifier on the same images.
    pub plaintext_accuracy: f64,
    /// Requests in the preprocessing plan (0 in trusted-first-party mode).
    pub plan_requests: usize,
    /// Per-party traffic.
    pub costs: Vec<DemoPartyCost>,
    /// Wall time of dry run plus dealer.
    pub offline_time: Duration,
    /// Wall time of the online phase.
    pub online_time: Duration,
}

fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Runs the demo.
///
/// Errors: [`Error::InvalidParty`] for fewer than 2 parties,
/// [`Error::ShapeMismatch`] for an image count outside 1..=512, and any
/// protocol error.
pub async fn run(opts: &DemoOptions) -> Result<DemoReport> {
    let sample = mnist::embedded_sample()?;
    if opts.images == 0 || opts.images > sample.images.n {
        return Err(Error::shape(
            "demo",
            format!(
                "--images must be in 1..={}, got {}",
                sample.images.n, opts.images
            ),
        ));
    }
    let split = sample.take(opts.images)?;
    let (weight, bias) = mnist::embedded_linear_classifier()?;
    let (n_img, d, classes) = (opts.images, split.images.pixels_per_image(), bias.len());
    let x: Arc<Vec<f64>> = Arc::new(split.images.normalized_f64());
    let w: Arc<Vec<f64>> = Arc::new(weight.iter().map(|&v| v as f64).collect());
    // The bias is added to every row: its owner shares it tiled to [n, classes].
    let b: Arc<Vec<f64>> = Arc::new(
        (0..n_img)
            .flat_map(|_| bias.iter().map(|&v| v as f64))
            .collect(),
    );

    let mut ro = RunOptions::new(opts.n_parties);
    ro.preprocessing = opts.preprocessing;
    ro.session.frac_bits = opts.frac_bits;
    ro.backend = opts.backend.clone();
    let (data_owner, model_owner) = (0, 1);
    let (xc, wc, bc) = (x.clone(), w.clone(), b.clone());
    let report = run_parties(&ro, move |sess| {
        let (x, w, b) = (xc.clone(), wc.clone(), bc.clone());
        async move {
            let me = sess.party();
            let xs = sess.share_input_f64::<u64>(
                data_owner,
                (me == data_owner).then_some(&x[..]),
                [n_img, d],
            )?;
            let ws = sess.share_input_f64::<u64>(
                model_owner,
                (me == model_owner).then_some(&w[..]),
                [d, classes],
            )?;
            let bs = sess.share_input_f64::<u64>(
                model_owner,
                (me == model_owner).then_some(&b[..]),
                [n_img, classes],
            )?;
            let logits = fixed::matmul(&sess, &xs, &ws).await?.add(&sess, &bs)?;
            sess.reveal_f64(&logits).await
        }
    })
    .await?;

    let frac_bits = opts
        .frac_bits
        .unwrap_or(<u64 as crate::ring::Ring>::DEFAULT_FRAC_BITS);
    let secure = &report.parties[0].output;
    let mut max_abs_error: f64 = 0.0;
    let (mut agree, mut correct_secure, mut correct_plain) = (0, 0, 0);
    for i in 0..n_img {
        let plain: Vec<f64> = (0..classes)
            .map(|c| {
                (0..d)
                    .map(|k| x[i * d + k] * w[k * classes + c])
                    .sum::<f64>()
                    + b[i * classes + c]
            })
            .collect();
        let sec = &secure[i * classes..(i + 1) * classes];
        for c in 0..classes {
            max_abs_error = max_abs_error.max((sec[c] - plain[c]).abs());
        }
        let (ps, pp) = (argmax(sec), argmax(&plain));
        agree += (ps == pp) as usize;
        correct_secure += (ps == split.labels[i] as usize) as usize;
        correct_plain += (pp == split.labels[i] as usize) as usize;
    }
    Ok(DemoReport {
        n_parties: opts.n_parties,
        images: n_img,
        frac_bits,
        max_abs_error,
        agreeing_predictions: agree,
        secure_accuracy: correct_secure as f64 / n_img as f64,
        plaintext_accuracy: correct_plain as f64 / n_img as f64,
        plan_requests: report.plan.as_ref().map_or(0, |p| p.requests.len()),
        costs: report
            .parties
            .iter()
            .map(|p| DemoPartyCost {
                party: p.party,
                dealer_bytes: p.dealer_bytes,
                setup: p.setup,
                online: p.online,
            })
            .collect(),
        offline_time: report.offline_time,
        online_time: report.online_time,
    })
}
