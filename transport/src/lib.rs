//! Party-to-party byte transport for Spindle.
//!
//! One async trait, [`Transport`]: post bytes to a party, receive bytes from a
//! party, each message tagged with the protocol round it belongs to. The crate
//! knows nothing about MPC: protocol code above it sees only round-tagged
//! byte messages (the rule of mpz: protocols never see sockets).
//!
//! Implementations: [`InMemoryNetwork`] (N parties in one process, for tests
//! and the demo) and [`TcpTransport`] (one process per party, TCP with
//! mutual TLS 1.3, a reader and a writer task per peer, frames tagged with
//! the round: wire format in [`frame`] and [`handshake`]). [`Emulated`]
//! wraps any transport with per-link bandwidth and latency.
//! [`rdma::RdmaTransport`] carries the same frames over RDMA reliable
//! connections (the `rdma` cargo feature; it has never run on RDMA
//! hardware, see the [`rdma`] module and `docs/transport.md`).

mod emulate;
mod error;
pub mod frame;
pub mod handshake;
mod inbox;
pub mod link;
mod memory;
pub mod rdma;
mod stats;
mod tcp;
pub mod tls;

pub use emulate::{Emulated, LinkProfile};
pub use error::TransportError;
pub use link::{LinkOptions, Security};
pub use memory::{InMemoryNetwork, InMemoryTransport};
pub use stats::{LinkStats, PhaseStats, StatsRecorder, StatsReport};
pub use tcp::TcpTransport;
pub use tls::TlsIdentity;

use async_trait::async_trait;
use bytes::Bytes;

/// Index of a party in a session, 0-based.
pub type PartyId = usize;

/// The id the offline dealer uses in handshakes (it is not a party).
pub const DEALER: PartyId = 0xFFFF;

/// Round tags from this one up are *unordered*: a peer may send them in
/// any order and interleaved with ordered ones (the streams of a forked
/// session, each tag drawn from its own namespace). Tags below it are
/// *ordered*: a peer sends them in increasing order, so a lower tag that
/// has not come when a higher one arrives was skipped (a protocol
/// mismatch, reported as [`TransportError::BadFrame`]).
pub const UNORDERED: u64 = 1 << 63;

/// True for an ordered round tag (below [`UNORDERED`]).
pub fn is_ordered(tag: u64) -> bool {
    tag < UNORDERED
}

/// "party 3", or "the dealer" for [`DEALER`]: how errors name a peer.
pub fn peer_name(id: PartyId) -> String {
    if id == DEALER {
        "the dealer".to_string()
    } else {
        format!("party {id}")
    }
}

/// A party's view of the network: round-tagged byte messages to and from each
/// of the other parties.
///
/// Contract for implementations:
/// - [`send`](Transport::send) posts the message and returns without waiting
///   for the peer (asynchronous send, so compute is never blocked on the NIC).
/// - Messages between one pair of parties are delivered in order;
///   [`recv`](Transport::recv) returns the message with the requested round
///   tag, holding back messages of other rounds until they are asked for.
///   Several tasks may wait at once, for different tags, without blocking
///   each other (ordered and unordered tags: [`UNORDERED`]).
/// - A dead peer, a malformed frame or a timeout is a [`TransportError`],
///   never a panic and never an unbounded wait.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// This party's id.
    fn party(&self) -> PartyId;

    /// Number of parties in the session (N >= 2).
    fn n_parties(&self) -> usize;

    /// Posts `payload` for party `to`, tagged with `round`; does not wait.
    ///
    /// Errors: [`TransportError::NoSuchPeer`] for an invalid or own id,
    /// [`TransportError::PeerClosed`] when the peer is gone.
    fn send(&self, to: PartyId, round: u64, payload: Bytes) -> Result<(), TransportError>;

    /// [`send`](Transport::send) of the concatenation of `parts`, as ONE
    /// message: the receiver sees a single payload. Lets a caller send
    /// several buffers it owns without first copying them into one. The
    /// default concatenates (one copy); the TCP transport writes the parts
    /// back to back into one frame.
    ///
    /// Errors: as [`send`](Transport::send).
    fn send_parts(&self, to: PartyId, round: u64, parts: Vec<Bytes>) -> Result<(), TransportError> {
        match <[Bytes; 1]>::try_from(parts) {
            Ok([one]) => self.send(to, round, one),
            Err(parts) => self.send(to, round, Bytes::from(parts.concat())),
        }
    }

    /// Waits for the message that party `from` sent with tag `round`.
    ///
    /// Errors: [`TransportError::PeerClosed`] if the peer went away,
    /// [`TransportError::Timeout`] after the configured timeout,
    /// [`TransportError::BadFrame`] on a duplicate round tag.
    async fn recv(&self, from: PartyId, round: u64) -> Result<Bytes, TransportError>;

    /// Bytes, messages and rounds this party has sent and received so far.
    fn stats(&self) -> LinkStats;

    /// Starts accounting traffic under `label` (e.g. "setup", "online",
    /// "layer3") until the next call; see [`Transport::phase_stats`].
    /// Default: ignored.
    fn begin_phase(&self, _label: &str) {}

    /// Traffic per labelled phase, in order of first use. Default: empty.
    fn phase_stats(&self) -> Vec<PhaseStats> {
        Vec::new()
    }

    /// Ends the session gracefully: flushes every queued send and tells the
    /// peers this party is done (their later receives from it fail with
    /// [`TransportError::PeerClosed`] instead of waiting). Call it before
    /// the process exits. Waits at most the receive timeout. Default: nothing
    /// to flush.
    async fn shutdown(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Tells every peer, best-effort and within about 2 s, that this party
    /// aborts because of `reason`; their pending and later operations on
    /// this link fail with [`TransportError::Aborted`] carrying the reason.
    /// Default: nothing (peers notice the closed link instead).
    async fn abort(&self, _reason: &str) {}
}
