//! [`PlainModel`]: the plaintext f32 twin of [`crate::nn::SecureModel`],
//! built from the same [`ModelSpec`] and weights. It is the accuracy oracle
//! of the secure model (Piranha's one-party protocol idea).

use super::{LayerSpec, ModelSpec, ModelWeights};
use crate::backend::Conv2dParams;
use crate::error::{Error, Result};
use crate::protocol::pool::Pool2d;
use crate::ring::Shape;

/// A dense f32 tensor (shape + row-major values).
#[derive(Clone, Debug, PartialEq)]
pub struct PlainTensor {
    /// Dimensions.
    pub shape: Shape,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl PlainTensor {
    /// A tensor; [`Error::ShapeMismatch`] if the sizes disagree.
    pub fn new(shape: impl Into<Shape>, data: Vec<f32>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(Error::shape(
                "PlainTensor",
                format!("{shape} vs {} values", data.len()),
            ));
        }
        Ok(PlainTensor { shape, data })
    }
}

/// c = a [m,k] @ b [k,n] (+ c if `accumulate`), f32, with a and b given by
/// row and column strides so transposes need no copy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (ars, acs): (isize, isize),
    b: &[f32],
    (brs, bcs): (isize, isize),
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "sgemm operand sizes"
    );
    // SAFETY: the asserts above bound every index the strides can reach
    // (a: m x k, b: k x n, c: m x n row-major, transposed views swap strides).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            ars,
            acs,
            b.as_ptr(),
            brs,
            bcs,
            if accumulate { 1.0 } else { 0.0 },
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// (input index, column) pairs of im2col for one image.
fn taps(
    c: usize,
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    p: &Conv2dParams,
    (ho, wo): (usize, usize),
    mut f: impl FnMut(usize, usize),
) {
    for ci in 0..c {
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (ci * kh + ki) * kw + kj;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let iy = (oy * p.stride.0 + ki) as isize - p.padding.0 as isize;
                        let ix = (ox * p.stride.1 + kj) as isize - p.padding.1 as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            f(
                                (ci * h + iy as usize) * w + ix as usize,
                                row * ho * wo + oy * wo + ox,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Window taps of a pooling: f(out index, Some(in index) or None for padding).
fn pool_taps(p: &Pool2d, x: &Shape, mut f: impl FnMut(usize, Option<usize>)) -> Result<Shape> {
    let out = p.output_shape(x)?;
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (ho, wo) = (out.dims()[2], out.dims()[3]);
    for img in 0..n * c {
        for oy in 0..ho {
            for ox in 0..wo {
                for ki in 0..p.kernel.0 {
                    for kj in 0..p.kernel.1 {
                        let iy = (oy * p.geometry.stride.0 + ki) as isize
                            - p.geometry.padding.0 as isize;
                        let ix = (ox * p.geometry.stride.1 + kj) as isize
                            - p.geometry.padding.1 as isize;
                        let inside = iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                        f(
                            (img * ho + oy) * wo + ox,
                            inside.then(|| img * h * w + iy as usize * w + ix as usize),
                        );
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What a layer keeps from forward for backward.
enum Cache {
    Input(PlainTensor),
    Mask(Vec<bool>),
    Argmax(Vec<usize>, Shape),
    Shape(Shape),
    None,
}

/// The plaintext twin: same layers, same weights, f32 arithmetic.
pub struct PlainModel {
    spec: ModelSpec,
    weights: ModelWeights,
    grads: Vec<Vec<f32>>,
    velocity: Vec<Vec<f32>>,
    caches: Vec<Cache>,
}

impl PlainModel {
    /// The twin of `spec` with `weights`.
    ///
    /// Errors: [`Error::ShapeMismatch`] if the weights do not fit.
    pub fn new(spec: &ModelSpec, weights: ModelWeights) -> Result<Self> {
        weights.check(spec)?;
        let zeros: Vec<Vec<f32>> = weights
            .tensors
            .iter()
            .map(|(_, v)| vec![0.0; v.len()])
            .collect();
        Ok(PlainModel {
            spec: spec.clone(),
            grads: zeros.clone(),
            velocity: zeros,
            weights,
            caches: Vec::new(),
        })
    }

    /// The current weights.
    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    /// Gradients of the last backward pass, per parameter.
    pub fn grads(&self) -> &[Vec<f32>] {
        &self.grads
    }

    /// Forward pass; `train` keeps the caches for backward.
    ///
    /// Errors: [`Error::ShapeMismatch`]; [`Error::Unsupported`] for dropout in training.
    pub fn forward(&mut self, x: &PlainTensor, train: bool) -> Result<PlainTensor> {
        let batch = x.shape.dims().first().copied().unwrap_or(0);
        let shapes = self.spec.shapes(batch)?;
        if x.shape != shapes[0] {
            return Err(Error::shape(
                "model input",
                format!("expects {}, got {}", shapes[0], x.shape),
            ));
        }
        self.caches.clear();
        let mut h = x.clone();
        let mut pi = 0;
        for (li, layer) in self.spec.layers.clone().iter().enumerate() {
            let out_shape = shapes[li + 1].clone();
            let (next, cache) = match layer {
                LayerSpec::Linear { inputs, outputs } => {
                    let (w, b) = (&self.weights.tensors[pi].1, &self.weights.tensors[pi + 1].1);
                    pi += 2;
                    let mut y = vec![0.0; batch * outputs];
                    for row in y.chunks_mut(*outputs) {
                        row.copy_from_slice(b);
                    }
                    sgemm(
                        batch,
                        *inputs,
                        *outputs,
                        &h.data,
                        (*inputs as isize, 1),
                        w,
                        (*outputs as isize, 1),
                        &mut y,
                        true,
                    );
                    (PlainTensor::new(out_shape, y)?, Cache::Input(h))
                }
                LayerSpec::Conv2d {
                    kernel,
                    params,
                    out_channels,
                    in_channels,
                } => {
                    let (w, b) = (&self.weights.tensors[pi].1, &self.weights.tensors[pi + 1].1);
                    pi += 2;
                    let (hh, ww) = (h.shape.dims()[2], h.shape.dims()[3]);
                    let (ho, wo) = (out_shape.dims()[2], out_shape.dims()[3]);
                    let krows = in_channels * kernel.0 * kernel.1;
                    let mut y = vec![0.0; out_shape.numel()];
                    let mut cols = vec![0.0; krows * ho * wo];
                    for img in 0..batch {
                        cols.fill(0.0);
                        let src =
                            &h.data[img * in_channels * hh * ww..(img + 1) * in_channels * hh * ww];
                        taps(*in_channels, (hh, ww), *kernel, params, (ho, wo), |i, c| {
                            cols[c] = src[i]
                        });
                        let dst = &mut y
                            [img * out_channels * ho * wo..(img + 1) * out_channels * ho * wo];
                        for (o, plane) in dst.chunks_mut(ho * wo).enumerate() {
                            plane.fill(b[o]);
                        }
                        sgemm(
                            *out_channels,
                            krows,
                            ho * wo,
                            w,
                            (krows as isize, 1),
                            &cols,
                            ((ho * wo) as isize, 1),
                            dst,
                            true,
                        );
                    }
                    (PlainTensor::new(out_shape, y)?, Cache::Input(h))
                }
                LayerSpec::ReLU => {
                    let mask: Vec<bool> = h.data.iter().map(|&v| v >= 0.0).collect();
                    let y = h.data.iter().map(|&v| v.max(0.0)).collect();
                    (PlainTensor::new(out_shape, y)?, Cache::Mask(mask))
                }
                LayerSpec::MaxPool2d(p) => {
                    let mut best = vec![f32::NEG_INFINITY; out_shape.numel()];
                    let mut arg = vec![usize::MAX; out_shape.numel()];
                    pool_taps(p, &h.shape, |o, i| {
                        if let Some(i) = i {
                            if h.data[i] > best[o] {
                                best[o] = h.data[i];
                                arg[o] = i;
                            }
                        }
                    })?;
                    (
                        PlainTensor::new(out_shape, best)?,
                        Cache::Argmax(arg, h.shape.clone()),
                    )
                }
                LayerSpec::AvgPool2d(p) => {
                    let inv = 1.0 / (p.kernel.0 * p.kernel.1) as f32;
                    let mut y = vec![0.0; out_shape.numel()];
                    pool_taps(p, &h.shape, |o, i| {
                        if let Some(i) = i {
                            y[o] += h.data[i] * inv;
                        }
                    })?;
                    (
                        PlainTensor::new(out_shape, y)?,
                        Cache::Shape(h.shape.clone()),
                    )
                }
                LayerSpec::Flatten => {
                    let s = h.shape.clone();
                    (PlainTensor::new(out_shape, h.data)?, Cache::Shape(s))
                }
                LayerSpec::BatchNorm2d { channels } => {
                    let (sc, sh) = (&self.weights.tensors[pi].1, &self.weights.tensors[pi + 1].1);
                    pi += 2;
                    let hw = h.shape.dims()[2] * h.shape.dims()[3];
                    let y = h
                        .data
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v * sc[(i / hw) % channels] + sh[(i / hw) % channels])
                        .collect();
                    (PlainTensor::new(out_shape, y)?, Cache::None)
                }
                LayerSpec::Dropout { p } => {
                    if train && *p > 0.0 {
                        return Err(Error::Unsupported(
                            "dropout in training is not implemented yet".into(),
                        ));
                    }
                    (h, Cache::None)
                }
            };
            if train {
                self.caches.push(cache);
            }
            h = next;
        }
        Ok(h)
    }

    /// Backward pass from the output gradient; fills [`PlainModel::grads`]
    /// and returns the gradient with respect to the model input.
    ///
    /// Errors: [`Error::Unsupported`] without a training forward pass or for
    /// batch norm.
    pub fn backward(&mut self, grad: &PlainTensor) -> Result<PlainTensor> {
        if self.caches.len() != self.spec.layers.len() {
            return Err(Error::Unsupported(
                "backward without a training forward pass".into(),
            ));
        }
        let mut g = grad.clone();
        let mut pi = self.weights.tensors.len();
        let layers = self.spec.layers.clone();
        for (li, layer) in layers.iter().enumerate().rev() {
            let cache = std::mem::replace(&mut self.caches[li], Cache::None);
            g = match (layer, cache) {
                (LayerSpec::Linear { inputs, outputs }, Cache::Input(x)) => {
                    pi -= 2;
                    let batch = x.shape.dims()[0];
                    let mut dw = vec![0.0; inputs * outputs];
                    sgemm(
                        *inputs,
                        batch,
                        *outputs,
                        &x.data,
                        (1, *inputs as isize),
                        &g.data,
                        (*outputs as isize, 1),
                        &mut dw,
                        false,
                    );
                    let mut db = vec![0.0; *outputs];
                    for row in g.data.chunks(*outputs) {
                        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                    }
                    let mut dx = vec![0.0; batch * inputs];
                    let w = &self.weights.tensors[pi].1;
                    sgemm(
                        batch,
                        *outputs,
                        *inputs,
                        &g.data,
                        (*outputs as isize, 1),
                        w,
                        (1, *outputs as isize),
                        &mut dx,
                        false,
                    );
                    self.grads[pi] = dw;
                    self.grads[pi + 1] = db;
                    PlainTensor::new(x.shape, dx)?
                }
                (
                    LayerSpec::Conv2d {
                        kernel,
                        params,
                        out_channels,
                        in_channels,
                    },
                    Cache::Input(x),
                ) => {
                    pi -= 2;
                    let (batch, hh, ww) = (x.shape.dims()[0], x.shape.dims()[2], x.shape.dims()[3]);
                    let (ho, wo) = (g.shape.dims()[2], g.shape.dims()[3]);
                    let krows = in_channels * kernel.0 * kernel.1;
                    let mut dw = vec![0.0; out_channels * krows];
                    let mut db = vec![0.0; *out_channels];
                    let mut dx = vec![0.0; x.data.len()];
                    let mut cols = vec![0.0; krows * ho * wo];
                    let w = self.weights.tensors[pi].1.clone();
                    for img in 0..batch {
                        let gi = &g.data
                            [img * out_channels * ho * wo..(img + 1) * out_channels * ho * wo];
                        for (o, plane) in gi.chunks(ho * wo).enumerate() {
                            db[o] += plane.iter().sum::<f32>();
                        }
                        cols.fill(0.0);
                        let src =
                            &x.data[img * in_channels * hh * ww..(img + 1) * in_channels * hh * ww];
                        taps(*in_channels, (hh, ww), *kernel, params, (ho, wo), |i, c| {
                            cols[c] = src[i]
                        });
                        // dW += g_i [o, howo] @ cols^T [howo, krows]
                        sgemm(
                            *out_channels,
                            ho * wo,
                            krows,
                            gi,
                            ((ho * wo) as isize, 1),
                            &cols,
                            (1, (ho * wo) as isize),
                            &mut dw,
                            true,
                        );
                        // dcols = W^T [krows, o] @ g_i [o, howo]
                        sgemm(
                            krows,
                            *out_channels,
                            ho * wo,
                            &w,
                            (1, krows as isize),
                            gi,
                            ((ho * wo) as isize, 1),
                            &mut cols,
                            false,
                        );
                        let dst =
                            &mut dx[img * in_channels * hh * ww..(img + 1) * in_channels * hh * ww];
                        taps(*in_channels, (hh, ww), *kernel, params, (ho, wo), |i, c| {
                            dst[i] += cols[c]
                        });
                    }
                    self.grads[pi] = dw;
                    self.grads[pi + 1] = db;
                    PlainTensor::new(x.shape, dx)?
                }
                (LayerSpec::ReLU, Cache::Mask(m)) => {
                    let d = g
                        .data
                        .iter()
                        .zip(&m)
                        .map(|(v, &k)| if k { *v } else { 0.0 })
                        .collect();
                    PlainTensor::new(g.shape, d)?
                }
                (LayerSpec::MaxPool2d(_), Cache::Argmax(arg, shape)) => {
                    let mut d = vec![0.0; shape.numel()];
                    for (o, &i) in arg.iter().enumerate() {
                        if i != usize::MAX {
                            d[i] += g.data[o];
                        }
                    }
                    PlainTensor::new(shape, d)?
                }
                (LayerSpec::AvgPool2d(p), Cache::Shape(shape)) => {
                    let inv = 1.0 / (p.kernel.0 * p.kernel.1) as f32;
                    let mut d = vec![0.0; shape.numel()];
                    pool_taps(p, &shape, |o, i| {
                        if let Some(i) = i {
                            d[i] += g.data[o] * inv;
                        }
                    })?;
                    PlainTensor::new(shape, d)?
                }
                (LayerSpec::Flatten, Cache::Shape(shape)) => PlainTensor::new(shape, g.data)?,
                (LayerSpec::Dropout { .. }, _) => g,
                (LayerSpec::BatchNorm2d { .. }, _) => {
                    return Err(Error::Unsupported("BatchNorm2d is inference-only".into()));
                }
                _ => {
                    return Err(Error::Unsupported(
                        "backward without a training forward pass".into(),
                    ))
                }
            };
        }
        self.caches.clear();
        Ok(g)
    }

    /// One SGD step with the same rule as [`crate::nn::Sgd`].
    pub fn sgd_step(&mut self, lr: f32, momentum: f32, weight_decay: f32) {
        for ((w, g), v) in self
            .weights
            .tensors
            .iter_mut()
            .zip(&self.grads)
            .zip(self.velocity.iter_mut())
        {
            for ((w, g), v) in w.1.iter_mut().zip(g).zip(v.iter_mut()) {
                let mut d = g + weight_decay * *w;
                if momentum != 0.0 {
                    *v = momentum * *v + d;
                    d = *v;
                }
                *w -= lr * d;
            }
        }
    }
}

/// Softmax of each row of logits [batch, classes].
pub fn softmax_rows(logits: &PlainTensor) -> Vec<f32> {
    let c = logits.shape.dims()[1];
    let mut out = Vec::with_capacity(logits.data.len());
    for row in logits.data.chunks(c) {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

/// The index of the largest value of `row` (the first on ties, as
/// PyTorch's argmax); 0 for an empty row.
pub fn argmax_row<T: PartialOrd>(row: &[T]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}
