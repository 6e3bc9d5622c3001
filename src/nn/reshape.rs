//! Flatten, batch norm (inference) and dropout (evaluation) layers.

use async_trait::async_trait;

use super::conv::broadcast_channels;
use super::module::no_cache;
use super::{Module, Param};
use crate::error::{Error, Result};
use crate::protocol::fixed;
use crate::ring::{Ring, Shape};
use crate::session::Session;
use crate::share::Shared;

/// [batch, ...] -> [batch, prod(...)]; free in both directions.
#[derive(Default)]
pub struct Flatten {
    input: Option<Shape>,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Flatten { input: None }
    }
}

#[async_trait]
impl<R: Ring> Module<R> for Flatten {
    fn name(&self) -> &'static str {
        "flatten"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(Flatten::new())
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        let y = self.infer(sess, x).await?;
        self.input = train.then(|| x.shape().clone());
        Ok(y)
    }

    async fn infer(&self, _sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        let d = x.shape().dims();
        if d.is_empty() {
            return Err(Error::shape("flatten", "needs a batch dimension"));
        }
        x.clone().reshape([d[0], d[1..].iter().product()])
    }

    async fn backward(
        &mut self,
        _sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        let shape = self.input.take().ok_or_else(|| no_cache("flatten"))?;
        Ok(need_input_grad
            .then(|| grad.clone().reshape(shape))
            .transpose()?)
    }
}

/// Inference-time batch norm: y = x * scale[c] + shift[c] with the running
/// statistics folded into scale and shift by the model owner. One
/// fixed-point product (2 rounds). Training (batch statistics) is not
/// supported yet: backward is a clear error.
pub struct BatchNorm2d<R: Ring> {
    scale: Param<R>,
    shift: Param<R>,
}

impl<R: Ring> BatchNorm2d<R> {
    /// A layer from shared scale [c] and shift [c].
    pub fn new(scale: Shared<R>, shift: Shared<R>) -> Self {
        BatchNorm2d {
            scale: Param::new(scale),
            shift: Param::new(shift),
        }
    }
}

#[async_trait]
impl<R: Ring> Module<R> for BatchNorm2d<R> {
    fn name(&self) -> &'static str {
        "batchnorm2d"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(BatchNorm2d {
            scale: self.scale.value_only(),
            shift: self.shift.value_only(),
        })
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, _train: bool) -> Result<Shared<R>> {
        self.infer(sess, x).await
    }

    async fn infer(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        let expand = |p: &Shared<R>| -> Result<Shared<R>> {
            Ok(Shared::from_share(broadcast_channels(sess, p, x.shape())?))
        };
        let y = fixed::mul(sess, x, &expand(&self.scale.value)?).await?;
        y.add(sess, &expand(&self.shift.value)?)
    }

    async fn backward(
        &mut self,
        _sess: &Session,
        _grad: &Shared<R>,
        _need: bool,
    ) -> Result<Option<Shared<R>>> {
        Err(Error::Unsupported(
            "BatchNorm2d is inference-only (running statistics); training it is not implemented yet".into(),
        ))
    }

    fn params_mut(&mut self) -> Vec<&mut Param<R>> {
        vec![&mut self.scale, &mut self.shift]
    }

    fn params(&self) -> Vec<&Param<R>> {
        vec![&self.scale, &self.shift]
    }
}

/// Dropout: the identity at evaluation. Training with p > 0 needs shared
/// random masks and is not implemented yet: a clear error.
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// A dropout layer with drop probability `p`.
    pub fn new(p: f32) -> Self {
        Dropout { p }
    }
}

#[async_trait]
impl<R: Ring> Module<R> for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(Dropout::new(self.p))
    }

    async fn forward(&mut self, _sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        if train && self.p > 0.0 {
            return Err(Error::Unsupported(format!(
                "dropout with p = {} in training is not implemented yet (use p = 0 or evaluation)",
                self.p
            )));
        }
        Ok(x.clone())
    }

    async fn infer(&self, _sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        Ok(x.clone())
    }

    async fn backward(
        &mut self,
        _sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        Ok(need_input_grad.then(|| grad.clone()))
    }
}
