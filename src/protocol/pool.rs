//! Max pooling over shares (NCHW), forward with the argmax one-hot that the
//! backward pass routes gradients through (as Falcon and Piranha do), and
//! for inference the max alone, optionally fused with a ReLU.

use super::beaver;
use super::compare::{argmax, max};
use crate::backend::Backend;
pub use crate::backend::Pool2d;
use crate::error::{Error, Result};
use crate::pipeline::RowLanes;
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::Shared;

/// This party's share of every window of x [n c ho wo, kh kw], padding
/// holding -2^(k-3) (below every value of the domain).
fn windows<R: Ring>(sess: &Session, x: &Shared<R>, p: &Pool2d) -> Result<RingTensor<R>> {
    let pad = if sess.party() == 0 {
        R::ONE.shl(R::BITS - 3).wrapping_neg()
    } else {
        R::ZERO
    };
    sess.backend().pool_windows(x.share(), p, pad)
}

/// ([maxpool2d(x)], [one-hot argmax of each window]): out [n, c, ho, wo],
/// one-hot [n, c, ho, wo, kh * kw].
///
/// Domain: |x| < 2^(k-3) as ring values (padding holds -2^(k-3)). Exact.
/// Rounds: [`super::compare::max_rounds`] over kh kw candidates (5 for a
/// 2x2 window in Z_2^64: all 6 pairs compared at once).
/// Bytes: as [`argmax`] over n c ho wo windows of kh kw values.
///
/// Errors: [`Error::ShapeMismatch`]; preprocessing and transport errors.
pub async fn maxpool2d<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    p: &Pool2d,
) -> Result<(Shared<R>, Shared<R>)> {
    let out = p.output_shape(x.shape())?;
    let kk = p.kernel.0 * p.kernel.1;
    let windows = Shared::from_share(windows(sess, x, p)?);
    // Row lanes (the inner-layer pipeline) over the windows.
    let lanes = RowLanes::new(sess, &windows)?;
    let outs = lanes
        .run(sess, &windows, |s, w, _| async move {
            let (best, onehot) = argmax(s, w, 1).await?;
            Ok(vec![best, onehot])
        })
        .await?;
    let mut outs = outs.into_iter();
    let (best, onehot) = match (outs.next(), outs.next()) {
        (Some(b), Some(o)) => (b, o),
        _ => return Err(Error::shape("maxpool2d", "argmax returned no one-hot")),
    };
    let mut onehot_dims = out.dims().to_vec();
    onehot_dims.push(kk);
    Ok((best.reshape(out)?, onehot.reshape(Shape(onehot_dims))?))
}

/// [maxpool2d(x)] without the one-hot (inference): out [n, c, ho, wo].
/// With `relu`, [maxpool2d(ReLU(x))] = [ReLU(maxpool2d(x))] in the same
/// rounds: each window's max taken with a zero candidate, max(0, x_1 ..
/// x_kk), exactly the ReLU-then-pool value (the fusion secure CNN
/// inference uses for a ReLU next to a max-pool; it saves the ReLU's MSB
/// and injection rounds).
///
/// Domain: |x| < 2^(k-3) as ring values. Exact. Rounds:
/// [`super::compare::max_rounds`] over kh kw (+ 1 with `relu`) candidates:
/// 5 for a 2x2 window in Z_2^64 either way (a separate ReLU costs 4 more).
/// Bytes per peer: as [`super::compare::max`] over n c ho wo windows of
/// kh kw (+ 1) values (with `relu`, 10 comparisons per 2x2 window instead
/// of the ReLU's 4 and the pool's 6, and one injection fewer).
///
/// Errors: [`Error::ShapeMismatch`]; preprocessing and transport errors.
pub async fn maxpool2d_max<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    p: &Pool2d,
    relu: bool,
) -> Result<Shared<R>> {
    let out = p.output_shape(x.shape())?;
    let be = sess.backend();
    let mut windows = windows(sess, x, p)?;
    if relu {
        let zero = RingTensor::zeros([out.numel(), 1]);
        windows = be.concat_axis(&[&windows, &zero], 1)?;
    }
    let windows = Shared::from_share(windows);
    // Row lanes (the inner-layer pipeline) over the windows.
    let best = RowLanes::new(sess, &windows)?
        .run(sess, &windows, |s, w, _| async move {
            Ok(vec![max(s, w, 1).await?])
        })
        .await?
        .pop()
        .ok_or_else(|| Error::shape("maxpool2d", "max returned nothing"))?;
    best.reshape(out)
}

/// Gradient of [`maxpool2d`]: routes each output gradient to the input
/// position its window's max came from (summing where windows overlap).
/// `grad` is [n, c, ho, wo], `onehot` the forward pass's, `input` x's shape.
/// One Beaver product with the 0/1 one-hot (exact, no truncation).
/// Rounds: 1. Bytes per peer: 2 * n c ho wo kh kw * k / 8.
///
/// Errors: [`Error::ShapeMismatch`]; preprocessing and transport errors.
pub async fn maxpool2d_backward<R: Ring>(
    sess: &Session,
    grad: &Shared<R>,
    onehot: &Shared<R>,
    input: &Shape,
    p: &Pool2d,
) -> Result<Shared<R>> {
    let out = p.output_shape(input)?;
    let kk = p.kernel.0 * p.kernel.1;
    if grad.shape() != &out || onehot.numel() != out.numel() * kk {
        return Err(Error::shape(
            "maxpool2d_backward",
            format!(
                "grad {} and one-hot {} do not fit output {out} with {kk}-windows",
                grad.shape(),
                onehot.shape()
            ),
        ));
    }
    // Each output gradient repeated over its window's kh kw taps.
    let spread = sess
        .backend()
        .broadcast_axis(grad.share(), &[out.numel(), kk].into(), 1)?;
    let spread = Shared::from_share(spread.reshape(onehot.shape().clone())?);
    let routed = beaver::mul(sess, &spread, onehot).await?;
    Ok(Shared::from_share(sess.backend().pool_scatter(
        routed.share(),
        input,
        p,
    )?))
}
