//! Which GEMM runs a ring matmul on the GPU: the direct integer kernel
//! (`gemm_u64`/`gemm_u32` in `kernels/gemm.cu`) or a limb path
//! ([`super::LimbPath`]), per shape, with an override.
//!
//! Override: the environment variable [`GEMM_PATH_ENV`]
//! (`SPINDLE_GEMM_PATH=auto|direct|f64|int8`, read when a CUDA backend is
//! opened) or `CudaBackend::with_gemm_path`.
//!
//! The `auto` heuristic is a placeholder until GPU measurements exist
//! (`benches/gpu_kernels.rs`): products below [`AUTO_MIN_WORK`]
//! multiply-adds take the direct kernel (the limb split, several launches
//! and recombination cost more than they save there); larger ones take int8
//! tensor cores. On an H100/H200 int8 tensor cores run about 30x the FP64
//! tensor-core rate (about 2000 dense TOPS against 67 TFLOPS, NVIDIA's data
//! sheets), which outweighs the 36 limb products of u64 against DGEMM's 10,
//! so `auto` never picks f64; it remains for GPUs and shapes where
//! measurement says otherwise.

use std::str::FromStr;

use super::plan::LimbPath;
use crate::error::{Error, Result};

/// The environment variable that overrides the GEMM path.
pub const GEMM_PATH_ENV: &str = "SPINDLE_GEMM_PATH";

/// Products with fewer multiply-adds (batch m k n) than this take the
/// direct kernel under [`GemmPath::Auto`] (128^3).
pub const AUTO_MIN_WORK: u128 = 1 << 21;

/// The requested GEMM path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GemmPath {
    /// Chosen per shape ([`GemmPath::route`]).
    #[default]
    Auto,
    /// The direct integer kernel, always.
    Direct,
    /// 16-bit limbs in f64 through DGEMM, where cuBLAS is present.
    F64,
    /// 8-bit limbs through int8 tensor-core GEMM, where cuBLAS is present.
    Int8,
}

/// What actually runs one product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmRoute {
    /// The direct integer kernel.
    Direct,
    /// A limb path through cuBLAS.
    Limb(LimbPath),
}

impl FromStr for GemmPath {
    type Err = Error;

    /// Parses `auto`, `direct`, `f64` or `int8` (ASCII case-insensitive).
    ///
    /// Errors: [`Error::Unsupported`] naming the accepted values.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(GemmPath::Auto),
            "direct" => Ok(GemmPath::Direct),
            "f64" => Ok(GemmPath::F64),
            "int8" => Ok(GemmPath::Int8),
            other => Err(Error::Unsupported(format!(
                "{GEMM_PATH_ENV}={other}: expected auto, direct, f64 or int8"
            ))),
        }
    }
}

impl GemmPath {
    /// The path from [`GEMM_PATH_ENV`], [`GemmPath::Auto`] when unset.
    ///
    /// Errors: [`Error::Unsupported`] for an unknown value.
    pub fn from_env() -> Result<Self> {
        match std::env::var(GEMM_PATH_ENV) {
            Ok(v) => v.parse(),
            Err(_) => Ok(GemmPath::Auto),
        }
    }

    /// The route for a `[batch] x [m,k] x [k,n]` product, given whether
    /// cuBLAS can be used. A limb path requested without cuBLAS, and any
    /// product with no work, takes the direct kernel.
    pub fn route(self, blas: bool, (batch, m, k, n): (usize, usize, usize, usize)) -> GemmRoute {
        let work = batch as u128 * m as u128 * k as u128 * n as u128;
        if !blas || work == 0 {
            return GemmRoute::Direct;
        }
        match self {
            GemmPath::Direct => GemmRoute::Direct,
            GemmPath::F64 => GemmRoute::Limb(LimbPath::F64),
            GemmPath::Int8 => GemmRoute::Limb(LimbPath::Int8),
            GemmPath::Auto if work < AUTO_MIN_WORK => GemmRoute::Direct,
            GemmPath::Auto => GemmRoute::Limb(LimbPath::Int8),
        }
    }

    /// Short name ("auto", "direct", "f64", "int8").
    pub fn name(self) -> &'static str {
        match self {
            GemmPath::Auto => "auto",
            GemmPath::Direct => "direct",
            GemmPath::F64 => "f64",
            GemmPath::Int8 => "int8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_rejects_others() {
        for p in [
            GemmPath::Auto,
            GemmPath::Direct,
            GemmPath::F64,
            GemmPath::Int8,
        ] {
            assert_eq!(p.name().parse::<GemmPath>().unwrap(), p);
            assert_eq!(p.name().to_uppercase().parse::<GemmPath>().unwrap(), p);
        }
        assert!("fp16".parse::<GemmPath>().is_err());
    }

    #[test]
    fn routes() {
        let big = (1, 1024, 1024, 1024);
        assert_eq!(
            GemmPath::Auto.route(true, big),
            GemmRoute::Limb(LimbPath::Int8)
        );
        assert_eq!(GemmPath::Auto.route(true, (1, 8, 8, 8)), GemmRoute::Direct);
        assert_eq!(GemmPath::Auto.route(false, big), GemmRoute::Direct);
        assert_eq!(GemmPath::F64.route(false, big), GemmRoute::Direct);
        assert_eq!(
            GemmPath::F64.route(true, (1, 1, 1, 1)),
            GemmRoute::Limb(LimbPath::F64)
        );
        assert_eq!(GemmPath::Int8.route(true, (1, 0, 5, 5)), GemmRoute::Direct);
        assert_eq!(GemmPath::Direct.route(true, big), GemmRoute::Direct);
    }
}
