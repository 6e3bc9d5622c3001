//! Runs N parties in one process: dry run, dealer, and online phase, over
//! the in-memory transport. Used by the tests, benchmarks and `spindle demo`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_transport::{InMemoryNetwork, LinkStats, Transport};

use crate::backend::Device;
use crate::error::{Error, Result};
use crate::preprocess::{Dealer, DealerService, PartyStore, Plan, SeededProvider};
use crate::prg::Seed;
use crate::session::{ProviderSpec, Session, SessionConfig};

/// Where the parties' correlated randomness comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preprocessing {
    /// A separate offline phase: a dry run records the plan, the dealer
    /// generates one store per party, then the online phase consumes them.
    #[default]
    Dealer,
    /// Party 0 deals during the online phase (insecure against party 0;
    /// tests and demos only).
    TrustedFirstParty,
    /// A dealer thread answers party 0's requests as they come (CrypTen's
    /// trusted third party): no plan, no store, for long runs such as
    /// training; parties 1..N-1 still receive only their seed.
    OnlineDealer,
}

/// Options of an in-process run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Number of parties N >= 2.
    pub n_parties: usize,
    /// Session settings shared by all parties.
    pub session: SessionConfig,
    /// Dealer or trusted first party.
    pub preprocessing: Preprocessing,
    /// Backend every party uses.
    pub backend: Device,
    /// Dealer master seed (reproducible runs); `None`: fresh OS randomness.
    pub dealer_seed: Option<Seed>,
    /// How long a party waits for a peer's message before failing.
    pub timeout: Duration,
    /// Dealer mode: every party expands its whole material from its seed
    /// (and party 0 adds its corrections) during the offline phase
    /// ([`SeededProvider::expand_ahead`]), so the online phase only
    /// consumes it. Costs the memory of all the material at once; off by
    /// default (the material is then expanded as the program asks for it).
    pub expand_ahead: bool,
    /// Record every party's timeline of the online phase
    /// ([`crate::trace`]; [`RunReport::trace`]).
    pub trace: bool,
}

impl RunOptions {
    /// Defaults for `n_parties`: dealer preprocessing, CPU, 60 s timeout.
    pub fn new(n_parties: usize) -> Self {
        RunOptions {
            n_parties,
            session: SessionConfig::default(),
            preprocessing: Preprocessing::Dealer,
            backend: Device::default(),
            dealer_seed: None,
            timeout: Duration::from_secs(60),
            expand_ahead: false,
            trace: false,
        }
    }
}

/// What one party produced and what it cost.
#[derive(Debug)]
pub struct PartyReport<T> {
    /// The party id.
    pub party: usize,
    /// The program's result at this party.
    pub output: T,
    /// Bytes this party received from the dealer (its serialized store);
    /// 0 in trusted-first-party mode, where seeds travel during setup.
    pub dealer_bytes: usize,
    /// Setup traffic (pairwise seeds, and dealer seeds in TFP mode).
    pub setup: LinkStats,
    /// Online traffic.
    pub online: LinkStats,
}

/// The result of [`run_parties`].
#[derive(Debug)]
pub struct RunReport<T> {
    /// One report per party, by id.
    pub parties: Vec<PartyReport<T>>,
    /// The recorded plan (dealer mode).
    pub plan: Option<Plan>,
    /// Wall time of the dry run plus the dealer.
    pub offline_time: Duration,
    /// Wall time of the online phase (setup included).
    pub online_time: Duration,
    /// Every party's timeline ([`RunOptions::trace`]).
    pub trace: Option<crate::trace::Trace>,
}

/// Runs `program` as every party of an N-party computation in this process.
///
/// In dealer mode the program first runs once as a dry run of party 0 to
/// record the plan; it must therefore issue the same protocol calls whatever
/// the data (every MPC program does) and accept running without its inputs
/// at parties that do not own them.
///
/// Errors: the first party's error, preferring a root cause over the
/// "peer closed" errors it triggers at the other parties.
pub async fn run_parties<T, F, Fut>(opts: &RunOptions, program: F) -> Result<RunReport<T>>
where
    F: Fn(Arc<Session>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let n = opts.n_parties;
    if n < 2 {
        return Err(Error::InvalidParty(format!(
            "need at least 2 parties, got {n}"
        )));
    }
    let t0 = Instant::now();
    let mut online_dealer: Option<DealerService> = None;
    let (mut specs, plan, mut dealer_bytes) = match opts.preprocessing {
        Preprocessing::Dealer => {
            let (dry, handle) = Session::dry_run(0, n, opts.session.clone())?;
            program(Arc::new(dry)).await?;
            let plan = handle.plan();
            let dealer = match opts.dealer_seed {
                Some(s) => Dealer::from_master_seed(n, s, opts.backend.clone())?,
                None => Dealer::new(n, opts.backend.clone())?,
            };
            let mut specs = Vec::new();
            let mut bytes = Vec::new();
            for store in dealer.generate(&plan)? {
                // What travels from the dealer to the party.
                let wire = store.to_bytes();
                bytes.push(wire.len());
                let store = PartyStore::from_bytes(&wire, "dealer message")?;
                specs.push(Some(if opts.expand_ahead {
                    let mut p = store.into_provider(opts.backend.clone());
                    p.expand_ahead(&plan.requests)?;
                    ProviderSpec::Custom(Box::new(p))
                } else {
                    ProviderSpec::Store(store)
                }));
            }
            (specs, Some(plan), bytes)
        }
        Preprocessing::OnlineDealer => {
            let dealer = match opts.dealer_seed {
                Some(s) => Dealer::from_master_seed(n, s, opts.backend.clone())?,
                None => Dealer::new(n, opts.backend.clone())?,
            };
            let seeds: Vec<Seed> = (0..n).map(|i| dealer.seed(i)).collect();
            let service = DealerService::spawn(dealer)?;
            online_dealer = Some(service.clone());
            let mut specs = vec![Some(ProviderSpec::Custom(Box::new(
                SeededProvider::with_online_dealer(seeds[0], service, opts.backend.clone()),
            )))];
            for seed in &seeds[1..] {
                specs.push(Some(ProviderSpec::Custom(Box::new(
                    SeededProvider::from_seed(*seed, None, opts.backend.clone()),
                ))));
            }
            // Each party receives its 16-byte seed; party 0's corrections are counted below.
            (specs, None, vec![16; n])
        }
        Preprocessing::TrustedFirstParty => (
            (0..n)
                .map(|_| Some(ProviderSpec::TrustedFirstParty))
                .collect(),
            None,
            vec![0; n],
        ),
    };
    let offline_time = t0.elapsed();

    let t1 = Instant::now();
    let mut handles = Vec::new();
    let mut traces = Vec::new();
    for (party, transport) in InMemoryNetwork::with_timeout(n, opts.timeout)
        .into_iter()
        .enumerate()
    {
        let spec = specs[party].take().expect("one spec per party");
        let (backend, config, program) =
            (opts.backend.clone(), opts.session.clone(), program.clone());
        let trace = opts.trace.then(|| crate::trace::PartyTrace::new(party, t1));
        traces.extend(trace.clone());
        handles.push(tokio::spawn(async move {
            let transport: Arc<dyn Transport> = Arc::new(transport);
            let sess = Arc::new(Session::connect(transport, backend, spec, config).await?);
            let output = crate::trace::traced(trace, program(sess.clone())).await?;
            Ok::<_, Error>((output, sess.setup_stats(), sess.online_stats()))
        }));
    }
    let mut results = Vec::new();
    for (party, h) in handles.into_iter().enumerate() {
        results.push(match h.await {
            Ok(r) => r,
            Err(e) => Err(Error::Unsupported(format!("party {party} panicked: {e}"))),
        });
    }
    let online_time = t1.elapsed();
    if let Some(service) = &online_dealer {
        dealer_bytes[0] += service.bytes_sent() as usize;
    }

    if results.iter().any(|r| r.is_err()) {
        let errors: Vec<Error> = results.into_iter().filter_map(|r| r.err()).collect();
        let root = errors
            .iter()
            .position(|e| {
                !matches!(
                    e,
                    Error::Transport(spindle_transport::TransportError::PeerClosed { .. })
                )
            })
            .unwrap_or(0);
        return Err(errors.into_iter().nth(root).expect("at least one error"));
    }
    let parties = results
        .into_iter()
        .enumerate()
        .map(|(party, r)| {
            let (output, setup, online) = r.expect("checked above");
            PartyReport {
                party,
                output,
                dealer_bytes: dealer_bytes[party],
                setup,
                online,
            }
        })
        .collect();
    Ok(RunReport {
        parties,
        plan,
        offline_time,
        online_time,
        trace: opts
            .trace
            .then_some(crate::trace::Trace { parties: traces }),
    })
}

/// [`run_parties`] on a fresh multi-threaded tokio runtime, for callers that
/// are not async.
///
/// Errors: as [`run_parties`], and [`Error::Unsupported`] if no runtime starts.
pub fn run_parties_blocking<T, F, Fut>(opts: &RunOptions, program: F) -> Result<RunReport<T>>
where
    F: Fn(Arc<Session>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.n_parties.max(2))
        .enable_all()
        .build()
        .map_err(|e| Error::Unsupported(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run_parties(opts, program))
}
