//! ReLU on shares.

use async_trait::async_trait;

use super::module::no_cache;
use super::Module;
use crate::error::Result;
use crate::protocol::{beaver, compare};
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// ReLU. Forward: [`compare::relu_with_derivative`] (8 rounds in Z_2^64),
/// keeping the 0/1 derivative. Backward: g * DReLU(x), one exact Beaver
/// product (the derivative is an integer, so no truncation): 1 round.
#[derive(Default)]
pub struct ReLU<R: Ring> {
    derivative: Option<Shared<R>>,
}

impl<R: Ring> ReLU<R> {
    /// A ReLU layer.
    pub fn new() -> Self {
        ReLU { derivative: None }
    }
}

#[async_trait]
impl<R: Ring> Module<R> for ReLU<R> {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(ReLU::new())
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        let (y, d) = compare::relu_with_derivative(sess, x).await?;
        self.derivative = train.then_some(d);
        Ok(y)
    }

    async fn infer(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        Ok(compare::relu_with_derivative(sess, x).await?.0)
    }

    async fn backward(
        &mut self,
        sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        let d = self.derivative.take().ok_or_else(|| no_cache("relu"))?;
        if !need_input_grad {
            return Ok(None);
        }
        Ok(Some(beaver::mul(sess, grad, &d).await?))
    }
}
