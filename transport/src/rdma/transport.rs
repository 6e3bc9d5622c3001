//! [`RdmaTransport`]: start-up (device, TCP bootstrap mesh, verbs
//! resources, endpoint exchange, queue pairs to RTS) and the
//! [`Transport`] implementation on top of the completion thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sideway::ibverbs::completion::BasicCompletionQueue;
use sideway::ibverbs::protection_domain::ProtectionDomain;
use sideway::ibverbs::queue_pair::{BasicQueuePair, QueuePair};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::buffers::{Direction, RegisteredBuffers, WrId};
use super::chunk::OutFrame;
use super::device::{self, OpenDevice};
use super::endpoint::{self, Endpoint, EndpointError, ENDPOINT_LEN, READY};
use super::poller::{self, Command, PeerChannel};
use super::{error_chain, queue_pair, RdmaDevice, RdmaOptions, RdmaUnavailable};
use crate::frame::{read_frame, write_frame, FrameKind, ReadError, MAX_ABORT_REASON};
use crate::inbox::Inbox;
use crate::link::{Link, LinkOptions, Security, Stream};
use crate::tcp::connect_mesh;
use crate::{peer_name, LinkStats, PartyId, PhaseStats, StatsRecorder, Transport, TransportError};

/// Added to exchange errors: the usual cause of a peer that does not
/// answer with an endpoint.
const MISMATCH_HINT: &str =
    " (is that party running the TCP transport? All parties must use the same transport)";

struct PeerHandle {
    inbox: Inbox,
    failed: Arc<OnceLock<TransportError>>,
    /// Write half of the bootstrap link, for the close or abort frame.
    control: Mutex<Option<WriteHalf<Box<dyn Stream>>>>,
    /// Reads the bootstrap link until it ends.
    watcher: JoinHandle<()>,
}

/// A party's endpoint of an RDMA mesh: one RC queue pair per peer, frames
/// in registered buffers, a completion thread. Build it with
/// [`RdmaTransport::connect`]; call [`Transport::shutdown`] at the end.
///
/// Never run on RDMA hardware (see the [module docs](super)).
pub struct RdmaTransport {
    party: PartyId,
    n: usize,
    peers: Vec<Option<PeerHandle>>,
    cmd: std_mpsc::Sender<Command>,
    closing: AtomicBool,
    recv_timeout: Duration,
    stats: StatsRecorder,
    rejecter: JoinHandle<()>,
    device: RdmaDevice,
    /// Resolves when the completion thread has ended.
    poller_exited: Option<oneshot::Receiver<()>>,
}

impl std::fmt::Debug for RdmaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdmaTransport")
            .field("party", &self.party)
            .field("n", &self.n)
            .field("device", &self.device.name)
            .finish()
    }
}

impl Drop for RdmaTransport {
    fn drop(&mut self) {
        // The completion thread sends what is queued (at most 2 s), then
        // frees the queue pairs and buffers. The bootstrap links close only
        // after that, so that their end does not overtake those chunks and
        // fail the peers early (after `shutdown` they are closed already).
        let _ = self.cmd.send(Command::Stop);
        self.rejecter.abort();
        let mut writers = Vec::new();
        for p in self.peers.iter_mut().flatten() {
            p.watcher.abort();
            writers.extend(p.control.get_mut().take());
        }
        if let (Some(exited), Ok(rt)) = (
            self.poller_exited.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            if !writers.is_empty() {
                rt.spawn(async move {
                    let _ = exited.await;
                    drop(writers);
                });
            }
        }
    }
}

fn handshake(peer: PartyId, detail: impl Into<String>) -> TransportError {
    TransportError::Handshake {
        with: peer_name(peer),
        detail: detail.into(),
    }
}

fn task_failed(e: tokio::task::JoinError) -> TransportError {
    TransportError::Config(format!("RDMA start-up task failed: {e}"))
}

/// Runs blocking verbs calls off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TransportError> + Send + 'static,
) -> Result<T, TransportError> {
    tokio::task::spawn_blocking(f).await.map_err(task_failed)?
}

/// A queue pair in INIT with its receive buffers posted, before the
/// exchange. Field order: the queue pair is destroyed before its buffers.
struct PendingQp {
    peer: PartyId,
    qp: BasicQueuePair,
    bufs: RegisteredBuffers,
    local: Endpoint,
}

/// The verbs objects of a transport during start-up.
struct Resources {
    qps: Vec<PendingQp>,
    cq: Arc<BasicCompletionQueue>,
    _pd: Arc<ProtectionDomain>,
}

impl Resources {
    /// Protection domain, completion queue, and for each of `peers` a
    /// buffer pool and an RC queue pair in INIT with every receive posted.
    fn create(
        dev: &OpenDevice,
        peers: &[PartyId],
        o: &RdmaOptions,
    ) -> Result<Resources, TransportError> {
        let unusable = |what: String| TransportError::from(RdmaUnavailable::Unusable(what));
        let pd = dev
            .ctx
            .alloc_pd()
            .map_err(|e| unusable(format!("protection domain: {}", error_chain(&e))))?;
        let cqe = peers.len() * (o.send_slots + o.recv_slots) + 1;
        let cqe = u32::try_from(cqe).map_err(|_| unusable("completion queue too large".into()))?;
        let cq = dev
            .ctx
            .create_cq_builder()
            .setup_cqe(cqe)
            .build()
            .map_err(|e| {
                unusable(format!(
                    "completion queue of {cqe} entries: {}",
                    error_chain(&e)
                ))
            })?;
        let mut qps = Vec::with_capacity(peers.len());
        for &peer in peers {
            let err = |d: String| handshake(peer, format!("RDMA set-up: {d}"));
            let bufs = RegisteredBuffers::new(&pd, o.slot_bytes, o.send_slots, o.recv_slots)
                .map_err(err)?;
            let mut qp = queue_pair::create(&pd, &cq, o.send_slots as u32, o.recv_slots as u32)
                .map_err(err)?;
            queue_pair::to_init(&mut qp, o.port).map_err(err)?;
            for slot in 0..o.recv_slots as u32 {
                let id = WrId {
                    peer,
                    dir: Direction::Recv,
                    slot,
                }
                .encode();
                let (Some(id), Some(addr)) = (id, bufs.addr(Direction::Recv, slot)) else {
                    return Err(err(format!(
                        "receive buffer {slot} of peer {peer} has no id"
                    )));
                };
                queue_pair::post_recv(&mut qp, id, bufs.lkey(), addr, o.slot_bytes as u32)
                    .map_err(err)?;
            }
            let local = Endpoint {
                lid: dev.info.lid,
                gid: dev.info.gid,
                qpn: qp.qp_number(),
                psn: queue_pair::random_psn(),
                slot_bytes: o.slot_bytes as u32,
                recv_slots: o.recv_slots as u32,
                mtu: dev.mtu_code,
            };
            qps.push(PendingQp {
                peer,
                qp,
                bufs,
                local,
            });
        }
        Ok(Resources { qps, cq, _pd: pd })
    }
}

/// Sends this side's endpoint on the bootstrap link and reads the peer's,
/// within `timeout`.
async fn exchange(
    mut link: Link,
    local: Endpoint,
    timeout: Duration,
) -> Result<(Link, Endpoint), TransportError> {
    let peer = link.peer;
    let io = async {
        link.stream.write_all(&local.encode()).await?;
        link.stream.flush().await?;
        let mut b = [0u8; ENDPOINT_LEN];
        link.stream.read_exact(&mut b).await?;
        Ok::<_, std::io::Error>(b)
    };
    let bytes = match tokio::time::timeout(timeout, io).await {
        Err(_) => {
            return Err(handshake(
                peer,
                format!(
                    "no RDMA endpoint within {} ms{MISMATCH_HINT}",
                    timeout.as_millis()
                ),
            ))
        }
        Ok(Err(e)) => {
            return Err(handshake(
                peer,
                format!("RDMA endpoint exchange failed: {e}{MISMATCH_HINT}"),
            ))
        }
        Ok(Ok(b)) => b,
    };
    match Endpoint::decode(&bytes) {
        Ok(remote) => Ok((link, remote)),
        Err(e @ EndpointError::Magic(_)) => Err(handshake(peer, format!("{e}{MISMATCH_HINT}"))),
        Err(e) => Err(handshake(peer, e.to_string())),
    }
}

/// Both sides' queue pairs are in RTS: say so and wait for the peer's word,
/// so that no SEND reaches a queue pair that cannot receive yet.
async fn ready(mut link: Link, timeout: Duration) -> Result<Link, TransportError> {
    let peer = link.peer;
    let io = async {
        link.stream.write_all(&READY).await?;
        link.stream.flush().await?;
        let mut b = [0u8; READY.len()];
        link.stream.read_exact(&mut b).await?;
        Ok::<_, std::io::Error>(b)
    };
    match tokio::time::timeout(timeout, io).await {
        Ok(Ok(b)) if b == READY => Ok(link),
        Ok(Ok(b)) => Err(handshake(peer, format!("bad RDMA ready message {b:02x?}"))),
        Ok(Err(e)) => Err(handshake(peer, format!("RDMA ready exchange failed: {e}"))),
        Err(_) => Err(handshake(
            peer,
            format!("peer not ready within {} ms", timeout.as_millis()),
        )),
    }
}

/// Reads the bootstrap link of `peer` until it ends and reports how.
async fn watch(peer: PartyId, mut r: ReadHalf<Box<dyn Stream>>, cmd: std_mpsc::Sender<Command>) {
    // Only close and abort frames are expected: a data frame with a
    // payload is refused by the maximum of 0 bytes.
    let error = match read_frame(&mut r, 0).await {
        Ok(f) => match f.header.kind {
            FrameKind::Close => TransportError::PeerClosed { peer },
            FrameKind::Abort => TransportError::Aborted {
                peer,
                reason: String::from_utf8_lossy(&f.payload).into_owned(),
            },
            FrameKind::Data => TransportError::BadFrame {
                peer,
                detail: "data frame on the RDMA bootstrap link".into(),
            },
        },
        Err(ReadError::Eof) => TransportError::PeerClosed { peer },
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TransportError::PeerClosed { peer }
        }
        Err(ReadError::Io(e)) => TransportError::Link {
            peer,
            detail: format!("bootstrap link failed: {e}"),
        },
        Err(ReadError::Frame(e)) => TransportError::BadFrame {
            peer,
            detail: format!("on the RDMA bootstrap link: {e}"),
        },
    };
    let _ = cmd.send(Command::BootstrapLost { peer, error });
}

/// What start-up hands to the transport.
struct Established {
    peers: Vec<Option<PeerHandle>>,
    cmd: std_mpsc::Sender<Command>,
    device: RdmaDevice,
    poller_exited: oneshot::Receiver<()>,
}

/// Collects the results of start-up tasks, failing on the first error
/// (dropping the set aborts the others).
async fn join_all<T: 'static>(
    mut set: JoinSet<Result<T, TransportError>>,
) -> Result<Vec<T>, TransportError> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(task_failed)??);
    }
    Ok(out)
}

impl RdmaTransport {
    /// Connects party `me` to every other party over RDMA. First opens the
    /// RDMA device `rdma` names (a host without one fails here, before any
    /// connection); then connects the TCP mesh exactly as
    /// [`crate::TcpTransport::connect`] does (`addrs`, `listener`,
    /// `security` and `opts` mean the same, and the same handshake and
    /// mutual TLS apply) and over each link exchanges queue-pair endpoints
    /// and moves one RC queue pair per peer to ready-to-send. The TCP links
    /// stay open to signal close, abort and a vanished peer.
    ///
    /// Every party must use this transport (a peer on TCP makes start-up
    /// fail with a handshake error saying so).
    ///
    /// Errors: [`TransportError::Config`] for bad options;
    /// [`TransportError::Unsupported`] "no RDMA device found: ..." when the
    /// host has none (listing devices fails with errno 38 here), "RDMA
    /// device unusable: ..." when it cannot be opened or used, or "built
    /// without the rdma feature" in builds without it; as
    /// [`crate::TcpTransport::connect`] for the bootstrap mesh;
    /// [`TransportError::Handshake`] naming the peer when the endpoint
    /// exchange or a queue-pair transition fails.
    pub async fn connect(
        me: PartyId,
        addrs: &[String],
        listener: TcpListener,
        security: Security,
        opts: LinkOptions,
        rdma: RdmaOptions,
    ) -> Result<RdmaTransport, TransportError> {
        rdma.validate()?;
        opts.validate()?;
        let dev = {
            let rdma = rdma.clone();
            blocking(move || device::open(&rdma).map_err(TransportError::from)).await?
        };
        tracing::info!(
            "party {me}: RDMA device {} port {} (LID {}, MTU {} B)",
            dev.info.name,
            dev.info.port,
            dev.info.lid,
            dev.info.mtu_bytes
        );
        if matches!(security, Security::Tls(_)) {
            tracing::warn!(
                "party {me}: RDMA frames are neither encrypted nor authenticated: TLS protects \
                 only the bootstrap links; use RDMA only on a trusted fabric"
            );
        }
        let (links, rejecter) = connect_mesh(me, addrs, listener, security, &opts).await?;
        match Self::establish(me, links, dev, &opts, rdma).await {
            Ok(Established {
                peers,
                cmd,
                device,
                poller_exited,
            }) => {
                tracing::info!(
                    "party {me}: RDMA queue pairs ready to all {} peers",
                    opts.n_parties - 1
                );
                Ok(RdmaTransport {
                    party: me,
                    n: opts.n_parties,
                    peers,
                    cmd,
                    closing: AtomicBool::new(false),
                    recv_timeout: opts.recv_timeout,
                    stats: StatsRecorder::default(),
                    rejecter,
                    device,
                    poller_exited: Some(poller_exited),
                })
            }
            Err(e) => {
                rejecter.abort();
                Err(e)
            }
        }
    }

    /// Steps 3 and 4 of the module docs on the bootstrap `links`.
    async fn establish(
        me: PartyId,
        links: Vec<Link>,
        dev: OpenDevice,
        opts: &LinkOptions,
        rdma: RdmaOptions,
    ) -> Result<Established, TransportError> {
        let n = opts.n_parties;
        let peers: Vec<PartyId> = links.iter().map(|l| l.peer).collect();
        let (res, dev) = {
            let rdma = rdma.clone();
            blocking(move || Resources::create(&dev, &peers, &rdma).map(|r| (r, dev))).await?
        };

        // Exchange endpoints with every peer at once.
        let mut set = JoinSet::new();
        for link in links {
            let Some(q) = res.qps.iter().find(|q| q.peer == link.peer) else {
                return Err(handshake(link.peer, "no queue pair for this peer"));
            };
            set.spawn(exchange(link, q.local, opts.handshake_timeout));
        }
        let exchanged = join_all(set).await?;

        // Queue pairs to RTR and RTS (blocking verbs calls).
        let remotes: Vec<(PartyId, Endpoint)> =
            exchanged.iter().map(|(l, e)| (l.peer, *e)).collect();
        let (port, gid_index, send_slots) = (rdma.port, rdma.gid_index as u8, rdma.send_slots);
        let (qps, routes, cq) = blocking(move || {
            let mut res = res;
            let mut routes = Vec::new();
            for q in res.qps.iter_mut() {
                let Some((_, remote)) = remotes.iter().find(|(p, _)| *p == q.peer) else {
                    return Err(handshake(q.peer, "no endpoint from this peer"));
                };
                let err = |d: String| handshake(q.peer, format!("RDMA connection: {d}"));
                let route = endpoint::route(&q.local, remote, send_slots).map_err(err)?;
                queue_pair::to_rtr(&mut q.qp, port, gid_index, &route, remote).map_err(err)?;
                queue_pair::to_rts(&mut q.qp, q.local.psn).map_err(err)?;
                routes.push(route);
            }
            Ok((res.qps, routes, res.cq))
        })
        .await?;

        let mut set = JoinSet::new();
        for (link, _) in exchanged {
            set.spawn(ready(link, opts.handshake_timeout));
        }
        let links = join_all(set).await?;

        // Hand the queue pairs to the completion thread. Each bootstrap
        // link is split: a watcher reads it, the handle keeps the write
        // half for close and abort.
        let mut halves: Vec<Option<_>> = (0..n).map(|_| None).collect();
        for link in links {
            if let Some(h) = halves.get_mut(link.peer) {
                *h = Some(tokio::io::split(link.stream));
            }
        }
        let mut channels = Vec::with_capacity(qps.len());
        let mut pending = Vec::with_capacity(qps.len());
        for (q, route) in qps.into_iter().zip(routes) {
            let Some((r, w)) = halves.get_mut(q.peer).and_then(Option::take) else {
                return Err(handshake(q.peer, "bootstrap link lost during start-up"));
            };
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            let failed: Arc<OnceLock<TransportError>> = Arc::default();
            channels.push(PeerChannel {
                peer: q.peer,
                qp: q.qp,
                bufs: q.bufs,
                route,
                inbox: in_tx,
                failed: failed.clone(),
                max_frame: opts.max_frame,
            });
            pending.push((q.peer, in_rx, failed, r, w));
        }
        let (cmd_tx, cmd_rx) = std_mpsc::channel();
        let (exited_tx, exited_rx) = oneshot::channel();
        poller::spawn(me, n, channels, cq, cmd_rx, exited_tx, &rdma).map_err(|e| {
            TransportError::Config(format!("cannot start the RDMA completion thread: {e}"))
        })?;
        let mut handles: Vec<Option<PeerHandle>> = (0..n).map(|_| None).collect();
        for (peer, in_rx, failed, r, w) in pending {
            if let Some(h) = handles.get_mut(peer) {
                *h = Some(PeerHandle {
                    inbox: Inbox::new(in_rx),
                    failed,
                    control: Mutex::new(Some(w)),
                    watcher: tokio::spawn(watch(peer, r, cmd_tx.clone())),
                });
            }
        }
        Ok(Established {
            peers: handles,
            cmd: cmd_tx,
            device: dev.info,
            poller_exited: exited_rx,
        })
    }

    /// The device and port this transport uses.
    pub fn device(&self) -> &RdmaDevice {
        &self.device
    }

    fn link(&self, peer: PartyId) -> Result<&PeerHandle, TransportError> {
        self.peers
            .get(peer)
            .and_then(|l| l.as_ref())
            .ok_or(TransportError::NoSuchPeer {
                peer,
                me: self.party,
                n: self.n,
            })
    }

    /// Queues a close or abort frame to every peer behind what is queued,
    /// waits until flushed (at most `wait`), then writes the same frame on
    /// the bootstrap links and closes them.
    async fn finish(&self, kind: FrameKind, reason: &str, wait: Duration) {
        self.closing.store(true, Ordering::Release);
        let deadline = Instant::now() + wait;
        let mut end = reason.len().min(MAX_ABORT_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = Bytes::copy_from_slice(&reason.as_bytes()[..end]);
        let mut flushed = Vec::new();
        for (peer, p) in self.peers.iter().enumerate() {
            if p.is_none() {
                continue;
            }
            let Ok(frame) = OutFrame::new(0, kind, reason.clone()) else {
                continue;
            };
            let (done, rx) = oneshot::channel();
            if self.cmd.send(Command::Finish { peer, frame, done }).is_ok() {
                flushed.push(rx);
            }
        }
        if kind == FrameKind::Abort {
            // The RDMA path may be what failed: say it on TCP first too.
            self.signal_bootstrap(kind, &reason, deadline).await;
        }
        for rx in flushed {
            let _ = tokio::time::timeout_at(deadline, rx).await;
        }
        self.signal_bootstrap(kind, &reason, deadline).await;
    }

    /// Writes a close or abort frame on every bootstrap link not yet closed
    /// and shuts its sending direction, by `deadline`.
    async fn signal_bootstrap(&self, kind: FrameKind, reason: &[u8], deadline: Instant) {
        let payload: &[u8] = if kind == FrameKind::Close {
            &[]
        } else {
            reason
        };
        for p in self.peers.iter().flatten() {
            let Some(mut w) = p.control.lock().await.take() else {
                continue;
            };
            let _ = tokio::time::timeout_at(deadline, async {
                write_frame(&mut w, 0, kind, payload).await?;
                w.flush().await?;
                w.shutdown().await
            })
            .await;
        }
    }
}

#[async_trait]
impl Transport for RdmaTransport {
    fn party(&self) -> PartyId {
        self.party
    }

    fn n_parties(&self) -> usize {
        self.n
    }

    fn send(&self, to: PartyId, round: u64, payload: Bytes) -> Result<(), TransportError> {
        let link = self.link(to)?;
        if let Some(e) = link.failed.get() {
            return Err(e.clone());
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(TransportError::PeerClosed { peer: to });
        }
        let len = payload.len();
        let frame = OutFrame::new(round, FrameKind::Data, payload)
            .map_err(|detail| TransportError::Link { peer: to, detail })?;
        self.cmd
            .send(Command::Send { peer: to, frame })
            .map_err(|_| TransportError::PeerClosed { peer: to })?;
        self.stats.record_send(round, len);
        Ok(())
    }

    async fn recv(&self, from: PartyId, round: u64) -> Result<Bytes, TransportError> {
        let link = self.link(from)?;
        let msg = link.inbox.take(from, round, self.recv_timeout).await?;
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
        self.finish(FrameKind::Close, "", self.recv_timeout).await;
        Ok(())
    }

    async fn abort(&self, reason: &str) {
        self.finish(FrameKind::Abort, reason, Duration::from_secs(2))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine has no RDMA device (listing fails with errno 38): the
    /// transport says so before dialling anyone.
    #[tokio::test]
    async fn connect_without_a_device_fails_before_connecting() {
        if super::super::probe(&RdmaOptions::default()).is_ok() {
            return; // a host with a device: not this test's subject
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let t0 = std::time::Instant::now();
        let e = RdmaTransport::connect(
            0,
            &["127.0.0.1:1".into(), "127.0.0.1:1".into()],
            listener,
            Security::InsecurePlaintext,
            LinkOptions::new("s", 2),
            RdmaOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, TransportError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("no RDMA device found"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    fn duplex_links(a: PartyId, b: PartyId) -> (Link, Link) {
        let (x, y) = tokio::io::duplex(4096);
        (
            Link {
                peer: b,
                stream: Box::new(x),
            },
            Link {
                peer: a,
                stream: Box::new(y),
            },
        )
    }

    fn endpoint(qpn: u32) -> Endpoint {
        Endpoint {
            lid: 3,
            gid: [1; 16],
            qpn,
            psn: 0x42,
            slot_bytes: 4096,
            recv_slots: 8,
            mtu: 3,
        }
    }

    /// The bootstrap exchange itself (no device): both sides get the
    /// other's endpoint, then the ready barrier passes.
    #[tokio::test]
    async fn endpoints_and_ready_cross_the_bootstrap_link() {
        let (l0, l1) = duplex_links(0, 1);
        let t = Duration::from_secs(5);
        let (a, b) = tokio::join!(exchange(l0, endpoint(10), t), exchange(l1, endpoint(11), t));
        let ((l0, from1), (l1, from0)) = (a.unwrap(), b.unwrap());
        assert_eq!((from1.qpn, from0.qpn), (11, 10));
        let (a, b) = tokio::join!(ready(l0, t), ready(l1, t));
        assert_eq!((a.unwrap().peer, b.unwrap().peer), (1, 0));
    }

    /// A peer running the TCP transport sends frames, not an endpoint (or
    /// nothing): a handshake error that says what is probably wrong.
    #[tokio::test]
    async fn a_tcp_peer_is_a_clear_start_up_error() {
        use crate::frame::{encode_header, Header};
        let (l0, mut l1) = duplex_links(0, 1);
        let mut frame = encode_header(&Header {
            round: 1,
            len: 40,
            kind: FrameKind::Data,
        })
        .to_vec();
        frame.extend_from_slice(&[0u8; 40]);
        l1.stream.write_all(&frame).await.unwrap();
        let e = exchange(l0, endpoint(10), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, TransportError::Handshake { .. }), "{e}");
        assert!(e.to_string().contains("TCP transport"), "{e}");

        let (l0, _l1) = duplex_links(0, 1);
        let e = exchange(l0, endpoint(10), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("no RDMA endpoint within 100 ms"),
            "{e}"
        );
    }

    /// How the end of a bootstrap link is reported to the completion thread.
    #[tokio::test]
    async fn bootstrap_watcher_reports_close_abort_and_eof() {
        async fn seen(bytes: Vec<u8>) -> TransportError {
            let (l0, mut l1) = duplex_links(0, 1);
            l1.stream.write_all(&bytes).await.unwrap();
            drop(l1);
            let (r, _w) = tokio::io::split(l0.stream);
            let (tx, rx) = std_mpsc::channel();
            watch(1, r, tx).await;
            match rx.recv().unwrap() {
                Command::BootstrapLost { peer: 1, error } => error,
                _ => panic!("not a BootstrapLost for party 1"),
            }
        }
        let frame = |kind, payload: &[u8]| {
            let mut v = crate::frame::encode_header(&crate::frame::Header {
                round: 0,
                len: payload.len(),
                kind,
            })
            .to_vec();
            v.extend_from_slice(payload);
            v
        };
        assert_eq!(
            seen(frame(FrameKind::Close, b"")).await,
            TransportError::PeerClosed { peer: 1 }
        );
        assert_eq!(
            seen(frame(FrameKind::Abort, b"party 2 failed")).await,
            TransportError::Aborted {
                peer: 1,
                reason: "party 2 failed".into()
            }
        );
        assert_eq!(
            seen(Vec::new()).await,
            TransportError::PeerClosed { peer: 1 }
        );
        assert!(matches!(
            seen(frame(FrameKind::Data, b"x")).await,
            TransportError::BadFrame { peer: 1, .. }
        ));
    }

    #[tokio::test]
    async fn bad_options_are_config_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e = RdmaTransport::connect(
            0,
            &["a:1".into(), "b:1".into()],
            listener,
            Security::InsecurePlaintext,
            LinkOptions::new("s", 2),
            RdmaOptions {
                port: 0,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, TransportError::Config(_)), "{e}");
    }
}
