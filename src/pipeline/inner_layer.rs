//! The inner-layer pipeline: one elementwise protocol on a large tensor,
//! run as `L` lanes over consecutive chunks of it.
//!
//! Without it a party computes a round's masked values, sends them, and
//! sits idle until the peers' arrive (and the peers do the same). With
//! `L` lanes, lane 0 posts its round and lanes 1 .. L - 1 compute theirs
//! while lane 0's messages travel; by the time lane 0 has the turn again
//! its peers' messages are usually there. The lanes take turns in a fixed
//! order ([`super::Turns`]), so every party issues the same round tags and
//! the same preprocessing requests in the same order, in the dry run that
//! plans the offline phase too.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::try_join_all;

use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor};
use crate::session::turns::{LaneGuard, Turns};
pub use crate::session::InnerPipeline;
use crate::session::Session;
use crate::share::Shared;

/// The lanes of one inner-layer pipeline: `f(x)` for an elementwise
/// protocol `f` (each output element depends on the same input element
/// only, and the output has x's shape), cut into chunks when the
/// session's [`InnerPipeline`] setting asks for more than one lane for x's
/// size, and run as one piece otherwise (and inside a lane).
///
/// Use: `Lanes::new(sess, &x)?.run(sess, &x, |s, x| f(s, x)).await`.
/// (Two steps, so that the lanes' sessions and chunks outlive the futures
/// of `f` that borrow them.)
///
/// Algorithm: x's elements are cut into `L` consecutive chunks (multiples
/// of 64 elements, as even as that allows); lane `i` runs `f` on chunk
/// `i` through a lane of `sess` (same links, backend and provider); the
/// lanes take turns in a fixed round-robin order, each handing the turn
/// on between posting an opening and reading it; the outputs are joined
/// in order.
///
/// Cost: the same bytes as one piece, L times the messages, and the
/// rounds of `f` plus a fraction of one for the lanes' skew; the
/// transport's round counter ([`spindle_transport::LinkStats::rounds`])
/// counts every lane's message tag, i.e. L times `f`'s rounds. Results
/// have the same distribution as one piece but are not bit-identical to
/// it (the material is requested chunk by chunk).
pub struct Lanes<R: Ring> {
    sessions: Vec<Session>,
    chunks: Vec<Shared<R>>,
    turns: Arc<Turns>,
}

impl<R: Ring> Lanes<R> {
    /// The lanes for `x` in `sess` (none: run as one piece).
    ///
    /// Errors: [`Error::Unsupported`] for a tensor on a device whose copy
    /// to the host fails.
    pub fn new(sess: &Session, x: &Shared<R>) -> Result<Self> {
        let n = x.numel();
        let lanes = if sess.is_lane() {
            1
        } else {
            sess.config().pipeline.lanes_for(n)
        };
        let turns = Arc::new(Turns::new(lanes));
        if lanes <= 1 {
            return Ok(Lanes {
                sessions: vec![],
                chunks: vec![],
                turns,
            });
        }
        let data = x.share().try_data()?;
        let chunks = chunk_ranges(n, lanes)
            .map(|r| {
                Ok(Shared::from_share(RingTensor::new(
                    [r.len()],
                    data[r].to_vec(),
                )?))
            })
            .collect::<Result<_>>()?;
        let sessions = (0..lanes).map(|l| sess.lane(turns.clone(), l)).collect();
        Ok(Lanes {
            sessions,
            chunks,
            turns,
        })
    }

    /// Number of lanes (1: one piece).
    pub fn count(&self) -> usize {
        self.sessions.len().max(1)
    }

    /// `f(x)`, through the lanes: `sess` and `x` must be those given to
    /// [`Lanes::new`].
    ///
    /// Errors: those of `f` (the first lane to fail; the others are
    /// dropped); [`Error::ShapeMismatch`] when `x` is not the tensor the
    /// lanes were cut from or `f` does not return a chunk's shape.
    pub async fn run<'a, F, Fut>(
        &'a self,
        sess: &'a Session,
        x: &'a Shared<R>,
        f: F,
    ) -> Result<Shared<R>>
    where
        F: Fn(&'a Session, &'a Shared<R>) -> Fut,
        Fut: Future<Output = Result<Shared<R>>> + 'a,
    {
        if self.sessions.is_empty() {
            return f(sess, x).await;
        }
        let n: usize = self.chunks.iter().map(Shared::numel).sum();
        if n != x.numel() {
            return Err(Error::shape(
                "inner-layer pipeline",
                format!("lanes cut from {n} elements, run on {}", x.shape()),
            ));
        }
        let f = &f;
        let runs = self
            .sessions
            .iter()
            .zip(&self.chunks)
            .enumerate()
            .map(|(lane, (s, c))| {
                let turns = &*self.turns;
                async move {
                    let _guard = LaneGuard { turns, lane };
                    turns.wait(lane).await;
                    let y = f(s, c).await?;
                    if y.shape() != c.shape() {
                        return Err(Error::shape(
                            "inner-layer pipeline",
                            format!(
                                "lane {lane} returned {} for a chunk of {}",
                                y.shape(),
                                c.shape()
                            ),
                        ));
                    }
                    Ok(y)
                }
            });
        let outs = try_join_all(runs).await?;
        let mut joined = Vec::with_capacity(n);
        for y in &outs {
            joined.extend_from_slice(y.share().try_data()?);
        }
        Ok(Shared::from_share(RingTensor::new(
            x.shape().clone(),
            joined,
        )?))
    }
}

use crate::session::config::ALIGN;

/// `lanes` (at most n / ALIGN) consecutive ranges covering 0..n: multiples of [`ALIGN`]
/// elements, as even as that allows, the remainder in the last.
fn chunk_ranges(n: usize, lanes: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let blocks = n / ALIGN;
    let (base, extra) = (blocks / lanes, blocks % lanes);
    (0..lanes).scan(0, move |start, i| {
        let len = if i + 1 == lanes {
            n - *start
        } else {
            (base + usize::from(i < extra)) * ALIGN
        };
        let r = *start..*start + len;
        *start += len;
        Some(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_input_in_order() {
        for (n, l) in [(1000, 3), (640, 3), (130, 2), (1_000_003, 4)] {
            let rs: Vec<_> = chunk_ranges(n, l).collect();
            assert_eq!(rs.len(), l);
            assert_eq!(rs[0].start, 0);
            assert_eq!(rs[l - 1].end, n);
            for w in rs.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert_eq!(w[0].len() % ALIGN, 0, "{n} in {l}: {rs:?}");
            }
            // Even up to one block, plus what does not fill a block.
            let lens: Vec<usize> = rs.iter().map(|r| r.len()).collect();
            let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
            assert!(hi - lo < 2 * ALIGN, "{n} in {l}: {lens:?}");
        }
    }
}
