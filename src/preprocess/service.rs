//! An online dealer: the dealer in its own thread, answering party 0's
//! requests for corrections as the computation makes them (CrypTen's
//! trusted-third-party provider). No plan and no store are needed, so long
//! computations (training) do not hold all their material in memory; the
//! price is that offline and online are no longer separate phases.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use super::{Dealer, Request};
use crate::error::{Error, Result};
use crate::ring::AnyTensor;

type Reply = mpsc::SyncSender<Result<Vec<AnyTensor>>>;

/// Party 0's handle on a dealer thread. Dropping every handle ends the thread.
#[derive(Clone)]
pub struct DealerService {
    tx: mpsc::Sender<(Request, Reply)>,
    bytes: Arc<AtomicU64>,
}

impl DealerService {
    /// Moves `dealer` into its own thread; returns the handle for party 0.
    /// Party i's seed is `dealer.seed(i)`, read before the call.
    ///
    /// Errors: [`Error::Unsupported`] if the thread cannot start.
    pub fn spawn(mut dealer: Dealer) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<(Request, Reply)>();
        std::thread::Builder::new()
            .name("spindle-dealer".into())
            .spawn(move || {
                for (req, reply) in rx {
                    // A closed reply channel means party 0 has gone: stop quietly.
                    if reply.send(dealer.next_correction(&req)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Unsupported(format!("cannot start the dealer thread: {e}")))?;
        Ok(DealerService {
            tx,
            bytes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The correction for the next request (blocks until the dealer answers).
    ///
    /// Errors: [`Error::Unsupported`] if the dealer thread is gone; the
    /// dealer's own errors.
    pub fn correction(&self, req: &Request) -> Result<Vec<AnyTensor>> {
        let gone = || Error::Unsupported("the online dealer has stopped".into());
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.send((req.clone(), reply)).map_err(|_| gone())?;
        let corr = answer.recv().map_err(|_| gone())??;
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

    /// Correction bytes sent to party 0 so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
