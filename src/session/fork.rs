//! Forked sessions: independent streams of one party's computation.
//!
//! A fork is a child [`Session`] on the same party, links and backend, with
//! round tags of its own: the tags of stream `s` are drawn from a
//! namespace no other stream uses (as mpz's contexts namespace their
//! thread ids), so the messages of concurrent streams are never confused,
//! whatever the order in which they are sent and awaited. Every party must
//! fork in the same program order (the n-th fork of a stream gets the same
//! id on every party); forks of forks are namespaced under their parent.
//!
//! Two kinds:
//! - [`Session::fork`]: an *independent* stream. Its correlated randomness
//!   comes from its own dealer stream ([`crate::preprocess::Provider::fork`]),
//!   its static-operand ids and input-sharing streams from its own
//!   namespace, so forks may run concurrently with any interleaving.
//! - [`Session::lane`] (crate-private): an *ordered* stream, the lane of an
//!   inner-layer pipeline. It shares its parent's provider and counters and
//!   takes turns with its sibling lanes ([`Turns`]), so its requests keep
//!   the program's order (and every provider, a store included, serves it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use spindle_transport::UNORDERED;

use super::turns::Turns;
use super::Session;
use crate::error::{Error, Result};

/// Where a stream's round tags come from.
#[derive(Clone, Debug)]
pub(crate) struct Tags {
    /// The stream's id: 0 for the root session, a nonzero hash of the
    /// parent's id and the fork's number otherwise.
    pub(crate) stream: u64,
    next: Arc<AtomicU64>,
    forks: Arc<AtomicU64>,
}

impl Tags {
    /// The root stream, whose tags are `first`, `first + 1`, ... (ordered
    /// tags: the wire of a session that never forks is unchanged).
    pub(crate) fn root(first: u64) -> Tags {
        Tags {
            stream: 0,
            next: Arc::new(AtomicU64::new(first)),
            forks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The next fork's stream: its id and a fresh tag namespace.
    pub(crate) fn child(&self) -> Tags {
        let n = self.forks.fetch_add(1, Ordering::SeqCst);
        Tags {
            stream: mix(self.stream, n) | 1,
            next: Arc::new(AtomicU64::new(0)),
            forks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A fresh round tag of this stream: ordered in the root, unordered
    /// ([`UNORDERED`] set, the rest a hash of stream and sequence number)
    /// in a fork.
    pub(crate) fn next(&self) -> u64 {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        match self.stream {
            0 => seq,
            s => UNORDERED | (mix(s, seq) >> 1),
        }
    }

    /// Tags handed out so far (the root's start after its setup tags).
    pub(crate) fn handed_out(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// The sequence number the next tag will have (tests).
    #[cfg(test)]
    pub(crate) fn peek(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }
}

/// A 64-bit mix of two words (the SplitMix64 finalizer, Steele et al.,
/// OOPSLA 2014): the same on every party, and distinct inputs collide with
/// probability about 2^-64.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .rotate_left(29)
        .wrapping_add(b)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Session {
    /// An independent child stream of this session: same party, links and
    /// backend, its own round tags, its own dealer stream of correlated
    /// randomness, its own static-operand ids and input-sharing streams.
    /// Protocols on different forks (and on the parent) may run
    /// concurrently, in any interleaving; each fork's messages reach only
    /// the same fork on the peers. Every party must fork at the same
    /// point of the program; the n-th fork of a session is the same stream
    /// on every party.
    ///
    /// Costs nothing on the wire. Errors: [`Error::Unsupported`] when the
    /// session's provider cannot open a dealer stream for a fork
    /// ([`crate::preprocess::Provider::fork`]: the online dealer), and for
    /// a lane of an inner-layer pipeline (fork its parent instead).
    pub fn fork(&self) -> Result<Session> {
        if self.lane.is_some() {
            return Err(Error::Unsupported(
                "a lane of an inner-layer pipeline cannot fork; fork the session it came from"
                    .into(),
            ));
        }
        let tags = self.tags.child();
        let stream = tags.stream;
        let provider = self
            .provider
            .lock()
            .map_err(|_| Error::Unsupported("provider poisoned by a panic".into()))?
            .fork(tags.stream)?;
        Ok(Session {
            party: self.party,
            n_parties: self.n_parties,
            transport: self.transport.clone(),
            backend: self.backend.clone(),
            provider: Arc::new(Mutex::new(provider)),
            config: self.config.clone(),
            next_input: Arc::new(AtomicU64::new(0)),
            next_static: Arc::new(AtomicU64::new(0)),
            static_space: tags.stream,
            tags,
            lane: None,
            compute: self.compute.clone(),
            pair_seeds: self
                .pair_seeds
                .iter()
                .map(|s| s.map(|s| s.derive_fork(stream)))
                .collect(),
            online_start: self.online_start,
            setup_stats: self.setup_stats,
        })
    }

    /// `n` independent forks ([`Session::fork`]), in order.
    ///
    /// Errors: as [`Session::fork`].
    pub fn fork_n(&self, n: usize) -> Result<Vec<Session>> {
        (0..n).map(|_| self.fork()).collect()
    }

    /// The id of this session's stream: 0 for a session from
    /// [`Session::connect`] or [`Session::dry_run`], the same nonzero
    /// value on every party for the same fork.
    pub fn stream_id(&self) -> u64 {
        self.tags.stream
    }

    /// Lane `lane` of an inner-layer pipeline over this session
    /// ([`crate::pipeline::Lanes`]): an ordered fork. Same party, links,
    /// backend, provider and counters, round tags of its own, and every
    /// opening hands the turn to the next lane between its sends and its
    /// receives ([`Turns`]).
    pub(crate) fn lane(&self, turns: Arc<Turns>, lane: usize) -> Session {
        Session {
            party: self.party,
            n_parties: self.n_parties,
            transport: self.transport.clone(),
            backend: self.backend.clone(),
            provider: self.provider.clone(),
            config: self.config.clone(),
            tags: self.tags.child(),
            next_input: self.next_input.clone(),
            next_static: self.next_static.clone(),
            static_space: self.static_space,
            lane: Some((turns, lane)),
            compute: self.compute.clone(),
            pair_seeds: self.pair_seeds.clone(),
            online_start: self.online_start,
            setup_stats: self.setup_stats,
        }
    }

    /// The point between an opening's sends and its receives: a lane of an
    /// inner-layer pipeline lets the other lanes compute while its messages
    /// travel. Every opening passes here, in dry runs too, so that the
    /// order of requests is the same in the plan and online.
    pub(super) async fn in_flight(&self) {
        if let Some((turns, lane)) = &self.lane {
            turns.hand_over(*lane).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root tags are ordered and consecutive; fork tags are unordered,
    /// distinct between forks and between a fork's rounds, and the same
    /// for the same fork of the same parent (what every party computes).
    #[test]
    fn fork_tags_are_namespaced_and_deterministic() {
        let root = Tags::root(2);
        assert_eq!((root.next(), root.next()), (2, 3));
        let (a, b) = (root.child(), root.child());
        let again = Tags::root(2);
        let (a2, _) = (again.child(), again.child());
        assert_eq!(a.stream, a2.stream);
        assert_ne!(a.stream, b.stream);
        let ta: Vec<u64> = (0..100).map(|_| a.next()).collect();
        let tb: Vec<u64> = (0..100).map(|_| b.next()).collect();
        let ta2: Vec<u64> = (0..100).map(|_| a2.next()).collect();
        assert_eq!(ta, ta2);
        let mut all: Vec<u64> = ta.iter().chain(&tb).copied().collect();
        assert!(all.iter().all(|&t| !spindle_transport::is_ordered(t)));
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 200);
        // A fork of a fork is neither its parent nor its parent's sibling.
        let aa = a.child();
        assert!(![0, a.stream, b.stream].contains(&aa.stream));
        assert_eq!(a.peek(), 100);
    }
}
