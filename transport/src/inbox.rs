//! The receiving end of one peer link, shared by every transport: messages
//! arrive in order on a channel (fed by a reader task, the RDMA completion
//! thread or an in-memory sender), and [`Inbox::take`] returns the one with
//! the requested round tag, holding back the others until they are asked
//! for.
//!
//! Several tasks may wait on one inbox at once (forked sessions: each
//! stream waits for its own tags). No waiter blocks another: one of them at
//! a time reads the next frame off the channel, files it, and wakes the
//! rest, so a message is never stuck behind a waiter whose own message has
//! not come yet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Mutex as AsyncMutex, Notify};
use tokio::time::Instant;

use crate::{is_ordered, PartyId, TransportError};

/// One item from a link: a data message `(round, payload)`, or the link's
/// terminal error (the last item the feeder sends).
pub(crate) type Incoming = Result<(u64, Bytes), TransportError>;

/// Messages from one peer that have arrived but not been asked for yet.
pub(crate) struct Inbox {
    /// The channel; whoever holds the lock is the one reading it.
    rx: AsyncMutex<mpsc::UnboundedReceiver<Incoming>>,
    filed: Mutex<Filed>,
    /// Wakes the waiters when a frame was filed or the reader left.
    changed: Notify,
}

#[derive(Default)]
struct Filed {
    held: HashMap<u64, Bytes>,
    /// Highest ordered round tag taken off the channel.
    highest: Option<u64>,
    /// The link's terminal error, once seen.
    error: Option<TransportError>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.filed.lock().map(|f| f.held.len()).unwrap_or(0);
        f.debug_struct("Inbox").field("held", &held).finish()
    }
}

impl Inbox {
    /// An inbox reading from `rx`.
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Incoming>) -> Inbox {
        Inbox {
            rx: AsyncMutex::new(rx),
            filed: Mutex::new(Filed::default()),
            changed: Notify::new(),
        }
    }

    /// Waits up to `timeout` for the message that `from` tagged `round`.
    /// Messages with other tags that arrive first are held back for later
    /// calls; held messages are returned even after the link failed.
    ///
    /// Errors: the link's terminal error ([`TransportError::PeerClosed`],
    /// [`TransportError::Aborted`], ...), [`TransportError::Timeout`], and
    /// [`TransportError::BadFrame`] for an ordered round already received or
    /// skipped, a higher ordered round arriving first (the peer is ahead of
    /// this party's protocol: a protocol mismatch), or two messages with one
    /// tag.
    pub(crate) async fn take(
        &self,
        from: PartyId,
        round: u64,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        let deadline = Instant::now() + timeout;
        let mut first = true;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check: a frame filed between the check
            // and the await still wakes this waiter.
            changed.as_mut().enable();
            if let Some(done) = self.check(from, round, first) {
                return done;
            }
            first = false;
            match self.rx.try_lock() {
                Ok(mut rx) => {
                    let next = tokio::time::timeout_at(deadline, rx.recv()).await;
                    drop(rx);
                    let result = self.file(from, round, next, timeout);
                    // The reader's place is free: another waiter may take it.
                    self.changed.notify_waiters();
                    if let Some(done) = result {
                        return done;
                    }
                }
                Err(_) => {
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        return Err(timed_out(from, round, timeout));
                    }
                }
            }
        }
    }

    /// The answer for `round` from what is filed, if there is one yet.
    fn check(
        &self,
        from: PartyId,
        round: u64,
        first: bool,
    ) -> Option<Result<Bytes, TransportError>> {
        let mut f = self.filed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(msg) = f.held.remove(&round) {
            return Some(Ok(msg));
        }
        if let Some(e) = &f.error {
            return Some(Err(e.clone()));
        }
        let h = f.highest.filter(|&h| is_ordered(round) && h >= round)?;
        let detail = if first {
            format!("round {round} was already received or skipped (the peer is at round {h})")
        } else {
            format!("out-of-order frame: round {h} arrived while round {round} was awaited")
        };
        let e = TransportError::BadFrame { peer: from, detail };
        if !first {
            f.error = Some(e.clone());
        }
        Some(Err(e))
    }

    /// Files what the reader took off the channel; returns the answer when
    /// it settles `round` (its message, or an error).
    fn file(
        &self,
        from: PartyId,
        round: u64,
        next: Result<Option<Incoming>, tokio::time::error::Elapsed>,
        timeout: Duration,
    ) -> Option<Result<Bytes, TransportError>> {
        let item = match next {
            Err(_) => return Some(Err(timed_out(from, round, timeout))),
            Ok(None) => Err(TransportError::PeerClosed { peer: from }),
            Ok(Some(item)) => item,
        };
        let mut f = self.filed.lock().unwrap_or_else(|e| e.into_inner());
        match item {
            Err(e) => {
                f.error = Some(e.clone());
                Some(Err(e))
            }
            Ok((tag, msg)) => {
                if is_ordered(tag) {
                    f.highest = Some(f.highest.map_or(tag, |h| h.max(tag)));
                }
                if tag == round {
                    return Some(Ok(msg));
                }
                if is_ordered(tag) && is_ordered(round) && tag > round {
                    let e = TransportError::BadFrame {
                        peer: from,
                        detail: format!(
                            "out-of-order frame: round {tag} arrived while round {round} was awaited"
                        ),
                    };
                    f.error = Some(e.clone());
                    return Some(Err(e));
                }
                if f.held.insert(tag, msg).is_some() {
                    let e = TransportError::BadFrame {
                        peer: from,
                        detail: format!("two messages tagged with round {tag}"),
                    };
                    f.error = Some(e.clone());
                    return Some(Err(e));
                }
                None
            }
        }
    }
}

fn timed_out(peer: PartyId, round: u64, timeout: Duration) -> TransportError {
    TransportError::Timeout {
        peer,
        round,
        millis: timeout.as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UNORDERED;
    use std::sync::Arc;

    fn inbox() -> (mpsc::UnboundedSender<Incoming>, Arc<Inbox>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Arc::new(Inbox::new(rx)))
    }
    const T: Duration = Duration::from_secs(5);

    /// Two waiters on one inbox, each for a tag of its own stream: the one
    /// whose message comes second does not block the other (the cycle that
    /// would deadlock two forked streams across two parties).
    #[tokio::test]
    async fn concurrent_waiters_do_not_block_each_other() {
        let (tx, ib) = inbox();
        let (a, b) = (UNORDERED | 11, UNORDERED | 22);
        let ib2 = ib.clone();
        let wait_a = tokio::spawn(async move { ib2.take(0, a, T).await });
        tokio::task::yield_now().await;
        // b's message comes while a (maybe the reader) still waits.
        tx.send(Ok((b, Bytes::from_static(b"b")))).unwrap();
        let got_b = tokio::time::timeout(Duration::from_secs(2), ib.take(0, b, T))
            .await
            .expect("b is not stuck behind a");
        assert_eq!(&got_b.unwrap()[..], b"b");
        tx.send(Ok((a, Bytes::from_static(b"a")))).unwrap();
        assert_eq!(&wait_a.await.unwrap().unwrap()[..], b"a");
    }

    /// Unordered tags may arrive in any order and between ordered ones; the
    /// ordered ones keep their checks.
    #[tokio::test]
    async fn unordered_tags_arrive_in_any_order() {
        let (tx, ib) = inbox();
        for tag in [UNORDERED | 9, 3, UNORDERED | 2, 4] {
            tx.send(Ok((tag, Bytes::from(tag.to_le_bytes().to_vec()))))
                .unwrap();
        }
        for tag in [4, UNORDERED | 2, 3, UNORDERED | 9] {
            let m = ib.take(0, tag, T).await.unwrap();
            assert_eq!(&m[..], &tag.to_le_bytes());
        }
        let e = ib.take(0, 2, T).await.unwrap_err();
        assert!(e.to_string().contains("already received or skipped"), "{e}");
        tx.send(Ok((UNORDERED | 5, Bytes::new()))).unwrap();
        tx.send(Ok((UNORDERED | 5, Bytes::new()))).unwrap();
        let e = ib.take(0, UNORDERED | 6, T).await.unwrap_err();
        assert!(e.to_string().contains("two messages tagged"), "{e}");
    }

    /// A waiter that is not the reader still times out at its deadline.
    #[tokio::test]
    async fn every_waiter_times_out() {
        let (_tx, ib) = inbox();
        let short = Duration::from_millis(50);
        let (a, b) = tokio::join!(ib.take(1, UNORDERED | 1, short), ib.take(1, 7, short));
        assert!(
            matches!(a, Err(TransportError::Timeout { peer: 1, .. })),
            "{a:?}"
        );
        assert!(
            matches!(
                b,
                Err(TransportError::Timeout {
                    peer: 1,
                    round: 7,
                    ..
                })
            ),
            "{b:?}"
        );
    }
}
