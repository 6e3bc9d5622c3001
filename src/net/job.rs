//! Jobs that `spindle party` and `spindle dealer` run: deterministic,
//! oblivious programs (their protocol calls depend only on public shapes),
//! so the dealer can record the preprocessing plan with a dry run of the
//! same job.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::prg::{Prg, Seed};
use crate::protocol::fixed;
use crate::session::SessionConfig;
use crate::Session;

/// A job of the multi-process runner.
#[derive(Clone, Debug)]
pub enum Job {
    /// Party 0 inputs X [m, k], party 1 inputs W [k, n] (reals in [-1, 1)
    /// drawn from `input_seed`); the parties compute X W with a secure
    /// fixed-point matmul plus truncation and reveal it to everyone.
    Matmul {
        /// Rows of X.
        m: usize,
        /// Columns of X, rows of W.
        k: usize,
        /// Columns of W.
        n: usize,
        /// Seed of the inputs (public: for tests and benchmarks).
        input_seed: u64,
        /// How many times to compute the product (each with fresh
        /// preprocessing, 2 rounds each); the last one is revealed. Longer
        /// runs for benchmarks and failure tests.
        repeat: usize,
    },
    /// Secure sentence embedding with a BERT encoder
    /// ([`crate::infer::InferJob`]): party 0 owns the model, party N - 1
    /// the text and the result.
    Infer(crate::infer::InferJob),
    /// Secure training of a zoo model on MNIST ([`crate::train::train_party`]):
    /// party 0 owns the data, party 1 the model. Needs the online dealer
    /// (one dealer stream per epoch); `parties` is the cluster's.
    Train(Box<crate::train::TrainOptions>),
    /// One non-linear function timed over the links ([`super::op_job::OpJob`]).
    Op(super::op_job::OpJob),
}

/// Time and traffic of one named phase of a job at one party.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPhase {
    /// "load", "inference", ...
    pub label: String,
    /// Wall time.
    pub time: std::time::Duration,
    /// This party's traffic during the phase.
    pub link: spindle_transport::LinkStats,
}

/// What a job returns at one party.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobOutput {
    /// The revealed result (empty at parties that receive none).
    pub result: Vec<f64>,
    /// The job's own phases, if it reports any.
    pub phases: Vec<JobPhase>,
}

impl Job {
    /// A string that identifies the job and session parameters; the dealer
    /// refuses a party whose fingerprint differs from its own (it would
    /// consume preprocessing for another plan).
    pub fn fingerprint(&self, n_parties: usize, session: &SessionConfig) -> String {
        let job = match self {
            Job::Matmul {
                m, k, n, repeat, ..
            } => format!(
                "matmul m={m} k={k} n={n} repeat={repeat} parties={n_parties}"
            ),
            Job::Infer(j) => format!(
                "{} parties={n_parties}",
                j.fingerprint()
            ),
            Job::Op(o) => format!(
                "{} parties={n_parties}",
                o.fingerprint()
            ),
            // Everything public the parties must agree on (not the data or
            // checkpoint folders, which are each party's own).
            Job::Train(t) => format!(
                "train model={} epochs={} batch={} lr={} momentum={} weight_decay={} train_limit={:?} \
                 test_limit={:?} seed={} eval={:?} resume={} parties={n_parties}",
                t.model,
                t.epochs,
                t.batch,
                t.sgd.lr,
                t.sgd.momentum,
                t.sgd.weight_decay,
                t.train_limit,
                t.test_limit,
                t.seed,
                t.evaluation,
                t.resume
            ),
        };
        // The session settings that change the plan (the pipeline changes
        // the order of requests).
        let p = session.pipeline;
        format!(
            "{job} frac_bits={} lanes={} pipeline_min={}",
            session
                .frac_bits
                .map_or("default".into(), |f| f.to_string()),
            p.lanes,
            p.min_elems
        )
    }

    /// True for jobs whose preprocessing must come from the online dealer
    /// (training: too long to plan and store ahead, one stream per epoch).
    pub fn needs_online_dealer(&self) -> bool {
        matches!(self, Job::Train(_))
    }

    /// Checks shapes: nonzero and at most 2^28 elements per matrix.
    ///
    /// Errors: [`Error::ShapeMismatch`].
    pub fn validate(&self) -> Result<()> {
        match *self {
            Job::Infer(ref j) => j.validate(),
            Job::Op(ref o) => o.validate(),
            Job::Train(ref t) => {
                if t.batch == 0 || t.epochs == 0 {
                    return Err(Error::shape(
                        "job train",
                        format!(
                            "need batch >= 1 and epochs >= 1, got batch {} and {} epochs",
                            t.batch, t.epochs
                        ),
                    ));
                }
                Ok(())
            }
            Job::Matmul {
                m, k, n, repeat, ..
            } => {
                let ok = |a: usize, b: usize| a > 0 && b > 0 && a.saturating_mul(b) <= 1 << 28;
                if !(ok(m, k) && ok(k, n) && ok(m, n)) || repeat == 0 || repeat > 1 << 20 {
                    return Err(Error::shape(
                        "job matmul",
                        format!(
                            "need 0 < m, k, n, at most 2^28 elements per matrix and 1 <= repeat <= 2^20, \
                             got {m} x {k} x {n}, repeat {repeat}"
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The inputs (X, W), row-major.
    pub fn inputs(&self) -> (Vec<f64>, Vec<f64>) {
        match *self {
            Job::Infer(_) | Job::Train(_) | Job::Op(_) => (Vec::new(), Vec::new()),
            Job::Matmul {
                m,
                k,
                n,
                input_seed,
                ..
            } => {
                let mut seed = [0u8; 16];
                seed[..8].copy_from_slice(&input_seed.to_le_bytes());
                let seed = Seed(seed);
                (reals(&seed, 0, m * k), reals(&seed, 1, k * n))
            }
        }
    }

    /// The f64 result the job should reveal (row-major [m, n]).
    pub fn expected(&self) -> Vec<f64> {
        match *self {
            Job::Infer(_) | Job::Train(_) => Vec::new(),
            // Party 0's result is its error against f64.
            Job::Op(_) => vec![0.0],
            Job::Matmul { m, k, n, .. } => {
                let (x, w) = self.inputs();
                let mut out = vec![0.0; m * n];
                for i in 0..m {
                    for l in 0..k {
                        let a = x[i * k + l];
                        for j in 0..n {
                            out[i * n + j] += a * w[l * n + j];
                        }
                    }
                }
                out
            }
        }
    }

    /// Runs the job as `sess.party()` (or a dry run) and returns the
    /// revealed result.
    ///
    /// Errors: protocol and transport errors.
    pub async fn run(&self, sess: Arc<Session>) -> Result<JobOutput> {
        self.validate()?;
        match *self {
            Job::Infer(ref j) => j.run(&sess).await,
            Job::Op(ref o) => o.run(&sess).await,
            Job::Train(ref t) => {
                let (result, phases) = crate::train::train_party(t, &sess).await?;
                Ok(JobOutput { result, phases })
            }
            Job::Matmul {
                m, k, n, repeat, ..
            } => {
                let me = sess.party();
                let (x, w) = if me <= 1 {
                    self.inputs()
                } else {
                    (Vec::new(), Vec::new())
                };
                let xs = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [m, k])?;
                let ws = sess.share_input_f64::<u64>(1, (me == 1).then_some(&w[..]), [k, n])?;
                let mut z = fixed::matmul(&sess, &xs, &ws).await?;
                for _ in 1..repeat {
                    z = fixed::matmul(&sess, &xs, &ws).await?;
                }
                Ok(JobOutput {
                    result: sess.reveal_f64(&z).await?,
                    phases: Vec::new(),
                })
            }
        }
    }
}

fn reals(seed: &Seed, stream: u64, len: usize) -> Vec<f64> {
    let mut raw = vec![0u64; len];
    Prg::new(seed, stream).fill(&mut raw);
    raw.iter()
        .map(|&v| (v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}
