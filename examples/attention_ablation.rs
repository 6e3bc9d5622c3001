//! The attention ablation of `docs/attention.md`: per encoder layer of
//! all-MiniLM-L6-v2, the Beaver products, scalar multiplications, rounds
//! and bytes of the inference with every optimization on, with each
//! one switched off, and with all off. A layer's cost is measured as the
//! difference between a 1-layer and a 0-layer cut of the model, all
//! parties in this process (in-memory transport), online phase. The counts
//! are exact; times per layer drown in the noise of a shared machine, so
//! latency is measured on the whole model (`spindle infer`, docs/perf.md).
//!
//!   cargo run --release --example attention_ablation -- [MODEL_DIR] [PARTIES] [TOKENS]

use std::sync::Arc;

use spindle::infer::{infer, InferOptions, InferReport};
use spindle::io::tokenizer::TokenBatch;
use spindle::models::bert::BertWeights;
use spindle::protocol::attention::AttentionOptions;

struct Cost {
    products: usize,
    mults: usize,
    rounds: u64,
    bytes: u64,
    /// Party 0 (the model owner) alone: with owner-held masks it sends less.
    owner_bytes: u64,
    load_bytes: u64,
}

fn cost(r: &InferReport) -> spindle::Result<Cost> {
    let (products, mults) = r
        .plan
        .as_ref()
        .map_or(Ok((0, 0)), |p| p.beaver_products())?;
    Ok(Cost {
        products,
        mults,
        rounds: r.inference.iter().map(|c| c.link.rounds).max().unwrap_or(0),
        bytes: r
            .inference
            .iter()
            .map(|c| c.link.bytes_sent)
            .max()
            .unwrap_or(0),
        owner_bytes: r.inference.first().map_or(0, |c| c.link.bytes_sent),
        load_bytes: r.load.iter().map(|c| c.link.bytes_sent).max().unwrap_or(0),
    })
}

fn main() -> spindle::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map_or("../shared/data/minilm", String::as_str);
    let parties: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let tokens: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    let full = BertWeights::from_dir(std::path::Path::new(dir))?;
    let cuts = [Arc::new(full.truncated(0)?), Arc::new(full.truncated(1)?)];
    // One sentence of `tokens` ids ([CLS] ... [SEP]); ids do not change costs.
    let mut ids = vec![101u32];
    ids.extend((0..tokens.saturating_sub(2)).map(|i| 2000 + i as u32));
    ids.push(102);
    let batch = Arc::new(TokenBatch::new(vec![ids], None)?);
    let on = AttentionOptions::default();
    let configs = [
        ("all on (default)", on),
        (
            "no fused QKV",
            AttentionOptions {
                fused_qkv: false,
                ..on
            },
        ),
        (
            "no static weights",
            AttentionOptions {
                static_weights: false,
                ..on
            },
        ),
        (
            "no folded 1/sqrt(d)",
            AttentionOptions {
                fold_scale: false,
                ..on
            },
        ),
        (
            "no batched heads",
            AttentionOptions {
                batch_heads: false,
                ..on
            },
        ),
        (
            "no owner-held masks",
            AttentionOptions {
                owner_masks: false,
                ..on
            },
        ),
        (
            "all off (straightforward)",
            AttentionOptions::straightforward(),
        ),
    ];
    println!("{parties} parties, {tokens} tokens, per encoder layer (1-layer minus 0-layer cut)");
    println!("| configuration | Beaver products | scalar mults | rounds | MiB sent per party (max) | MiB sent by party 0 | load MiB per party |");
    println!("|---|---|---|---|---|---|---|");
    for (name, attention) in configs {
        let mut opts = InferOptions::new(parties);
        opts.attention = attention;
        let c0 = cost(&infer(cuts[0].clone(), batch.clone(), &opts)?)?;
        let c1 = cost(&infer(cuts[1].clone(), batch.clone(), &opts)?)?;
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        println!(
            "| {name} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            c1.products - c0.products,
            c1.mults - c0.mults,
            c1.rounds - c0.rounds,
            mib(c1.bytes - c0.bytes),
            mib(c1.owner_bytes - c0.owner_bytes),
            mib(c1.load_bytes - c0.load_bytes)
        );
    }
    Ok(())
}
