//! An online dealer: the dealer answering party 0's requests for
//! corrections as the computation makes them (CrypTen's trusted-third-party
//! provider). No plan and no store are needed, so long computations
//! (training) do not hold all their material in memory; the price is that
//! offline and online are no longer separate phases.
//!
//! The dealer either runs in a thread of this process ([`DealerService::spawn`])
//! or in its own process behind a TLS link (`net::online_dealer`); party 0's
//! provider sees the same handle either way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use super::{Dealer, Request};
use crate::error::{Error, Result};
use crate::ring::AnyTensor;

/// Answers one correction request (blocking).
type Answer = dyn Fn(&Request) -> Result<Vec<AnyTensor>> + Send + Sync;

/// Party 0's handle on an online dealer. Dropping every handle of a
/// thread-backed service ends its thread.
#[derive(Clone)]
pub struct DealerService {
    answer: Arc<Answer>,
    bytes: Arc<AtomicU64>,
}

type Reply = mpsc::SyncSender<Result<Vec<AnyTensor>>>;

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
        Ok(Self::from_fn(move |req: &Request| {
            let gone = || Error::Unsupported("the online dealer has stopped".into());
            let (reply, answer) = mpsc::sync_channel(1);
            tx.send((req.clone(), reply)).map_err(|_| gone())?;
            answer.recv().map_err(|_| gone())?
        }))
    }

    /// A service whose corrections come from `answer` (e.g. a link to a
    /// dealer process); `answer` is called once per request, in order.
    pub fn from_fn(
        answer: impl Fn(&Request) -> Result<Vec<AnyTensor>> + Send + Sync + 'static,
    ) -> Self {
        DealerService {
            answer: Arc::new(answer),
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The correction for the next request (blocks until the dealer answers).
    ///
    /// Errors: [`Error::Unsupported`] if the dealer is gone; the dealer's
    /// own errors; link errors of a remote dealer.
    pub fn correction(&self, req: &Request) -> Result<Vec<AnyTensor>> {
        let corr = (self.answer)(req)?;
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
