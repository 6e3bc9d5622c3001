//! GPU vs CPU timings of backend ops on 10^7 elements (Z_2^64): add, mul,
//! truncation combine, PRG expansion, and a 512^3 matmul; and ring GEMM on
//! the GPU by path (issue 8): u64 and u32 at 1024^3 and 4096^3, a LeNet conv
//! (conv2 of Piranha's LeNet, batch 128) and a VGG16 conv (a 256-channel
//! 3x3 layer on 8x8 CIFAR-10 maps, batch 32), each through the `direct`,
//! `f64` and `int8` paths (direct skipped at 4096^3: minutes per sample),
//! next to cuBLAS f32 and bf16 GEMMs of the same GEMM shape on
//! device-resident operands (no copies; the floor a ring GEMM could reach).
//!
//! Needs a CUDA device; without one it prints why and measures nothing.
//! Two GPU figures per elementwise op: `gpu_resident` (operands already on
//! the device, the result left there, timed to completion with
//! `CudaBackend::synchronize`: a step of a chain of backend ops) and
//! `gpu_incl_copies` (host-only operands uploaded and the result copied
//! down through the pinned staging buffers: one op alone). Ring GEMMs are
//! timed resident, like the cuBLAS float GEMMs next to them.
//! And one protocol end to end: DReLU on 10^7 elements at 2 parties in one
//! process (in-memory transport, the online dealer's material expanded on
//! each party's device), CPU backend against CUDA backend (issue 7's
//! acceptance; the 3-party LeNet iteration is `benches/training.rs` with
//! `SPINDLE_BENCH_DEVICE`).
//! Run by `scripts/gpu-check.sh` on a GPU machine.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

use spindle::backend::{Backend, CpuBackend};
use spindle::prg::{Prg, Seed};
use spindle::ring::{RingTensor, Shape};

const N: usize = 10_000_000;

/// CUDA device 0, or `None` after printing why `group` is skipped.
#[cfg(feature = "cuda")]
fn cuda_device(group: &str) -> Option<spindle::backend::cuda::CudaBackend> {
    spindle::backend::cuda::CudaBackend::new(0)
        .map_err(|e| eprintln!("{group}: skipped, no usable CUDA device: {e}"))
        .ok()
}

#[cfg(feature = "cuda")]
fn benches(c: &mut Criterion) {
    use spindle::backend::Device;
    let Some(g) = cuda_device("gpu_kernels") else {
        return;
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
    let m: RingTensor<u64> = prg.tensor([512, 512]);
    let mut grp = c.benchmark_group("gpu_vs_cpu_1e7_u64");
    grp.sample_size(10);
    // Each op once, run on either device: operands (a, b, r, m).
    type Op = fn(&Device, [&RingTensor<u64>; 4]) -> RingTensor<u64>;
    let ops: [(&str, Op); 4] = [
        ("add", |d, [a, b, _, _]| d.add(a, b).unwrap()),
        ("mul", |d, [a, b, _, _]| d.mul(a, b).unwrap()),
        ("trunc_combine", |d, [a, b, r, _]| {
            d.trunc_combine(a, b, r, 20, true).unwrap()
        }),
        ("matmul512", |d, [_, _, _, m]| d.matmul(m, m).unwrap()),
    ];
    let (dc, dg) = (Device::Cpu(cpu), Device::Cuda(g.clone()));
    let host_only =
        |t: &RingTensor<u64>| RingTensor::new(t.shape().clone(), t.data().to_vec()).unwrap();
    for (name, op) in ops {
        grp.bench_function(format!("{name}/cpu"), |x| {
            x.iter(|| op(&dc, [&a, &b, &r, &m]))
        });
        // Warm: the operands keep their uploads from here on.
        let _ = op(&dg, [&a, &b, &r, &m]);
        grp.bench_function(format!("{name}/gpu_resident"), |x| {
            x.iter(|| {
                let out = op(&dg, [&a, &b, &r, &m]);
                g.synchronize().unwrap();
                out
            })
        });
        // Fresh host-only operands each time (made outside the timing).
        grp.bench_function(format!("{name}/gpu_incl_copies"), |x| {
            x.iter_batched(
                || [&a, &b, &r, &m].map(host_only),
                |[ha, hb, hr, hm]| op(&dg, [&ha, &hb, &hr, &hm]).try_into_data().unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    grp.bench_function("prg/cpu", |x| {
        x.iter(|| cpu.prg_tensor::<u64>(&seed, 1, &shape))
    });
    grp.bench_function("prg/gpu_resident", |x| {
        x.iter(|| {
            let out = g.prg_tensor::<u64>(&seed, 1, &shape);
            g.synchronize().unwrap();
            out
        })
    });
    grp.finish();
}

/// DReLU on 10^7 shared values in [-100, 100), 2 parties in one process:
/// the slowest party's online time, on the CPU and on the GPU.
#[cfg(feature = "cuda")]
fn drelu(c: &mut Criterion) {
    use spindle::backend::Device;
    use spindle::runner::{run_parties_blocking, RunOptions};
    use std::sync::Arc;
    use std::time::Instant;
    let Some(g) = cuda_device("drelu") else {
        return;
    };
    let mut raw = vec![0u64; N];
    Prg::new(&Seed([6; 16]), 0).fill(&mut raw);
    let x: Arc<Vec<f64>> = Arc::new(
        raw.iter()
            .map(|&v| ((v >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 200.0)
            .collect(),
    );
    let mut grp = c.benchmark_group("drelu_1e7_2pc");
    grp.sample_size(10);
    for (label, device) in [("cpu", Device::default()), ("gpu", Device::Cuda(g))] {
        let mut opts = RunOptions::new(2);
        opts.backend = device;
        let x = x.clone();
        let once = move || {
            let x = x.clone();
            let r = run_parties_blocking(&opts, move |sess| {
                let x = x.clone();
                async move {
                    let mine = (sess.party() == 0).then_some(&x[..]);
                    let xs = sess.share_input_f64::<u64>(0, mine, [N])?;
                    let t0 = Instant::now();
                    let d = spindle::protocol::compare::drelu(&sess, &xs).await?;
                    // Finished means on the host: the GPU runs asynchronously.
                    d.share().try_data()?;
                    Ok(t0.elapsed())
                }
            })
            .expect("drelu runs");
            r.parties.iter().map(|p| p.output).max().unwrap_or_default()
        };
        grp.bench_function(label, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| once()).sum())
        });
    }
    grp.finish();
}

/// One ring GEMM bench shape: a matmul `[m,k] x [k,n]`, or a convolution
/// (its GEMM: batch `n_img` of `[o, c kh kw] x [c kh kw, ho wo]`).
#[cfg(feature = "cuda")]
#[derive(Clone, Copy)]
enum GemmShape {
    Matmul(usize),
    Conv {
        x: [usize; 4],
        w: [usize; 4],
        pad: usize,
    },
}

#[cfg(feature = "cuda")]
impl GemmShape {
    const ALL: [(&'static str, GemmShape); 4] = [
        ("1024^3", GemmShape::Matmul(1024)),
        ("4096^3", GemmShape::Matmul(4096)),
        (
            "lenet_conv2_b128",
            GemmShape::Conv {
                x: [128, 20, 12, 12],
                w: [50, 20, 5, 5],
                pad: 0,
            },
        ),
        (
            "vgg16_conv256_8x8_b32",
            GemmShape::Conv {
                x: [32, 256, 8, 8],
                w: [256, 256, 3, 3],
                pad: 1,
            },
        ),
    ];

    /// (batch, m, k, n) of the GEMM; A shared across the batch for convs.
    fn gemm(self) -> (usize, usize, usize, usize) {
        match self {
            GemmShape::Matmul(s) => (1, s, s, s),
            GemmShape::Conv { x, w, pad } => {
                let (ho, wo) = (x[2] + 2 * pad - w[2] + 1, x[3] + 2 * pad - w[3] + 1);
                (x[0], w[0], w[1] * w[2] * w[3], ho * wo)
            }
        }
    }
}

#[cfg(feature = "cuda")]
fn ring_gemm_for<R: spindle::ring::Ring>(
    c: &mut Criterion,
    g: &spindle::backend::cuda::CudaBackend,
) {
    use spindle::backend::limb::GemmPath;
    use spindle::backend::Conv2dParams;
    let mut prg = Prg::new(&Seed([R::BITS as u8; 16]), 7);
    let mut grp = c.benchmark_group(format!("ring_gemm_u{}", R::BITS));
    grp.sample_size(10);
    for (name, shape) in GemmShape::ALL {
        for path in [GemmPath::Direct, GemmPath::F64, GemmPath::Int8] {
            if path == GemmPath::Direct && matches!(shape, GemmShape::Matmul(4096)) {
                continue;
            }
            let gp = g.with_gemm_path(path);
            let id = format!("{name}/{}_resident", path.name());
            match shape {
                GemmShape::Matmul(s) => {
                    let a: RingTensor<R> = prg.tensor([s, s]);
                    let b: RingTensor<R> = prg.tensor([s, s]);
                    if let Err(e) = gp.matmul(&a, &b) {
                        eprintln!("ring_gemm {id}: skipped, {e}");
                        continue;
                    }
                    grp.bench_function(id, |x| {
                        x.iter(|| {
                            let out = gp.matmul(&a, &b).unwrap();
                            gp.synchronize().unwrap();
                            out
                        })
                    });
                }
                GemmShape::Conv { x: xs, w: ws, pad } => {
                    let x: RingTensor<R> = prg.tensor(xs);
                    let w: RingTensor<R> = prg.tensor(ws);
                    let p = Conv2dParams {
                        stride: (1, 1),
                        padding: (pad, pad),
                    };
                    if let Err(e) = gp.conv2d(&x, &w, &p) {
                        eprintln!("ring_gemm {id}: skipped, {e}");
                        continue;
                    }
                    grp.bench_function(id, |t| {
                        t.iter(|| {
                            let out = gp.conv2d(&x, &w, &p).unwrap();
                            gp.synchronize().unwrap();
                            out
                        })
                    });
                }
            }
        }
    }
    grp.finish();
}

/// cuBLAS f32 (`CUBLAS_COMPUTE_32F`) and bf16 (bf16 in, f32 compute, bf16
/// out) strided batched GEMMs of every shape's GEMM, device-resident.
#[cfg(feature = "cuda")]
fn float_gemm(c: &mut Criterion) {
    use cudarc::cublas::sys::{
        cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType,
    };
    use cudarc::cublas::CudaBlas;
    use cudarc::driver::{CudaContext, DevicePtr, DevicePtrMut};
    if !spindle::backend::cuda::blas_available() {
        eprintln!("float_gemm: skipped, libcublas not found");
        return;
    }
    let mut run = || -> Result<(), String> {
        let ctx = CudaContext::new(0).map_err(|e| e.to_string())?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| e.to_string())?;
        let mut grp = c.benchmark_group("float_gemm");
        grp.sample_size(10);
        for (name, shape) in GemmShape::ALL {
            let (batch, m, k, n) = shape.gemm();
            let shared = matches!(shape, GemmShape::Conv { .. });
            for (ty, bytes, label) in [
                (cudaDataType::CUDA_R_32F, 4usize, "f32"),
                (cudaDataType::CUDA_R_16BF, 2, "bf16"),
            ] {
                let a_len = if shared { m * k } else { batch * m * k };
                let a = stream
                    .alloc_zeros::<u8>(a_len * bytes)
                    .map_err(|e| e.to_string())?;
                let b = stream
                    .alloc_zeros::<u8>(batch * k * n * bytes)
                    .map_err(|e| e.to_string())?;
                let mut out = stream
                    .alloc_zeros::<u8>(batch * m * n * bytes)
                    .map_err(|e| e.to_string())?;
                let (alpha, beta) = (1f32, 0f32);
                let mut gemm = || {
                    let (pa, _ga) = a.device_ptr(&stream);
                    let (pb, _gb) = b.device_ptr(&stream);
                    let (pc, _gc) = out.device_ptr_mut(&stream);
                    // Row-major C[m][n] = A[m][k] B[k][n] as column-major
                    // C^T = B^T A^T. SAFETY: buffers sized above; alpha and
                    // beta are host f32 (CUBLAS_COMPUTE_32F).
                    unsafe {
                        cudarc::cublas::result::gemm_strided_batched_ex(
                            *blas.handle(),
                            cublasOperation_t::CUBLAS_OP_N,
                            cublasOperation_t::CUBLAS_OP_N,
                            n as i32,
                            m as i32,
                            k as i32,
                            (&alpha as *const f32).cast(),
                            pb as *const _,
                            ty,
                            n as i32,
                            (k * n) as i64,
                            pa as *const _,
                            ty,
                            k as i32,
                            if shared { 0 } else { (m * k) as i64 },
                            (&beta as *const f32).cast(),
                            pc as *mut _,
                            ty,
                            n as i32,
                            (m * n) as i64,
                            batch as i32,
                            cublasComputeType_t::CUBLAS_COMPUTE_32F,
                            cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
                        )
                    }
                    .map_err(|e| e.to_string())
                };
                gemm()?;
                stream.synchronize().map_err(|e| e.to_string())?;
                grp.bench_function(format!("{name}/{label}_device"), |x| {
                    x.iter(|| {
                        gemm().unwrap();
                        stream.synchronize().unwrap();
                    })
                });
            }
        }
        grp.finish();
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("float_gemm: skipped, {e}");
    }
}

#[cfg(feature = "cuda")]
fn ring_gemm(c: &mut Criterion) {
    let Some(g) = cuda_device("ring_gemm") else {
        return;
    };
    ring_gemm_for::<u64>(c, &g);
    ring_gemm_for::<u32>(c, &g);
    float_gemm(c);
}

#[cfg(not(feature = "cuda"))]
fn benches(_: &mut Criterion) {
    eprintln!("gpu_kernels: skipped, built without the `cuda` feature");
}

#[cfg(not(feature = "cuda"))]
fn drelu(_: &mut Criterion) {
    eprintln!("drelu: skipped, built without the `cuda` feature");
}

#[cfg(not(feature = "cuda"))]
fn ring_gemm(_: &mut Criterion) {
    eprintln!("ring_gemm: skipped, built without the `cuda` feature");
}

criterion_group!(gpu, benches, drelu, ring_gemm);
criterion_main!(gpu);
