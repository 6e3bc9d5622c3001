//! [`SecureModel`]: a sequential model on shares built from a [`ModelSpec`].

use super::{
    activation::ReLU, conv::Conv2d, linear::Linear, pooling::AvgPool2d, pooling::MaxPool2d,
    reshape::BatchNorm2d, reshape::Dropout, reshape::Flatten, LayerSpec, ModelSpec, ModelWeights,
    Module, Param,
};
use crate::error::{Error, Result};
use crate::protocol::pool::{maxpool2d_max, Pool2d};
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;
use crate::trace::in_span;

/// A sequential model whose parameters are secret-shared.
pub struct SecureModel<R: Ring> {
    spec: ModelSpec,
    layers: Vec<Box<dyn Module<R>>>,
}

impl<R: Ring> SecureModel<R> {
    /// Secret-shares the model: party `owner` passes `Some(weights)` (f32,
    /// encoded with the session's fixed point), the others `None`. No
    /// online messages (input sharing is seed-based).
    ///
    /// Errors: [`Error::ShapeMismatch`] if the weights do not fit the spec,
    /// [`Error::InvalidParty`], encoding errors.
    pub fn share(
        sess: &Session,
        spec: &ModelSpec,
        owner: usize,
        weights: Option<&ModelWeights>,
    ) -> Result<Self> {
        if let Some(w) = weights {
            w.check(spec)?;
        }
        let mut shapes = spec.param_shapes().into_iter().enumerate();
        Self::build(spec, || {
            let (i, shape) = shapes.next().expect("one shape per parameter");
            let vals: Option<Vec<f64>> =
                weights.map(|w| w.tensors[i].1.iter().map(|&v| v as f64).collect());
            sess.share_input_f64::<R>(owner, vals.as_deref(), shape)
        })
    }

    /// The model from this party's shares of every parameter, in
    /// [`ModelSpec::param_shapes`] order (a share checkpoint of secure
    /// training, [`crate::io::checkpoint::ShareCheckpoint::params`]). No
    /// messages.
    ///
    /// Errors: [`Error::ShapeMismatch`] for another number of parameters
    /// or a share of another shape than the spec's.
    pub fn from_shares(spec: &ModelSpec, shares: Vec<RingTensor<R>>) -> Result<Self> {
        let shapes = spec.param_shapes();
        if shapes.len() != shares.len() {
            return Err(Error::shape(
                "model shares",
                format!(
                    "{} has {} parameters, {} shares given",
                    spec.name,
                    shapes.len(),
                    shares.len()
                ),
            ));
        }
        let mut next = shapes.into_iter().zip(shares).enumerate();
        Self::build(spec, || {
            let (i, (shape, share)) = next.next().expect("one share per parameter");
            if share.shape() != &shape {
                return Err(Error::shape(
                    "model shares",
                    format!(
                        "parameter {i} of {} is {shape}, its share {}",
                        spec.name,
                        share.shape()
                    ),
                ));
            }
            Ok(Shared::from_share(share))
        })
    }

    /// The layers of `spec`, each parameter taken from `next` in
    /// [`ModelSpec::param_shapes`] order.
    fn build(spec: &ModelSpec, mut next: impl FnMut() -> Result<Shared<R>>) -> Result<Self> {
        let mut layers: Vec<Box<dyn Module<R>>> = Vec::new();
        for l in &spec.layers {
            layers.push(match l {
                LayerSpec::Linear { .. } => Box::new(Linear::new(next()?, next()?)?),
                LayerSpec::Conv2d { params, .. } => {
                    Box::new(Conv2d::new(next()?, next()?, *params)?)
                }
                LayerSpec::ReLU => Box::new(ReLU::new()),
                LayerSpec::MaxPool2d(p) => Box::new(MaxPool2d::new(*p)),
                LayerSpec::AvgPool2d(p) => Box::new(AvgPool2d::new(*p)),
                LayerSpec::Flatten => Box::new(Flatten::new()),
                LayerSpec::BatchNorm2d { .. } => Box::new(BatchNorm2d::new(next()?, next()?)),
                LayerSpec::Dropout { p } => Box::new(Dropout::new(*p)),
            });
        }
        Ok(SecureModel {
            spec: spec.clone(),
            layers,
        })
    }

    /// The model definition.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Forward pass over a batch x [batch, input...].
    ///
    /// Errors: [`Error::ShapeMismatch`] when x does not fit the model;
    /// preprocessing and transport errors.
    pub async fn forward(
        &mut self,
        sess: &Session,
        x: &Shared<R>,
        train: bool,
    ) -> Result<Shared<R>> {
        self.check_input(x)?;
        let mut h = x.clone();
        for layer in self.layers.iter_mut() {
            let name = layer.name();
            h = in_span(sess.stream_id(), name, layer.forward(sess, &h, train)).await?;
        }
        Ok(h)
    }

    /// A copy of the model for another micro-batch of the same training
    /// step ([`Module::replicate`]): the same parameter shares and
    /// prepared weights, no caches, no gradients. Local.
    pub fn replicate(&self) -> Self {
        SecureModel {
            spec: self.spec.clone(),
            layers: self.layers.iter().map(|l| l.replicate()).collect(),
        }
    }

    /// Prepares every layer's weights for many inferences
    /// ([`Module::prepare_inference`]: each weight masked and opened once,
    /// so each later [`SecureModel::infer`] opens only the activations'
    /// masks). Undone by the next [`SecureModel::params_mut`] (a training
    /// step changes the weights).
    ///
    /// Rounds: 1 per weighted layer. Bytes per party: (N - 1) k / 8 times
    /// the weights' elements. Errors: preprocessing and transport errors.
    pub async fn prepare_inference(&mut self, sess: &Session) -> Result<()> {
        for layer in &mut self.layers {
            layer.prepare_inference(sess).await?;
        }
        Ok(())
    }

    /// Inference over a batch x [batch, input...] without caches
    /// ([`Module::infer`]): `&self`, so several micro-batches may run
    /// through one model at once on forks of the session. A ReLU next to
    /// a max-pool runs fused ([`maxpool2d_max`]: the same values, the
    /// ReLU's rounds saved), and max-pools skip the argmax one-hot, so
    /// inference takes fewer rounds and bytes than `forward(.., false)`.
    ///
    /// Errors: as [`SecureModel::forward`].
    pub async fn infer(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        self.check_input(x)?;
        let mut h = x.clone();
        let mut i = 0;
        while i < self.layers.len() {
            if let Some(pool) = self.relu_and_maxpool(i) {
                let fused = maxpool2d_max(sess, &h, &pool, true);
                h = in_span(sess.stream_id(), "relu+maxpool2d", fused).await?;
                i += 2;
                continue;
            }
            let layer = &self.layers[i];
            h = in_span(sess.stream_id(), layer.name(), layer.infer(sess, &h)).await?;
            i += 1;
        }
        Ok(h)
    }

    /// The pooling of layers i and i + 1 when they are a ReLU and a
    /// max-pool in either order: inference runs them as one max with a
    /// zero candidate ([`maxpool2d_max`]), the same values in fewer rounds.
    fn relu_and_maxpool(&self, i: usize) -> Option<Pool2d> {
        match (self.spec.layers.get(i), self.spec.layers.get(i + 1)) {
            (Some(LayerSpec::ReLU), Some(LayerSpec::MaxPool2d(p)))
            | (Some(LayerSpec::MaxPool2d(p)), Some(LayerSpec::ReLU)) => Some(*p),
            _ => None,
        }
    }

    fn check_input(&self, x: &Shared<R>) -> Result<()> {
        let batch = x.shape().dims().first().copied().unwrap_or(0);
        let expected = self.spec.shapes(batch)?;
        if x.shape() != &expected[0] {
            return Err(Error::shape(
                "model input",
                format!(
                    "{} expects {}, got {}",
                    self.spec.name,
                    expected[0],
                    x.shape()
                ),
            ));
        }
        Ok(())
    }

    /// Backward pass from the loss gradient with respect to the output;
    /// leaves every parameter's gradient in [`Param::grad`]. Returns the
    /// gradient with respect to the model input when `need_input_grad` (the
    /// first layer skips that product otherwise: its input is data).
    ///
    /// Errors: [`Error::Unsupported`] without a training forward pass;
    /// preprocessing and transport errors.
    pub async fn backward(
        &mut self,
        sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        let mut g = Some(grad.clone());
        let n = self.layers.len();
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            let need = i > 0 || need_input_grad;
            let cur = g.take().ok_or_else(|| {
                Error::Unsupported(format!("layer {} of {n} returned no input gradient", i + 1))
            })?;
            let name = format!("{} backward", layer.name());
            g = in_span(sess.stream_id(), name, layer.backward(sess, &cur, need)).await?;
        }
        Ok(g)
    }

    /// Every parameter, layer by layer (the order of [`ModelSpec::param_shapes`]).
    pub fn params_mut(&mut self) -> Vec<&mut Param<R>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// Reveals the parameters to party `to` (the model owner) as f32 weights:
    /// `Some` there, `None` elsewhere. One round.
    ///
    /// Errors: transport errors.
    pub async fn reveal_weights_to(
        &self,
        sess: &Session,
        to: usize,
    ) -> Result<Option<ModelWeights>> {
        let params: Vec<&Param<R>> = self.layers.iter().flat_map(|l| l.params()).collect();
        let shares: Vec<&RingTensor<R>> = params.iter().map(|p| p.value.share()).collect();
        let fp = sess.fixed_point::<R>()?;
        Ok(sess.open_to(to, &shares).await?.map(|vals| ModelWeights {
            tensors: vals
                .iter()
                .map(|t| {
                    (
                        t.shape().clone(),
                        // The revealed output: decoded on the host.
                        fp.decode_tensor(t).into_iter().map(|v| v as f32).collect(),
                    )
                })
                .collect(),
        }))
    }
}
