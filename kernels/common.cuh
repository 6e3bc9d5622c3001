// Spindle CUDA kernels: definitions shared by every kernel file.
//
// The registry (src/backend/cuda/kernels.rs) prepends this header to each
// .cu file before NVRTC compiles it, so the .cu files do not #include it and
// need no include path (NVRTC has no standard headers by default either).
//
// Conventions (DESIGN.md, "GPU"; STYLE.md, candle's kernel layout):
// - ring elements are u32 (Z_2^32) or u64 (Z_2^64); unsigned C arithmetic
//   wraps modulo 2^k, which is exactly the ring arithmetic of src/ring;
// - every kernel is `extern "C"` and named `<op>_<type>` (e.g. add_u64);
// - element counts and sizes are u64 and kernels loop grid-stride, so any
//   launch geometry covers any n.
#pragma once

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;
typedef long long i64;

// for (u64 i = global thread index; i < n; i += total threads)
#define SPINDLE_FOR(i, n)                                                      \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(n);     \
         i += (u64)blockDim.x * gridDim.x)
