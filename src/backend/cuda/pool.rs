//! Max pooling's window gather and gradient scatter as CUDA launches
//! (`kernels/pool.cu`): [`crate::backend::Backend::pool_windows`] and
//! [`crate::backend::Backend::pool_scatter`] on the device, bit for bit
//! the host loops of `src/backend/pool.rs`.
//!
//! UNVERIFIED: no GPU has run this code yet (`kernels/README.md`).

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::backend::{gpu, CudaBackend};
use super::kernels::ring_kernel;
use crate::backend::pool::check_routed;
use crate::backend::Pool2d;
use crate::error::Result;
use crate::ring::{Ring, RingTensor, Shape};

/// (n c, h, w, kh, kw, sh, sw, ph, pw, ho, wo) of pooling `p` over input
/// `x` [n, c, h, w] (already checked by `p.output_shape`).
fn geometry(p: &Pool2d, x: &Shape, out: &Shape) -> [u64; 11] {
    let (d, o) = (x.dims(), out.dims());
    let g = &p.geometry;
    [
        d[0] * d[1],
        d[2],
        d[3],
        p.kernel.0,
        p.kernel.1,
        g.stride.0,
        g.stride.1,
        g.padding.0,
        g.padding.1,
        o[2],
        o[3],
    ]
    .map(|v| v as u64)
}

impl CudaBackend {
    /// `pool_gather_uK(T* windows, const T* x, T pad, 11 x u64 geometry)`.
    pub(super) fn pool_windows_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        p: &Pool2d,
        pad: R,
    ) -> Result<RingTensor<R>> {
        let out = p.output_shape(x.shape())?;
        let shape = p.windows_shape(x.shape())?;
        if shape.numel() == 0 {
            return Ok(RingTensor::zeros(shape));
        }
        let f = self.function(&ring_kernel("pool_gather", R::BITS))?;
        let dx = self.dev(x)?;
        let s = self.pick();
        let mut windows: CudaSlice<u8> = self.alloc::<R>(s, shape.numel())?;
        let (pad64, pad32) = (pad.to_u64(), pad.to_u64() as u32);
        let mut l = s.launch_builder(&f);
        l.arg(&mut windows).arg(dx.slice());
        if R::BITS == 64 {
            l.arg(&pad64);
        } else {
            l.arg(&pad32);
        }
        let g = geometry(p, x.shape(), &out);
        for v in &g {
            l.arg(v);
        }
        // SAFETY: pool_gather_uK(T*, const T*, T, 11 x u64): `windows`
        // holds n c ho wo kh kw elements of T, x holds n c h w.
        unsafe { l.launch(Self::cfg_1d(shape.numel() as u64)) }.map_err(gpu("pool_gather"))?;
        self.wrap(windows, shape)
    }

    /// `pool_scatter_uK(T* gin, const T* routed, 11 x u64 geometry)`.
    pub(super) fn pool_scatter_gpu<R: Ring>(
        &self,
        routed: &RingTensor<R>,
        input: &Shape,
        p: &Pool2d,
    ) -> Result<RingTensor<R>> {
        check_routed(routed, input, p)?;
        let out = p.output_shape(input)?;
        if input.numel() == 0 {
            return Ok(RingTensor::zeros(input.clone()));
        }
        let f = self.function(&ring_kernel("pool_scatter", R::BITS))?;
        let dr = self.dev(routed)?;
        let s = self.pick();
        let mut gin: CudaSlice<u8> = self.alloc::<R>(s, input.numel())?;
        let mut l = s.launch_builder(&f);
        l.arg(&mut gin).arg(dr.slice());
        let g = geometry(p, input, &out);
        for v in &g {
            l.arg(v);
        }
        // SAFETY: pool_scatter_uK(T*, const T*, 11 x u64): `gin` holds n c h
        // w elements of T, `routed` n c ho wo kh kw (checked above).
        unsafe { l.launch(Self::cfg_1d(input.numel() as u64)) }.map_err(gpu("pool_scatter"))?;
        self.wrap(gin, input.clone())
    }
}
