//! `spindle party`: one party of a job as its own process.
//!
//! Start-up: fetch the preprocessing store from the dealer and connect the
//! party mesh (both with retries, within the connect timeout), then
//! [`Session::connect`], run the job, and shut the links down gracefully.
//! On any error the party tells its peers why (an abort frame) before
//! returning it, so every other party fails promptly with a message that
//! names the peer at the root of the failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_transport::rdma::{self, RdmaOptions, RdmaTransport};
use spindle_transport::{
    Emulated, LinkProfile, PartyId, Security, StatsReport, TcpTransport, Transport, TransportError,
};
use tokio::net::TcpListener;

use super::config::{ClusterConfig, TransportKind};
use super::dealer::fetch_store;
use super::online_dealer::{online_fingerprint, OnlineDealerLink};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::jobs::{AnyJob, AnyOutput, Finished, JobPhase};
use crate::preprocess::StreamingProvider;
use crate::runner::Preprocessing;
use crate::session::{ProviderSpec, Session, SessionConfig};

/// Settings of one party process.
#[derive(Clone, Debug)]
pub struct PartyOptions {
    /// The cluster.
    pub cluster: ClusterConfig,
    /// This party's id.
    pub me: PartyId,
    /// Link security (see [`super::security`]).
    pub security: Security,
    /// The job.
    pub job: AnyJob,
    /// Session settings (must match the other parties' and the dealer's).
    pub session: SessionConfig,
    /// Dealer process with stores (default), online dealer process, or
    /// trusted first party.
    pub preprocessing: Preprocessing,
    /// Transport kind (overrides the config's when set).
    pub transport: Option<TransportKind>,
    /// Emulated link profile (overrides the config's when set).
    pub link: Option<LinkProfile>,
    /// Address to listen on; default: this party's configured host and port.
    pub bind: Option<String>,
    /// Where share arithmetic runs ([`crate::backend::select_device`]).
    pub backend: Device,
    /// Dealer stores: expand all of this party's material before the online
    /// phase (the plan comes from a dry run of the public job), so the
    /// online time excludes the PRG expansion; costs its memory at once.
    pub expand_ahead: bool,
    /// Record this party's timeline of the online phase
    /// ([`crate::trace`]; [`PartyOutcome::trace`]).
    pub trace: bool,
}

/// What one party computed and what it cost.
#[derive(Clone, Debug)]
pub struct PartyOutcome {
    /// This party.
    pub party: PartyId,
    /// The job's typed output at this party.
    pub output: AnyOutput,
    /// The output as a flat list of numbers ([`AnyOutput::values`]).
    pub result: Vec<f64>,
    /// The job's own phases (e.g. model load and inference).
    pub phases: Vec<JobPhase>,
    /// Largest |result - f64 reference|.
    pub max_abs_error: f64,
    /// Bytes of the store received from the dealer (0 without dealer).
    pub dealer_bytes: usize,
    /// Traffic per phase ("setup", "online").
    pub stats: StatsReport,
    /// Wall time from start to mesh connected and store received.
    pub startup_time: Duration,
    /// Wall time of session setup plus the job.
    pub online_time: Duration,
    /// This party's timeline ([`PartyOptions::trace`]).
    pub trace: Option<crate::trace::Trace>,
}

impl PartyOutcome {
    /// The outcome as JSON (result, error, dealer bytes, times, traffic).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "party": self.party,
            "result": self.result,
            "phases": self.phases.iter().map(|p| serde_json::json!({
                "label": p.label,
                "ms": p.time.as_secs_f64() * 1e3,
                "bytes_sent": p.link.bytes_sent,
                "rounds": p.link.rounds,
            })).collect::<Vec<_>>(),
            "max_abs_error": self.max_abs_error,
            "dealer_bytes": self.dealer_bytes,
            "startup_ms": self.startup_time.as_secs_f64() * 1e3,
            "online_ms": self.online_time.as_secs_f64() * 1e3,
            "stats": serde_json::to_value(&self.stats).unwrap_or_default(),
        })
    }
}

/// Picks the transport kind: `tcp` as is; `rdma` if [`rdma::probe`]
/// finds the device `rdma_opts` asks for; `auto` is RDMA where a device
/// is found, else TCP after one log line ("no RDMA device found, using
/// TCP", or "built without the rdma feature, using TCP"). Every party of a
/// session must resolve to the same kind. Blocks for the device queries
/// (milliseconds, once at start-up).
///
/// Errors: [`TransportError::Unsupported`] for `rdma` when this build lacks
/// the `rdma` feature ("built without the rdma feature ...") or the host
/// has no usable device ("no RDMA device found: ...").
pub fn resolve_transport(
    kind: TransportKind,
    rdma_opts: &RdmaOptions,
) -> std::result::Result<TransportKind, TransportError> {
    match kind {
        TransportKind::Tcp => Ok(TransportKind::Tcp),
        TransportKind::Rdma => {
            rdma::probe(rdma_opts)?;
            Ok(TransportKind::Rdma)
        }
        TransportKind::Auto => Ok(match rdma::auto_select(rdma_opts) {
            Some(_) => TransportKind::Rdma,
            None => TransportKind::Tcp,
        }),
    }
}

/// Runs one party of the job. See the module docs for the sequence.
///
/// Errors: configuration errors, [`Error::Transport`] for link failures
/// (naming the peer), protocol errors; the peers have been sent the reason.
pub async fn run_party(opts: PartyOptions) -> Result<PartyOutcome> {
    let c = &opts.cluster;
    let n = c.n_parties();
    if opts.me >= n {
        return Err(Error::InvalidParty(format!("party {} of {n}", opts.me)));
    }
    opts.job.validate()?;
    if opts.job.needs_online_dealer() && opts.preprocessing != Preprocessing::OnlineDealer {
        return Err(Error::Unsupported(format!(
            "{} needs the online dealer (--preprocessing online-dealer, and `spindle dealer` \
             serving online): its material is too large to plan and store ahead",
            opts.job.fingerprint(n, &opts.session)
        )));
    }
    let requested = opts.transport.unwrap_or(c.options.transport);
    // RDMA device settings come from SPINDLE_RDMA_* (docs/transport.md).
    let rdma_opts = match requested {
        TransportKind::Tcp => RdmaOptions::default(),
        _ => RdmaOptions::from_env()?,
    };
    let kind = resolve_transport(requested, &rdma_opts)?;
    let link = match (&opts.link, &c.options.link) {
        (Some(l), _) => Some(*l),
        (None, Some(s)) => Some(s.parse::<LinkProfile>()?),
        (None, None) => None,
    };
    let t0 = Instant::now();
    let bind = opts
        .bind
        .clone()
        .unwrap_or_else(|| c.parties[opts.me].addr());
    let listener = TcpListener::bind(&bind).await.map_err(|e| {
        Error::Transport(TransportError::Config(format!(
            "party {} cannot listen on {bind}: {e}",
            opts.me
        )))
    })?;
    let fingerprint = opts.job.fingerprint(n, &opts.session);
    let addrs = c.addrs();
    let mesh = async {
        let t: Arc<dyn Transport> = match kind {
            TransportKind::Rdma => Arc::new(
                RdmaTransport::connect(
                    opts.me,
                    &addrs,
                    listener,
                    opts.security.clone(),
                    c.link_options(),
                    rdma_opts,
                )
                .await?,
            ),
            TransportKind::Tcp | TransportKind::Auto => Arc::new(
                TcpTransport::connect(
                    opts.me,
                    &addrs,
                    listener,
                    opts.security.clone(),
                    c.link_options(),
                )
                .await?,
            ),
        };
        Ok::<_, TransportError>(t)
    };
    let store = async {
        match opts.preprocessing {
            Preprocessing::Dealer => {
                let (store, bytes) = fetch_store(c, opts.me, &opts.security, &fingerprint).await?;
                let spec = if opts.expand_ahead {
                    expanded(store, &opts, n).await?
                } else {
                    ProviderSpec::Store(store)
                };
                Ok((spec, bytes, None))
            }
            Preprocessing::TrustedFirstParty => Ok((ProviderSpec::TrustedFirstParty, 0, None)),
            Preprocessing::OnlineDealer => {
                let link = OnlineDealerLink::connect(
                    c,
                    opts.me,
                    &opts.security,
                    &online_fingerprint(&fingerprint),
                    opts.backend.clone(),
                )
                .await?;
                // Stream 0 to start with; jobs may begin others (training epochs).
                let provider = StreamingProvider::starting_at(Box::new(link.clone()), 0)?;
                Ok((ProviderSpec::Custom(Box::new(provider)), 0, Some(link)))
            }
        }
    };
    let (mesh, store) = tokio::join!(mesh, store);
    let mesh = mesh?;
    let (spec, mut dealer_bytes, dealer_link) = match store {
        Ok(s) => s,
        Err(e) => {
            mesh.abort(&format!("party {} failed: {e}", opts.me)).await;
            return Err(e);
        }
    };
    let transport: Arc<dyn Transport> = match link {
        Some(p) => {
            tracing::info!(
                "party {}: emulating {:.0} Mbit/s, {:?} per link",
                opts.me,
                p.bits_per_sec / 1e6,
                p.latency
            );
            Arc::new(Emulated::new(mesh, p))
        }
        None => mesh,
    };
    let startup_time = t0.elapsed();
    let t1 = Instant::now();
    let party_trace = opts
        .trace
        .then(|| crate::trace::PartyTrace::new(opts.me, Instant::now()));
    let result = async {
        transport.begin_phase("setup");
        let sess = Arc::new(
            Session::connect(
                transport.clone(),
                opts.backend.clone(),
                spec,
                opts.session.clone(),
            )
            .await?,
        );
        transport.begin_phase("online");
        // A marker for profilers attaching to the online phase only.
        tracing::debug!("party {}: online phase begins", opts.me);
        crate::trace::traced(party_trace.clone(), opts.job.run(sess)).await
    }
    .await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            let why = match &e {
                // Relay the root cause: who failed first, and how.
                Error::Transport(t) => t.to_string(),
                other => format!("party {} failed: {other}", opts.me),
            };
            transport.abort(&why).await;
            if let Some(link) = &dealer_link {
                link.abort(&why);
            }
            return Err(e);
        }
    };
    let online_time = t1.elapsed();
    transport.shutdown().await?;
    if let Some(link) = dealer_link {
        dealer_bytes = link.bytes_received() as usize;
        // The job is done and its result final: a dealer that is already
        // gone (another party died after its last message) costs nothing.
        if let Err(e) = link.close() {
            tracing::warn!(
                "party {}: the job is done, but the link to the dealer did not close cleanly: {e}",
                opts.me
            );
        }
    }
    let expected = opts.job.expected();
    let Finished { output, phases } = result;
    let result = output.values();
    let max_abs_error = result
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    Ok(PartyOutcome {
        party: opts.me,
        output,
        result,
        phases,
        max_abs_error,
        dealer_bytes,
        stats: StatsReport::of(transport.as_ref()),
        startup_time,
        online_time,
        trace: party_trace.map(|t| crate::trace::Trace { parties: vec![t] }),
    })
}

/// The provider of `store` with all its material expanded now, for the
/// plan of a dry run of the job.
async fn expanded(
    store: crate::preprocess::PartyStore,
    opts: &PartyOptions,
    n: usize,
) -> Result<ProviderSpec> {
    if store.party != opts.me || store.n_parties != n {
        return Err(Error::InvalidParty(format!(
            "preprocessing store is for party {} of {}, this is party {} of {n}",
            store.party, store.n_parties, opts.me
        )));
    }
    let (dry, handle) = Session::dry_run(0, n, opts.session.clone())?;
    opts.job.run(Arc::new(dry)).await?;
    let mut p = store.into_provider(opts.backend.clone());
    p.expand_ahead(&handle.plan().requests)?;
    Ok(ProviderSpec::Custom(Box::new(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdma_is_a_clear_error_and_auto_falls_back_to_tcp() {
        let o = RdmaOptions::default();
        assert_eq!(
            resolve_transport(TransportKind::Tcp, &o),
            Ok(TransportKind::Tcp)
        );
        match rdma::probe(&o) {
            // This machine, or a build without the feature.
            Err(_) => {
                let e = resolve_transport(TransportKind::Rdma, &o).unwrap_err();
                assert!(matches!(e, TransportError::Unsupported(_)));
                let want = if rdma::BUILT {
                    "no RDMA device found"
                } else {
                    "built without the rdma feature"
                };
                assert!(e.to_string().contains(want), "{e}");
                assert_eq!(
                    resolve_transport(TransportKind::Auto, &o),
                    Ok(TransportKind::Tcp)
                );
            }
            // A host with a device.
            Ok(_) => {
                for k in [TransportKind::Rdma, TransportKind::Auto] {
                    assert_eq!(resolve_transport(k, &o), Ok(TransportKind::Rdma));
                }
            }
        }
    }
}
