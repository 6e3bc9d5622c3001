//! Convolution and its two gradients lowered to batched ring GEMMs over
//! four device primitives (im2col, col2im, batched transpose, batched
//! GEMM), so that every device backend runs one lowering and the CPU can
//! check it against the reference convolution of [`super::cpu`].
//!
//! Algorithm: im2col lowering (Chellapilla et al., "High Performance
//! Convolutional Neural Networks for Document Processing", 2006), in the
//! column layout of `src/backend/cpu/conv.rs`: images NCHW, columns
//! `[n][c*kh*kw][ho*wo]` with row `(ci*kh + ki)*kw + kj`. All sums are
//! ring sums (exact, wrapping), so the order of accumulation differs from
//! the CPU's without changing a bit of the result.

use super::{BilinearOp, Conv2dParams};
use crate::error::Result;
use crate::ring::{Ring, Shape};

/// Shape of one batched ring GEMM: `out[b] = A[b] [m,k] x B[b] [k,n]`,
/// row-major, batch entries contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchedGemm {
    /// Number of products.
    pub batch: usize,
    /// Rows of A and C.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// One A `[m][k]` for every batch entry (batch stride 0).
    pub shared_a: bool,
}

/// The geometry of one convolution x `[n,c,h,w]` by weight `[o,c,kh,kw]`
/// with output `[n,o,ho,wo]`, checked by [`Conv2dParams::output_shape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
    /// Stride and padding.
    pub params: Conv2dParams,
}

impl ConvGeometry {
    /// The forward convolution of x by weight.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] as [`Conv2dParams::output_shape`].
    pub fn forward(x: &Shape, weight: &Shape, p: &Conv2dParams) -> Result<Self> {
        let out = p.output_shape(x, weight)?;
        let (xd, wd, od) = (x.dims(), weight.dims(), out.dims());
        Ok(ConvGeometry {
            n: xd[0],
            c: xd[1],
            h: xd[2],
            w: xd[3],
            o: wd[0],
            kh: wd[2],
            kw: wd[3],
            ho: od[2],
            wo: od[3],
            params: *p,
        })
    }

    /// The forward convolution behind a weight gradient: x `[n,c,h,w]`,
    /// output gradient `[n,o,ho,wo]`, kernel (kh, kw).
    ///
    /// Errors: as [`BilinearOp::output_shape`] for `Conv2dGradWeight`.
    pub fn of_grad_weight(
        x: &Shape,
        grad: &Shape,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<Self> {
        let op = BilinearOp::Conv2dGradWeight { params: *p, kernel };
        let weight = op.output_shape(x, grad)?;
        Self::forward(x, &weight, p)
    }

    /// The forward convolution behind an input gradient: output gradient
    /// `[n,o,ho,wo]`, weight `[o,c,kh,kw]`, input (h, w).
    ///
    /// Errors: as [`BilinearOp::output_shape`] for `Conv2dGradInput`.
    pub fn of_grad_input(
        grad: &Shape,
        weight: &Shape,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<Self> {
        let op = BilinearOp::Conv2dGradInput { params: *p, input };
        let x = op.output_shape(grad, weight)?;
        Self::forward(&x, weight, p)
    }

    /// Rows of one image's columns: c * kh * kw.
    pub fn krows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per image: ho * wo.
    pub fn positions(&self) -> usize {
        self.ho * self.wo
    }

    /// Whether some operand or result has no elements (devices leave those
    /// cases to the CPU, which handles them without launching anything).
    pub fn is_degenerate(&self) -> bool {
        [
            self.n, self.c, self.h, self.w, self.o, self.kh, self.kw, self.ho, self.wo,
        ]
        .contains(&0)
    }
}

/// The primitives a device provides for the lowered convolutions. `Buf` is
/// a device buffer of ring elements; each primitive returns a fresh one.
pub(crate) trait ConvPrimitives<R: Ring> {
    /// A buffer of ring elements on the device.
    type Buf;
    /// Columns `[n, krows, positions]` of the images x `[n, c, h, w]`
    /// (zero padding).
    fn im2col(&self, x: &Self::Buf, g: &ConvGeometry) -> Result<Self::Buf>;
    /// Images `[n, c, h, w]` from columns `[n, krows, positions]`, each
    /// pixel the sum of the column entries im2col copies from it (the
    /// adjoint of [`ConvPrimitives::im2col`]).
    fn col2im(&self, cols: &Self::Buf, g: &ConvGeometry) -> Result<Self::Buf>;
    /// `[batch, m, n] -> [batch, n, m]`.
    fn transpose(&self, a: &Self::Buf, batch: usize, m: usize, n: usize) -> Result<Self::Buf>;
    /// `out[b] = A[b] x B[b]` with the shape of `gemm`.
    fn gemm(&self, a: &Self::Buf, b: &Self::Buf, gemm: BatchedGemm) -> Result<Self::Buf>;
    /// `len` ring elements equal to 1.
    fn ones(&self, len: usize) -> Result<Self::Buf>;
}

/// Convolution: out `[n, o, ho, wo]` = W `[o, krows]` x im2col(x)[img]
/// for each image, W shared across the batch.
///
/// Errors: those of the primitives.
pub(crate) fn conv2d<R: Ring, P: ConvPrimitives<R>>(
    dev: &P,
    x: &P::Buf,
    weight: &P::Buf,
    g: &ConvGeometry,
) -> Result<P::Buf> {
    let cols = dev.im2col(x, g)?;
    dev.gemm(
        weight,
        &cols,
        BatchedGemm {
            batch: g.n,
            m: g.o,
            k: g.krows(),
            n: g.positions(),
            shared_a: true,
        },
    )
}

/// Input gradient: dx `[n, c, h, w]` = col2im(W^T `[krows, o]` x
/// grad[img] `[o, positions]`).
///
/// Errors: those of the primitives.
pub(crate) fn conv2d_grad_input<R: Ring, P: ConvPrimitives<R>>(
    dev: &P,
    grad: &P::Buf,
    weight: &P::Buf,
    g: &ConvGeometry,
) -> Result<P::Buf> {
    let w_t = dev.transpose(weight, 1, g.o, g.krows())?;
    let cols = dev.gemm(
        &w_t,
        grad,
        BatchedGemm {
            batch: g.n,
            m: g.krows(),
            k: g.o,
            n: g.positions(),
            shared_a: true,
        },
    )?;
    dev.col2im(&cols, g)
}

/// Weight gradient: dW `[o, krows]` = sum over images of grad[img]
/// `[o, positions]` x im2col(x)[img]^T `[positions, krows]`. The per-image
/// products come from one batched GEMM (`[n, o, krows]`, the memory of n
/// weight gradients); their sum over the batch is one more GEMM, by a row
/// of n ones.
///
/// Errors: those of the primitives.
pub(crate) fn conv2d_grad_weight<R: Ring, P: ConvPrimitives<R>>(
    dev: &P,
    x: &P::Buf,
    grad: &P::Buf,
    g: &ConvGeometry,
) -> Result<P::Buf> {
    let cols = dev.im2col(x, g)?;
    let cols_t = dev.transpose(&cols, g.n, g.krows(), g.positions())?;
    drop(cols);
    let per_image = dev.gemm(
        grad,
        &cols_t,
        BatchedGemm {
            batch: g.n,
            m: g.o,
            k: g.positions(),
            n: g.krows(),
            shared_a: false,
        },
    )?;
    if g.n == 1 {
        return Ok(per_image);
    }
    let ones = dev.ones(g.n)?;
    dev.gemm(
        &ones,
        &per_image,
        BatchedGemm {
            batch: 1,
            m: 1,
            k: g.n,
            n: g.o * g.krows(),
            shared_a: false,
        },
    )
}

#[cfg(test)]
mod tests {
    //! The lowering on a host twin of the device primitives, bit for bit
    //! against the CPU backend's convolution and gradients (a different
    //! algorithm: per-image loops that accumulate in place).

    use super::*;
    use crate::backend::cpu::conv::{col2im_image, im2col_image};
    use crate::backend::{Backend, CpuBackend};
    use crate::prg::{Prg, Seed};
    use crate::ring::RingTensor;

    /// The primitives as plain loops over host vectors.
    struct Host;

    impl<R: Ring> ConvPrimitives<R> for Host {
        type Buf = Vec<R>;
        fn im2col(&self, x: &Vec<R>, g: &ConvGeometry) -> Result<Vec<R>> {
            let (img, cols) = (g.c * g.h * g.w, g.krows() * g.positions());
            let mut out = vec![R::ZERO; g.n * cols];
            for i in 0..g.n {
                im2col_image(
                    &x[i * img..(i + 1) * img],
                    (g.c, g.h, g.w),
                    (g.kh, g.kw),
                    &g.params,
                    (g.ho, g.wo),
                    &mut out[i * cols..(i + 1) * cols],
                );
            }
            Ok(out)
        }
        fn col2im(&self, cols: &Vec<R>, g: &ConvGeometry) -> Result<Vec<R>> {
            let (img, per) = (g.c * g.h * g.w, g.krows() * g.positions());
            let mut out = vec![R::ZERO; g.n * img];
            for i in 0..g.n {
                col2im_image(
                    &cols[i * per..(i + 1) * per],
                    (g.c, g.h, g.w),
                    (g.kh, g.kw),
                    &g.params,
                    (g.ho, g.wo),
                    &mut out[i * img..(i + 1) * img],
                );
            }
            Ok(out)
        }
        fn transpose(&self, a: &Vec<R>, batch: usize, m: usize, n: usize) -> Result<Vec<R>> {
            let mut out = vec![R::ZERO; a.len()];
            for b in 0..batch {
                for i in 0..m {
                    for j in 0..n {
                        out[b * m * n + j * m + i] = a[b * m * n + i * n + j];
                    }
                }
            }
            Ok(out)
        }
        fn gemm(&self, a: &Vec<R>, b: &Vec<R>, s: BatchedGemm) -> Result<Vec<R>> {
            let (m, k, n) = (s.m, s.k, s.n);
            assert_eq!(a.len(), if s.shared_a { m * k } else { s.batch * m * k });
            assert_eq!(b.len(), s.batch * k * n);
            let mut out = vec![R::ZERO; s.batch * m * n];
            for bt in 0..s.batch {
                let a0 = if s.shared_a { 0 } else { bt * m * k };
                for i in 0..m {
                    for j in 0..n {
                        out[(bt * m + i) * n + j] = (0..k).fold(R::ZERO, |acc, t| {
                            acc.wrapping_add(
                                a[a0 + i * k + t].wrapping_mul(b[(bt * k + t) * n + j]),
                            )
                        });
                    }
                }
            }
            Ok(out)
        }
        fn ones(&self, len: usize) -> Result<Vec<R>> {
            Ok(vec![R::ONE; len])
        }
    }

    /// Shapes around the edges: one image, stride and padding on one axis
    /// only, rectangular kernels, a kernel as large as the padded input,
    /// and LeNet's first layer.
    fn cases() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
        let p = |stride, padding| Conv2dParams { stride, padding };
        vec![
            ([2, 3, 9, 7], [4, 3, 3, 3], p((1, 1), (0, 0))),
            ([1, 2, 8, 8], [3, 2, 5, 5], p((2, 1), (2, 1))),
            ([3, 1, 6, 5], [2, 1, 2, 4], p((1, 3), (0, 2))),
            ([2, 2, 4, 4], [1, 2, 6, 6], p((1, 1), (1, 1))),
            ([4, 1, 28, 28], [6, 1, 5, 5], p((1, 1), (0, 0))),
        ]
    }

    fn check<R: Ring>() {
        let cpu = CpuBackend::default();
        let mut prg = Prg::new(&Seed([7; 16]), R::BITS as u64);
        for (xs, ws, p) in cases() {
            let (x, w): (RingTensor<R>, RingTensor<R>) = (prg.tensor(xs), prg.tensor(ws));
            let g = ConvGeometry::forward(x.shape(), w.shape(), &p).unwrap();
            let y = cpu.conv2d(&x, &w, &p).unwrap();
            assert_eq!(
                conv2d(&Host, &x.data().to_vec(), &w.data().to_vec(), &g).unwrap(),
                y.data(),
                "conv2d {xs:?} {ws:?} {p:?}"
            );
            let gy: RingTensor<R> = prg.tensor(y.shape().clone());
            let kernel = (ws[2], ws[3]);
            let gw = ConvGeometry::of_grad_weight(x.shape(), gy.shape(), &p, kernel).unwrap();
            assert_eq!(gw, g);
            assert_eq!(
                conv2d_grad_weight(&Host, &x.data().to_vec(), &gy.data().to_vec(), &gw).unwrap(),
                cpu.conv2d_grad_weight(&x, &gy, &p, kernel).unwrap().data(),
                "grad weight {xs:?} {ws:?} {p:?}"
            );
            let input = (xs[2], xs[3]);
            let gi = ConvGeometry::of_grad_input(gy.shape(), w.shape(), &p, input).unwrap();
            assert_eq!(gi, g);
            assert_eq!(
                conv2d_grad_input(&Host, &gy.data().to_vec(), &w.data().to_vec(), &gi).unwrap(),
                cpu.conv2d_grad_input(&gy, &w, &p, input).unwrap().data(),
                "grad input {xs:?} {ws:?} {p:?}"
            );
        }
    }

    #[test]
    fn the_lowering_matches_the_cpu_convolution_and_its_gradients() {
        check::<u32>();
        check::<u64>();
    }

    #[test]
    fn geometries_of_the_gradients_refuse_shapes_that_do_not_fit() {
        let p = Conv2dParams::default();
        let x = Shape(vec![2, 3, 8, 8]);
        // A gradient whose spatial size is not the forward output's.
        let bad = Shape(vec![2, 4, 5, 5]);
        assert!(ConvGeometry::of_grad_weight(&x, &bad, &p, (3, 3)).is_err());
        // A gradient over another number of images.
        let other = Shape(vec![1, 4, 6, 6]);
        assert!(ConvGeometry::of_grad_weight(&x, &other, &p, (3, 3)).is_err());
        let w = Shape(vec![4, 3, 3, 3]);
        assert!(ConvGeometry::of_grad_input(&bad, &w, &p, (8, 8)).is_err());
        let g = ConvGeometry::of_grad_input(&other, &w, &p, (8, 8)).unwrap();
        assert_eq!((g.n, g.c, g.o, g.ho, g.krows()), (1, 3, 4, 6, 27));
        assert!(!g.is_degenerate());
        assert!(ConvGeometry::forward(&Shape(vec![0, 3, 8, 8]), &w, &p)
            .unwrap()
            .is_degenerate());
        // Sizes whose product overflows a usize are not mistaken for empty.
        let big = ConvGeometry::forward(
            &Shape(vec![1 << 16, 512, 1 << 12, 1 << 12]),
            &Shape(vec![512, 512, 3, 3]),
            &p,
        )
        .unwrap();
        assert!(!big.is_degenerate());
    }
}
