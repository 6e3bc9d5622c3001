//! Fixed-point dense layers x @ W + b against model weights, with the
//! weight either masked and opened once per model load ([`Weight::Static`],
//! the default) or used as a fresh Beaver operand every time
//! ([`Weight::Fresh`], the straightforward composition, kept for ablations).
//!
//! Domain: |x @ W| < 2^(k-2-2f) as reals (2^22 in Z_2^64, f = 20). Error
//! against f64: 1 ulp (2^-f) per output element from the truncation, plus
//! the encoding of W and b (1/2 ulp each). Rounds: 2 (product, truncation).
//! Bytes sent per party per call: (N - 1) (numel(x) + numel(out)) k / 8 with
//! a static weight; (N - 1) (numel(x) + numel(W) + numel(out)) k / 8 fresh.

use super::beaver::{self, StaticOperand};
use super::fixed;
use super::trunc::truncate;
use crate::backend::{Backend, BilinearOp};
use crate::error::{Error, Result};
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// A shared weight matrix [in, out], prepared for products.
#[derive(Clone, Debug)]
pub enum Weight<R: Ring> {
    /// Masked and opened once ([`beaver::prepare_static`]); each product
    /// opens only x - a.
    Static(StaticOperand<R>),
    /// A plain shared value; each product opens x - a and W - b afresh.
    Fresh(Shared<R>),
}

impl<R: Ring> Weight<R> {
    /// Prepares `w`: opens its mask now (one round, (N - 1) numel(w) k / 8
    /// bytes per party) if `reuse_mask`, else keeps it as is.
    ///
    /// Errors: preprocessing and transport errors.
    pub async fn prepare(sess: &Session, w: Shared<R>, reuse_mask: bool) -> Result<Self> {
        Ok(if reuse_mask {
            Weight::Static(beaver::prepare_static(sess, &w).await?)
        } else {
            Weight::Fresh(w)
        })
    }

    /// Prepares a weight that party 0 knows (its model): masked with a
    /// mask party 0 holds alone and opened now
    /// ([`beaver::prepare_static_owned`]; one round, (N - 1) numel(w) k / 8
    /// bytes per party). Each product then sends x - a to party 0 only, and
    /// the other parties compute one local product instead of two.
    ///
    /// Errors: preprocessing and transport errors.
    pub async fn prepare_owned(sess: &Session, w: Shared<R>) -> Result<Self> {
        Ok(Weight::Static(
            beaver::prepare_static_owned(sess, &w).await?,
        ))
    }

    /// The weight's shape.
    pub fn shape(&self) -> &crate::ring::Shape {
        match self {
            Weight::Static(s) => s.shape(),
            Weight::Fresh(w) => w.shape(),
        }
    }

    /// [x @ W] without truncation (x [n, in] -> [n, out]): exact in the
    /// ring, one round.
    ///
    /// Errors: [`Error::ShapeMismatch`], preprocessing and transport errors.
    pub async fn matmul_raw(&self, sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
        match self {
            Weight::Static(s) => beaver::product_static(sess, BilinearOp::Matmul, x, s).await,
            Weight::Fresh(w) => beaver::product(sess, BilinearOp::Matmul, x, w).await,
        }
    }
}

/// Adds a shared bias b [n] to every row of x [.., n] (local, no round: a
/// broadcast and an add on the backend).
///
/// Errors: [`Error::ShapeMismatch`] if x's last axis is not b's length.
pub fn add_bias<R: Ring>(sess: &Session, x: &Shared<R>, b: &Shared<R>) -> Result<Shared<R>> {
    let n = b.numel();
    if x.shape().dims().last() != Some(&n) || b.shape().rank() != 1 {
        return Err(Error::shape(
            "add_bias",
            format!("x {} and bias {}", x.shape(), b.shape()),
        ));
    }
    let be = sess.backend();
    let rows = be.broadcast_axis(b.share(), &[x.numel() / n.max(1), n].into(), 0)?;
    Ok(Shared::from_share(
        be.add(x.share(), &rows.reshape(x.shape().clone())?)?,
    ))
}

/// Fixed-point [x @ W + b]: x [n, in], W [in, out], b [out] -> [n, out].
/// The one dense layer of Spindle: BERT's projections call it with their
/// prepared weights, the CNNs' `nn::Linear` through [`dense_shared`].
///
/// Errors: [`Error::ShapeMismatch`], preprocessing and transport errors.
pub async fn dense<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    w: &Weight<R>,
    b: &Shared<R>,
) -> Result<Shared<R>> {
    match w {
        Weight::Static(_) => {
            let f = sess.fixed_point::<R>()?.frac_bits();
            let raw = w.matmul_raw(sess, x).await?;
            add_bias(sess, &truncate(sess, &raw, f).await?, b)
        }
        Weight::Fresh(w) => dense_shared(sess, x, w, b).await,
    }
}

/// [`dense`] against a weight shared afresh at every call (a weight that
/// changes, as in training: no mask can be reused), without wrapping it in
/// a [`Weight`]: one Beaver product opening x - a and W - b, one
/// truncation, the bias added locally. Costs as [`Weight::Fresh`] in the
/// module docs.
///
/// Errors: [`Error::ShapeMismatch`], preprocessing and transport errors.
pub async fn dense_shared<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    w: &Shared<R>,
    b: &Shared<R>,
) -> Result<Shared<R>> {
    let y = fixed::matmul(sess, x, w).await?;
    add_bias(sess, &y, b)
}
