//! The CPU backend: reference implementation and test oracle.

pub mod gemm;
