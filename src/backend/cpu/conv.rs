//! 2-D convolution on the CPU, lowered to ring GEMM through im2col
//! (Chellapilla et al., "High Performance Convolutional Neural Networks for
//! Document Processing", 2006).

use super::gemm::{gemm, Parallelism};
use crate::backend::Conv2dParams;
use crate::error::Result;
use crate::ring::{Ring, RingTensor};

/// Unfolds one image [c, h, w] into columns [c*kh*kw, ho*wo] (zero padding).
fn im2col<R: Ring>(
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
        im2col(
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
    RingTensor::new(out_shape, out)
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

    #[test]
    fn bad_shapes_are_errors() {
        let x = RingTensor::<u64>::zeros([1, 2, 4, 4]);
        let w = RingTensor::<u64>::zeros([1, 3, 3, 3]);
        assert!(conv2d(&x, &w, &Conv2dParams::default(), Parallelism::Single).is_err());
        let w = RingTensor::<u64>::zeros([1, 2, 7, 3]);
        assert!(conv2d(&x, &w, &Conv2dParams::default(), Parallelism::Single).is_err());
    }
}
