//! Trains, in plaintext, the linear MNIST classifier that ships as
//! `data/mnist-linear.safetensors` (and that the secure demo multiplies with
//! secret-shared images).
//!
//! Model: multinomial logistic (softmax) regression 784 -> 10 on pixels
//! normalized as [`MnistImages::normalized`], logits = x @ weight + bias.
//! Training: mini-batch SGD on the cross-entropy, zero initialization, a
//! deterministic shuffle per epoch (splitmix64, fixed seed), so runs are
//! reproducible on one platform (the file is byte-for-byte the same). Prints the loss per epoch and the final
//! train and test accuracy, and writes tensors `weight` (f32 [784, 10]) and
//! `bias` (f32 [10]) with the recipe and accuracies in the metadata.
//!
//! Run (from the repository root):
//!
//! ```sh
//! cargo run --release --example train_linear_plain [MNIST_DIR] [OUT]
//! ```
//!
//! `MNIST_DIR` defaults to `../shared/data/mnist` (`scripts/fetch-mnist.sh DIR`
//! downloads it), `OUT` to `data/mnist-linear.safetensors`.
//!
//! [`MnistImages::normalized`]: spindle::io::mnist::MnistImages::normalized

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use spindle::io::mnist::{load_split, MnistSplit, Split, LINEAR_IN, NUM_CLASSES};

const EPOCHS: usize = 10;
const BATCH: usize = 64;
const LR: f32 = 0.1;
const WEIGHT_DECAY: f32 = 1e-4;
const SEED: u64 = 0x5EED_1234;

/// splitmix64: a tiny, good-enough PRNG for shuffling.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Logits `x @ weight + bias` of one image, softmax-ed in place.
fn probabilities(x: &[f32], weight: &[f32], bias: &[f32], out: &mut [f32; NUM_CLASSES]) {
    out.copy_from_slice(bias);
    for (xi, wrow) in x.iter().zip(weight.chunks_exact(NUM_CLASSES)) {
        for (o, w) in out.iter_mut().zip(wrow) {
            *o += xi * w;
        }
    }
    let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for o in out.iter_mut() {
        *o = (*o - max).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Fraction of images whose arg max logit is the label.
fn accuracy(x: &[f32], labels: &[u8], weight: &[f32], bias: &[f32]) -> f64 {
    let mut p = [0.0; NUM_CLASSES];
    let correct = x
        .chunks_exact(LINEAR_IN)
        .zip(labels)
        .filter(|(row, &label)| {
            probabilities(row, weight, bias, &mut p);
            let best = (0..NUM_CLASSES).max_by(|&a, &b| p[a].total_cmp(&p[b]));
            best == Some(usize::from(label))
        })
        .count();
    correct as f64 / labels.len() as f64
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// Rewrites a safetensors header with sorted JSON keys, so that the file is
/// byte-for-byte reproducible (the metadata `HashMap` iterates in random order).
fn sorted_header(bytes: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let n = usize::try_from(u64::from_le_bytes(bytes[..8].try_into()?))?;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])?;
    let mut json = serde_json::to_vec(&header)?; // objects are BTreeMaps: sorted
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "../shared/data/mnist".into()));
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "data/mnist-linear.safetensors".into()),
    );

    let load = |split| -> Result<(Vec<f32>, Vec<u8>), spindle::Error> {
        let MnistSplit { images, labels } = load_split(&dir, split)?;
        if images.pixels_per_image() != LINEAR_IN {
            return Err(spindle::Error::shape(
                "train_linear_plain",
                format!(
                    "images are {} x {}, expected 28 x 28",
                    images.rows, images.cols
                ),
            ));
        }
        Ok((images.normalized(), labels))
    };
    let (train_x, train_y) = load(Split::Train)?;
    let (test_x, test_y) = load(Split::Test)?;
    let n = train_y.len();
    println!(
        "MNIST from {}: {n} train, {} test",
        dir.display(),
        test_y.len()
    );

    let mut weight = vec![0.0f32; LINEAR_IN * NUM_CLASSES];
    let mut bias = vec![0.0f32; NUM_CLASSES];
    let mut grad_w = vec![0.0f32; LINEAR_IN * NUM_CLASSES];
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SEED;
    let mut p = [0.0f32; NUM_CLASSES];

    for epoch in 0..EPOCHS {
        // Fisher-Yates with splitmix64.
        for i in (1..n).rev() {
            order.swap(i, (splitmix64(&mut rng) % (i as u64 + 1)) as usize);
        }
        // Step decay: LR / (1 + epoch).
        let lr = LR / (1 + epoch) as f32;
        let mut loss = 0.0f64;
        for batch in order.chunks(BATCH) {
            grad_w.fill(0.0);
            let mut grad_b = [0.0f32; NUM_CLASSES];
            for &i in batch {
                let x = &train_x[i * LINEAR_IN..(i + 1) * LINEAR_IN];
                let label = usize::from(train_y[i]);
                probabilities(x, &weight, &bias, &mut p);
                loss -= f64::from(p[label].max(1e-30).ln());
                p[label] -= 1.0; // now dLoss/dlogits
                for (xi, grow) in x.iter().zip(grad_w.chunks_exact_mut(NUM_CLASSES)) {
                    for (g, pk) in grow.iter_mut().zip(&p) {
                        *g += xi * pk;
                    }
                }
                for (g, pk) in grad_b.iter_mut().zip(&p) {
                    *g += pk;
                }
            }
            let step = lr / batch.len() as f32;
            for (w, g) in weight.iter_mut().zip(&grad_w) {
                *w -= step * g + lr * WEIGHT_DECAY * *w;
            }
            for (b, g) in bias.iter_mut().zip(&grad_b) {
                *b -= step * g;
            }
        }
        println!(
            "epoch {:2}: train loss {:.4}, test accuracy {:.4}",
            epoch + 1,
            loss / n as f64,
            accuracy(&test_x, &test_y, &weight, &bias)
        );
    }

    let train_acc = accuracy(&train_x, &train_y, &weight, &bias);
    let test_acc = accuracy(&test_x, &test_y, &weight, &bias);
    println!("train accuracy {train_acc:.4}, test accuracy {test_acc:.4}");

    let recipe = format!(
        "softmax regression 784->10 on (p/255-0.1307)/0.3081 pixels; mini-batch SGD, \
         {EPOCHS} epochs, batch {BATCH}, lr {LR}/(1+epoch), weight decay {WEIGHT_DECAY}, zero init, \
         splitmix64 shuffle seed {SEED:#x}; examples/train_linear_plain.rs"
    );
    let metadata: HashMap<String, String> = [
        ("recipe", recipe),
        (
            "layout",
            "logits = x @ weight + bias; x: 1x784 row-major 28x28".into(),
        ),
        ("train_accuracy", format!("{train_acc:.4}")),
        ("test_accuracy", format!("{test_acc:.4}")),
        (
            "data",
            "MNIST by Yann LeCun, Corinna Cortes, Christopher J.C. Burges (CC BY-SA 3.0)".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (wb, bb) = (le_bytes(&weight), le_bytes(&bias));
    let tensors = [
        (
            "weight",
            TensorView::new(Dtype::F32, vec![LINEAR_IN, NUM_CLASSES], &wb)?,
        ),
        ("bias", TensorView::new(Dtype::F32, vec![NUM_CLASSES], &bb)?),
    ];
    let bytes = sorted_header(&safetensors::serialize(tensors, &Some(metadata))?)?;
    std::fs::write(&out, &bytes).map_err(|e| spindle::Error::io(&out, e))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}
