//! [`AnyJob`]: the jobs `spindle party` and `spindle dealer` can run, and
//! their typed outputs.

use std::sync::Arc;

use super::{ClassifyJob, Finished, InferJob, Job, MatmulJob, OpJob};
use crate::error::Result;
use crate::session::{Session, SessionConfig};
use crate::train::{EpochSummary, TrainOptions};

/// A job of the multi-process runner.
#[derive(Clone, Debug)]
pub enum AnyJob {
    /// A secure fixed-point matrix product ([`MatmulJob`]).
    Matmul(MatmulJob),
    /// Secure sentence embedding with a BERT encoder ([`InferJob`]): party
    /// 0 owns the model, party N - 1 the text and the result.
    Infer(InferJob),
    /// Secure training of a zoo model on MNIST
    /// ([`crate::train::train_party`]): party 0 owns the data, party 1 the
    /// model. Needs the online dealer (one dealer stream per epoch).
    Train(Box<TrainOptions>),
    /// One non-linear function timed over the links ([`OpJob`]).
    Op(OpJob),
    /// Secure CNN inference over an image file in micro-batches
    /// ([`ClassifyJob`]): party 0 owns the images and the labels, party 1
    /// plaintext weights (or every party its share checkpoint). Needs the
    /// online dealer.
    Classify(ClassifyJob),
}

/// What an [`AnyJob`] returns at one party.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyOutput {
    /// The product X W, row-major, at every party.
    Matmul(Vec<f64>),
    /// The embeddings, row-major [sentences, hidden], at the client (party
    /// N - 1); empty elsewhere.
    Infer(Vec<f64>),
    /// Loss and test accuracy of each epoch trained, at the data owner
    /// (party 0); empty elsewhere.
    Train(Vec<EpochSummary>),
    /// At party 0, the largest |secure - f64| of the last run.
    Op(Option<f64>),
    /// The labels (or logits) at the data owner (party 0); empty elsewhere.
    Classify(Vec<f64>),
}

impl AnyOutput {
    /// The output as a flat list of numbers (the `result` of
    /// `spindle party --output`): the product, the embeddings, `[loss_1,
    /// accuracy_1, loss_2, ...]`, `[max error]`, or the labels (logits).
    pub fn values(&self) -> Vec<f64> {
        match self {
            AnyOutput::Matmul(v) | AnyOutput::Infer(v) | AnyOutput::Classify(v) => v.clone(),
            AnyOutput::Train(e) => e.iter().flat_map(|e| [e.loss, e.accuracy]).collect(),
            AnyOutput::Op(e) => e.iter().copied().collect(),
        }
    }
}

/// The longest fingerprint sent as it is ([`AnyJob::fingerprint`]).
pub const MAX_FINGERPRINT: usize = 1024;

/// `fp`, or for one longer than [`MAX_FINGERPRINT`] its first 900 bytes
/// (at a character boundary) and the SHA-256 of the whole.
fn bounded(fp: String) -> String {
    if fp.len() <= MAX_FINGERPRINT {
        return fp;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(fp.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut cut = 900;
    while !fp.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... (sha256 {hex})", &fp[..cut])
}

impl AnyJob {
    fn fingerprint_job(&self) -> String {
        match self {
            AnyJob::Matmul(j) => j.fingerprint(),
            AnyJob::Infer(j) => Job::fingerprint(j),
            AnyJob::Train(j) => Job::fingerprint(j.as_ref()),
            AnyJob::Op(j) => j.fingerprint(),
            AnyJob::Classify(j) => Job::fingerprint(j),
        }
    }

    /// A string that identifies the job and session parameters; the dealer
    /// refuses a party whose fingerprint differs from its own (it would
    /// consume preprocessing for another plan). At most
    /// [`MAX_FINGERPRINT`] bytes (it travels in the links' handshake
    /// frame): a longer one (an infer job's thousand sentence lengths)
    /// keeps its beginning and ends with the SHA-256 of the whole.
    pub fn fingerprint(&self, n_parties: usize, session: &SessionConfig) -> String {
        bounded(self.full_fingerprint(n_parties, session))
    }

    fn full_fingerprint(&self, n_parties: usize, session: &SessionConfig) -> String {
        // The session settings that change the plan (the pipeline changes
        // the order of requests).
        let p = session.pipeline;
        format!(
            "{} parties={n_parties} frac_bits={} lanes={} pipeline_min={}",
            self.fingerprint_job(),
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
        match self {
            AnyJob::Matmul(j) => j.needs_online_dealer(),
            AnyJob::Infer(j) => j.needs_online_dealer(),
            AnyJob::Train(j) => Job::needs_online_dealer(j.as_ref()),
            AnyJob::Op(j) => j.needs_online_dealer(),
            AnyJob::Classify(j) => Job::needs_online_dealer(j),
        }
    }

    /// Checks the job's parameters ([`Job::validate`]).
    ///
    /// Errors: as the job's [`Job::validate`].
    pub fn validate(&self) -> Result<()> {
        match self {
            AnyJob::Matmul(j) => j.validate(),
            AnyJob::Infer(j) => Job::validate(j),
            AnyJob::Train(j) => Job::validate(j.as_ref()),
            AnyJob::Op(j) => j.validate(),
            AnyJob::Classify(j) => Job::validate(j),
        }
    }

    /// The f64 result party outputs are compared with ([`AnyOutput::values`]
    /// against it): the product for matmul, `[0.0]` for op (its output is
    /// an error already), nothing for the others.
    pub fn expected(&self) -> Vec<f64> {
        match self {
            AnyJob::Matmul(j) => j.expected(),
            AnyJob::Op(_) => vec![0.0],
            AnyJob::Infer(_) | AnyJob::Train(_) | AnyJob::Classify(_) => Vec::new(),
        }
    }

    /// Runs the job as `sess.party()` (or a dry run).
    ///
    /// Errors: as the job's [`Job::validate`] and [`Job::run`].
    pub async fn run(&self, sess: Arc<Session>) -> Result<Finished<AnyOutput>> {
        self.validate()?;
        fn wrap<T>(f: Finished<T>, into: impl FnOnce(T) -> AnyOutput) -> Finished<AnyOutput> {
            Finished {
                output: into(f.output),
                phases: f.phases,
            }
        }
        Ok(match self {
            AnyJob::Matmul(j) => wrap(j.run(&sess).await?, AnyOutput::Matmul),
            AnyJob::Infer(j) => wrap(Job::run(j, &sess).await?, AnyOutput::Infer),
            AnyJob::Train(j) => wrap(Job::run(j.as_ref(), &sess).await?, AnyOutput::Train),
            AnyJob::Op(j) => wrap(j.run(&sess).await?, AnyOutput::Op),
            AnyJob::Classify(j) => wrap(Job::run(j, &sess).await?, AnyOutput::Classify),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long fingerprints are cut to a prefix and a digest of the whole,
    /// so two jobs that differ only at the end still differ.
    #[test]
    fn long_fingerprints_are_bounded_and_still_distinct() {
        let a = "x".repeat(5000);
        let mut b = a.clone();
        b.push('y');
        let (fa, fb) = (bounded(a), bounded(b));
        assert!(fa.len() <= MAX_FINGERPRINT && fb.len() <= MAX_FINGERPRINT);
        assert_ne!(fa, fb);
        assert_eq!(bounded("short".into()), "short");
    }
}
