//! The inter-batch pipeline (MPC-Pipe's third scheme): several
//! micro-batches of one job in flight at once, each on its own fork of the
//! session, so that one micro-batch's rounds are on the wire while another
//! computes.
//!
//! Micro-batch `i` runs on the `i`-th fork of the session, made in order on
//! every party, so its round tags and its dealer stream are the same on
//! every party and in every run: outputs are bit-identical whatever the
//! number in flight (same dealer seed), and each fork's material is
//! requested, and with the online dealer generated, only while the
//! micro-batch runs, which bounds the memory by the window.

use std::future::Future;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::session::Session;

/// How a job is cut into micro-batches and how many run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterBatch {
    /// Items (sentences, images) per micro-batch (at least 1).
    pub micro_batch: usize,
    /// Micro-batches in flight at once (1: one after another, the
    /// pipeline off; at least 1).
    pub in_flight: usize,
}

impl Default for InterBatch {
    /// Micro-batches of 4 items, 2 in flight.
    fn default() -> Self {
        InterBatch {
            micro_batch: 4,
            in_flight: 2,
        }
    }
}

impl InterBatch {
    /// Checks the settings.
    ///
    /// Errors: [`Error::Format`] for a micro-batch or window of 0.
    pub fn validate(&self) -> Result<()> {
        if self.micro_batch == 0 || self.in_flight == 0 {
            return Err(Error::Format {
                what: "inter-batch pipeline".into(),
                detail: format!(
                    "micro-batch {} and in-flight {} must be at least 1",
                    self.micro_batch, self.in_flight
                ),
            });
        }
        Ok(())
    }

    /// The index ranges of the micro-batches of `items` items, in order.
    pub fn ranges(&self, items: usize) -> Vec<std::ops::Range<usize>> {
        let step = self.micro_batch.max(1);
        (0..items)
            .step_by(step)
            .map(|s| s..(s + step).min(items))
            .collect()
    }
}

/// A progress callback of a pipelined job: called at the party that
/// receives the results with the number of items (sentences, images) done
/// so far, as each micro-batch finishes (a progress bar).
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(usize) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// Runs `work(fork, i)` for micro-batches `i = 0 .. count` with at most
/// `in_flight` at once, micro-batch `i` on the `i`-th fork of `sess` made
/// in order ([`Session::fork`]); returns the outputs in order. `done(i)`
/// is called as each finishes, in order (a progress bar).
///
/// Errors: [`Error::Format`] for `in_flight` 0; the first error of any
/// micro-batch (the others are dropped); as [`Session::fork`].
pub async fn run_micro_batches<T, F, Fut>(
    sess: &Session,
    count: usize,
    in_flight: usize,
    work: F,
    mut done: impl FnMut(usize),
) -> Result<Vec<T>>
where
    F: Fn(Session, usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    InterBatch {
        micro_batch: 1,
        in_flight,
    }
    .validate()?;
    let work = &work;
    stream::iter(0..count)
        .map(|i| {
            // Forked when the window pulls micro-batch i: in order.
            let fork = sess.fork();
            async move { work(fork?, i).await }
        })
        .buffered(in_flight)
        .enumerate()
        .map(|(i, r)| {
            if r.is_ok() {
                done(i);
            }
            r
        })
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_items_in_order() {
        let p = InterBatch {
            micro_batch: 4,
            in_flight: 2,
        };
        assert_eq!(p.ranges(10), vec![0..4, 4..8, 8..10]);
        assert!(p.ranges(0).is_empty());
        assert!(InterBatch {
            micro_batch: 0,
            in_flight: 1
        }
        .validate()
        .is_err());
    }
}
