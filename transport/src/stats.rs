//! Byte, message and round accounting per party.

use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::PartyId;

/// Traffic counters of one party, cumulative since its transport was made.
///
/// `rounds` counts distinct round tags this party sent or received on
/// (ordered tags grow monotonically in a session, so one is counted the
/// first time a tag above all earlier ones is seen; an unordered tag, see
/// [`crate::UNORDERED`], the first time it is seen among the last
/// [`RECENT_UNORDERED`] of them). Subtract two snapshots to measure one
/// phase or one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Payload bytes posted to peers.
    pub bytes_sent: u64,
    /// The bytes of the largest message posted in each round, summed:
    /// what the distinct payloads cost once each (a round's broadcast to
    /// every peer counts once; a message to one peer counts in full). The
    /// bytes a device must copy down for the wire.
    pub payload_bytes: u64,
    /// Payload bytes received from peers.
    pub bytes_received: u64,
    /// Messages posted.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Communication rounds this party took part in.
    pub rounds: u64,
}

impl LinkStats {
    /// The mean per unit over `n` units (e.g. per iteration); `n = 0` counts as 1.
    pub fn per(self, n: u64) -> LinkStats {
        let n = n.max(1);
        LinkStats {
            bytes_sent: self.bytes_sent / n,
            payload_bytes: self.payload_bytes / n,
            bytes_received: self.bytes_received / n,
            messages_sent: self.messages_sent / n,
            messages_received: self.messages_received / n,
            rounds: self.rounds / n,
        }
    }
}

impl Sub for LinkStats {
    type Output = LinkStats;
    fn sub(self, rhs: LinkStats) -> LinkStats {
        LinkStats {
            bytes_sent: self.bytes_sent - rhs.bytes_sent,
            payload_bytes: self.payload_bytes - rhs.payload_bytes,
            bytes_received: self.bytes_received - rhs.bytes_received,
            messages_sent: self.messages_sent - rhs.messages_sent,
            messages_received: self.messages_received - rhs.messages_received,
            rounds: self.rounds - rhs.rounds,
        }
    }
}

impl Add for LinkStats {
    type Output = LinkStats;
    fn add(self, rhs: LinkStats) -> LinkStats {
        LinkStats {
            bytes_sent: self.bytes_sent + rhs.bytes_sent,
            payload_bytes: self.payload_bytes + rhs.payload_bytes,
            bytes_received: self.bytes_received + rhs.bytes_received,
            messages_sent: self.messages_sent + rhs.messages_sent,
            messages_received: self.messages_received + rhs.messages_received,
            rounds: self.rounds + rhs.rounds,
        }
    }
}

/// Traffic of one labelled phase (see [`crate::Transport::begin_phase`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PhaseStats {
    /// The label given to `begin_phase` (`"default"` before any).
    pub label: String,
    /// Traffic while this phase was current; a label used twice accumulates.
    #[serde(flatten)]
    pub stats: LinkStats,
}

/// Everything one party's transport counted, for export as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct StatsReport {
    /// The party.
    pub party: PartyId,
    /// Number of parties.
    pub n_parties: usize,
    /// Cumulative traffic.
    pub total: LinkStats,
    /// Traffic per labelled phase, in order of first use.
    pub phases: Vec<PhaseStats>,
}

impl StatsReport {
    /// The report of `t` now.
    pub fn of(t: &dyn crate::Transport) -> StatsReport {
        StatsReport {
            party: t.party(),
            n_parties: t.n_parties(),
            total: t.stats(),
            phases: t.phase_stats(),
        }
    }

    /// Pretty-printed JSON:
    /// `{"party":0,"n_parties":3,"total":{"bytes_sent":..,...},"phases":[{"label":"online","bytes_sent":..,...}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// How many unordered round tags [`StatsRecorder`] remembers to count each
/// once (a round's messages to and from every peer come close together).
pub const RECENT_UNORDERED: usize = 64;

/// Lock-free recorder behind [`LinkStats`], shared by every transport.
#[derive(Debug, Default)]
pub struct StatsRecorder {
    bytes_sent: AtomicU64,
    payload_bytes: AtomicU64,
    bytes_received: AtomicU64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    rounds: AtomicU64,
    /// Highest ordered round tag seen, plus one (0 = none yet).
    max_tag: AtomicU64,
    /// The unordered tags seen last, oldest first.
    recent_unordered: Mutex<std::collections::VecDeque<u64>>,
    /// The rounds posted on last and their largest message, oldest first.
    recent_sends: Mutex<std::collections::VecDeque<(u64, usize)>>,
    /// Per-phase counters, in order of first use.
    phases: Mutex<Vec<PhaseStats>>,
    /// Index of the current phase in `phases`.
    current: AtomicU64,
}

impl StatsRecorder {
    fn touch_round(&self, round: u64) -> bool {
        if !crate::is_ordered(round) {
            let Ok(mut recent) = self.recent_unordered.lock() else {
                return false;
            };
            if recent.contains(&round) {
                return false;
            }
            if recent.len() == RECENT_UNORDERED {
                recent.pop_front();
            }
            recent.push_back(round);
            self.rounds.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let prev = self.max_tag.fetch_max(round + 1, Ordering::Relaxed);
        if prev < round + 1 {
            self.rounds.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn record_phase(&self, delta: LinkStats) {
        if let Ok(mut phases) = self.phases.lock() {
            if phases.is_empty() {
                phases.push(PhaseStats {
                    label: "default".into(),
                    stats: LinkStats::default(),
                });
            }
            let i = (self.current.load(Ordering::Relaxed) as usize).min(phases.len() - 1);
            phases[i].stats = phases[i].stats + delta;
        }
    }

    /// How much a message of `bytes` in `round` adds to the distinct
    /// payloads: what it exceeds the largest message posted before in that
    /// round by (rounds remembered: the last [`RECENT_UNORDERED`]).
    fn grow_payload(&self, round: u64, bytes: usize) -> u64 {
        let Ok(mut recent) = self.recent_sends.lock() else {
            return bytes as u64;
        };
        if let Some(entry) = recent.iter_mut().find(|(r, _)| *r == round) {
            let grown = bytes.saturating_sub(entry.1);
            entry.1 = entry.1.max(bytes);
            return grown as u64;
        }
        if recent.len() == RECENT_UNORDERED {
            recent.pop_front();
        }
        recent.push_back((round, bytes));
        bytes as u64
    }

    /// Records a posted message of `bytes` payload bytes in `round`.
    pub fn record_send(&self, round: u64, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        let payload = self.grow_payload(round, bytes);
        self.payload_bytes.fetch_add(payload, Ordering::Relaxed);
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        let new_round = self.touch_round(round);
        self.record_phase(LinkStats {
            bytes_sent: bytes as u64,
            payload_bytes: payload,
            messages_sent: 1,
            rounds: new_round as u64,
            ..LinkStats::default()
        });
    }

    /// Records a received message of `bytes` payload bytes in `round`.
    pub fn record_recv(&self, round: u64, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_received.fetch_add(1, Ordering::Relaxed);
        let new_round = self.touch_round(round);
        self.record_phase(LinkStats {
            bytes_received: bytes as u64,
            messages_received: 1,
            rounds: new_round as u64,
            ..LinkStats::default()
        });
    }

    /// Starts counting traffic under `label` (until the next call). A label
    /// used before continues its earlier entry.
    pub fn begin_phase(&self, label: &str) {
        if let Ok(mut phases) = self.phases.lock() {
            let i = match phases.iter().position(|p| p.label == label) {
                Some(i) => i,
                None => {
                    phases.push(PhaseStats {
                        label: label.to_string(),
                        stats: LinkStats::default(),
                    });
                    phases.len() - 1
                }
            };
            self.current.store(i as u64, Ordering::Relaxed);
        }
    }

    /// Per-phase counters, in order of first use (empty if nothing was
    /// recorded and no phase begun).
    pub fn phases(&self) -> Vec<PhaseStats> {
        self.phases.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> LinkStats {
        LinkStats {
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            payload_bytes: self.payload_bytes.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UNORDERED;

    /// Ordered tags count when they pass all earlier ones; an unordered
    /// tag counts once however many messages carry it, and does not stop
    /// later ordered tags from counting.
    #[test]
    fn rounds_count_ordered_and_unordered_tags() {
        let s = StatsRecorder::default();
        s.record_send(2, 8);
        s.record_recv(2, 8);
        for _ in 0..3 {
            s.record_send(UNORDERED | 77, 8);
            s.record_recv(UNORDERED | 77, 8);
        }
        s.record_send(UNORDERED | 5, 8);
        s.record_send(3, 8);
        assert_eq!(s.snapshot().rounds, 4);
        assert_eq!(s.snapshot().messages_sent, 6);
    }

    /// A round's broadcast counts once in `payload_bytes`, a larger
    /// message of the same round adds its excess, a message to one peer
    /// counts in full; the phase sees the same sum.
    #[test]
    fn payload_bytes_count_each_rounds_largest_message() {
        let s = StatsRecorder::default();
        s.begin_phase("p");
        s.record_send(2, 100);
        s.record_send(2, 100);
        s.record_send(3, 40);
        s.record_send(UNORDERED | 9, 10);
        s.record_send(UNORDERED | 9, 30);
        let t = s.snapshot();
        assert_eq!(t.bytes_sent, 280);
        assert_eq!(t.payload_bytes, 100 + 40 + 30);
        assert_eq!(s.phases()[0].stats.payload_bytes, 170);
    }
}
