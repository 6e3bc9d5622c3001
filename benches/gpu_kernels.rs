//! GPU vs CPU timings of backend ops on 10^7 elements (Z_2^64): add, mul,
//! truncation combine, PRG expansion, and a 512^3 matmul.
//!
//! Needs a CUDA device; without one it prints why and measures nothing.
//! The GPU figures go through the `Backend` trait, which takes host tensors,
//! so they INCLUDE the host-to-device and device-to-host copies of every op
//! (the `CudaBackend` has no device-resident tensors yet, kernels/README.md).
//! Run by `scripts/gpu-check.sh` on a GPU machine.

use criterion::{criterion_group, criterion_main, Criterion};

use spindle::backend::{Backend, CpuBackend};
use spindle::prg::{Prg, Seed};
use spindle::ring::{RingTensor, Shape};

const N: usize = 10_000_000;

#[cfg(feature = "cuda")]
fn benches(c: &mut Criterion) {
    let g = match spindle::backend::cuda::CudaBackend::new(0) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("gpu_kernels: skipped, no usable CUDA device: {e}");
            return;
        }
    };
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([5; 16]), 0);
    let a: RingTensor<u64> = prg.tensor([N]);
    let b: RingTensor<u64> = prg.tensor([N]);
    let r: RingTensor<u64> = prg.tensor([N]);
    let seed = Seed([9; 16]);
    let shape = Shape(vec![N]);
    // Warm up: compile and load every module once before timing.
    let _ = g.add(&a, &b);
    let _ = g.trunc_combine(&a, &b, &r, 20, true);
    let _ = g.prg_tensor::<u64>(&seed, 0, &Shape(vec![8]));
    let mut grp = c.benchmark_group("gpu_vs_cpu_1e7_u64");
    grp.sample_size(10);
    grp.bench_function("add/cpu", |x| x.iter(|| cpu.add(&a, &b).unwrap()));
    grp.bench_function("add/gpu_incl_copies", |x| x.iter(|| g.add(&a, &b).unwrap()));
    grp.bench_function("mul/cpu", |x| x.iter(|| cpu.mul(&a, &b).unwrap()));
    grp.bench_function("mul/gpu_incl_copies", |x| x.iter(|| g.mul(&a, &b).unwrap()));
    grp.bench_function("trunc_combine/cpu", |x| {
        x.iter(|| cpu.trunc_combine(&a, &b, &r, 20, true).unwrap())
    });
    grp.bench_function("trunc_combine/gpu_incl_copies", |x| {
        x.iter(|| g.trunc_combine(&a, &b, &r, 20, true).unwrap())
    });
    grp.bench_function("prg/cpu", |x| {
        x.iter(|| cpu.prg_tensor::<u64>(&seed, 1, &shape))
    });
    grp.bench_function("prg/gpu_incl_copy_out", |x| {
        x.iter(|| g.prg_tensor::<u64>(&seed, 1, &shape))
    });
    let m: RingTensor<u64> = prg.tensor([512, 512]);
    grp.bench_function("matmul512/cpu", |x| x.iter(|| cpu.matmul(&m, &m).unwrap()));
    grp.bench_function("matmul512/gpu_incl_copies", |x| {
        x.iter(|| g.matmul(&m, &m).unwrap())
    });
    grp.finish();
}

#[cfg(not(feature = "cuda"))]
fn benches(_: &mut Criterion) {
    eprintln!("gpu_kernels: skipped, built without the `cuda` feature");
}

criterion_group!(gpu, benches);
criterion_main!(gpu);
