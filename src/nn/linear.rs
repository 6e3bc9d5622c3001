//! Fully connected layer on shares.

use async_trait::async_trait;

use super::module::no_cache;
use super::{Module, Param};
use crate::backend::{Backend, BilinearOp};
use crate::error::{Error, Result};
use crate::pipeline::RowLanes;
use crate::protocol::fixed;
use crate::protocol::linear::{dense, dense_shared, Weight};
use crate::ring::Ring;
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
    /// The weight masked and opened once ([`Module::prepare_inference`]).
    prepared: Option<Weight<R>>,
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
            prepared: None,
        })
    }
}

/// Column sums of x [rows, cols] -> [cols] (local: a bias gradient).
///
/// Errors: [`crate::Error::ShapeMismatch`] unless `cols` divides x's size.
pub(crate) fn sum_rows<R: Ring>(sess: &Session, x: &Shared<R>, cols: usize) -> Result<Shared<R>> {
    let rows = x.numel() / cols.max(1);
    let x = x.share().clone().reshape([rows, cols])?;
    let s = sess.backend().sum_axis(&x, 0)?;
    Ok(Shared::from_share(s.reshape([cols])?))
}

#[async_trait]
impl<R: Ring> Module<R> for Linear<R> {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn replicate(&self) -> Box<dyn Module<R>> {
        Box::new(Linear {
            weight: self.weight.value_only(),
            bias: self.bias.value_only(),
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
            return dense_shared(sess, x, &self.weight.value, &self.bias.value).await;
        };
        // Row blocks (inter-linear): block i's truncation on the wire while
        // block i + 1 multiplies; with the weight opened once, the blocks
        // send the bytes of one product.
        let lanes = RowLanes::new(sess, x)?;
        let b = &self.bias.value;
        let y = lanes
            .run(sess, x, |s, rows, _| async move {
                Ok(vec![dense(s, rows, w, b).await?])
            })
            .await?;
        y.into_iter()
            .next()
            .ok_or_else(|| Error::shape("linear", "no output"))
    }

    async fn prepare_inference(&mut self, sess: &Session) -> Result<()> {
        self.prepared = Some(Weight::prepare(sess, self.weight.value.clone(), true).await?);
        Ok(())
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
        self.bias.grad = Some(sum_rows(sess, grad, self.bias.value.numel())?);
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
