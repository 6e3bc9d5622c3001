//! The receiving end of one peer link, shared by the TCP and RDMA
//! transports: messages arrive in order on a channel (fed by a reader task
//! or the RDMA completion thread), [`Inbox::take`] returns the one with the
//! requested round tag and holds back earlier ones until they are asked for.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{PartyId, TransportError};

/// One item from a link: a data message `(round, payload)`, or the link's
/// terminal error (the last item the feeder sends).
pub(crate) type Incoming = Result<(u64, Bytes), TransportError>;

/// Messages from one peer that have arrived but not been asked for yet.
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<Incoming>,
    held: HashMap<u64, Bytes>,
    /// Highest round tag taken off the channel.
    highest: Option<u64>,
    /// The link's terminal error, once seen.
    error: Option<TransportError>,
}

impl Inbox {
    /// An inbox reading from `rx`.
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Incoming>) -> Inbox {
        Inbox {
            rx,
            held: HashMap::new(),
            highest: None,
            error: None,
        }
    }

    /// Waits up to `timeout` for the message that `from` tagged `round`.
    /// Messages with lower tags that arrive first are held back for later
    /// calls; held messages are returned even after the link failed.
    ///
    /// Errors: the link's terminal error ([`TransportError::PeerClosed`],
    /// [`TransportError::Aborted`], ...), [`TransportError::Timeout`], and
    /// [`TransportError::BadFrame`] for a round already received or skipped,
    /// or a higher round arriving first (the peer is ahead of this party's
    /// protocol: a protocol mismatch).
    pub(crate) async fn take(
        &mut self,
        from: PartyId,
        round: u64,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        if let Some(msg) = self.held.remove(&round) {
            return Ok(msg);
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if let Some(h) = self.highest.filter(|&h| h >= round) {
            return Err(TransportError::BadFrame {
                peer: from,
                detail: format!(
                    "round {round} was already received or skipped (the peer is at round {h})"
                ),
            });
        }
        let deadline = Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            let item = match next {
                Err(_) => {
                    return Err(TransportError::Timeout {
                        peer: from,
                        round,
                        millis: timeout.as_millis() as u64,
                    })
                }
                Ok(None) => Err(TransportError::PeerClosed { peer: from }),
                Ok(Some(item)) => item,
            };
            match item {
                Err(e) => {
                    self.error = Some(e.clone());
                    return Err(e);
                }
                Ok((tag, msg)) => {
                    self.highest = Some(tag);
                    if tag == round {
                        return Ok(msg);
                    }
                    if tag > round {
                        let e = TransportError::BadFrame {
                            peer: from,
                            detail: format!(
                                "out-of-order frame: round {tag} arrived while round {round} was awaited"
                            ),
                        };
                        self.error = Some(e.clone());
                        return Err(e);
                    }
                    self.held.insert(tag, msg);
                }
            }
        }
    }
}
