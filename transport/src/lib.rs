//! Party-to-party byte transport for Spindle.
//!
//! One async trait, [`Transport`]: post bytes to a party, receive bytes from a
//! party, each message tagged with the protocol round it belongs to. The crate
//! knows nothing about MPC: protocol code above it sees only round-tagged
//! byte messages (the rule of mpz: protocols never see sockets).
//!
//! Implementations: [`InMemoryNetwork`] (N parties in one process, for tests
//! and the demo). TCP with TLS and RDMA fit the same trait (writer task per
//! peer behind [`Transport::send`], frames tagged with the round).

mod error;
mod memory;
mod stats;

pub use error::TransportError;
pub use memory::{InMemoryNetwork, InMemoryTransport};
pub use stats::{LinkStats, StatsRecorder};

use async_trait::async_trait;
use bytes::Bytes;

/// Index of a party in a session, 0-based.
pub type PartyId = usize;

/// A party's view of the network: round-tagged byte messages to and from each
/// of the other parties.
///
/// Contract for implementations:
/// - [`send`](Transport::send) posts the message and returns without waiting
///   for the peer (asynchronous send, so compute is never blocked on the NIC).
/// - Messages between one pair of parties are delivered in order;
///   [`recv`](Transport::recv) returns the message with the requested round
///   tag, holding back messages of other rounds until they are asked for.
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

    /// Waits for the message that party `from` sent with tag `round`.
    ///
    /// Errors: [`TransportError::PeerClosed`] if the peer went away,
    /// [`TransportError::Timeout`] after the configured timeout,
    /// [`TransportError::BadFrame`] on a duplicate round tag.
    async fn recv(&self, from: PartyId, round: u64) -> Result<Bytes, TransportError>;

    /// Bytes, messages and rounds this party has sent and received so far.
    fn stats(&self) -> LinkStats;
}
