//! 2-D convolution layer on shares.

use async_trait::async_trait;

use super::module::no_cache;
use super::{Module, Param};
use crate::backend::{BilinearOp, Conv2dParams};
use crate::error::{Error, Result};
use crate::protocol::fixed;
use crate::ring::{Ring, RingTensor};
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
        })
    }
}

/// x [n, c, h, w] + b[c] on every position (local).
pub(crate) fn add_channels<R: Ring>(x: &Shared<R>, b: &Shared<R>) -> Result<Shared<R>> {
    let d = x.shape().dims();
    let (c, hw) = (d[1], d[2] * d[3]);
    let mut out = x.share().clone();
    let b = b.share().data();
    for (i, plane) in out.data_mut().chunks_mut(hw).enumerate() {
        let bias = b[i % c];
        plane.iter_mut().for_each(|v| *v = v.wrapping_add(bias));
    }
    Ok(Shared::from_share(out))
}

/// Sums of g [n, c, h, w] per channel -> [c] (local).
pub(crate) fn sum_channels<R: Ring>(g: &Shared<R>) -> Result<Shared<R>> {
    let d = g.shape().dims();
    let (c, hw) = (d[1], d[2] * d[3]);
    let mut out = vec![R::ZERO; c];
    for (i, plane) in g.share().data().chunks(hw).enumerate() {
        out[i % c] = plane.iter().fold(out[i % c], |a, v| a.wrapping_add(*v));
    }
    Ok(Shared::from_share(RingTensor::new([c], out)?))
}

#[async_trait]
impl<R: Ring> Module<R> for Conv2d<R> {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        let y = fixed::conv2d(sess, x, &self.weight.value, self.params).await?;
        self.input = train.then(|| x.clone());
        add_channels(&y, &self.bias.value)
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
        self.bias.grad = Some(sum_channels(grad)?);
        Ok(out.next())
    }

    fn params_mut(&mut self) -> Vec<&mut Param<R>> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn params(&self) -> Vec<&Param<R>> {
        vec![&self.weight, &self.bias]
    }
}
