//! The completion thread: after start-up it alone owns every queue pair,
//! buffer pool and the completion queue, so no verbs object is shared
//! between threads and none is touched from the tokio runtime.
//!
//! Its loop: take commands (sends, close/abort, bootstrap-link loss) from a
//! channel; copy queued frames chunk by chunk into free send buffers and
//! post them; poll the completion queue (a send completion frees its
//! buffer; a receive completion feeds the chunk to the link's reassembler,
//! reposts the buffer and hands a finished frame to the receiving side);
//! then settle links (wake waiting shutdowns, apply a lost bootstrap link).
//! When there was nothing to do it busy-polls for [`RdmaOptions::spin`],
//! then sleeps [`RdmaOptions::idle_wait`] at a time, waking at once for a
//! new command.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sideway::ibverbs::completion::{
    BasicCompletionQueue, PollCompletionQueueError, WorkCompletionStatus,
};
use sideway::ibverbs::queue_pair::BasicQueuePair;
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::buffers::{Direction, RegisteredBuffers, SlotPool, WrId};
use super::chunk::{OutFrame, Reassembler};
use super::endpoint::Route;
use super::{error_chain, queue_pair, RdmaOptions};
use crate::frame::{Frame, FrameKind, RoundOrder};
use crate::inbox::Incoming;
use crate::{PartyId, TransportError};

/// How long after the bootstrap link of a peer ended the thread keeps
/// polling before it fails the link: chunks the peer sent before closing
/// may still sit in the completion queue.
const LOST_GRACE: Duration = Duration::from_millis(50);

/// How long a dropped transport keeps sending what was queued.
const LINGER: Duration = Duration::from_secs(2);

/// What the transport asks of the completion thread.
pub(crate) enum Command {
    /// Queue a data frame for a peer.
    Send {
        /// The peer.
        peer: PartyId,
        /// The frame (header and payload).
        frame: OutFrame,
    },
    /// Queue a close or abort frame behind everything queued for the peer;
    /// `done` fires once it and everything before it have completed (or
    /// the link broke). Later sends to that peer are dropped.
    Finish {
        /// The peer.
        peer: PartyId,
        /// The close or abort frame.
        frame: OutFrame,
        /// Fired when flushed.
        done: oneshot::Sender<()>,
    },
    /// The peer's bootstrap TCP link ended (`error` says how): after
    /// [`LOST_GRACE`] the link fails with it unless it ended in band first.
    BootstrapLost {
        /// The peer.
        peer: PartyId,
        /// PeerClosed, Aborted (with the reason sent on the bootstrap
        /// link), or a link error.
        error: TransportError,
    },
    /// Finish what is queued (at most [`LINGER`]) and exit.
    Stop,
}

/// One connected peer link, handed to the thread at start-up.
pub(crate) struct PeerChannel {
    /// The peer.
    pub(crate) peer: PartyId,
    /// Its RC queue pair, in RTS, every receive buffer posted. Declared
    /// before `bufs` so that it is destroyed before they are freed.
    pub(crate) qp: BasicQueuePair,
    /// The registered buffers the queue pair uses.
    pub(crate) bufs: RegisteredBuffers,
    /// Chunk size and send window towards the peer.
    pub(crate) route: Route,
    /// Where received messages and the final error go.
    pub(crate) inbox: UnboundedSender<Incoming>,
    /// The link's terminal error, for the sending side to see.
    pub(crate) failed: Arc<OnceLock<TransportError>>,
    /// Largest accepted frame payload, bytes.
    pub(crate) max_frame: usize,
}

/// A work completion, copied out of the completion queue.
#[derive(Clone, Copy, Debug)]
struct Wc {
    wr_id: u64,
    status: u32,
    byte_len: u32,
    vendor_err: u32,
}

struct Link {
    ch: PeerChannel,
    /// Free send buffers, at most `route.window` in use.
    pool: SlotPool,
    queue: VecDeque<OutFrame>,
    reasm: Reassembler,
    order: RoundOrder,
    /// The receiving side ended (close, abort, bad frame, failure): nothing
    /// more goes to the inbox.
    rx_done: bool,
    /// Sending is impossible (failed completion or post, lost peer): the
    /// queue is dropped and waiters are released.
    tx_broken: bool,
    /// A close or abort frame was queued: later sends are dropped.
    finishing: bool,
    waiters: Vec<oneshot::Sender<()>>,
    lost: Option<(TransportError, Instant)>,
}

impl Link {
    fn new(ch: PeerChannel) -> Link {
        let window = ch.route.window.min(ch.bufs.slot_count(Direction::Send)) as u32;
        let max_frame = ch.max_frame;
        Link {
            ch,
            pool: SlotPool::new(window),
            queue: VecDeque::new(),
            reasm: Reassembler::new(max_frame),
            order: RoundOrder::default(),
            rx_done: false,
            tx_broken: false,
            finishing: false,
            waiters: Vec::new(),
            lost: None,
        }
    }

    fn peer(&self) -> PartyId {
        self.ch.peer
    }

    /// Ends the receiving side with `err` (once): the sending side sees it
    /// through `failed`, a pending receive through the inbox.
    fn fail_rx(&mut self, err: TransportError) {
        if self.rx_done {
            return;
        }
        self.rx_done = true;
        if !matches!(err, TransportError::PeerClosed { .. }) {
            tracing::warn!("{err}");
        }
        let _ = self.ch.failed.set(err.clone());
        let _ = self.ch.inbox.send(Err(err));
    }

    /// Stops sending: drops the queue, releases waiters, fails the
    /// receiving side too (the queue pair is unusable).
    fn break_tx(&mut self, err: TransportError) {
        if !self.tx_broken {
            self.tx_broken = true;
            self.queue.clear();
        }
        self.fail_rx(err);
    }

    /// Whether sends are queued or in flight.
    fn tx_pending(&self) -> bool {
        !self.tx_broken && (!self.queue.is_empty() || !self.pool.all_free())
    }

    /// Copies queued frames into free send buffers and posts them.
    /// Returns whether anything was posted.
    fn pump(&mut self) -> bool {
        let mut posted = false;
        while !self.tx_broken {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let Some(slot) = self.pool.take() else {
                break;
            };
            let chunk = self.ch.route.chunk_bytes;
            let n = match self.ch.bufs.send_buf(slot) {
                Some(buf) => {
                    let end = chunk.min(buf.len());
                    front.fill(&mut buf[..end])
                }
                None => 0,
            };
            let frame_done = front.is_done();
            let posted_ok = if n == 0 {
                Err("a send buffer could not take a chunk".to_string())
            } else {
                let id = WrId {
                    peer: self.ch.peer,
                    dir: Direction::Send,
                    slot,
                }
                .encode();
                match (id, self.ch.bufs.addr(Direction::Send, slot)) {
                    (Some(id), Some(addr)) => queue_pair::post_send(
                        &mut self.ch.qp,
                        id,
                        self.ch.bufs.lkey(),
                        addr,
                        n as u32,
                    ),
                    _ => Err(format!("send buffer {slot} out of range")),
                }
            };
            if let Err(detail) = posted_ok {
                self.pool.put(slot);
                let peer = self.peer();
                self.break_tx(TransportError::Link { peer, detail });
                return true;
            }
            posted = true;
            if frame_done {
                self.queue.pop_front();
            }
        }
        posted
    }

    /// Handles the completion of one of this link's work requests.
    fn complete(&mut self, id: WrId, wc: Wc) {
        let ok = wc.status == WorkCompletionStatus::Success as u32;
        match id.dir {
            Direction::Send => {
                self.pool.put(id.slot);
                if !ok {
                    let e = self.completion_error("send", wc);
                    self.break_tx(e);
                }
            }
            Direction::Recv => {
                if !ok {
                    let e = self.completion_error("receive", wc);
                    self.break_tx(e);
                    return;
                }
                let mut frame = None;
                if !self.rx_done {
                    let got = match self.ch.bufs.recv_buf(id.slot, wc.byte_len as usize) {
                        Some(data) => self.reasm.push(data).map_err(|e| e.to_string()),
                        None => Err(format!(
                            "receive completion of {} bytes for buffer {} does not fit",
                            wc.byte_len, id.slot
                        )),
                    };
                    match got {
                        Ok(f) => frame = f,
                        Err(detail) => {
                            let peer = self.peer();
                            self.fail_rx(TransportError::BadFrame { peer, detail });
                        }
                    }
                }
                // Repost even after the receiving side ended, so that a peer
                // still sending is not stuck in receiver-not-ready retries.
                self.repost(id.slot);
                if let Some(f) = frame {
                    self.deliver(f);
                }
            }
        }
    }

    fn repost(&mut self, slot: u32) {
        let id = WrId {
            peer: self.ch.peer,
            dir: Direction::Recv,
            slot,
        }
        .encode();
        let res = match (id, self.ch.bufs.addr(Direction::Recv, slot)) {
            (Some(id), Some(addr)) => queue_pair::post_recv(
                &mut self.ch.qp,
                id,
                self.ch.bufs.lkey(),
                addr,
                self.ch.bufs.slot_bytes() as u32,
            ),
            _ => Err(format!("receive buffer {slot} out of range")),
        };
        if let Err(detail) = res {
            let peer = self.peer();
            self.break_tx(TransportError::Link { peer, detail });
        }
    }

    fn deliver(&mut self, f: Frame) {
        let peer = self.peer();
        match f.header.kind {
            FrameKind::Data => match self.order.check(f.header.round) {
                Ok(()) => {
                    let _ = self.ch.inbox.send(Ok((f.header.round, f.payload)));
                }
                Err(e) => self.fail_rx(TransportError::BadFrame {
                    peer,
                    detail: e.to_string(),
                }),
            },
            FrameKind::Close => self.fail_rx(TransportError::PeerClosed { peer }),
            FrameKind::Abort => self.fail_rx(TransportError::Aborted {
                peer,
                reason: String::from_utf8_lossy(&f.payload).into_owned(),
            }),
        }
    }

    fn completion_error(&self, what: &str, wc: Wc) -> TransportError {
        TransportError::Link {
            peer: self.peer(),
            detail: format!(
                "RDMA {what} failed: {} (work completion status {}, vendor error {:#x})",
                status_text(wc.status),
                wc.status,
                wc.vendor_err
            ),
        }
    }

    /// Wakes waiting shutdowns once flushed; applies a lost bootstrap link
    /// after its grace period.
    fn settle(&mut self, now: Instant) {
        if self.lost.as_ref().is_some_and(|(_, at)| now >= *at) {
            if let Some((err, _)) = self.lost.take() {
                // The peer is gone or aborting: it will not read more.
                self.break_tx(err);
            }
        }
        if !self.waiters.is_empty() && !self.tx_pending() {
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

/// What a work completion status means, in words.
fn status_text(status: u32) -> &'static str {
    use WorkCompletionStatus as S;
    let known = [
        (
            S::WorkRequestFlushedError,
            "flushed: the queue pair is in the error state",
        ),
        (
            S::RetryCounterExceededError,
            "transport retries exceeded: the peer is unreachable or gone",
        ),
        (
            S::ResponderNotReadyRetryCounterExceededError,
            "receiver-not-ready retries exceeded",
        ),
        (S::LocalLengthError, "local length error"),
        (S::LocalProtectionError, "local protection error"),
        (
            S::LocalQueuePairOperationError,
            "local queue pair operation error",
        ),
        (S::RemoteInvalidRequestError, "remote invalid request"),
        (S::RemoteAccessError, "remote access error"),
        (S::RemoteOperationError, "remote operation error"),
        (S::FatalError, "fatal device error"),
    ];
    known
        .iter()
        .find(|(s, _)| *s as u32 == status)
        .map(|(_, t)| *t)
        .unwrap_or("work completion error")
}

/// The completion thread's state.
pub(crate) struct Poller {
    /// Indexed by peer id; `None` for this party.
    links: Vec<Option<Link>>,
    cq: Arc<BasicCompletionQueue>,
    rx: Receiver<Command>,
    spin: Duration,
    idle_wait: Duration,
    wcs: Vec<Wc>,
    /// Dropped last, when the thread ends: tells the transport's drop that
    /// the bootstrap links may close now.
    _exited: oneshot::Sender<()>,
}

/// Starts the completion thread for party `me` of `n` with its connected
/// `channels`, the shared completion queue `cq` and commands from `rx`;
/// `exited` is dropped when the thread ends.
///
/// Errors: the OS refused to start a thread.
pub(crate) fn spawn(
    me: PartyId,
    n: usize,
    channels: Vec<PeerChannel>,
    cq: Arc<BasicCompletionQueue>,
    rx: Receiver<Command>,
    exited: oneshot::Sender<()>,
    opts: &RdmaOptions,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut links: Vec<Option<Link>> = (0..n).map(|_| None).collect();
    for ch in channels {
        let peer = ch.peer;
        if let Some(slot) = links.get_mut(peer) {
            *slot = Some(Link::new(ch));
        }
    }
    let poller = Poller {
        links,
        cq,
        rx,
        spin: opts.spin,
        idle_wait: opts.idle_wait,
        wcs: Vec::with_capacity(64),
        _exited: exited,
    };
    std::thread::Builder::new()
        .name(format!("spindle-rdma-{me}"))
        .spawn(move || poller.run())
}

impl Poller {
    fn run(mut self) {
        let mut last_busy = Instant::now();
        loop {
            let mut busy = false;
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return self.linger(),
                    Ok(cmd) => {
                        busy = true;
                        self.handle(cmd);
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            busy |= self.step();
            if busy {
                last_busy = Instant::now();
                continue;
            }
            if last_busy.elapsed() < self.spin {
                std::hint::spin_loop();
                continue;
            }
            match self.rx.recv_timeout(self.idle_wait) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return self.linger(),
                Ok(cmd) => {
                    self.handle(cmd);
                    last_busy = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The transport is gone: send what is queued, for at most [`LINGER`],
    /// then drop everything (queue pairs, then buffers, then the queue).
    fn linger(mut self) {
        let deadline = Instant::now() + LINGER;
        while Instant::now() < deadline && self.links.iter().flatten().any(Link::tx_pending) {
            if !self.step() {
                std::thread::sleep(self.idle_wait);
            }
        }
    }

    fn link(&mut self, peer: PartyId) -> Option<&mut Link> {
        self.links.get_mut(peer).and_then(Option::as_mut)
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Send { peer, frame } => {
                if let Some(l) = self.link(peer) {
                    if !l.tx_broken && !l.finishing {
                        l.queue.push_back(frame);
                    }
                }
            }
            Command::Finish { peer, frame, done } => match self.link(peer) {
                Some(l) if !l.tx_broken => {
                    if !l.finishing {
                        l.finishing = true;
                        l.queue.push_back(frame);
                    }
                    l.waiters.push(done);
                }
                _ => {
                    let _ = done.send(());
                }
            },
            Command::BootstrapLost { peer, error } => {
                if let Some(l) = self.link(peer) {
                    if l.lost.is_none() {
                        l.lost = Some((error, Instant::now() + LOST_GRACE));
                    }
                }
            }
            Command::Stop => {}
        }
    }

    /// One pass: post, poll, settle. Returns whether anything happened.
    fn step(&mut self) -> bool {
        let mut busy = false;
        for l in self.links.iter_mut().flatten() {
            busy |= l.pump();
        }
        busy |= self.poll();
        let now = Instant::now();
        for l in self.links.iter_mut().flatten() {
            l.settle(now);
        }
        busy
    }

    /// Drains the completion queue and handles every completion.
    fn poll(&mut self) -> bool {
        self.wcs.clear();
        match self.cq.start_poll() {
            // The poller must be run to its end: completions it has taken
            // off the queue and not yet returned would be lost.
            Ok(p) => self.wcs.extend(p.map(|wc| Wc {
                wr_id: wc.wr_id(),
                status: wc.status(),
                byte_len: wc.byte_len(),
                vendor_err: wc.vendor_err(),
            })),
            Err(PollCompletionQueueError::CompletionQueueEmpty) => return false,
            Err(e) => {
                let detail = format!("polling the completion queue failed: {}", error_chain(&e));
                for l in self.links.iter_mut().flatten() {
                    let peer = l.peer();
                    l.break_tx(TransportError::Link {
                        peer,
                        detail: detail.clone(),
                    });
                }
                return true;
            }
        }
        for i in 0..self.wcs.len() {
            let wc = self.wcs[i];
            let Some(id) = WrId::decode(wc.wr_id) else {
                tracing::warn!(
                    "RDMA completion with unknown work request id {:#x}",
                    wc.wr_id
                );
                continue;
            };
            if let Some(l) = self.link(id.peer) {
                l.complete(id, wc);
            }
        }
        !self.wcs.is_empty()
    }
}
