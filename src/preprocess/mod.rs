//! Correlated randomness: requests, providers, the dealer and its stores.
//!
//! The online phase asks a [`Provider`] for material one [`Request`] at a
//! time (CrypTen's provider abstraction). Offline and online are separate
//! phases: a dry run records the requests into a [`Plan`]
//! ([`PlanRecorder`]), the [`Dealer`] generates the plan into one
//! [`PartyStore`] per party, and the online phase consumes the stores
//! ([`SeededProvider`]), failing with a typed error if the material runs out
//! or does not match what is asked.
//!
//! Seeded expansion: the dealer shares a 128-bit seed with every party;
//! every party expands its share of the *random* values (a, b, r) and
//! parties 1..N-1 also their share of the *correlated* values (c, r', r_msb)
//! from that seed, so parties 1..N-1 receive nothing but their seed. Party
//! 0 alone receives corrections: its share of each correlated value, chosen
//! so that the shares sum to the right value.

mod correlation;
mod dealer;
mod plan;
mod provider;
mod service;
mod store;
mod streams;

pub use correlation::{Link, LinkedItems, Request};
pub use dealer::{master_seed, Dealer, DealerTree, MAX_OPEN_FORKS};
pub use plan::{ForkPlan, Plan, PlanRecorder};
pub use provider::{Provider, SeededProvider};
pub use service::{CorrectionSource, DealerService};
pub(crate) use store::{decode_tensors, encode_tensors};
pub use store::{ForkStore, PartyStore};
pub use streams::{StreamSource, StreamingProvider};

use crate::error::Result;
use crate::ring::{AnyTensor, Ring, RingTensor};

/// One party's share of the material for one request, in the order the
/// request kind documents (see [`Request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material(pub Vec<AnyTensor>);

impl Material {
    /// The tensors as shares over the ring `R`.
    ///
    /// Errors: [`crate::Error::Format`] if the material is over another ring.
    pub fn into_typed<R: Ring>(self) -> Result<Vec<RingTensor<R>>> {
        self.0.into_iter().map(|t| Ok(R::from_any(t)?)).collect()
    }
}
