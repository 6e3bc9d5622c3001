//! Bilinear operations: the products a Beaver triple can serve.
//!
//! Each [`BilinearOp`] is linear in each operand, so one Beaver routine
//! ([`crate::protocol::beaver`]) and one dealer recipe cover all of them
//! (CrypTen's `beaver.py` pattern).

use serde::{Deserialize, Serialize};

use super::Backend;
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor, Shape};

/// Stride and zero padding of a 2-D convolution, (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Conv2dParams {
    /// Step between output positions, (rows, columns); both >= 1.
    pub stride: (usize, usize),
    /// Zero rows/columns added on each side, (rows, columns).
    pub padding: (usize, usize),
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: (0, 0),
        }
    }
}

impl Conv2dParams {
    /// Output shape for input [n, c, h, w] and weight [o, c, kh, kw].
    ///
    /// Errors: [`Error::ShapeMismatch`] for non-4-D operands, channel
    /// mismatch, zero stride, or a kernel larger than the padded input.
    pub fn output_shape(&self, x: &Shape, w: &Shape) -> Result<Shape> {
        let (xd, wd) = (x.dims(), w.dims());
        if xd.len() != 4 || wd.len() != 4 {
            return Err(Error::shape(
                "conv2d",
                format!("need x [n,c,h,w] and weight [o,c,kh,kw], got {x} and {w}"),
            ));
        }
        if xd[1] != wd[1] {
            return Err(Error::shape(
                "conv2d",
                format!("x has {} channels, weight expects {}", xd[1], wd[1]),
            ));
        }
        if self.stride.0 == 0 || self.stride.1 == 0 {
            return Err(Error::shape("conv2d", "stride must be >= 1"));
        }
        let (hp, wp) = (xd[2] + 2 * self.padding.0, xd[3] + 2 * self.padding.1);
        if wd[2] > hp || wd[3] > wp || wd[2] == 0 || wd[3] == 0 {
            return Err(Error::shape(
                "conv2d",
                format!(
                    "kernel {}x{} does not fit padded input {hp}x{wp}",
                    wd[2], wd[3]
                ),
            ));
        }
        let ho = (hp - wd[2]) / self.stride.0 + 1;
        let wo = (wp - wd[3]) / self.stride.1 + 1;
        Ok(Shape(vec![xd[0], wd[0], ho, wo]))
    }
}

/// A product that is linear in each operand: z = x (op) y.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BilinearOp {
    /// Elementwise product of equal shapes.
    Mul,
    /// Matrix product [m,k] x [k,n], or batched [b,m,k] x [b,k,n].
    Matmul,
    /// 2-D convolution, x [n,c,h,w] by weight [o,c,kh,kw], NCHW.
    Conv2d(Conv2dParams),
    /// Weight gradient of a convolution: x [n,c,h,w] and output gradient
    /// g [n,o,ho,wo] give dW [o,c,kh,kw] = sum over n of g_n (cols of x_n)^T.
    Conv2dGradWeight {
        /// Stride and padding of the forward convolution.
        params: Conv2dParams,
        /// Kernel (kh, kw) of the forward convolution.
        kernel: (usize, usize),
    },
    /// Input gradient of a convolution: g [n,o,ho,wo] and weight [o,c,kh,kw]
    /// give dx [n,c,h,w] = col2im(W^T g_n).
    Conv2dGradInput {
        /// Stride and padding of the forward convolution.
        params: Conv2dParams,
        /// Input (h, w) of the forward convolution.
        input: (usize, usize),
    },
}

impl BilinearOp {
    /// Scalar multiplications of x (op) y (multiply-adds of a matmul or
    /// convolution, elements of a Hadamard product): the "secure
    /// multiplications" a Beaver product of these shapes stands for.
    ///
    /// Errors: as [`BilinearOp::output_shape`].
    pub fn multiplications(&self, x: &Shape, y: &Shape) -> Result<usize> {
        let out = self.output_shape(x, y)?.numel();
        Ok(match self {
            BilinearOp::Mul => out,
            BilinearOp::Matmul => out * x.dims().last().copied().unwrap_or(0),
            // Each output sums c * kh * kw products (w is [o, c, kh, kw]).
            BilinearOp::Conv2d(_) => out * (y.numel() / y.dims()[0].max(1)),
            // Each weight-gradient element sums n * ho * wo products.
            BilinearOp::Conv2dGradWeight { .. } => out * (y.numel() / y.dims()[1].max(1)),
            // As many products as the forward convolution (g [n,o,ho,wo], w [o,c,kh,kw]).
            BilinearOp::Conv2dGradInput { .. } => x.numel() * (y.numel() / y.dims()[0].max(1)),
        })
    }

    /// Shape of x (op) y.
    ///
    /// Errors: [`Error::ShapeMismatch`] when the operands do not fit.
    pub fn output_shape(&self, x: &Shape, y: &Shape) -> Result<Shape> {
        match self {
            BilinearOp::Mul => {
                if x != y {
                    return Err(Error::shape(
                        "mul",
                        format!("operands have shapes {x} and {y}"),
                    ));
                }
                Ok(x.clone())
            }
            BilinearOp::Matmul => matmul_shape(x, y),
            BilinearOp::Conv2d(p) => p.output_shape(x, y),
            BilinearOp::Conv2dGradWeight { params, kernel } => {
                let (xd, gd) = (x.dims(), y.dims());
                if xd.len() != 4 || gd.len() != 4 || xd[0] != gd[0] {
                    return Err(Error::shape(
                        "conv2d_grad_weight",
                        format!("need x [n,c,h,w] and g [n,o,ho,wo], got {x} and {y}"),
                    ));
                }
                let w = Shape(vec![gd[1], xd[1], kernel.0, kernel.1]);
                let out = params.output_shape(x, &w)?;
                if out.dims() != gd {
                    return Err(Error::shape(
                        "conv2d_grad_weight",
                        format!("gradient {y} does not match the forward output {out}"),
                    ));
                }
                Ok(w)
            }
            BilinearOp::Conv2dGradInput { params, input } => {
                let (gd, wd) = (x.dims(), y.dims());
                if gd.len() != 4 || wd.len() != 4 || gd[1] != wd[0] {
                    return Err(Error::shape(
                        "conv2d_grad_input",
                        format!("need g [n,o,ho,wo] and weight [o,c,kh,kw], got {x} and {y}"),
                    ));
                }
                let xs = Shape(vec![gd[0], wd[1], input.0, input.1]);
                let out = params.output_shape(&xs, y)?;
                if out.dims() != gd {
                    return Err(Error::shape(
                        "conv2d_grad_input",
                        format!("gradient {x} does not match the forward output {out}"),
                    ));
                }
                Ok(xs)
            }
        }
    }

    /// Computes x (op) y on a backend.
    pub fn apply<R: Ring, B: Backend>(
        &self,
        be: &B,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        match self {
            BilinearOp::Mul => be.mul(x, y),
            BilinearOp::Matmul => be.matmul(x, y),
            BilinearOp::Conv2d(p) => be.conv2d(x, y, p),
            BilinearOp::Conv2dGradWeight { params, kernel } => {
                self.output_shape(x.shape(), y.shape())?;
                be.conv2d_grad_weight(x, y, params, *kernel)
            }
            BilinearOp::Conv2dGradInput { params, input } => {
                self.output_shape(x.shape(), y.shape())?;
                be.conv2d_grad_input(x, y, params, *input)
            }
        }
    }

    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            BilinearOp::Mul => "mul",
            BilinearOp::Matmul => "matmul",
            BilinearOp::Conv2d(_) => "conv2d",
            BilinearOp::Conv2dGradWeight { .. } => "conv2d_grad_weight",
            BilinearOp::Conv2dGradInput { .. } => "conv2d_grad_input",
        }
    }
}

/// Output shape of a (batched) matrix product; see [`Backend::matmul`].
pub(crate) fn matmul_shape(a: &Shape, b: &Shape) -> Result<Shape> {
    match (a.dims(), b.dims()) {
        ([m, k], [k2, n]) if k == k2 => Ok(Shape(vec![*m, *n])),
        ([ba, m, k], [bb, k2, n]) if k == k2 && ba == bb => Ok(Shape(vec![*ba, *m, *n])),
        _ => Err(Error::shape(
            "matmul",
            format!("need [m,k]x[k,n] or [b,m,k]x[b,k,n], got {a} x {b}"),
        )),
    }
}
