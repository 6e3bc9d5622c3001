//! [`Session`]: one party's handle on a computation. No global state.
//!
//! A session owns the party's transport, backend, preprocessing provider and
//! configuration, and is the only path from protocol code to the network:
//! protocols call [`Session::open`] (or [`Session::open_to`]) and the session
//! packs all values of that round into one message per peer, posts the sends
//! without waiting, then awaits the peers' messages.
//!
//! Where each part lives:
//! - [`config`]: [`SessionConfig`], [`TruncMode`], [`InnerPipeline`];
//! - [`setup`]: [`Session::connect`] (pairwise seeds, the provider) and
//!   [`Session::dry_run`] (plan recording, [`PlanHandle`]);
//! - [`open`]: the openings (one round each) and [`codec`] their wire format;
//! - [`fork`]: forked sessions (independent streams with namespaced round
//!   tags) and the lanes of an inner-layer pipeline, ordered by [`turns`];
//! - input sharing and reveal are methods of `Session` defined next to the
//!   share types they make (`share/input.rs`).

mod codec;
pub mod config;
pub(crate) mod fork;
mod open;
mod plan;
mod setup;
pub(crate) mod turns;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use spindle_transport::{LinkStats, PartyId, Transport};

pub(crate) use crate::ring::Opened;
pub use config::{InnerPipeline, LinkCost, SessionConfig, TruncMode, COMPUTE_NS_PER_ELEMENT_ROUND};
pub use plan::PlanHandle;
pub use setup::ProviderSpec;

use crate::backend::{ComputeQueue, Device};
use crate::error::{Error, Result};
use crate::preprocess::{Provider, Request};
use crate::prg::Seed;
use crate::ring::{FixedPoint, Ring, RingTensor};
use fork::Tags;
use turns::Turns;

/// One party of an MPC computation (or one stream of it: [`Session::fork`]).
pub struct Session {
    party: PartyId,
    n_parties: usize,
    transport: Option<Arc<dyn Transport>>,
    backend: Device,
    /// Shared with the lanes of an inner-layer pipeline, like the counters.
    provider: Arc<Mutex<Box<dyn Provider>>>,
    config: SessionConfig,
    /// This stream's round tags.
    tags: Tags,
    next_input: Arc<AtomicU64>,
    next_static: Arc<AtomicU64>,
    /// The namespace of static-operand ids: 0 in the root, the stream id
    /// in a fork.
    static_space: u64,
    /// This session's lane of an inner-layer pipeline, if it is one.
    lane: Option<(Arc<Turns>, usize)>,
    /// The compute stage (shared by the forks and lanes); `None`: every
    /// backend op runs inline.
    compute: Option<Arc<ComputeQueue>>,
    /// Seed shared with each other party, for input sharing.
    pair_seeds: Vec<Option<Seed>>,
    /// Link counters right after setup (start of the online phase).
    online_start: LinkStats,
    setup_stats: LinkStats,
}

/// Round tags used during setup; online rounds start after them.
const ROUND_PAIR_SEEDS: u64 = 0;
const ROUND_TFP_SEEDS: u64 = 1;
const FIRST_ONLINE_ROUND: u64 = 2;

impl Session {
    /// This party's id, 0-based.
    pub fn party(&self) -> PartyId {
        self.party
    }
    /// Number of parties N.
    pub fn n_parties(&self) -> usize {
        self.n_parties
    }
    /// The backend local share arithmetic runs on.
    pub fn backend(&self) -> &Device {
        &self.backend
    }
    /// The compute stage large backend ops are queued to
    /// ([`SessionConfig::compute_workers`]); `None`: they run inline.
    pub fn compute_queue(&self) -> Option<&Arc<ComputeQueue>> {
        self.compute.as_ref()
    }
    /// The session's configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }
    /// True for a lane of an inner-layer pipeline.
    pub fn is_lane(&self) -> bool {
        self.lane.is_some()
    }
    /// True in a dry run (no network, zero material).
    pub fn is_dry_run(&self) -> bool {
        self.transport.is_none()
    }
    /// Fixed-point parameters of the session for ring `R`.
    pub fn fixed_point<R: Ring>(&self) -> Result<FixedPoint> {
        match self.config.frac_bits {
            Some(f) => Ok(FixedPoint::new::<R>(f)?),
            None => Ok(FixedPoint::default_for::<R>()),
        }
    }

    /// Traffic since the end of setup (the online phase).
    pub fn online_stats(&self) -> LinkStats {
        self.link_stats() - self.online_start
    }
    /// Traffic of setup (pairwise seeds; dealer seeds in trusted-first-party mode).
    pub fn setup_stats(&self) -> LinkStats {
        self.setup_stats
    }
    /// Cumulative traffic of this party.
    pub fn link_stats(&self) -> LinkStats {
        self.transport
            .as_ref()
            .map(|t| t.stats())
            .unwrap_or_default()
    }
    /// Round tags this stream handed out so far (not counting its forks'
    /// and lanes'), for tests counting rounds in dry runs.
    pub fn rounds_used(&self) -> u64 {
        let setup = if self.tags.stream == 0 {
            FIRST_ONLINE_ROUND
        } else {
            0
        };
        self.tags.handed_out() - setup
    }

    /// This party's material for `req`, typed.
    ///
    /// Errors: as [`Provider::next`].
    pub fn fetch<R: Ring>(&self, req: &Request) -> Result<Vec<RingTensor<R>>> {
        let mut p = self
            .provider
            .lock()
            .map_err(|_| Error::Unsupported("provider poisoned by a panic".into()))?;
        p.next(req)?.into_typed()
    }

    /// Switches the provider to dealer stream `stream`
    /// ([`Provider::begin_stream`]); every party must call it at the same
    /// point of the program. A no-op in a dry run.
    ///
    /// Errors: [`Error::Unsupported`] for single-stream providers; link
    /// errors of a remote dealer.
    pub fn begin_stream(&self, stream: u64) -> Result<()> {
        if self.is_dry_run() {
            return Ok(());
        }
        self.provider
            .lock()
            .map_err(|_| Error::Unsupported("provider poisoned by a panic".into()))?
            .begin_stream(stream)
    }

    /// This party's material for `req` as ring-tagged tensors (for requests
    /// that mix arithmetic shares with packed binary words).
    ///
    /// Errors: as [`Provider::next`].
    pub fn fetch_any(&self, req: &Request) -> Result<Vec<crate::ring::AnyTensor>> {
        let mut p = self
            .provider
            .lock()
            .map_err(|_| Error::Unsupported("provider poisoned by a panic".into()))?;
        Ok(p.next(req)?.0)
    }

    /// A fresh id for a static operand (same sequence on every party; a
    /// fork's ids come from a namespace of its own).
    pub(crate) fn next_static_id(&self) -> u64 {
        let n = self.next_static.fetch_add(1, Ordering::SeqCst);
        match self.static_space {
            0 => n,
            s => spindle_transport::UNORDERED | (fork::mix(s, n) >> 1),
        }
    }

    /// The seed this party shares with `peer` and the next input-sharing stream.
    pub(crate) fn next_input_stream(&self) -> u64 {
        self.next_input.fetch_add(1, Ordering::SeqCst)
    }
    pub(crate) fn pair_seed(&self, peer: PartyId) -> Option<&Seed> {
        self.pair_seeds.get(peer).and_then(|s| s.as_ref())
    }
}
