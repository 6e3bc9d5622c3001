//! Max pooling over shares (NCHW), forward with the argmax one-hot that the
//! backward pass routes gradients through (as Falcon and Piranha do).

use super::beaver;
use super::compare::argmax;
use crate::backend::Conv2dParams;
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::Shared;

/// Window size and geometry of a 2-D pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Window (rows, columns), both >= 1.
    pub kernel: (usize, usize),
    /// Stride and padding; padded positions never win the max.
    pub geometry: Conv2dParams,
}

impl Pool2d {
    /// A k x k window with stride k and no padding (the usual "maxpool k").
    pub fn square(k: usize) -> Self {
        Pool2d {
            kernel: (k, k),
            geometry: Conv2dParams {
                stride: (k, k),
                padding: (0, 0),
            },
        }
    }

    /// Output shape [n, c, ho, wo] for input [n, c, h, w].
    ///
    /// Errors: [`Error::ShapeMismatch`] for a non-4-D input, a zero window or
    /// stride, or a window larger than the padded input.
    pub fn output_shape(&self, x: &Shape) -> Result<Shape> {
        let d = x.dims();
        if d.len() != 4 || self.kernel.0 == 0 || self.kernel.1 == 0 {
            return Err(Error::shape(
                "maxpool2d",
                format!("need x [n,c,h,w] and a window >= 1, got {x}"),
            ));
        }
        let w = Shape(vec![d[1], d[1], self.kernel.0, self.kernel.1]);
        self.geometry.output_shape(x, &w)
    }
}

/// Input index of window element (oy, ox, ki, kj), or None in the padding.
fn source(
    p: &Pool2d,
    (h, w): (usize, usize),
    (oy, ox): (usize, usize),
    (ki, kj): (usize, usize),
) -> Option<usize> {
    let iy = (oy * p.geometry.stride.0 + ki) as isize - p.geometry.padding.0 as isize;
    let ix = (ox * p.geometry.stride.1 + kj) as isize - p.geometry.padding.1 as isize;
    (iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w)
        .then(|| iy as usize * w + ix as usize)
}

/// ([maxpool2d(x)], [one-hot argmax of each window]): out [n, c, ho, wo],
/// one-hot [n, c, ho, wo, kh * kw].
///
/// Domain: |x| < 2^(k-3) as ring values (padding holds -2^(k-3)). Exact.
/// Rounds: [`super::compare::max_rounds`] over kh kw candidates (10 for a
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
    let (n, c, h, w) = (
        x.shape().dims()[0],
        x.shape().dims()[1],
        x.shape().dims()[2],
        x.shape().dims()[3],
    );
    let (ho, wo) = (out.dims()[2], out.dims()[3]);
    let kk = p.kernel.0 * p.kernel.1;
    let pad = if sess.party() == 0 {
        R::ONE.shl(R::BITS - 3).wrapping_neg()
    } else {
        R::ZERO
    };
    let mut windows = Vec::with_capacity(n * c * ho * wo * kk);
    for img in 0..n * c {
        let plane = &x.share().data()[img * h * w..(img + 1) * h * w];
        for oy in 0..ho {
            for ox in 0..wo {
                for ki in 0..p.kernel.0 {
                    for kj in 0..p.kernel.1 {
                        windows
                            .push(source(p, (h, w), (oy, ox), (ki, kj)).map_or(pad, |i| plane[i]));
                    }
                }
            }
        }
    }
    let windows = Shared::from_share(RingTensor::new([n * c * ho * wo, kk], windows)?);
    let (best, onehot) = argmax(sess, &windows, 1).await?;
    Ok((best.reshape(out)?, onehot.reshape([n, c, ho, wo, kk])?))
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
    let spread: Vec<R> = grad
        .share()
        .data()
        .iter()
        .flat_map(|&g| std::iter::repeat_n(g, kk))
        .collect();
    let spread = Shared::from_share(RingTensor::new(onehot.shape().clone(), spread)?);
    let routed = beaver::mul(sess, &spread, onehot).await?;
    let (n, c, h, w) = (
        input.dims()[0],
        input.dims()[1],
        input.dims()[2],
        input.dims()[3],
    );
    let (ho, wo) = (out.dims()[2], out.dims()[3]);
    let mut gin = vec![R::ZERO; n * c * h * w];
    let r = routed.share().data();
    let mut idx = 0;
    for img in 0..n * c {
        for oy in 0..ho {
            for ox in 0..wo {
                for ki in 0..p.kernel.0 {
                    for kj in 0..p.kernel.1 {
                        if let Some(i) = source(p, (h, w), (oy, ox), (ki, kj)) {
                            let t = &mut gin[img * h * w + i];
                            *t = t.wrapping_add(r[idx]);
                        }
                        idx += 1;
                    }
                }
            }
        }
    }
    Ok(Shared::from_share(RingTensor::new(input.clone(), gin)?))
}
