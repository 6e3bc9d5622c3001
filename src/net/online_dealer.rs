//! The online dealer as its own process (`spindle dealer` for a training
//! job, or with `--online`): CrypTen's trusted third party over a mutually
//! authenticated TLS link per party, for computations too long to plan and
//! store ahead (a training run).
//!
//! Each party keeps one link to the dealer for the whole job. On it, after
//! the job fingerprint is accepted, a party asks for the seed of each dealer
//! stream it begins ([`crate::Session::begin_stream`]); party 0 also sends
//! each request for correlated randomness and receives its correction.
//! Parties 1..N-1 therefore still receive nothing but seeds. Stream `s` is
//! what [`Dealer::from_master_seed`] gives with `master.derive(s)`, so a run
//! with the same master seed is reproducible across processes. Forked
//! sessions ([`crate::Session::fork`]) are served from a [`DealerTree`]:
//! party 0 opens each fork at the dealer before its first request and
//! releases it when the fork is dropped; parties 1..N-1 derive a fork's
//! seed themselves ([`crate::prg::Seed::derive_fork`]), as the dealer does.
//!
//! Messages (payloads of data frames, after the fingerprint; integers u64
//! little-endian):
//! party -> dealer `S` + stream, reply the party's 16-byte seed;
//! party 0 -> dealer `F` + parent + child (open a fork), reply `ok`;
//! party 0 -> dealer `C` + fork + JSON request (fork 0: the root), reply
//! the correction as a tensor list (the preprocessing store's record body);
//! party 0 -> dealer `R` + fork (release it), no reply; a close frame ends
//! the link, an abort frame carries a reason either way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use spindle_transport::frame::{read_frame, write_frame, FrameKind};
use spindle_transport::link::{dial, LinkOptions, Security, Stream};
use spindle_transport::{PartyId, TransportError, DEALER};
use tokio::io::AsyncWriteExt;

use super::config::ClusterConfig;
use super::dealer::{check_fingerprint, dealer_wait, read_error, send_data, AbortSignal};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::preprocess::{
    decode_tensors, encode_tensors, CorrectionSource, Dealer, DealerService, DealerTree, Request,
    SeededProvider, StreamSource,
};
use crate::prg::Seed;
use crate::ring::AnyTensor;

/// Largest message a party may send the dealer (a request is a few hundred bytes).
const MAX_REQUEST_FRAME: usize = 1 << 20;

/// The dealer's side of one party's link: checks the fingerprint, then
/// answers seed and correction requests until the party closes the link.
///
/// Errors: [`TransportError`] for link failures, a job mismatch, a party
/// that hangs up without closing, or a malformed or refused message (the
/// party is told why before the link is dropped).
pub(super) async fn serve_online(
    mut s: Box<dyn Stream>,
    peer: PartyId,
    master: Seed,
    fingerprint: &str,
    lo: &LinkOptions,
    mut abort: AbortSignal,
) -> std::result::Result<u64, TransportError> {
    check_fingerprint(&mut s, peer, fingerprint, "the online dealer serves", lo).await?;
    send_data(&mut s, peer, lo, b"ok").await?;
    let mut tree: Option<DealerTree> = None;
    let mut sent = 0u64;
    loop {
        // No idle timeout: a party may compute for minutes between requests.
        let f = tokio::select! {
            f = read_frame(&mut s, MAX_REQUEST_FRAME) => f.map_err(|e| read_error(peer, e))?,
            Ok(reason) = async {
                abort.wait_for(Option::is_some).await.map(|r| r.clone().unwrap_or_default())
            } => {
                // Another member failed: tell this party which, then hang up.
                let _ = write_frame(&mut s, 0, FrameKind::Abort, reason.as_bytes()).await;
                let _ = s.shutdown().await;
                return Err(TransportError::Aborted { peer: DEALER, reason });
            }
        };
        match f.header.kind {
            FrameKind::Close => {
                let _ = s.shutdown().await;
                return Ok(sent);
            }
            FrameKind::Abort => {
                return Err(TransportError::Aborted {
                    peer,
                    reason: String::from_utf8_lossy(&f.payload).to_string(),
                })
            }
            FrameKind::Data => {}
        }
        let reply = match answer(&f.payload, peer, lo.n_parties, &master, &mut tree) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(why) => return Err(refuse(&mut s, peer, why).await),
        };
        sent += reply.len() as u64;
        send_data(&mut s, peer, lo, &reply).await?;
    }
}

/// The reply to one message of party `peer` (`None`: the message has
/// none), or why it is refused.
fn answer(
    msg: &[u8],
    peer: PartyId,
    n: usize,
    master: &Seed,
    tree: &mut Option<DealerTree>,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let word = |b: &[u8], i: usize| -> std::result::Result<u64, String> {
        b.get(8 * i..8 * i + 8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .ok_or_else(|| format!("malformed message from party {peer} ({} bytes)", msg.len()))
    };
    let (&kind, rest) = msg
        .split_first()
        .ok_or_else(|| format!("empty message from party {peer}"))?;
    if matches!(kind, b'F' | b'C' | b'R') && peer != 0 {
        return Err(format!(
            "party {peer} sent a party-0 message ({}): only party 0 receives corrections",
            kind as char
        ));
    }
    let err = |e: Error| e.to_string();
    match kind {
        b'S' if rest.len() == 8 => {
            let d = Dealer::from_master_seed(n, master.derive(word(rest, 0)?), Device::default())
                .map_err(err)?;
            let seed = d.seed(peer);
            if peer == 0 {
                match tree {
                    Some(t) => t.set_root(d),
                    None => *tree = Some(DealerTree::new(d)),
                }
            }
            Ok(Some(seed.0.to_vec()))
        }
        b'F' if rest.len() == 16 => {
            begun(tree)?
                .fork(word(rest, 0)?, word(rest, 1)?)
                .map_err(err)?;
            Ok(Some(b"ok".to_vec()))
        }
        b'C' if rest.len() > 8 => {
            let t = begun(tree)?;
            let req: Request = serde_json::from_slice(&rest[8..])
                .map_err(|e| format!("malformed request from party 0: {e}"))?;
            let corr = t.correction(word(rest, 0)?, &req).map_err(err)?;
            let mut out = Vec::new();
            encode_tensors(&corr, &mut out);
            Ok(Some(out))
        }
        b'R' if rest.len() == 8 => {
            if let Some(t) = tree {
                t.release(word(rest, 0)?);
            }
            Ok(None)
        }
        _ => Err(format!(
            "malformed message from party {peer} ({} bytes)",
            msg.len()
        )),
    }
}

/// The dealer tree of the stream party 0 began, or why there is none.
fn begun(tree: &mut Option<DealerTree>) -> std::result::Result<&mut DealerTree, String> {
    tree.as_mut()
        .ok_or_else(|| "a correction or fork was requested before any stream was begun".into())
}

/// Tells the party why its link is dropped and returns the error.
async fn refuse(s: &mut Box<dyn Stream>, peer: PartyId, why: String) -> TransportError {
    let _ = write_frame(s, 0, FrameKind::Abort, why.as_bytes()).await;
    let _ = s.shutdown().await;
    TransportError::Handshake {
        with: format!("party {peer}"),
        detail: why,
    }
}

/// One call from the party's program to its dealer link thread.
enum Call {
    Seed(u64, mpsc::SyncSender<Result<Seed>>),
    Correction(u64, Request, mpsc::SyncSender<Result<Vec<AnyTensor>>>),
    Fork(u64, u64, mpsc::SyncSender<Result<()>>),
    Release(u64),
    Close(mpsc::SyncSender<Result<()>>),
    Abort(String, mpsc::SyncSender<()>),
}

/// A party's link to the online dealer process: a thread with its own
/// async runtime owns the TLS stream, so the provider can make blocking
/// calls from inside the party's runtime without stalling that runtime.
#[derive(Clone)]
pub struct OnlineDealerLink {
    me: PartyId,
    backend: Device,
    calls: mpsc::Sender<Call>,
    received: Arc<AtomicU64>,
}

impl OnlineDealerLink {
    /// Connects to the cluster's dealer (retrying within the connect
    /// timeout) and has `fingerprint` accepted.
    ///
    /// Errors: [`Error::Transport`] naming the dealer (unreachable,
    /// refused, job mismatch).
    pub async fn connect(
        cluster: &ClusterConfig,
        me: PartyId,
        security: &Security,
        fingerprint: &str,
        backend: Device,
    ) -> Result<Self> {
        let d = cluster.dealer.as_ref().ok_or_else(|| {
            Error::InvalidParty("the cluster config has no [dealer] entry".into())
        })?;
        let (addr, lo, security) = (d.addr(), cluster.link_options(), security.clone());
        let fingerprint = fingerprint.to_string();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let (calls, rx) = mpsc::channel::<Call>();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        std::thread::Builder::new()
            .name(format!("spindle-dealer-link-{me}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Unsupported(format!(
                            "cannot start the dealer link's runtime: {e}"
                        ))));
                        return;
                    }
                };
                let mut s = match rt.block_on(handshake(me, &addr, &security, &lo, &fingerprint)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                for call in rx {
                    match call {
                        Call::Seed(stream, reply) => {
                            let mut msg = vec![b'S'];
                            msg.extend_from_slice(&stream.to_le_bytes());
                            let r = rt.block_on(ask(&mut s, &lo, &msg)).and_then(|b| {
                                counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                                let raw: [u8; 16] = b.as_slice().try_into().map_err(|_| {
                                    dealer_err(format!("a seed of {} bytes", b.len()))
                                })?;
                                Ok(Seed(raw))
                            });
                            let _ = reply.send(r);
                        }
                        Call::Correction(stream, req, reply) => {
                            let mut msg = vec![b'C'];
                            msg.extend_from_slice(&stream.to_le_bytes());
                            msg.extend(serde_json::to_vec(&req).expect("requests serialize"));
                            let r = rt.block_on(ask(&mut s, &lo, &msg)).and_then(|b| {
                                counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                                decode_tensors(&b, "online dealer reply")
                            });
                            let _ = reply.send(r);
                        }
                        Call::Fork(parent, child, reply) => {
                            let mut msg = vec![b'F'];
                            msg.extend_from_slice(&parent.to_le_bytes());
                            msg.extend_from_slice(&child.to_le_bytes());
                            let r = rt.block_on(ask(&mut s, &lo, &msg)).and_then(|b| {
                                (b == b"ok")
                                    .then_some(())
                                    .ok_or_else(|| dealer_err("unexpected answer to a fork".into()))
                            });
                            let _ = reply.send(r);
                        }
                        Call::Release(stream) => {
                            // No reply: a broken link shows on the next call.
                            let mut msg = vec![b'R'];
                            msg.extend_from_slice(&stream.to_le_bytes());
                            let _ = rt.block_on(async {
                                write_frame(&mut s, 0, FrameKind::Data, &msg).await?;
                                s.flush().await
                            });
                        }
                        Call::Close(reply) => {
                            let r = rt.block_on(async {
                                write_frame(&mut s, 0, FrameKind::Close, &[]).await?;
                                s.flush().await?;
                                s.shutdown().await
                            });
                            let _ = reply
                                .send(r.map_err(|e| dealer_err(format!("closing the link: {e}"))));
                            return;
                        }
                        Call::Abort(reason, reply) => {
                            // The timer must be made inside the runtime.
                            let _ = rt.block_on(async {
                                tokio::time::timeout(lo.write_timeout, async {
                                    write_frame(&mut s, 0, FrameKind::Abort, reason.as_bytes())
                                        .await?;
                                    s.flush().await?;
                                    s.shutdown().await
                                })
                                .await
                            });
                            let _ = reply.send(());
                            return;
                        }
                    }
                }
                // Dropped without close (the party failed): the dealer sees the link end.
            })
            .map_err(|e| Error::Unsupported(format!("cannot start the dealer link thread: {e}")))?;
        ready_rx
            .await
            .map_err(|_| dealer_err("the link thread stopped".into()))??;
        Ok(OnlineDealerLink {
            me,
            backend,
            calls,
            received,
        })
    }

    /// Bytes received from the dealer so far (seeds and corrections).
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Ends the link cleanly (the dealer counts this party as done).
    ///
    /// Errors: [`Error::Transport`] if the close frame cannot be sent.
    pub fn close(&self) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.calls.send(Call::Close(tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    /// Tells the dealer why this party gives up (best effort, waiting at
    /// most a second), so the dealer and, through it, the other parties
    /// learn the root cause instead of a dropped link.
    pub fn abort(&self, reason: &str) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.calls.send(Call::Abort(reason.to_string(), tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    }

    fn call<T>(&self, make: impl FnOnce(mpsc::SyncSender<Result<T>>) -> Call) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.calls.send(make(tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

impl StreamSource for OnlineDealerLink {
    fn open(&mut self, stream: u64) -> Result<SeededProvider> {
        let seed = self.call(|tx| Call::Seed(stream, tx))?;
        if self.me != 0 {
            return Ok(SeededProvider::from_seed(seed, None, self.backend.clone()));
        }
        let service = DealerService::root(self.clone());
        Ok(SeededProvider::with_online_dealer(
            seed,
            service,
            self.backend.clone(),
        ))
    }
}

/// Party 0's corrections, forks and releases over the link.
impl CorrectionSource for OnlineDealerLink {
    fn correction(&self, stream: u64, req: &Request) -> Result<Vec<AnyTensor>> {
        self.call(|tx| Call::Correction(stream, req.clone(), tx))
    }

    fn fork(&self, parent: u64, child: u64) -> Result<()> {
        self.call(|tx| Call::Fork(parent, child, tx))
    }

    fn release(&self, stream: u64) {
        let _ = self.calls.send(Call::Release(stream));
    }
}

/// A failure of the link to the dealer after the handshake.
fn dealer_err(detail: String) -> Error {
    Error::Transport(TransportError::Link {
        peer: DEALER,
        detail,
    })
}

fn gone() -> Error {
    dealer_err("the link to the dealer is closed".into())
}

async fn handshake(
    me: PartyId,
    addr: &str,
    security: &Security,
    lo: &LinkOptions,
    fingerprint: &str,
) -> Result<Box<dyn Stream>> {
    let deadline = tokio::time::Instant::now() + lo.connect_timeout;
    let mut s = dial(me, DEALER, addr, security, lo, deadline).await?.stream;
    let refused = |detail: String| {
        Error::Transport(TransportError::Handshake {
            with: "the online dealer".into(),
            detail,
        })
    };
    match ask(&mut s, lo, fingerprint.as_bytes()).await {
        Ok(ok) if ok == b"ok" => Ok(s),
        Ok(_) => Err(refused("unexpected answer to the job fingerprint".into())),
        Err(Error::Transport(TransportError::Aborted { reason, .. })) => {
            Err(refused(format!("refused: {reason}")))
        }
        Err(e) => Err(refused(e.to_string())),
    }
}

/// How long a party whose send to the dealer failed looks for the dealer's
/// abort reason before reporting the failed send.
const ABORT_READ: std::time::Duration = std::time::Duration::from_millis(200);

/// Sends one message and waits for the reply, at most [`dealer_wait`]
/// (so a silent dealer is named by this party, not this party by the
/// others).
async fn ask(s: &mut Box<dyn Stream>, lo: &LinkOptions, msg: &[u8]) -> Result<Vec<u8>> {
    let wait = dealer_wait(lo);
    let sent = match write_frame(s, 0, FrameKind::Data, msg).await {
        Ok(()) => s.flush().await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        // A dealer that aborted (another party died) wrote its reason
        // before closing: report that reason, which names the member that
        // died, rather than the broken pipe it left.
        let pending = tokio::time::timeout(ABORT_READ, read_frame(s, lo.max_frame)).await;
        if let Ok(Ok(f)) = pending {
            if f.header.kind == FrameKind::Abort {
                return Err(Error::Transport(TransportError::Aborted {
                    peer: DEALER,
                    reason: String::from_utf8_lossy(&f.payload).into_owned(),
                }));
            }
        }
        return Err(dealer_err(format!("sending: {e}")));
    }
    let f = tokio::time::timeout(wait, read_frame(s, lo.max_frame))
        .await
        .map_err(|_| dealer_err(format!("no answer within {} ms", wait.as_millis())))?
        .map_err(|e| Error::Transport(read_error(DEALER, e)))?;
    match f.header.kind {
        FrameKind::Data => Ok(f.payload.to_vec()),
        FrameKind::Abort => Err(Error::Transport(TransportError::Aborted {
            peer: DEALER,
            reason: String::from_utf8_lossy(&f.payload).into_owned(),
        })),
        FrameKind::Close => Err(Error::Transport(TransportError::PeerClosed {
            peer: DEALER,
        })),
    }
}

/// The fingerprint a party presents to an online dealer: the job's plus
/// the mode, so a party and a dealer in different modes refuse each other.
pub fn online_fingerprint(job_fingerprint: &str) -> String {
    format!("{job_fingerprint} (online dealer)")
}

/// Runs the online dealer process: listens, serves every party's link until
/// it closes, and returns the bytes sent to each party. The master seed is
/// `opts.master_seed`, or fresh OS randomness.
///
/// Errors: [`Error::Transport`] when the address cannot be bound, a party
/// never connected, or a party's link failed (e.g. it died mid-run).
pub async fn run_online_dealer(opts: &super::dealer::DealerOptions) -> Result<Vec<u64>> {
    let cluster = &opts.cluster;
    let n = cluster.n_parties();
    let master = crate::preprocess::master_seed(opts.master_seed, "--master-seed")?;
    let addr = super::dealer::dealer_addr(cluster, &opts.bind)?;
    let fingerprint = Arc::new(online_fingerprint(&opts.job.fingerprint(n, &opts.session)));
    tracing::info!("online dealer: serving {n} parties on {addr}");
    let sent = Arc::new(std::sync::Mutex::new(vec![0u64; n]));
    let totals = sent.clone();
    // A party that fails mid-run cannot resume its stream: no retries.
    super::dealer::serve_parties(
        cluster,
        &opts.security,
        &addr,
        false,
        move |stream, peer, lo, abort| {
            let (fp, sent) = (fingerprint.clone(), sent.clone());
            async move {
                let bytes = serve_online(stream, peer, master, &fp, &lo, abort).await?;
                if let Ok(mut s) = sent.lock() {
                    s[peer] = bytes;
                }
                tracing::info!("online dealer: party {peer} done ({bytes} bytes sent)");
                Ok(())
            }
        },
    )
    .await?;
    let totals = totals.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BilinearOp;
    use crate::jobs::{AnyJob, MatmulJob};
    use crate::net::dealer::DealerOptions;
    use crate::preprocess::{Provider, StreamingProvider};
    use crate::ring::{RingId, RingTensor};
    use crate::session::SessionConfig;
    use spindle_transport::link::Security;

    const N: usize = 2;
    const LEN: usize = 32;

    fn triple() -> Request {
        Request::Triple {
            ring: RingId::Z64,
            op: BilinearOp::Mul,
            lhs: [LEN].into(),
            rhs: [LEN].into(),
        }
    }

    /// Sums the parties' shares of one triple and checks c = a * b.
    fn check_triple(shares: Vec<Vec<RingTensor<u64>>>) -> Vec<u64> {
        let mut sum = vec![vec![0u64; LEN]; 3];
        for party in &shares {
            for (acc, t) in sum.iter_mut().zip(party) {
                for (a, v) in acc.iter_mut().zip(t.data()) {
                    *a = a.wrapping_add(*v);
                }
            }
        }
        for (i, ((a, b), c)) in sum[0].iter().zip(&sum[1]).zip(&sum[2]).enumerate() {
            assert_eq!(*c, a.wrapping_mul(*b), "element {i}");
        }
        sum[0].clone()
    }

    fn fetch_all(providers: &mut [Box<dyn Provider>]) -> Vec<u64> {
        let shares = providers
            .iter_mut()
            .map(|p| p.next(&triple()).unwrap().into_typed::<u64>().unwrap())
            .collect();
        check_triple(shares)
    }

    /// The dealer process serves forks: party 0 opens them over the link,
    /// parties 1..N-1 derive their seeds; forks of forks, forks released
    /// while the link goes on, and forks that outlive a new dealer stream
    /// all give valid triples with masks of their own.
    #[test]
    fn the_dealer_process_serves_forks() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut parties = String::new();
        for id in 0..N {
            parties += &format!("[[party]]\nid = {id}\nhost = \"127.0.0.1\"\nport = 1\n");
        }
        let toml = format!(
            "[options]\ninsecure_plaintext = true\nconnect_timeout_ms = 10000\n\
             [dealer]\nhost = \"127.0.0.1\"\nport = {port}\n{parties}"
        );
        let cluster = ClusterConfig::from_toml(&toml, std::path::Path::new(".")).unwrap();
        let opts = DealerOptions {
            cluster: cluster.clone(),
            security: Security::InsecurePlaintext,
            job: AnyJob::Matmul(MatmulJob {
                m: 1,
                k: 1,
                n: 1,
                input_seed: 0,
                repeat: 1,
            }),
            session: SessionConfig::default(),
            master_seed: Some(Seed([7; 16])),
            bind: None,
            online: true,
        };
        let fingerprint = online_fingerprint(&opts.job.fingerprint(N, &opts.session));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dealer = rt.spawn(async move { run_online_dealer(&opts).await });
        let links: Vec<OnlineDealerLink> = (0..N)
            .map(|me| {
                rt.block_on(OnlineDealerLink::connect(
                    &cluster,
                    me,
                    &Security::InsecurePlaintext,
                    &fingerprint,
                    Device::default(),
                ))
                .unwrap()
            })
            .collect();
        let mut roots: Vec<StreamingProvider> = links
            .iter()
            .map(|l| StreamingProvider::starting_at(Box::new(l.clone()), 0).unwrap())
            .collect();
        let fork = |roots: &mut Vec<StreamingProvider>, id: u64| -> Vec<Box<dyn Provider>> {
            roots.iter_mut().map(|r| r.fork(id).unwrap()).collect()
        };
        let mut a = fork(&mut roots, 0xa1);
        let mut b = fork(&mut roots, 0xb1);
        let mut ab: Vec<Box<dyn Provider>> = a.iter_mut().map(|p| p.fork(0xab1).unwrap()).collect();
        let masks_b = fetch_all(&mut b);
        let masks_a = fetch_all(&mut a);
        // The parent is released before its child asks.
        drop(a);
        let masks_ab = fetch_all(&mut ab);
        // A new dealer stream; fork b keeps its dealer.
        for r in roots.iter_mut() {
            r.begin_stream(1).unwrap();
        }
        let mut c = fork(&mut roots, 0xc1);
        let masks_c = fetch_all(&mut c);
        let masks_b2 = fetch_all(&mut b);
        let all = [&masks_a, &masks_b, &masks_ab, &masks_c, &masks_b2];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y, "two streams share masks");
            }
        }
        // Opening a fork twice is refused with the reason.
        let err = roots[0]
            .fork(0xc1)
            .err()
            .expect("a reused fork id is refused");
        assert!(err.to_string().contains("already open"), "{err}");
        drop((b, c, ab, roots));
        for l in &links {
            let _ = l.close();
        }
        let _ = rt.block_on(dealer);
    }
}
