//! The [`Module`] trait of secure layers and their [`Param`]s.

use async_trait::async_trait;

use crate::error::Result;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// A shared trainable tensor with its gradient and optimizer state.
#[derive(Clone, Debug)]
pub struct Param<R: Ring> {
    /// The shared value (fixed point).
    pub value: Shared<R>,
    /// Gradient of the last backward pass (fixed point), if any.
    pub grad: Option<Shared<R>>,
    /// Momentum buffer of [`crate::nn::Sgd`].
    pub velocity: Option<Shared<R>>,
}

impl<R: Ring> Param<R> {
    /// The same value, with no gradient or momentum ([`Module::replicate`]).
    pub fn value_only(&self) -> Self {
        Param::new(self.value.clone())
    }

    /// A parameter with no gradient yet.
    pub fn new(value: Shared<R>) -> Self {
        Param {
            value,
            grad: None,
            velocity: None,
        }
    }
}

/// A layer on shares: forward caches what backward needs; backward turns the
/// gradient of the output into the gradient of the input and stores the
/// parameter gradients. All tensors are fixed point with the session's f.
#[async_trait]
pub trait Module<R: Ring>: Send + Sync {
    /// Short name for logs.
    fn name(&self) -> &'static str;

    /// Forward pass. `train` keeps the caches for [`Module::backward`].
    ///
    /// Errors: shape mismatches, preprocessing and transport errors.
    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>>;

    /// Inference: the forward pass without caches, on a shared model, so
    /// several micro-batches may run through one model at once (the
    /// inter-batch pipeline). Same rounds and bytes as
    /// `forward(.., false)`.
    ///
    /// Errors: shape mismatches, preprocessing and transport errors.
    async fn infer(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>>;

    /// A copy of the layer for another micro-batch of the same step: the
    /// same parameter shares (and prepared weights), no caches, no
    /// gradients. Local.
    fn replicate(&self) -> Box<dyn Module<R>>;

    /// Prepares the layer's weights for many inferences (MPC-Pipe's
    /// inter-linear scheme: what does not depend on the input moves out
    /// of each inference): masks the weight and opens the masked value
    /// once ([`crate::protocol::beaver::prepare_static`]), so that every
    /// later [`Module::infer`] opens only its input's mask. Kept until the
    /// parameters are next borrowed mutably ([`Module::params_mut`]).
    /// Default: nothing to prepare.
    ///
    /// Rounds: 1 per weight. Bytes per party: (N - 1) numel(W) k / 8.
    /// Errors: preprocessing and transport errors.
    async fn prepare_inference(&mut self, _sess: &Session) -> Result<()> {
        Ok(())
    }

    /// Backward pass from the output gradient; returns the input gradient
    /// (`None` when `need_input_grad` is false, as for the first layer).
    ///
    /// Errors: [`crate::Error::Unsupported`] without a training forward
    /// pass; shape, preprocessing and transport errors.
    async fn backward(
        &mut self,
        sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>>;

    /// The trainable parameters (empty for parameter-free layers).
    fn params_mut(&mut self) -> Vec<&mut Param<R>> {
        Vec::new()
    }

    /// The parameters, read-only.
    fn params(&self) -> Vec<&Param<R>> {
        Vec::new()
    }
}

pub(crate) fn no_cache(layer: &str) -> crate::Error {
    crate::Error::Unsupported(format!("{layer}: backward without a training forward pass"))
}
