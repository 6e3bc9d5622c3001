//! The CUDA backend (issue 7): device detection, the NVRTC module cache and
//! a [`CudaBackend`] that runs [`super::Backend`] ops as kernels.
//!
//! cudarc loads libcuda and libnvrtc at run time (`dynamic-loading`), so the
//! crate builds and starts on machines without CUDA. cudarc panics when a
//! library is missing, so [`driver_available`] and
//! [`nvrtc::nvrtc_available`] are checked before any other call.
//!
//! Ring GEMM (matmul, batched matmul, convolution) runs either the direct
//! integer kernel or an exact limb GEMM through cuBLAS (issue 8, the plan in
//! [`crate::backend::limb`]), chosen per shape or by `SPINDLE_GEMM_PATH`
//! ([`crate::backend::limb::GemmPath`]); without libcublas it is always the
//! direct kernel (logged once).
//!
//! Shares stay on the device between ops: results are device-only
//! [`crate::ring::RingTensor`]s over a CUDA buffer (`buffer.rs`), copied
//! to the host through pinned staging buffers only when host code reads
//! them ([`crate::ring::DeviceBuffer`]).
//!
//! Status: the kernel sources compile with NVRTC for compute_80 and
//! compute_90 (CI) and their arithmetic matches the CPU backend under host
//! emulation (`scripts/kernels-host-check.py`); everything that runs on a
//! GPU (launches, copies, [`CudaBackend`] itself) is unverified until
//! `tests/gpu_parity.rs` has run on a device (`kernels/README.md`).

mod adder;
pub mod backend;
mod buffer;
mod carry;
mod conv;
pub mod kernels;
mod layout;
mod limb_gemm;
pub mod nvrtc;
mod pool;

pub use backend::CudaBackend;
pub use kernels::{KernelModule, MODULES};
pub use nvrtc::{compile_ptx, nvrtc_available, PtxCache};

use crate::error::{Error, Result};

/// Whether the CUDA driver library (libcuda) can be loaded. Must be checked
/// before any other driver call: cudarc panics when it is absent.
pub fn driver_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether cuBLAS (libcublas) can be loaded; the limb GEMM paths need it
/// (`backend::limb`). Must be checked before any cuBLAS call: cudarc panics
/// when the library is absent.
pub fn blas_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

/// Whether cuBLASLt (libcublasLt) can be loaded. Not called by the engine
/// yet (the limb GEMMs use cuBLAS's `cublasGemmStridedBatchedEx`); reported
/// when a backend opens, for later algorithm selection.
pub fn blaslt_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { cudarc::cublaslt::sys::is_culib_present() }
}

/// Number of CUDA devices; 0 where there is no driver library.
///
/// Errors: [`Error::Gpu`] when the driver is present but fails to
/// initialise or count (e.g. a driver/kernel-module mismatch).
pub fn device_count() -> Result<usize> {
    if !driver_available() {
        return Ok(0);
    }
    cudarc::driver::CudaContext::device_count()
        .map(|n| n.max(0) as usize)
        .map_err(|e| Error::Gpu {
            op: "cuDeviceGetCount".into(),
            detail: e.to_string(),
        })
}
