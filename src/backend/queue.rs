//! The compute stage of a party's pipeline: a bounded queue of backend
//! jobs and the worker threads that run them.
//!
//! Without it every backend op runs inline in the party's protocol task:
//! while one stream (a micro-batch on its fork) multiplies a large GEMM,
//! no other stream's protocol step runs, so their next messages leave
//! only when the GEMM returns. With it the protocol task hands a heavy op
//! to the queue and awaits its result; meanwhile it polls the other
//! streams, whose openings arrive, whose protocol logic runs and whose
//! next rounds go out. The three stages of MPC-Pipe's executor (Wang,
//! Rajat, Annavaram, ASPLOS 2024) are then: compute on these workers (the
//! CPU backend's rayon pool under them; on a GPU the device's stream),
//! protocol logic in the party's task, and the transport's per-peer
//! writer and reader tasks.
//!
//! The queue is bounded ([`ComputeQueue::start`]'s `depth`): a protocol
//! task that finds it full waits, so a burst of streams cannot pile up
//! unbounded copies of their operands. Jobs run in the order they were
//! queued, on the same backend, so results are bit-identical to running
//! them inline.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// One queued job: runs on a worker and sends its result back itself.
type Job = Box<dyn FnOnce() + Send>;

/// A bounded queue of backend jobs and its worker threads (the compute
/// stage). Dropping the last handle closes the queue; the workers finish
/// the jobs already queued and exit.
#[derive(Debug)]
pub struct ComputeQueue {
    sender: mpsc::Sender<Job>,
    workers: usize,
    depth: usize,
    done: Arc<AtomicU64>,
    _threads: Vec<JoinHandle<()>>,
}

impl ComputeQueue {
    /// Starts `workers` threads (at least 1) serving a queue of at most
    /// `depth` waiting jobs (at least 1).
    ///
    /// Errors: [`Error::Resources`] when the system refuses a thread.
    pub fn start(workers: usize, depth: usize) -> Result<Arc<ComputeQueue>> {
        let (workers, depth) = (workers.max(1), depth.max(1));
        let (sender, receiver) = mpsc::channel::<Job>(depth);
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = (0..workers)
            .map(|i| {
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("spindle-compute-{i}"))
                    .spawn(move || serve(&receiver))
                    .map_err(|e| {
                        Error::Resources(format!("cannot start compute-stage thread {i}: {e}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ComputeQueue {
            sender,
            workers,
            depth,
            done: Arc::new(AtomicU64::new(0)),
            _threads: threads,
        }))
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs that may wait in the queue at once.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Jobs run to completion so far.
    pub fn jobs_run(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Runs `job` on a worker and returns its result; waits for room in the
    /// queue first. The job runs inside the caller's trace
    /// ([`crate::trace`]), so its backend ops appear on the compute track.
    ///
    /// Errors: those of `job`; [`Error::Unsupported`] if the job panicked
    /// (the panic's message) or the workers are gone.
    pub async fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let trace = crate::trace::current();
        let done = self.done.clone();
        let wrapped: Job = Box::new(move || {
            let out = catch_unwind(AssertUnwindSafe(|| crate::trace::traced_sync(trace, job)))
                .unwrap_or_else(|panic| {
                    Err(Error::Unsupported(format!(
                        "a compute-stage job panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                });
            done.fetch_add(1, Ordering::Relaxed);
            // The caller may have stopped waiting (its stream failed): nothing to do.
            let _ = tx.send(out);
        });
        self.sender.send(wrapped).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// A worker: runs jobs until the queue closes.
fn serve(receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // One worker waits on the queue at a time; the others wait for the lock.
        let job = match receiver.lock() {
            Ok(mut r) => r.blocking_recv(),
            Err(_) => None,
        };
        match job {
            Some(job) => job(),
            None => return,
        }
    }
}

fn gone() -> Error {
    Error::Unsupported("the compute stage's workers are gone".into())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// Jobs run off the caller's thread and return their results in order.
    #[test]
    fn jobs_run_on_the_workers_and_return_their_results() {
        let q = ComputeQueue::start(2, 1).unwrap();
        let caller = std::thread::current().id();
        let out = block_on(async {
            let mut v = Vec::new();
            for i in 0..8u64 {
                v.push(
                    q.run(move || Ok((i * i, std::thread::current().id())))
                        .await,
                );
            }
            v
        });
        for (i, r) in out.into_iter().enumerate() {
            let (sq, thread) = r.unwrap();
            assert_eq!(sq, (i * i) as u64);
            assert_ne!(thread, caller);
        }
    }

    /// A job's error comes back as it is; a panic comes back as an error
    /// and the workers keep serving.
    #[test]
    fn errors_and_panics_come_back_as_errors() {
        let q = ComputeQueue::start(1, 2).unwrap();
        block_on(async {
            let e = q
                .run(|| -> Result<()> { Err(Error::Resources("full".into())) })
                .await;
            assert!(matches!(e, Err(Error::Resources(m)) if m == "full"));
            let p = q.run(|| -> Result<()> { panic!("boom") }).await;
            assert!(matches!(p, Err(Error::Unsupported(m)) if m.contains("boom")));
            assert_eq!(q.run(|| Ok(7)).await.unwrap(), 7);
        });
    }

    /// Concurrent callers share the bounded queue: all finish, none is lost.
    #[test]
    fn concurrent_callers_all_finish_through_a_short_queue() {
        let q = ComputeQueue::start(1, 1).unwrap();
        let sums = block_on(futures_util::future::join_all((0..16u64).map(|i| {
            let q = &q;
            async move { q.run(move || Ok((0..=i).sum::<u64>())).await.unwrap() }
        })));
        assert_eq!(
            sums,
            (0..16u64).map(|i| i * (i + 1) / 2).collect::<Vec<_>>()
        );
    }
}
