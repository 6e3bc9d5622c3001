//! Setting a session up: pairwise seeds, the provider, dry runs.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use spindle_transport::{LinkStats, PartyId, Transport};

use super::config::COMPUTE_QUEUE_DEPTH;
use super::fork::Tags;
use super::plan::{PlanHandle, SharedRecorder};
use super::{Session, SessionConfig, FIRST_ONLINE_ROUND, ROUND_PAIR_SEEDS, ROUND_TFP_SEEDS};
use crate::backend::{ComputeQueue, Device};
use crate::error::{Error, Result};
use crate::preprocess::{Dealer, PartyStore, PlanRecorder, Provider, SeededProvider};
use crate::prg::Seed;
use crate::ring::FixedPoint;

/// Where a party's correlated randomness comes from.
pub enum ProviderSpec {
    /// A store generated offline by the dealer.
    Store(PartyStore),
    /// Trusted first party: party 0 deals on the fly and sends each other
    /// party its seed during setup. Party 0 learns every mask: tests and
    /// demos only, and logged as such.
    TrustedFirstParty,
    /// A provider built by the caller.
    Custom(Box<dyn Provider>),
}

impl Session {
    /// Connects party `transport.party()` to its peers: agrees a pairwise
    /// seed with every other party (the lower id sends a fresh seed to the
    /// higher, over the transport, which must be confidential in deployment)
    /// and sets up the provider.
    ///
    /// Errors: [`Error::InvalidParty`] for fewer than 2 parties or a store of
    /// another party; transport errors during setup.
    pub async fn connect(
        transport: Arc<dyn Transport>,
        backend: Device,
        provider: ProviderSpec,
        config: SessionConfig,
    ) -> Result<Session> {
        let (party, n) = (transport.party(), transport.n_parties());
        if n < 2 || party >= n {
            return Err(Error::InvalidParty(format!(
                "party {party} of {n}: need N >= 2 and party < N"
            )));
        }
        if let Some(f) = config.frac_bits {
            FixedPoint::new::<u64>(f)?;
        }
        let mut pair_seeds = vec![None; n];
        for (peer, slot) in pair_seeds.iter_mut().enumerate() {
            if peer > party {
                let s = Seed::random()?;
                transport.send(peer, ROUND_PAIR_SEEDS, Bytes::copy_from_slice(&s.0))?;
                *slot = Some(s);
            }
        }
        for (peer, slot) in pair_seeds.iter_mut().enumerate().take(party) {
            let msg = transport.recv(peer, ROUND_PAIR_SEEDS).await?;
            *slot = Some(seed_from_msg(peer, &msg)?);
        }
        let provider: Box<dyn Provider> = match provider {
            ProviderSpec::Store(store) => {
                if store.party != party || store.n_parties != n {
                    return Err(Error::InvalidParty(format!(
                        "preprocessing store is for party {} of {}, this is party {party} of {n}",
                        store.party, store.n_parties
                    )));
                }
                Box::new(store.into_provider(backend.clone()))
            }
            ProviderSpec::TrustedFirstParty => {
                if party == 0 {
                    tracing::warn!(
                        "trusted first party mode: party 0 generates all correlated randomness and can \
                         unmask every value; use a dealer outside tests and demos"
                    );
                    let dealer = Dealer::new(n, backend.clone())?;
                    for peer in 1..n {
                        transport.send(
                            peer,
                            ROUND_TFP_SEEDS,
                            Bytes::copy_from_slice(&dealer.seed(peer).0),
                        )?;
                    }
                    Box::new(SeededProvider::trusted_first_party(dealer, backend.clone()))
                } else {
                    let msg = transport.recv(0, ROUND_TFP_SEEDS).await?;
                    Box::new(SeededProvider::from_seed(
                        seed_from_msg(0, &msg)?,
                        None,
                        backend.clone(),
                    ))
                }
            }
            ProviderSpec::Custom(p) => p,
        };
        let stats = transport.stats();
        let compute = match config.compute_workers {
            0 => None,
            w => Some(ComputeQueue::start(w, COMPUTE_QUEUE_DEPTH)?),
        };
        let mut session = Session::root(
            (party, n),
            Some(transport),
            backend,
            provider,
            config,
            pair_seeds,
            stats,
        );
        session.compute = compute;
        Ok(session)
    }

    /// A session for a dry run of party `party`: no network (openings
    /// return this party's own share), zero material, and every request
    /// recorded into the plan. Used to plan the offline phase.
    ///
    /// Errors: [`Error::InvalidParty`].
    pub fn dry_run(
        party: PartyId,
        n_parties: usize,
        config: SessionConfig,
    ) -> Result<(Session, PlanHandle)> {
        if n_parties < 2 || party >= n_parties {
            return Err(Error::InvalidParty(format!("party {party} of {n_parties}")));
        }
        let recorder = Arc::new(Mutex::new(PlanRecorder::default()));
        let provider = Box::new(SharedRecorder(recorder.clone()));
        let session = Session::root(
            (party, n_parties),
            None,
            Device::DryRun(crate::backend::ShapeBackend),
            provider,
            config,
            vec![Some(Seed([0; 16])); n_parties],
            LinkStats::default(),
        );
        Ok((session, PlanHandle(recorder)))
    }

    /// The root stream of party `party` of `n` (not a fork, not a lane),
    /// online from `stats` on.
    fn root(
        (party, n_parties): (PartyId, usize),
        transport: Option<Arc<dyn Transport>>,
        backend: Device,
        provider: Box<dyn Provider>,
        config: SessionConfig,
        pair_seeds: Vec<Option<Seed>>,
        stats: LinkStats,
    ) -> Session {
        Session {
            party,
            n_parties,
            transport,
            backend,
            provider: Arc::new(Mutex::new(provider)),
            config,
            tags: Tags::root(FIRST_ONLINE_ROUND),
            static_space: 0,
            next_input: Arc::new(AtomicU64::new(0)),
            next_static: Arc::new(AtomicU64::new(0)),
            lane: None,
            compute: None,
            pair_seeds,
            online_start: stats,
            setup_stats: stats,
        }
    }
}

fn seed_from_msg(peer: PartyId, msg: &[u8]) -> Result<Seed> {
    let bytes: [u8; 16] = msg.try_into().map_err(|_| Error::Malformed {
        from: peer,
        detail: format!("a seed is 16 bytes, got {}", msg.len()),
    })?;
    Ok(Seed(bytes))
}
