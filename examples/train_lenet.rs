//! Three parties train LeNet on real MNIST images for a few steps.
//!
//! Party 0 owns the images, party 1 the model; neither sees the other's.
//! Run: `cargo run --release --example train_lenet`.

use std::sync::Arc;

use spindle::nn::{loss, Init, ModelWeights, SecureModel, Sgd};
use spindle::runner::{run_parties_blocking, Preprocessing, RunOptions};

fn main() -> spindle::Result<()> {
    let mnist = spindle::io::mnist::embedded_sample()?;
    let images: Arc<Vec<f64>> = Arc::new(
        mnist
            .images
            .normalized()
            .iter()
            .map(|&v| v as f64)
            .collect(),
    );
    let labels: Arc<Vec<f64>> = Arc::new(
        mnist
            .labels
            .iter()
            .flat_map(|&l| (0..10).map(move |c| (c == l) as u8 as f64))
            .collect(),
    );
    let spec = spindle::models::lenet();
    let weights = ModelWeights::init(&spec, Init::PyTorchDefault, 1);
    let mut opts = RunOptions::new(3);
    opts.preprocessing = Preprocessing::OnlineDealer;

    let report = run_parties_blocking(&opts, move |sess| {
        let (images, labels, spec, weights) = (
            images.clone(),
            labels.clone(),
            spec.clone(),
            weights.clone(),
        );
        async move {
            let me = sess.party();
            let mut model =
                SecureModel::<u64>::share(&sess, &spec, 1, (me == 1).then_some(&weights))?;
            let sgd = Sgd {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 0.0,
            };
            let batch = 32;
            for step in 0..4 {
                let (a, b) = (step * batch, (step + 1) * batch);
                let x = sess.share_input_f64::<u64>(
                    0,
                    (me == 0).then_some(&images[a * 784..b * 784]),
                    [batch, 1, 28, 28],
                )?;
                let y = sess.share_input_f64::<u64>(
                    0,
                    (me == 0).then_some(&labels[a * 10..b * 10]),
                    [batch, 10],
                )?;
                let logits = model.forward(&sess, &x, true).await?;
                let (grad, _probs) = loss::softmax_cross_entropy_grad(&sess, &logits, &y).await?;
                model.backward(&sess, &grad, false).await?;
                sgd.step(&sess, model.params_mut()).await?;
            }
            Ok(sess.online_stats())
        }
    })?;
    for p in &report.parties {
        println!(
            "party {}: {} MiB sent in {} rounds",
            p.party,
            p.online.bytes_sent >> 20,
            p.online.rounds
        );
    }
    Ok(())
}
