//! `spindle demo`: the MNIST demo (the default subcommand).

use crate::args::{human_bytes, PreprocessingArg};
use spindle::backend::Backend;
use spindle::demo::{self, DemoOptions};
use spindle::runner::Preprocessing;

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Number of parties (>= 2).
    #[arg(long, default_value_t = 3)]
    pub(crate) parties: usize,
    /// Number of embedded MNIST test images to classify (1..=512).
    #[arg(long, default_value_t = 128)]
    pub(crate) images: usize,
    /// Source of correlated randomness.
    #[arg(long, value_enum, default_value_t = PreprocessingArg::Dealer)]
    pub(crate) preprocessing: PreprocessingArg,
    /// Fixed-point fractional bits (default 20 in Z_2^64).
    #[arg(long)]
    pub(crate) frac_bits: Option<u32>,
    /// Skip the second part (a short secure LeNet training run).
    #[arg(long)]
    pub(crate) no_train: bool,
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "What does not work yet").
    #[arg(long, default_value = "cpu")]
    pub(crate) device: spindle::backend::DeviceChoice,
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

pub(crate) fn run_demo(args: DemoArgs) -> spindle::Result<()> {
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
