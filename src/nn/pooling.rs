//! Max and average pooling layers on shares.

use async_trait::async_trait;

use super::module::no_cache;
use super::Module;
use crate::backend::Backend;
use crate::error::Result;
use crate::protocol::fixed;
use crate::protocol::pool::{maxpool2d, maxpool2d_backward, maxpool2d_max, Pool2d};
use crate::ring::{Ring, Shape};
use crate::session::Session;
use crate::share::Shared;

/// Max pooling. Forward: [`maxpool2d`], keeping the argmax one-hot;
/// inference: [`maxpool2d_max`] (no one-hot). Backward:
/// [`maxpool2d_backward`] (one exact product, 1 round).
pub struct MaxPool2d<R: Ring> {
    pool: Pool2d,
    cache: Option<(Shared<R>, Shape)>,
}

impl<R: Ring> MaxPool2d<R> {
    /// A max-pooling layer.
    pub fn new(pool: Pool2d) -> Self {
        MaxPool2d { pool, cache: None }
    }
}

#[async_trait]
impl<R: Ring> Module<R> for MaxPool2d<R> {
    fn name(&self) -> &'static str {
        "maxpool2d"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(MaxPool2d::new(self.pool))
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        let (y, onehot) = maxpool2d(sess, x, &self.pool).await?;
        self.cache = train.then(|| (onehot, x.shape().clone()));
        Ok(y)
    }

    async fn infer(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        maxpool2d_max(sess, x, &self.pool, false).await
    }

    async fn backward(
        &mut self,
        sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        let (onehot, shape) = self.cache.take().ok_or_else(|| no_cache("maxpool2d"))?;
        if !need_input_grad {
            return Ok(None);
        }
        Ok(Some(
            maxpool2d_backward(sess, grad, &onehot, &shape, &self.pool).await?,
        ))
    }
}

/// Average pooling (padding counts as zeros). Forward: local window sums
/// times the public 1/(kh kw) (1 truncation round). Backward: the gradient
/// times 1/(kh kw) (1 round), spread over each window (local).
pub struct AvgPool2d {
    pool: Pool2d,
    input: Option<Shape>,
}

impl AvgPool2d {
    /// An average-pooling layer.
    pub fn new(pool: Pool2d) -> Self {
        AvgPool2d { pool, input: None }
    }

    fn inv_area(&self) -> f64 {
        1.0 / (self.pool.kernel.0 * self.pool.kernel.1) as f64
    }
}

#[async_trait]
impl<R: Ring> Module<R> for AvgPool2d {
    fn name(&self) -> &'static str {
        "avgpool2d"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(AvgPool2d::new(self.pool))
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        self.input = train.then(|| x.shape().clone());
        self.infer(sess, x).await
    }

    async fn infer(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        let out_shape = self.pool.output_shape(x.shape())?;
        // Window sums: the windows (zero padding) summed over their taps.
        let be = sess.backend();
        let windows = be.pool_windows(x.share(), &self.pool, R::ZERO)?;
        let sums = be.sum_axis(&windows, 1)?.reshape(out_shape)?;
        let sums = Shared::from_share(sums);
        fixed::mul_public_scalar(sess, &sums, self.inv_area()).await
    }

    async fn backward(
        &mut self,
        sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        let shape = self.input.take().ok_or_else(|| no_cache("avgpool2d"))?;
        if !need_input_grad {
            return Ok(None);
        }
        let scaled = fixed::mul_public_scalar(sess, grad, self.inv_area()).await?;
        // Each window's gradient to every tap of it (the adjoint of the
        // window sums): a broadcast over the taps, then the scatter.
        let be = sess.backend();
        let kk = self.pool.kernel.0 * self.pool.kernel.1;
        let taps = be.broadcast_axis(scaled.share(), &[scaled.numel(), kk].into(), 1)?;
        let out = be.pool_scatter(&taps, &shape, &self.pool)?;
        Ok(Some(Shared::from_share(out)))
    }
}
