//! Byte, message and round accounting per party.

use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};

/// Traffic counters of one party, cumulative since its transport was made.
///
/// `rounds` counts distinct round tags this party sent or received on (tags
/// grow monotonically in a session, so a round is counted the first time a
/// tag above all earlier ones is seen). Subtract two snapshots to measure one
/// phase or one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Payload bytes posted to peers.
    pub bytes_sent: u64,
    /// Payload bytes received from peers.
    pub bytes_received: u64,
    /// Messages posted.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Communication rounds this party took part in.
    pub rounds: u64,
}

impl Sub for LinkStats {
    type Output = LinkStats;
    fn sub(self, rhs: LinkStats) -> LinkStats {
        LinkStats {
            bytes_sent: self.bytes_sent - rhs.bytes_sent,
            bytes_received: self.bytes_received - rhs.bytes_received,
            messages_sent: self.messages_sent - rhs.messages_sent,
            messages_received: self.messages_received - rhs.messages_received,
            rounds: self.rounds - rhs.rounds,
        }
    }
}

/// Lock-free recorder behind [`LinkStats`], shared by every transport.
#[derive(Debug, Default)]
pub struct StatsRecorder {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    rounds: AtomicU64,
    /// Highest round tag seen, plus one (0 = none yet).
    max_tag: AtomicU64,
}

impl StatsRecorder {
    fn touch_round(&self, round: u64) {
        let prev = self.max_tag.fetch_max(round + 1, Ordering::Relaxed);
        if prev < round + 1 {
            self.rounds.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a posted message of `bytes` payload bytes in `round`.
    pub fn record_send(&self, round: u64, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        self.touch_round(round);
    }

    /// Records a received message of `bytes` payload bytes in `round`.
    pub fn record_recv(&self, round: u64, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_received.fetch_add(1, Ordering::Relaxed);
        self.touch_round(round);
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> LinkStats {
        LinkStats {
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
        }
    }
}
