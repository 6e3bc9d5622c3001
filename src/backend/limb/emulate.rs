//! A CPU emulator of the limb GEMM, executing a [`LimbPlan`] exactly as the
//! CUDA backend does: the same split layouts (A `[row][limb][K]`, B
//! `[column][L-1-limb][K]`), one stacked GEMM per diagonal chunk with the
//! device's arithmetic (f64 multiply-add with f64 accumulation; i8 x i8
//! products accumulated in i32), and the same recombination
//! (`out += sign_extend(C) << shift` in the ring). It is the oracle of the
//! exactness tests: its output must equal the CPU ring matmul bit for bit.
//!
//! Every accumulator is also summed exactly in i64 alongside; a chunk whose
//! device-precision sum differs from the exact one (an f64 rounding, an
//! int32 overflow in [`Accumulation::Exact`] mode) is reported as an error,
//! so a plan that violates its bounds fails loudly rather than silently.
//! In [`Accumulation::Wrapping`] mode the i32 sum wraps mod 2^32 (the
//! behaviour that mode assumes of the device).

use super::digits::{split, LimbEncoding};
use super::plan::{Accumulation, LimbPath, LimbPlan};
use crate::backend::bilinear::matmul_shape;
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor};

/// Dimensions of a batched GEMM `C[b] = A[b] B[b]`, A `[m][k]`, B `[k][n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmDims {
    /// Number of products.
    pub batch: usize,
    /// Rows of A and C.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Whether one A `[m][k]` is shared by every batch entry (convolution
    /// weights: the device passes a batch stride of 0).
    pub shared_a: bool,
}

/// The emulated ring GEMM: `C[b] = A[b] B[b] mod 2^k` through `plan`.
/// Slices are row-major: A `[batch][m][k]` (or `[m][k]` when
/// `dims.shared_a`), B `[batch][k][n]`; returns C `[batch][m][n]`.
///
/// Errors: [`Error::Unsupported`] when the plan is for another ring width or
/// inner dimension; [`Error::ShapeMismatch`] when a slice length does not
/// fit `dims`; [`Error::Gpu`] (op "limb emulation") when an accumulator
/// leaves its exact range, i.e. the plan is wrong.
pub fn gemm<R: Ring>(plan: &LimbPlan, a: &[R], b: &[R], dims: GemmDims) -> Result<Vec<R>> {
    let GemmDims {
        batch,
        m,
        k,
        n,
        shared_a,
    } = dims;
    if plan.ring_bits() != R::BITS || plan.k() != k {
        return Err(Error::Unsupported(format!(
            "limb plan for Z_2^{} with K = {} used for Z_2^{} with K = {k}",
            plan.ring_bits(),
            plan.k(),
            R::BITS
        )));
    }
    let a_batches = if shared_a { 1 } else { batch };
    if a.len() != a_batches * m * k || b.len() != batch * k * n {
        return Err(Error::shape(
            "limb gemm",
            format!(
                "A has {} elements, B {}; dims {dims:?} need {} and {}",
                a.len(),
                b.len(),
                a_batches * m * k,
                batch * k * n
            ),
        ));
    }
    let mut out = vec![R::ZERO; batch * m * n];
    match plan.path() {
        LimbPath::F64 => run::<R, F64Acc>(plan, a, b, dims, &mut out)?,
        LimbPath::Int8 => run::<R, I32Acc>(plan, a, b, dims, &mut out)?,
    }
    Ok(out)
}

/// [`gemm`] on tensors with the shapes of [`crate::backend::Backend::matmul`]:
/// `[m,k] x [k,n]` or `[b,m,k] x [b,k,n]`, planned with `path`, the path's
/// default encoding, and `accumulation`.
///
/// Errors: as [`gemm`], and [`Error::ShapeMismatch`] for other shapes.
pub fn matmul<R: Ring>(
    a: &RingTensor<R>,
    b: &RingTensor<R>,
    path: LimbPath,
    accumulation: Accumulation,
) -> Result<RingTensor<R>> {
    let shape = matmul_shape(a.shape(), b.shape())?;
    let (batch, m, k, n) = match (a.dims(), b.dims()) {
        ([m, k], [_, n]) => (1, *m, *k, *n),
        ([bt, m, k], [_, _, n]) => (*bt, *m, *k, *n),
        _ => return Err(Error::shape("limb matmul", "rank 2 or 3 only")),
    };
    let plan = LimbPlan::with_options(R::BITS, path, path.default_encoding(), accumulation, k)?;
    let dims = GemmDims {
        batch,
        m,
        k,
        n,
        shared_a: false,
    };
    Ok(RingTensor::new(
        shape,
        gemm(&plan, a.data(), b.data(), dims)?,
    )?)
}

/// The device arithmetic of one path: digit type, and a chunk's dot product.
trait Accumulator {
    type Digit: Copy + Default;
    fn digit(d: i64) -> Self::Digit;
    /// The device-precision sum of `a[t] b[t]`, as an integer (for i32,
    /// sign-extended); `Err` with the exact sum when they differ.
    fn dot(a: &[Self::Digit], b: &[Self::Digit], wrap: bool) -> std::result::Result<i64, i64>;
}

struct F64Acc;

impl Accumulator for F64Acc {
    type Digit = f64;
    fn digit(d: i64) -> f64 {
        d as f64
    }
    fn dot(a: &[f64], b: &[f64], _wrap: bool) -> std::result::Result<i64, i64> {
        let (mut acc, mut exact) = (0f64, 0i64);
        for (&x, &y) in a.iter().zip(b) {
            acc += x * y;
            exact = exact.wrapping_add(x as i64 * y as i64);
        }
        // |acc| may exceed i64 only for absurd plans; `as` saturates then,
        // which still differs from `exact`.
        if acc as i64 == exact && acc.fract() == 0.0 {
            Ok(exact)
        } else {
            Err(exact)
        }
    }
}

struct I32Acc;

impl Accumulator for I32Acc {
    type Digit = i8;
    fn digit(d: i64) -> i8 {
        d as i8
    }
    fn dot(a: &[i8], b: &[i8], wrap: bool) -> std::result::Result<i64, i64> {
        let (mut acc, mut exact) = (0i32, 0i64);
        for (&x, &y) in a.iter().zip(b) {
            let p = x as i32 * y as i32;
            acc = acc.wrapping_add(p);
            exact += p as i64;
        }
        if wrap || acc as i64 == exact {
            Ok(acc as i64)
        } else {
            Err(exact)
        }
    }
}

/// Splits `rows` rows of `src` (element (r, p) at `r * rs + p * ps`) into
/// `[row][limb slot][k]` digits; slot = limb, or L-1-limb when `reverse`.
fn split_rows<R: Ring, D: Copy + Default>(
    plan: &LimbPlan,
    src: &[R],
    (rows, rs, ps): (usize, usize, usize),
    reverse: bool,
    digit: fn(i64) -> D,
) -> Vec<D> {
    let (l, k, w) = (plan.limbs(), plan.k(), plan.limb_bits());
    let enc: LimbEncoding = plan.encoding();
    let mut out = vec![D::default(); rows * l * k];
    let mut d = [0i64; 8];
    for r in 0..rows {
        for p in 0..k {
            split(src[r * rs + p * ps].to_u64(), R::BITS, w, enc, &mut d);
            for (limb, &x) in d[..l].iter().enumerate() {
                let slot = if reverse { l - 1 - limb } else { limb };
                out[(r * l + slot) * k + p] = digit(x);
            }
        }
    }
    out
}

fn run<R: Ring, A: Accumulator>(
    plan: &LimbPlan,
    a: &[R],
    b: &[R],
    dims: GemmDims,
    out: &mut [R],
) -> Result<()> {
    let GemmDims {
        batch,
        m,
        k,
        n,
        shared_a,
    } = dims;
    let (l, wrap) = (plan.limbs(), plan.accumulation() == Accumulation::Wrapping);
    let row = l * k;
    let mut a_split = Vec::new();
    for bt in 0..batch {
        if bt == 0 || !shared_a {
            let a0 = if shared_a { 0 } else { bt * m * k };
            a_split = split_rows(plan, &a[a0..a0 + m * k], (m, k, 1), false, A::digit);
        }
        // B [k][n] read by column: element (c, p) at c + p n.
        let b_split = split_rows(
            plan,
            &b[bt * k * n..(bt + 1) * k * n],
            (n, 1, n),
            true,
            A::digit,
        );
        let c_out = &mut out[bt * m * n..(bt + 1) * m * n];
        for d in plan.diagonals() {
            // Column c's stacked [B_s; ..; B_0] starts at slot L-1-s.
            let b_off = (l - 1 - d.index()) * k;
            for t in d.chunks() {
                for r in 0..m {
                    let ar = &a_split[r * row + t.start..r * row + t.end];
                    for c in 0..n {
                        let bc = &b_split[c * row + b_off + t.start..c * row + b_off + t.end];
                        let v = A::dot(ar, bc, wrap).map_err(|exact| Error::Gpu {
                            op: "limb emulation".into(),
                            detail: format!(
                                "{} accumulator of diagonal {} chunk {t:?} is inexact \
                                 (exact sum {exact}): the plan exceeds its bound",
                                plan.path().name(),
                                d.index()
                            ),
                        })?;
                        let o = &mut c_out[r * n + c];
                        *o = o.wrapping_add(R::from_i64(v).shl(d.shift()));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, CpuBackend};
    use crate::prg::{Prg, Seed};
    use proptest::prelude::*;

    const PATHS: [LimbPath; 2] = [LimbPath::F64, LimbPath::Int8];
    const MODES: [Accumulation; 2] = [Accumulation::Exact, Accumulation::Wrapping];

    fn check<R: Ring>(a: &RingTensor<R>, b: &RingTensor<R>) {
        let want = CpuBackend::default().matmul(a, b).unwrap();
        for path in PATHS {
            for acc in MODES {
                let got = matmul(a, b, path, acc).unwrap();
                assert_eq!(
                    got,
                    want,
                    "{path:?} {acc:?} Z_2^{} {} x {}",
                    R::BITS,
                    a.shape(),
                    b.shape()
                );
            }
        }
    }

    fn random<R: Ring>(seed: u8, a: &[usize], b: &[usize]) -> (RingTensor<R>, RingTensor<R>) {
        let mut prg = Prg::new(&Seed([seed; 16]), R::BITS as u64);
        (prg.tensor(a.to_vec()), prg.tensor(b.to_vec()))
    }

    fn filled<R: Ring>(v: u64, dims: &[usize]) -> RingTensor<R> {
        let n = dims.iter().product();
        RingTensor::new(dims.to_vec(), vec![R::from_u64(v); n]).unwrap()
    }

    #[test]
    fn small_and_odd_shapes_match_the_cpu() {
        for (i, (m, k, n)) in [
            (1, 1, 1),
            (1, 0, 1),
            (0, 3, 2),
            (3, 17, 5),
            (16, 16, 16),
            (17, 65, 15),
            (5, 64, 63),
        ]
        .into_iter()
        .enumerate()
        {
            let (a, b) = random::<u64>(i as u8, &[m, k], &[k, n]);
            check(&a, &b);
            let (a, b) = random::<u32>(i as u8, &[m, k], &[k, n]);
            check(&a, &b);
            let (a, b) = random::<u64>(i as u8, &[3, m, k], &[3, k, n]);
            check(&a, &b);
            let (a, b) = random::<u32>(i as u8, &[2, m, k], &[2, k, n]);
            check(&a, &b);
        }
    }

    #[test]
    fn shared_a_matches_per_batch_products() {
        // The convolution form: one weight matrix, a batch of column blocks.
        let (a, b) = random::<u64>(9, &[4, 21], &[3, 21, 10]);
        let cpu = CpuBackend::default();
        let plan = LimbPlan::new(64, LimbPath::Int8, 21).unwrap();
        let dims = GemmDims {
            batch: 3,
            m: 4,
            k: 21,
            n: 10,
            shared_a: true,
        };
        let got = gemm(&plan, a.data(), b.data(), dims).unwrap();
        for bt in 0..3 {
            let bb =
                RingTensor::new(vec![21, 10], b.data()[bt * 210..(bt + 1) * 210].to_vec()).unwrap();
            let want = cpu.matmul(&a, &bb).unwrap();
            assert_eq!(&got[bt * 40..(bt + 1) * 40], want.data(), "batch {bt}");
        }
    }

    #[test]
    fn adversarial_limbs_match_the_cpu() {
        // All-ones (unsigned digits at 2^w - 1), 0x80.. (balanced digits
        // -128/-127), 0x7f..80 (every balanced byte -128), and the top bit.
        let pats = [
            u64::MAX,
            0x8080_8080_8080_8080,
            0x7f7f_7f7f_7f7f_7f80,
            0x8000_8000_8000_8000,
            0x8000_0000_0000_0000,
        ];
        for &x in &pats {
            for &y in &pats {
                for k in [1, 63, 64, 1000] {
                    check(&filled::<u64>(x, &[2, k]), &filled::<u64>(y, &[k, 3]));
                    check(&filled::<u32>(x, &[2, k]), &filled::<u32>(y, &[k, 3]));
                }
            }
        }
    }

    #[test]
    fn inner_dimension_above_2_pow_17_with_extreme_limbs() {
        // Every int8 product is +2^14: a single unchunked accumulator of
        // 2^17 + 5 terms would overflow i32; f64 chunking is not exercised.
        let k = (1 << 17) + 5;
        let a = filled::<u64>(0x7f7f_7f7f_7f7f_7f80, &[1, k]);
        let b = filled::<u64>(0x7f7f_7f7f_7f7f_7f80, &[k, 2]);
        check(&a, &b);
        let (a, b) = random::<u32>(3, &[2, k], &[k, 3]);
        check(&a, &b);
    }

    #[test]
    fn inner_dimension_above_2_pow_21() {
        // Unsigned 16-bit digits all 0xffff: one f64 accumulator over K
        // terms would round; the plan cuts K into two chunks.
        let k = (1 << 21) + 77;
        let a = filled::<u64>(u64::MAX, &[1, k]);
        let b = filled::<u64>(u64::MAX, &[k, 2]);
        check(&a, &b);
        check(
            &filled::<u32>(u64::MAX, &[1, k]),
            &filled::<u32>(0x8000_8000, &[k, 2]),
        );
        let (a, b) = random::<u64>(4, &[2, k], &[k, 1]);
        let want = CpuBackend::default().matmul(&a, &b).unwrap();
        assert_eq!(
            matmul(&a, &b, LimbPath::F64, Accumulation::Exact).unwrap(),
            want
        );
    }

    #[test]
    fn bounds_are_tight() {
        // f64: one aligned block past the bound, with every product at
        // (2^16 - 1)^2 (odd), the running sum passes 2^53 and rounds.
        let p = LimbPlan::new(64, LimbPath::F64, 0).unwrap();
        let over = p.max_terms() + 64;
        let a = vec![u64::MAX; over];
        let b = vec![u64::MAX; over];
        let dims = GemmDims {
            batch: 1,
            m: 1,
            k: over,
            n: 1,
            shared_a: false,
        };
        let ok = LimbPlan::new(64, LimbPath::F64, over).unwrap();
        assert_eq!(ok.diagonals()[0].chunks().count(), 2);
        gemm(&ok, &a, &b, dims).unwrap();
        let bad = ok.clone().with_chunk(over);
        assert!(gemm(&bad, &a, &b, dims).is_err(), "f64 chunk past 2^53");
        // int8: every product +2^14; 2^17 terms reach 2^31 and overflow i32.
        let over = 1 << 17;
        let a = vec![0x7f7f_7f7f_7f7f_7f80u64; over];
        let dims = GemmDims { k: over, ..dims };
        let ok = LimbPlan::new(64, LimbPath::Int8, over).unwrap();
        gemm(&ok, &a, &a, dims).unwrap();
        let bad = ok.clone().with_chunk(over);
        assert!(gemm(&bad, &a, &a, dims).is_err(), "i32 chunk of 2^17 terms");
    }

    #[test]
    fn balanced_f64_limbs_match_the_cpu() {
        // The f64 path with balanced 16-bit digits (a plan option the device
        // does not use yet): random and extreme operands, batched.
        let cpu = CpuBackend::default();
        for (i, (batch, m, k, n)) in [(1, 1, 1, 1), (2, 5, 77, 9), (1, 3, 1000, 2)]
            .into_iter()
            .enumerate()
        {
            let (mut a, b) = random::<u64>(i as u8, &[batch, m, k], &[batch, k, n]);
            a.data_mut()[0] = 0x8000_8000_8000_8000;
            a.data_mut()[batch * m * k - 1] = u64::MAX;
            let plan = LimbPlan::with_options(
                64,
                LimbPath::F64,
                LimbEncoding::Balanced,
                Accumulation::Exact,
                k,
            )
            .unwrap();
            let dims = GemmDims {
                batch,
                m,
                k,
                n,
                shared_a: false,
            };
            let got = gemm(&plan, a.data(), b.data(), dims).unwrap();
            assert_eq!(
                got,
                cpu.matmul(&a, &b).unwrap().data(),
                "{batch}x{m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn mismatched_plans_and_slices_are_errors() {
        let plan = LimbPlan::new(64, LimbPath::Int8, 4).unwrap();
        let dims = GemmDims {
            batch: 1,
            m: 2,
            k: 4,
            n: 2,
            shared_a: false,
        };
        assert!(gemm::<u32>(&plan, &[0; 8], &[0; 8], dims).is_err());
        assert!(gemm::<u64>(&plan, &[0; 7], &[0; 8], dims).is_err());
        assert!(gemm::<u64>(&plan, &[0; 8], &[0; 8], GemmDims { k: 5, ..dims }).is_err());
        assert!(gemm::<u64>(&plan, &[0; 8], &[0; 8], dims).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_match_the_cpu(
            batch in 1usize..3, m in 1usize..20, k in 1usize..140, n in 1usize..20,
            seed in any::<u8>(),
        ) {
            let (a, b) = random::<u64>(seed, &[batch, m, k], &[batch, k, n]);
            check(&a, &b);
            let (a, b) = random::<u32>(seed, &[batch, m, k], &[batch, k, n]);
            check(&a, &b);
        }
    }
}
