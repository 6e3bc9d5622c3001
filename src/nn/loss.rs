//! Loss gradients on shares.

use crate::error::{Error, Result};
use crate::protocol::{fixed, nonlinear};
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// Gradient of softmax cross-entropy (mean over the batch) with respect to
/// the logits: (softmax(logits) - onehot) / batch, for logits and one-hot
/// labels [batch, classes]. Also returns the softmax probabilities, which
/// callers may reveal to the data owner to monitor the loss.
///
/// Cost: [`nonlinear::softmax`] along axis 1, then one truncation round.
/// Errors: [`Error::ShapeMismatch`]; preprocessing and transport errors.
pub async fn softmax_cross_entropy_grad<R: Ring>(
    sess: &Session,
    logits: &Shared<R>,
    onehot: &Shared<R>,
) -> Result<(Shared<R>, Shared<R>)> {
    let rows = logits.shape().dims().first().copied().unwrap_or(0);
    softmax_cross_entropy_grad_over(sess, logits, onehot, rows).await
}

/// [`softmax_cross_entropy_grad`] for a micro-batch of a batch of `batch`
/// rows: (softmax(logits) - onehot) / batch, so that the gradients of a
/// batch's micro-batches sum to the batch's (the inter-batch pipeline in
/// training, [`crate::pipeline::InterBatch`]). Same cost.
///
/// Errors: as [`softmax_cross_entropy_grad`]; [`Error::ShapeMismatch`]
/// for a `batch` of 0.
pub async fn softmax_cross_entropy_grad_over<R: Ring>(
    sess: &Session,
    logits: &Shared<R>,
    onehot: &Shared<R>,
    batch: usize,
) -> Result<(Shared<R>, Shared<R>)> {
    if batch == 0 {
        return Err(Error::shape("softmax cross-entropy", "a batch of 0 rows"));
    }
    let d = logits.shape().dims();
    if d.len() != 2 || logits.shape() != onehot.shape() {
        return Err(Error::shape(
            "softmax cross-entropy",
            format!(
                "logits {} and labels {} must be equal [batch, classes]",
                logits.shape(),
                onehot.shape()
            ),
        ));
    }
    let probs = nonlinear::softmax(sess, logits, 1, None).await?;
    let diff = probs.sub(sess, onehot)?;
    let grad = fixed::mul_public_scalar(sess, &diff, 1.0 / batch as f64).await?;
    Ok((grad, probs))
}

/// Gradient of the mean squared error mean((pred - target)^2) with respect
/// to pred: 2 (pred - target) / numel. One truncation round.
///
/// Errors: [`Error::ShapeMismatch`]; preprocessing and transport errors.
pub async fn mse_grad<R: Ring>(
    sess: &Session,
    pred: &Shared<R>,
    target: &Shared<R>,
) -> Result<Shared<R>> {
    let diff = pred.sub(sess, target)?;
    fixed::mul_public_scalar(sess, &diff, 2.0 / pred.numel().max(1) as f64).await
}
