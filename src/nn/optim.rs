//! Stochastic gradient descent with momentum and weight decay on shares.

use super::Param;
use crate::error::{Error, Result};
use crate::protocol::trunc::truncate_many;
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;

/// SGD as PyTorch's `torch.optim.SGD`: g' = g + wd w; v = momentum v + g';
/// w = w - lr v. The hyperparameters are public reals, encoded with the
/// session's fixed point.
///
/// Cost per step, all parameters batched: 2 truncation rounds (one for
/// wd w and momentum v, one for lr v); 1 when both wd and momentum are 0.
#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum (0 disables the buffer).
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
}

impl Sgd {
    /// One update of every parameter that has a gradient.
    ///
    /// Errors: [`Error::Unsupported`] if a parameter has no gradient;
    /// encoding, preprocessing and transport errors.
    pub async fn step<R: Ring>(&self, sess: &Session, params: Vec<&mut Param<R>>) -> Result<()> {
        let fp = sess.fixed_point::<R>()?;
        let f = fp.frac_bits();
        let (lr, mom, wd) = (
            fp.encode::<R>(self.lr)?,
            fp.encode::<R>(self.momentum)?,
            fp.encode::<R>(self.weight_decay)?,
        );
        let mut params = params;
        for (i, p) in params.iter().enumerate() {
            if p.grad.is_none() {
                return Err(Error::Unsupported(format!(
                    "parameter {i} has no gradient: run backward first"
                )));
            }
        }
        // Round 1: wd * w and momentum * v, truncated together.
        let mut scaled = Vec::new();
        for p in params.iter() {
            if self.weight_decay != 0.0 {
                scaled.push(p.value.mul_scalar(sess, wd)?);
            }
            if self.momentum != 0.0 {
                let v = p.velocity.clone().unwrap_or_else(|| zeros_like(&p.value));
                scaled.push(v.mul_scalar(sess, mom)?);
            }
        }
        let refs: Vec<&Shared<R>> = scaled.iter().collect();
        let mut scaled = truncate_many(sess, &refs, f).await?.into_iter();
        let mut steps = Vec::with_capacity(params.len());
        for p in params.iter_mut() {
            let mut g = p.grad.clone().expect("checked above");
            if self.weight_decay != 0.0 {
                g = g.add(sess, &scaled.next().expect("wd term"))?;
            }
            if self.momentum != 0.0 {
                g = g.add(sess, &scaled.next().expect("momentum term"))?;
                p.velocity = Some(g.clone());
            }
            steps.push(g.mul_scalar(sess, lr)?);
        }
        // Round 2: lr * v.
        let refs: Vec<&Shared<R>> = steps.iter().collect();
        let steps = truncate_many(sess, &refs, f).await?;
        for (p, s) in params.iter_mut().zip(steps) {
            p.value = p.value.sub(sess, &s)?;
        }
        Ok(())
    }
}

fn zeros_like<R: Ring>(x: &Shared<R>) -> Shared<R> {
    Shared::from_share(RingTensor::zeros(x.shape().clone()))
}
