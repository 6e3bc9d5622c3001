//! Backends: where share arithmetic runs (CPU now; CUDA later).

pub mod cpu;
