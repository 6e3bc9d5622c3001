//! The limb GEMM on the device (issue 8): a [`LimbPlan`] executed with the
//! split and recombination kernels of `kernels/gemm.cu` around cuBLAS
//! `cublasGemmStridedBatchedEx` calls, one per diagonal chunk.
//!
//! UNVERIFIED: never run on a GPU. Its arithmetic is the CPU emulator's
//! (`backend::limb::emulate`, tested bit for bit against the CPU ring
//! matmul) and its kernels pass host emulation
//! (`scripts/kernels-host-check.py`), but the cuBLAS calls, their layout
//! arguments and the launches below have not run; `tests/gpu_parity.rs`
//! checks them on a device.
//!
//! Layout (row-major ring operands, column-major cuBLAS):
//!
//! * A `[batch][m][k]` is split into `[batch][m][L][kp]` digits (kp = k
//!   rounded up to 16, zero padded), B `[batch][k][n]` into
//!   `[batch][np][L][kp]` with limb j in slot L-1-j (np = n rounded up to
//!   16, padded columns zero). Both are inner-dimension contiguous, so the
//!   stacked operands of diagonal s, `[A_0 .. A_s]` and `[B_s; ..; B_0]`,
//!   are the first (s+1) kp entries of each A row and the last (s+1) kp
//!   entries of each B column: views with leading dimension `L kp`.
//! * Chunk `t0..t1` of diagonal s is one "TN" GEMM: cuBLAS
//!   `C (np x m) = op(X)^T Y` with X = B split at offset
//!   `(L-1-s) kp + t0` (lda = L kp, transa = T), Y = A split at offset t0
//!   (ldb = L kp), C with ldc = np, i.e. C row-major `[m][np]` holding the
//!   chunk of `C_s`; batch strides `np L kp`, `m L kp` (0 when A is shared,
//!   as for convolution weights) and `m np`. TN with dimensions and leading
//!   dimensions multiples of 16 and 64-element aligned chunk offsets is the
//!   form the int8 tensor-core kernels want (cuBLAS documents
//!   4-byte-multiple leading dimensions for `CUDA_R_8I`).
//! * `limb_accum_*` adds `sign_extend(C) << (w s)` into the ring output
//!   (`first` on the first chunk overwrites, so the output needs no
//!   clearing).
//!
//! Types: int8 path `CUDA_R_8I` x `CUDA_R_8I` -> `CUDA_R_32I` with
//! `CUBLAS_COMPUTE_32I` and int32 alpha = 1, beta = 0; f64 path
//! `CUDA_R_64F` with `CUBLAS_COMPUTE_64F` (native FP64, no emulation: cuBLAS
//! only emulates FP64 when asked to).

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, PushKernelArg};

use super::backend::CudaBackend;
use super::kernels::ring_kernel;
use crate::backend::limb::{LimbEncoding, LimbPath, LimbPlan};
use crate::backend::lowering::BatchedGemm;
use crate::error::{Error, Result};
use crate::ring::Ring;

/// Padding of kp and np: a multiple of 16 elements (16 bytes of int8).
const PAD: usize = 16;

fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::Unsupported(format!(
            "limb GEMM: {what} = {v} exceeds cuBLAS's 32-bit dimensions"
        ))
    })
}

fn blas_err(op: &'static str) -> impl FnOnce(cudarc::cublas::result::CublasError) -> Error {
    move |e| Error::Gpu {
        op: op.into(),
        detail: e.to_string(),
    }
}

/// The element type of one path's split digits and accumulators.
struct PathTypes {
    digit: cudaDataType,
    acc: cudaDataType,
    compute: cublasComputeType_t,
    digit_bytes: usize,
    acc_bytes: usize,
    split: &'static str,
    accum: &'static str,
}

fn types(path: LimbPath) -> PathTypes {
    match path {
        LimbPath::Int8 => PathTypes {
            digit: cudaDataType::CUDA_R_8I,
            acc: cudaDataType::CUDA_R_32I,
            compute: cublasComputeType_t::CUBLAS_COMPUTE_32I,
            digit_bytes: 1,
            acc_bytes: 4,
            split: "limb_split_i8",
            accum: "limb_accum_i32",
        },
        LimbPath::F64 => PathTypes {
            digit: cudaDataType::CUDA_R_64F,
            acc: cudaDataType::CUDA_R_64F,
            compute: cublasComputeType_t::CUBLAS_COMPUTE_64F,
            digit_bytes: 8,
            acc_bytes: 8,
            split: "limb_split_f64",
            accum: "limb_accum_f64",
        },
    }
}

impl CudaBackend {
    /// `out[b] = a[b] b[b] mod 2^k` through the limb GEMM of `path`; `out`,
    /// `a`, `b` hold ring elements of type R (`a` one `[m][k]` matrix when
    /// `g.shared_a`). UNVERIFIED on a GPU.
    ///
    /// Errors: [`Error::Unsupported`] for dimensions beyond cuBLAS's 32-bit
    /// arguments; [`Error::Gpu`] for allocation, launch or cuBLAS failures.
    pub(super) fn limb_gemm<R: Ring>(
        &self,
        blas: &CudaBlas,
        path: LimbPath,
        out: &mut CudaSlice<u8>,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        g: BatchedGemm,
    ) -> Result<()> {
        let BatchedGemm {
            batch,
            m,
            k,
            n,
            shared_a,
        } = g;
        let (kp, np) = (k.next_multiple_of(PAD), n.next_multiple_of(PAD));
        // Padded inner terms are zero digits: they change no sum, and the
        // plan's bounds count them.
        let plan = LimbPlan::new(R::BITS, path, kp)?;
        let ty = types(path);
        let row = plan.limbs() * kp;
        let (row_i, np_i, m_i, batch_i) = (
            int(row, "limbs x padded k")?,
            int(np, "padded n")?,
            int(m, "m")?,
            int(batch, "batch")?,
        );
        let a_batches = if shared_a { 1 } else { batch };
        let stream = self.stream();
        // cuBLAS runs in the calling thread's current context; the handle may
        // have been created on another thread.
        stream.context().bind_to_thread().map_err(|e| Error::Gpu {
            op: "bind context (limb GEMM)".into(),
            detail: e.to_string(),
        })?;
        let alloc = |bytes: usize| {
            stream
                .alloc_zeros::<u8>(bytes.max(1))
                .map_err(|e| Error::Gpu {
                    op: "limb GEMM alloc".into(),
                    detail: e.to_string(),
                })
        };
        let mut sa = alloc(a_batches * m * row * ty.digit_bytes)?;
        let mut sb = alloc(batch * np * row * ty.digit_bytes)?;
        let mut acc = alloc(batch * m * np * ty.acc_bytes)?;
        // A: rows m, element (r, p) at r k + p; B by column: (c, p) at c + p n.
        self.limb_split::<R>(
            &mut sa,
            a,
            (a_batches, m, m),
            (k, kp),
            (m * k, k, 1),
            false,
            path,
        )?;
        self.limb_split::<R>(
            &mut sb,
            b,
            (batch, np, n),
            (k, kp),
            (k * n, 1, n),
            true,
            path,
        )?;
        let accum = self.function(&ring_kernel(ty.accum, R::BITS))?;
        let (alpha_i, beta_i, alpha_f, beta_f) = (1i32, 0i32, 1f64, 0f64);
        let (alpha, beta): (*const std::ffi::c_void, *const std::ffi::c_void) = match path {
            LimbPath::Int8 => (
                (&alpha_i as *const i32).cast(),
                (&beta_i as *const i32).cast(),
            ),
            LimbPath::F64 => (
                (&alpha_f as *const f64).cast(),
                (&beta_f as *const f64).cast(),
            ),
        };
        let mut first = 1u32;
        for d in plan.diagonals() {
            let b_off = (plan.limbs() - 1 - d.index()) * kp;
            for t in d.chunks() {
                let len = int(t.len(), "chunk length")?;
                {
                    let (pb, _gb) = sb.device_ptr(stream);
                    let (pa, _ga) = sa.device_ptr(stream);
                    let (pc, _gc) = acc.device_ptr_mut(stream);
                    let x = pb + ((b_off + t.start) * ty.digit_bytes) as u64;
                    let y = pa + (t.start * ty.digit_bytes) as u64;
                    // SAFETY: X spans np columns of `row` digits from the
                    // offset (b_off + t.end <= row), Y m columns likewise
                    // (t.end <= (s+1) kp <= row), C m x np accumulators per
                    // batch entry; strides as allocated above; alpha/beta
                    // point to host values of the compute type, alive here.
                    unsafe {
                        cudarc::cublas::result::gemm_strided_batched_ex(
                            *blas.handle(),
                            cublasOperation_t::CUBLAS_OP_T,
                            cublasOperation_t::CUBLAS_OP_N,
                            np_i,
                            m_i,
                            len,
                            alpha,
                            x as *const _,
                            ty.digit,
                            row_i,
                            (np * row) as i64,
                            y as *const _,
                            ty.digit,
                            row_i,
                            if shared_a { 0 } else { (m * row) as i64 },
                            beta,
                            pc as *mut _,
                            ty.acc,
                            np_i,
                            (m * np) as i64,
                            batch_i,
                            ty.compute,
                            cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
                        )
                    }
                    .map_err(blas_err("cublasGemmStridedBatchedEx (limb GEMM)"))?;
                }
                let (rows, n64, ldc, shift) = ((batch * m) as u64, n as u64, np as u64, d.shift());
                let mut l = stream.launch_builder(&accum);
                l.arg(&mut *out)
                    .arg(&acc)
                    .arg(&rows)
                    .arg(&n64)
                    .arg(&ldc)
                    .arg(&shift)
                    .arg(&first);
                // SAFETY: limb_accum_*_uK(T* out, const acc*, u64 rows, u64 n,
                // u64 ldc, u32 shift, u32 first): out holds rows x n ring
                // elements, acc rows x ldc accumulators.
                unsafe { l.launch(Self::cfg_1d(rows * n64)) }.map_err(|e| Error::Gpu {
                    op: ty.accum.into(),
                    detail: e.to_string(),
                })?;
                first = 0;
            }
        }
        Ok(())
    }

    /// Launches `limb_split_{i8,f64}_uK`: `(batch, rows, valid)` rows of
    /// which `valid` are read, `(k, kp)` inner extent and its padding,
    /// `(sb, rs, ps)` source strides in elements.
    #[allow(clippy::too_many_arguments)]
    fn limb_split<R: Ring>(
        &self,
        out: &mut CudaSlice<u8>,
        src: &CudaSlice<u8>,
        (batch, rows, valid): (usize, usize, usize),
        (k, kp): (usize, usize),
        (sb, rs, ps): (usize, usize, usize),
        rev: bool,
        path: LimbPath,
    ) -> Result<()> {
        let ty = types(path);
        let f = self.function(&ring_kernel(ty.split, R::BITS))?;
        let args: [u64; 8] = [batch, rows, valid, k, kp, sb, rs, ps].map(|v| v as u64);
        let balanced = (path.default_encoding() == LimbEncoding::Balanced) as u32;
        let rev = rev as u32;
        let total = args[0] * args[1] * args[4];
        let mut l = self.stream().launch_builder(&f);
        l.arg(out).arg(src);
        for a in &args {
            l.arg(a);
        }
        l.arg(&rev);
        if path == LimbPath::F64 {
            // The encoding of LimbPlan::new (unsigned 16-bit digits).
            l.arg(&balanced);
        }
        // SAFETY: limb_split_i8_uK(i8*, const T*, u64 x 8, u32 rev) and
        // limb_split_f64_uK(double*, const T*, u64 x 8, u32 rev, u32 balanced);
        // out holds batch x rows x L x kp digits, src the valid elements.
        unsafe { l.launch(Self::cfg_1d(total)) }.map_err(|e| Error::Gpu {
            op: ty.split.into(),
            detail: e.to_string(),
        })?;
        Ok(())
    }
}
