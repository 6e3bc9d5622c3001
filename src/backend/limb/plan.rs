//! [`LimbPlan`]: for ring width k, limb path and inner dimension K, which
//! limb GEMMs compute `A B mod 2^k` exactly, and where K is cut so that every
//! accumulator stays exact.
//!
//! With `A = sum_i 2^(w i) A_i` and `B = sum_j 2^(w j) B_j` (L = k/w limbs,
//! [`super::digits`]):
//!
//! `A B = sum_s 2^(w s) C_s mod 2^k`, `C_s = sum_(i+j=s) A_i B_j`, s < L.
//!
//! Diagonals s >= L have weight `2^(w s)`, a multiple of 2^k, and are never
//! computed: L(L+1)/2 limb products remain (10 for u64 with 16-bit limbs,
//! CryptGPU's 10 DGEMMs; 36 for u64 with 8-bit limbs; 3 and 10 for u32).
//!
//! **Stacking.** Each diagonal is ONE GEMM over a stacked inner dimension of
//! (s+1) K terms: `C_s = [A_0 | A_1 | .. | A_s] x [B_s; B_(s-1); ..; B_0]`.
//! With A's limbs laid out `[row][limb][K]` and B's `[column][L-1-limb][K]`
//! (both inner-dimension contiguous, cuBLAS's "TN" form), both stacked
//! operands are plain strided views of one split buffer each (A: the first
//! (s+1)K entries of a row; B: the last (s+1)K entries of a column), so a
//! diagonal costs one launch instead of s+1 and no copies. The stacked index
//! t pairs A limb `t / K` with B limb `s - t / K` at inner index `t % K`.
//!
//! **Exactness.** Let P be the largest |digit product| of the encoding
//! ([`LimbEncoding::max_abs_product`]) and E the accumulator's exact range:
//!
//! * f64 (DGEMM, f64 accumulation): every integer of magnitude <= 2^53 is a
//!   double, and a sum or product of doubles whose exact value is such an
//!   integer is computed exactly (with or without FMA). A chunk of N terms has
//!   every partial sum, in any order and for any split-K, bounded by `N P`,
//!   so `N P <= 2^53` makes the chunk exact. Unsigned 16-bit limbs:
//!   `P = (2^16 - 1)^2 < 2^32`, N <= 2^21 (+64) terms (CryptGPU's
//!   "inner dimension < 2^21"); balanced 16-bit: `P = 2^30`, N <= 2^23.
//! * int8 (`CUDA_R_8I` x `CUDA_R_8I` -> `CUDA_R_32I`, `CUBLAS_COMPUTE_32I`),
//!   balanced 8-bit limbs: `P = 2^14` (from (-128)(-128); negative products
//!   are at least -128 * 127 > -2^14). Any partial sum of N terms lies in
//!   `[-N 2^14, N 2^14]`, inside i32 when `N 2^14 <= 2^31 - 1`, i.e.
//!   N <= 2^17 - 1 = 131071 ([`Accumulation::Exact`]). Whether cuBLAS's int32
//!   accumulation wraps mod 2^32 or saturates is not documented, so by
//!   default EVERY diagonal is chunked. If it wraps ([`Accumulation::Wrapping`],
//!   opt-in), a chunk result is only known mod 2^32, and its contribution
//!   `2^(8s) C_s mod 2^k` depends only on `C_s mod 2^(k - 8s)`: diagonals with
//!   `8s + 32 >= k` (all of them for u32; s >= 4 for u64) need no chunking.
//!
//! Chunk lengths are rounded down to a multiple of [`CHUNK_ALIGN`] so that
//! every chunk of the stacked operands starts 64-element aligned on the
//! device (int8 tensor-core kernels want 16-byte aligned pointers). The
//! chunk results are recombined in the ring (`out += C_s,c << (w s)`, with
//! sign extension), where wrapping is harmless.

use std::ops::Range;

use super::digits::LimbEncoding;
use crate::error::{Error, Result};

/// Chunk lengths (in stacked inner-dimension terms) are multiples of this.
pub const CHUNK_ALIGN: usize = 64;

/// Which limb GEMM runs: f64 limbs through DGEMM or int8 limbs through
/// integer tensor cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimbPath {
    /// 16-bit limbs held in f64, one DGEMM per diagonal chunk (CryptGPU).
    F64,
    /// 8-bit signed limbs, int8 x int8 -> int32 GEMM (tensor cores; Piranha,
    /// Watson et al., USENIX Security 2022, uses integer GEMMs directly).
    Int8,
}

impl LimbPath {
    /// Limb width w in bits: 16 (f64) or 8 (int8).
    pub fn limb_bits(self) -> u32 {
        match self {
            LimbPath::F64 => 16,
            LimbPath::Int8 => 8,
        }
    }

    /// The encoding a plan uses unless told otherwise: unsigned for f64
    /// (as CryptGPU), balanced for int8 (cuBLAS's int8 is signed).
    pub fn default_encoding(self) -> LimbEncoding {
        match self {
            LimbPath::F64 => LimbEncoding::Unsigned,
            LimbPath::Int8 => LimbEncoding::Balanced,
        }
    }

    /// Largest magnitude every partial sum may reach and stay exact: 2^53
    /// (f64) or 2^31 - 1 (i32).
    pub fn exact_limit(self) -> u64 {
        match self {
            LimbPath::F64 => 1u64 << 53,
            LimbPath::Int8 => i32::MAX as u64,
        }
    }

    /// Short name ("f64", "int8").
    pub fn name(self) -> &'static str {
        match self {
            LimbPath::F64 => "f64",
            LimbPath::Int8 => "int8",
        }
    }
}

/// How the int32 accumulators of the int8 path may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accumulation {
    /// Every accumulator stays inside its exact range: no reliance on how
    /// overflow behaves. The default.
    Exact,
    /// int32 accumulation is assumed to wrap mod 2^32 (two's complement):
    /// diagonals whose weight makes a wrap vanish mod 2^k are not chunked.
    /// Meaningless for f64 (treated as [`Accumulation::Exact`]).
    Wrapping,
}

/// One diagonal s of the limb product: `C_s = sum_(i+j=s) A_i B_j`, stacked
/// into one GEMM of inner dimension (s+1) K, cut into chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagonal {
    index: usize,
    shift: u32,
    len: usize,
    chunk: usize,
}

impl Diagonal {
    /// s: the sum of limb indices i + j.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Weight exponent `w s` of this diagonal (< k).
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// Stacked inner dimension (s+1) K, in terms.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the stacked inner dimension is empty (K = 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most terms one accumulator sums.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// The chunks of the stacked inner dimension `0..len`, in order; each
    /// but the last is [`Diagonal::chunk`] long.
    pub fn chunks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.len)
            .step_by(self.chunk.max(1))
            .map(|t| t..(t + self.chunk).min(self.len))
    }

    /// For stacked index t < len and inner dimension k: (A limb, B limb,
    /// inner index).
    pub fn pair_at(&self, t: usize, k: usize) -> (usize, usize, usize) {
        let i = t / k;
        (i, self.index - i, t % k)
    }
}

/// The limb GEMMs of one ring GEMM shape: see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimbPlan {
    ring_bits: u32,
    path: LimbPath,
    encoding: LimbEncoding,
    accumulation: Accumulation,
    k: usize,
    max_terms: usize,
    diagonals: Vec<Diagonal>,
}

impl LimbPlan {
    /// The plan for ring width `ring_bits` (32 or 64), `path` and inner
    /// dimension `k`, with the path's default encoding and
    /// [`Accumulation::Exact`].
    ///
    /// Errors: [`Error::Unsupported`] for a ring width other than 32 or 64.
    pub fn new(ring_bits: u32, path: LimbPath, k: usize) -> Result<Self> {
        Self::with_options(
            ring_bits,
            path,
            path.default_encoding(),
            Accumulation::Exact,
            k,
        )
    }

    /// As [`LimbPlan::new`] with an explicit encoding and accumulation mode.
    ///
    /// Errors: [`Error::Unsupported`] for a ring width other than 32 or 64,
    /// or unsigned 8-bit limbs (they do not fit signed int8).
    pub fn with_options(
        ring_bits: u32,
        path: LimbPath,
        encoding: LimbEncoding,
        accumulation: Accumulation,
        k: usize,
    ) -> Result<Self> {
        if ring_bits != 32 && ring_bits != 64 {
            return Err(Error::Unsupported(format!(
                "limb GEMM over Z_2^{ring_bits}: only k = 32 and 64"
            )));
        }
        if path == LimbPath::Int8 && encoding == LimbEncoding::Unsigned {
            return Err(Error::Unsupported(
                "unsigned 8-bit limbs do not fit cuBLAS's signed int8: use balanced limbs".into(),
            ));
        }
        let w = path.limb_bits();
        let limbs = (ring_bits / w) as usize;
        let max_terms = max_exact_terms(path, encoding);
        let wrap_ok = accumulation == Accumulation::Wrapping && path == LimbPath::Int8;
        let diagonals = (0..limbs)
            .map(|s| {
                let shift = w * s as u32;
                let len = (s + 1) * k;
                // A wrap mod 2^32 of C_s is a multiple of 2^(32 + shift) in
                // the output, which vanishes mod 2^k when 32 + shift >= k.
                let chunk = if wrap_ok && shift + 32 >= ring_bits {
                    len.max(1)
                } else {
                    max_terms
                };
                Diagonal {
                    index: s,
                    shift,
                    len,
                    chunk,
                }
            })
            .collect();
        Ok(LimbPlan {
            ring_bits,
            path,
            encoding,
            accumulation,
            k,
            max_terms,
            diagonals,
        })
    }

    /// Ring width k in bits (32 or 64).
    pub fn ring_bits(&self) -> u32 {
        self.ring_bits
    }

    /// The limb GEMM kind.
    pub fn path(&self) -> LimbPath {
        self.path
    }

    /// The limb encoding.
    pub fn encoding(&self) -> LimbEncoding {
        self.encoding
    }

    /// The accumulation mode.
    pub fn accumulation(&self) -> Accumulation {
        self.accumulation
    }

    /// Limb width w in bits.
    pub fn limb_bits(&self) -> u32 {
        self.path.limb_bits()
    }

    /// Limbs per element L = k / w.
    pub fn limbs(&self) -> usize {
        (self.ring_bits / self.limb_bits()) as usize
    }

    /// Inner dimension K of the ring GEMM.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Most terms one exact accumulator sums (a multiple of
    /// [`CHUNK_ALIGN`]): `floor(E / P)` rounded down.
    pub fn max_terms(&self) -> usize {
        self.max_terms
    }

    /// The diagonals s = 0..L, each one stacked GEMM cut into chunks.
    pub fn diagonals(&self) -> &[Diagonal] {
        &self.diagonals
    }

    /// Number of limb GEMM launches (diagonal chunks).
    pub fn gemm_count(&self) -> usize {
        self.diagonals.iter().map(|d| d.chunks().count()).sum()
    }

    /// Limb multiply-adds per output element: sum over diagonals of (s+1) K
    /// (L(L+1)/2 K).
    pub fn terms_per_output(&self) -> usize {
        self.diagonals.iter().map(|d| d.len).sum()
    }

    /// This plan with every chunk `chunk` terms long, bounds ignored: only
    /// for tests that show the bounds are tight.
    #[cfg(test)]
    pub(crate) fn with_chunk(mut self, chunk: usize) -> Self {
        for d in &mut self.diagonals {
            d.chunk = chunk;
        }
        self
    }
}

/// `floor(E / P)` rounded down to a multiple of [`CHUNK_ALIGN`]: the most
/// terms an accumulator of `path` may sum with digits of `encoding`.
pub fn max_exact_terms(path: LimbPath, encoding: LimbEncoding) -> usize {
    let raw = path.exact_limit() / encoding.max_abs_product(path.limb_bits());
    (raw as usize / CHUNK_ALIGN) * CHUNK_ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_as_documented() {
        // int8 balanced: floor((2^31 - 1) / 2^14) = 2^17 - 1, aligned down.
        assert_eq!(
            max_exact_terms(LimbPath::Int8, LimbEncoding::Balanced),
            ((1 << 17) - 1) / 64 * 64
        );
        // f64 unsigned 16-bit: just above 2^21 (CryptGPU's bound).
        let f = max_exact_terms(LimbPath::F64, LimbEncoding::Unsigned);
        assert!(((1 << 21)..(1 << 21) + 128).contains(&f), "{f}");
        assert_eq!(
            max_exact_terms(LimbPath::F64, LimbEncoding::Balanced),
            1 << 23
        );
        for (path, enc) in [
            (LimbPath::Int8, LimbEncoding::Balanced),
            (LimbPath::F64, LimbEncoding::Unsigned),
            (LimbPath::F64, LimbEncoding::Balanced),
        ] {
            let n = max_exact_terms(path, enc) as u64;
            let p = enc.max_abs_product(path.limb_bits());
            assert!(n * p <= path.exact_limit());
            // One more aligned block would exceed the limit: the bound is tight.
            assert!((n + CHUNK_ALIGN as u64) * p > path.exact_limit());
        }
    }

    #[test]
    fn diagonals_cover_the_products_that_matter() {
        for (bits, path, count) in [
            (64, LimbPath::F64, 10),
            (64, LimbPath::Int8, 36),
            (32, LimbPath::F64, 3),
            (32, LimbPath::Int8, 10),
        ] {
            let p = LimbPlan::new(bits, path, 7).unwrap();
            assert_eq!(p.terms_per_output(), count * 7, "{bits} {path:?}");
            assert_eq!(p.gemm_count(), p.limbs());
            for d in p.diagonals() {
                assert!(d.shift() < bits);
                let mut seen = vec![];
                for t in 0..d.len() {
                    let (i, j, q) = d.pair_at(t, 7);
                    assert_eq!(i + j, d.index());
                    seen.push((i, q));
                }
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), d.len(), "every (limb, index) pair once");
            }
        }
    }

    #[test]
    fn chunks_tile_the_stacked_dimension() {
        let k = (1 << 17) + 5;
        for acc in [Accumulation::Exact, Accumulation::Wrapping] {
            let p =
                LimbPlan::with_options(64, LimbPath::Int8, LimbEncoding::Balanced, acc, k).unwrap();
            for d in p.diagonals() {
                let cs: Vec<_> = d.chunks().collect();
                assert_eq!(cs.first().map(|c| c.start), Some(0));
                assert_eq!(cs.last().map(|c| c.end), Some(d.len()));
                assert!(cs.windows(2).all(|w| w[0].end == w[1].start));
                assert!(cs.iter().all(|c| c.start % CHUNK_ALIGN == 0));
                let wrap_free = acc == Accumulation::Wrapping && d.shift() + 32 >= 64;
                if wrap_free {
                    assert_eq!(cs.len(), 1);
                } else {
                    assert!(cs.iter().all(|c| c.len() <= p.max_terms()));
                }
            }
        }
        let empty = LimbPlan::new(64, LimbPath::F64, 0).unwrap();
        assert_eq!(empty.gemm_count(), 0);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(LimbPlan::new(16, LimbPath::F64, 4).is_err());
        assert!(LimbPlan::with_options(
            64,
            LimbPath::Int8,
            LimbEncoding::Unsigned,
            Accumulation::Exact,
            4
        )
        .is_err());
    }
}
