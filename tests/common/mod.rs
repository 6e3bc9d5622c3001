//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;

use spindle::prg::{Prg, Seed};
use spindle::ring::{Ring, RingTensor, Shape};
use spindle::runner::{run_parties_blocking, RunOptions, RunReport};
use spindle::Session;
use spindle_transport::LinkStats;

/// The party counts every protocol test covers.
pub const PARTY_COUNTS: [usize; 3] = [2, 3, 4];

/// A fresh random seed, printed so a failure can be reproduced.
pub fn fresh_seed(label: &str) -> Seed {
    let s = Seed::random().expect("OS randomness");
    eprintln!("{label}: seed {:02x?}", s.0);
    s
}

/// Uniform ring tensor.
pub fn uniform<R: Ring>(prg: &mut Prg, shape: impl Into<Shape>) -> RingTensor<R> {
    prg.tensor(shape)
}

/// Uniform reals in [-bound, bound).
pub fn reals(prg: &mut Prg, n: usize, bound: f64) -> Vec<f64> {
    let mut raw = vec![0u64; n];
    prg.fill(&mut raw);
    raw.iter()
        .map(|&v| ((v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound)
        .collect()
}

/// Runs `program` as each of `n` parties (dealer preprocessing).
pub fn run<T, F, Fut>(n: usize, program: F) -> RunReport<T>
where
    F: Fn(Arc<Session>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = spindle::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    run_parties_blocking(&RunOptions::new(n), program).expect("run succeeds")
}

/// Runs `op` and returns its result with the traffic it caused at this party.
pub async fn measured<T>(
    sess: &Session,
    op: impl Future<Output = spindle::Result<T>>,
) -> spindle::Result<(T, LinkStats)> {
    let before = sess.link_stats();
    let out = op.await?;
    Ok((out, sess.link_stats() - before))
}

/// Asserts one party's traffic for an op: `rounds` rounds and `elems` ring
/// elements sent to each of the other N-1 parties.
pub fn assert_cost<R: Ring>(
    stats: &LinkStats,
    n: usize,
    rounds: u64,
    elems_per_peer: usize,
    what: &str,
) {
    assert_eq!(stats.rounds, rounds, "{what}: rounds");
    assert_eq!(
        stats.bytes_sent,
        ((n - 1) * elems_per_peer * R::BYTES) as u64,
        "{what}: bytes sent"
    );
    if rounds > 0 {
        assert_eq!(
            stats.messages_sent,
            (n as u64 - 1) * rounds,
            "{what}: one message per peer per round"
        );
    }
}

/// The all-MiniLM-L6-v2 folder: `$SPINDLE_MINILM_DIR`, else
/// `../shared/data/minilm` from the project root; `None` (with a message
/// saying why the test skips) where it is absent.
pub fn minilm_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("SPINDLE_MINILM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/minilm")
        });
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: no all-MiniLM-L6-v2 at {} (set SPINDLE_MINILM_DIR)",
            dir.display()
        );
        None
    }
}

/// The reference sentences of the MiniLM folder.
pub fn minilm_reference(
    dir: &std::path::Path,
) -> Vec<spindle::models::bert::reference::ReferenceSentence> {
    spindle::models::bert::reference::read_reference(&dir.join("reference.json"))
        .expect("reference.json")
}
