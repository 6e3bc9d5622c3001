//! The `matmul` job: a secure fixed-point matrix product of two parties'
//! inputs, revealed to everyone (the smallest end-to-end check of a
//! cluster, and a benchmark of the linear layers' path).

use futures_util::future::BoxFuture;

use super::{Finished, Job};
use crate::error::{Error, Result};
use crate::prg::{Prg, Seed};
use crate::protocol::fixed;
use crate::session::Session;

/// Party 0 inputs X [m, k], party 1 inputs W [k, n] (reals in [-1, 1)
/// drawn from `input_seed`); the parties compute X W with a secure
/// fixed-point matmul plus truncation and reveal it to everyone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatmulJob {
    /// Rows of X.
    pub m: usize,
    /// Columns of X, rows of W.
    pub k: usize,
    /// Columns of W.
    pub n: usize,
    /// Seed of the inputs (public: for tests and benchmarks).
    pub input_seed: u64,
    /// How many times to compute the product (each with fresh
    /// preprocessing, 2 rounds each); the last one is revealed. Longer
    /// runs for benchmarks and failure tests.
    pub repeat: usize,
}

impl MatmulJob {
    /// The inputs (X, W), row-major.
    pub fn inputs(&self) -> (Vec<f64>, Vec<f64>) {
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&self.input_seed.to_le_bytes());
        let seed = Seed(seed);
        let (m, k, n) = (self.m, self.k, self.n);
        (reals(&seed, 0, m * k), reals(&seed, 1, k * n))
    }

    /// The f64 product X W the job should reveal (row-major [m, n]).
    pub fn expected(&self) -> Vec<f64> {
        let (m, k, n) = (self.m, self.k, self.n);
        let (x, w) = self.inputs();
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for l in 0..k {
                let a = x[i * k + l];
                for j in 0..n {
                    out[i * n + j] += a * w[l * n + j];
                }
            }
        }
        out
    }

    async fn compute(&self, sess: &Session) -> Result<Vec<f64>> {
        let (m, k, n) = (self.m, self.k, self.n);
        let me = sess.party();
        let (x, w) = if me <= 1 {
            self.inputs()
        } else {
            (Vec::new(), Vec::new())
        };
        let xs = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [m, k])?;
        let ws = sess.share_input_f64::<u64>(1, (me == 1).then_some(&w[..]), [k, n])?;
        let mut z = fixed::matmul(sess, &xs, &ws).await?;
        for _ in 1..self.repeat {
            z = fixed::matmul(sess, &xs, &ws).await?;
        }
        sess.reveal_f64(&z).await
    }
}

impl Job for MatmulJob {
    /// The product X W, row-major [m, n], at every party.
    type Output = Vec<f64>;

    fn fingerprint(&self) -> String {
        let MatmulJob {
            m, k, n, repeat, ..
        } = self;
        format!("matmul m={m} k={k} n={n} repeat={repeat}")
    }

    /// Errors: [`Error::ShapeMismatch`] unless 0 < m, k, n with at most
    /// 2^28 elements per matrix and 1 <= repeat <= 2^20.
    fn validate(&self) -> Result<()> {
        let MatmulJob {
            m, k, n, repeat, ..
        } = *self;
        let ok = |a: usize, b: usize| a > 0 && b > 0 && a.saturating_mul(b) <= 1 << 28;
        if !(ok(m, k) && ok(k, n) && ok(m, n)) || repeat == 0 || repeat > 1 << 20 {
            return Err(Error::shape(
                "job matmul",
                format!(
                    "need 0 < m, k, n, at most 2^28 elements per matrix and 1 <= repeat <= 2^20, \
                     got {m} x {k} x {n}, repeat {repeat}"
                ),
            ));
        }
        Ok(())
    }

    fn run<'a>(&'a self, sess: &'a Session) -> BoxFuture<'a, Result<Finished<Vec<f64>>>> {
        Box::pin(async move {
            Ok(Finished {
                output: self.compute(sess).await?,
                phases: Vec::new(),
            })
        })
    }
}

fn reals(seed: &Seed, stream: u64, len: usize) -> Vec<f64> {
    let mut raw = vec![0u64; len];
    Prg::new(seed, stream).fill(&mut raw);
    raw.iter()
        .map(|&v| (v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}
