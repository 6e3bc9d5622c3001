//! TCP transport on tokio: one connection per pair of parties (the lower
//! id connects), mutual TLS 1.3 unless plaintext is asked for, a reader and
//! a writer task per peer, length-prefixed frames tagged with the round.
//!
//! Failure semantics: a peer that dies, closes, stalls past the timeout or
//! sends a malformed, oversized or out-of-order frame fails every pending
//! and later operation on that link with an error naming it. Nothing waits
//! without a deadline.

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::frame::{read_frame, write_frame, write_frame_parts, FrameKind, ReadError, RoundOrder};
use crate::inbox::{Inbox, Incoming};
use crate::link::{accept, dial, Link, LinkOptions, Security, Stream};
use crate::{peer_name, LinkStats, PartyId, PhaseStats, StatsRecorder, Transport, TransportError};

enum Outgoing {
    /// One message: the concatenation of the parts.
    Data(u64, Vec<Bytes>),
    Close,
    Abort(String),
}

struct PeerLink {
    tx: mpsc::UnboundedSender<Outgoing>,
    inbox: Inbox,
    /// Set by the reader or writer task when the link fails.
    failed: Arc<OnceLock<TransportError>>,
    reader: JoinHandle<()>,
    writer: StdMutex<Option<JoinHandle<()>>>,
    /// Whether a message from this peer has been received yet.
    heard: std::sync::atomic::AtomicBool,
}

/// A party's endpoint of a TCP (optionally TLS) mesh. Build it with
/// [`TcpTransport::connect`]; call [`Transport::shutdown`] at the end so
/// queued sends are flushed before the process exits.
pub struct TcpTransport {
    party: PartyId,
    n: usize,
    links: Vec<Option<PeerLink>>,
    recv_timeout: Duration,
    /// The wait for a peer's first message: the receive timeout plus the
    /// connect timeout, since a peer that has sent nothing yet may still
    /// be dialing the dealer for its preprocessing (and would report the
    /// dealer's death to its peers only when that dial gives up).
    first_recv_timeout: Duration,
    stats: StatsRecorder,
    rejecter: JoinHandle<()>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("party", &self.party)
            .field("n", &self.n)
            .finish()
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.rejecter.abort();
        for l in self.links.iter().flatten() {
            l.reader.abort();
        }
    }
}

impl TcpTransport {
    /// Connects party `me` to every other party: dials the parties above
    /// `me` at `addrs[peer]` ("host:port") with retries and accepts the
    /// parties below on `listener` (bound by the caller, so tests can use
    /// port 0), all within `opts.connect_timeout`. After start-up the
    /// listener keeps answering late or foreign connections with a refusal.
    ///
    /// Errors: [`TransportError::Config`] for bad options or `addrs` of the
    /// wrong length; [`TransportError::Connect`] when a peer cannot be
    /// reached or never connects; [`TransportError::Handshake`] when a peer
    /// refuses this party (session id, version, certificate).
    pub async fn connect(
        me: PartyId,
        addrs: &[String],
        listener: TcpListener,
        security: Security,
        opts: LinkOptions,
    ) -> Result<TcpTransport, TransportError> {
        let n = opts.n_parties;
        let (links, rejecter) = connect_mesh(me, addrs, listener, security, &opts).await?;
        let mut peers: Vec<Option<PeerLink>> = (0..n).map(|_| None).collect();
        for link in links {
            let peer = link.peer;
            peers[peer] = Some(spawn_link(link, &opts));
        }
        tracing::info!("party {me}: connected to all {} peers", n - 1);
        Ok(TcpTransport {
            party: me,
            n,
            links: peers,
            recv_timeout: opts.recv_timeout,
            first_recv_timeout: opts.recv_timeout.saturating_add(opts.connect_timeout),
            stats: StatsRecorder::default(),
            rejecter,
        })
    }

    fn link(&self, peer: PartyId) -> Result<&PeerLink, TransportError> {
        self.links
            .get(peer)
            .and_then(|l| l.as_ref())
            .ok_or(TransportError::NoSuchPeer {
                peer,
                me: self.party,
                n: self.n,
            })
    }

    async fn finish(&self, make: impl Fn() -> Outgoing, wait: Duration) {
        let mut writers = Vec::new();
        for l in self.links.iter().flatten() {
            let _ = l.tx.send(make());
            if let Some(w) = l.writer.lock().ok().and_then(|mut w| w.take()) {
                writers.push(w);
            }
        }
        let all = futures_join_all(writers);
        let _ = tokio::time::timeout(wait, all).await;
    }
}

/// Connects `me` to every other member of the mesh exactly as
/// [`TcpTransport::connect`] does (dial the parties above, accept the
/// parties below, handshake and mutual TLS on each link) and returns the
/// established links, one per peer in no particular order, plus the task
/// that keeps refusing late connections on `listener`. The RDMA transport
/// uses these links as its bootstrap connections.
///
/// Errors: as [`TcpTransport::connect`], including the checks of `opts`
/// and of the length of `addrs`.
pub(crate) async fn connect_mesh(
    me: PartyId,
    addrs: &[String],
    listener: TcpListener,
    security: Security,
    opts: &LinkOptions,
) -> Result<(Vec<Link>, JoinHandle<()>), TransportError> {
    opts.validate()?;
    let n = opts.n_parties;
    if addrs.len() != n || me >= n {
        return Err(TransportError::Config(format!(
            "party {me} with {} addresses for {n} parties",
            addrs.len()
        )));
    }
    if matches!(security, Security::InsecurePlaintext) {
        tracing::warn!(
            "party {me}: plain TCP without TLS (--insecure-plaintext): links are neither \
             authenticated nor encrypted; use only on a trusted network"
        );
    }
    let deadline = Instant::now() + opts.connect_timeout;
    let opts = Arc::new(opts.clone());
    let security = Arc::new(security);

    // Dial the parties above, accept the parties below.
    let mut dials = JoinSet::new();
    for (peer, addr) in addrs.iter().enumerate().skip(me + 1) {
        let (addr, security, opts) = (addr.clone(), security.clone(), opts.clone());
        dials.spawn(async move { dial(me, peer, &addr, &security, &opts, deadline).await });
    }
    let claimed: Arc<StdMutex<HashSet<PartyId>>> = Arc::default();
    let accepts = accept_lower(me, &listener, &security, &opts, deadline, claimed.clone());
    let dial_all = async {
        let mut links = Vec::new();
        while let Some(r) = dials.join_next().await {
            let link =
                r.map_err(|e| TransportError::Config(format!("dial task failed: {e}")))??;
            links.push(link);
        }
        Ok::<_, TransportError>(links)
    };
    let (lower, higher) = tokio::try_join!(accepts, dial_all)?;
    let rejecter = tokio::spawn(async move { reject_late(me, listener, security, opts).await });
    Ok((lower.into_iter().chain(higher).collect(), rejecter))
}

async fn futures_join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// Accepts connections until every party below `me` has connected.
async fn accept_lower(
    me: PartyId,
    listener: &TcpListener,
    security: &Arc<Security>,
    opts: &Arc<LinkOptions>,
    deadline: Instant,
    claimed: Arc<StdMutex<HashSet<PartyId>>>,
) -> Result<Vec<Link>, TransportError> {
    let mut links = Vec::new();
    let mut pending = JoinSet::new();
    let mut last_refusal: Option<String> = None;
    while links.len() < me {
        tokio::select! {
            acc = listener.accept() => {
                let Ok((tcp, _)) = acc else { continue };
                let (security, opts, claimed) = (security.clone(), opts.clone(), claimed.clone());
                pending.spawn(async move {
                    accept(tcp, me, &security, &opts, move |p| {
                        p < me && claimed.lock().map(|mut c| c.insert(p)).unwrap_or(false)
                    }).await
                });
            }
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                match done {
                    Ok(Ok(link)) => links.push(link),
                    Ok(Err(e)) => {
                        tracing::warn!("party {me}: {e}");
                        last_refusal = Some(e.to_string());
                    }
                    Err(e) => last_refusal = Some(format!("handshake task failed: {e}")),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let have: HashSet<PartyId> = links.iter().map(|l| l.peer).collect();
                let missing: Vec<String> = (0..me).filter(|p| !have.contains(p)).map(peer_name).collect();
                return Err(TransportError::Connect {
                    with: missing.join(", "),
                    addr: listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                    detail: format!(
                        "never connected within {} ms{}",
                        opts.connect_timeout.as_millis(),
                        last_refusal.map(|r| format!(" (last refused connection: {r})")).unwrap_or_default()
                    ),
                });
            }
        }
    }
    Ok(links)
}

/// After start-up: answer every new connection with a refusal and a reason
/// (wrong session, or the session is already running).
async fn reject_late(
    me: PartyId,
    listener: TcpListener,
    security: Arc<Security>,
    opts: Arc<LinkOptions>,
) {
    let mut pending = JoinSet::new();
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let Ok((tcp, _)) = acc else { continue };
                if pending.len() >= 16 {
                    continue; // drop: bounded work for unsolicited connections
                }
                let (security, opts) = (security.clone(), opts.clone());
                pending.spawn(async move {
                    if let Err(e) = accept(tcp, me, &security, &opts, |_| false).await {
                        tracing::warn!("party {me}: {e}");
                    }
                });
            }
            Some(_) = pending.join_next(), if !pending.is_empty() => {}
        }
    }
}

fn spawn_link(link: Link, opts: &LinkOptions) -> PeerLink {
    let peer = link.peer;
    let (r, w) = tokio::io::split(link.stream);
    let failed: Arc<OnceLock<TransportError>> = Arc::default();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(reader_task(peer, r, opts.max_frame, in_tx, failed.clone()));
    let writer = tokio::spawn(writer_task(
        peer,
        w,
        out_rx,
        opts.write_timeout,
        failed.clone(),
    ));
    PeerLink {
        tx: out_tx,
        inbox: Inbox::new(in_rx),
        failed,
        reader,
        writer: StdMutex::new(Some(writer)),
        heard: Default::default(),
    }
}

async fn reader_task(
    peer: PartyId,
    mut r: ReadHalf<Box<dyn Stream>>,
    max_frame: usize,
    tx: mpsc::UnboundedSender<Incoming>,
    failed: Arc<OnceLock<TransportError>>,
) {
    let mut order = RoundOrder::default();
    let err = loop {
        let frame = match read_frame(&mut r, max_frame).await {
            Ok(f) => f,
            Err(ReadError::Eof) => break TransportError::PeerClosed { peer },
            // TLS reports a socket closed without close_notify (a killed
            // process) as an unexpected EOF: the peer is gone.
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break TransportError::PeerClosed { peer }
            }
            Err(ReadError::Io(e)) => {
                break TransportError::Link {
                    peer,
                    detail: format!("read failed: {e}"),
                }
            }
            Err(ReadError::Frame(e)) => {
                break TransportError::BadFrame {
                    peer,
                    detail: e.to_string(),
                }
            }
        };
        match frame.header.kind {
            FrameKind::Data => {
                if let Err(e) = order.check(frame.header.round) {
                    break TransportError::BadFrame {
                        peer,
                        detail: e.to_string(),
                    };
                }
                if tx.send(Ok((frame.header.round, frame.payload))).is_err() {
                    return; // transport dropped
                }
            }
            FrameKind::Close => break TransportError::PeerClosed { peer },
            FrameKind::Abort => {
                break TransportError::Aborted {
                    peer,
                    reason: String::from_utf8_lossy(&frame.payload).into_owned(),
                }
            }
        }
    };
    if !matches!(err, TransportError::PeerClosed { .. }) {
        tracing::warn!("{}", err);
    }
    let _ = failed.set(err.clone());
    let _ = tx.send(Err(err));
}

async fn writer_task(
    peer: PartyId,
    w: WriteHalf<Box<dyn Stream>>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    write_timeout: Duration,
    failed: Arc<OnceLock<TransportError>>,
) {
    let mut w = BufWriter::with_capacity(64 << 10, w);
    while let Some(msg) = rx.recv().await {
        let last = !matches!(msg, Outgoing::Data(..));
        let io = async {
            match &msg {
                Outgoing::Data(round, parts) => {
                    write_frame_parts(&mut w, *round, FrameKind::Data, parts).await?
                }
                Outgoing::Close => write_frame(&mut w, 0, FrameKind::Close, &[]).await?,
                Outgoing::Abort(reason) => {
                    let mut end = reason.len().min(crate::frame::MAX_ABORT_REASON);
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    write_frame(&mut w, 0, FrameKind::Abort, &reason.as_bytes()[..end]).await?
                }
            }
            if last || rx.is_empty() {
                w.flush().await?;
            }
            if last {
                w.shutdown().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let res = tokio::time::timeout(write_timeout, io).await;
        let detail = match res {
            Ok(Ok(())) if last => return,
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("write failed: {e}"),
            Err(_) => format!(
                "write stalled for {} ms (peer not reading)",
                write_timeout.as_millis()
            ),
        };
        let err = TransportError::Link { peer, detail };
        if !last {
            tracing::warn!("{err}");
        }
        let _ = failed.set(err);
        return;
    }
    // Transport dropped without shutdown: what was queued has been written.
    let _ = w.flush().await;
}

#[async_trait]
impl Transport for TcpTransport {
    fn party(&self) -> PartyId {
        self.party
    }

    fn n_parties(&self) -> usize {
        self.n
    }

    fn send(&self, to: PartyId, round: u64, payload: Bytes) -> Result<(), TransportError> {
        self.send_parts(to, round, vec![payload])
    }

    fn send_parts(&self, to: PartyId, round: u64, parts: Vec<Bytes>) -> Result<(), TransportError> {
        let link = self.link(to)?;
        if let Some(e) = link.failed.get() {
            return Err(e.clone());
        }
        let len = parts.iter().map(Bytes::len).sum();
        link.tx
            .send(Outgoing::Data(round, parts))
            .map_err(|_| TransportError::PeerClosed { peer: to })?;
        self.stats.record_send(round, len);
        Ok(())
    }

    async fn recv(&self, from: PartyId, round: u64) -> Result<Bytes, TransportError> {
        let link = self.link(from)?;
        let heard = link.heard.load(std::sync::atomic::Ordering::Relaxed);
        let timeout = match heard {
            true => self.recv_timeout,
            false => self.first_recv_timeout,
        };
        let msg = link.inbox.take(from, round, timeout).await?;
        link.heard.store(true, std::sync::atomic::Ordering::Relaxed);
        self.stats.record_recv(round, msg.len());
        Ok(msg)
    }

    fn stats(&self) -> LinkStats {
        self.stats.snapshot()
    }

    fn begin_phase(&self, label: &str) {
        self.stats.begin_phase(label);
    }

    fn phase_stats(&self) -> Vec<PhaseStats> {
        self.stats.phases()
    }

    async fn shutdown(&self) -> Result<(), TransportError> {
        self.finish(|| Outgoing::Close, self.recv_timeout).await;
        Ok(())
    }

    async fn abort(&self, reason: &str) {
        self.finish(
            || Outgoing::Abort(reason.to_string()),
            Duration::from_secs(2),
        )
        .await;
    }
}
