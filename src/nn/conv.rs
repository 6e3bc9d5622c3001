//! 2-D convolution layer on shares.

use async_trait::async_trait;

use super::module::no_cache;
use super::{Module, Param};
use crate::backend::{Backend, BilinearOp, Conv2dParams};
use crate::error::{Error, Result};
use crate::pipeline::RowLanes;
use crate::protocol::beaver::{self, StaticOperand};
use crate::protocol::fixed;
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::Shared;

/// NCHW convolution with bias: W [out, in, kh, kw], b [out].
///
/// Forward: one fixed-point convolution (2 rounds). Backward: the weight
/// and input gradients (both bilinear, [`BilinearOp::Conv2dGradWeight`] and
/// [`BilinearOp::Conv2dGradInput`]) batched into 2 rounds; db local.
pub struct Conv2d<R: Ring> {
    weight: Param<R>,
    bias: Param<R>,
    params: Conv2dParams,
    input: Option<Shared<R>>,
    /// The weight masked and opened once ([`Module::prepare_inference`]).
    prepared: Option<StaticOperand<R>>,
}

impl<R: Ring> Conv2d<R> {
    /// A layer from shared weight [out, in, kh, kw] and bias [out].
    ///
    /// Errors: [`Error::ShapeMismatch`].
    pub fn new(weight: Shared<R>, bias: Shared<R>, params: Conv2dParams) -> Result<Self> {
        let (w, b) = (weight.shape().dims(), bias.shape().dims());
        if w.len() != 4 || b != [w[0]] {
            return Err(Error::shape(
                "conv2d",
                format!("weight {} and bias {}", weight.shape(), bias.shape()),
            ));
        }
        Ok(Conv2d {
            weight: Param::new(weight),
            bias: Param::new(bias),
            params,
            input: None,
            prepared: None,
        })
    }
}

/// (n, c, h w) of an NCHW shape.
///
/// Errors: [`crate::Error::ShapeMismatch`] for a rank other than 4.
fn nchw(shape: &crate::ring::Shape, op: &'static str) -> Result<(usize, usize, usize)> {
    match shape.dims() {
        [n, c, h, w] => Ok((*n, *c, h * w)),
        _ => Err(crate::Error::shape(
            op,
            format!("NCHW expected, got {shape}"),
        )),
    }
}

/// x [n, c, h, w] + b[c] on every position (local: two broadcasts and an
/// add on the backend).
///
/// Errors: [`crate::Error::ShapeMismatch`] for a bias of another length.
pub(crate) fn add_channels<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    b: &Shared<R>,
) -> Result<Shared<R>> {
    let all = broadcast_channels(sess, b, x.shape())?;
    Ok(Shared::from_share(sess.backend().add(x.share(), &all)?))
}

/// b[c] repeated over every position of an NCHW `shape` (local: two
/// broadcasts on the backend).
///
/// Errors: [`crate::Error::ShapeMismatch`] for a rank other than 4 or a
/// `b` of another length than c.
pub(crate) fn broadcast_channels<R: Ring>(
    sess: &Session,
    b: &Shared<R>,
    shape: &Shape,
) -> Result<RingTensor<R>> {
    let (n, c, hw) = nchw(shape, "channel broadcast")?;
    let be = sess.backend();
    let per_channel = be.broadcast_axis(b.share(), &[c, hw].into(), 1)?;
    let all = be.broadcast_axis(&per_channel, &[n, c * hw].into(), 0)?;
    Ok(all.reshape(shape.clone())?)
}

/// Sums of g [n, c, h, w] per channel -> [c] (local: two axis sums).
///
/// Errors: [`crate::Error::ShapeMismatch`] for a rank other than 4.
pub(crate) fn sum_channels<R: Ring>(sess: &Session, g: &Shared<R>) -> Result<Shared<R>> {
    let (n, c, hw) = nchw(g.shape(), "channel sums")?;
    let be = sess.backend();
    let planes = be.sum_axis(&g.share().clone().reshape([n, c, hw])?, 2)?;
    let s = be.sum_axis(&planes, 0)?;
    Ok(Shared::from_share(s.reshape([c])?))
}

#[async_trait]
impl<R: Ring> Module<R> for Conv2d<R> {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(Conv2d {
            weight: self.weight.value_only(),
            bias: self.bias.value_only(),
            params: self.params,
            input: None,
            prepared: self.prepared.clone(),
        })
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        let y = self.infer(sess, x).await?;
        self.input = train.then(|| x.clone());
        Ok(y)
    }

    async fn infer(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        let Some(w) = &self.prepared else {
            let y = fixed::conv2d(sess, x, &self.weight.value, self.params).await?;
            return add_channels(sess, &y, &self.bias.value);
        };
        // Blocks of images (inter-linear): block i's truncation on the wire
        // while block i + 1 convolves; the weight is opened once.
        let (lanes, op, b) = (
            RowLanes::new(sess, x)?,
            BilinearOp::Conv2d(self.params),
            &self.bias.value,
        );
        let y = lanes
            .run(sess, x, |s, images, _| async move {
                let y = fixed::product_static(s, op, images, w).await?;
                Ok(vec![add_channels(s, &y, b)?])
            })
            .await?;
        y.into_iter()
            .next()
            .ok_or_else(|| Error::shape("conv2d", "no output"))
    }

    async fn prepare_inference(&mut self, sess: &Session) -> Result<()> {
        self.prepared = Some(beaver::prepare_static(sess, &self.weight.value).await?);
        Ok(())
    }

    async fn backward(
        &mut self,
        sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        let x = self.input.take().ok_or_else(|| no_cache("conv2d"))?;
        let w = self.weight.value.shape().dims();
        let xd = x.shape().dims();
        let mut items = vec![(
            BilinearOp::Conv2dGradWeight {
                params: self.params,
                kernel: (w[2], w[3]),
            },
            &x,
            grad,
        )];
        if need_input_grad {
            items.push((
                BilinearOp::Conv2dGradInput {
                    params: self.params,
                    input: (xd[2], xd[3]),
                },
                grad,
                &self.weight.value,
            ));
        }
        let mut out = fixed::product_many(sess, &items).await?.into_iter();
        self.weight.grad = Some(out.next().expect("dW"));
        self.bias.grad = Some(sum_channels(sess, grad)?);
        Ok(out.next())
    }

    fn params_mut(&mut self) -> Vec<&mut Param<R>> {
        // The weight may change: its opened mask would be stale.
        self.prepared = None;
        vec![&mut self.weight, &mut self.bias]
    }

    fn params(&self) -> Vec<&Param<R>> {
        vec![&self.weight, &self.bias]
    }
}
