//! The `spindle` command line. With no subcommand it runs `spindle demo`.

// Large short-lived share buffers: mimalloc avoids a page fault per fresh allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod classify;
mod dealer;
mod demo;
mod hosts;
mod infer;
mod keygen;
mod party;
mod train;

use crate::classify::{run_classify, ClassifyArgs};
use crate::dealer::{run_dealer_cmd, DealerArgs};
use crate::demo::{run_demo, DemoArgs};
use crate::hosts::{run_hosts, HostsArgs};
use crate::infer::{run_infer, InferArgs};
use crate::keygen::{run_keygen, KeygenArgs};
use crate::party::{run_party_cmd, PartyArgs};
use crate::train::{run_train, TrainArgs};
use clap::{Parser, Subcommand};

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
    /// Secure CNN inference over an image file with a secret model (share
    /// checkpoints of secure training, or plaintext weights of party 1).
    Classify(ClassifyArgs),
    /// Run one party of a job as this process (TCP with mutual TLS).
    Party(PartyArgs),
    /// Run the offline dealer as this process: plan, generate, serve each party its store.
    Dealer(DealerArgs),
    /// Write a private key and self-signed certificate for one cluster member.
    Keygen(KeygenArgs),
    /// Print the members of a cluster file, one per line: NAME HOST PORT CERT (for launchers).
    Hosts(HostsArgs),
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
        Command::Classify(args) => run_classify(args),
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
