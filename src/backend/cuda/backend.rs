//! [`CudaBackend`]: the [`Backend`] ops as CUDA kernels on one device.
//!
//! UNVERIFIED: no GPU has run this code yet (see `kernels/README.md`). It is
//! only constructed behind run-time detection ([`CudaBackend::new`] checks
//! the driver, the device and NVRTC first), so machines without a GPU never
//! reach it.
//!
//! Shares stay on the device between ops: every result is a device-only
//! [`RingTensor`] ([`CudaBuffer`], `buffer.rs`), an operand that already has
//! a device copy here is used in place, and one with only a host copy (dealer
//! material, inputs) is uploaded once and keeps the copy for later ops. The
//! host copy of a result is made when protocol code on the CPU or the
//! transport reads it, through pinned staging buffers on a copy stream
//! ([`Transfers`]). Ops are enqueued without waiting, spread over a pool of
//! streams (`SPINDLE_CUDA_STREAMS`, default 4); cudarc's per-buffer read and
//! write events order each op after the ops that wrote its operands. Ring
//! GEMMs run on the stream of the cuBLAS handle (the first of the pool).
//! Every op reports a GPU failure as [`Error::Gpu`] (none falls back to
//! the CPU behind the caller's back). Convolutions and their gradients are
//! lowered to batched GEMMs by [`crate::backend::lowering`] over the
//! primitives of `conv.rs`.
//!
//! Ring GEMMs (matmul, batched matmul, conv2d after im2col) take the route
//! of [`GemmPath::route`]: the direct `gemm_uK` kernel, or a limb GEMM
//! through cuBLAS (`limb_gemm.rs`, UNVERIFIED: never run on a GPU). The
//! path comes from `SPINDLE_GEMM_PATH` when the backend opens, or
//! [`CudaBackend::with_gemm_path`]. Without libcublas every product takes
//! the direct kernel (logged once). Under `auto`, a limb GEMM that fails
//! falls back to the direct kernel with a warning; an explicitly requested
//! path reports the error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::buffer::{CudaBuffer, Transfers};
use super::kernels::{module_of, ring_kernel};
use super::nvrtc::{arch_for, nvrtc_available, PtxCache};
use crate::backend::bilinear::matmul_shape;
use crate::backend::limb::{GemmPath, GemmRoute};
use crate::backend::lowering::{self, BatchedGemm, ConvGeometry};
use crate::backend::{Backend, Conv2dParams, CpuBackend, Pool2d};
use crate::error::{Error, Result};
use crate::prg::Seed;
use crate::ring::{DeviceBuffer, Ring, RingTensor, Shape};

/// Threads per block of the 1-D kernels.
const BLOCK: u32 = 256;
/// Most blocks of a 1-D launch; the kernels loop grid-stride beyond it.
const MAX_BLOCKS: u64 = 1 << 16;
/// Compute streams per device unless `SPINDLE_CUDA_STREAMS` says otherwise.
const DEFAULT_STREAMS: usize = 4;

/// One CUDA device: context, a pool of streams, a copy stream with pinned
/// staging, and the modules loaded so far.
#[derive(Clone)]
pub struct CudaBackend {
    inner: Arc<Inner>,
    gemm_path: GemmPath,
}

struct Inner {
    ordinal: usize,
    arch: String,
    ctx: Arc<CudaContext>,
    /// Compute streams; ops take them in turn. The first also carries the
    /// ring GEMMs (the cuBLAS handle is bound to it).
    streams: Vec<Arc<CudaStream>>,
    next_stream: AtomicUsize,
    /// Host<->device copies (their own stream and pinned buffers).
    link: Arc<Transfers>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// The cuBLAS handle on the first stream, created on first use; `None` where
    /// libcublas is absent or fails to initialise.
    blas: OnceLock<Option<Mutex<CudaBlas>>>,
    cpu: CpuBackend,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("ordinal", &self.inner.ordinal)
            .field("arch", &self.inner.arch)
            .field("gemm_path", &self.gemm_path)
            .finish()
    }
}

pub(super) fn gpu(op: impl Into<String>) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    let op = op.into();
    move |e| Error::Gpu {
        op,
        detail: e.to_string(),
    }
}

impl CudaBackend {
    /// Opens CUDA device `ordinal` (its primary context and a new stream).
    ///
    /// The ring GEMM path is read from `SPINDLE_GEMM_PATH`
    /// (`auto|direct|f64|int8`, default `auto`).
    ///
    /// Errors: [`Error::Unsupported`] when libcuda is absent, the device does
    /// not exist, libnvrtc is absent (kernels could not be compiled), or
    /// `SPINDLE_GEMM_PATH` holds an unknown value; [`Error::Gpu`] when the
    /// driver fails.
    pub fn new(ordinal: usize) -> Result<Self> {
        let gemm_path = GemmPath::from_env()?;
        if !super::driver_available() {
            return Err(Error::Unsupported(format!(
                "cuda:{ordinal} requested, but the CUDA driver library (libcuda) is not installed"
            )));
        }
        let count = super::device_count()?;
        if ordinal >= count {
            return Err(Error::Unsupported(format!(
                "cuda:{ordinal} requested, but this machine has {count} CUDA device(s)"
            )));
        }
        if !nvrtc_available() {
            return Err(Error::Unsupported(format!(
                "cuda:{ordinal} exists, but libnvrtc is not on the loader path, so kernels cannot be compiled"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(gpu("cuCtx create"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(gpu("compute capability"))?;
        let n_streams = streams_from_env()?;
        let streams = (0..n_streams)
            .map(|_| ctx.new_stream().map_err(gpu("cuStreamCreate")))
            .collect::<Result<Vec<_>>>()?;
        let copy_stream = ctx.new_stream().map_err(gpu("cuStreamCreate"))?;
        let name = ctx.name().unwrap_or_else(|_| "?".into());
        tracing::info!(
            "CUDA device {ordinal}: {name}, compute capability {major}.{minor}, {n_streams} \
             streams; ring GEMM path {} (cuBLAS {}, cuBLASLt {})",
            gemm_path.name(),
            if super::blas_available() {
                "found"
            } else {
                "absent"
            },
            if super::blaslt_available() {
                "found"
            } else {
                "absent"
            },
        );
        // The documented fallback of kernels/README.md ("Not built yet"), said
        // once per backend so that a GPU run's profile is not a surprise.
        tracing::info!(
            "cuda:{ordinal}: non-linear protocol steps (fused truncation loops, bit-sliced \
             carry circuits of comparison) run on the CPU over host copies of their inputs"
        );
        Ok(CudaBackend {
            gemm_path,
            inner: Arc::new(Inner {
                ordinal,
                arch: arch_for(major, minor),
                ctx,
                streams,
                next_stream: AtomicUsize::new(0),
                link: Arc::new(Transfers::new(ordinal, copy_stream)),
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                blas: OnceLock::new(),
                cpu: CpuBackend::default(),
            }),
        })
    }

    /// The device index.
    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }

    /// The NVRTC architecture kernels are compiled for ("compute_90").
    pub fn arch(&self) -> &str {
        &self.inner.arch
    }

    /// This backend (same device, stream and caches) with ring GEMMs routed
    /// by `path` instead of `SPINDLE_GEMM_PATH`.
    pub fn with_gemm_path(&self, path: GemmPath) -> Self {
        CudaBackend {
            inner: self.inner.clone(),
            gemm_path: path,
        }
    }

    /// The requested ring GEMM path.
    pub fn gemm_path(&self) -> GemmPath {
        self.gemm_path
    }

    /// The stream of the ring GEMMs (and of the cuBLAS handle).
    pub(super) fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.streams[0]
    }

    /// Waits until every op enqueued so far (kernels and copies, on every
    /// stream) has finished: for timings, since ops return before their
    /// kernels run.
    ///
    /// Errors: [`Error::Gpu`] with the first failure the device reports.
    pub fn synchronize(&self) -> Result<()> {
        for s in &self.inner.streams {
            s.synchronize().map_err(gpu("stream synchronize"))?;
        }
        self.inner.link.synchronize()
    }

    /// The next compute stream of the pool, in turn.
    pub(super) fn pick(&self) -> &Arc<CudaStream> {
        let s = &self.inner.streams;
        &s[self.inner.next_stream.fetch_add(1, Ordering::Relaxed) % s.len()]
    }

    /// The cuBLAS handle, created on first use; `None` (logged once) where
    /// libcublas is absent or cannot be initialised.
    fn blas(&self) -> Option<&Mutex<CudaBlas>> {
        self.inner
            .blas
            .get_or_init(|| {
                if !super::blas_available() {
                    tracing::info!(
                        "libcublas not found: ring GEMMs on cuda:{} use the direct integer kernel",
                        self.inner.ordinal
                    );
                    return None;
                }
                match CudaBlas::new(self.stream().clone()) {
                    Ok(b) => Some(Mutex::new(b)),
                    Err(e) => {
                        tracing::warn!(
                            "cuBLAS failed to initialise on cuda:{} ({e}): ring GEMMs use the direct integer kernel",
                            self.inner.ordinal
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Kernel `name` of the registry, compiling and loading its module on
    /// first use (PTX through [`PtxCache::global`]).
    ///
    /// Errors: [`Error::Unsupported`] for a name not in the registry;
    /// [`Error::Gpu`] on compile or load failure.
    pub fn function(&self, name: &str) -> Result<CudaFunction> {
        if let Some(f) = lock(&self.inner.functions).get(name) {
            return Ok(f.clone());
        }
        let module = module_of(name)
            .ok_or_else(|| Error::Unsupported(format!("no kernel named {name} in kernels/")))?;
        let loaded = lock(&self.inner.modules).get(module.name).cloned();
        let loaded = match loaded {
            Some(m) => m,
            None => {
                let ptx = PtxCache::global().ptx(module, &self.inner.arch)?;
                let m = self
                    .inner
                    .ctx
                    .load_module(Ptx::from_src(ptx.to_string()))
                    .map_err(gpu(format!("load module {}", module.name)))?;
                lock(&self.inner.modules).insert(module.name, m.clone());
                m
            }
        };
        let f = loaded
            .load_function(name)
            .map_err(gpu(format!("load function {name}")))?;
        lock(&self.inner.functions).insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// `t` on this device: its device copy when it has one here, else an
    /// upload of its host copy, which `t` keeps for later ops.
    pub(super) fn dev<R: Ring>(&self, t: &RingTensor<R>) -> Result<Operand> {
        if let Some(b) = t.device_copy() {
            if let Some(cb) = b.as_any().downcast_ref::<CudaBuffer>() {
                if cb.is_on(&self.inner.link) {
                    return Ok(Operand(b.clone()));
                }
            }
        }
        let bytes: &[u8] = bytemuck::cast_slice(t.try_data()?);
        let slice = self.inner.link.to_device(bytes)?;
        let buf: Arc<dyn DeviceBuffer> =
            Arc::new(CudaBuffer::new(slice, bytes.len(), self.inner.link.clone()));
        t.attach_device_copy(buf.clone())?;
        Ok(Operand(buf))
    }

    pub(super) fn alloc<R: Ring>(
        &self,
        stream: &Arc<CudaStream>,
        numel: usize,
    ) -> Result<CudaSlice<u8>> {
        stream
            .alloc_zeros::<u8>(numel.max(1) * R::BYTES)
            .map_err(gpu("device alloc"))
    }

    /// A device-only result tensor over `buf` (no copy, no wait).
    pub(super) fn wrap<R: Ring>(&self, buf: CudaSlice<u8>, shape: Shape) -> Result<RingTensor<R>> {
        let len = shape.numel() * R::BYTES;
        let buf = CudaBuffer::new(buf, len, self.inner.link.clone());
        Ok(RingTensor::from_device(shape, Arc::new(buf))?)
    }

    pub(super) fn cfg_1d(n: u64) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(BLOCK as u64).clamp(1, MAX_BLOCKS) as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// out = op(a, b) elementwise through kernel `op_uK`.
    fn binary<R: Ring>(
        &self,
        op: &str,
        a: &RingTensor<R>,
        b: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        a.check_same_shape(b, "cuda elementwise")?;
        if a.numel() == 0 {
            return Ok(a.clone());
        }
        let f = self.function(&ring_kernel(op, R::BITS))?;
        let (da, db) = (self.dev(a)?, self.dev(b)?);
        let s = self.pick();
        let mut out = self.alloc::<R>(s, a.numel())?;
        let n = a.numel() as u64;
        let mut l = s.launch_builder(&f);
        l.arg(&mut out).arg(da.slice()).arg(db.slice()).arg(&n);
        // SAFETY: the kernel signature is (T*, const T*, const T*, u64) and
        // every buffer holds n elements of T.
        unsafe { l.launch(Self::cfg_1d(n)) }.map_err(gpu(op.to_string()))?;
        self.wrap(out, a.shape().clone())
    }

    /// out = op(a) or op(a, scalar) through kernel `op_uK`; `scalar` is
    /// pushed as a ring element (`T s`) or a shift amount (`u32 s`).
    fn unary<R: Ring>(
        &self,
        op: &str,
        a: &RingTensor<R>,
        scalar: Scalar<R>,
    ) -> Result<RingTensor<R>> {
        if a.numel() == 0 {
            return Ok(a.clone());
        }
        let f = self.function(&ring_kernel(op, R::BITS))?;
        let da = self.dev(a)?;
        let s = self.pick();
        let mut out = self.alloc::<R>(s, a.numel())?;
        let n = a.numel() as u64;
        let (s64, s32) = match scalar {
            Scalar::None => (0u64, 0u32),
            Scalar::Ring(s) => (s.to_u64(), s.to_u64() as u32),
            Scalar::Shift(s) => (s as u64, s),
        };
        let mut l = s.launch_builder(&f);
        l.arg(&mut out).arg(da.slice());
        match scalar {
            Scalar::None => {}
            Scalar::Ring(_) if R::BITS == 64 => {
                l.arg(&s64);
            }
            Scalar::Ring(_) | Scalar::Shift(_) => {
                l.arg(&s32);
            }
        }
        l.arg(&n);
        // SAFETY: signatures (T*, const T*[, T | u32], u64), n elements each.
        unsafe { l.launch(Self::cfg_1d(n)) }.map_err(gpu(op.to_string()))?;
        self.wrap(out, a.shape().clone())
    }

    /// [batch] x ([m,k] x [k,n]) ring GEMM on device buffers, routed by
    /// [`GemmPath::route`]; A is one shared `[m,k]` matrix when
    /// `g.shared_a`.
    pub(super) fn gemm_dev<R: Ring>(
        &self,
        out: &mut CudaSlice<u8>,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        g: BatchedGemm,
    ) -> Result<()> {
        let blas = self.blas();
        let route = self
            .gemm_path
            .route(blas.is_some(), (g.batch, g.m, g.k, g.n));
        if let (GemmRoute::Limb(path), Some(blas)) = (route, blas) {
            let r = self.limb_gemm::<R>(&lock(blas), path, out, a, b, g);
            match r {
                Ok(()) => return Ok(()),
                Err(e) if self.gemm_path == GemmPath::Auto => tracing::warn!(
                    "{} limb GEMM on cuda:{} failed ({e}); using the direct kernel",
                    path.name(),
                    self.inner.ordinal
                ),
                Err(e) => return Err(e),
            }
        }
        self.gemm_direct::<R>(out, a, b, g)
    }

    /// The direct tiled integer kernel `gemm_uK`.
    fn gemm_direct<R: Ring>(
        &self,
        out: &mut CudaSlice<u8>,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        g: BatchedGemm,
    ) -> Result<()> {
        let f = self.function(&ring_kernel("gemm", R::BITS))?;
        let (m64, k64, n64) = (g.m as u64, g.k as u64, g.n as u64);
        let stride_a = if g.shared_a { 0 } else { m64 * k64 };
        let stride_b = k64 * n64;
        let cfg = LaunchConfig {
            grid_dim: (
                g.n.div_ceil(16) as u32,
                g.m.div_ceil(16) as u32,
                g.batch as u32,
            ),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.stream().launch_builder(&f);
        l.arg(out)
            .arg(a)
            .arg(b)
            .arg(&m64)
            .arg(&k64)
            .arg(&n64)
            .arg(&stride_a)
            .arg(&stride_b);
        // SAFETY: gemm_uK(T*, const T*, const T*, u64 m, k, n, stride_a, stride_b)
        // with buffers sized by the caller for these strides.
        unsafe { l.launch(cfg) }.map_err(gpu("gemm"))?;
        Ok(())
    }

    fn matmul_gpu<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        let out_shape = matmul_shape(a.shape(), b.shape())?;
        let (batch, m, k, n) = match (a.dims(), b.dims()) {
            ([m, k], [_, n]) => (1, *m, *k, *n),
            ([bt, m, k], [_, _, n]) => (*bt, *m, *k, *n),
            _ => return Err(Error::shape("matmul", "rank 2 or 3 only")),
        };
        check_grid(batch, m, n)?;
        if out_shape.numel() == 0 || k == 0 {
            return self.inner.cpu.matmul(a, b);
        }
        let (da, db) = (self.dev(a)?, self.dev(b)?);
        let mut out = self.alloc::<R>(self.stream(), out_shape.numel())?;
        let g = BatchedGemm {
            batch,
            m,
            k,
            n,
            shared_a: false,
        };
        self.gemm_dev::<R>(&mut out, da.slice(), db.slice(), g)?;
        self.wrap(out, out_shape)
    }

    /// A device buffer holding `bytes`, copied through the pinned staging
    /// buffers.
    ///
    /// Errors: [`Error::Gpu`] for allocation or copy failures.
    pub(super) fn upload(&self, bytes: &[u8]) -> Result<CudaSlice<u8>> {
        self.inner.link.to_device(bytes)
    }

    fn conv2d_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
    ) -> Result<RingTensor<R>> {
        let g = ConvGeometry::forward(x.shape(), w.shape(), p)?;
        if g.is_degenerate() {
            return self.inner.cpu.conv2d(x, w, p);
        }
        let (dx, dw) = (self.dev(x)?, self.dev(w)?);
        let out = lowering::conv2d::<R, _>(self, dx.slice(), dw.slice(), &g)?;
        self.wrap(out, Shape(vec![g.n, g.o, g.ho, g.wo]))
    }

    fn conv2d_grad_weight_gpu<R: Ring>(
        &self,
        x: &RingTensor<R>,
        grad: &RingTensor<R>,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<RingTensor<R>> {
        let g = ConvGeometry::of_grad_weight(x.shape(), grad.shape(), p, kernel)?;
        if g.is_degenerate() {
            return self.inner.cpu.conv2d_grad_weight(x, grad, p, kernel);
        }
        let (dx, dg) = (self.dev(x)?, self.dev(grad)?);
        let out = lowering::conv2d_grad_weight::<R, _>(self, dx.slice(), dg.slice(), &g)?;
        self.wrap(out, Shape(vec![g.o, g.c, g.kh, g.kw]))
    }

    fn conv2d_grad_input_gpu<R: Ring>(
        &self,
        grad: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<RingTensor<R>> {
        let g = ConvGeometry::of_grad_input(grad.shape(), w.shape(), p, input)?;
        if g.is_degenerate() {
            return self.inner.cpu.conv2d_grad_input(grad, w, p, input);
        }
        let (dg, dw) = (self.dev(grad)?, self.dev(w)?);
        let out = lowering::conv2d_grad_input::<R, _>(self, dg.slice(), dw.slice(), &g)?;
        self.wrap(out, Shape(vec![g.n, g.c, g.h, g.w]))
    }

    fn transpose_gpu<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        let d = a.dims();
        if d.len() < 2 {
            return Err(Error::shape(
                "transpose",
                format!("needs rank >= 2, got {}", a.shape()),
            ));
        }
        let (m, n) = (d[d.len() - 2], d[d.len() - 1]);
        let batch = a.numel() / (m * n).max(1);
        if a.numel() == 0 {
            return self.inner.cpu.transpose(a);
        }
        let da = self.dev(a)?;
        let out = self.transpose_on::<R>(self.pick(), da.slice(), batch, m, n)?;
        let mut shape = d.to_vec();
        shape.swap(d.len() - 2, d.len() - 1);
        self.wrap(out, Shape(shape))
    }

    /// `[batch, m, n] -> [batch, n, m]` through `transpose_uK` on stream `s`.
    ///
    /// Errors: [`Error::Gpu`] for allocation or launch failures.
    pub(super) fn transpose_on<R: Ring>(
        &self,
        s: &Arc<CudaStream>,
        a: &CudaSlice<u8>,
        batch: usize,
        m: usize,
        n: usize,
    ) -> Result<CudaSlice<u8>> {
        let f = self.function(&ring_kernel("transpose", R::BITS))?;
        let total = batch * m * n;
        let mut out = self.alloc::<R>(s, total)?;
        let (b64, m64, n64) = (batch as u64, m as u64, n as u64);
        let mut l = s.launch_builder(&f);
        l.arg(&mut out).arg(a).arg(&b64).arg(&m64).arg(&n64);
        // SAFETY: transpose_uK(T*, const T*, u64 batch, m, n), batch*m*n elements.
        unsafe { l.launch(Self::cfg_1d(total as u64)) }.map_err(gpu("transpose"))?;
        Ok(out)
    }

    fn trunc_gpu<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: &RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        c.check_same_shape(r_shifted, "trunc_combine")?;
        c.check_same_shape(r_msb, "trunc_combine")?;
        if frac_bits > R::BITS - 2 {
            return Err(Error::InvalidFixedPoint(format!(
                "truncation by {frac_bits} bits in Z_2^{} (at most k - 2)",
                R::BITS
            )));
        }
        if c.numel() == 0 {
            return Ok(c.clone());
        }
        let f = self.function(&ring_kernel("trunc_combine", R::BITS))?;
        let (dc, drs, drm) = (self.dev(c)?, self.dev(r_shifted)?, self.dev(r_msb)?);
        let s = self.pick();
        let mut out = self.alloc::<R>(s, c.numel())?;
        let (n, p0) = (c.numel() as u64, party0 as u32);
        let mut l = s.launch_builder(&f);
        l.arg(&mut out)
            .arg(dc.slice())
            .arg(drs.slice())
            .arg(drm.slice())
            .arg(&frac_bits)
            .arg(&p0)
            .arg(&n);
        // SAFETY: trunc_combine_uK(T*, const T* x3, u32 f, u32 party0, u64 n).
        unsafe { l.launch(Self::cfg_1d(n)) }.map_err(gpu("trunc_combine"))?;
        self.wrap(out, c.shape().clone())
    }

    /// [`Backend::beaver_mul_combine`] through `beaver_combine_uK`: one
    /// pass into a fresh device buffer (c may be shared with a dealer
    /// tensor's device copy, so it is not written over).
    fn beaver_gpu<R: Ring>(
        &self,
        c: &RingTensor<R>,
        e: &RingTensor<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        for t in [e, b, x, f] {
            c.check_same_shape(t, "beaver_mul_combine")?;
        }
        if c.numel() == 0 {
            return Ok(c.clone());
        }
        let k = self.function(&ring_kernel("beaver_combine", R::BITS))?;
        let (dc, de, db) = (self.dev(c)?, self.dev(e)?, self.dev(b)?);
        let (dx, df) = (self.dev(x)?, self.dev(f)?);
        let s = self.pick();
        let mut out = self.alloc::<R>(s, c.numel())?;
        let n = c.numel() as u64;
        let mut l = s.launch_builder(&k);
        l.arg(&mut out)
            .arg(dc.slice())
            .arg(de.slice())
            .arg(db.slice())
            .arg(dx.slice())
            .arg(df.slice())
            .arg(&n);
        // SAFETY: beaver_combine_uK(T* out, const T* c, e, b, x, f, u64 n);
        // every buffer holds n elements of T.
        unsafe { l.launch(Self::cfg_1d(n)) }.map_err(gpu("beaver_combine"))?;
        self.wrap(out, c.shape().clone())
    }

    fn prg_gpu<R: Ring>(&self, seed: &Seed, stream: u64, shape: &Shape) -> Result<RingTensor<R>> {
        if shape.numel() == 0 {
            return Ok(RingTensor::zeros(shape.clone()));
        }
        let f = self.function(&ring_kernel("prg_fill", R::BITS))?;
        let n = shape.numel() as u64;
        let s = self.pick();
        let mut out = self.alloc::<R>(s, shape.numel())?;
        let key_hi = u64::from_be_bytes(seed.0[..8].try_into().expect("8 bytes"));
        let key_lo = u64::from_be_bytes(seed.0[8..].try_into().expect("8 bytes"));
        let first_block = 0u64;
        let per_block = (16 / R::BYTES) as u64;
        let mut l = s.launch_builder(&f);
        l.arg(&mut out)
            .arg(&n)
            .arg(&key_hi)
            .arg(&key_lo)
            .arg(&stream)
            .arg(&first_block);
        // SAFETY: prg_fill_uK(T*, u64 n, u64 key_hi, key_lo, stream, first_block).
        unsafe { l.launch(Self::cfg_1d(n.div_ceil(per_block))) }.map_err(gpu("prg_fill"))?;
        self.wrap(out, shape.clone())
    }
}

/// A tensor's device copy on this backend's device (checked by
/// [`CudaBackend::dev`]).
pub(super) struct Operand(Arc<dyn DeviceBuffer>);

impl Operand {
    pub(super) fn slice(&self) -> &CudaSlice<u8> {
        &self
            .0
            .as_any()
            .downcast_ref::<CudaBuffer>()
            .expect("CudaBackend::dev returns CUDA buffers only")
            .slice
    }
}

/// Compute streams per device: `SPINDLE_CUDA_STREAMS` (1 to 64), else 4.
///
/// Errors: [`Error::Unsupported`] for a value that is not such a number.
fn streams_from_env() -> Result<usize> {
    match std::env::var("SPINDLE_CUDA_STREAMS") {
        Err(_) => Ok(DEFAULT_STREAMS),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "SPINDLE_CUDA_STREAMS={v:?}: expected a number of streams from 1 to 64"
                ))
            }),
    }
}

/// CUDA grid limits for the GEMM launch: y (rows / 16) and z (batch) < 65536.
pub(super) fn check_grid(batch: usize, m: usize, n: usize) -> Result<()> {
    if batch >= 65536 || m.div_ceil(16) >= 65536 || n.div_ceil(16) >= (1 << 31) {
        return Err(Error::Unsupported(format!(
            "GPU GEMM grid too large for batch {batch}, {m} rows, {n} columns"
        )));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Scalar<R> {
    None,
    Ring(R),
    Shift(u32),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        format!("cuda:{}", self.inner.ordinal)
    }
    fn add<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.binary("add", a, b)
    }
    fn sub<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.binary("sub", a, b)
    }
    fn mul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.binary("mul", a, b)
    }
    fn add_assign<R: Ring>(&self, a: &mut RingTensor<R>, b: &RingTensor<R>) -> Result<()> {
        *a = self.binary("add", a, b)?;
        Ok(())
    }
    fn neg<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.unary("neg", a, Scalar::None)
    }
    fn mul_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        self.unary("mul_scalar", a, Scalar::Ring(s))
    }
    fn add_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        self.unary("add_scalar", a, Scalar::Ring(s))
    }
    fn ashr<R: Ring>(&self, a: &RingTensor<R>, s: u32) -> Result<RingTensor<R>> {
        if s >= R::BITS {
            return Err(Error::Unsupported(format!(
                "arithmetic shift by {s} >= {} bits",
                R::BITS
            )));
        }
        self.unary("ashr", a, Scalar::Shift(s))
    }
    fn matmul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.matmul_gpu(a, b)
    }
    fn conv2d<R: Ring>(
        &self,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
    ) -> Result<RingTensor<R>> {
        self.conv2d_gpu(x, w, p)
    }
    fn conv2d_grad_weight<R: Ring>(
        &self,
        x: &RingTensor<R>,
        g: &RingTensor<R>,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<RingTensor<R>> {
        self.conv2d_grad_weight_gpu(x, g, p, kernel)
    }
    fn conv2d_grad_input<R: Ring>(
        &self,
        g: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<RingTensor<R>> {
        self.conv2d_grad_input_gpu(g, w, p, input)
    }
    fn transpose<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.transpose_gpu(a)
    }
    fn trunc_combine<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: &RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        self.trunc_gpu(c, r_shifted, r_msb, frac_bits, party0)
    }
    fn beaver_mul_combine<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &RingTensor<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        self.beaver_gpu(&c, e, b, x, f)
    }
    fn pool_windows<R: Ring>(
        &self,
        x: &RingTensor<R>,
        p: &Pool2d,
        pad: R,
    ) -> Result<RingTensor<R>> {
        self.pool_windows_gpu(x, p, pad)
    }
    fn pool_scatter<R: Ring>(
        &self,
        routed: &RingTensor<R>,
        input: &Shape,
        p: &Pool2d,
    ) -> Result<RingTensor<R>> {
        self.pool_scatter_gpu(routed, input, p)
    }
    fn sum_axis<R: Ring>(&self, x: &RingTensor<R>, axis: usize) -> Result<RingTensor<R>> {
        self.sum_axis_gpu(x, axis)
    }
    fn broadcast_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        shape: &Shape,
        axis: usize,
    ) -> Result<RingTensor<R>> {
        self.broadcast_axis_gpu(x, shape, axis)
    }
    fn slice_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<RingTensor<R>> {
        self.slice_axis_gpu(x, axis, start, len)
    }
    fn concat_axis<R: Ring>(&self, parts: &[&RingTensor<R>], axis: usize) -> Result<RingTensor<R>> {
        self.concat_axis_gpu(parts, axis)
    }
    fn permute<R: Ring>(&self, x: &RingTensor<R>, perm: &[usize]) -> Result<RingTensor<R>> {
        self.permute_gpu(x, perm)
    }
    fn cast_u32<R: Ring>(&self, x: &RingTensor<R>, add: R, shift: u32) -> Result<RingTensor<u32>> {
        self.cast_u32_gpu(x, add, shift)
    }
    fn prg_tensor<R: Ring>(
        &self,
        seed: &Seed,
        stream: u64,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        self.prg_gpu(seed, stream, shape)
    }
}
