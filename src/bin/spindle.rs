//! The `spindle` command line. With no subcommand it runs `spindle demo`.

// Large short-lived share buffers: mimalloc avoids a page fault per fresh allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use spindle::backend::Backend;
use spindle::demo::{self, DemoOptions};
use spindle::net::config::{ClusterConfig, TransportKind};
use spindle::net::dealer::{run_dealer, DealerOptions};
use spindle::net::job::Job;
use spindle::net::party::{run_party, PartyOptions};
use spindle::runner::Preprocessing;
use spindle::SessionConfig;
use spindle_transport::{LinkProfile, DEALER};

#[derive(Parser)]
#[command(
    name = "spindle",
    version,
    about = "N-party secure computation for machine learning"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Secure MNIST classification demo on embedded data (the default job).
    Demo(DemoArgs),
    /// Train a model securely on MNIST (all parties in this process).
    Train(TrainArgs),
    /// Secure sentence embedding with a BERT encoder (e.g. all-MiniLM-L6-v2).
    Infer(InferArgs),
    /// Run one party of a job as this process (TCP with mutual TLS).
    Party(PartyArgs),
    /// Run the offline dealer as this process: plan, generate, serve each party its store.
    Dealer(DealerArgs),
    /// Write a private key and self-signed certificate for one cluster member.
    Keygen(KeygenArgs),
    /// Print the members of a cluster file, one per line: NAME HOST PORT CERT (for launchers).
    Hosts(HostsArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum EvalArg {
    /// Secure inference on the test set, logits revealed to the data owner.
    Secure,
    /// Reveal the trained weights to the model owner, evaluate in plaintext.
    Reveal,
}

/// Training settings shared by `spindle train` and `spindle party --job train`.
#[derive(clap::Args, Clone)]
struct TrainSettings {
    /// MNIST directory (the four IDX files, raw or gzip; scripts/fetch-mnist.sh
    /// gets them). Default: the 512-image sample embedded in the binary.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Epochs (in total, counting resumed ones).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Train on the first N images only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Seed of the weights, the batch order and the dealer.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How test accuracy is measured.
    #[arg(long, value_enum, default_value_t = EvalArg::Secure)]
    eval: EvalArg,
    /// Write each party's share checkpoint here (a party process: its own) after every epoch.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Continue from the latest complete checkpoint in --checkpoint-dir.
    #[arg(long)]
    resume: bool,
}

impl TrainSettings {
    /// The options of a training run of `model` with `parties` parties.
    fn options(&self, model: String, parties: usize) -> spindle::train::TrainOptions {
        use spindle::train::{Data, Evaluation, TrainOptions};
        TrainOptions {
            model,
            data: self
                .data
                .clone()
                .map(Data::Dir)
                .unwrap_or(Data::EmbeddedSample),
            parties,
            epochs: self.epochs,
            batch: self.batch,
            sgd: spindle::nn::Sgd {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
            },
            train_limit: self.train_limit,
            test_limit: self.test_limit,
            seed: self.seed,
            evaluation: match self.eval {
                EvalArg::Secure => Evaluation::Secure,
                EvalArg::Reveal => Evaluation::RevealToOwner,
            },
            checkpoint_dir: self.checkpoint_dir.clone(),
            resume: self.resume,
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "State").
    #[arg(long, default_value = "cpu")]
    device: spindle::backend::DeviceChoice,
    /// Model: secureml or lenet (MNIST-shaped zoo models).
    #[arg(long, default_value = "lenet")]
    model: String,
    /// Dataset (only mnist for now).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Number of parties (>= 2): party 0 owns the data, party 1 the model.
    #[arg(long, default_value_t = 3)]
    parties: usize,
    #[command(flatten)]
    settings: TrainSettings,
    /// Source of correlated randomness (dealer plans whole epochs ahead; the
    /// online dealer answers as requests come).
    #[arg(long, value_enum, default_value_t = PreprocessingArg::OnlineDealer)]
    preprocessing: PreprocessingArg,
    /// Also train the plaintext twin with the same seed and report its accuracy.
    #[arg(long)]
    check: bool,
    /// Fixed-point fractional bits (default 20).
    #[arg(long)]
    frac_bits: Option<u32>,
    /// Master seed of the dealer, 32 hex digits, for bit-exact reproduction
    /// (tests, a resume that must match an uninterrupted run): the material
    /// is then predictable to anyone who knows the seed, and a warning says
    /// so. Default: fresh OS randomness.
    #[arg(long, value_parser = parse_seed)]
    dealer_seed: Option<spindle::prg::Seed>,
}

fn run_train(args: TrainArgs) -> spindle::Result<()> {
    use spindle::train::{train, TrainOptions};
    if args.dataset != "mnist" {
        return Err(spindle::Error::Unsupported(format!(
            "dataset {:?} is not available yet: only mnist",
            args.dataset
        )));
    }
    let opts = TrainOptions {
        backend: spindle::backend::select_device(args.device)?,
        preprocessing: Preprocessing::from(args.preprocessing),
        plaintext_twin: args.check,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        frac_bits: args.frac_bits,
        dealer_seed: args.dealer_seed,
        ..args.settings.options(args.model, args.parties)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.parties.max(2))
        .enable_all()
        .build()
        .map_err(|e| spindle::Error::Unsupported(format!("cannot start the async runtime: {e}")))?;
    println!(
        "secure training: {} on MNIST, {} parties (party 0 data, party 1 model), batch {}, lr {}, momentum {}",
        opts.model, opts.parties, opts.batch, opts.sgd.lr, opts.sgd.momentum
    );
    let r = rt.block_on(train(&opts))?;
    for e in &r.epochs {
        println!(
            "epoch {}: loss {:.4}, test accuracy {:.2}%{}, {:.3} s/iteration, per iteration party 0 sent {:.2} MiB in {} rounds",
            e.epoch,
            e.loss,
            100.0 * e.accuracy,
            e.plaintext_accuracy.map(|a| format!(" (plaintext twin {:.2}%)", 100.0 * a)).unwrap_or_default(),
            e.iteration_time.as_secs_f64(),
            e.per_iteration.bytes_sent as f64 / (1 << 20) as f64,
            e.per_iteration.rounds
        );
    }
    if r.epochs.is_empty() {
        println!(
            "nothing to do: the checkpoints already cover {} epochs",
            opts.epochs
        );
    }
    Ok(())
}

#[derive(clap::Args)]
struct InferArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// A sentence to embed (repeat for several; they are padded to one length).
    #[arg(long)]
    text: Vec<String>,
    /// Embed the sentences of a reference.json (sentences, token_ids,
    /// embeddings) and report the cosine similarity with its embeddings.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Number of parties (>= 2): party 0 owns the model, party N-1 the text.
    #[arg(long, default_value_t = 3)]
    parties: usize,
    /// Pad every sentence to this many tokens (default: the longest).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Run only the first L encoder layers (a cut of the model).
    #[arg(long)]
    layers: Option<usize>,
    /// Also run the plaintext twin and print the cosine similarity.
    #[arg(long)]
    check: bool,
    /// Write the embeddings to FILE (.npy, or JSON for any other name).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Attention ablation: project Q, K and V with three products.
    #[arg(long)]
    no_fused_qkv: bool,
    /// Attention ablation: fresh Beaver operands for the weights at every inference.
    #[arg(long)]
    no_static_weights: bool,
    /// Attention ablation: scale the scores by 1/sqrt(d) with an extra truncation.
    #[arg(long)]
    no_fold_scale: bool,
    /// Attention ablation: one product per head.
    #[arg(long)]
    no_batch_heads: bool,
    /// Ablation: the static weights' masks shared by all parties instead
    /// of held by the model owner.
    #[arg(long)]
    no_owner_masks: bool,
    /// Fixed-point fractional bits (default 20).
    #[arg(long)]
    frac_bits: Option<u32>,
    /// Embed the text this many times after one model load and report the
    /// median latency (a benchmark; fresh preprocessing each time).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "State").
    #[arg(long, default_value = "cpu")]
    device: spindle::backend::DeviceChoice,
}

fn run_infer(args: InferArgs) -> spindle::Result<()> {
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

#[derive(clap::Args)]
struct HostsArgs {
    /// Cluster file (TOML).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum JobKind {
    /// Secure fixed-point matmul X[m,k] (party 0) times W[k,n] (party 1) with truncation.
    Matmul,
    /// Secure sentence embedding (--model, --text): party 0 owns the model, party N-1 the text.
    Infer,
    /// One non-linear function timed over the links (--op relu|exp|reciprocal|softmax,
    /// on --m x --n elements; softmax along rows of --n).
    Op,
    /// Secure training of a zoo model (--model secureml|lenet) on MNIST:
    /// party 0 owns the data (--data), party 1 the model; needs the online
    /// dealer (the default for this job).
    Train,
}

#[derive(clap::Args, Clone)]
struct JobArgs {
    /// The job (the dealer and every party must run the same).
    #[arg(long, value_enum, default_value_t = JobKind::Matmul)]
    job: JobKind,
    /// Rows of X.
    #[arg(long, default_value_t = 64)]
    m: usize,
    /// Columns of X, rows of W.
    #[arg(long, default_value_t = 128)]
    k: usize,
    /// Columns of W.
    #[arg(long, default_value_t = 32)]
    n: usize,
    /// Seed of the (public, test) inputs.
    #[arg(long, default_value_t = 1)]
    input_seed: u64,
    /// Compute the product (infer job: the embedding) this many times (fresh
    /// preprocessing each time), reveal the last; the infer job reports the
    /// median latency.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Fixed-point fractional bits (default 20 in Z_2^64).
    #[arg(long)]
    frac_bits: Option<u32>,
    /// Lanes of the inner-layer pipeline for elementwise protocols on
    /// large tensors (1: off; default 4). The dealer and every party must
    /// give the same.
    #[arg(long)]
    lanes: Option<usize>,
    /// Infer job: the model folder (party 0 reads the weights, every process
    /// config.json). Train job: the zoo model, secureml or lenet (default lenet).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Infer job: a sentence (repeat for several); only party N-1 uses it.
    #[arg(long)]
    text: Vec<String>,
    /// Infer job, public: padded length (default: the longest sentence).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Infer job, public: tokens per sentence, comma-separated. Without it
    /// every process tokenizes --text to find them (convenient for local
    /// benchmarks; in a deployment give the lengths and the text only to
    /// the client).
    #[arg(long, value_delimiter = ',')]
    lengths: Vec<usize>,
    /// Infer job: run only the first L encoder layers.
    #[arg(long)]
    layers: Option<usize>,
    /// Op job: the function (relu, exp, reciprocal, softmax).
    #[arg(long, default_value = "exp")]
    op: String,
    /// Op job, softmax: group size of the max (default 16; 128: one level).
    #[arg(long)]
    max_group: Option<usize>,
    #[command(flatten)]
    train: TrainSettings,
}

impl JobArgs {
    fn job(&self) -> spindle::Result<Job> {
        if let JobKind::Infer = self.job {
            return self.infer_job().map(Job::Infer);
        }
        Ok(match self.job {
            JobKind::Op => Job::Op(spindle::net::op_job::OpJob {
                op: self.op.parse()?,
                rows: self.m,
                cols: self.n,
                max_group: self.max_group,
                input_seed: self.input_seed,
                repeat: self.repeat,
            }),
            JobKind::Train => {
                let model = self
                    .model
                    .as_ref()
                    .map_or("lenet".to_string(), |m| m.display().to_string());
                // The cluster decides the number of parties; 0 here is not used.
                Job::Train(Box::new(self.train.options(model, 0)))
            }
            JobKind::Matmul => Job::Matmul {
                m: self.m,
                k: self.k,
                n: self.n,
                input_seed: self.input_seed,
                repeat: self.repeat,
            },
            JobKind::Infer => unreachable!("handled above"),
        })
    }
    fn infer_job(&self) -> spindle::Result<spindle::infer::InferJob> {
        let model = self.model.clone().ok_or_else(|| spindle::Error::Format {
            what: "--job infer".into(),
            detail: "needs --model DIR".into(),
        })?;
        let lengths = if self.lengths.is_empty() {
            let tk = spindle::io::tokenizer::Tokenizer::from_dir(&model)?;
            self.text
                .iter()
                .map(|t| tk.encode(t).map(|ids| ids.len()))
                .collect::<spindle::Result<Vec<_>>>()?
        } else {
            self.lengths.clone()
        };
        let seq_len = self
            .seq_len
            .unwrap_or_else(|| lengths.iter().copied().max().unwrap_or(0));
        Ok(spindle::infer::InferJob {
            model,
            text: self.text.clone(),
            seq_len,
            lengths,
            layers: self.layers,
            attention: Default::default(),
            repeats: self.repeat,
        })
    }
    fn session(&self) -> SessionConfig {
        let mut pipeline = spindle::pipeline::InnerPipeline::default();
        if let Some(l) = self.lanes {
            pipeline.lanes = l.max(1);
        }
        SessionConfig {
            frac_bits: self.frac_bits,
            pipeline,
            ..SessionConfig::default()
        }
    }
}

#[derive(clap::Args, Clone)]
struct ClusterArgs {
    /// Cluster file (TOML). Without it, the torchrun (RANK, WORLD_SIZE,
    /// MASTER_ADDR, MASTER_PORT) or Slurm (SLURM_PROCID, SLURM_NTASKS,
    /// SLURM_JOB_NODELIST) environment describes the cluster.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory with partyI.pem, partyI.key, dealer.pem, dealer.key (environment mode,
    /// and default key location).
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// This process's private key (PEM). Default: CERT_DIR/partyI.key or CERT_DIR/dealer.key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Session id (overrides the config and the environment).
    #[arg(long)]
    session: Option<String>,
    /// Plain TCP without TLS: no authentication, no encryption. Trusted lab networks only.
    #[arg(long)]
    insecure_plaintext: bool,
    /// Address to listen on (default: this member's host and port from the cluster).
    #[arg(long)]
    bind: Option<String>,
    /// Receive timeout in ms (overrides the config).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Start-up budget in ms (overrides the config).
    #[arg(long)]
    connect_timeout_ms: Option<u64>,
}

impl ClusterArgs {
    /// The cluster and, in environment mode, this process's rank.
    fn load(&self) -> spindle::Result<(ClusterConfig, Option<usize>)> {
        let (mut c, rank) = match &self.config {
            Some(p) => (ClusterConfig::from_file(p)?, None),
            None => {
                let (c, r) = ClusterConfig::from_env(
                    &|k| std::env::var(k).ok(),
                    self.cert_dir.as_deref(),
                    self.insecure_plaintext,
                )?;
                (c, Some(r))
            }
        };
        if let Some(s) = &self.session {
            c.session = s.clone();
        }
        if let Some(t) = self.timeout_ms {
            c.options.timeout_ms = t;
        }
        if let Some(t) = self.connect_timeout_ms {
            c.options.connect_timeout_ms = t;
        }
        c.validate()?;
        Ok((c, rank))
    }

    fn key_for(&self, file: &str) -> Option<PathBuf> {
        self.key
            .clone()
            .or_else(|| self.cert_dir.as_ref().map(|d| d.join(file)))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    /// TCP (mutual TLS unless --insecure-plaintext).
    Tcp,
    /// RDMA verbs, RC queue pairs (needs a build with `--features rdma` and
    /// an RDMA device; never yet run on RDMA hardware; SPINDLE_RDMA_DEVICE,
    /// SPINDLE_RDMA_PORT, SPINDLE_RDMA_GID_INDEX select the port).
    Rdma,
    /// RDMA if this build has it and a device is found, else TCP (logged);
    /// all parties must end up on the same transport.
    Auto,
}

#[derive(clap::Args)]
struct PartyArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    job: JobArgs,
    /// This party's id (default: RANK or SLURM_PROCID).
    #[arg(long)]
    party: Option<usize>,
    /// Source of correlated randomness (default: dealer; online-dealer for the train job).
    #[arg(long, value_enum)]
    preprocessing: Option<PreprocessingArg>,
    /// Transport (overrides the config).
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
    /// Emulate every outgoing link: lan (10 Gbit/s, 0.1 ms), wan (400 Mbit/s, 20 ms) or RATE:LATENCY.
    #[arg(long)]
    link: Option<String>,
    /// Write the revealed result, its error against f64 and the traffic per phase as JSON.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Fail unless the revealed result matches the f64 reference within the fixed-point bound.
    #[arg(long)]
    check: bool,
    /// With a dealer store: expand all of this party's material before the
    /// online phase (a dry run of the job gives the plan), so the online
    /// time excludes the PRG expansion.
    #[arg(long)]
    expand_ahead: bool,
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "State").
    #[arg(long, default_value = "cpu")]
    device: spindle::backend::DeviceChoice,
}

#[derive(clap::Args)]
struct DealerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    job: JobArgs,
    /// Serve as an online dealer (answer party 0's requests as they come)
    /// instead of planning and generating stores; implied by the train job.
    /// The parties then run with --preprocessing online-dealer.
    #[arg(long)]
    online: bool,
    /// Master seed, 32 hex digits, for reproducible runs (tests): the
    /// material is then predictable to anyone who knows the seed, and a
    /// warning says so. Default: fresh OS randomness, as a real deployment
    /// needs.
    #[arg(long, value_parser = parse_seed)]
    master_seed: Option<spindle::prg::Seed>,
}

fn parse_seed(s: &str) -> Result<spindle::prg::Seed, String> {
    let s = s.trim();
    if s.len() != 32 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("expected 32 hex digits, got {s:?}"));
    }
    let mut seed = [0u8; 16];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(spindle::prg::Seed(seed))
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Member name: party0, party1, ..., or dealer (file names NAME.key, NAME.pem).
    #[arg(long)]
    name: String,
    /// Output directory (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Extra subject alternative names (host names or IPs; informative, peers pin the certificate).
    #[arg(long)]
    host: Vec<String>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PreprocessingArg {
    /// Separate offline phase with a dealer (trusted third party).
    Dealer,
    /// Party 0 deals (insecure against party 0; tests and demos only).
    TrustedFirstParty,
    /// An online dealer answers party 0's requests as they come (a thread
    /// in one process; `spindle dealer --online` for party processes).
    OnlineDealer,
}

impl From<PreprocessingArg> for Preprocessing {
    fn from(p: PreprocessingArg) -> Self {
        match p {
            PreprocessingArg::Dealer => Preprocessing::Dealer,
            PreprocessingArg::TrustedFirstParty => Preprocessing::TrustedFirstParty,
            PreprocessingArg::OnlineDealer => Preprocessing::OnlineDealer,
        }
    }
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Number of parties (>= 2).
    #[arg(long, default_value_t = 3)]
    parties: usize,
    /// Number of embedded MNIST test images to classify (1..=512).
    #[arg(long, default_value_t = 128)]
    images: usize,
    /// Source of correlated randomness.
    #[arg(long, value_enum, default_value_t = PreprocessingArg::Dealer)]
    preprocessing: PreprocessingArg,
    /// Fixed-point fractional bits (default 20 in Z_2^64).
    #[arg(long)]
    frac_bits: Option<u32>,
    /// Skip the second part (a short secure LeNet training run).
    #[arg(long)]
    no_train: bool,
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "What does not work yet").
    #[arg(long, default_value = "cpu")]
    device: spindle::backend::DeviceChoice,
}

impl Default for DemoArgs {
    fn default() -> Self {
        let d = DemoOptions::default();
        DemoArgs {
            parties: d.n_parties,
            images: d.images,
            preprocessing: PreprocessingArg::Dealer,
            frac_bits: None,
            no_train: false,
            device: spindle::backend::DeviceChoice::Cpu,
        }
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn run_demo(args: DemoArgs) -> spindle::Result<()> {
    let opts = DemoOptions {
        n_parties: args.parties,
        images: args.images,
        preprocessing: Preprocessing::from(args.preprocessing),
        frac_bits: args.frac_bits,
        backend: spindle::backend::select_device(args.device)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.n_parties.max(2))
        .enable_all()
        .build()
        .map_err(|e| spindle::Error::Unsupported(format!("cannot start the async runtime: {e}")))?;
    let r = rt.block_on(demo::run(&opts))?;
    println!(
        "Spindle demo: {} parties, {} preprocessing, Z_2^64 with {} fractional bits, {} backend",
        r.n_parties,
        match opts.preprocessing {
            Preprocessing::Dealer => "dealer",
            Preprocessing::TrustedFirstParty => "trusted-first-party (insecure, demo only)",
            Preprocessing::OnlineDealer => "online dealer",
        },
        r.frac_bits,
        opts.backend.name()
    );
    println!(
        "  party 0 secret-shares {} real MNIST test images [{} x 784]",
        r.images, r.images
    );
    println!("  party 1 secret-shares a linear classifier [784 x 10] + bias, trained in plaintext");
    println!("  secure fixed-point matmul + truncation, logits revealed\n");
    println!(
        "  accuracy: secure {:.1}%, plaintext f64 {:.1}%; predictions agree on {}/{} images",
        100.0 * r.secure_accuracy,
        100.0 * r.plaintext_accuracy,
        r.agreeing_predictions,
        r.images
    );
    println!(
        "  max |secure - f64| over all logits: {:.3e}\n",
        r.max_abs_error
    );
    println!(
        "  offline (dry run + dealer): {:.1} ms, plan of {} requests",
        r.offline_time.as_secs_f64() * 1e3,
        r.plan_requests
    );
    println!(
        "  online (setup + computation): {:.1} ms\n",
        r.online_time.as_secs_f64() * 1e3
    );
    println!("  party | from dealer (offline) | setup sent | online sent | online received | online rounds");
    for c in &r.costs {
        println!(
            "  {:>5} | {:>21} | {:>10} | {:>11} | {:>15} | {:>13}",
            c.party,
            human_bytes(c.dealer_bytes as u64),
            human_bytes(c.setup.bytes_sent),
            human_bytes(c.online.bytes_sent),
            human_bytes(c.online.bytes_received),
            c.online.rounds
        );
    }
    if args.no_train {
        return Ok(());
    }
    // Part 2: the same parties train LeNet securely on the embedded sample
    // for a short run, then classify held-out images by secure inference.
    let topts = spindle::train::TrainOptions {
        model: "lenet".into(),
        parties: opts.n_parties,
        batch: 16,
        train_limit: Some(256),
        test_limit: Some(64),
        plaintext_twin: true,
        frac_bits: opts.frac_bits,
        backend: opts.backend.clone(),
        ..Default::default()
    };
    println!(
        "\n  secure training: LeNet, {} parties, {} steps of batch {} on the embedded MNIST sample...",
        topts.parties,
        256 / topts.batch,
        topts.batch
    );
    let t = rt.block_on(spindle::train::train(&topts))?;
    let e = &t.epochs[0];
    println!(
        "  loss {:.3} -> {:.3}; secure inference on {} held-out images: {:.1}% correct (plaintext twin {:.1}%)",
        t.losses.first().copied().unwrap_or_default(),
        t.losses.last().copied().unwrap_or_default(),
        64,
        100.0 * e.accuracy,
        100.0 * e.plaintext_accuracy.unwrap_or_default()
    );
    println!(
        "  {:.2} s per training iteration; party 0 sent {} and took part in {} rounds per iteration",
        e.iteration_time.as_secs_f64(),
        human_bytes(e.per_iteration.bytes_sent),
        e.per_iteration.rounds
    );
    Ok(())
}

fn runtime() -> spindle::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| spindle::Error::Unsupported(format!("cannot start the async runtime: {e}")))
}

fn run_party_cmd(args: PartyArgs) -> spindle::Result<()> {
    let (cluster, rank) = args.cluster.load()?;
    let me = args.party.or(rank).ok_or_else(|| {
        spindle::Error::InvalidParty("pass --party ID (or set RANK / SLURM_PROCID)".into())
    })?;
    let security = spindle::net::security(
        &cluster,
        me,
        args.cluster.key_for(&format!("party{me}.key")).as_deref(),
        args.cluster.insecure_plaintext,
    )?;
    let link = args
        .link
        .as_deref()
        .map(str::parse::<LinkProfile>)
        .transpose()?;
    let job = args.job.job()?;
    let opts = PartyOptions {
        cluster,
        me,
        security,
        job: job.clone(),
        session: args.job.session(),
        preprocessing: match (args.preprocessing, job.needs_online_dealer()) {
            (Some(p), _) => Preprocessing::from(p),
            (None, true) => Preprocessing::OnlineDealer,
            (None, false) => Preprocessing::Dealer,
        },
        transport: args.transport.map(|t| match t {
            TransportArg::Tcp => TransportKind::Tcp,
            TransportArg::Rdma => TransportKind::Rdma,
            TransportArg::Auto => TransportKind::Auto,
        }),
        link,
        bind: args.cluster.bind.clone(),
        backend: spindle::backend::select_device(args.device)?,
        expand_ahead: args.expand_ahead,
    };
    let out = match runtime()?.block_on(run_party(opts)) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("error: party {me}: {e}");
            std::process::exit(1);
        }
    };
    let online = out
        .stats
        .phases
        .iter()
        .find(|p| p.label == "online")
        .map(|p| p.stats)
        .unwrap_or_default();
    println!(
        "party {me}: {} done; startup {:.1} ms, online {:.1} ms; max |secure - f64| = {:.3e}; \
         online sent {} in {} rounds; {} from the dealer",
        job.fingerprint(out.stats.n_parties, &args.job.session()),
        out.startup_time.as_secs_f64() * 1e3,
        out.online_time.as_secs_f64() * 1e3,
        out.max_abs_error,
        human_bytes(online.bytes_sent),
        online.rounds,
        human_bytes(out.dealer_bytes as u64)
    );
    for p in &out.phases {
        println!(
            "party {me}: {} {:.1} ms, sent {} in {} rounds",
            p.label,
            p.time.as_secs_f64() * 1e3,
            human_bytes(p.link.bytes_sent),
            p.link.rounds
        );
    }
    if let Job::Train(t) = &job {
        let first = t.epochs + 1 - out.result.len() / 2;
        for (i, e) in out.result.chunks(2).enumerate() {
            println!(
                "party {me}: epoch {}: loss {:.4}, test accuracy {:.2}%",
                first + i,
                e[0],
                100.0 * e.get(1).copied().unwrap_or_default()
            );
        }
    }
    if let (Job::Infer(j), false) = (&job, out.result.is_empty()) {
        report_infer_result(me, j, &out.result, args.check)?;
    }
    if let Some(p) = &args.output {
        let text = serde_json::to_string_pretty(&out.to_json()).unwrap_or_default();
        std::fs::write(p, text).map_err(|e| spindle::Error::io(p, e))?;
    }
    if let (true, Job::Matmul { k, .. }) = (args.check, &job) {
        let k = *k;
        let f = args.job.frac_bits.unwrap_or(20);
        // Each of the k products is off by at most 1 ulp after encoding, plus truncation.
        let tol = (k as f64 + 4.0) * 2f64.powi(-(f as i32)) * 2.0;
        if out.max_abs_error > tol {
            eprintln!(
                "error: party {me}: result check failed: max error {:.3e} > bound {tol:.3e}",
                out.max_abs_error
            );
            std::process::exit(1);
        }
    }
    Ok(())
}

/// The client's view of an infer job: the embeddings' first values and,
/// with `check`, the cosine similarity with the plaintext twin.
fn report_infer_result(
    me: usize,
    job: &spindle::infer::InferJob,
    flat: &[f64],
    check: bool,
) -> spindle::Result<()> {
    use spindle::models::bert::plain::{cosine, sentence_embedding, DomainTrace};
    let h = flat.len() / job.lengths.len().max(1);
    let twin = if check {
        let w = spindle::models::bert::BertWeights::from_dir(&job.model)?;
        Some(
            w.truncated(
                job.layers
                    .unwrap_or(w.config.num_layers)
                    .min(w.config.num_layers),
            )?,
        )
    } else {
        None
    };
    let tk = spindle::io::tokenizer::Tokenizer::from_dir(&job.model)?;
    for (i, e) in flat.chunks(h.max(1)).enumerate() {
        let e: Vec<f32> = e.iter().map(|&v| v as f32).collect();
        let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:+.5}")).collect();
        let mut line = format!("party {me}: embedding {i}: [{}, ...]", head.join(", "));
        if let Some(w) = &twin {
            let ids = tk.encode(&job.text[i])?;
            let t = sentence_embedding(w, &ids, &mut DomainTrace::default())?;
            line.push_str(&format!(
                ", cosine with the plaintext twin {:.7}",
                cosine(&e, &t)
            ));
        }
        println!("{line}");
    }
    Ok(())
}

fn run_dealer_cmd(args: DealerArgs) -> spindle::Result<()> {
    let (cluster, _) = args.cluster.load()?;
    let security = spindle::net::security(
        &cluster,
        DEALER,
        args.cluster.key_for("dealer.key").as_deref(),
        args.cluster.insecure_plaintext,
    )?;
    let n = cluster.n_parties();
    let job = args.job.job()?;
    let online = args.online || job.needs_online_dealer();
    let opts = DealerOptions {
        cluster,
        security,
        job,
        session: args.job.session(),
        master_seed: args.master_seed,
        bind: args.cluster.bind.clone(),
        online: args.online,
    };
    let r = match runtime()?.block_on(run_dealer(opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: dealer: {e}");
            std::process::exit(1);
        }
    };
    let per_party = r
        .store_bytes
        .iter()
        .enumerate()
        .map(|(i, b)| format!("party {i}: {}", human_bytes(*b as u64)))
        .collect::<Vec<_>>()
        .join(", ");
    if online {
        println!(
            "online dealer: served {n} parties in {:.1} ms ({per_party})",
            r.serve_time.as_secs_f64() * 1e3
        );
    } else {
        println!(
            "dealer: plan of {} requests generated in {:.1} ms; served {n} parties in {:.1} ms ({per_party})",
            r.plan_requests,
            r.generate_time.as_secs_f64() * 1e3,
            r.serve_time.as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

fn write_new(path: &Path, text: &str, force: bool, private: bool) -> spindle::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = o.open(path).map_err(|e| spindle::Error::io(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| spindle::Error::io(path, e))
}

fn run_keygen(args: KeygenArgs) -> spindle::Result<()> {
    let ok = !args.name.is_empty()
        && args
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(spindle::Error::InvalidParty(format!(
            "--name must be letters, digits, - or _, got {:?}",
            args.name
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| spindle::Error::io(&args.out, e))?;
    let g = spindle_transport::tls::generate_self_signed(
        &format!("spindle-{}", args.name),
        &args.host,
    )?;
    let key = args.out.join(format!("{}.key", args.name));
    let cert = args.out.join(format!("{}.pem", args.name));
    write_new(&key, &g.key_pem, args.force, true)?;
    write_new(&cert, &g.cert_pem, args.force, false)?;
    println!(
        "wrote {} (private: keep on this member's host) and {} (public: list it in the cluster config)",
        key.display(),
        cert.display()
    );
    Ok(())
}

fn run_hosts(args: HostsArgs) -> spindle::Result<()> {
    let c = ClusterConfig::from_file(&args.config)?;
    let cert = |m: &spindle::net::config::Member| {
        m.cert
            .as_ref()
            .map_or("-".to_string(), |p| p.display().to_string())
    };
    if let Some(d) = &c.dealer {
        println!("dealer {} {} {}", d.host, d.port, cert(d));
    }
    for (i, p) in c.parties.iter().enumerate() {
        println!("party{i} {} {} {}", p.host, p.port, cert(p));
    }
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // An out-of-memory run ends with a message, not a silent kill.
    spindle::resources::start_default_watchdog();
    let result = match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Demo(args) => run_demo(args),
        Command::Train(args) => run_train(args),
        Command::Infer(args) => run_infer(args),
        Command::Party(args) => run_party_cmd(args),
        Command::Dealer(args) => run_dealer_cmd(args),
        Command::Keygen(args) => run_keygen(args),
        Command::Hosts(args) => run_hosts(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
