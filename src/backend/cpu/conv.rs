//! 2-D convolution on the CPU, lowered to ring GEMM through im2col
//! (Chellapilla et al., "High Performance Convolutional Neural Networks for
//! Document Processing", 2006).

use super::gemm::{gemm, Parallelism};
use crate::backend::Conv2dParams;
use crate::error::Result;
use crate::ring::{Ring, RingTensor};

/// Unfolds one image [c, h, w] into columns [c*kh*kw, ho*wo] (zero padding).
pub(crate) fn im2col_image<R: Ring>(
    img: &[R],
    (c, h, w): (usize, usize, usize),
    (kh, kw): (usize, usize),
    p: &Conv2dParams,
    (ho, wo): (usize, usize),
    cols: &mut [R],
) {
    let (sh, sw) = p.stride;
    let (ph, pw) = p.padding;
    for ci in 0..c {
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (ci * kh + ki) * kw + kj;
                let dst = &mut cols[row * ho * wo..(row + 1) * ho * wo];
                for oy in 0..ho {
                    let iy = (oy * sh + ki) as isize - ph as isize;
                    for ox in 0..wo {
                        let ix = (ox * sw + kj) as isize - pw as isize;
                        dst[oy * wo + ox] =
                            if iy >= 0 && (iy as usize) < h && ix >= 0 && (ix as usize) < w {
                                img[(ci * h + iy as usize) * w + ix as usize]
                            } else {
                                R::ZERO
                            };
                    }
                }
            }
        }
    }
}

/// Convolution x [n,c,h,w] by weight [o,c,kh,kw] -> [n,o,ho,wo] over Z_2^k.
///
/// Errors: [`crate::Error::ShapeMismatch`] as in [`Conv2dParams::output_shape`].
pub fn conv2d<R: Ring>(
    x: &RingTensor<R>,
    w: &RingTensor<R>,
    p: &Conv2dParams,
    par: Parallelism,
) -> Result<RingTensor<R>> {
    let out_shape = p.output_shape(x.shape(), w.shape())?;
    let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (o, kh, kw) = (w.dims()[0], w.dims()[2], w.dims()[3]);
    let (ho, wo) = (out_shape.dims()[2], out_shape.dims()[3]);
    let krows = c * kh * kw;
    let mut cols = vec![R::ZERO; krows * ho * wo];
    let mut out = vec![R::ZERO; n * o * ho * wo];
    for img in 0..n {
        im2col_image(
            &x.data()[img * c * h * wd..(img + 1) * c * h * wd],
            (c, h, wd),
            (kh, kw),
            p,
            (ho, wo),
            &mut cols,
        );
        gemm(
            o,
            krows,
            ho * wo,
            w.data(),
            &cols,
            &mut out[img * o * ho * wo..(img + 1) * o * ho * wo],
            par,
        );
    }
    Ok(RingTensor::new(out_shape, out)?)
}

/// Adds columns [c*kh*kw, ho*wo] back into one image [c, h, w] (the adjoint
/// of [`im2col_image`]; overlapping windows sum).
pub(crate) fn col2im_image<R: Ring>(
    cols: &[R],
    (c, h, w): (usize, usize, usize),
    (kh, kw): (usize, usize),
    p: &Conv2dParams,
    (ho, wo): (usize, usize),
    img: &mut [R],
) {
    let (sh, sw) = p.stride;
    let (ph, pw) = p.padding;
    for ci in 0..c {
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (ci * kh + ki) * kw + kj;
                let src = &cols[row * ho * wo..(row + 1) * ho * wo];
                for oy in 0..ho {
                    let iy = (oy * sh + ki) as isize - ph as isize;
                    if iy < 0 || iy as usize >= h {
                        continue;
                    }
                    for ox in 0..wo {
                        let ix = (ox * sw + kj) as isize - pw as isize;
                        if ix >= 0 && (ix as usize) < w {
                            let t = &mut img[(ci * h + iy as usize) * w + ix as usize];
                            *t = t.wrapping_add(src[oy * wo + ox]);
                        }
                    }
                }
            }
        }
    }
}

fn transpose_2d<R: Ring>(src: &[R], m: usize, n: usize) -> Vec<R> {
    let mut out = vec![R::ZERO; m * n];
    for i in 0..m {
        for j in 0..n {
            out[j * m + i] = src[i * n + j];
        }
    }
    out
}

/// Weight gradient: x [n,c,h,w], g [n,o,ho,wo] -> dW [o,c,kh,kw] =
/// sum over images of g_n [o, ho*wo] @ im2col(x_n)^T [ho*wo, c*kh*kw].
///
/// Errors: [`crate::Error::ShapeMismatch`].
pub fn conv2d_grad_weight<R: Ring>(
    x: &RingTensor<R>,
    g: &RingTensor<R>,
    p: &Conv2dParams,
    (kh, kw): (usize, usize),
    par: Parallelism,
) -> Result<RingTensor<R>> {
    let op = crate::backend::BilinearOp::Conv2dGradWeight {
        params: *p,
        kernel: (kh, kw),
    };
    let out_shape = op.output_shape(x.shape(), g.shape())?;
    let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (o, ho, wo) = (g.dims()[1], g.dims()[2], g.dims()[3]);
    let krows = c * kh * kw;
    let mut cols = vec![R::ZERO; krows * ho * wo];
    let mut acc = vec![R::ZERO; o * krows];
    let mut part = vec![R::ZERO; o * krows];
    for img in 0..n {
        im2col_image(
            &x.data()[img * c * h * wd..(img + 1) * c * h * wd],
            (c, h, wd),
            (kh, kw),
            p,
            (ho, wo),
            &mut cols,
        );
        let cols_t = transpose_2d(&cols, krows, ho * wo);
        gemm(
            o,
            ho * wo,
            krows,
            &g.data()[img * o * ho * wo..(img + 1) * o * ho * wo],
            &cols_t,
            &mut part,
            par,
        );
        acc.iter_mut()
            .zip(&part)
            .for_each(|(a, b)| *a = a.wrapping_add(*b));
    }
    Ok(RingTensor::new(out_shape, acc)?)
}

/// Input gradient: g [n,o,ho,wo], w [o,c,kh,kw] -> dx [n,c,h,w] =
/// col2im(W^T [c*kh*kw, o] @ g_n [o, ho*wo]) per image.
///
/// Errors: [`crate::Error::ShapeMismatch`].
pub fn conv2d_grad_input<R: Ring>(
    g: &RingTensor<R>,
    w: &RingTensor<R>,
    p: &Conv2dParams,
    (h, wd): (usize, usize),
    par: Parallelism,
) -> Result<RingTensor<R>> {
    let op = crate::backend::BilinearOp::Conv2dGradInput {
        params: *p,
        input: (h, wd),
    };
    let out_shape = op.output_shape(g.shape(), w.shape())?;
    let (n, o, ho, wo) = (g.dims()[0], g.dims()[1], g.dims()[2], g.dims()[3]);
    let (c, kh, kw) = (w.dims()[1], w.dims()[2], w.dims()[3]);
    let krows = c * kh * kw;
    let w_t = transpose_2d(w.data(), o, krows);
    let mut cols = vec![R::ZERO; krows * ho * wo];
    let mut out = vec![R::ZERO; n * c * h * wd];
    for img in 0..n {
        gemm(
            krows,
            o,
            ho * wo,
            &w_t,
            &g.data()[img * o * ho * wo..(img + 1) * o * ho * wo],
            &mut cols,
            par,
        );
        col2im_image(
            &cols,
            (c, h, wd),
            (kh, kw),
            p,
            (ho, wo),
            &mut out[img * c * h * wd..(img + 1) * c * h * wd],
        );
    }
    Ok(RingTensor::new(out_shape, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 7-loop convolution, the oracle.
    fn naive(x: &RingTensor<u64>, w: &RingTensor<u64>, p: &Conv2dParams) -> RingTensor<u64> {
        let s = p.output_shape(x.shape(), w.shape()).unwrap();
        let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let (o, kh, kw) = (w.dims()[0], w.dims()[2], w.dims()[3]);
        let (ho, wo) = (s.dims()[2], s.dims()[3]);
        let mut out = vec![0u64; s.numel()];
        for b in 0..n {
            for oc in 0..o {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0u64;
                        for ci in 0..c {
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let iy = (oy * p.stride.0 + ki) as isize - p.padding.0 as isize;
                                    let ix = (ox * p.stride.1 + kj) as isize - p.padding.1 as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                        continue;
                                    }
                                    let xv = x.data()
                                        [((b * c + ci) * h + iy as usize) * wd + ix as usize];
                                    let wv = w.data()[((oc * c + ci) * kh + ki) * kw + kj];
                                    acc = acc.wrapping_add(xv.wrapping_mul(wv));
                                }
                            }
                        }
                        out[((b * o + oc) * ho + oy) * wo + ox] = acc;
                    }
                }
            }
        }
        RingTensor::new(s, out).unwrap()
    }

    #[test]
    fn matches_direct_convolution() {
        let mut prg = crate::prg::Prg::new(&crate::prg::Seed([1; 16]), 0);
        for (xs, ws, p) in [
            ([2, 3, 9, 7], [4, 3, 3, 3], Conv2dParams::default()),
            (
                [1, 2, 8, 8],
                [3, 2, 5, 5],
                Conv2dParams {
                    stride: (2, 1),
                    padding: (2, 1),
                },
            ),
            (
                [3, 1, 28, 28],
                [5, 1, 5, 5],
                Conv2dParams {
                    stride: (1, 1),
                    padding: (0, 0),
                },
            ),
        ] {
            let x: RingTensor<u64> = prg.tensor(xs);
            let w: RingTensor<u64> = prg.tensor(ws);
            assert_eq!(
                conv2d(&x, &w, &p, Parallelism::Rayon).unwrap(),
                naive(&x, &w, &p)
            );
        }
    }

    /// <conv(x, w), g> = <w, dW(x, g)> = <x, dX(g, w)>: the gradients are the
    /// adjoints of the forward convolution (exact in the ring).
    #[test]
    fn gradients_are_adjoints_of_the_forward_convolution() {
        let mut prg = crate::prg::Prg::new(&crate::prg::Seed([4; 16]), 0);
        for (xs, ws, p) in [
            ([2, 3, 9, 7], [4, 3, 3, 3], Conv2dParams::default()),
            (
                [1, 2, 8, 8],
                [3, 2, 5, 5],
                Conv2dParams {
                    stride: (2, 1),
                    padding: (2, 1),
                },
            ),
        ] {
            let x: RingTensor<u64> = prg.tensor(xs);
            let w: RingTensor<u64> = prg.tensor(ws);
            let y = conv2d(&x, &w, &p, Parallelism::Single).unwrap();
            let g: RingTensor<u64> = prg.tensor(y.shape().clone());
            let dot = |a: &RingTensor<u64>, b: &RingTensor<u64>| {
                a.data()
                    .iter()
                    .zip(b.data())
                    .fold(0u64, |s, (p, q)| s.wrapping_add(p.wrapping_mul(*q)))
            };
            let dw = conv2d_grad_weight(&x, &g, &p, (ws[2], ws[3]), Parallelism::Rayon).unwrap();
            let dx = conv2d_grad_input(&g, &w, &p, (xs[2], xs[3]), Parallelism::Rayon).unwrap();
            assert_eq!(dw.shape(), w.shape());
            assert_eq!(dx.shape(), x.shape());
            assert_eq!(dot(&y, &g), dot(&w, &dw));
            assert_eq!(dot(&y, &g), dot(&x, &dx));
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = RingTensor::<u64>::zeros([1, 2, 4, 4]);
        let w = RingTensor::<u64>::zeros([1, 3, 3, 3]);
        assert!(conv2d(&x, &w, &Conv2dParams::default(), Parallelism::Single).is_err());
        let w = RingTensor::<u64>::zeros([1, 2, 7, 3]);
        assert!(conv2d(&x, &w, &Conv2dParams::default(), Parallelism::Single).is_err());
    }
}
