//! `spindle dealer`: the dealer (stores or online) as this process.

use crate::args::{human_bytes, parse_seed, runtime, ClusterArgs, JobArgs};
use spindle::net::dealer::DealerOptions;
use spindle::net::run_dealer;
use spindle_transport::DEALER;

#[derive(clap::Args)]
pub(crate) struct DealerArgs {
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Serve as an online dealer (answer party 0's requests as they come)
    /// instead of planning and generating stores; implied by the train job.
    /// The parties then run with --preprocessing online-dealer.
    #[arg(long)]
    pub(crate) online: bool,
    /// Master seed, 32 hex digits, for reproducible runs (tests): the
    /// material is then predictable to anyone who knows the seed, and a
    /// warning says so. Default: fresh OS randomness, as a real deployment
    /// needs.
    #[arg(long, value_parser = parse_seed)]
    pub(crate) master_seed: Option<spindle::prg::Seed>,
}

pub(crate) fn run_dealer_cmd(args: DealerArgs) -> spindle::Result<()> {
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
    let session = args.job.session(cluster.options.link.as_deref())?;
    let opts = DealerOptions {
        cluster,
        security,
        job,
        session,
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
