//! Exact ring GEMM from limb GEMMs (issue 8), independent of the device.
//!
//! Z_2^64 and Z_2^32 have no BLAS type. After CryptGPU (Tan et al.,
//! "CryptGPU: Fast Privacy-Preserving Machine Learning on the GPU", IEEE S&P
//! 2021) each operand is cut into limbs, the limb products run as
//! floating-point or integer GEMMs that are exact, and the results are
//! recombined mod 2^k; Piranha (Watson et al., USENIX Security 2022) runs
//! ring GEMMs on integer hardware directly. Two paths:
//!
//! * [`LimbPath::F64`]: 16-bit unsigned limbs in f64, cuBLAS DGEMM;
//! * [`LimbPath::Int8`]: 8-bit balanced (signed) limbs, int8 x int8 -> int32
//!   tensor-core GEMM.
//!
//! [`digits`] defines the encodings, [`plan`] which limb GEMMs run and where
//! the inner dimension is cut (with the exactness bounds), [`path`] the
//! per-shape choice between these and the direct integer kernel, and
//! [`emulate`] a CPU twin of the device execution used as the exactness
//! oracle. `docs/gemm.md` summarises the scheme.

pub mod digits;
pub mod emulate;
pub mod path;
pub mod plan;

pub use digits::LimbEncoding;
pub use path::{GemmPath, GemmRoute, GEMM_PATH_ENV};
pub use plan::{Accumulation, Diagonal, LimbPath, LimbPlan, CHUNK_ALIGN};
