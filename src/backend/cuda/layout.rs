//! The layout ops as CUDA launches (`kernels/layout.cu`): sums, broadcasts,
//! slices, concatenations and permutations of axes on the device, bit for
//! bit the host loops of `src/backend/layout.rs` (checks shared with them).
//!
//! UNVERIFIED: no GPU has run this code yet (`kernels/README.md`).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, PushKernelArg};

use super::backend::{gpu, CudaBackend};
use super::kernels::ring_kernel;
use crate::backend::layout::{
    check_broadcast, check_slice, concat_shape, permute_shape, strides, with_axis, AxisSplit,
    MAX_PERMUTE_RANK,
};
use crate::error::Result;
use crate::ring::{Ring, RingTensor, Shape};

impl CudaBackend {
    /// `axis_sum_uK(T* out, const T* x, u64 outer, u64 len, u64 inner)`.
    pub(super) fn sum_axis_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        axis: usize,
    ) -> Result<RingTensor<R>> {
        let s = AxisSplit::of(x.shape(), axis, "sum along an axis")?;
        let shape = with_axis(x.shape(), axis, 1);
        if shape.numel() == 0 {
            return Ok(RingTensor::zeros(shape));
        }
        let f = self.function(&ring_kernel("axis_sum", R::BITS))?;
        let dx = self.dev(x)?;
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<R>(st, shape.numel())?;
        let (o, l, i) = (s.outer as u64, s.len as u64, s.inner as u64);
        let mut b = st.launch_builder(&f);
        b.arg(&mut out).arg(dx.slice()).arg(&o).arg(&l).arg(&i);
        // SAFETY: axis_sum_uK(T*, const T*, u64 outer, len, inner): out holds
        // outer * inner elements, x outer * len * inner.
        unsafe { b.launch(Self::cfg_1d(o * i)) }.map_err(gpu("axis_sum"))?;
        self.wrap(out, shape)
    }

    /// `axis_broadcast_uK(T* out, const T* x, u64 outer, u64 len, u64 inner)`.
    pub(super) fn broadcast_axis_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        shape: &Shape,
        axis: usize,
    ) -> Result<RingTensor<R>> {
        let s = check_broadcast(x, shape, axis)?;
        if shape.numel() == 0 {
            return Ok(RingTensor::zeros(shape.clone()));
        }
        let f = self.function(&ring_kernel("axis_broadcast", R::BITS))?;
        let dx = self.dev(x)?;
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<R>(st, shape.numel())?;
        let (o, l, i) = (s.outer as u64, s.len as u64, s.inner as u64);
        let mut b = st.launch_builder(&f);
        b.arg(&mut out).arg(dx.slice()).arg(&o).arg(&l).arg(&i);
        // SAFETY: axis_broadcast_uK(T*, const T*, u64 outer, len, inner):
        // out holds outer * len * inner elements, x outer * inner.
        unsafe { b.launch(Self::cfg_1d(o * l * i)) }.map_err(gpu("axis_broadcast"))?;
        self.wrap(out, shape.clone())
    }

    /// Copies elements [src_start, src_start + count) of `src`'s axis
    /// (`src_len` long) to [dst_start, ..) of `dst`'s (`dst_len` long), both
    /// seen as [outer, len, inner]: `axis_copy_uK`.
    #[allow(clippy::too_many_arguments)]
    fn axis_copy<R: Ring>(
        &self,
        st: &Arc<CudaStream>,
        dst: &mut CudaSlice<u8>,
        src: &RingTensor<R>,
        outer: usize,
        inner: usize,
        (src_len, src_start): (usize, usize),
        (dst_len, dst_start): (usize, usize),
        count: usize,
    ) -> Result<()> {
        let n = (outer * count * inner) as u64;
        if n == 0 {
            return Ok(());
        }
        let f = self.function(&ring_kernel("axis_copy", R::BITS))?;
        let ds = self.dev(src)?;
        let args = [outer, src_len, dst_len, inner, src_start, dst_start, count].map(|v| v as u64);
        let mut b = st.launch_builder(&f);
        b.arg(dst).arg(ds.slice());
        for v in &args {
            b.arg(v);
        }
        // SAFETY: axis_copy_uK(T* dst, const T* src, 7 x u64): dst holds
        // outer * dst_len * inner elements, src outer * src_len * inner, and
        // both ranges lie inside their axes (checked by the callers).
        unsafe { b.launch(Self::cfg_1d(n)) }.map_err(gpu("axis_copy"))?;
        Ok(())
    }

    /// A slice along an axis through one `axis_copy_uK`.
    pub(super) fn slice_axis_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<RingTensor<R>> {
        let s = check_slice(x, axis, start, len)?;
        let shape = with_axis(x.shape(), axis, len);
        // One stream for the allocation and the copy (ordered).
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<R>(st, shape.numel())?;
        self.axis_copy(
            st,
            &mut out,
            x,
            s.outer,
            s.inner,
            (s.len, start),
            (len, 0),
            len,
        )?;
        self.wrap(out, shape)
    }

    /// A concatenation through one `axis_copy_uK` per part.
    pub(super) fn concat_axis_gpu<R: Ring>(
        &self,
        parts: &[&RingTensor<R>],
        axis: usize,
    ) -> Result<RingTensor<R>> {
        let shape = concat_shape(parts, axis)?;
        let s = AxisSplit::of(&shape, axis, "concatenation")?;
        // One stream for the allocation and every copy (ordered).
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<R>(st, shape.numel())?;
        let mut at = 0;
        for p in parts {
            let len = p.dims()[axis];
            self.axis_copy(
                st,
                &mut out,
                p,
                s.outer,
                s.inner,
                (len, 0),
                (s.len, at),
                len,
            )?;
            at += len;
        }
        self.wrap(out, shape)
    }

    /// `permute_uK(T* out, const T* x, u64 n, 6 x u64 dims, 6 x u64
    /// strides)`, the output's axes padded to rank 6 in front.
    pub(super) fn permute_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        perm: &[usize],
    ) -> Result<RingTensor<R>> {
        let shape = permute_shape(x.shape(), perm)?;
        if shape.numel() == 0 {
            return Ok(RingTensor::zeros(shape));
        }
        let in_strides = strides(x.dims());
        let pad = MAX_PERMUTE_RANK - perm.len();
        let mut dims = [1u64; MAX_PERMUTE_RANK];
        let mut steps = [0u64; MAX_PERMUTE_RANK];
        for (a, &p) in perm.iter().enumerate() {
            dims[pad + a] = shape.dims()[a] as u64;
            steps[pad + a] = in_strides[p] as u64;
        }
        let f = self.function(&ring_kernel("permute", R::BITS))?;
        let dx = self.dev(x)?;
        let st = self.pick();
        let n = shape.numel() as u64;
        let mut out: CudaSlice<u8> = self.alloc::<R>(st, shape.numel())?;
        let mut b = st.launch_builder(&f);
        b.arg(&mut out).arg(dx.slice()).arg(&n);
        for v in dims.iter().chain(&steps) {
            b.arg(v);
        }
        // SAFETY: permute_uK(T*, const T*, u64 n, 12 x u64): out and x hold n
        // elements; every index the strides form is below n.
        unsafe { b.launch(Self::cfg_1d(n)) }.map_err(gpu("permute"))?;
        self.wrap(out, shape)
    }

    /// `cast_u32_uK(u32* out, const T* a, T add, u32 shift, u64 n)`: the
    /// down-cast of [`crate::backend::Backend::cast_u32`].
    pub(super) fn cast_u32_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        add: R,
        shift: u32,
    ) -> Result<RingTensor<u32>> {
        crate::backend::check_cast::<R>(shift)?;
        let n = x.numel();
        if n == 0 {
            return Ok(RingTensor::zeros(x.shape().clone()));
        }
        let f = self.function(&ring_kernel("cast_u32", R::BITS))?;
        let dx = self.dev(x)?;
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<u32>(st, n)?;
        let (add64, add32, n64) = (add.to_u64(), add.to_u64() as u32, n as u64);
        let mut b = st.launch_builder(&f);
        b.arg(&mut out).arg(dx.slice());
        if R::BITS == 64 {
            b.arg(&add64);
        } else {
            b.arg(&add32);
        }
        b.arg(&shift).arg(&n64);
        // SAFETY: cast_u32_uK(u32*, const T*, T add, u32 shift, u64 n): out
        // holds n u32, x n elements of T; shift < k (checked).
        unsafe { b.launch(Self::cfg_1d(n64)) }.map_err(gpu("cast_u32"))?;
        self.wrap(out, x.shape().clone())
    }
}
