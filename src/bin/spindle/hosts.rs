//! `spindle hosts`: the members of a cluster file, for launchers.

use spindle::net::config::ClusterConfig;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct HostsArgs {
    /// Cluster file (TOML).
    #[arg(long)]
    pub(crate) config: PathBuf,
}

pub(crate) fn run_hosts(args: HostsArgs) -> spindle::Result<()> {
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
