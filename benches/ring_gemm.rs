//! Ring GEMM throughput: `spindle::backend::cpu::gemm` over Z_2^64 and Z_2^32
//! at 256^3 and 1024^3, on one thread and on rayon's pool, against the
//! plaintext f32 `matrixmultiply::sgemm` of the same shapes (one thread: the
//! crate's `threading` feature is off).
//!
//! On CPUs with AMX-INT8 each ring case runs twice: `gemm` as shipped
//! (`single_amx`, `rayon_amx`: the AMX limb kernel) and `gemm_without_amx`
//! (`single_no_amx`, `rayon_no_amx`: the AVX-512 IFMA kernels where present),
//! after checking that both give the same result.
//!
//! Throughput is `Throughput::Elements(m * n * k)`, so criterion's "elem/s"
//! are multiply-adds per second: GOPS = elem/s / 1e9 (criterion prints
//! "Gelem/s", which reads directly as GOPS).

// Large short-lived buffers: mimalloc avoids a page fault per fresh allocation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use spindle::backend::cpu::gemm::{amx_available, gemm, gemm_without_amx, Parallelism};
use spindle::ring::Ring;

/// Deterministic full-range operands (splitmix64).
fn operands<R: Ring>(len: usize, seed: u64) -> Vec<R> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            R::from_u64(z ^ (z >> 31))
        })
        .collect()
}

/// Benchmarks one ring GEMM of size s^3: `gemm` as shipped (`_amx` where
/// the AMX-INT8 kernel runs) and, where AMX runs, `gemm_without_amx` (the
/// AVX-512 IFMA kernels on CPUs that have them, `_no_amx`) in the same run.
fn ring_case<R: Ring>(c: &mut Criterion, s: usize, par: Parallelism) {
    let (a, b) = (operands::<R>(s * s, 1), operands::<R>(s * s, 2));
    let mut out = vec![R::ZERO; s * s];
    let mut group = c.benchmark_group(format!("ring_gemm_u{}", R::BITS));
    configure(&mut group, s);
    let name = match par {
        Parallelism::Single => "single",
        Parallelism::Rayon => "rayon",
    };
    let amx = amx_available();
    let best = if amx {
        format!("{name}_amx")
    } else {
        name.to_string()
    };
    group.bench_function(BenchmarkId::new(best, s), |bench| {
        bench.iter(|| gemm(s, s, s, &a, &b, &mut out, par));
    });
    if amx {
        let mut check = vec![R::ZERO; s * s];
        gemm_without_amx(s, s, s, &a, &b, &mut check, par);
        assert!(check == out, "AMX and non-AMX results differ");
        group.bench_function(BenchmarkId::new(format!("{name}_no_amx"), s), |bench| {
            bench.iter(|| gemm_without_amx(s, s, s, &a, &b, &mut out, par));
        });
    }
    group.finish();
}

/// The plaintext baseline: f32 GEMM of size s^3 on one thread.
fn f32_case(c: &mut Criterion, s: usize) {
    let a: Vec<f32> = (0..s * s).map(|i| (i % 17) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..s * s).map(|i| (i % 13) as f32 * 0.5).collect();
    let mut out = vec![0f32; s * s];
    let mut group = c.benchmark_group("f32_sgemm");
    configure(&mut group, s);
    group.bench_function(BenchmarkId::new("single", s), |bench| {
        bench.iter(|| {
            let st = s as isize;
            // SAFETY: a, b and out hold s * s elements each, row-major with
            // row stride s and column stride 1, and out aliases neither input.
            unsafe {
                matrixmultiply::sgemm(
                    s,
                    s,
                    s,
                    1.0,
                    a.as_ptr(),
                    st,
                    1,
                    b.as_ptr(),
                    st,
                    1,
                    0.0,
                    out.as_mut_ptr(),
                    st,
                    1,
                )
            }
        });
    });
    group.finish();
}

/// Few samples, flat sampling (the same iteration count per sample), so that
/// the whole suite runs in under a minute.
fn configure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    s: usize,
) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements((s * s * s) as u64));
}

fn benches(c: &mut Criterion) {
    for s in [256, 1024] {
        for par in [Parallelism::Single, Parallelism::Rayon] {
            ring_case::<u64>(c, s, par);
            ring_case::<u32>(c, s, par);
        }
        f32_case(c, s);
    }
}

criterion_group!(ring_gemm, benches);
criterion_main!(ring_gemm);
