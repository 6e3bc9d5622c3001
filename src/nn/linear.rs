//! Fully connected layer on shares.

use async_trait::async_trait;

use super::module::no_cache;
use super::{Module, Param};
use crate::backend::{Backend, BilinearOp};
use crate::error::{Error, Result};
use crate::protocol::fixed;
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;

/// y = x W + b with x [batch, in], W [in, out], b [out].
///
/// Forward: one fixed-point matmul (2 rounds). Backward: dW = x^T g and
/// dx = g W^T batched into 2 rounds; db = column sums of g (local).
pub struct Linear<R: Ring> {
    weight: Param<R>,
    bias: Param<R>,
    input: Option<Shared<R>>,
}

impl<R: Ring> Linear<R> {
    /// A layer from shared weight [in, out] and bias [out].
    ///
    /// Errors: [`Error::ShapeMismatch`].
    pub fn new(weight: Shared<R>, bias: Shared<R>) -> Result<Self> {
        let (w, b) = (weight.shape().dims(), bias.shape().dims());
        if w.len() != 2 || b != [w[1]] {
            return Err(Error::shape(
                "linear",
                format!("weight {} and bias {}", weight.shape(), bias.shape()),
            ));
        }
        Ok(Linear {
            weight: Param::new(weight),
            bias: Param::new(bias),
            input: None,
        })
    }
}

/// Adds a per-column vector to every row: x [rows, cols] + b [cols] (local).
pub(crate) fn add_rows<R: Ring>(x: &Shared<R>, b: &Shared<R>) -> Result<Shared<R>> {
    let cols = b.numel();
    let mut out = x.share().clone();
    for row in out.data_mut().chunks_mut(cols) {
        row.iter_mut()
            .zip(b.share().data())
            .for_each(|(v, c)| *v = v.wrapping_add(*c));
    }
    Ok(Shared::from_share(out))
}

/// Column sums of x [rows, cols] -> [cols] (local).
pub(crate) fn sum_rows<R: Ring>(x: &Shared<R>, cols: usize) -> Result<Shared<R>> {
    let mut out = vec![R::ZERO; cols];
    for row in x.share().data().chunks(cols) {
        out.iter_mut()
            .zip(row)
            .for_each(|(o, v)| *o = o.wrapping_add(*v));
    }
    Ok(Shared::from_share(RingTensor::new([cols], out)?))
}

#[async_trait]
impl<R: Ring> Module<R> for Linear<R> {
    fn name(&self) -> &'static str {
        "linear"
    }

    async fn forward(&mut self, sess: &Session, x: &Shared<R>, train: bool) -> Result<Shared<R>> {
        let y = fixed::matmul(sess, x, &self.weight.value).await?;
        self.input = train.then(|| x.clone());
        add_rows(&y, &self.bias.value)
    }

    async fn backward(
        &mut self,
        sess: &Session,
        grad: &Shared<R>,
        need_input_grad: bool,
    ) -> Result<Option<Shared<R>>> {
        let x = self.input.take().ok_or_else(|| no_cache("linear"))?;
        let be = sess.backend();
        let xt = Shared::from_share(be.transpose(x.share())?);
        let mut items = vec![(BilinearOp::Matmul, &xt, grad)];
        let wt;
        if need_input_grad {
            wt = Shared::from_share(be.transpose(self.weight.value.share())?);
            items.push((BilinearOp::Matmul, grad, &wt));
        }
        let mut out = fixed::product_many(sess, &items).await?.into_iter();
        self.weight.grad = Some(out.next().expect("dW"));
        self.bias.grad = Some(sum_rows(grad, self.bias.value.numel())?);
        Ok(out.next())
    }

    fn params_mut(&mut self) -> Vec<&mut Param<R>> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn params(&self) -> Vec<&Param<R>> {
        vec![&self.weight, &self.bias]
    }
}
