//! CPU vs GPU, bit for bit, on random inputs: every `Backend` op of the CUDA
//! backend against the CPU backend, over Z_2^32 and Z_2^64.
//!
//! Needs a CUDA device and libnvrtc; without them every test prints why it
//! skips and passes (CI has no GPU). `scripts/gpu-check.sh` runs this binary
//! on a GPU machine.
//!
//! Covered: add, sub, mul, add_assign, neg, mul_scalar, add_scalar, ashr,
//! beaver_mul_combine, pool_windows and pool_scatter (max pooling),
//! matmul (plain and batched), conv2d and both of its gradients, transpose,
//! trunc_combine, prg_tensor, dealer material expanded by a party's provider,
//! results kept on the device across a chain of ops (copies through the
//! pinned staging buffers, above their size) and a long dependent chain over
//! the stream pool,
//! and the ring GEMM of every path (`direct`, `f64`, `int8`: issue 8, the
//! limb GEMMs through cuBLAS) on shapes that need chunking (inner dimension
//! above 2^16 and 2^21) and adversarial limbs; the limb paths skip without
//! libcublas.
//! The bit-slicing, AND-combine and carry kernels have no `Backend` entry
//! point (comparison runs those steps on the host) and are covered by host
//! emulation only (`scripts/kernels-host-check.py`).
#![cfg(feature = "cuda")]

use spindle::backend::cuda::{blas_available, CudaBackend};
use spindle::backend::limb::GemmPath;
use spindle::backend::{Backend, Conv2dParams, CpuBackend, Pool2d};
use spindle::prg::{Prg, Seed};
use spindle::ring::{Ring, RingTensor, Shape};

fn gpu(test: &str) -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("{test}: skipped, no usable CUDA device: {e}");
            None
        }
    }
}

/// Sizes around the launch geometry: empty, tiny, not a multiple of the
/// block (256) or of a PRG block, and large enough for a grid-stride loop.
const SIZES: [usize; 6] = [0, 1, 3, 257, 4099, 1 << 20];

fn rand<R: Ring>(prg: &mut Prg, shape: impl Into<Shape>) -> RingTensor<R> {
    prg.tensor(shape)
}

fn elementwise<R: Ring>(g: &CudaBackend) {
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([R::BITS as u8; 16]), 1);
    for n in SIZES {
        let (a, b) = (rand::<R>(&mut prg, [n]), rand::<R>(&mut prg, [n]));
        let s = rand::<R>(&mut prg, [1])
            .data()
            .first()
            .copied()
            .unwrap_or(R::ONE);
        let k = R::BITS;
        assert_eq!(
            g.add(&a, &b).unwrap(),
            cpu.add(&a, &b).unwrap(),
            "add n={n} k={k}"
        );
        assert_eq!(
            g.sub(&a, &b).unwrap(),
            cpu.sub(&a, &b).unwrap(),
            "sub n={n} k={k}"
        );
        assert_eq!(
            g.mul(&a, &b).unwrap(),
            cpu.mul(&a, &b).unwrap(),
            "mul n={n} k={k}"
        );
        let (mut x, mut y) = (a.clone(), a.clone());
        g.add_assign(&mut x, &b).unwrap();
        cpu.add_assign(&mut y, &b).unwrap();
        assert_eq!(x, y, "add_assign n={n} k={k}");
        assert_eq!(g.neg(&a).unwrap(), cpu.neg(&a).unwrap(), "neg n={n} k={k}");
        assert_eq!(
            g.mul_scalar(&a, s).unwrap(),
            cpu.mul_scalar(&a, s).unwrap(),
            "mul_scalar n={n} k={k}"
        );
        assert_eq!(
            g.add_scalar(&a, s).unwrap(),
            cpu.add_scalar(&a, s).unwrap(),
            "add_scalar n={n} k={k}"
        );
        for sh in [0, 1, 20, k - 1] {
            assert_eq!(
                g.ashr(&a, sh).unwrap(),
                cpu.ashr(&a, sh).unwrap(),
                "ashr {sh} n={n} k={k}"
            );
        }
        let (e, x, f) = (
            rand::<R>(&mut prg, [n]),
            rand::<R>(&mut prg, [n]),
            rand::<R>(&mut prg, [n]),
        );
        assert_eq!(
            g.beaver_mul_combine(a.clone(), &e, &b, &x, &f).unwrap(),
            cpu.beaver_mul_combine(a.clone(), &e, &b, &x, &f).unwrap(),
            "beaver_mul_combine n={n} k={k}"
        );
    }
    let (a, b) = (rand::<R>(&mut prg, [5]), rand::<R>(&mut prg, [6]));
    assert!(g.add(&a, &b).is_err(), "shape mismatch is an error");
    assert!(
        g.beaver_mul_combine(a.clone(), &a, &a, &a, &b).is_err(),
        "shape mismatch is an error"
    );
}

#[test]
fn elementwise_ops_match_the_cpu() {
    let Some(g) = gpu("elementwise_ops_match_the_cpu") else {
        return;
    };
    elementwise::<u32>(&g);
    elementwise::<u64>(&g);
}

fn trunc<R: Ring>(g: &CudaBackend) {
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([7; 16]), R::BITS as u64);
    for n in SIZES {
        let (c, rs, rm) = (
            rand::<R>(&mut prg, [n]),
            rand::<R>(&mut prg, [n]),
            rand::<R>(&mut prg, [n]),
        );
        for f in [0, 8, R::DEFAULT_FRAC_BITS, R::BITS - 2] {
            for p0 in [false, true] {
                assert_eq!(
                    g.trunc_combine(&c, &rs, &rm, f, p0).unwrap(),
                    cpu.trunc_combine(&c, &rs, &rm, f, p0).unwrap(),
                    "trunc_combine n={n} f={f} party0={p0} k={}",
                    R::BITS
                );
            }
        }
    }
}

#[test]
fn truncation_combine_matches_the_cpu() {
    let Some(g) = gpu("truncation_combine_matches_the_cpu") else {
        return;
    };
    trunc::<u32>(&g);
    trunc::<u64>(&g);
}

/// A chain of ops stays on the device: results have no host copy until
/// read, operands with a device copy are used in place, a host operand
/// keeps its upload, and a mutated host copy is uploaded afresh.
fn resident<R: Ring>(g: &CudaBackend) {
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([11; 16]), R::BITS as u64);
    // Above two staging buffers (16 MiB each) with a partial tail.
    let n = (40 << 20) / R::BYTES + 5;
    let (a, b, c) = (
        rand::<R>(&mut prg, [n]),
        rand::<R>(&mut prg, [n]),
        rand::<R>(&mut prg, [n]),
    );
    let x = g.add(&a, &b).unwrap();
    assert!(
        !x.is_on_host() && x.device_copy().is_some(),
        "result on the device"
    );
    assert!(a.device_copy().is_some(), "upload kept by the host operand");
    let y = g.mul(&x, &c).unwrap();
    assert!(
        !x.is_on_host(),
        "a device operand is not copied to the host"
    );
    let z = g.trunc_combine(&y, &a, &b, 13, true).unwrap();
    let want = cpu
        .trunc_combine(
            &cpu.mul(&cpu.add(&a, &b).unwrap(), &c).unwrap(),
            &a,
            &b,
            13,
            true,
        )
        .unwrap();
    assert_eq!(z, want, "device chain k={}", R::BITS);
    assert!(
        z.is_on_host() && z.device_copy().is_some(),
        "mirrored after a read"
    );
    // A mutated host copy drops the stale device copy.
    let mut a2 = a.clone();
    a2.data_mut()[n - 1] = R::ONE;
    assert!(a2.device_copy().is_none());
    assert_eq!(g.add(&a2, &b).unwrap(), cpu.add(&a2, &b).unwrap());
}

#[test]
fn results_stay_on_the_device_between_ops() {
    let Some(g) = gpu("results_stay_on_the_device_between_ops") else {
        return;
    };
    resident::<u32>(&g);
    resident::<u64>(&g);
}

/// Many dependent ops spread over the stream pool: each must see its
/// operands' final values (cudarc's per-buffer events order them).
#[test]
fn a_long_chain_over_the_stream_pool_matches_the_cpu() {
    let Some(g) = gpu("a_long_chain_over_the_stream_pool_matches_the_cpu") else {
        return;
    };
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([12; 16]), 0);
    let (mut x, mut want) = {
        let t = rand::<u64>(&mut prg, [1 << 20]);
        (t.clone(), t)
    };
    let d = rand::<u64>(&mut prg, [1 << 20]);
    for i in 0..64u64 {
        x = g.add(&g.mul_scalar(&x, 3 + i).unwrap(), &d).unwrap();
        want = cpu.add(&cpu.mul_scalar(&want, 3 + i).unwrap(), &d).unwrap();
        if i % 16 == 15 {
            x = g
                .transpose(&x.reshape([1024, 1024]).unwrap())
                .unwrap()
                .reshape([1 << 20])
                .unwrap();
            want = cpu
                .transpose(&want.reshape([1024, 1024]).unwrap())
                .unwrap()
                .reshape([1 << 20])
                .unwrap();
        }
    }
    assert_eq!(x, want);
}

fn prg<R: Ring>(g: &CudaBackend) {
    let cpu = CpuBackend::default();
    for (i, n) in SIZES.into_iter().enumerate() {
        let seed = Seed::random().unwrap();
        for stream in [0, 1, i as u64 * 977, u64::MAX] {
            let shape = Shape(vec![n]);
            assert_eq!(
                g.prg_tensor::<R>(&seed, stream, &shape).unwrap(),
                cpu.prg_tensor::<R>(&seed, stream, &shape).unwrap(),
                "prg n={n} stream={stream} k={}",
                R::BITS
            );
        }
    }
}

#[test]
fn prg_expansion_matches_the_cpu_stream() {
    let Some(g) = gpu("prg_expansion_matches_the_cpu_stream") else {
        return;
    };
    prg::<u32>(&g);
    prg::<u64>(&g);
}

fn pooling<R: Ring>(g: &CudaBackend) {
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([5; 16]), R::BITS as u64);
    let lenet = Pool2d::square(2);
    let overlapping = Pool2d {
        kernel: (3, 3),
        geometry: Conv2dParams {
            stride: (2, 1),
            padding: (1, 1),
        },
    };
    for (xs, p) in [
        ([2, 3, 8, 8], lenet),
        ([64, 20, 24, 24], lenet),
        ([1, 2, 7, 9], overlapping),
    ] {
        let x = rand::<R>(&mut prg, xs);
        let pad = R::ONE.shl(R::BITS - 3).wrapping_neg();
        let w = cpu.pool_windows(&x, &p, pad).unwrap();
        assert_eq!(
            g.pool_windows(&x, &p, pad).unwrap(),
            w,
            "pool_windows {xs:?}"
        );
        let routed = rand::<R>(&mut prg, w.shape().clone());
        assert_eq!(
            g.pool_scatter(&routed, x.shape(), &p).unwrap(),
            cpu.pool_scatter(&routed, x.shape(), &p).unwrap(),
            "pool_scatter {xs:?}"
        );
    }
    let x = rand::<R>(&mut prg, [1, 1, 4, 4]);
    assert!(
        g.pool_scatter(&x, x.shape(), &lenet).is_err(),
        "routed of the wrong size"
    );
}

#[test]
fn pooling_gather_and_scatter_match_the_cpu() {
    let Some(g) = gpu("pooling_gather_and_scatter_match_the_cpu") else {
        return;
    };
    pooling::<u32>(&g);
    pooling::<u64>(&g);
}

fn linear<R: Ring>(g: &CudaBackend) {
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([3; 16]), R::BITS as u64);
    for (m, k, n) in [(1, 1, 1), (17, 33, 15), (64, 128, 64), (128, 784, 100)] {
        let (a, b) = (rand::<R>(&mut prg, [m, k]), rand::<R>(&mut prg, [k, n]));
        assert_eq!(
            g.matmul(&a, &b).unwrap(),
            cpu.matmul(&a, &b).unwrap(),
            "matmul {m}x{k}x{n}"
        );
        let (a, b) = (
            rand::<R>(&mut prg, [3, m, k]),
            rand::<R>(&mut prg, [3, k, n]),
        );
        assert_eq!(
            g.matmul(&a, &b).unwrap(),
            cpu.matmul(&a, &b).unwrap(),
            "batched {m}x{k}x{n}"
        );
        assert_eq!(
            g.transpose(&a).unwrap(),
            cpu.transpose(&a).unwrap(),
            "transpose"
        );
    }
    for (xs, ws, p) in [
        ([2, 3, 9, 7], [4, 3, 3, 3], Conv2dParams::default()),
        (
            [1, 2, 8, 8],
            [3, 2, 5, 5],
            Conv2dParams {
                stride: (2, 1),
                padding: (2, 1),
            },
        ),
        ([8, 1, 28, 28], [20, 1, 5, 5], Conv2dParams::default()),
    ] {
        let (x, w) = (rand::<R>(&mut prg, xs), rand::<R>(&mut prg, ws));
        let y = cpu.conv2d(&x, &w, &p).unwrap();
        assert_eq!(g.conv2d(&x, &w, &p).unwrap(), y, "conv2d {xs:?} {ws:?}");
        let gy = rand::<R>(&mut prg, y.shape().clone());
        let kernel = (ws[2], ws[3]);
        assert_eq!(
            g.conv2d_grad_weight(&x, &gy, &p, kernel).unwrap(),
            cpu.conv2d_grad_weight(&x, &gy, &p, kernel).unwrap(),
            "conv2d_grad_weight {xs:?} {ws:?}"
        );
        let input = (xs[2], xs[3]);
        assert_eq!(
            g.conv2d_grad_input(&gy, &w, &p, input).unwrap(),
            cpu.conv2d_grad_input(&gy, &w, &p, input).unwrap(),
            "conv2d_grad_input {xs:?} {ws:?}"
        );
    }
}

#[test]
fn matmul_conv_its_gradients_and_transpose_match_the_cpu() {
    let Some(g) = gpu("matmul_conv_its_gradients_and_transpose_match_the_cpu") else {
        return;
    };
    linear::<u32>(&g);
    linear::<u64>(&g);
}

fn filled<R: Ring>(v: u64, dims: &[usize]) -> RingTensor<R> {
    let n = dims.iter().product();
    RingTensor::new(dims.to_vec(), vec![R::from_u64(v); n]).unwrap()
}

/// Matmul and conv2d on one GEMM path against the CPU.
fn gemm_paths<R: Ring>(g: &CudaBackend, path: GemmPath) {
    let g = g.with_gemm_path(path);
    let cpu = CpuBackend::default();
    let mut prg = Prg::new(&Seed([11; 16]), R::BITS as u64);
    let k = R::BITS;
    let p = path.name();
    for (batch, m, kk, n) in [
        (1, 1, 1, 1),
        (1, 256, 300, 200),
        (3, 17, 33, 15),
        (2, 64, 129, 63),
        (1, 2, (1 << 16) + 3, 3),
        (1, 2, (1 << 17) + 5, 3),
        (1, 2, (1 << 21) + 5, 3),
    ] {
        let (a, b) = if batch == 1 {
            (rand::<R>(&mut prg, [m, kk]), rand::<R>(&mut prg, [kk, n]))
        } else {
            (
                rand::<R>(&mut prg, [batch, m, kk]),
                rand::<R>(&mut prg, [batch, kk, n]),
            )
        };
        assert_eq!(
            g.matmul(&a, &b).unwrap(),
            cpu.matmul(&a, &b).unwrap(),
            "{p} matmul {batch}x{m}x{kk}x{n} k={k}"
        );
    }
    // Extreme limbs: every balanced byte -128 (int8 products +2^14), all
    // ones (16-bit digits 0xffff), over inner dimensions that need chunks.
    for (v, kk) in [
        (0x7f7f_7f7f_7f7f_7f80u64, (1 << 17) + 5),
        (0x8080_8080_8080_8080, 1000),
        (u64::MAX, (1 << 21) + 77),
    ] {
        let (a, b) = (filled::<R>(v, &[2, kk]), filled::<R>(v, &[kk, 3]));
        assert_eq!(
            g.matmul(&a, &b).unwrap(),
            cpu.matmul(&a, &b).unwrap(),
            "{p} matmul of {v:#x} with K={kk} k={k}"
        );
    }
    for (xs, ws, cp) in [
        ([2, 3, 9, 7], [4, 3, 3, 3], Conv2dParams::default()),
        ([8, 1, 28, 28], [20, 1, 5, 5], Conv2dParams::default()),
        ([4, 20, 12, 12], [50, 20, 5, 5], Conv2dParams::default()),
        (
            [2, 64, 16, 16],
            [64, 64, 3, 3],
            Conv2dParams {
                stride: (1, 1),
                padding: (1, 1),
            },
        ),
    ] {
        let (x, w) = (rand::<R>(&mut prg, xs), rand::<R>(&mut prg, ws));
        assert_eq!(
            g.conv2d(&x, &w, &cp).unwrap(),
            cpu.conv2d(&x, &w, &cp).unwrap(),
            "{p} conv2d {xs:?} {ws:?} k={k}"
        );
    }
}

/// [`gemm_paths`] for both rings, or a printed reason to skip: no device,
/// or a limb path without libcublas.
fn ring_gemm_on(test: &str, path: GemmPath) {
    let Some(g) = gpu(test) else {
        return;
    };
    if matches!(path, GemmPath::F64 | GemmPath::Int8) && !blas_available() {
        eprintln!("{test}: skipped, libcublas not found (the limb GEMM paths need cuBLAS)");
        return;
    }
    gemm_paths::<u32>(&g, path);
    gemm_paths::<u64>(&g, path);
}

#[test]
fn ring_gemm_direct_path_matches_the_cpu() {
    ring_gemm_on("ring_gemm_direct_path_matches_the_cpu", GemmPath::Direct);
}

#[test]
fn ring_gemm_f64_limb_path_matches_the_cpu() {
    ring_gemm_on("ring_gemm_f64_limb_path_matches_the_cpu", GemmPath::F64);
}

#[test]
fn ring_gemm_int8_limb_path_matches_the_cpu() {
    ring_gemm_on("ring_gemm_int8_limb_path_matches_the_cpu", GemmPath::Int8);
}

#[test]
fn ring_gemm_auto_path_matches_the_cpu() {
    ring_gemm_on("ring_gemm_auto_path_matches_the_cpu", GemmPath::Auto);
}

/// Dealer material as each party's provider expands it: on the GPU (the
/// random parts straight into device buffers with `prg_fill_*`, party 0's
/// corrections uploaded) and on the CPU, identical for both parties.
#[test]
fn dealer_material_expanded_on_the_device_matches_the_cpu() {
    use spindle::backend::{BilinearOp, Device};
    use spindle::preprocess::{Dealer, Plan, Provider, Request};
    use spindle::ring::RingId;
    let Some(g) = gpu("dealer_material_expanded_on_the_device_matches_the_cpu") else {
        return;
    };
    let requests = vec![
        Request::Triple {
            ring: RingId::Z64,
            op: BilinearOp::Mul,
            lhs: Shape(vec![4099]),
            rhs: Shape(vec![4099]),
        },
        Request::Trunc {
            ring: RingId::Z64,
            shape: Shape(vec![1 << 20]),
            frac_bits: 20,
        },
        Request::Square {
            ring: RingId::Z32,
            shape: Shape(vec![257]),
        },
        Request::Triple {
            ring: RingId::Z32,
            op: BilinearOp::Matmul,
            lhs: Shape(vec![17, 33]),
            rhs: Shape(vec![33, 15]),
        },
    ];
    let plan = Plan {
        requests: requests.clone(),
        ..Plan::default()
    };
    let stores = Dealer::new(2, Device::default())
        .unwrap()
        .generate(&plan)
        .unwrap();
    for store in stores {
        let party = store.party;
        let mut on_gpu = store.clone().into_provider(Device::Cuda(g.clone()));
        let mut on_cpu = store.into_provider(Device::default());
        for (i, req) in requests.iter().enumerate() {
            assert_eq!(
                on_gpu.next(req).unwrap(),
                on_cpu.next(req).unwrap(),
                "party {party}, request {i} ({req})"
            );
        }
    }
}
