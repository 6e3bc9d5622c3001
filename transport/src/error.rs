//! Transport errors.

use crate::PartyId;

/// Why a transport operation failed. Every variant names the peer concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer's endpoint is gone (process died, connection closed).
    #[error("party {peer} closed its connection (dead peer or aborted protocol)")]
    PeerClosed {
        /// The peer.
        peer: PartyId,
    },
    /// No message arrived in time.
    #[error("timed out after {millis} ms waiting for round {round} from party {peer}")]
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
    /// A frame that breaks the protocol (bad length, duplicate round tag).
    #[error("malformed frame from party {peer}: {detail}")]
    BadFrame {
        /// The peer.
        peer: PartyId,
        /// What was wrong.
        detail: String,
    },
}
