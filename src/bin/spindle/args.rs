//! Arguments and helpers shared by several subcommands.

use clap::ValueEnum;
use spindle::jobs::{AnyJob as Job, MatmulJob, OpJob};
use spindle::net::config::ClusterConfig;
use spindle::runner::Preprocessing;
use spindle::SessionConfig;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum EvalArg {
    /// Secure inference on the test set, logits revealed to the data owner.
    Secure,
    /// Reveal the trained weights to the model owner, evaluate in plaintext.
    Reveal,
}

/// Training settings shared by `spindle train` and `spindle party --job train`.
#[derive(clap::Args, Clone)]
pub(crate) struct TrainSettings {
    /// MNIST directory (the four IDX files, raw or gzip; scripts/fetch-mnist.sh
    /// gets them). Default: the 512-image sample embedded in the binary.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Epochs (in total, counting resumed ones).
    #[arg(long, default_value_t = 1)]
    pub(crate) epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub(crate) batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub(crate) momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) weight_decay: f64,
    /// Train on the first N images only.
    #[arg(long)]
    pub(crate) train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub(crate) test_limit: Option<usize>,
    /// Seed of the weights, the batch order and the dealer.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// How test accuracy is measured.
    #[arg(long, value_enum, default_value_t = EvalArg::Secure)]
    pub(crate) eval: EvalArg,
    /// Write each party's share checkpoint here (a party process: its own) after every epoch.
    #[arg(long)]
    pub(crate) checkpoint_dir: Option<PathBuf>,
    /// Continue from the latest complete checkpoint in --checkpoint-dir.
    #[arg(long)]
    pub(crate) resume: bool,
}

impl TrainSettings {
    /// The options of a training run of `model` with `parties` parties.
    pub(crate) fn options(&self, model: String, parties: usize) -> spindle::train::TrainOptions {
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

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum JobKind {
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
    /// Secure CNN inference over an image file in micro-batches (--model
    /// lenet, --weights FILE or --checkpoint-dir DIR, --images FILE or
    /// --data DIR): party 0 owns the images and learns the labels; needs
    /// the online dealer (the default for this job).
    Classify,
}

/// The inter-batch pipeline's settings (`infer`, `party --job infer`).
#[derive(clap::Args, Clone)]
pub(crate) struct InterBatchArgs {
    /// Sentences per micro-batch: turns the inter-batch pipeline on
    /// (micro-batches on forks of the session, several in flight). Each
    /// micro-batch is padded to its longest sentence unless --seq-len is
    /// given.
    #[arg(long)]
    pub(crate) micro_batch: Option<usize>,
    /// Micro-batches in flight at once (1: one after another).
    #[arg(long, default_value_t = 2)]
    pub(crate) in_flight: usize,
    /// Worker threads of the compute stage: large local products (GEMMs,
    /// convolutions) run there while the protocol goes on with the other
    /// micro-batches (0: every op inline, the serial engine). Results are
    /// the same either way.
    #[arg(long, default_value_t = 1)]
    pub(crate) compute_workers: usize,
}

impl InterBatchArgs {
    /// The pipeline asked for: with --micro-batch, or (`on_by_default`)
    /// with the default micro-batch.
    pub(crate) fn pipeline(&self, on_by_default: bool) -> Option<spindle::pipeline::InterBatch> {
        let micro_batch = self
            .micro_batch
            .or(on_by_default.then_some(spindle::pipeline::InterBatch::default().micro_batch));
        micro_batch.map(|micro_batch| spindle::pipeline::InterBatch {
            micro_batch,
            in_flight: self.in_flight,
        })
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct JobArgs {
    /// The job (the dealer and every party must run the same).
    #[arg(long, value_enum, default_value_t = JobKind::Matmul)]
    pub(crate) job: JobKind,
    /// Rows of X.
    #[arg(long, default_value_t = 64)]
    pub(crate) m: usize,
    /// Columns of X, rows of W.
    #[arg(long, default_value_t = 128)]
    pub(crate) k: usize,
    /// Columns of W.
    #[arg(long, default_value_t = 32)]
    pub(crate) n: usize,
    /// Seed of the (public, test) inputs.
    #[arg(long, default_value_t = 1)]
    pub(crate) input_seed: u64,
    /// Compute the product (infer job: the embedding) this many times (fresh
    /// preprocessing each time), reveal the last; the infer job reports the
    /// median latency.
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: usize,
    /// Fixed-point fractional bits (default 20 in Z_2^64).
    #[arg(long)]
    pub(crate) frac_bits: Option<u32>,
    /// Lanes of the inner-layer pipeline for elementwise protocols on
    /// large tensors (1: off; default 4). The dealer and every party must
    /// give the same.
    #[arg(long)]
    pub(crate) lanes: Option<usize>,
    /// Inputs of at least this many elements run in lanes (default: from
    /// the cluster file's declared `link`, its bandwidth and latency, see
    /// `InnerPipeline::for_link`; 2^17 without one). The dealer and every
    /// party must give the same (a party's own `--link` does not change it).
    #[arg(long)]
    pub(crate) lane_min_elems: Option<usize>,
    /// Infer job: the model folder (party 0 reads the weights, every process
    /// config.json). Train job: the zoo model, secureml or lenet (default lenet).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Infer job: a sentence (repeat for several); only party N-1 uses it.
    #[arg(long)]
    pub(crate) text: Vec<String>,
    /// Infer job, public: padded length (default: the longest sentence).
    #[arg(long)]
    pub(crate) seq_len: Option<usize>,
    /// Infer job, public: tokens per sentence, comma-separated. Without it
    /// every process tokenizes --text to find them (convenient for local
    /// benchmarks; in a deployment give the lengths and the text only to
    /// the client).
    #[arg(long, value_delimiter = ',')]
    pub(crate) lengths: Vec<usize>,
    /// Infer job: run only the first L encoder layers.
    #[arg(long)]
    pub(crate) layers: Option<usize>,
    /// Infer job: more sentences, one per line of FILE (blank lines
    /// skipped), after the --text ones.
    #[arg(long)]
    pub(crate) input: Option<PathBuf>,
    /// Infer, classify and train jobs, public: the inter-batch pipeline
    /// (micro-batches on forks; infer with it and classify use the online
    /// dealer; train sums the micro-batches' gradients before each step).
    #[command(flatten)]
    pub(crate) inter_batch: InterBatchArgs,
    /// Op job: the function (relu, exp, reciprocal, softmax).
    #[arg(long, default_value = "exp")]
    pub(crate) op: String,
    /// Op job, softmax: group size of the max (default 16; 128: one level).
    #[arg(long)]
    pub(crate) max_group: Option<usize>,
    #[command(flatten)]
    pub(crate) train: TrainSettings,
    /// Classify job: the model and the images (with --model, default
    /// lenet; --checkpoint-dir and --data as for training).
    #[command(flatten)]
    pub(crate) classify: crate::classify::ClassifySource,
}

impl JobArgs {
    /// The classify job and its labels file, if any.
    pub(crate) fn classify_job(
        &self,
    ) -> spindle::Result<(spindle::classify::ClassifyJob, Option<PathBuf>)> {
        let model = self
            .model
            .as_ref()
            .map_or("lenet".to_string(), |m| m.display().to_string());
        self.classify.job(
            model,
            self.train.checkpoint_dir.as_deref(),
            self.train.data.as_deref(),
            &self.inter_batch,
        )
    }
    pub(crate) fn job(&self) -> spindle::Result<Job> {
        match self.job {
            JobKind::Infer => return self.infer_job().map(Job::Infer),
            JobKind::Classify => return Ok(Job::Classify(self.classify_job()?.0)),
            _ => {}
        }
        Ok(match self.job {
            JobKind::Op => Job::Op(OpJob {
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
                let mut t = self.train.options(model, 0);
                t.pipeline = self.inter_batch.pipeline(false);
                Job::Train(Box::new(t))
            }
            JobKind::Matmul => Job::Matmul(MatmulJob {
                m: self.m,
                k: self.k,
                n: self.n,
                input_seed: self.input_seed,
                repeat: self.repeat,
            }),
            JobKind::Infer | JobKind::Classify => unreachable!("handled above"),
        })
    }
    pub(crate) fn infer_job(&self) -> spindle::Result<spindle::infer::InferJob> {
        let model = self.model.clone().ok_or_else(|| spindle::Error::Format {
            what: "--job infer".into(),
            detail: "needs --model DIR".into(),
        })?;
        let mut text = self.text.clone();
        if let Some(path) = &self.input {
            text.extend(crate::infer::read_sentences(path)?);
        }
        let lengths = if self.lengths.is_empty() {
            let tk = spindle::io::tokenizer::Tokenizer::from_dir(&model)?;
            text.iter()
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
            text,
            seq_len,
            lengths,
            layers: self.layers,
            attention: Default::default(),
            repeats: self.repeat,
            pipeline: self.inter_batch.pipeline(false),
            dynamic_padding: self.seq_len.is_none(),
        })
    }
    /// The session settings: the inner-layer pipeline follows the
    /// cluster's declared link (`cluster_link`) unless overridden.
    pub(crate) fn session(&self, cluster_link: Option<&str>) -> spindle::Result<SessionConfig> {
        use spindle::pipeline::InnerPipeline;
        use spindle::session::LinkCost;
        let (mut pipeline, link) = match cluster_link {
            Some(l) => {
                let p: spindle_transport::LinkProfile = l.parse()?;
                let pipeline = InnerPipeline::for_link(
                    p.bits_per_sec,
                    p.latency,
                    spindle::session::COMPUTE_NS_PER_ELEMENT_ROUND,
                );
                let link = LinkCost {
                    bits_per_sec: p.bits_per_sec,
                    latency: p.latency,
                };
                (pipeline, link)
            }
            None => (InnerPipeline::default(), LinkCost::default()),
        };
        if let Some(l) = self.lanes {
            pipeline.lanes = l.max(1);
        }
        if let Some(m) = self.lane_min_elems {
            pipeline.min_elems = m;
        }
        Ok(SessionConfig {
            frac_bits: self.frac_bits,
            pipeline,
            compute_workers: self.inter_batch.compute_workers,
            link,
            ..SessionConfig::default()
        })
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct ClusterArgs {
    /// Cluster file (TOML). Without it, the torchrun (RANK, WORLD_SIZE,
    /// MASTER_ADDR, MASTER_PORT) or Slurm (SLURM_PROCID, SLURM_NTASKS,
    /// SLURM_JOB_NODELIST) environment describes the cluster.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Directory with partyI.pem, partyI.key, dealer.pem, dealer.key (environment mode,
    /// and default key location).
    #[arg(long)]
    pub(crate) cert_dir: Option<PathBuf>,
    /// This process's private key (PEM). Default: CERT_DIR/partyI.key or CERT_DIR/dealer.key.
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// Session id (overrides the config and the environment).
    #[arg(long)]
    pub(crate) session: Option<String>,
    /// Plain TCP without TLS: no authentication, no encryption. Trusted lab networks only.
    #[arg(long)]
    pub(crate) insecure_plaintext: bool,
    /// Address to listen on (default: this member's host and port from the cluster).
    #[arg(long)]
    pub(crate) bind: Option<String>,
    /// Receive timeout in ms (overrides the config).
    #[arg(long)]
    pub(crate) timeout_ms: Option<u64>,
    /// Start-up budget in ms (overrides the config).
    #[arg(long)]
    pub(crate) connect_timeout_ms: Option<u64>,
}

impl ClusterArgs {
    /// The cluster and, in environment mode, this process's rank.
    pub(crate) fn load(&self) -> spindle::Result<(ClusterConfig, Option<usize>)> {
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

    pub(crate) fn key_for(&self, file: &str) -> Option<PathBuf> {
        self.key
            .clone()
            .or_else(|| self.cert_dir.as_ref().map(|d| d.join(file)))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TransportArg {
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

pub(crate) fn parse_seed(s: &str) -> Result<spindle::prg::Seed, String> {
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

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PreprocessingArg {
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

/// Writes a run's timeline to `path` and prints each stage's busy time.
pub(crate) fn write_trace(
    path: &std::path::Path,
    trace: &spindle::trace::Trace,
) -> spindle::Result<()> {
    trace.write(path)?;
    println!(
        "timeline written to {} (Perfetto, chrome://tracing)",
        path.display()
    );
    for line in trace.summary() {
        println!("  {line}");
    }
    Ok(())
}

pub(crate) fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub(crate) fn runtime() -> spindle::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| spindle::Error::Unsupported(format!("cannot start the async runtime: {e}")))
}
