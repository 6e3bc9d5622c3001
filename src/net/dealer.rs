//! `spindle dealer`: the offline dealer as its own process.
//!
//! It runs the job's dry run to record the preprocessing plan, generates one
//! store per party, and serves each party its store over a mutually
//! authenticated TLS link: parties 1..N-1 receive only their seed, party 0
//! its seed and the corrections. A party first sends its job fingerprint;
//! one that runs another job is refused with the reason.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spindle_transport::frame::{read_frame, write_frame, FrameKind, ReadError};
use spindle_transport::link::{accept, dial, LinkOptions, Security};
use spindle_transport::{PartyId, TransportError, DEALER};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::config::ClusterConfig;

/// Largest frame of a store on the wire: a store is sent as its length
/// (one 8-byte frame), then chunks of at most this size (or the link's
/// `max_frame_bytes` if smaller), so stores of any size pass a frame limit
/// meant for one round's messages.
const STORE_CHUNK: usize = 64 << 20;

/// How long a party waits for the dealer's next message: 3/4 of the
/// receive timeout. The other parties wait for this one with the full
/// timeout, so a silent dealer is reported here, and relayed to them in
/// this party's abort, before they would time out blaming this party.
pub(crate) fn dealer_wait(lo: &LinkOptions) -> Duration {
    lo.recv_timeout * 3 / 4
}
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::jobs::AnyJob;
use crate::preprocess::{Dealer, PartyStore};
use crate::prg::Seed;
use crate::session::{Session, SessionConfig};

/// Settings of a dealer process.
#[derive(Clone, Debug)]
pub struct DealerOptions {
    /// The cluster (its `[dealer]` entry is this process).
    pub cluster: ClusterConfig,
    /// Link security.
    pub security: Security,
    /// The job the parties run.
    pub job: AnyJob,
    /// Session settings (must match the parties').
    pub session: SessionConfig,
    /// Master seed for reproducible material; `None`: OS randomness.
    pub master_seed: Option<Seed>,
    /// Address to listen on; default: the `[dealer]` host and port.
    pub bind: Option<String>,
    /// Serve as an online dealer ([`super::online_dealer`]) instead of
    /// generating stores ahead; implied by jobs that need it (training).
    pub online: bool,
}

/// What the dealer did.
#[derive(Clone, Debug)]
pub struct DealerReport {
    /// Requests in the plan (0 for an online dealer).
    pub plan_requests: usize,
    /// Bytes of each party's store (online: everything sent), by party.
    pub store_bytes: Vec<usize>,
    /// Time of dry run plus generation.
    pub generate_time: Duration,
    /// Time from listening until every party was served.
    pub serve_time: Duration,
}

/// Records the plan of `job` with a dry run and generates the stores.
///
/// Errors: protocol errors of the dry run, dealer errors.
pub async fn generate(
    job: &AnyJob,
    n_parties: usize,
    session: &SessionConfig,
    master_seed: Option<Seed>,
) -> Result<(usize, Vec<PartyStore>)> {
    let (dry, handle) = Session::dry_run(0, n_parties, session.clone())?;
    job.run(Arc::new(dry)).await?;
    let plan = handle.plan();
    let master = crate::preprocess::master_seed(master_seed, "--master-seed")?;
    let dealer = Dealer::from_master_seed(n_parties, master, Device::default())?;
    Ok((plan.requests.len(), dealer.generate(&plan)?))
}

/// Runs the offline dealer: generate every party's store, listen, serve
/// each party once, return. Waits at most the connect timeout of the
/// cluster options for the parties. [`super::run_dealer`] picks this or
/// the online dealer.
///
/// Errors: [`Error::Transport`] when the address cannot be bound or some
/// parties never fetched their store (named in the message).
pub async fn run_store_dealer(opts: DealerOptions) -> Result<DealerReport> {
    let cluster = &opts.cluster;
    let n = cluster.n_parties();
    let t0 = Instant::now();
    let (plan_requests, stores) = generate(&opts.job, n, &opts.session, opts.master_seed).await?;
    let generate_time = t0.elapsed();
    let store_bytes: Vec<Vec<u8>> = stores.iter().map(|s| s.to_bytes()).collect();
    let sizes = store_bytes.iter().map(Vec::len).collect();
    let fingerprint = opts.job.fingerprint(n, &opts.session);

    let addr = dealer_addr(cluster, &opts.bind)?;
    tracing::info!("dealer: plan of {plan_requests} requests; serving {n} parties on {addr}");
    let t1 = Instant::now();
    let stores: Arc<Vec<Vec<u8>>> = Arc::new(store_bytes);
    let fingerprint = Arc::new(fingerprint);
    serve_parties(
        cluster,
        &opts.security,
        &addr,
        true,
        move |stream, peer, lo, _abort| {
            let (stores, fp) = (stores.clone(), fingerprint.clone());
            async move {
                serve(stream, peer, &stores[peer], &fp, &lo).await?;
                tracing::info!("dealer: served party {peer} ({} bytes)", stores[peer].len());
                Ok(())
            }
        },
    )
    .await?;
    Ok(DealerReport {
        plan_requests,
        store_bytes: sizes,
        generate_time,
        serve_time: t1.elapsed(),
    })
}

/// The dealer's address: `bind`, else the cluster's `[dealer]` entry.
///
/// Errors: [`Error::InvalidParty`] when neither is given.
pub(super) fn dealer_addr(cluster: &ClusterConfig, bind: &Option<String>) -> Result<String> {
    match (bind, &cluster.dealer) {
        (Some(b), _) => Ok(b.clone()),
        (None, Some(d)) => Ok(d.addr()),
        (None, None) => Err(Error::InvalidParty(
            "the cluster config has no [dealer] entry".into(),
        )),
    }
}

/// Why the dealer ends every link early: the first failure, as a message
/// for the parties (`None` while the job runs). Long-running serve tasks
/// watch it and send it to their party as an abort frame, so each party
/// learns which member failed first instead of seeing its link drop.
pub(super) type AbortSignal = tokio::sync::watch::Receiver<Option<String>>;

/// How long the dealer waits, after a fatal link failure, for its other
/// links to deliver the abort reason before it exits.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// How one accepted connection ended.
enum LinkEnd {
    /// The party was served.
    Served(PartyId),
    /// The connection never authenticated as a party (a port scan, garbage
    /// bytes, an unknown certificate, a duplicate): logged, never fatal.
    Unauthenticated(TransportError),
    /// An authenticated party's link failed.
    Failed(TransportError),
}

/// Listens on `addr`, authenticates each party's link (mutual TLS, one link
/// per party id) and runs `serve` on it, until every party has been served.
///
/// Connections that do not authenticate as a party of the cluster are
/// refused and logged, and never end the dealer: anyone who can reach the
/// port cannot stop the job. With `retry`, a party whose link fails may
/// connect again (within a fresh connect timeout); without, the first failed
/// link ends the dealer with its error, after every other link has been
/// sent the reason (see [`AbortSignal`]). Every party must have connected
/// within the connect timeout of the cluster options; links that then
/// stay open for the whole job (the online dealer's) are not bounded by it.
///
/// Errors: [`Error::Transport`] when the address cannot be bound, some
/// parties never connected (named, with the last link error), or (without
/// `retry`) a party's link failed.
pub(super) async fn serve_parties<F, Fut>(
    cluster: &ClusterConfig,
    security: &Security,
    addr: &str,
    retry: bool,
    serve: F,
) -> Result<()>
where
    F: Fn(Box<dyn spindle_transport::link::Stream>, PartyId, Arc<LinkOptions>, AbortSignal) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = std::result::Result<(), TransportError>> + Send + 'static,
{
    let n = cluster.n_parties();
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Transport(TransportError::Config(format!(
            "dealer cannot listen on {addr}: {e}"
        )))
    })?;
    let lo = Arc::new(cluster.link_options());
    // Armed while some party has not authenticated yet; re-armed when a
    // party's link fails and it may retry.
    let mut deadline = Some(tokio::time::Instant::now() + lo.connect_timeout);
    let claimed: Arc<Mutex<HashSet<PartyId>>> = Arc::default();
    let security = Arc::new(security.clone());
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(None::<String>);
    let mut served = HashSet::new();
    let mut tasks = JoinSet::new();
    let mut last_error: Option<String> = None;
    while served.len() < n {
        tokio::select! {
            acc = listener.accept() => {
                let Ok((tcp, _)) = acc else { continue };
                let (lo, security, claimed) = (lo.clone(), security.clone(), claimed.clone());
                let (serve, abort) = (serve.clone(), abort_rx.clone());
                tasks.spawn(async move {
                    let claim = {
                        let (claimed, n) = (claimed.clone(), lo.n_parties);
                        move |p: PartyId| p < n && claimed.lock().map(|mut c| c.insert(p)).unwrap_or(false)
                    };
                    let link = match accept(tcp, DEALER, &security, &lo, claim).await {
                        Ok(link) => link,
                        Err(e) => return LinkEnd::Unauthenticated(e),
                    };
                    let peer = link.peer;
                    match serve(link.stream, peer, lo, abort).await {
                        Ok(()) => LinkEnd::Served(peer),
                        Err(e) => {
                            if let Ok(mut c) = claimed.lock() {
                                c.remove(&peer); // let the party retry
                            }
                            LinkEnd::Failed(e)
                        }
                    }
                });
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok(LinkEnd::Served(peer)) => {
                        served.insert(peer);
                    }
                    Ok(LinkEnd::Unauthenticated(e)) => {
                        tracing::warn!("dealer: refused a connection: {e}");
                    }
                    Ok(LinkEnd::Failed(e)) if !retry => {
                        abort_links(&abort_tx, &mut tasks, e.to_string()).await;
                        return Err(Error::Transport(e));
                    }
                    Ok(LinkEnd::Failed(e)) => {
                        tracing::warn!("dealer: {e}");
                        last_error = Some(e.to_string());
                        deadline = Some(tokio::time::Instant::now() + lo.connect_timeout);
                    }
                    Err(e) => last_error = Some(format!("task failed: {e}")),
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                let claimed = claimed.lock().map(|c| c.clone()).unwrap_or_default();
                if (0..n).all(|p| claimed.contains(&p) || served.contains(&p)) {
                    // Everyone authenticated in time: their links may last the whole job.
                    deadline = None;
                    continue;
                }
                let missing = party_list((0..n).filter(|p| !served.contains(p) && !claimed.contains(p)));
                let why = format!("{missing} did not connect to the dealer in time");
                abort_links(&abort_tx, &mut tasks, why).await;
                return Err(Error::Transport(TransportError::Connect {
                    with: missing,
                    addr: addr.to_string(),
                    detail: format!(
                        "were not served by the dealer within {} ms (never connected, or their links failed){}",
                        lo.connect_timeout.as_millis(),
                        last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
                    ),
                }));
            }
        }
    }
    Ok(())
}

/// Sends `reason` to every link being served (see [`AbortSignal`]) and
/// waits at most [`ABORT_GRACE`] for them to deliver it.
async fn abort_links<T: 'static>(
    abort: &tokio::sync::watch::Sender<Option<String>>,
    tasks: &mut JoinSet<T>,
    reason: String,
) {
    let _ = abort.send(Some(reason));
    let _ = tokio::time::timeout(ABORT_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// "party 2" or "parties 1, 2": how errors name several parties.
fn party_list(parties: impl Iterator<Item = PartyId>) -> String {
    let ids: Vec<String> = parties.map(|p| p.to_string()).collect();
    match ids.len() {
        1 => format!("party {}", ids[0]),
        _ => format!("parties {}", ids.join(", ")),
    }
}

async fn serve(
    mut s: Box<dyn spindle_transport::link::Stream>,
    peer: PartyId,
    store: &[u8],
    fingerprint: &str,
    lo: &LinkOptions,
) -> std::result::Result<(), TransportError> {
    check_fingerprint(&mut s, peer, fingerprint, "the dealer prepared", lo).await?;
    let chunk = lo.max_frame.clamp(8, STORE_CHUNK);
    let len = (store.len() as u64).to_le_bytes();
    for part in std::iter::once(&len[..]).chain(store.chunks(chunk)) {
        send_data(&mut s, peer, lo, part).await?;
    }
    // The party may hang up as soon as it has its store: closing is best-effort.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = write_frame(&mut s, 0, FrameKind::Close, &[]).await;
        let _ = s.shutdown().await;
    })
    .await;
    Ok(())
}

/// Reads a party's job fingerprint (within the receive timeout) and, when
/// it is not `fingerprint`, tells the party why (`what` names the dealer's
/// side, e.g. "the dealer prepared") and drops the link.
///
/// Errors: [`TransportError::Timeout`], link errors, and
/// [`TransportError::Handshake`] for a job mismatch.
pub(super) async fn check_fingerprint(
    s: &mut Box<dyn spindle_transport::link::Stream>,
    peer: PartyId,
    fingerprint: &str,
    what: &str,
    lo: &LinkOptions,
) -> std::result::Result<(), TransportError> {
    let f = tokio::time::timeout(lo.recv_timeout, read_frame(s, 4096))
        .await
        .map_err(|_| TransportError::Timeout {
            peer,
            round: 0,
            millis: lo.recv_timeout.as_millis() as u64,
        })?
        .map_err(|e| read_error(peer, e))?;
    let theirs = String::from_utf8_lossy(&f.payload);
    if f.header.kind == FrameKind::Data && theirs == fingerprint {
        return Ok(());
    }
    let why = format!("job mismatch: {what} {fingerprint:?}, party {peer} runs {theirs:?}");
    let _ = write_frame(s, 0, FrameKind::Abort, why.as_bytes()).await;
    let _ = s.shutdown().await;
    Err(TransportError::Handshake {
        with: format!("party {peer}"),
        detail: why,
    })
}

pub(super) fn read_error(peer: PartyId, e: ReadError) -> TransportError {
    match e {
        ReadError::Eof => TransportError::PeerClosed { peer },
        ReadError::Io(e) => TransportError::Link {
            peer,
            detail: e.to_string(),
        },
        ReadError::Frame(e) => TransportError::BadFrame {
            peer,
            detail: e.to_string(),
        },
    }
}

/// Sends one data frame to party `peer` and flushes it, within the link's
/// write timeout (the dealer's replies and store chunks).
///
/// Errors: [`TransportError::Link`] naming the party when the write fails
/// or stalls.
pub(super) async fn send_data(
    s: &mut Box<dyn spindle_transport::link::Stream>,
    peer: PartyId,
    lo: &LinkOptions,
    payload: &[u8],
) -> std::result::Result<(), TransportError> {
    tokio::time::timeout(lo.write_timeout, async {
        write_frame(s, 0, FrameKind::Data, payload).await?;
        s.flush().await
    })
    .await
    .map_err(|_| TransportError::Link {
        peer,
        detail: "sending to the party stalled".into(),
    })?
    .map_err(|e| TransportError::Link {
        peer,
        detail: e.to_string(),
    })
}

/// The party side: connects to the dealer (retrying until it listens),
/// sends the job fingerprint and receives this party's store (its length,
/// then chunks; see [`STORE_CHUNK`]). Returns the store and its size.
///
/// Errors: [`Error::Transport`] naming the dealer (unreachable, refused,
/// job mismatch, timeout, a store cut short or longer than announced);
/// [`Error::Format`] for a store that does not decode.
pub async fn fetch_store(
    cluster: &ClusterConfig,
    me: PartyId,
    security: &Security,
    fingerprint: &str,
) -> Result<(PartyStore, usize)> {
    let d = cluster
        .dealer
        .as_ref()
        .ok_or_else(|| Error::InvalidParty("the cluster config has no [dealer] entry".into()))?;
    let lo = cluster.link_options();
    let deadline = tokio::time::Instant::now() + lo.connect_timeout;
    let link = dial(me, DEALER, &d.addr(), security, &lo, deadline).await?;
    let mut s = link.stream;
    let dealer_err = |detail: String| {
        Error::Transport(TransportError::Handshake {
            with: "the dealer".into(),
            detail,
        })
    };
    write_frame(&mut s, 0, FrameKind::Data, fingerprint.as_bytes())
        .await
        .map_err(|e| dealer_err(format!("sending the job fingerprint: {e}")))?;
    s.flush()
        .await
        .map_err(|e| dealer_err(format!("sending the job fingerprint: {e}")))?;
    // One data frame of the store, or what went wrong (for dealer_err).
    let mut next = async || -> std::result::Result<bytes::Bytes, String> {
        let wait = dealer_wait(&lo);
        let f = tokio::time::timeout(wait, read_frame(&mut s, lo.max_frame))
            .await
            .map_err(|_| format!("no store within {} ms", wait.as_millis()))?
            .map_err(|e| format!("receiving the store: {}", read_error(me, e)))?;
        match f.header.kind {
            FrameKind::Data => Ok(f.payload),
            FrameKind::Abort => Err(format!("refused: {}", String::from_utf8_lossy(&f.payload))),
            FrameKind::Close => Err("closed without sending a store".into()),
        }
    };
    let head = next().await.map_err(dealer_err)?;
    let total = <[u8; 8]>::try_from(&head[..])
        .map(u64::from_le_bytes)
        .map_err(|_| dealer_err(format!("a store header of {} bytes, not 8", head.len())))?;
    let total = usize::try_from(total)
        .map_err(|_| dealer_err(format!("a store of {total} bytes announced")))?;
    // Grown as chunks arrive: the header alone reserves little.
    let mut bytes = Vec::with_capacity(total.min(STORE_CHUNK));
    while bytes.len() < total {
        let part = next().await.map_err(|e| {
            dealer_err(format!(
                "{e} (after {} of {total} store bytes)",
                bytes.len()
            ))
        })?;
        if bytes.len() + part.len() > total {
            return Err(dealer_err(format!(
                "the store is longer than the {total} bytes announced"
            )));
        }
        bytes.extend_from_slice(&part);
    }
    let store = PartyStore::from_bytes(&bytes, "dealer message")?;
    Ok((store, total))
}
