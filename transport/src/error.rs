//! Transport errors.

use crate::{peer_name, PartyId};

/// Why a transport operation failed. Every variant raised by a link names
/// the peer concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer's endpoint is gone (process died, connection closed).
    #[error("{} closed its connection (dead peer or aborted protocol)", peer_name(*peer))]
    PeerClosed {
        /// The peer.
        peer: PartyId,
    },
    /// No message arrived in time.
    #[error("timed out after {millis} ms waiting for round {round} from {}", peer_name(*peer))]
    Timeout {
        /// The peer.
        peer: PartyId,
        /// The round awaited.
        round: u64,
        /// The timeout in milliseconds.
        millis: u64,
    },
    /// The party id is out of range or is this party itself.
    #[error("no peer {peer}: this is party {me} of {n}")]
    NoSuchPeer {
        /// The id asked for.
        peer: PartyId,
        /// This party.
        me: PartyId,
        /// Number of parties.
        n: usize,
    },
    /// A frame that breaks the protocol (bad length, unknown kind, garbage,
    /// duplicate or out-of-order round tag).
    #[error("malformed frame from {}: {detail}", peer_name(*peer))]
    BadFrame {
        /// The peer.
        peer: PartyId,
        /// What was wrong.
        detail: String,
    },
    /// The peer aborted the session and said why (typically: another
    /// peer of it failed).
    #[error("{} aborted: {reason}", peer_name(*peer))]
    Aborted {
        /// The peer that aborted.
        peer: PartyId,
        /// Its reason.
        reason: String,
    },
    /// The connection to the peer broke (reset, write error, write stall).
    #[error("link to {} failed: {detail}", peer_name(*peer))]
    Link {
        /// The peer.
        peer: PartyId,
        /// What happened.
        detail: String,
    },
    /// A peer could not be reached, or did not connect, during start-up.
    #[error("cannot connect {with} ({addr}): {detail}")]
    Connect {
        /// Who ("party 2", "the dealer", or a list).
        with: String,
        /// Address dialled or listened on.
        addr: String,
        /// What happened.
        detail: String,
    },
    /// TLS or the hello exchange failed, or a side refused the other
    /// (wrong session id, protocol version, certificate, party id).
    #[error("handshake with {with} failed: {detail}")]
    Handshake {
        /// Who ("party 2", "the dealer", or a remote address).
        with: String,
        /// What happened, with the refusal reason if any.
        detail: String,
    },
    /// Bad local configuration: unreadable key or certificate, bad address,
    /// bad option.
    #[error("transport configuration: {0}")]
    Config(String),
    /// A transport that this build or host does not provide.
    #[error("unsupported transport: {0}")]
    Unsupported(String),
}
