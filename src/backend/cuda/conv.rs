//! The convolution primitives of [`crate::backend::lowering`] as CUDA
//! launches (`kernels/conv.cu`, `kernels/gemm.cu`), so that conv2d and both
//! of its gradients run on the device through the lowering the CPU checks.
//!
//! Every primitive is enqueued on the GEMM stream (the first of the pool,
//! which carries the cuBLAS handle): a lowered convolution is a chain of
//! dependent steps, and one stream orders them with no events.
//!
//! UNVERIFIED: no GPU has run this code yet (`kernels/README.md`).

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::backend::{check_grid, gpu, CudaBackend};
use super::kernels::ring_kernel;
use crate::backend::lowering::{BatchedGemm, ConvGeometry, ConvPrimitives};
use crate::error::Result;
use crate::ring::Ring;

impl CudaBackend {
    /// `im2col_uK` or `col2im_uK` (same signature): writes `total`
    /// elements of `out` from `src` with the geometry `g`.
    fn conv_gather<R: Ring>(
        &self,
        kernel: &str,
        src: &CudaSlice<u8>,
        total: usize,
        g: &ConvGeometry,
    ) -> Result<CudaSlice<u8>> {
        let f = self.function(&ring_kernel(kernel, R::BITS))?;
        let s = self.stream();
        let mut out = self.alloc::<R>(s, total)?;
        let p = g.params;
        let geometry: [u64; 12] = [
            g.n,
            g.c,
            g.h,
            g.w,
            g.kh,
            g.kw,
            p.stride.0,
            p.stride.1,
            p.padding.0,
            p.padding.1,
            g.ho,
            g.wo,
        ]
        .map(|v| v as u64);
        let mut l = s.launch_builder(&f);
        l.arg(&mut out).arg(src);
        for v in &geometry {
            l.arg(v);
        }
        // SAFETY: im2col_uK / col2im_uK(T* out, const T* src, 12 x u64
        // geometry): out holds `total` elements (n*krows*ho*wo for im2col,
        // n*c*h*w for col2im) and src the other side of that geometry.
        unsafe { l.launch(Self::cfg_1d(total as u64)) }.map_err(gpu(kernel.to_string()))?;
        Ok(out)
    }
}

impl<R: Ring> ConvPrimitives<R> for CudaBackend {
    type Buf = CudaSlice<u8>;

    fn im2col(&self, x: &CudaSlice<u8>, g: &ConvGeometry) -> Result<CudaSlice<u8>> {
        self.conv_gather::<R>("im2col", x, g.n * g.krows() * g.positions(), g)
    }

    fn col2im(&self, cols: &CudaSlice<u8>, g: &ConvGeometry) -> Result<CudaSlice<u8>> {
        self.conv_gather::<R>("col2im", cols, g.n * g.c * g.h * g.w, g)
    }

    fn transpose(
        &self,
        a: &CudaSlice<u8>,
        batch: usize,
        m: usize,
        n: usize,
    ) -> Result<CudaSlice<u8>> {
        self.transpose_on::<R>(self.stream(), a, batch, m, n)
    }

    fn gemm(
        &self,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        shape: BatchedGemm,
    ) -> Result<CudaSlice<u8>> {
        check_grid(shape.batch, shape.m, shape.n)?;
        let mut out = self.alloc::<R>(self.stream(), shape.batch * shape.m * shape.n)?;
        self.gemm_dev::<R>(&mut out, a, b, shape)?;
        Ok(out)
    }

    fn ones(&self, len: usize) -> Result<CudaSlice<u8>> {
        let ones = vec![R::ONE; len];
        self.upload(bytemuck::cast_slice(&ones))
    }
}
