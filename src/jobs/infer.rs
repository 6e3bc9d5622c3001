//! The `infer` job: [`InferJob`] (defined with the inference driver in
//! `src/infer.rs`) as a [`Job`].

use futures_util::future::BoxFuture;

use super::{Finished, InferJob, Job};
use crate::error::Result;
use crate::session::Session;

impl Job for InferJob {
    /// The embeddings, row-major [sentences, hidden], at the client (party
    /// N - 1); empty elsewhere.
    type Output = Vec<f64>;

    fn fingerprint(&self) -> String {
        InferJob::fingerprint(self)
    }

    /// Errors: [`crate::Error::Format`] for no sentence or lengths outside
    /// 1..=seq_len.
    fn validate(&self) -> Result<()> {
        InferJob::validate(self)
    }

    /// With the inter-batch pipeline: material made as the micro-batches
    /// ask for it, so a party's memory is bounded by the window.
    fn needs_online_dealer(&self) -> bool {
        self.pipeline.is_some()
    }

    fn run<'a>(&'a self, sess: &'a Session) -> BoxFuture<'a, Result<Finished<Vec<f64>>>> {
        Box::pin(async move {
            let (output, phases) = self.run_party(sess).await?;
            Ok(Finished { output, phases })
        })
    }
}
