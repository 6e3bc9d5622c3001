//! The `train` job: [`TrainOptions`] run by one party of a cluster
//! ([`crate::train::train_party`]) as a [`Job`].

use futures_util::future::BoxFuture;

use super::{Finished, Job};
use crate::error::{Error, Result};
use crate::session::Session;
use crate::train::{EpochSummary, TrainOptions};

impl Job for TrainOptions {
    /// Loss and test accuracy of each epoch trained, at the data owner
    /// (party 0); empty elsewhere.
    type Output = Vec<EpochSummary>;

    /// Everything public the parties must agree on (not the data or
    /// checkpoint folders, which are each party's own).
    fn fingerprint(&self) -> String {
        let t = self;
        format!(
            "train model={} epochs={} batch={} lr={} momentum={} weight_decay={} train_limit={:?} \
             test_limit={:?} seed={} eval={:?} resume={} pipeline={:?}",
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
            t.resume,
            t.pipeline
        )
    }

    /// Errors: [`Error::ShapeMismatch`] for a batch or epoch count of 0;
    /// [`Error::Format`] for a micro-batch or window of 0.
    fn validate(&self) -> Result<()> {
        if let Some(p) = self.pipeline {
            p.validate()?;
        }
        if self.batch == 0 || self.epochs == 0 {
            return Err(Error::shape(
                "job train",
                format!(
                    "need batch >= 1 and epochs >= 1, got batch {} and {} epochs",
                    self.batch, self.epochs
                ),
            ));
        }
        Ok(())
    }

    fn needs_online_dealer(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, sess: &'a Session) -> BoxFuture<'a, Result<Finished<Self::Output>>> {
        Box::pin(async move {
            let (output, phases) = crate::train::train_party(self, sess).await?;
            Ok(Finished { output, phases })
        })
    }
}
