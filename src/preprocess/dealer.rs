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
        let mut tree = DealerTree::new(self);
        let mut forks = Vec::with_capacity(plan.forks.len());
        for f in &plan.forks {
            tree.fork(f.parent, f.stream)?;
            let corrections = tree.dealer(f.stream)?.corrections_for(&f.requests)?;
            forks.push((f.stream, f.requests.len(), corrections));
        }
        let seeds = tree.dealer(0)?.seeds.clone();
        let store = |party: usize| PartyStore {
            party,
            n_parties: n,
            seed: seeds[party],
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

/// Most dealers of forked streams a [`DealerTree`] holds at once: a bound
/// on what one party 0 can make a dealer keep (forks are released when
/// their session is dropped, so a long run stays far below it).
pub const MAX_OPEN_FORKS: usize = 1 << 16;

/// The dealers of one dealer stream and of its forks, by stream id (0: the
/// root), so one dealer serves a session that forks
/// ([`crate::Session::fork`]): each fork's material comes from its own
/// dealer, whatever the order in which the forks ask.
pub struct DealerTree {
    dealers: HashMap<u64, Dealer>,
}

impl DealerTree {
    /// A tree whose root (stream 0) is `root`.
    pub fn new(root: Dealer) -> Self {
        DealerTree {
            dealers: HashMap::from([(0, root)]),
        }
    }

    /// Replaces the root (a new dealer stream began) and keeps the forks
    /// already open: fork ids are never reused within a session, so a fork
    /// of the previous root keeps its own dealer until released.
    pub fn set_root(&mut self, root: Dealer) {
        self.dealers.insert(0, root);
    }

    /// Opens fork `child` of stream `parent` ([`Dealer::fork`]).
    ///
    /// Errors: [`Error::PreprocessingMismatch`] when `parent` is not open
    /// or `child` is 0 or already open, [`Error::Unsupported`] beyond
    /// [`MAX_OPEN_FORKS`].
    pub fn fork(&mut self, parent: u64, child: u64) -> Result<()> {
        if child == 0 || self.dealers.contains_key(&child) {
            return Err(Error::PreprocessingMismatch {
                index: 0,
                expected: "a new fork stream id".into(),
                got: format!("fork {child:#x}, which is the root or already open"),
            });
        }
        if self.dealers.len() > MAX_OPEN_FORKS {
            return Err(Error::Unsupported(format!(
                "more than {MAX_OPEN_FORKS} forked streams open at the dealer; \
                 drop forked sessions that are done"
            )));
        }
        let fork = self.dealer(parent)?.fork(child);
        self.dealers.insert(child, fork);
        Ok(())
    }

    /// The dealer of stream `stream`.
    ///
    /// Errors: [`Error::PreprocessingMismatch`] when it is not open.
    pub fn dealer(&mut self, stream: u64) -> Result<&mut Dealer> {
        self.dealers
            .get_mut(&stream)
            .ok_or_else(|| Error::PreprocessingMismatch {
                index: 0,
                expected: "a request on an open dealer stream".into(),
                got: format!("stream {stream:#x}, which was never forked or is released"),
            })
    }

    /// Forgets fork `stream` (its session is done); its children keep
    /// their own dealers. Releasing the root or an unknown stream does
    /// nothing.
    pub fn release(&mut self, stream: u64) {
        if stream != 0 {
            self.dealers.remove(&stream);
        }
    }

    /// Party 0's correction for the next request of stream `stream`.
    ///
    /// Errors: as [`DealerTree::dealer`] and [`Dealer::next_correction`].
    pub fn correction(&mut self, stream: u64, req: &Request) -> Result<Vec<AnyTensor>> {
        self.dealer(stream)?.next_correction(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forks open under their parent, outlive its release, are refused
    /// when reused or unknown, and are forgotten when released.
    #[test]
    fn the_tree_opens_and_releases_forks() {
        let root = Dealer::from_master_seed(3, Seed([1; 16]), Device::default()).unwrap();
        let expected = root.fork(0xa).fork(0xb).seed(2);
        let mut tree = DealerTree::new(root);
        tree.fork(0, 0xa).unwrap();
        tree.fork(0xa, 0xb).unwrap();
        tree.release(0xa);
        assert_eq!(tree.dealer(0xb).unwrap().seed(2), expected);
        assert!(tree.dealer(0xa).is_err(), "a released fork is gone");
        assert!(
            tree.fork(0xa, 0xc).is_err(),
            "a released parent cannot fork"
        );
        assert!(tree.fork(0, 0xb).is_err(), "an open id cannot be reused");
        assert!(tree.fork(0, 0).is_err(), "the root is not a fork");
        tree.release(0);
        assert!(tree.dealer(0).is_ok(), "the root stays");
        assert_eq!(tree.dealers.len(), 2);
    }
}
