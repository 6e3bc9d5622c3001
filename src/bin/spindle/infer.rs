//! `spindle infer`: secure BERT sentence embedding with all parties in this process.

use std::path::{Path, PathBuf};

/// The sentences of FILE, one per line, blank lines skipped.
///
/// Errors: [`spindle::Error::Io`] if it cannot be read, a format error if
/// it holds no sentence.
pub(crate) fn read_sentences(path: &Path) -> spindle::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| spindle::Error::io(path, e))?;
    let out: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if out.is_empty() {
        return Err(spindle::Error::Format {
            what: "spindle infer".into(),
            detail: format!("{} holds no sentence", path.display()),
        });
    }
    Ok(out)
}

#[derive(clap::Args)]
pub(crate) struct InferArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// A sentence to embed (repeat for several; they are padded to one length).
    #[arg(long)]
    pub(crate) text: Vec<String>,
    /// Embed the sentences of FILE, one per line (blank lines skipped),
    /// through the inter-batch pipeline; embeddings in input order.
    #[arg(long)]
    pub(crate) input: Option<PathBuf>,
    /// The inter-batch pipeline (on by default with --input).
    #[command(flatten)]
    pub(crate) inter_batch: crate::args::InterBatchArgs,
    /// Write the timeline of the run (every party's compute, protocol,
    /// send and receive tracks) to FILE as Chrome trace-event JSON (open
    /// it in Perfetto or chrome://tracing), and print each stage's busy
    /// time.
    #[arg(long)]
    pub(crate) trace: Option<PathBuf>,
    /// Where correlated randomness comes from. Default: the dealer's
    /// offline phase (a plan and a store for the whole run), or with the
    /// inter-batch pipeline the online dealer (material made as the
    /// micro-batches ask for it: memory bounded by the window).
    #[arg(long, value_enum)]
    pub(crate) preprocessing: Option<crate::args::PreprocessingArg>,
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
    let (texts, ids, expected) = match (&args.reference, &args.input) {
        (Some(_), Some(_)) => {
            return Err(spindle::Error::Format {
                what: "spindle infer".into(),
                detail: "give --reference or --input, not both".into(),
            })
        }
        (None, Some(path)) => {
            let texts: Vec<String> = read_sentences(path)?
                .into_iter()
                .chain(args.text.iter().cloned())
                .collect();
            let tk = Tokenizer::from_dir(&args.model)?;
            let ids = texts
                .iter()
                .map(|t| tk.encode(t))
                .collect::<spindle::Result<Vec<_>>>()?;
            (texts, ids, None)
        }
        (reference, None) => match reference {
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
        },
    };
    let batch = Arc::new(TokenBatch::new(ids, args.seq_len)?);
    let mut opts = InferOptions::new(args.parties);
    opts.run.session.frac_bits = args.frac_bits;
    opts.run.session.compute_workers = args.inter_batch.compute_workers;
    opts.attention.fused_qkv = !args.no_fused_qkv;
    opts.attention.static_weights = !args.no_static_weights;
    opts.attention.fold_scale = !args.no_fold_scale;
    opts.attention.batch_heads = !args.no_batch_heads;
    opts.attention.owner_masks = !args.no_owner_masks;
    opts.repeats = args.repeat;
    opts.run.backend = spindle::backend::select_device(args.device)?;
    opts.pipeline = args.inter_batch.pipeline(args.input.is_some());
    if let Some(p) = opts.pipeline {
        p.validate()?;
    }
    opts.dynamic_padding = args.seq_len.is_none();
    opts.run.trace = args.trace.is_some();
    opts.run.preprocessing = match (args.preprocessing, opts.pipeline) {
        (Some(p), _) => p.into(),
        (None, Some(_)) => spindle::runner::Preprocessing::OnlineDealer,
        (None, None) => spindle::runner::Preprocessing::Dealer,
    };
    let bar = opts.pipeline.map(|_| {
        let b = indicatif::ProgressBar::new(batch.batch() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} sentences  [{elapsed_precise} < {eta_precise}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    if let Some(b) = &bar {
        let b = b.clone();
        opts.progress = Some(spindle::infer::Progress(Arc::new(move |done| {
            b.set_position(done as u64)
        })));
    }
    let padding = match (opts.pipeline.is_some(), opts.dynamic_padding) {
        (true, true) => format!(
            "each micro-batch padded to its longest (at most {})",
            batch.seq_len
        ),
        _ => format!("padded to {} tokens", batch.seq_len),
    };
    println!(
        "secure inference: {} layers, {} parties (party 0 model, party {} text), {} sentence(s) {padding}",
        weights.config.num_layers,
        args.parties,
        args.parties.saturating_sub(1),
        batch.batch(),
    );
    if let Some(p) = opts.pipeline {
        println!(
            "inter-batch pipeline: micro-batches of {} sentence(s), {} in flight, {:?} preprocessing",
            p.micro_batch, p.in_flight, opts.run.preprocessing
        );
    }
    let weights = Arc::new(weights);
    let r = infer(weights.clone(), batch.clone(), &opts)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // With --input, one line per sentence only where something is checked.
    let per_sentence = args.input.is_none() || args.check;
    let mut worst_cosine = f64::INFINITY;
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
            let c = cosine(e, &twin);
            worst_cosine = worst_cosine.min(c);
            line.push_str(&format!("\n    cosine with the plaintext twin: {c:.7}"));
        }
        if let Some(exp) = &expected {
            line.push_str(&format!(
                "\n    cosine with the reference: {:.7}",
                cosine(e, &exp[i])
            ));
        }
        if per_sentence {
            println!("{line}");
        }
    }
    if args.input.is_some() {
        println!(
            "{} embeddings of {} values{}",
            r.embeddings.len(),
            r.embeddings.first().map_or(0, Vec::len),
            if args.check {
                format!(", lowest cosine with the plaintext twin {worst_cosine:.7}")
            } else {
                String::new()
            }
        );
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let slowest =
        |v: &[spindle::infer::PhaseCost]| v.iter().map(|c| c.time).max().unwrap_or_default();
    println!("per party          sent MiB (max)   rounds   time");
    let dealer_mib = mib(r.dealer_bytes.iter().copied().max().unwrap_or(0) as u64);
    match opts.run.preprocessing {
        spindle::runner::Preprocessing::OnlineDealer => println!(
            "online dealer      {dealer_mib:>14.2}   {:>6}   (to party 0, during the run)",
            0
        ),
        _ => println!(
            "offline (dealer)   {dealer_mib:>14.2}   {:>6}   {:.3} s (plan and generation)",
            0,
            r.offline_time.as_secs_f64()
        ),
    }
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
    if let (Some(path), Some(trace)) = (&args.trace, &r.trace) {
        crate::args::write_trace(path, trace)?;
    }
    if let Some(path) = &args.output {
        write_embeddings(path, &r.embeddings)?;
        println!("embeddings written to {}", path.display());
    }
    Ok(())
}
