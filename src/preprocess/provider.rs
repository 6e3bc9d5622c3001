//! The [`Provider`] trait and the seeded provider every party runs online.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::correlation::expand_party;
use super::{Dealer, ForkStore, Material, Request};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::prg::Seed;
use crate::ring::AnyTensor;

/// A source of correlated randomness for one party (CrypTen's provider).
///
/// Requests are served strictly in order; all parties issue the same
/// sequence of requests because MPC programs are oblivious (their control
/// flow does not depend on secret data).
pub trait Provider: Send {
    /// This party's share of the material for `req`.
    ///
    /// Errors: [`Error::PreprocessingExhausted`] when no material is left,
    /// [`Error::PreprocessingMismatch`] when `req` is not what the plan holds
    /// at this position.
    fn next(&mut self, req: &Request) -> Result<Material>;

    /// What kind of provider this is, for logs.
    fn label(&self) -> &'static str;

    /// Switches to dealer stream `stream`: material derived from the
    /// dealer's master seed and `stream` (e.g. one stream per training
    /// epoch, so a resumed run gets the same material as an uninterrupted
    /// one). Every party switches at the same point of the program.
    ///
    /// Errors: [`Error::Unsupported`] for providers with a single stream
    /// (the default: stores, trusted first party).
    fn begin_stream(&mut self, stream: u64) -> Result<()> {
        Err(Error::Unsupported(format!(
            "the {} provider has a single stream and cannot switch to stream {stream}; \
             use the online dealer (--preprocessing online-dealer)",
            self.label()
        )))
    }

    /// The provider of a forked session ([`crate::Session::fork`]) whose
    /// stream id is `stream` (nonzero, the same on every party): material
    /// from a dealer stream of its own, independent of this provider's
    /// order, so the fork and its parent may request in any interleaving.
    ///
    /// Errors: [`Error::Unsupported`] for providers that cannot open one
    /// (the default).
    fn fork(&mut self, stream: u64) -> Result<Box<dyn Provider>> {
        Err(Error::Unsupported(format!(
            "the {} provider cannot serve a forked session (stream {stream:#x}); \
             run forks with a dealer (a store or the online dealer) or the trusted first party",
            self.label()
        )))
    }
}

/// Where party 0's corrections come from.
enum Corrections {
    /// Parties 1..N-1: everything is expanded from the seed. `available`
    /// is the planned request count (`None`: unbounded, trusted first party).
    FromSeed { available: Option<usize> },
    /// Party 0 with a dealer's store: the plan's requests and corrections.
    Store {
        items: VecDeque<(Request, Vec<AnyTensor>)>,
        available: usize,
    },
    /// Party 0 acting as the dealer itself (trusted first party mode).
    Dealer(Box<Dealer>),
    /// Party 0 asking a dealer that runs elsewhere, request by request.
    Remote(super::DealerService),
}

/// The online provider: expands this party's material from its dealer seed
/// and, for party 0, adds the dealer's corrections.
pub struct SeededProvider {
    seed: Seed,
    index: usize,
    backend: Device,
    corrections: Corrections,
    /// Material expanded ahead of the online phase ([`SeededProvider::expand_ahead`]).
    ready: VecDeque<(Request, Material)>,
    /// The forks' parts of a store, taken as each fork is opened (shared
    /// with the providers of forks, which may fork again).
    fork_stores: Arc<Mutex<HashMap<u64, ForkStore>>>,
}

impl SeededProvider {
    /// Party 1..N-1 of a dealer run: `available` requests were planned.
    pub fn from_seed(seed: Seed, available: Option<usize>, backend: Device) -> Self {
        SeededProvider {
            seed,
            index: 0,
            backend,
            corrections: Corrections::FromSeed { available },
            ready: VecDeque::new(),
            fork_stores: Arc::default(),
        }
    }

    /// Party 0 of a dealer run, with the corrections of every planned request.
    pub fn with_corrections(
        seed: Seed,
        items: Vec<(Request, Vec<AnyTensor>)>,
        backend: Device,
    ) -> Self {
        let available = items.len();
        SeededProvider {
            seed,
            index: 0,
            backend,
            corrections: Corrections::Store {
                items: items.into(),
                available,
            },
            ready: VecDeque::new(),
            fork_stores: Arc::default(),
        }
    }

    /// Party 0 in trusted-first-party mode: it runs the dealer itself and
    /// therefore knows every mask. For tests and demos only.
    pub fn trusted_first_party(dealer: Dealer, backend: Device) -> Self {
        SeededProvider {
            seed: dealer.seed(0),
            index: 0,
            backend,
            corrections: Corrections::Dealer(Box::new(dealer)),
            ready: VecDeque::new(),
            fork_stores: Arc::default(),
        }
    }

    /// Party 0 served by an online dealer ([`super::DealerService`]).
    pub fn with_online_dealer(seed: Seed, service: super::DealerService, backend: Device) -> Self {
        SeededProvider {
            seed,
            index: 0,
            backend,
            corrections: Corrections::Remote(service),
            ready: VecDeque::new(),
            fork_stores: Arc::default(),
        }
    }

    /// This provider with the forks' parts of its store, served when the
    /// session forks ([`Provider::fork`]).
    pub fn with_fork_stores(mut self, forks: Vec<ForkStore>) -> Self {
        self.fork_stores = Arc::new(Mutex::new(
            forks.into_iter().map(|f| (f.stream, f)).collect(),
        ));
        self
    }

    /// Requests served so far (or expanded ahead).
    pub fn served(&self) -> usize {
        self.index
    }

    /// Expands the material of `plan` (the requests the program will make,
    /// in order: the dry run's plan, public like the program) now, as part
    /// of the offline phase, so the online phase only pops it: the PRG
    /// expansion of masks and triples leaves the online time. Costs the
    /// memory of all that material at once; a request that differs from the
    /// plan's online is [`Error::PreprocessingMismatch`].
    ///
    /// Errors: as [`Provider::next`] (e.g. more requests than the store holds).
    pub fn expand_ahead(&mut self, plan: &[Request]) -> Result<()> {
        for req in plan {
            let m = self.expand(req)?;
            self.ready.push_back((req.clone(), m));
        }
        Ok(())
    }

    /// The next request's material, expanded from the seed now.
    fn expand(&mut self, req: &Request) -> Result<Material> {
        let index = self.index;
        let correction = match &mut self.corrections {
            Corrections::FromSeed { available } => {
                if let Some(n) = *available {
                    if index >= n {
                        return Err(Error::PreprocessingExhausted {
                            index,
                            request: req.to_string(),
                            available: n,
                        });
                    }
                }
                None
            }
            Corrections::Store { items, available } => {
                let (planned, corr) =
                    items
                        .pop_front()
                        .ok_or_else(|| Error::PreprocessingExhausted {
                            index,
                            request: req.to_string(),
                            available: *available,
                        })?;
                if &planned != req {
                    return Err(Error::PreprocessingMismatch {
                        index,
                        expected: planned.to_string(),
                        got: req.to_string(),
                    });
                }
                Some(corr)
            }
            Corrections::Dealer(dealer) => Some(dealer.next_correction(req)?),
            Corrections::Remote(service) => Some(service.correction(req)?),
        };
        let material = expand_party(&self.backend, req, index, &self.seed, correction)?;
        self.index += 1;
        Ok(Material(material))
    }
}

impl Provider for SeededProvider {
    fn next(&mut self, req: &Request) -> Result<Material> {
        match self.ready.pop_front() {
            Some((planned, m)) if &planned == req => Ok(m),
            Some((planned, _)) => Err(Error::PreprocessingMismatch {
                index: self.index - self.ready.len() - 1,
                expected: planned.to_string(),
                got: req.to_string(),
            }),
            None => self.expand(req),
        }
    }

    fn fork(&mut self, stream: u64) -> Result<Box<dyn Provider>> {
        let from_store = || {
            self.fork_stores
                .lock()
                .map_err(|_| Error::Unsupported("fork stores poisoned by a panic".into()))?
                .remove(&stream)
                .ok_or_else(|| Error::PreprocessingMismatch {
                    index: self.index,
                    expected: "no fork here (the plan's forks are all opened)".into(),
                    got: format!("a fork with stream id {stream:#x}"),
                })
        };
        let corrections = match &self.corrections {
            Corrections::FromSeed { available: None } => Corrections::FromSeed { available: None },
            Corrections::FromSeed { available: Some(_) } => Corrections::FromSeed {
                available: Some(from_store()?.n_requests),
            },
            Corrections::Store { .. } => {
                let f = from_store()?;
                Corrections::Store {
                    available: f.corrections.len(),
                    items: f.corrections.into(),
                }
            }
            Corrections::Dealer(d) => Corrections::Dealer(Box::new(d.fork(stream))),
            Corrections::Remote(service) => Corrections::Remote(service.fork(stream)?),
        };
        Ok(Box::new(SeededProvider {
            seed: self.seed.derive_fork(stream),
            index: 0,
            backend: self.backend.clone(),
            corrections,
            ready: VecDeque::new(),
            fork_stores: self.fork_stores.clone(),
        }))
    }

    fn label(&self) -> &'static str {
        match self.corrections {
            Corrections::FromSeed { .. } => "seeded (dealer)",
            Corrections::Store { .. } => "seeded + corrections (dealer)",
            Corrections::Dealer(_) => "trusted first party",
            Corrections::Remote(_) => "seeded + corrections (online dealer)",
        }
    }
}
