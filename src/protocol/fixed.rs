//! Fixed-point products: a Beaver product followed by truncation by the
//! session's f fractional bits.
//!
//! Domain: inputs whose exact product (with 2f fractional bits) stays below
//! 2^(k-2) as a ring value, i.e. |x op y| < 2^(k-2-2f) as reals (2^22 for
//! f = 20 in Z_2^64, 2^14 for f = 8 in Z_2^32). Error against f64 of the
//! decoded inputs: at most 1 ulp (2^-f) per output element. Rounds: 2 (one
//! product, one truncation). Bytes sent per party: product bytes plus
//! (N - 1) * numel(output) * k / 8.

use super::beaver::{self, StaticOperand};
use super::trunc::truncate;
use crate::backend::{BilinearOp, Conv2dParams};
use crate::error::Result;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// Fixed-point x op y with the session's fractional bits.
///
/// Errors: as [`beaver::product`] and [`truncate`].
pub async fn product<R: Ring>(
    sess: &Session,
    op: BilinearOp,
    x: &Shared<R>,
    y: &Shared<R>,
) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    truncate(sess, &beaver::product(sess, op, x, y).await?, f).await
}

/// Several independent fixed-point products in two rounds in total (one
/// batched Beaver round, one batched truncation round).
///
/// Errors: as [`product`].
pub async fn product_many<R: Ring>(
    sess: &Session,
    items: &[(BilinearOp, &Shared<R>, &Shared<R>)],
) -> Result<Vec<Shared<R>>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    let raw = beaver::product_many(sess, items).await?;
    let refs: Vec<&Shared<R>> = raw.iter().collect();
    super::trunc::truncate_many(sess, &refs, f).await
}

/// Fixed-point elementwise x * y.
///
/// Errors: as [`product`].
pub async fn mul<R: Ring>(sess: &Session, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>> {
    product(sess, BilinearOp::Mul, x, y).await
}

/// Fixed-point x @ y.
///
/// Errors: as [`product`].
pub async fn matmul<R: Ring>(sess: &Session, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>> {
    product(sess, BilinearOp::Matmul, x, y).await
}

/// Fixed-point conv2d(x, w).
///
/// Errors: as [`product`].
pub async fn conv2d<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    w: &Shared<R>,
    p: Conv2dParams,
) -> Result<Shared<R>> {
    product(sess, BilinearOp::Conv2d(p), x, w).await
}

/// Fixed-point x * x.
///
/// Errors: as [`product`].
pub async fn square<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    truncate(sess, &beaver::square(sess, x).await?, f).await
}

/// Fixed-point x op y against a static operand (weights).
///
/// Errors: as [`beaver::product_static`] and [`truncate`].
pub async fn product_static<R: Ring>(
    sess: &Session,
    op: BilinearOp,
    x: &Shared<R>,
    y: &StaticOperand<R>,
) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    truncate(sess, &beaver::product_static(sess, op, x, y).await?, f).await
}

/// Fixed-point x * s for a public real scalar s (encoded with f bits).
///
/// Errors: encoding errors, and as [`truncate`].
pub async fn mul_public_scalar<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    s: f64,
) -> Result<Shared<R>> {
    let fp = sess.fixed_point::<R>()?;
    let enc = fp.encode::<R>(s)?;
    truncate(sess, &x.mul_scalar(sess, enc)?, fp.frac_bits()).await
}
