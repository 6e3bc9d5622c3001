//! In-memory transport: N parties in one process, one channel per ordered
//! pair (CrypTen's in-process communicator twin).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::inbox::{Inbox, Incoming};
use crate::{LinkStats, PartyId, PhaseStats, StatsRecorder, Transport, TransportError};

/// Builder of a fully connected in-memory network of N parties.
#[derive(Debug)]
pub struct InMemoryNetwork;

impl InMemoryNetwork {
    /// Endpoints for parties 0..n, connected pairwise, with a 60 s receive
    /// timeout. Panics never; `n < 2` yields endpoints with no peers.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(n: usize) -> Vec<InMemoryTransport> {
        Self::with_timeout(n, Duration::from_secs(60))
    }

    /// As [`InMemoryNetwork::new`] with a custom receive timeout.
    pub fn with_timeout(n: usize, timeout: Duration) -> Vec<InMemoryTransport> {
        // senders[from][to], receivers[to][from]
        let mut senders: Vec<Vec<Option<mpsc::UnboundedSender<Incoming>>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut receivers: Vec<Vec<Option<Inbox>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    let (tx, rx) = mpsc::unbounded_channel();
                    senders[from][to] = Some(tx);
                    receivers[to][from] = Some(Inbox::new(rx));
                }
            }
        }
        senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(party, (senders, inboxes))| InMemoryTransport {
                party,
                n,
                senders,
                inboxes,
                timeout,
                stats: StatsRecorder::default(),
            })
            .collect()
    }
}

/// One party's endpoint of an [`InMemoryNetwork`]. Dropping it closes its
/// links, so peers waiting on it get [`TransportError::PeerClosed`].
#[derive(Debug)]
pub struct InMemoryTransport {
    party: PartyId,
    n: usize,
    senders: Vec<Option<mpsc::UnboundedSender<Incoming>>>,
    inboxes: Vec<Option<Inbox>>,
    timeout: Duration,
    stats: StatsRecorder,
}

impl InMemoryTransport {
    fn no_peer(&self, peer: PartyId) -> TransportError {
        TransportError::NoSuchPeer {
            peer,
            me: self.party,
            n: self.n,
        }
    }
}

#[async_trait]
impl Transport for InMemoryTransport {
    fn party(&self) -> PartyId {
        self.party
    }

    fn n_parties(&self) -> usize {
        self.n
    }

    fn send(&self, to: PartyId, round: u64, payload: Bytes) -> Result<(), TransportError> {
        let tx = self
            .senders
            .get(to)
            .and_then(|s| s.as_ref())
            .ok_or_else(|| self.no_peer(to))?;
        let len = payload.len();
        tx.send(Ok((round, payload)))
            .map_err(|_| TransportError::PeerClosed { peer: to })?;
        self.stats.record_send(round, len);
        Ok(())
    }

    async fn recv(&self, from: PartyId, round: u64) -> Result<Bytes, TransportError> {
        let inbox = self
            .inboxes
            .get(from)
            .and_then(|s| s.as_ref())
            .ok_or_else(|| self.no_peer(from))?;
        let msg = inbox.take(from, round, self.timeout).await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn out_of_order_rounds_are_held_back() {
        let eps = InMemoryNetwork::new(2);
        eps[0].send(1, 5, Bytes::from_static(b"five")).unwrap();
        eps[0].send(1, 6, Bytes::from_static(b"six")).unwrap();
        assert_eq!(&eps[1].recv(0, 6).await.unwrap()[..], b"six");
        assert_eq!(&eps[1].recv(0, 5).await.unwrap()[..], b"five");
        let s = eps[1].stats();
        // Rounds count tags above all earlier ones (tags grow in a session):
        // round 5, received after round 6, is not a new round.
        assert_eq!((s.bytes_received, s.messages_received, s.rounds), (7, 2, 1));
        assert_eq!(eps[0].stats().bytes_sent, 7);
    }

    /// The trait's default `send_parts`: one message, the concatenation.
    #[tokio::test]
    async fn parts_are_one_message() {
        let eps = InMemoryNetwork::new(2);
        let parts = vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ];
        eps[0].send_parts(1, 0, parts).unwrap();
        eps[0]
            .send_parts(1, 1, vec![Bytes::from_static(b"f")])
            .unwrap();
        assert_eq!(&eps[1].recv(0, 0).await.unwrap()[..], b"abcde");
        assert_eq!(&eps[1].recv(0, 1).await.unwrap()[..], b"f");
        assert_eq!(eps[1].stats().messages_received, 2);
    }

    #[tokio::test]
    async fn phases_are_counted_separately() {
        let eps = InMemoryNetwork::new(2);
        eps[0].begin_phase("setup");
        eps[0].send(1, 0, Bytes::from_static(b"abc")).unwrap();
        eps[0].begin_phase("online");
        eps[0].send(1, 1, Bytes::from_static(b"defgh")).unwrap();
        eps[0].send(1, 2, Bytes::from_static(b"i")).unwrap();
        let p = eps[0].phase_stats();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[0].label.as_str(),
                p[0].stats.bytes_sent,
                p[0].stats.rounds
            ),
            ("setup", 3, 1)
        );
        assert_eq!(
            (
                p[1].label.as_str(),
                p[1].stats.bytes_sent,
                p[1].stats.rounds
            ),
            ("online", 6, 2)
        );
        let json = crate::StatsReport::of(&eps[0]).to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["total"]["bytes_sent"], 9);
        assert_eq!(v["phases"][1]["label"], "online");
        assert_eq!(v["phases"][1]["messages_sent"], 2);
    }

    #[tokio::test]
    async fn dead_peer_is_an_error_not_a_hang() {
        let mut eps = InMemoryNetwork::new(3);
        let p2 = eps.pop().unwrap();
        drop(eps.pop()); // party 1 dies
        assert_eq!(
            p2.recv(1, 0).await,
            Err(TransportError::PeerClosed { peer: 1 })
        );
        assert_eq!(
            p2.send(1, 0, Bytes::new()),
            Err(TransportError::PeerClosed { peer: 1 })
        );
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        let eps = InMemoryNetwork::with_timeout(2, Duration::from_millis(20));
        let err = eps[0].recv(1, 3).await.unwrap_err();
        assert!(matches!(
            err,
            TransportError::Timeout {
                peer: 1,
                round: 3,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn bad_ids_are_errors() {
        let eps = InMemoryNetwork::new(2);
        assert!(matches!(
            eps[0].send(0, 0, Bytes::new()),
            Err(TransportError::NoSuchPeer { .. })
        ));
        assert!(matches!(
            eps[0].recv(7, 0).await,
            Err(TransportError::NoSuchPeer { .. })
        ));
    }

    #[tokio::test]
    async fn duplicate_round_tag_is_a_bad_frame() {
        let eps = InMemoryNetwork::new(2);
        eps[0].send(1, 1, Bytes::from_static(b"a")).unwrap();
        eps[0].send(1, 1, Bytes::from_static(b"b")).unwrap();
        let err = eps[1].recv(0, 9);
        let err = tokio::time::timeout(Duration::from_millis(50), err).await;
        // Either the duplicate is detected or we time out waiting for round 9.
        match err {
            Ok(Err(TransportError::BadFrame { peer: 0, .. })) => {}
            other => panic!("expected BadFrame, got {other:?}"),
        }
    }
}
