//! The `op` job ([`OpJob`]) of `spindle party`: one non-linear function on a secret
//! input, timed over real links (issue 4's budgets are for parties as
//! processes over TCP).

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::{Finished, Job, JobPhase};
use crate::error::{Error, Result};
use crate::prg::{Prg, Seed};
use crate::protocol::{compare, nonlinear};
use crate::session::Session;
use crate::share::Shared;

/// A function the op job can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// ReLU ([`compare::relu`]), inputs in [-10, 10].
    Relu,
    /// exp ([`nonlinear::exp`]), inputs in [-20, 10].
    Exp,
    /// 1/x ([`nonlinear::reciprocal`]), inputs 2^u for u in [-9.9, 11.9].
    Reciprocal,
    /// softmax along rows ([`nonlinear::softmax_with`]), inputs in [-20, 20].
    Softmax,
}

impl OpKind {
    /// The function's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Relu => "relu",
            OpKind::Exp => "exp",
            OpKind::Reciprocal => "reciprocal",
            OpKind::Softmax => "softmax",
        }
    }

    /// The f64 reference of one row (softmax) or of each element.
    fn reference(self, x: &[f64], row: usize) -> Vec<f64> {
        match self {
            OpKind::Relu => x.iter().map(|v| v.max(0.0)).collect(),
            OpKind::Exp => x.iter().map(|v| v.exp()).collect(),
            OpKind::Reciprocal => x.iter().map(|v| 1.0 / v).collect(),
            OpKind::Softmax => x
                .chunks(row)
                .flat_map(|r| {
                    let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
                    r.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
                })
                .collect(),
        }
    }

    /// `len` inputs from the function's benchmark domain.
    fn inputs(self, seed: u64, len: usize) -> Vec<f64> {
        let mut raw = vec![0u64; len];
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Prg::new(&Seed(s), 7).fill(&mut raw);
        let u = |v: &u64| (v >> 11) as f64 / (1u64 << 53) as f64;
        raw.iter()
            .map(|v| match self {
                OpKind::Relu => -10.0 + 20.0 * u(v),
                OpKind::Exp => -20.0 + 30.0 * u(v),
                OpKind::Reciprocal => (-9.9 + 21.8 * u(v)).exp2(),
                OpKind::Softmax => -20.0 + 40.0 * u(v),
            })
            .collect()
    }
}

impl std::str::FromStr for OpKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            OpKind::Relu,
            OpKind::Exp,
            OpKind::Reciprocal,
            OpKind::Softmax,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| Error::Unsupported(format!("no op {s:?}: relu, exp, reciprocal or softmax")))
    }
}

/// One function on `rows` x `cols` secret inputs of party 0, `repeat`
/// times (fresh preprocessing each), in Z_2^64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpJob {
    /// The function.
    pub op: OpKind,
    /// Rows (softmax) or the first factor of the element count.
    pub rows: usize,
    /// Row length (softmax) or the second factor of the element count.
    pub cols: usize,
    /// Softmax: the max's group size ([`nonlinear::SoftmaxOptions`]).
    pub max_group: Option<usize>,
    /// Seed of the (public, test) inputs.
    pub input_seed: u64,
    /// Runs of the function; the median time is reported.
    pub repeat: usize,
}

impl OpJob {
    /// Runs the job: party 0 shares the inputs, every run is timed, the
    /// last output is revealed to party 0, which returns its largest
    /// absolute error against f64 on the encoded inputs as the result
    /// (others: nothing). One phase:
    /// the median run, with the traffic of one run.
    ///
    /// Errors: protocol and transport errors.
    async fn run_op(&self, sess: &Session) -> Result<Finished<Option<f64>>> {
        let shape = [self.rows, self.cols];
        let x = (sess.party() == 0).then(|| self.op.inputs(self.input_seed, self.rows * self.cols));
        let xs = sess.share_input_f64::<u64>(0, x.as_deref(), shape)?;
        let (mut times, link0) = (Vec::new(), sess.link_stats());
        let mut y: Option<Shared<u64>> = None;
        for _ in 0..self.repeat {
            let t0 = Instant::now();
            let c0 = cpu_now().unwrap_or_default();
            y = Some(match self.op {
                OpKind::Relu => compare::relu(sess, &xs).await?,
                OpKind::Exp => nonlinear::exp(sess, &xs).await?,
                OpKind::Reciprocal => nonlinear::reciprocal(sess, &xs).await?,
                OpKind::Softmax => {
                    let o = nonlinear::SoftmaxOptions {
                        max_group: self.max_group,
                    };
                    nonlinear::softmax_with(sess, &xs, 1, None, o).await?
                }
            });
            times.push(t0.elapsed());
            // CPU of the whole process (every thread) against wall time:
            // tells local work from waiting on the peer.
            tracing::debug!(
                "{}: {:?} wall, {:?} process CPU",
                self.op.name(),
                t0.elapsed(),
                cpu_now().map(|c| c.saturating_sub(c0))
            );
        }
        let link = sess.link_stats() - link0;
        let y = y.expect("repeat >= 1");
        let revealed = sess.reveal_to(&y, 0).await?;
        let result = match (revealed, x) {
            (Some(y), Some(x)) if !sess.is_dry_run() => {
                let fp = sess.fixed_point::<u64>()?;
                // Against the inputs as encoded (their rounding is not the protocol's error).
                let xq = x
                    .iter()
                    .map(|&v| Ok(fp.decode(fp.encode::<u64>(v)?)))
                    .collect::<Result<Vec<f64>>>()?;
                let want = self.op.reference(&xq, self.cols);
                let err = y
                    .data()
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| (fp.decode(*g) - w).abs())
                    .fold(0.0, f64::max);
                Some(err)
            }
            _ => None,
        };
        times.sort();
        // Softmax works on whole rows and runs as one piece.
        let lanes = match self.op {
            OpKind::Softmax => 1,
            _ => sess.config().pipeline.lanes_for(self.rows * self.cols),
        };
        Ok(Finished {
            output: result,
            phases: vec![JobPhase {
                label: match lanes {
                    1 => format!("{} (median of {})", self.op.name(), self.repeat),
                    // The rounds printed with it count every lane's tags.
                    l => format!("{} (median of {}, {l} lanes)", self.op.name(), self.repeat),
                },
                time: times
                    .get(times.len() / 2)
                    .copied()
                    .unwrap_or(Duration::ZERO),
                link: link.per(self.repeat as u64),
            }],
        })
    }
}

impl Job for OpJob {
    /// At party 0, the largest |secure - f64| of the last run (against
    /// the inputs as encoded); `None` elsewhere.
    type Output = Option<f64>;

    /// What the parties and the dealer must agree on.
    fn fingerprint(&self) -> String {
        format!(
            "op {} {}x{} max_group={:?} repeat={}",
            self.op.name(),
            self.rows,
            self.cols,
            self.max_group,
            self.repeat
        )
    }

    /// Checks the shape: nonzero, at most 2^26 elements, 1 <= repeat <= 1000.
    ///
    /// Errors: [`Error::ShapeMismatch`].
    fn validate(&self) -> Result<()> {
        let n = self.rows.saturating_mul(self.cols);
        if n == 0 || n > 1 << 26 || self.repeat == 0 || self.repeat > 1000 {
            return Err(Error::shape(
                "job op",
                format!(
                    "need 1..=2^26 elements and 1 <= repeat <= 1000, got {} x {}, repeat {}",
                    self.rows, self.cols, self.repeat
                ),
            ));
        }
        Ok(())
    }

    fn run<'a>(&'a self, sess: &'a Session) -> BoxFuture<'a, Result<Finished<Option<f64>>>> {
        Box::pin(self.run_op(sess))
    }
}

/// User + system CPU time of this process so far, from /proc/self/stat
/// (Linux; in clock ticks, taken as 10 ms, the kernel's USER_HZ on every
/// mainstream configuration). `None` where /proc is unavailable.
fn cpu_now() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces): state is
    // field 3 of stat(5), utime 14 and stime 15.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let mut f = rest.split(' ').skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}
