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

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor, Shape};
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
    lanes: RowLanes<R>,
    numel: usize,
}

impl<R: Ring> Lanes<R> {
    /// The lanes for `x` in `sess` (none: run as one piece).
    ///
    /// Errors: backend errors (cutting x).
    pub fn new(sess: &Session, x: &Shared<R>) -> Result<Self> {
        let n = x.numel();
        let lanes = match sess.is_lane() {
            true => 1,
            false => sess.config().pipeline.lanes_for(n),
        };
        if lanes <= 1 {
            return Ok(Lanes {
                lanes: RowLanes::from_chunks(sess, vec![]),
                numel: n,
            });
        }
        let flat = x.clone().reshape(Shape(vec![n]))?;
        let be = sess.backend();
        let chunks = chunk_ranges(n, lanes)
            .map(|r| {
                let c = be.slice_axis(flat.share(), 0, r.start, r.len())?;
                Ok((Shared::from_share(c), r))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Lanes {
            lanes: RowLanes::from_chunks(sess, chunks),
            numel: n,
        })
    }

    /// Number of lanes (1: one piece).
    pub fn count(&self) -> usize {
        self.lanes.count()
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
        if self.count() == 1 {
            return f(sess, x).await;
        }
        if self.numel != x.numel() {
            return Err(Error::shape(
                "inner-layer pipeline",
                format!(
                    "lanes cut from {} elements, run on {}",
                    self.numel,
                    x.shape()
                ),
            ));
        }
        let y = self
            .lanes
            .run(sess, x, move |s, c, _| {
                let fut = f(s, c);
                async move { Ok(vec![fut.await?]) }
            })
            .await?;
        match y.into_iter().next() {
            Some(y) => y.reshape(x.shape().clone()),
            None => Err(Error::shape("inner-layer pipeline", "no output")),
        }
    }
}

/// The inner-layer pipeline for a row-wise protocol (softmax, LayerNorm,
/// max and max-pool: any `f` whose outputs' rows depend on the same rows
/// of the input only): `f(x)` with x cut into lanes of whole rows along
/// axis 0, when the session's [`InnerPipeline`] asks for more than one
/// lane for x's size (and x has at least two rows), else in one piece.
///
/// Use: `RowLanes::new(sess, &x)?.run(sess, &x, |s, chunk, rows| f(..)).await`:
/// `f` gets the lane's session, the chunk (x's rows `rows`, the other
/// axes whole) and the row range (to slice per-row arguments such as a
/// mask), and returns its outputs, each with the chunk's rows on axis 0;
/// they are joined along axis 0, in order.
///
/// Algorithm: as [`Lanes`] (ordered lanes of `sess` taking turns between
/// posting a round and reading it), with row chunks as even as possible.
/// Cost: the rounds of `f` plus the lanes' skew; L times the message
/// tags; the same bytes as one piece when every lane's rows fill whole
/// 64-element words of `f`'s bit-packed values, else each lane pads its
/// last word (protocols that pack rows, as the max tournament and the
/// inverse square root do, pad up to 63 rows per lane and packed opening:
/// small inputs in many lanes cost noticeably more).
pub struct RowLanes<R: Ring> {
    sessions: Vec<Session>,
    chunks: Vec<(Shared<R>, std::ops::Range<usize>)>,
    turns: Arc<Turns>,
}

impl<R: Ring> RowLanes<R> {
    /// The row lanes for `x` in `sess` (none: run as one piece, as for a
    /// scalar or a single row).
    ///
    /// Errors: backend errors (cutting x).
    pub fn new(sess: &Session, x: &Shared<R>) -> Result<Self> {
        let rows = x.shape().dims().first().copied().unwrap_or(0);
        let lanes = match sess.is_lane() {
            true => 1,
            false => sess.config().pipeline.lanes_for(x.numel()).min(rows),
        };
        if lanes <= 1 {
            return Ok(Self::from_chunks(sess, vec![]));
        }
        let be = sess.backend();
        let (base, extra) = (rows / lanes, rows % lanes);
        let mut chunks = Vec::with_capacity(lanes);
        let mut start = 0;
        for i in 0..lanes {
            let r = start..start + base + usize::from(i < extra);
            start = r.end;
            let c = Shared::from_share(be.slice_axis(x.share(), 0, r.start, r.len())?);
            chunks.push((c, r));
        }
        Ok(Self::from_chunks(sess, chunks))
    }

    /// Lanes over `chunks` (each with its row range; none: one piece),
    /// one ordered lane of `sess` per chunk.
    fn from_chunks(sess: &Session, chunks: Vec<(Shared<R>, std::ops::Range<usize>)>) -> Self {
        let turns = Arc::new(Turns::new(chunks.len().max(1)));
        let sessions = match chunks.len() {
            0 | 1 => vec![],
            l => (0..l).map(|i| sess.lane(turns.clone(), i)).collect(),
        };
        RowLanes {
            sessions,
            chunks,
            turns,
        }
    }

    /// Number of lanes (1: one piece).
    pub fn count(&self) -> usize {
        self.sessions.len().max(1)
    }

    /// `f` over the lanes, outputs joined along axis 0: `sess` and `x`
    /// must be those given to [`RowLanes::new`].
    ///
    /// Errors: those of `f` (the first lane to fail; the others are
    /// dropped); [`Error::ShapeMismatch`] when `f`'s outputs do not keep
    /// the chunk's rows or differ in number between lanes.
    pub async fn run<'a, F, Fut>(
        &'a self,
        sess: &'a Session,
        x: &'a Shared<R>,
        f: F,
    ) -> Result<Vec<Shared<R>>>
    where
        F: Fn(&'a Session, &'a Shared<R>, std::ops::Range<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Shared<R>>>> + 'a,
    {
        if self.sessions.is_empty() {
            let rows = x.shape().dims().first().copied().unwrap_or(0);
            return f(sess, x, 0..rows).await;
        }
        let f = &f;
        let runs = self
            .sessions
            .iter()
            .zip(&self.chunks)
            .enumerate()
            .map(|(lane, (s, (c, r)))| {
                let turns = &*self.turns;
                async move {
                    let _guard = LaneGuard { turns, lane };
                    turns.wait(lane).await;
                    let outs = f(s, c, r.clone()).await?;
                    match outs
                        .iter()
                        .find(|y| y.shape().dims().first() != Some(&r.len()))
                    {
                        Some(y) => Err(Error::shape(
                            "inner-layer pipeline",
                            format!("lane {lane} returned {} for {} rows", y.shape(), r.len()),
                        )),
                        None => Ok(outs),
                    }
                }
            });
        let outs = try_join_all(runs).await?;
        let count = outs[0].len();
        if outs.iter().any(|o| o.len() != count) {
            return Err(Error::shape(
                "inner-layer pipeline",
                "lanes returned different numbers of outputs",
            ));
        }
        let be = sess.backend();
        (0..count)
            .map(|j| {
                let parts: Vec<&RingTensor<R>> = outs.iter().map(|o| o[j].share()).collect();
                Ok(Shared::from_share(be.concat_axis(&parts, 0)?))
            })
            .collect()
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
