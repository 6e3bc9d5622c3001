//! Applications with a home: the jobs a party runs, one file per job.
//!
//! A [`Job`] is a deterministic, oblivious program (its protocol calls
//! depend only on public shapes), so the dealer can record the
//! preprocessing plan with a dry run of the same job, and every party of a
//! cluster runs the same job with its own inputs. Each job has a typed
//! output ([`Job::Output`]) and reports its own phases ([`JobPhase`]).
//!
//! - [`MatmulJob`] (`matmul.rs`): a secure fixed-point matrix product;
//! - [`OpJob`] (`op.rs`): one non-linear function timed over the links;
//! - [`InferJob`] (`infer.rs`): secure BERT sentence embedding;
//! - [`ClassifyJob`] (`classify.rs`): secure CNN inference over an image file;
//! - [`TrainOptions`] (`train.rs`): secure training on MNIST.
//!
//! [`AnyJob`] (`any.rs`) is the closed set the CLI, the party runner and
//! the dealer dispatch over (`spindle party --job ...`).
//!
//! Adding a job: a file here with its parameters struct and `impl Job`,
//! a variant of [`AnyJob`] and [`AnyOutput`], its arguments in
//! `src/bin/spindle/args.rs` and its report in `src/bin/spindle/party.rs`.

mod any;
mod classify;
mod infer;
mod matmul;
mod op;
mod train;

pub use crate::classify::ClassifyJob;
pub use crate::infer::InferJob;
pub use crate::report::JobPhase;
pub use crate::train::{EpochSummary, TrainOptions};
pub use any::{AnyJob, AnyOutput};
pub use matmul::MatmulJob;
pub use op::{OpJob, OpKind};

use futures_util::future::BoxFuture;

use crate::error::Result;
use crate::session::Session;

/// What a job returns at one party: its output and its phases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Finished<T> {
    /// The job's result at this party.
    pub output: T,
    /// The job's own phases (time and traffic), if it reports any.
    pub phases: Vec<JobPhase>,
}

/// A program every party of a cluster runs (and the dealer dry-runs).
pub trait Job: Send + Sync {
    /// What the job returns at one party.
    type Output: Send;

    /// The job's public parameters: the dealer refuses a party whose
    /// fingerprint differs from its own (it would consume preprocessing
    /// for another plan). Data and folders that are each party's own are
    /// not part of it.
    fn fingerprint(&self) -> String;

    /// Checks the parameters before anything runs.
    ///
    /// Errors: as each job documents ([`crate::Error::ShapeMismatch`],
    /// [`crate::Error::Format`]).
    fn validate(&self) -> Result<()>;

    /// True for jobs whose preprocessing must come from the online dealer
    /// (too long to plan and store ahead).
    fn needs_online_dealer(&self) -> bool {
        false
    }

    /// Runs the job as `sess.party()` (or as a dry run).
    ///
    /// Errors: protocol, preprocessing and transport errors; the job's own.
    fn run<'a>(&'a self, sess: &'a Session) -> BoxFuture<'a, Result<Finished<Self::Output>>>;
}
