//! The `spindle` command line. With no subcommand it runs `spindle demo`.

use clap::{Parser, Subcommand, ValueEnum};
use spindle::demo::{self, DemoOptions};
use spindle::runner::Preprocessing;

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
}

#[derive(Clone, Copy, ValueEnum)]
enum PreprocessingArg {
    /// Separate offline phase with a dealer (trusted third party).
    Dealer,
    /// Party 0 deals (insecure against party 0; tests and demos only).
    TrustedFirstParty,
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
}

impl Default for DemoArgs {
    fn default() -> Self {
        let d = DemoOptions::default();
        DemoArgs {
            parties: d.n_parties,
            images: d.images,
            preprocessing: PreprocessingArg::Dealer,
            frac_bits: None,
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
        preprocessing: match args.preprocessing {
            PreprocessingArg::Dealer => Preprocessing::Dealer,
            PreprocessingArg::TrustedFirstParty => Preprocessing::TrustedFirstParty,
        },
        frac_bits: args.frac_bits,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.n_parties.max(2))
        .enable_all()
        .build()
        .map_err(|e| spindle::Error::Unsupported(format!("cannot start the async runtime: {e}")))?;
    let r = rt.block_on(demo::run(&opts))?;
    println!(
        "Spindle demo: {} parties, {} preprocessing, Z_2^64 with {} fractional bits, CPU backend",
        r.n_parties,
        match opts.preprocessing {
            Preprocessing::Dealer => "dealer",
            Preprocessing::TrustedFirstParty => "trusted-first-party (insecure, demo only)",
        },
        r.frac_bits
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
    let result = match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Demo(args) => run_demo(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
