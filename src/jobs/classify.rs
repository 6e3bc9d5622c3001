//! The `classify` job: [`ClassifyJob`] (defined with its driver in
//! `src/classify.rs`) as a [`Job`].

use futures_util::future::BoxFuture;

use super::{ClassifyJob, Finished, Job};
use crate::error::Result;
use crate::session::Session;

impl Job for ClassifyJob {
    /// The labels (one per image) or the logits, at the data owner (party
    /// 0); empty elsewhere.
    type Output = Vec<f64>;

    fn fingerprint(&self) -> String {
        ClassifyJob::fingerprint(self)
    }

    /// Errors: [`crate::Error::Format`] for no image or a pipeline setting
    /// of 0; [`crate::Error::Unsupported`] for an unknown model.
    fn validate(&self) -> Result<()> {
        ClassifyJob::validate(self)
    }

    /// The micro-batches take their material as they run: a party's
    /// memory is bounded by the window, not by the number of images.
    fn needs_online_dealer(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, sess: &'a Session) -> BoxFuture<'a, Result<Finished<Vec<f64>>>> {
        Box::pin(async move {
            let (output, phases) = self.run_party(sess, None).await?;
            Ok(Finished { output, phases })
        })
    }
}
