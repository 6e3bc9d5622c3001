//! The dealer (trusted third party) of the offline phase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::correlation::party0_correction;
use super::{ForkStore, PartyStore, Plan, Request};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::prg::Seed;
use crate::ring::AnyTensor;

/// Generates correlated randomness for N parties from one seed per party.
///
/// Party i's material for request t is expanded from its seed (streams in
/// [`crate::prg`]); the dealer computes only party 0's corrections. The
/// dealer never sees inputs, and parties never see its other seeds.
pub struct Dealer {
    seeds: Vec<Seed>,
    /// The dealer's own randomness (values no party may derive, e.g. daBits).
    private: Seed,
    backend: Device,
    /// Full masks of static operands by id, shared with the dealers of
    /// forked streams (a fork may multiply by its parent's static weights).
    statics: Arc<Mutex<HashMap<u64, AnyTensor>>>,
    next: usize,
}

/// The master seed of a dealer: `given` (a seed the user passed with
/// `flag`, for tests and bit-exact reproduction; logged as a warning, since
/// whoever knows it can unmask every share of the run), else fresh OS
/// randomness.
///
/// Errors: [`Error::Unsupported`] when the OS has no randomness to give.
pub fn master_seed(given: Option<Seed>, flag: &str) -> Result<Seed> {
    match given {
        Some(s) => {
            tracing::warn!(
                "dealer randomness comes from the fixed seed of {flag}: anyone who knows it can \
                 unmask every share of this run; use it for tests and reproduction only"
            );
            Ok(s)
        }
        None => Seed::random(),
    }
}

impl Dealer {
    /// A dealer for `n_parties` with fresh seeds from the OS CSPRNG.
    ///
    /// Errors: [`Error::InvalidParty`] for fewer than 2 parties.
    pub fn new(n_parties: usize, backend: Device) -> Result<Self> {
        Self::from_master_seed(n_parties, Seed::random()?, backend)
    }

    /// A dealer whose party seeds derive from one master seed (reproducible
    /// runs: tests, `--resume`).
    ///
    /// Errors: [`Error::InvalidParty`] for fewer than 2 parties.
    pub fn from_master_seed(n_parties: usize, master: Seed, backend: Device) -> Result<Self> {
        if n_parties < 2 {
            return Err(Error::InvalidParty(format!(
                "need at least 2 parties, got {n_parties}"
            )));
        }
        Ok(Dealer {
            seeds: (0..n_parties as u64).map(|i| master.derive(i)).collect(),
            private: master.derive(u64::MAX),
            backend,
            statics: Arc::default(),
            next: 0,
        })
    }

    /// Number of parties.
    pub fn n_parties(&self) -> usize {
        self.seeds.len()
    }

    /// Party `party`'s seed (what the dealer sends that party).
    pub fn seed(&self, party: usize) -> Seed {
        self.seeds[party]
    }

    /// The dealer of forked stream `stream` ([`crate::Session::fork`]):
    /// every seed (the parties' and its own) derived under the fork's
    /// domain, as each party derives its own, and the static operands
    /// shared with this dealer.
    pub fn fork(&self, stream: u64) -> Dealer {
        Dealer {
            seeds: self.seeds.iter().map(|s| s.derive_fork(stream)).collect(),
            private: self.private.derive_fork(stream),
            backend: self.backend.clone(),
            statics: self.statics.clone(),
            next: 0,
        }
    }

    /// Party 0's corrections for `requests`, in order.
    fn corrections_for(&mut self, requests: &[Request]) -> Result<Vec<(Request, Vec<AnyTensor>)>> {
        requests
            .iter()
            .map(|req| Ok((req.clone(), self.next_correction(req)?)))
            .collect()
    }

    /// Party 0's correction for the next request.
    pub(crate) fn next_correction(&mut self, req: &Request) -> Result<Vec<AnyTensor>> {
        let mut statics = self
            .statics
            .lock()
            .map_err(|_| Error::Unsupported("dealer statics poisoned by a panic".into()))?;
        let c = party0_correction(
            &self.backend,
            req,
            self.next,
            &self.seeds,
            &self.private,
            &mut statics,
        )?;
        drop(statics);
        self.next += 1;
        Ok(c)
    }

    /// Generates a whole plan ahead of time: one store per party. Stores of
    /// parties 1..N-1 hold only the seed and the planned request count.
    ///
    /// Errors: a malformed plan (e.g. a static triple without its mask).
    pub fn generate(mut self, plan: &Plan) -> Result<Vec<PartyStore>> {
        let n = self.n_parties();
        let corrections = self.corrections_for(&plan.requests)?;
        // Forks after the root and each after its parent: the static
        // operands a fork multiplies by are dealt before it.
        let mut forks = Vec::with_capacity(plan.forks.len());
        let mut dealers: HashMap<u64, Dealer> = HashMap::new();
        for f in &plan.forks {
            let parent = match f.parent {
                0 => &self,
                p => dealers.get(&p).ok_or_else(|| {
                    Error::Unsupported(format!(
                        "the plan's fork {:#x} comes before its parent {p:#x}",
                        f.stream
                    ))
                })?,
            };
            let mut dealer = parent.fork(f.stream);
            let corrections = dealer.corrections_for(&f.requests)?;
            forks.push((f.stream, f.requests.len(), corrections));
            dealers.insert(f.stream, dealer);
        }
        let store = |party: usize| PartyStore {
            party,
            n_parties: n,
            seed: self.seeds[party],
            n_requests: plan.requests.len(),
            corrections: Vec::new(),
            forks: forks
                .iter()
                .map(|(stream, n_requests, c)| ForkStore {
                    stream: *stream,
                    n_requests: *n_requests,
                    corrections: if party == 0 { c.clone() } else { Vec::new() },
                })
                .collect(),
        };
        let mut stores: Vec<PartyStore> = (0..n).map(store).collect();
        stores[0].corrections = corrections;
        Ok(stores)
    }
}
