//! `spindle train`: secure training with all parties in this process.

use crate::args::{parse_seed, PreprocessingArg, TrainSettings};
use spindle::runner::Preprocessing;

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "State").
    #[arg(long, default_value = "cpu")]
    pub(crate) device: spindle::backend::DeviceChoice,
    /// Model: secureml or lenet (MNIST-shaped zoo models).
    #[arg(long, default_value = "lenet")]
    pub(crate) model: String,
    /// Dataset (only mnist for now).
    #[arg(long, default_value = "mnist")]
    pub(crate) dataset: String,
    /// Number of parties (>= 2): party 0 owns the data, party 1 the model.
    #[arg(long, default_value_t = 3)]
    pub(crate) parties: usize,
    #[command(flatten)]
    pub(crate) settings: TrainSettings,
    /// Source of correlated randomness (dealer plans whole epochs ahead; the
    /// online dealer answers as requests come).
    #[arg(long, value_enum, default_value_t = PreprocessingArg::OnlineDealer)]
    pub(crate) preprocessing: PreprocessingArg,
    /// Also train the plaintext twin with the same seed and report its accuracy.
    #[arg(long)]
    pub(crate) check: bool,
    /// Fixed-point fractional bits (default 20).
    #[arg(long)]
    pub(crate) frac_bits: Option<u32>,
    /// Master seed of the dealer, 32 hex digits, for bit-exact reproduction
    /// (tests, a resume that must match an uninterrupted run): the material
    /// is then predictable to anyone who knows the seed, and a warning says
    /// so. Default: fresh OS randomness.
    #[arg(long, value_parser = parse_seed)]
    pub(crate) dealer_seed: Option<spindle::prg::Seed>,
    /// Write the timeline of the last epoch (every party's compute,
    /// protocol, send and receive tracks) to FILE as Chrome trace-event
    /// JSON, and print each stage's busy time.
    #[arg(long)]
    pub(crate) trace: Option<std::path::PathBuf>,
    /// The inter-batch pipeline: each step's batch as micro-batches of
    /// this many images, several in flight, their gradients summed
    /// before the one optimizer step (off without --micro-batch).
    #[command(flatten)]
    pub(crate) inter_batch: crate::args::InterBatchArgs,
}

pub(crate) fn run_train(args: TrainArgs) -> spindle::Result<()> {
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
        trace: args.trace.is_some(),
        pipeline: args.inter_batch.pipeline(false),
        compute_workers: args.inter_batch.compute_workers,
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
    if let (Some(path), Some(trace)) = (&args.trace, &r.trace) {
        crate::args::write_trace(path, trace)?;
    }
    if r.epochs.is_empty() {
        println!(
            "nothing to do: the checkpoints already cover {} epochs",
            opts.epochs
        );
    }
    Ok(())
}
