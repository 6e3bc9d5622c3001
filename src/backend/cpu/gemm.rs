//! Matrix multiplication over the rings Z_2^32 and Z_2^64 on the CPU.
//!
//! No BLAS handles wrapping integer arithmetic, so this module carries its own
//! GEMM, organised after GotoBLAS/BLIS-style packing and register tiling
//! (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
//! ACM TOMS 34(3), 2008):
//!
//! * k is cut into blocks of KC ([`PACK_KC`]), the columns of B into blocks of NC and
//!   the rows of A into blocks of MC; each KC x NC block of B is packed into
//!   column micro-panels NR wide and each MC x KC block of A into row
//!   micro-panels MR tall, zero-padded at the edges;
//! * a register-tiled micro-kernel multiplies one MR x KC micro-panel of A by
//!   one KC x NR micro-panel of B into an MR x NR tile held in registers;
//! * with [`Parallelism::Rayon`] the output is cut into a grid of tiles that
//!   rayon's workers compute independently, each packing into thread-local
//!   buffers.
//!
//! Kernels, chosen at run time:
//!
//! * x86-64 with AMX-INT8 (Sapphire Rapids and later), when Linux grants the
//!   tile state: the limb kernel of the `amx` module, after CryptGPU (Tan et
//!   al., S&P 2021): 8-bit limbs, one u8 x u8 -> u32 `tdpbuud` GEMM per limb
//!   diagonal (36 limb products for u64, 10 for u32), recombined mod 2^64 or
//!   2^32. Used for m, n >= 16, k >= 64 and at least 64^3 multiply-adds.
//!   Measured on Sapphire Rapids, one core, 1024^3: about 30 ms (36 GOPS) for
//!   u64 and 10 ms (100 GOPS) for u32, against 105 ms and 35 ms for IFMA.
//! * x86-64 with AVX-512F and AVX-512 IFMA (Ice Lake, Sapphire Rapids, Zen 4
//!   and later): packed register-tiled micro-kernels built on
//!   `vpmadd52luq`/`vpmadd52huq`, which multiply-add 52-bit lanes in one
//!   instruction, two per cycle on Sapphire Rapids. A 64-bit product mod 2^64
//!   takes three of them per 8 lanes (see the `x86` module), where `vpmullq` +
//!   `vpaddq` take about twice as long; a 32-bit product takes one. Measured
//!   on Sapphire Rapids, one core, 256^3: 12 GOPS (u64) and 33 GOPS (u32),
//!   against 6.3 GOPS for a hand-written `vpmullq` 8 x 16 kernel. These
//!   kernels use `core::arch` intrinsics because LLVM never emits IFMA itself.
//! * Everywhere else (and for small or thin shapes): a cache-blocked i-k-j
//!   loop (C row segment in L1, [`KC`] x 512 block of B in L2), plain Rust that
//!   LLVM vectorizes along the rows, compiled for several instruction sets and
//!   dispatched at run time with [`multiversion`]. Register-tiled kernels
//!   written as plain loops over fixed-size arrays were tried and measured
//!   at 2 GOPS: LLVM vectorizes them along k with gathers or keeps the
//!   accumulators in memory, where the i-k-j loop reaches 6-7 (u64) and 11
//!   (u32) GOPS per core here.
//!
//! Products below 32^3 multiply-adds, or with fewer rows or columns than one
//! register tile, take the i-k-j loop without packing.
//!
//! Ring addition is associative and commutative, so every order of summation
//! gives the same result: the output is bit-identical to the naive triple loop.

// The packing machinery is only used by the x86-64 kernels.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::cell::RefCell;

use multiversion::multiversion;
use rayon::prelude::*;

use crate::ring::Ring;

/// Threading for CPU kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// One thread: the calling one.
    Single,
    /// Rayon's global thread pool (the calling thread joins in).
    Rayon,
}

/// Products with fewer multiply-adds than this take the unpacked i-k-j loop.
const SMALL_WORK: usize = 32 * 32 * 32;
/// Products with fewer multiply-adds than this stay on one thread even with
/// [`Parallelism::Rayon`]: spreading them costs more than it gains.
const PAR_MIN_WORK: usize = 64 * 64 * 64;
/// Depth of a k block of the i-k-j loop, in elements.
const KC: usize = 256;
/// Depth of a packed block for the register-tiled kernels: the B micro-panel
/// (PACK_KC x NR, two words per element for u64) stays in the 48 KiB L1.
/// At most 4096 (the 64-bit IFMA kernel relies on it).
const PACK_KC: usize = 128;
/// Bytes of a packed A block (MC x PACK_KC): a share of the L2 cache.
const A_BLOCK_BYTES: usize = 256 * 1024;
/// Bytes of a packed B block (PACK_KC x NC): half the L2 cache.
const B_BLOCK_BYTES: usize = 1024 * 1024;
/// With [`Parallelism::Rayon`], aim for this many output tiles per thread so
/// that uneven tiles still balance.
const TILES_PER_THREAD: usize = 8;
/// Smallest output tile (elements) handed to one rayon task.
const MIN_TILE_AREA: usize = 64 * 128;

/// C = A @ B over Z_2^k (wrapping), row-major, C overwritten.
///
/// `a` holds the m x k matrix A, `b` the k x n matrix B and `c` the m x n
/// result, all row-major with no padding: `a.len() == m * k`,
/// `b.len() == k * n`, `c.len() == m * n`. Every `c[i * n + j]` becomes
/// `sum_p a[i * k + p] * b[p * n + j]` computed modulo 2^[`Ring::BITS`],
/// bit-identical to the naive triple loop for every shape (with `k == 0`, C
/// is zeroed).
///
/// The caller checks the lengths. Debug builds assert them; release builds
/// leave `c` untouched when they do not match, rather than panic.
///
/// Algorithm: GotoBLAS/BLIS-style packing and register tiling (Goto & van de
/// Geijn, 2008), see the module documentation; `par` chooses between the
/// calling thread alone and rayon's global pool.
pub fn gemm<R: Ring>(
    m: usize,
    k: usize,
    n: usize,
    a: &[R],
    b: &[R],
    c: &mut [R],
    par: Parallelism,
) {
    gemm_with(m, k, n, a, b, c, par, KernelChoice::Best);
}

/// [`gemm`] without the AMX kernel: the AVX-512 IFMA or portable kernels
/// only. For benchmarks that compare the two on one machine.
#[doc(hidden)]
pub fn gemm_without_amx<R: Ring>(
    m: usize,
    k: usize,
    n: usize,
    a: &[R],
    b: &[R],
    c: &mut [R],
    par: Parallelism,
) {
    gemm_with(m, k, n, a, b, c, par, KernelChoice::NoAmx);
}

/// Whether [`gemm`] uses the AMX-INT8 kernel on this machine (for large
/// enough shapes). For benchmarks.
#[doc(hidden)]
pub fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::amx::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Which micro-kernel family [`gemm_with`] may use (tests force the portable
/// one to cover it on machines with IFMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelChoice {
    /// The fastest one this CPU supports.
    Best,
    /// The portable, auto-vectorized one.
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
    /// The fastest one apart from AMX.
    NoAmx,
    /// AMX-INT8 limb tiles whenever AMX is usable, for every shape (else as
    /// `Best`).
    #[cfg_attr(not(test), allow(dead_code))]
    Amx,
}

/// [`gemm`] with a choice of micro-kernel family.
#[allow(clippy::too_many_arguments)]
fn gemm_with<R: Ring>(
    m: usize,
    k: usize,
    n: usize,
    a: &[R],
    b: &[R],
    c: &mut [R],
    par: Parallelism,
    choice: KernelChoice,
) {
    let lengths_ok = m.checked_mul(k) == Some(a.len())
        && k.checked_mul(n) == Some(b.len())
        && m.checked_mul(n) == Some(c.len());
    debug_assert!(
        lengths_ok,
        "gemm: m={m} k={k} n={n} but a.len()={} b.len()={} c.len()={}",
        a.len(),
        b.len(),
        c.len()
    );
    if !lengths_ok || m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(R::ZERO);
        return;
    }
    let work = m.saturating_mul(n).saturating_mul(k);
    let par = if work < PAR_MIN_WORK || rayon::current_num_threads() < 2 {
        Parallelism::Single
    } else {
        par
    };
    let unpacked =
        |row0: usize, col0: usize, rows: &mut [&mut [R]]| ikj(k, n, a, row0, b, col0, rows);
    // Few rows: packing B (k x n) would cost more than the product itself,
    // which streams B once per KC block with the rows of C held in cache.
    if m <= THIN_M && choice != KernelChoice::Amx {
        return split(c, m, n, par, (1, 16), unpacked);
    }
    #[cfg(target_arch = "x86_64")]
    if (choice == KernelChoice::Amx || (choice == KernelChoice::Best && amx_suits(m, k, n)))
        && super::amx::available()
    {
        return super::amx::with_packed(m, k, n, a, b, par == Parallelism::Rayon, |packed| {
            let align = (super::amx::TILE, super::amx::TILE);
            split(c, m, n, par, align, |row0, col0, rows| {
                packed.tile(row0, col0, rows)
            });
        });
    }
    if work < SMALL_WORK {
        return split(c, m, n, par, (1, 1), unpacked);
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(choice, KernelChoice::Best | KernelChoice::NoAmx) && x86::has_ifma() {
        return if R::BITS == 64 {
            blocked::<R, x86::Ifma64>(m, k, n, a, b, c, par)
        } else {
            blocked::<R, x86::Ifma32>(m, k, n, a, b, c, par)
        };
    }
    let _ = choice;
    split(c, m, n, par, (1, 16), unpacked);
}

/// Whether the AMX limb kernel beats the AVX-512 ones on this shape: every
/// side at least one 16-wide tile and enough work to amortize packing 8 (or
/// 4) limb planes of both operands.
#[cfg(target_arch = "x86_64")]
fn amx_suits(m: usize, k: usize, n: usize) -> bool {
    m >= AMX_MIN_SIDE
        && n >= AMX_MIN_SIDE
        && k >= AMX_MIN_DEPTH
        && m.saturating_mul(n).saturating_mul(k) >= AMX_MIN_WORK
}

/// Smallest m and n taken by the AMX kernel when choosing the best one (one
/// 16 x 16 tile).
#[cfg(target_arch = "x86_64")]
const AMX_MIN_SIDE: usize = 16;
/// Smallest k taken by the AMX kernel when choosing the best one: it pads k
/// to a multiple of 64 (1024 x 16 x 1024 measured 2.3x slower than IFMA).
#[cfg(target_arch = "x86_64")]
const AMX_MIN_DEPTH: usize = 64;
/// Fewest multiply-adds taken by the AMX kernel when choosing the best one
/// (at 32^3 it is slower, at 48^3 even, at 64^3 1.3-1.6x faster than IFMA).
#[cfg(target_arch = "x86_64")]
const AMX_MIN_WORK: usize = 64 * 64 * 64;

/// Runs `run(row0, col0, rows)` over C: once over all of it with
/// [`Parallelism::Single`], else over a grid of tiles whose sides are
/// multiples of `align` (rows, columns), in parallel.
fn split<R: Ring>(
    c: &mut [R],
    m: usize,
    n: usize,
    par: Parallelism,
    align: (usize, usize),
    run: impl Fn(usize, usize, &mut [&mut [R]]) + Sync,
) {
    match par {
        Parallelism::Single => {
            let mut rows: Vec<&mut [R]> = c.chunks_exact_mut(n).collect();
            run(0, 0, &mut rows);
        }
        Parallelism::Rayon => {
            let (mb, nb) = tile_shape(m, n, rayon::current_num_threads(), align.0, align.1);
            tiles(c, n, mb, nb)
                .into_par_iter()
                .for_each(|(row0, col0, mut rows)| run(row0, col0, &mut rows));
        }
    }
}

/// A packed micro-kernel: how panels of A and B are packed and how a pair of
/// packed blocks is multiplied into C.
trait Kernel<R: Ring> {
    /// Rows of a register tile.
    const MR: usize;
    /// Columns of a register tile.
    const NR: usize;
    /// Packed words per element of A.
    const A_WORDS: usize;
    /// Packed words per element of B.
    const B_WORDS: usize;
    /// Element type of the packed buffers.
    type Word: bytemuck::Pod;

    /// Packs rows `r0..r0 + mc`, columns `p0..p0 + kc` of the row-major
    /// `a` (k columns) into `dst`: ceil(mc / MR) micro-panels, zero-padded.
    #[allow(clippy::too_many_arguments)]
    fn pack_a(
        dst: &mut [Self::Word],
        a: &[R],
        k: usize,
        r0: usize,
        mc: usize,
        p0: usize,
        kc: usize,
    );

    /// Packs rows `p0..p0 + kc`, columns `c0..c0 + nc` of the row-major `b`
    /// (n columns) into `dst`: ceil(nc / NR) micro-panels, zero-padded.
    #[allow(clippy::too_many_arguments)]
    fn pack_b(
        dst: &mut [Self::Word],
        b: &[R],
        n: usize,
        p0: usize,
        kc: usize,
        c0: usize,
        nc: usize,
    );

    /// Multiplies a packed block of A (`rows.len()` rows, depth kc) by a
    /// packed block of B (nc columns), adding into (or, if `overwrite`,
    /// storing to) columns `col0..col0 + nc` of `rows`.
    fn macro_kernel(
        kc: usize,
        pa: &[Self::Word],
        pb: &[Self::Word],
        rows: &mut [&mut [R]],
        col0: usize,
        nc: usize,
        overwrite: bool,
    );
}

/// One output tile: its first row and column in C and its rows (each a
/// slice of the tile's width).
type Tile<'c, R> = (usize, usize, Vec<&'c mut [R]>);

/// The product with micro-kernel `K`: each tile of C (see [`split`]) is
/// computed with packing, or with the i-k-j loop when C is thinner than one
/// register tile.
#[cfg(target_arch = "x86_64")]
fn blocked<R: Ring, K: Kernel<R>>(
    m: usize,
    k: usize,
    n: usize,
    a: &[R],
    b: &[R],
    c: &mut [R],
    par: Parallelism,
) {
    let thin = m < K::MR || n < K::NR;
    split(c, m, n, par, (K::MR, K::NR), |row0, col0, rows| {
        if thin {
            ikj(k, n, a, row0, b, col0, rows);
        } else {
            packed::<R, K>(k, n, a, row0, b, col0, rows);
        }
    });
}

/// Rows and columns of the output tiles for `threads` workers: a grid of
/// about [`TILES_PER_THREAD`] tiles per worker (fewer when that would make
/// tiles smaller than [`MIN_TILE_AREA`]), the count a multiple of `threads`
/// so that equal tiles balance, the grid shaped like C so that tiles are
/// roughly square; sides in whole register tiles (mr rows, nr columns).
fn tile_shape(m: usize, n: usize, threads: usize, mr: usize, nr: usize) -> (usize, usize) {
    let threads = threads.max(1);
    let count = (threads * TILES_PER_THREAD).min(m * n / MIN_TILE_AREA);
    let count = if count >= threads {
        count / threads * threads
    } else {
        count.max(1)
    };
    // Row blocks: the divisor of `count` closest to sqrt(count * m / n).
    let ideal = (count as f64 * m as f64 / n as f64).sqrt();
    let row_blocks = (1..=count)
        .filter(|d| count % d == 0)
        .min_by(|&x, &y| {
            (x as f64 - ideal)
                .abs()
                .total_cmp(&(y as f64 - ideal).abs())
        })
        .unwrap_or(1);
    let col_blocks = count / row_blocks;
    let mb = m.div_ceil(row_blocks).div_ceil(mr).max(1) * mr;
    let nb = n.div_ceil(col_blocks).div_ceil(nr).max(1) * nr;
    (mb, nb)
}

/// Cuts the m x n row-major `c` into tiles of mb rows and nb columns (smaller
/// at the bottom and right edges).
fn tiles<R: Ring>(c: &mut [R], n: usize, mb: usize, nb: usize) -> Vec<Tile<'_, R>> {
    let col_blocks = n.div_ceil(nb);
    let mut out = Vec::new();
    for (rb, band) in c.chunks_mut(mb * n).enumerate() {
        let height = band.len() / n;
        let mut cols: Vec<Vec<&mut [R]>> = (0..col_blocks)
            .map(|_| Vec::with_capacity(height))
            .collect();
        for row in band.chunks_exact_mut(n) {
            for (cb, piece) in row.chunks_mut(nb).enumerate() {
                cols[cb].push(piece);
            }
        }
        out.extend(
            cols.into_iter()
                .enumerate()
                .map(|(cb, rows)| (rb * mb, cb * nb, rows)),
        );
    }
    out
}

/// At most this many rows of A (and C), [`ikj`] runs without packing: the
/// embedding lookup (16 or 24 one-hot rows times a 30522 x 384 table)
/// measured 2x faster than the packed AMX kernel; at 64 rows AMX wins.
const THIN_M: usize = 32;

/// Columns of C updated together by [`ikj`]: the C row segment stays in L1
/// and the KC x IKJ_NC block of B in L2.
const IKJ_NC: usize = 512;

/// Unpacked, cache-blocked product: `rows[i][j] = sum_p A[row0 + i, p] *
/// B[p, col0 + j]`, with A m x k and B k x n row-major. For each block of
/// [`IKJ_NC`] columns and [`KC`] depths, every row of C accumulates four rows
/// of B at a time, scaled by elements of A; the loop along the row is the
/// vectorized one. Used for small and thin shapes, and as the portable path
/// where no register-tiled kernel exists.
#[multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn ikj<R: Ring>(
    k: usize,
    n: usize,
    a: &[R],
    row0: usize,
    b: &[R],
    col0: usize,
    rows: &mut [&mut [R]],
) {
    let width = rows.first().map_or(0, |r| r.len());
    for jc in (0..width).step_by(IKJ_NC) {
        let w = IKJ_NC.min(width - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let brow = |p: usize| &b[(pc + p) * n + col0 + jc..][..w];
            for (i, crow) in rows.iter_mut().enumerate() {
                let c = &mut crow[jc..jc + w];
                if pc == 0 {
                    c.fill(R::ZERO);
                }
                let arow = &a[(row0 + i) * k + pc..][..kc];
                let quads = arow.chunks_exact(4);
                let rest = quads.remainder();
                for (q, a4) in quads.enumerate() {
                    let p = 4 * q;
                    let (b0, b1, b2, b3) = (brow(p), brow(p + 1), brow(p + 2), brow(p + 3));
                    for (j, cij) in c.iter_mut().enumerate() {
                        let s = a4[0]
                            .wrapping_mul(b0[j])
                            .wrapping_add(a4[1].wrapping_mul(b1[j]));
                        let t = a4[2]
                            .wrapping_mul(b2[j])
                            .wrapping_add(a4[3].wrapping_mul(b3[j]));
                        *cij = cij.wrapping_add(s.wrapping_add(t));
                    }
                }
                for (r, &aip) in rest.iter().enumerate() {
                    let bp = brow(kc - rest.len() + r);
                    for (cij, &bpj) in c.iter_mut().zip(bp) {
                        *cij = cij.wrapping_add(aip.wrapping_mul(bpj));
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Per-thread packing buffers (A block, B block), kept between calls so
    /// that the hot path does not allocate; the `u64` storage is
    /// reinterpreted as the kernel's packed word type.
    static PACK: RefCell<(Vec<u64>, Vec<u64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with the packing buffers of this thread, grown to `a_len` and
/// `b_len` words of `W` (fresh buffers if they are already in use).
fn with_pack_buffers<W: bytemuck::Pod, T>(
    a_len: usize,
    b_len: usize,
    f: impl FnOnce(&mut [W], &mut [W]) -> T,
) -> T {
    PACK.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (pa, pb) = &mut *bufs;
            f(grow(pa, a_len), grow(pb, b_len))
        }
        Err(_) => f(grow(&mut Vec::new(), a_len), grow(&mut Vec::new(), b_len)),
    })
}

/// The first `len` words of `W` in `buf`, growing it as needed.
fn grow<W: bytemuck::Pod>(buf: &mut Vec<u64>, len: usize) -> &mut [W] {
    let words = (len * std::mem::size_of::<W>()).div_ceil(8);
    if buf.len() < words {
        buf.resize(words, 0);
    }
    &mut bytemuck::cast_slice_mut(&mut buf[..words])[..len]
}

/// Packed product of one output tile: `rows[i][j] = sum_p A[row0 + i, p] *
/// B[p, col0 + j]`, with A m x k and B k x n row-major. Loops over blocks of
/// k, then of columns (packing B), then of rows (packing A), and hands each
/// pair of packed blocks to the macro-kernel.
fn packed<R: Ring, K: Kernel<R>>(
    k: usize,
    n: usize,
    a: &[R],
    row0: usize,
    b: &[R],
    col0: usize,
    rows: &mut [&mut [R]],
) {
    let (mt, nt) = (rows.len(), rows[0].len());
    let word = std::mem::size_of::<K::Word>();
    let mc_max = (A_BLOCK_BYTES / (PACK_KC * K::A_WORDS * word) / K::MR).max(1) * K::MR;
    let nc_max = (B_BLOCK_BYTES / (PACK_KC * K::B_WORDS * word) / K::NR).max(1) * K::NR;
    let mc_max = mc_max.min(mt.div_ceil(K::MR) * K::MR);
    let nc_max = nc_max.min(nt.div_ceil(K::NR) * K::NR);
    let kc_max = PACK_KC.min(k);
    let a_len = mc_max * kc_max * K::A_WORDS;
    let b_len = kc_max * nc_max * K::B_WORDS;
    with_pack_buffers::<K::Word, _>(a_len, b_len, |pa, pb| {
        for pc in (0..k).step_by(PACK_KC) {
            let kc = PACK_KC.min(k - pc);
            for jc in (0..nt).step_by(nc_max) {
                let nc = nc_max.min(nt - jc);
                let pb = &mut pb[..nc.div_ceil(K::NR) * K::NR * kc * K::B_WORDS];
                K::pack_b(pb, b, n, pc, kc, col0 + jc, nc);
                for ic in (0..mt).step_by(mc_max) {
                    let mc = mc_max.min(mt - ic);
                    let pa = &mut pa[..mc.div_ceil(K::MR) * K::MR * kc * K::A_WORDS];
                    K::pack_a(pa, a, k, row0 + ic, mc, pc, kc);
                    K::macro_kernel(kc, pa, pb, &mut rows[ic..ic + mc], jc, nc, pc == 0);
                }
            }
        }
    });
}

/// Writes an MR x NR register tile (`tile[i][j]`, words mapped to ring
/// elements by `conv`) to rows `i0..i0 + h`, columns `c0..c0 + w` of `rows`:
/// stored if `overwrite`, else added.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn write_tile<R: Ring, W: Copy, const MR: usize, const NR: usize>(
    tile: &[[W; NR]; MR],
    conv: impl Fn(W) -> R,
    rows: &mut [&mut [R]],
    i0: usize,
    h: usize,
    c0: usize,
    w: usize,
    overwrite: bool,
) {
    for (crow, trow) in rows[i0..i0 + h].iter_mut().zip(tile) {
        let crow = &mut crow[c0..c0 + w];
        if overwrite {
            for (cij, &t) in crow.iter_mut().zip(trow) {
                *cij = conv(t);
            }
        } else {
            for (cij, &t) in crow.iter_mut().zip(trow) {
                *cij = cij.wrapping_add(conv(t));
            }
        }
    }
}

/// AVX-512 IFMA micro-kernels (x86-64 only).
///
/// `vpmadd52luq acc, x, y` adds bits 0..52 of the 104-bit product of the low
/// 52 bits of x and y to the 64-bit lanes of acc; `vpmadd52huq` adds bits
/// 52..104. Both issue twice per cycle on Sapphire Rapids, where `vpmullq`
/// (three micro-ops) plus `vpaddq` take about four times as long per lane.
///
/// 64-bit ring product, with a = a0 + 2^52 a1 (a0 < 2^52, a1 < 2^12), b alike:
/// a b = a0 b0 + 2^52 (a0 b1 + a1 b0) mod 2^64, and the parenthesis only
/// matters mod 2^12, where a0 and b0 may be replaced by their low 12 bits a0'
/// and b0'. Packing x = a1 + 2^36 a0' and y = b1 + 2^36 b0' (both < 2^48)
/// gives x y = a1 b1 + 2^36 (a1 b0' + a0' b1) + 2^72 a0' b0'; its low 52 bits
/// hold a1 b1 < 2^24 below bit 36 and the wanted sum at bits 36..52. Summing
/// at most 4096 (>= [`PACK_KC`]) of them keeps the a1 b1 part below 2^36, so bits
/// 36..48 of the accumulator are the sum of the cross terms mod 2^12. Three
/// instructions per 8 lanes:
///
/// ```text
/// lo  += lo52(a * b)      hi += hi52(a * b)      mid += lo52(x * y)
/// sum  = lo + ((hi + (mid >> 36)) << 52)   (mod 2^64)
/// ```
///
/// 32-bit ring product: a b < 2^64 and its low 52 bits contain the low 32,
/// so one `vpmadd52luq` per 8 lanes accumulates it exactly mod 2^32.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{write_tile, Kernel, PACK_KC};
    use crate::ring::Ring;

    /// Whether the CPU has AVX-512F and AVX-512 IFMA.
    pub(super) fn has_ifma() -> bool {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma")
    }

    /// Shift placing the low 12 bits of a0 (b0) above a1 (b1) in the packed
    /// cross-term word.
    const MID_SHIFT: u32 = 36;
    const _: () = assert!(PACK_KC <= 1 << (MID_SHIFT - 24));

    /// The cross-term word x = a1 + 2^36 a0' of a 64-bit element.
    #[inline(always)]
    fn cross_word(v: u64) -> u64 {
        (v >> 52) | ((v & 0xfff) << MID_SHIFT)
    }

    /// Rows of the 64-bit tile.
    const MR64: usize = 4;
    /// Columns of the 64-bit tile (two vectors).
    const NR64: usize = 16;

    /// 64-bit ring GEMM with three IFMA instructions per 8 lanes; 4 x 16
    /// tiles (24 accumulator registers).
    pub(super) struct Ifma64;

    impl<R: Ring> Kernel<R> for Ifma64 {
        const MR: usize = MR64;
        const NR: usize = NR64;
        const A_WORDS: usize = 2;
        const B_WORDS: usize = 2;
        type Word = u64;

        /// Per panel and p: the MR elements, then their MR cross words.
        fn pack_a(dst: &mut [u64], a: &[R], k: usize, r0: usize, mc: usize, p0: usize, kc: usize) {
            for (ip, panel) in dst.chunks_exact_mut(2 * MR64 * kc).enumerate() {
                let i0 = ip * MR64;
                let h = MR64.min(mc - i0);
                if h < MR64 {
                    panel.fill(0);
                }
                for i in 0..h {
                    let src = &a[(r0 + i0 + i) * k + p0..][..kc];
                    for (p, &v) in src.iter().enumerate() {
                        let v = v.to_u64();
                        panel[p * 2 * MR64 + i] = v;
                        panel[p * 2 * MR64 + MR64 + i] = cross_word(v);
                    }
                }
            }
        }

        /// Per panel and p: the NR elements, then their NR cross words.
        fn pack_b(dst: &mut [u64], b: &[R], n: usize, p0: usize, kc: usize, c0: usize, nc: usize) {
            for (jp, panel) in dst.chunks_exact_mut(2 * NR64 * kc).enumerate() {
                let j0 = jp * NR64;
                let w = NR64.min(nc - j0);
                for (p, out) in panel.chunks_exact_mut(2 * NR64).enumerate() {
                    let src = &b[(p0 + p) * n + c0 + j0..][..w];
                    let (vals, cross) = out.split_at_mut(NR64);
                    for ((o, x), &v) in vals.iter_mut().zip(cross.iter_mut()).zip(src) {
                        let v = v.to_u64();
                        *o = v;
                        *x = cross_word(v);
                    }
                    vals[w..].fill(0);
                    cross[w..].fill(0);
                }
            }
        }

        fn macro_kernel(
            kc: usize,
            pa: &[u64],
            pb: &[u64],
            rows: &mut [&mut [R]],
            col0: usize,
            nc: usize,
            overwrite: bool,
        ) {
            let mc = rows.len();
            for (jp, bpanel) in pb.chunks_exact(2 * NR64 * kc).enumerate() {
                let j0 = jp * NR64;
                let w = NR64.min(nc - j0);
                for (ip, apanel) in pa.chunks_exact(2 * MR64 * kc).enumerate() {
                    let i0 = ip * MR64;
                    let mut tile = [[0u64; NR64]; MR64];
                    // SAFETY: Ifma64 is only selected when `has_ifma()`
                    // reported AVX-512F and IFMA; the panels hold exactly
                    // kc steps of 2 * MR64 and 2 * NR64 words.
                    unsafe { tile64(kc, apanel, bpanel, &mut tile) };
                    write_tile(
                        &tile,
                        R::from_u64,
                        rows,
                        i0,
                        MR64.min(mc - i0),
                        col0 + j0,
                        w,
                        overwrite,
                    );
                }
            }
        }
    }

    /// The 4 x 16 64-bit register tile: `tile = sum_p A[:, p] B[p, :]` mod
    /// 2^64 from packed panels (see [`Ifma64`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 IFMA.
    #[target_feature(enable = "avx512f,avx512ifma")]
    unsafe fn tile64(kc: usize, pa: &[u64], pb: &[u64], tile: &mut [[u64; NR64]; MR64]) {
        assert!(kc <= PACK_KC && pa.len() == kc * 2 * MR64 && pb.len() == kc * 2 * NR64);
        let z = _mm512_setzero_si512();
        let mut lo = [[z; 2]; MR64];
        let mut hi = [[z; 2]; MR64];
        let mut mid = [[z; 2]; MR64];
        for (av, bv) in pa.chunks_exact(2 * MR64).zip(pb.chunks_exact(2 * NR64)) {
            // SAFETY: bv has 2 * NR64 = 32 words: four unaligned 8-word loads.
            let (b0, b1, y0, y1) = unsafe {
                let p = bv.as_ptr() as *const __m512i;
                (
                    _mm512_loadu_si512(p),
                    _mm512_loadu_si512(p.add(1)),
                    _mm512_loadu_si512(p.add(2)),
                    _mm512_loadu_si512(p.add(3)),
                )
            };
            for i in 0..MR64 {
                let a = _mm512_set1_epi64(av[i] as i64);
                let x = _mm512_set1_epi64(av[MR64 + i] as i64);
                lo[i][0] = _mm512_madd52lo_epu64(lo[i][0], a, b0);
                lo[i][1] = _mm512_madd52lo_epu64(lo[i][1], a, b1);
                hi[i][0] = _mm512_madd52hi_epu64(hi[i][0], a, b0);
                hi[i][1] = _mm512_madd52hi_epu64(hi[i][1], a, b1);
                mid[i][0] = _mm512_madd52lo_epu64(mid[i][0], x, y0);
                mid[i][1] = _mm512_madd52lo_epu64(mid[i][1], x, y1);
            }
        }
        for i in 0..MR64 {
            for v in 0..2 {
                let top = _mm512_add_epi64(hi[i][v], _mm512_srli_epi64::<MID_SHIFT>(mid[i][v]));
                let sum = _mm512_add_epi64(lo[i][v], _mm512_slli_epi64::<52>(top));
                // SAFETY: tile[i][8 * v..8 * v + 8] is 8 words in bounds.
                unsafe { _mm512_storeu_si512(tile[i][8 * v..].as_mut_ptr() as *mut __m512i, sum) };
            }
        }
    }

    /// Rows of the 32-bit tile.
    const MR32: usize = 8;
    /// Columns of the 32-bit tile (three vectors of 64-bit lanes).
    const NR32: usize = 24;

    /// 32-bit ring GEMM with one IFMA instruction per 8 lanes (elements
    /// zero-extended to 64-bit lanes); 8 x 24 tiles (24 accumulators).
    pub(super) struct Ifma32;

    impl<R: Ring> Kernel<R> for Ifma32 {
        const MR: usize = MR32;
        const NR: usize = NR32;
        const A_WORDS: usize = 1;
        const B_WORDS: usize = 1;
        type Word = u64;

        /// Per panel and p: the MR elements, zero-extended.
        fn pack_a(dst: &mut [u64], a: &[R], k: usize, r0: usize, mc: usize, p0: usize, kc: usize) {
            for (ip, panel) in dst.chunks_exact_mut(MR32 * kc).enumerate() {
                let i0 = ip * MR32;
                let h = MR32.min(mc - i0);
                if h < MR32 {
                    panel.fill(0);
                }
                for i in 0..h {
                    let src = &a[(r0 + i0 + i) * k + p0..][..kc];
                    for (p, &v) in src.iter().enumerate() {
                        panel[p * MR32 + i] = v.to_u64();
                    }
                }
            }
        }

        /// Per panel and p: the NR elements, zero-extended.
        fn pack_b(dst: &mut [u64], b: &[R], n: usize, p0: usize, kc: usize, c0: usize, nc: usize) {
            for (jp, panel) in dst.chunks_exact_mut(NR32 * kc).enumerate() {
                let j0 = jp * NR32;
                let w = NR32.min(nc - j0);
                for (p, out) in panel.chunks_exact_mut(NR32).enumerate() {
                    let src = &b[(p0 + p) * n + c0 + j0..][..w];
                    for (o, &v) in out.iter_mut().zip(src) {
                        *o = v.to_u64();
                    }
                    out[w..].fill(0);
                }
            }
        }

        fn macro_kernel(
            kc: usize,
            pa: &[u64],
            pb: &[u64],
            rows: &mut [&mut [R]],
            col0: usize,
            nc: usize,
            overwrite: bool,
        ) {
            let mc = rows.len();
            for (jp, bpanel) in pb.chunks_exact(NR32 * kc).enumerate() {
                let j0 = jp * NR32;
                let w = NR32.min(nc - j0);
                for (ip, apanel) in pa.chunks_exact(MR32 * kc).enumerate() {
                    let i0 = ip * MR32;
                    let mut tile = [[0u64; NR32]; MR32];
                    // SAFETY: Ifma32 is only selected when `has_ifma()`
                    // reported AVX-512F and IFMA; the panels hold exactly
                    // kc steps of MR32 and NR32 words.
                    unsafe { tile32(kc, apanel, bpanel, &mut tile) };
                    write_tile(
                        &tile,
                        R::from_u64,
                        rows,
                        i0,
                        MR32.min(mc - i0),
                        col0 + j0,
                        w,
                        overwrite,
                    );
                }
            }
        }
    }

    /// The 8 x 24 32-bit register tile: `tile = sum_p A[:, p] B[p, :]` mod
    /// 2^52 (so mod 2^32) from zero-extended packed panels.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 IFMA.
    #[target_feature(enable = "avx512f,avx512ifma")]
    unsafe fn tile32(kc: usize, pa: &[u64], pb: &[u64], tile: &mut [[u64; NR32]; MR32]) {
        assert!(pa.len() == kc * MR32 && pb.len() == kc * NR32);
        let z = _mm512_setzero_si512();
        let mut acc = [[z; 3]; MR32];
        for (av, bv) in pa.chunks_exact(MR32).zip(pb.chunks_exact(NR32)) {
            // SAFETY: bv has NR32 = 24 words: three unaligned 8-word loads.
            let b = unsafe {
                let p = bv.as_ptr() as *const __m512i;
                [
                    _mm512_loadu_si512(p),
                    _mm512_loadu_si512(p.add(1)),
                    _mm512_loadu_si512(p.add(2)),
                ]
            };
            for i in 0..MR32 {
                let a = _mm512_set1_epi64(av[i] as i64);
                for v in 0..3 {
                    acc[i][v] = _mm512_madd52lo_epu64(acc[i][v], a, b[v]);
                }
            }
        }
        for i in 0..MR32 {
            for v in 0..3 {
                // SAFETY: tile[i][8 * v..8 * v + 8] is 8 words in bounds.
                unsafe {
                    _mm512_storeu_si512(tile[i][8 * v..].as_mut_ptr() as *mut __m512i, acc[i][v])
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// splitmix64: a small deterministic generator for test values.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn ring_vec<R: Ring>(&mut self, len: usize) -> Vec<R> {
            (0..len).map(|_| R::from_u64(self.next())).collect()
        }
    }

    /// The naive triple loop.
    fn naive<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R]) -> Vec<R> {
        let mut c = vec![R::ZERO; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = R::ZERO;
                for p in 0..k {
                    s = s.wrapping_add(a[i * k + p].wrapping_mul(b[p * n + j]));
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    const CHOICES: [KernelChoice; 4] = [
        KernelChoice::Best,
        KernelChoice::NoAmx,
        KernelChoice::Portable,
        KernelChoice::Amx,
    ];
    const PARS: [Parallelism; 2] = [Parallelism::Single, Parallelism::Rayon];

    /// Every kernel choice and parallelism mode against the naive loop, on
    /// the given operands; C starts out as garbage.
    fn check_with<R: Ring>(m: usize, k: usize, n: usize, a: &[R], b: &[R]) {
        let want = naive(m, k, n, a, b);
        for choice in CHOICES {
            for par in PARS {
                let mut c = vec![R::from_u64(0xdead_beef_dead_beef); m * n];
                gemm_with(m, k, n, a, b, &mut c, par, choice);
                assert!(
                    c == want,
                    "u{} {m}x{k}x{n} {choice:?} {par:?}: mismatch",
                    R::BITS
                );
            }
        }
        let mut c = vec![R::ZERO; m * n];
        gemm(m, k, n, a, b, &mut c, Parallelism::Rayon);
        assert!(c == want, "u{} {m}x{k}x{n} gemm: mismatch", R::BITS);
    }

    /// Random full-range operands of the given shape, both rings.
    fn check(m: usize, k: usize, n: usize, seed: u64) {
        let mut g = SplitMix(seed);
        let (a, b) = (g.ring_vec::<u64>(m * k), g.ring_vec::<u64>(k * n));
        check_with(m, k, n, &a, &b);
        let (a, b) = (g.ring_vec::<u32>(m * k), g.ring_vec::<u32>(k * n));
        check_with(m, k, n, &a, &b);
    }

    #[test]
    fn gemm_empty_and_unit_shapes() {
        for m in 0..3 {
            for k in 0..3 {
                for n in 0..3 {
                    check(m, k, n, (m * 9 + k * 3 + n) as u64);
                }
            }
        }
    }

    #[test]
    fn gemm_k_zero_clears_c() {
        let mut c = vec![7u64; 6];
        gemm::<u64>(2, 0, 3, &[], &[], &mut c, Parallelism::Rayon);
        assert_eq!(c, vec![0; 6]);
        let mut c = vec![7u32; 40_000];
        gemm::<u32>(200, 0, 200, &[], &[], &mut c, Parallelism::Single);
        assert!(c.iter().all(|&v| v == 0));
    }

    #[test]
    fn gemm_odd_shapes() {
        for (i, &(m, k, n)) in [
            (37, 53, 71),
            (71, 37, 53),
            (53, 71, 37),
            (32, 32, 32),
            (33, 31, 35),
            (64, 64, 64),
            (65, 129, 67),
            (8, 300, 24),
            (4, 200, 16),
            (7, 300, 200),
            (200, 300, 15),
            (3, 257, 23),
        ]
        .iter()
        .enumerate()
        {
            check(m, k, n, 100 + i as u64);
        }
    }

    #[test]
    fn gemm_tall_and_skinny() {
        for (i, &(m, k, n)) in [
            (1000, 3, 2),
            (2, 3, 1000),
            (1, 2000, 1),
            (1, 64, 3000),
            (3000, 64, 1),
            (600, 1, 600),
            (5, 4000, 5),
        ]
        .iter()
        .enumerate()
        {
            check(m, k, n, 200 + i as u64);
        }
    }

    /// Shapes crossing every blocking boundary: KC and PACK_KC in k,
    /// the A block (128 or 256 rows), the B block (512 or 1008 columns), the
    /// i-k-j column block (512) and partial register tiles.
    #[test]
    fn gemm_across_blocks() {
        check(270, 300, 1037, 300);
        check(70, 1000, 50, 301);
    }

    /// Largest elements everywhere: every partial sum wraps, and the IFMA
    /// cross-term trick sees its largest low part (k >= PACK_KC terms of
    /// (2^12 - 1)^2).
    #[test]
    fn gemm_all_ones_bits() {
        for &(m, k, n) in &[(40, 256, 40), (33, 600, 47)] {
            let a = vec![u64::MAX; m * k];
            let b = vec![u64::MAX; k * n];
            check_with(m, k, n, &a, &b);
            let a = vec![u32::MAX; m * k];
            let b = vec![u32::MAX; k * n];
            check_with(m, k, n, &a, &b);
        }
    }

    /// Whether [`KernelChoice::Amx`] really runs the AMX kernel here; says
    /// so on stderr when it does not (shown with `--nocapture`).
    fn amx_runs() -> bool {
        #[cfg(target_arch = "x86_64")]
        let runs = super::super::amx::available();
        #[cfg(not(target_arch = "x86_64"))]
        let runs = false;
        if !runs {
            eprintln!("AMX-INT8 not available: KernelChoice::Amx falls back to the other kernels");
        }
        runs
    }

    /// The k split of the AMX kernel: k beyond one k block (2048), and beyond
    /// 66051, where one u32 partial sum of byte products could pass 2^32,
    /// with random and all-ones operands (the largest limb sums).
    #[test]
    fn gemm_amx_k_split() {
        eprintln!("AMX kernel exercised: {}", amx_runs());
        check(17, 2100, 19, 500);
        check(16, 4096 + 64 + 3, 33, 501);
        let (m, k, n) = (17, 66_100, 18);
        check(m, k, n, 502);
        check_with(m, k, n, &vec![u64::MAX; m * k], &vec![u64::MAX; k * n]);
        check_with(m, k, n, &vec![u32::MAX; m * k], &vec![u32::MAX; k * n]);
    }

    /// AMX tiles and panels with uneven edges in every dimension, on one
    /// thread and in a pool of three.
    #[test]
    fn gemm_amx_edges() {
        amx_runs();
        for (i, &(m, k, n)) in [
            (15, 63, 17),
            (16, 64, 16),
            (31, 65, 33),
            (129, 130, 47),
            (47, 200, 129),
            (1, 1000, 300),
            (300, 1000, 1),
        ]
        .iter()
        .enumerate()
        {
            check(m, k, n, 600 + i as u64);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| check(161, 150, 177, 610));
    }

    /// Tiles in a pool of three threads (more tiles than workers, uneven
    /// edges), whatever the machine's core count.
    #[test]
    fn gemm_rayon_tiles_in_custom_pool() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            check(150, 90, 170, 400);
            check(300, 64, 40, 401);
        });
    }

    #[test]
    fn tiles_cover_c_exactly() {
        for &(m, n, threads) in &[(1, 1, 2), (100, 7, 3), (1024, 1024, 2), (37, 530, 16)] {
            let (mb, nb) = tile_shape(m, n, threads, 4, 16);
            assert!(mb % 4 == 0 && nb % 16 == 0 && mb > 0 && nb > 0);
            let mut c: Vec<u32> = (0..(m * n) as u32).collect();
            let mut seen = vec![0u8; m * n];
            for (row0, col0, rows) in tiles(&mut c, n, mb, nb) {
                for (i, row) in rows.iter().enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        assert_eq!(v as usize, (row0 + i) * n + col0 + j);
                        seen[v as usize] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1));
        }
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn gemm_bad_lengths_leave_c_untouched() {
        let mut c = vec![5u64; 4];
        gemm::<u64>(
            2,
            2,
            2,
            &[1, 2, 3],
            &[1, 2, 3, 4],
            &mut c,
            Parallelism::Single,
        );
        assert_eq!(c, vec![5; 4]);
        gemm::<u64>(
            usize::MAX,
            2,
            2,
            &[1, 2, 3, 4],
            &[1, 2, 3, 4],
            &mut c,
            Parallelism::Single,
        );
        assert_eq!(c, vec![5; 4]);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "gemm: m=2 k=2 n=2")]
    fn gemm_bad_lengths_assert_in_debug() {
        let mut c = vec![5u64; 4];
        gemm::<u64>(
            2,
            2,
            2,
            &[1, 2, 3],
            &[1, 2, 3, 4],
            &mut c,
            Parallelism::Single,
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn gemm_matches_naive_small(m in 0usize..24, k in 0usize..40, n in 0usize..24, seed in any::<u64>()) {
            check(m, k, n, seed);
        }

        #[test]
        fn gemm_matches_naive_packed(m in 8usize..80, k in 1usize..300, n in 24usize..90, seed in any::<u64>()) {
            check(m, k, n, seed);
        }
    }
}
