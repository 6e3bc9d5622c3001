//! `spindle infer`: secure BERT sentence embedding with all parties in this process.

use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct InferArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// A sentence to embed (repeat for several; they are padded to one length).
    #[arg(long)]
    pub(crate) text: Vec<String>,
    /// Embed the sentences of a reference.json (sentences, token_ids,
    /// embeddings) and report the cosine similarity with its embeddings.
    #[arg(long)]
    pub(crate) reference: Option<PathBuf>,
    /// Number of parties (>= 2): party 0 owns the model, party N-1 the text.
    #[arg(long, default_value_t = 3)]
    pub(crate) parties: usize,
    /// Pad every sentence to this many tokens (default: the longest).
    #[arg(long)]
    pub(crate) seq_len: Option<usize>,
    /// Run only the first L encoder layers (a cut of the model).
    #[arg(long)]
    pub(crate) layers: Option<usize>,
    /// Also run the plaintext twin and print the cosine similarity.
    #[arg(long)]
    pub(crate) check: bool,
    /// Write the embeddings to FILE (.npy, or JSON for any other name).
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,
    /// Attention ablation: project Q, K and V with three products.
    #[arg(long)]
    pub(crate) no_fused_qkv: bool,
    /// Attention ablation: fresh Beaver operands for the weights at every inference.
    #[arg(long)]
    pub(crate) no_static_weights: bool,
    /// Attention ablation: scale the scores by 1/sqrt(d) with an extra truncation.
    #[arg(long)]
    pub(crate) no_fold_scale: bool,
    /// Attention ablation: one product per head.
    #[arg(long)]
    pub(crate) no_batch_heads: bool,
    /// Ablation: the static weights' masks shared by all parties instead
    /// of held by the model owner.
    #[arg(long)]
    pub(crate) no_owner_masks: bool,
    /// Fixed-point fractional bits (default 20).
    #[arg(long)]
    pub(crate) frac_bits: Option<u32>,
    /// Embed the text this many times after one model load and report the
    /// median latency (a benchmark; fresh preprocessing each time).
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: usize,
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "State").
    #[arg(long, default_value = "cpu")]
    pub(crate) device: spindle::backend::DeviceChoice,
}

pub(crate) fn run_infer(args: InferArgs) -> spindle::Result<()> {
    use spindle::infer::{infer, write_embeddings, InferOptions};
    use spindle::io::tokenizer::{TokenBatch, Tokenizer};
    use spindle::models::bert::plain::{cosine, sentence_embedding, DomainTrace};
    use spindle::models::bert::reference::read_reference;
    use spindle::models::bert::BertWeights;
    use std::sync::Arc;

    let mut weights = BertWeights::from_dir(&args.model)?;
    if let Some(l) = args.layers {
        weights = weights.truncated(l)?;
    }
    let (texts, ids, expected) = match &args.reference {
        Some(path) => {
            let r = read_reference(path)?;
            (
                r.iter().map(|s| s.sentence.clone()).collect::<Vec<_>>(),
                r.iter().map(|s| s.token_ids.clone()).collect::<Vec<_>>(),
                Some(r.into_iter().map(|s| s.embedding).collect::<Vec<_>>()),
            )
        }
        None => {
            if args.text.is_empty() {
                return Err(spindle::Error::Format {
                    what: "spindle infer".into(),
                    detail: "give at least one --text (or --reference FILE)".into(),
                });
            }
            let tk = Tokenizer::from_dir(&args.model)?;
            let ids = args
                .text
                .iter()
                .map(|t| tk.encode(t))
                .collect::<spindle::Result<Vec<_>>>()?;
            (args.text.clone(), ids, None)
        }
    };
    let batch = Arc::new(TokenBatch::new(ids, args.seq_len)?);
    let mut opts = InferOptions::new(args.parties);
    opts.run.session.frac_bits = args.frac_bits;
    opts.attention.fused_qkv = !args.no_fused_qkv;
    opts.attention.static_weights = !args.no_static_weights;
    opts.attention.fold_scale = !args.no_fold_scale;
    opts.attention.batch_heads = !args.no_batch_heads;
    opts.attention.owner_masks = !args.no_owner_masks;
    opts.repeats = args.repeat;
    opts.run.backend = spindle::backend::select_device(args.device)?;
    println!(
        "secure inference: {} layers, {} parties (party 0 model, party {} text), {} sentence(s) padded to {} tokens",
        weights.config.num_layers,
        args.parties,
        args.parties.saturating_sub(1),
        batch.batch(),
        batch.seq_len
    );
    let weights = Arc::new(weights);
    let r = infer(weights.clone(), batch.clone(), &opts)?;
    for (i, e) in r.embeddings.iter().enumerate() {
        let head: Vec<String> = e.iter().take(6).map(|v| format!("{v:+.5}")).collect();
        let mut line = format!(
            "[{i}] {:?}\n    embedding[..6] = [{}, ...] ({} values)",
            texts[i],
            head.join(", "),
            e.len()
        );
        if args.check {
            let twin = sentence_embedding(&weights, batch.real(i), &mut DomainTrace::default())?;
            line.push_str(&format!(
                "\n    cosine with the plaintext twin: {:.7}",
                cosine(e, &twin)
            ));
        }
        if let Some(exp) = &expected {
            line.push_str(&format!(
                "\n    cosine with the reference: {:.7}",
                cosine(e, &exp[i])
            ));
        }
        println!("{line}");
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let slowest =
        |v: &[spindle::infer::PhaseCost]| v.iter().map(|c| c.time).max().unwrap_or_default();
    println!("per party          sent MiB (max)   rounds   time");
    println!(
        "offline (dealer)   {:>14.2}   {:>6}   {:.3} s (plan and generation)",
        mib(r.dealer_bytes.iter().copied().max().unwrap_or(0) as u64),
        0,
        r.offline_time.as_secs_f64()
    );
    let inference = match args.repeat {
        1 => "inference".to_string(),
        k => format!("inference (median of {k})"),
    };
    for (name, phase) in [
        ("load (weights)", &r.load),
        (inference.as_str(), &r.inference),
    ] {
        println!(
            "{name:<18} {:>14.2}   {:>6}   {:.3} s",
            mib(phase.iter().map(|c| c.link.bytes_sent).max().unwrap_or(0)),
            phase.iter().map(|c| c.link.rounds).max().unwrap_or(0),
            slowest(phase).as_secs_f64()
        );
    }
    if args.repeat > 1 {
        let all: Vec<String> = r
            .latencies
            .iter()
            .map(|t| format!("{:.3}", t.as_secs_f64()))
            .collect();
        println!("inference latencies (s): {}", all.join(" "));
    }
    if let Some(path) = &args.output {
        write_embeddings(path, &r.embeddings)?;
        println!("embeddings written to {}", path.display());
    }
    Ok(())
}
