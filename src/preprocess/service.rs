//! An online dealer: the dealer answering party 0's requests for
//! corrections as the computation makes them (CrypTen's provider with a
//! trusted third party). No plan and no store are needed, so long
//! computations (training) do not hold all their material in memory; the
//! price is that offline and online are no longer separate phases.
//!
//! The dealer either runs in a thread of this process ([`DealerService::spawn`])
//! or in its own process behind a TLS link (`net::online_dealer`); party 0's
//! provider sees the same handle either way. A handle serves one stream of
//! the session (the root or a fork, [`crate::Session::fork`]); the dealer
//! keeps one [`DealerTree`] entry per open stream, released when the last
//! handle of a fork is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use super::{Dealer, DealerTree, Request};
use crate::error::{Error, Result};
use crate::ring::AnyTensor;

/// Where party 0's corrections come from: a dealer serving a
/// [`DealerTree`] (in a thread, or in another process over a link).
/// Calls of one stream arrive in that stream's program order.
pub trait CorrectionSource: Send + Sync {
    /// The correction for the next request of stream `stream` (blocks).
    ///
    /// Errors: the dealer's own errors; link errors of a remote dealer.
    fn correction(&self, stream: u64, req: &Request) -> Result<Vec<AnyTensor>>;

    /// Opens fork `child` of stream `parent` at the dealer (blocks).
    ///
    /// Errors: as [`DealerTree::fork`]; link errors.
    fn fork(&self, parent: u64, child: u64) -> Result<()>;

    /// Tells the dealer that fork `stream` is done (best effort, no reply).
    fn release(&self, stream: u64);
}

/// One stream's claim on the dealer: releases the fork when the last
/// handle of that stream is dropped.
struct StreamHandle {
    source: Arc<dyn CorrectionSource>,
    stream: u64,
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if self.stream != 0 {
            self.source.release(self.stream);
        }
    }
}

/// Party 0's handle on an online dealer for one stream of its session.
/// Dropping every handle of a thread-backed service ends its thread.
#[derive(Clone)]
pub struct DealerService {
    handle: Arc<StreamHandle>,
    bytes: Arc<AtomicU64>,
}

/// One message to a thread-backed dealer.
enum Msg {
    Correction(u64, Request, mpsc::SyncSender<Result<Vec<AnyTensor>>>),
    Fork(u64, u64, mpsc::SyncSender<Result<()>>),
    Release(u64),
}

/// A dealer in a thread of this process, reached over a channel.
struct ThreadDealer {
    tx: mpsc::Sender<Msg>,
}

impl ThreadDealer {
    fn call<T>(&self, make: impl FnOnce(mpsc::SyncSender<Result<T>>) -> Msg) -> Result<T> {
        let gone = || Error::Unsupported("the online dealer has stopped".into());
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.send(make(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl CorrectionSource for ThreadDealer {
    fn correction(&self, stream: u64, req: &Request) -> Result<Vec<AnyTensor>> {
        self.call(|tx| Msg::Correction(stream, req.clone(), tx))
    }

    fn fork(&self, parent: u64, child: u64) -> Result<()> {
        self.call(|tx| Msg::Fork(parent, child, tx))
    }

    fn release(&self, stream: u64) {
        let _ = self.tx.send(Msg::Release(stream));
    }
}

impl DealerService {
    /// Moves `dealer` into its own thread; returns the handle for party 0's
    /// root stream. Party i's seed is `dealer.seed(i)`, read before the call.
    ///
    /// Errors: [`Error::Unsupported`] if the thread cannot start.
    pub fn spawn(dealer: Dealer) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("spindle-dealer".into())
            .spawn(move || {
                let mut tree = DealerTree::new(dealer);
                // A closed reply channel means party 0 has gone: stop quietly.
                for msg in rx {
                    let delivered = match msg {
                        Msg::Correction(stream, req, reply) => {
                            reply.send(tree.correction(stream, &req)).is_ok()
                        }
                        Msg::Fork(parent, child, reply) => {
                            reply.send(tree.fork(parent, child)).is_ok()
                        }
                        Msg::Release(stream) => {
                            tree.release(stream);
                            true
                        }
                    };
                    if !delivered {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Unsupported(format!("cannot start the dealer thread: {e}")))?;
        Ok(Self::root(ThreadDealer { tx }))
    }

    /// The handle of the root stream (0) of a dealer reached through
    /// `source` (e.g. a link to a dealer process).
    pub fn root(source: impl CorrectionSource + 'static) -> Self {
        DealerService {
            handle: Arc::new(StreamHandle {
                source: Arc::new(source),
                stream: 0,
            }),
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The handle of fork `child` of this handle's stream: the dealer
    /// opens the fork's dealer ([`Dealer::fork`]) before this returns, so
    /// the fork's requests may interleave with this stream's in any order.
    /// Bytes are counted with this handle's.
    ///
    /// Errors: as [`CorrectionSource::fork`].
    pub fn fork(&self, child: u64) -> Result<Self> {
        let source = self.handle.source.clone();
        source.fork(self.handle.stream, child)?;
        Ok(DealerService {
            handle: Arc::new(StreamHandle {
                source,
                stream: child,
            }),
            bytes: self.bytes.clone(),
        })
    }

    /// The correction for the next request of this stream (blocks until
    /// the dealer answers).
    ///
    /// Errors: [`Error::Unsupported`] if the dealer is gone; the dealer's
    /// own errors; link errors of a remote dealer.
    pub fn correction(&self, req: &Request) -> Result<Vec<AnyTensor>> {
        let corr = self.handle.source.correction(self.handle.stream, req)?;
        let size: usize = corr
            .iter()
            .map(|t| match t {
                AnyTensor::Z32(t) => t.numel() * 4,
                AnyTensor::Z64(t) => t.numel() * 8,
            })
            .sum();
        self.bytes.fetch_add(size as u64, Ordering::Relaxed);
        Ok(corr)
    }

    /// Correction bytes sent to party 0 so far, for this stream and every
    /// fork of it.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
