//! Parties and the dealer as separate processes over real links.
//!
//! - [`config`]: the cluster file (TOML) and the torchrun / Slurm
//!   environment conventions.
//! - the jobs the processes run are in [`crate::jobs`].
//! - [`party`]: `spindle party`: one party of a job over TCP with mutual TLS.
//! - [`dealer`]: `spindle dealer`: the offline dealer as its own process,
//!   serving each party its store over TLS.
//! - [`online_dealer`]: the online dealer as its own process, answering
//!   party 0's requests as they come (training runs).
//!
//! Protocol code is unchanged: a party builds a
//! [`spindle_transport::TcpTransport`] (optionally wrapped in
//! [`spindle_transport::Emulated`]) and hands it to [`crate::Session::connect`].
//! Wire format, TLS setup and failure semantics: `docs/transport.md`.

pub mod config;
pub mod dealer;
pub mod online_dealer;
pub mod party;

use std::path::Path;
use std::sync::Arc;

use spindle_transport::{PartyId, Security, TlsIdentity, DEALER};

use crate::error::{Error, Result};
use config::ClusterConfig;

/// Runs the dealer process of a job: the online dealer
/// ([`online_dealer::run_online_dealer`]) with `online` or for a job that
/// needs one (training), else the offline dealer that serves stores
/// ([`dealer::run_store_dealer`]).
///
/// Errors: as the dealer it runs.
pub async fn run_dealer(opts: dealer::DealerOptions) -> Result<dealer::DealerReport> {
    if opts.online || opts.job.needs_online_dealer() {
        let t0 = std::time::Instant::now();
        let sent = online_dealer::run_online_dealer(&opts).await?;
        return Ok(dealer::DealerReport {
            plan_requests: 0,
            store_bytes: sent.iter().map(|&b| b as usize).collect(),
            generate_time: std::time::Duration::ZERO,
            serve_time: t0.elapsed(),
        });
    }
    dealer::run_store_dealer(opts).await
}

/// The link security of member `me` (a party id or [`DEALER`]): mutual TLS
/// with `key` and the certificates of the config, or plain TCP when
/// `insecure_plaintext` is set (which logs a warning).
///
/// Errors: [`Error::InvalidParty`] for a config that asks for plaintext
/// without the flag, or TLS without a key; [`Error::Transport`] for
/// unreadable key or certificate files.
pub fn security(
    cluster: &ClusterConfig,
    me: PartyId,
    key: Option<&Path>,
    insecure_plaintext: bool,
) -> Result<Security> {
    if insecure_plaintext {
        tracing::warn!(
            "--insecure-plaintext: links to the other parties and the dealer are NOT authenticated \
             or encrypted; use only on a trusted lab network"
        );
        return Ok(Security::InsecurePlaintext);
    }
    if cluster.options.insecure_plaintext {
        return Err(Error::InvalidParty(
            "the cluster config sets insecure_plaintext; pass --insecure-plaintext to confirm"
                .into(),
        ));
    }
    let key = key.ok_or_else(|| {
        Error::InvalidParty("mutual TLS needs this process's private key: pass --key FILE".into())
    })?;
    let mut peers: Vec<(PartyId, &Path)> = Vec::new();
    for p in &cluster.parties {
        if let (Some(id), Some(c)) = (p.id, p.cert.as_deref()) {
            peers.push((id, c));
        }
    }
    if let Some(c) = cluster.dealer.as_ref().and_then(|d| d.cert.as_deref()) {
        peers.push((DEALER, c));
    }
    let own = peers
        .iter()
        .find(|(id, _)| *id == me)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            Error::InvalidParty(format!(
                "no certificate for {} in the cluster config",
                spindle_transport::peer_name(me)
            ))
        })?;
    let id = TlsIdentity::from_files(me, key, own, &peers)?;
    Ok(Security::Tls(Arc::new(id)))
}
