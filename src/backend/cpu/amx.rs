//! Exact ring GEMM over Z_2^64 and Z_2^32 on Intel AMX-INT8 tiles (x86-64).
//!
//! Limb decomposition, as in CryptGPU (Tan et al., "CryptGPU: Fast
//! Privacy-Preserving Machine Learning on the GPU", IEEE S&P 2021), with 8-bit
//! limbs so that the unsigned byte dot product `tdpbuud` does the work (Intel
//! 64 and IA-32 Architectures Software Developer's Manual, vol. 1 ch. 18
//! "Intel Advanced Matrix Extensions", and vol. 2 `TDPBUUD`, `TILELOADD`,
//! `LDTILECFG`; Intel Architecture Instruction Set Extensions Programming
//! Reference, ch. 3):
//!
//! * each element is split into L unsigned bytes, `A = sum_i 2^(8i) A_i`
//!   (L = 8 for u64, 4 for u32), and likewise B;
//! * `A B mod 2^(8L) = sum_s 2^(8s) C_s` with `C_s = sum_(i+j=s) A_i B_j`
//!   over s < L only: the 36 (u64) or 10 (u32) limb products with
//!   i + j < L, every other one vanishes mod 2^(8L);
//! * `C_s` is one u8 x u8 -> u32 GEMM (the limb matrices concatenated along k)
//!   and only matters mod 2^(8(L - s)). Its 32-bit accumulation wraps mod
//!   2^32, which is enough whenever 8(L - s) <= 32 (every s for u32, s >= 4
//!   for u64). For u64 and s < 4 the sum must be exact: it is a sum of at most
//!   `4 KC` products below 255^2 = 65025, and [`KC`] keeps
//!   `4 KC 65025 < 2^32`; the u32 partials of successive k blocks are
//!   recombined into the 64-bit output separately (the k split).
//!
//! Tiles: palette 1, eight 16 x 64-byte registers. tmm0..tmm3 accumulate
//! four `C_s` tiles (16 x 16 u32) of one 16 x 16 output block, tmm4/tmm5 hold
//! A limb tiles (16 rows x 64 k bytes) and tmm6/tmm7 B limb tiles in the VNNI
//! layout `TDPBUUD` reads (16 rows of k/4, each holding 4 consecutive k bytes
//! of the 16 columns). For u64 a block takes two passes over k: s = 0..3
//! (10 limb products, 10 tile loads per 64 k) and s = 4..7 (26 products,
//! 21 loads); for u32 one pass (s = 0..3). The reuse is along the limb
//! dimension: every limb tile loaded feeds up to four `tdpbuud`.
//!
//! A and B are packed once per call (in parallel with rayon) into 64-byte
//! aligned 1 KiB tiles, `[16-row panel][64-deep k chunk][limb]` for A and
//! `[16-column panel][chunk][limb]` for B, zero-padded; unaligned tile loads
//! were measured 5x slower here.
//!
//! Linux grants AMX state per process on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); [`available`]
//! checks CPUID, XCR0 and the permission once and otherwise reports false, so
//! that callers fall back to the other kernels. The tile configuration is per
//! thread: every worker loads it before use and releases the tiles after
//! ([`Tiles`]). Rust's AMX intrinsics are unstable, so the instructions are
//! written with `asm!` and explicit tile registers.

#![cfg(target_arch = "x86_64")]

use std::arch::asm;
use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::ring::Ring;

/// Rows of an A tile, columns of a B tile and side of an output block.
pub(super) const TILE: usize = 16;
/// Depth of a k block, in elements: a multiple of [`CHUNK`] with
/// `4 KC 255^2 < 2^32`, so that the u64 limb sums with s < 4 are exact.
const KC: usize = 2048;
const _: () = assert!(KC.is_multiple_of(CHUNK) && 4 * (KC as u64) * 255 * 255 < 1 << 32);
/// Depth of one tile, in bytes (k elements).
const CHUNK: usize = 64;
/// Bytes of one tile.
const TILE_BYTES: usize = 1024;
/// Rows of A whose packed panels (MC x KC x L bytes) stay in L2 while the
/// 16-column panels of B pass over them.
const MC: usize = 128;

/// Whether AMX-INT8 can be used: the CPU has it, the OS enabled the tile state
/// in XCR0 and granted this process permission to use it (requested on the
/// first call, once per process).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // The packing routines use AVX-512 VBMI byte permutes (every CPU
        // with AMX has them).
        let ok = cpu_has_amx()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vbmi")
            && request_permission();
        if !ok {
            tracing::debug!("AMX-INT8 unavailable or not permitted: ring GEMM uses the AVX-512 or portable kernels");
        }
        ok
    })
}

/// CPUID leaf 7 (AMX-TILE: EDX bit 24, AMX-INT8: bit 25) and XCR0 (XTILECFG
/// bit 17, XTILEDATA bit 18).
fn cpu_has_amx() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU.
    let (max_leaf, leaf1, leaf7) = unsafe { (__cpuid(0).eax, __cpuid(1), __cpuid_count(7, 0)) };
    if max_leaf < 7 || leaf1.ecx & (1 << 27) == 0 {
        return false; // No leaf 7, or no OSXSAVE (XGETBV would fault).
    }
    if leaf7.edx & (1 << 24) == 0 || leaf7.edx & (1 << 25) == 0 {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: OSXSAVE is set, so XGETBV with ECX = 0 (XCR0) is valid; it
    // only writes EAX and EDX.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi,
             options(nomem, nostack, preserves_flags));
    }
    lo & (3 << 17) == 3 << 17
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, then checks with
/// `ARCH_GET_XCOMP_PERM` that the tile data state is permitted.
fn request_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_GET_XCOMP_PERM: u64 = 0x1022;
    const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
    const XFEATURE_XTILEDATA: u64 = 18;
    if !cfg!(target_os = "linux") {
        return false;
    }
    let ret: i64;
    // SAFETY: the arch_prctl system call with ARCH_REQ_XCOMP_PERM takes a
    // feature number and only changes this process's permitted XSAVE state;
    // `syscall` clobbers rcx and r11.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => ret,
             in("rdi") ARCH_REQ_XCOMP_PERM, in("rsi") XFEATURE_XTILEDATA,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    if ret != 0 {
        tracing::debug!("arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) failed: {ret}");
        return false;
    }
    let mut mask: u64 = 0;
    let ret: i64;
    // SAFETY: ARCH_GET_XCOMP_PERM writes one u64 through the pointer, which
    // points to `mask`.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => ret,
             in("rdi") ARCH_GET_XCOMP_PERM, in("rsi") &mut mask as *mut u64,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0 && mask & (1 << XFEATURE_XTILEDATA) != 0
}

/// The 64-byte tile configuration: palette 1, tiles 0..7 of 16 rows x 64
/// bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1; // palette_id
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64; // colsb[t], little-endian u16
        c[48 + t] = TILE as u8; // rows[t]
        t += 1;
    }
    TileConfig(c)
};

/// The tile configuration loaded in this thread; dropping it releases the
/// tiles (TILERELEASE), so that the thread's context switches stay cheap.
struct Tiles;

impl Tiles {
    /// # Safety
    /// [`available`] must have returned true.
    unsafe fn load() -> Tiles {
        // SAFETY: AMX is present and permitted (caller); CONFIG is a valid
        // 64-byte palette-1 configuration, 64-byte aligned.
        unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly)) };
        Tiles
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: a Tiles exists only after LDTILECFG succeeded in this
        // thread; TILERELEASE returns the tile state to its init state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// One 64-byte aligned cache line of packed bytes.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: Line is 64 bytes with no padding (repr(C), one [u8; 64] field, size
// equal to its alignment); every bit pattern is valid and zero is a value.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; Line is Copy and 'static.
unsafe impl bytemuck::Pod for Line {}

thread_local! {
    /// Packed A and B of the calling thread, kept between calls (up to
    /// [`KEEP_BYTES`]).
    static PACKED: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The first `bytes` bytes of `buf` (64-byte aligned), growing it as needed.
fn grow(buf: &mut Vec<Line>, bytes: usize) -> &mut [u8] {
    let lines = bytes.div_ceil(64);
    if buf.len() < lines {
        buf.resize(lines, Line([0; 64]));
    }
    &mut bytemuck::cast_slice_mut(&mut buf[..lines])[..bytes]
}

/// A and B of one product, packed into limb tiles.
pub(super) struct Packed<'p> {
    m: usize,
    n: usize,
    /// Limbs per element (8 or 4).
    limbs: usize,
    /// 64-deep k chunks: ceil(k / 64).
    chunks: usize,
    a: &'p [u8],
    b: &'p [u8],
}

/// Packs A (m x k) and B (k x n), with rayon if `parallel`, and runs `f` on
/// the result. [`available`] must have returned true before [`Packed::tile`]
/// is called.
pub(super) fn with_packed<R: Ring, T>(
    m: usize,
    k: usize,
    n: usize,
    a: &[R],
    b: &[R],
    parallel: bool,
    f: impl FnOnce(&Packed<'_>) -> T,
) -> T {
    let limbs = R::BYTES;
    let chunks = k.div_ceil(CHUNK);
    let panel = chunks * limbs * TILE_BYTES;
    let a_bytes = m.div_ceil(TILE) * panel;
    let b_bytes = n.div_ceil(TILE) * panel;
    let run = |pa: &mut [u8], pb: &mut [u8]| {
        let fill_a = |(ip, dst): (usize, &mut [u8])| pack_a(dst, a, m, k, ip * TILE, limbs);
        let fill_b = |(jp, dst): (usize, &mut [u8])| pack_b(dst, b, k, n, jp * TILE, limbs);
        if parallel {
            pa.par_chunks_exact_mut(panel).enumerate().for_each(fill_a);
            pb.par_chunks_exact_mut(panel).enumerate().for_each(fill_b);
        } else {
            pa.chunks_exact_mut(panel).enumerate().for_each(fill_a);
            pb.chunks_exact_mut(panel).enumerate().for_each(fill_b);
        }
        f(&Packed {
            m,
            n,
            limbs,
            chunks,
            a: pa,
            b: pb,
        })
    };
    if a_bytes + b_bytes > KEEP_BYTES {
        return run(
            grow(&mut Vec::new(), a_bytes),
            grow(&mut Vec::new(), b_bytes),
        );
    }
    PACKED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (va, vb) = &mut *bufs;
            run(grow(va, a_bytes), grow(vb, b_bytes))
        }
        Err(_) => run(
            grow(&mut Vec::new(), a_bytes),
            grow(&mut Vec::new(), b_bytes),
        ),
    })
}

/// Packed operands up to this size (together) stay allocated in the calling
/// thread between calls; larger ones are freed after the call.
const KEEP_BYTES: usize = 64 << 20;

/// Packs rows `r0..r0 + 16` of the row-major m x k `a` into one panel:
/// tile (c, l) holds byte l of `A[r0 + r][64 c + t]` at `64 r + t`, zero
/// outside A.
fn pack_a<R: Ring>(dst: &mut [u8], a: &[R], m: usize, k: usize, r0: usize, limbs: usize) {
    let group = limbs * TILE_BYTES;
    let w = R::BYTES;
    let mut pad = [0u8; CHUNK * 8];
    for r in 0..TILE {
        let row = r0 + r;
        let src: &[u8] = if row < m {
            bytemuck::cast_slice(&a[row * k..(row + 1) * k])
        } else {
            &[]
        };
        for (c, tiles) in dst.chunks_exact_mut(group).enumerate() {
            let lo = (c * CHUNK * w).min(src.len());
            let hi = ((c + 1) * CHUNK * w).min(src.len());
            let bytes: &[u8] = if hi - lo == CHUNK * w {
                &src[lo..hi]
            } else {
                pad[..hi - lo].copy_from_slice(&src[lo..hi]);
                pad[hi - lo..].fill(0);
                &pad[..CHUNK * w]
            };
            // SAFETY: `available()` checked AVX-512F/BW/VBMI (packing only
            // runs for the AMX kernel); `bytes` holds 64 elements of w bytes
            // and `tiles` `limbs` tiles of 1 KiB.
            unsafe {
                if w == 8 {
                    split_row::<8>(bytes, tiles, r * CHUNK)
                } else {
                    split_row::<4>(bytes, tiles, r * CHUNK)
                }
            };
        }
    }
}

/// Byte permutation taking 64 bytes of `64 / w` little-endian elements of w
/// bytes to limb-major order: output byte `l (64 / w) + e` is byte l of
/// element e.
const fn limb_major(w: usize) -> [u8; 64] {
    let v = 64 / w;
    let mut idx = [0u8; 64];
    let mut l = 0;
    while l < w {
        let mut e = 0;
        while e < v {
            idx[l * v + e] = (e * w + l) as u8;
            e += 1;
        }
        l += 1;
    }
    idx
}

/// Byte permutation taking 64 bytes holding four rows t of `16 / w` elements
/// (16 bytes per row) to the VNNI order of limb-major pieces: output byte
/// `l (64 / w) + 4 j + t` is byte l of element j of row t.
const fn limb_vnni(w: usize) -> [u8; 64] {
    let v = 64 / w;
    let per_row = v / 4;
    let mut idx = [0u8; 64];
    let mut l = 0;
    while l < w {
        let mut j = 0;
        while j < per_row {
            let mut t = 0;
            while t < 4 {
                idx[l * v + 4 * j + t] = ((t * per_row + j) * w + l) as u8;
                t += 1;
            }
            j += 1;
        }
        l += 1;
    }
    idx
}

/// Given W vectors whose piece l (of 64 / W bytes) belongs to limb l, stores
/// the concatenation of the pieces l of x[0], ..., x[W - 1] at
/// `tiles[l * 1024 + off..][..64]` for every limb l: an 8 x 8 transpose of
/// 64-bit pieces (W = 8) or a 4 x 4 transpose of 128-bit lanes (W = 4).
///
/// # Safety
/// The CPU must support AVX-512F; `tiles` must hold W tiles of 1 KiB and
/// `off + 64 <= 1024`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_store<const W: usize>(
    x: &[std::arch::x86_64::__m512i; W],
    tiles: &mut [u8],
    off: usize,
) {
    use std::arch::x86_64::*;
    assert!(tiles.len() == W * TILE_BYTES && off + 64 <= TILE_BYTES);
    let mut out = [_mm512_setzero_si512(); W];
    if W == 8 {
        // t[2p] lane i: pieces 2i of x[2p], x[2p + 1]; t[2p + 1]: pieces 2i + 1.
        let mut t = [_mm512_setzero_si512(); 8];
        for p in 0..4 {
            t[2 * p] = _mm512_unpacklo_epi64(x[2 * p], x[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_epi64(x[2 * p], x[2 * p + 1]);
        }
        // u[2h + e], for parity e and half h (x[4h..4h + 4]): lanes holding
        // pieces e + {0, 4} (even index) or e + {2, 6} (odd index).
        let mut u = [_mm512_setzero_si512(); 8];
        for h in 0..2 {
            for e in 0..2 {
                let (a, b) = (t[4 * h + e], t[4 * h + 2 + e]);
                u[4 * e + 2 * h] = _mm512_shuffle_i64x2::<0x88>(a, b);
                u[4 * e + 2 * h + 1] = _mm512_shuffle_i64x2::<0xdd>(a, b);
            }
        }
        // Piece l = e + 2 f + 4 g (parity e, pair f, half g).
        for e in 0..2 {
            for f in 0..2 {
                let (a, b) = (u[4 * e + f], u[4 * e + 2 + f]);
                out[e + 2 * f] = _mm512_shuffle_i64x2::<0x88>(a, b);
                out[e + 2 * f + 4] = _mm512_shuffle_i64x2::<0xdd>(a, b);
            }
        }
    } else {
        let v0 = _mm512_shuffle_i64x2::<0x44>(x[0], x[1]);
        let v1 = _mm512_shuffle_i64x2::<0xee>(x[0], x[1]);
        let v2 = _mm512_shuffle_i64x2::<0x44>(x[2], x[3]);
        let v3 = _mm512_shuffle_i64x2::<0xee>(x[2], x[3]);
        out[0] = _mm512_shuffle_i64x2::<0x88>(v0, v2);
        out[1] = _mm512_shuffle_i64x2::<0xdd>(v0, v2);
        out[2] = _mm512_shuffle_i64x2::<0x88>(v1, v3);
        out[3] = _mm512_shuffle_i64x2::<0xdd>(v1, v3);
    }
    for (l, o) in out.iter().enumerate() {
        // SAFETY: l < W and off + 64 <= 1024, so 64 bytes at
        // l * 1024 + off are inside `tiles`.
        unsafe {
            _mm512_storeu_si512(
                tiles.as_mut_ptr().add(l * TILE_BYTES + off) as *mut __m512i,
                *o,
            )
        };
    }
}

/// Splits the 64 elements of W bytes in `bytes` into limbs: byte l of element
/// e goes to `tiles[l * 1024 + off + e]`.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn split_row<const W: usize>(bytes: &[u8], tiles: &mut [u8], off: usize) {
    use std::arch::x86_64::*;
    assert!(bytes.len() == CHUNK * W);
    let idx = const { limb_major(W) };
    // SAFETY: idx is 64 bytes.
    let perm = unsafe { _mm512_loadu_si512(idx.as_ptr() as *const __m512i) };
    let x: [__m512i; W] = std::array::from_fn(|z| {
        // SAFETY: bytes holds 64 W bytes, so 64 at 64 z are in bounds.
        let v = unsafe { _mm512_loadu_si512(bytes.as_ptr().add(64 * z) as *const __m512i) };
        _mm512_permutexvar_epi8(perm, v)
    });
    // SAFETY: AVX-512F is enabled; the callee checks the bounds.
    unsafe { transpose_store::<W>(&x, tiles, off) };
}

/// Packs columns `c0..c0 + 16` of the row-major k x n `b` into one panel in
/// the VNNI layout: tile (c, l) holds byte l of `B[64 c + 4 q + t][c0 + j]` at
/// `64 q + 4 j + t`, zero outside B.
fn pack_b<R: Ring>(dst: &mut [u8], b: &[R], k: usize, n: usize, c0: usize, limbs: usize) {
    let group = limbs * TILE_BYTES;
    let w = R::BYTES;
    let cols = TILE.min(n - c0);
    let bytes: &[u8] = bytemuck::cast_slice(b);
    let mut pad = [[0u8; TILE * 8]; 4];
    for (c, tiles) in dst.chunks_exact_mut(group).enumerate() {
        for q in 0..CHUNK / 4 {
            let p0 = c * CHUNK + 4 * q;
            let rows: [&[u8]; 4] = if p0 + 4 <= k && cols == TILE {
                std::array::from_fn(|t| {
                    let at = ((p0 + t) * n + c0) * w;
                    &bytes[at..at + TILE * w]
                })
            } else {
                for (t, row) in pad.iter_mut().enumerate() {
                    row.fill(0);
                    if p0 + t < k {
                        let at = ((p0 + t) * n + c0) * w;
                        row[..cols * w].copy_from_slice(&bytes[at..at + cols * w]);
                    }
                }
                std::array::from_fn(|t| &pad[t][..TILE * w])
            };
            // SAFETY: `available()` checked AVX-512F/BW/VBMI; each row holds
            // 16 elements of w bytes and `tiles` `limbs` tiles of 1 KiB.
            unsafe {
                if w == 8 {
                    split_rows_vnni::<8>(rows, tiles, q * CHUNK)
                } else {
                    split_rows_vnni::<4>(rows, tiles, q * CHUNK)
                }
            };
        }
    }
}

/// Interleaves four rows of 16 elements of W bytes into VNNI limb rows: byte
/// l of element j of row t goes to `tiles[l * 1024 + off + 4 j + t]`.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn split_rows_vnni<const W: usize>(rows: [&[u8]; 4], tiles: &mut [u8], off: usize) {
    use std::arch::x86_64::*;
    assert!(rows.iter().all(|r| r.len() == TILE * W));
    let idx = const { limb_vnni(W) };
    // SAFETY: idx is 64 bytes.
    let perm = unsafe { _mm512_loadu_si512(idx.as_ptr() as *const __m512i) };
    // Vector z: bytes 16 z..16 z + 16 of each row (16 / W elements), whose
    // limb pieces are bytes 64 z / W.. of the output rows.
    let x: [__m512i; W] = std::array::from_fn(|z| {
        // SAFETY: each row has 16 W bytes, so 16 bytes at 16 z are in bounds.
        unsafe {
            let p = |t: usize| rows[t].as_ptr().add(16 * z) as *const __m128i;
            let v = _mm512_castsi128_si512(_mm_loadu_si128(p(0)));
            let v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(p(1)));
            let v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(p(2)));
            let v = _mm512_inserti32x4::<3>(v, _mm_loadu_si128(p(3)));
            _mm512_permutexvar_epi8(perm, v)
        }
    });
    // SAFETY: AVX-512F is enabled; the callee checks the bounds.
    unsafe { transpose_store::<W>(&x, tiles, off) };
}

/// Bytes of the next B panel prefetched into L2 per chunk of a pass.
const PREFETCH: usize = 512;

/// Four 16 x 16 u32 tiles, 64-byte aligned.
#[repr(C, align(64))]
struct Acc([u32; 4 * TILE * TILE]);

impl<'p> Packed<'p> {
    /// Computes the output tile `rows[i][j] = sum_p A[row0 + i, p] B[p, col0 +
    /// j]` (row0 and col0 multiples of [`TILE`]) from the packed operands.
    pub(super) fn tile<R: Ring>(&self, row0: usize, col0: usize, rows: &mut [&mut [R]]) {
        debug_assert!(
            row0.is_multiple_of(TILE) && col0.is_multiple_of(TILE) && R::BYTES == self.limbs
        );
        let (mt, nt) = (rows.len(), rows.first().map_or(0, |r| r.len()));
        if mt == 0 || nt == 0 || row0 + mt > self.m || col0 + nt > self.n {
            return;
        }
        let group = self.limbs * TILE_BYTES;
        let panel = self.chunks * group;
        let block_chunks = KC / CHUNK;
        let mut lo = Acc([0; 4 * TILE * TILE]);
        let mut hi = Acc([0; 4 * TILE * TILE]);
        // SAFETY: `Packed` is only built after `available()` (see
        // `with_packed`'s contract, upheld by the caller in gemm.rs).
        let _tiles = unsafe { Tiles::load() };
        for (kb, c0) in (0..self.chunks).step_by(block_chunks).enumerate() {
            let chunks = block_chunks.min(self.chunks - c0);
            for ic in (0..mt).step_by(MC) {
                let mc = MC.min(mt - ic);
                for jr in (0..nt).step_by(TILE) {
                    let w = TILE.min(nt - jr);
                    let boff = (col0 + jr) / TILE * panel + c0 * group;
                    let bp = &self.b[boff..boff + chunks * group];
                    // Prefetch the next panel of B into L2 while this one
                    // is in use (prefetches never fault, even past the end).
                    let mut pf = self.b.as_ptr().wrapping_add(boff + panel);
                    for ir in (ic..ic + mc).step_by(TILE) {
                        let h = TILE.min(ic + mc - ir);
                        let aoff = (row0 + ir) / TILE * panel + c0 * group;
                        let ap = &self.a[aoff..aoff + chunks * group];
                        // SAFETY: tiles configured above; ap and bp hold
                        // `chunks` groups of `limbs` 64-byte aligned 1 KiB
                        // tiles (panels start at multiples of 1 KiB in
                        // 64-byte aligned buffers); lo and hi are 4 KiB,
                        // 64-byte aligned.
                        unsafe {
                            pass_lo(ap.as_ptr(), bp.as_ptr(), chunks, group, &mut lo, pf);
                            pf = pf.wrapping_add(chunks * PREFETCH);
                            if self.limbs == 8 {
                                pass_hi(ap.as_ptr(), bp.as_ptr(), chunks, group, &mut hi, pf);
                                pf = pf.wrapping_add(chunks * PREFETCH);
                            }
                        }
                        let out = &mut rows[ir..ir + h];
                        if self.limbs == 8 {
                            combine(out, jr, w, kb == 0, |i| {
                                let lo_part = (lo.0[i] as u64)
                                    + ((lo.0[256 + i] as u64) << 8)
                                    + ((lo.0[512 + i] as u64) << 16)
                                    + ((lo.0[768 + i] as u64) << 24);
                                let hi_part = hi.0[i]
                                    .wrapping_add(hi.0[256 + i] << 8)
                                    .wrapping_add(hi.0[512 + i] << 16)
                                    .wrapping_add(hi.0[768 + i] << 24);
                                R::from_u64(lo_part.wrapping_add((hi_part as u64) << 32))
                            });
                        } else {
                            combine(out, jr, w, kb == 0, |i| {
                                let v = lo.0[i]
                                    .wrapping_add(lo.0[256 + i] << 8)
                                    .wrapping_add(lo.0[512 + i] << 16)
                                    .wrapping_add(lo.0[768 + i] << 24);
                                R::from_u64(v as u64)
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Writes `value(16 r + j)` to (or, unless `overwrite`, adds it to)
/// `out[r][c0 + j]` for j < w.
#[inline(always)]
fn combine<R: Ring>(
    out: &mut [&mut [R]],
    c0: usize,
    w: usize,
    overwrite: bool,
    value: impl Fn(usize) -> R,
) {
    for (r, row) in out.iter_mut().enumerate() {
        let dst = &mut row[c0..c0 + w];
        if overwrite {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = value(TILE * r + j);
            }
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = d.wrapping_add(value(TILE * r + j));
            }
        }
    }
}

/// `out[s] = sum_(i+j=s) A_i B_j` for s = 0..3 over `chunks` 64-deep chunks
/// (tile (c, l) of each operand at `c * step + l * 1024`), wrapping mod 2^32:
/// 10 `tdpbuud` and 10 tile loads per chunk.
///
/// # Safety
/// The tile configuration of [`CONFIG`] must be loaded in this thread;
/// `chunks >= 1`; `a` and `b` must point to `chunks * step` readable bytes
/// holding limb tiles 0..3 of each chunk, 64-byte aligned.
unsafe fn pass_lo(
    a: *const u8,
    b: *const u8,
    chunks: usize,
    step: usize,
    out: &mut Acc,
    pf: *const u8,
) {
    debug_assert!(chunks >= 1);
    // SAFETY: see the function's contract; the loop reads tiles at offsets
    // 0..4 KiB of each of `chunks` groups `step` bytes apart, and the stores
    // write the 4 KiB of `out`.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a} + {s}*1]",        // A0
            "tileloadd tmm6, [{b} + {s}*1]",        // B0
            "tdpbuud tmm0, tmm4, tmm6",             // (0,0)
            "tileloadd tmm7, [{b} + {s}*1 + 1024]", // B1
            "tdpbuud tmm1, tmm4, tmm7",             // (0,1)
            "tileloadd tmm5, [{a} + {s}*1 + 1024]", // A1
            "tdpbuud tmm1, tmm5, tmm6",             // (1,0)
            "tdpbuud tmm2, tmm5, tmm7",             // (1,1)
            "tileloadd tmm6, [{b} + {s}*1 + 2048]", // B2
            "tdpbuud tmm2, tmm4, tmm6",             // (0,2)
            "tdpbuud tmm3, tmm5, tmm6",             // (1,2)
            "tileloadd tmm7, [{b} + {s}*1 + 3072]", // B3
            "tdpbuud tmm3, tmm4, tmm7",             // (0,3)
            "tileloadd tmm4, [{a} + {s}*1 + 2048]", // A2
            "tileloadd tmm6, [{b} + {s}*1]",        // B0
            "tdpbuud tmm2, tmm4, tmm6",             // (2,0)
            "tileloadd tmm7, [{b} + {s}*1 + 1024]", // B1
            "tdpbuud tmm3, tmm4, tmm7",             // (2,1)
            "tileloadd tmm5, [{a} + {s}*1 + 3072]", // A3
            "tdpbuud tmm3, tmm5, tmm6",             // (3,0)
            "prefetcht1 [{pf}]",
            "prefetcht1 [{pf} + 64]",
            "prefetcht1 [{pf} + 128]",
            "prefetcht1 [{pf} + 192]",
            "prefetcht1 [{pf} + 256]",
            "prefetcht1 [{pf} + 320]",
            "prefetcht1 [{pf} + 384]",
            "prefetcht1 [{pf} + 448]",
            "add {pf}, 512",
            "add {a}, {step}",
            "add {b}, {step}",
            "dec {n}",
            "jnz 2b",
            "tilestored [{o} + {s}*1], tmm0",
            "tilestored [{o} + {s}*1 + 1024], tmm1",
            "tilestored [{o} + {s}*1 + 2048], tmm2",
            "tilestored [{o} + {s}*1 + 3072], tmm3",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            n = inout(reg) chunks => _,
            step = in(reg) step,
            s = in(reg) 64usize,
            o = in(reg) out.0.as_mut_ptr(),
            pf = inout(reg) pf => _,
            options(nostack),
        );
    }
}

/// `out[s - 4] = sum_(i+j=s) A_i B_j` for s = 4..7 over `chunks` chunks
/// (layout as in [`pass_lo`]), wrapping mod 2^32: 26 `tdpbuud` and 21 tile
/// loads per chunk.
///
/// # Safety
/// As [`pass_lo`], with limb tiles 0..7 in each chunk.
unsafe fn pass_hi(
    a: *const u8,
    b: *const u8,
    chunks: usize,
    step: usize,
    out: &mut Acc,
    pf: *const u8,
) {
    debug_assert!(chunks >= 1);
    // SAFETY: see the function's contract; the loop reads tiles at offsets
    // 0..8 KiB of each of `chunks` groups `step` bytes apart, and the stores
    // write the 4 KiB of `out`.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            // A0, A1 against B3..B7.
            "tileloadd tmm4, [{a} + {s}*1]",        // A0
            "tileloadd tmm5, [{a} + {s}*1 + 1024]", // A1
            "tileloadd tmm6, [{b} + {s}*1 + 3072]", // B3
            "tileloadd tmm7, [{b} + {s}*1 + 4096]", // B4
            "tdpbuud tmm0, tmm5, tmm6",             // (1,3)
            "tdpbuud tmm0, tmm4, tmm7",             // (0,4)
            "tdpbuud tmm1, tmm5, tmm7",             // (1,4)
            "tileloadd tmm6, [{b} + {s}*1 + 5120]", // B5
            "tdpbuud tmm1, tmm4, tmm6",             // (0,5)
            "tdpbuud tmm2, tmm5, tmm6",             // (1,5)
            "tileloadd tmm7, [{b} + {s}*1 + 6144]", // B6
            "tdpbuud tmm2, tmm4, tmm7",             // (0,6)
            "tdpbuud tmm3, tmm5, tmm7",             // (1,6)
            "tileloadd tmm6, [{b} + {s}*1 + 7168]", // B7
            "tdpbuud tmm3, tmm4, tmm6",             // (0,7)
            // A2, A3 against B1..B5.
            "tileloadd tmm4, [{a} + {s}*1 + 2048]", // A2
            "tileloadd tmm5, [{a} + {s}*1 + 3072]", // A3
            "tileloadd tmm6, [{b} + {s}*1 + 5120]", // B5
            "tdpbuud tmm3, tmm4, tmm6",             // (2,5)
            "tileloadd tmm7, [{b} + {s}*1 + 4096]", // B4
            "tdpbuud tmm2, tmm4, tmm7",             // (2,4)
            "tdpbuud tmm3, tmm5, tmm7",             // (3,4)
            "tileloadd tmm6, [{b} + {s}*1 + 3072]", // B3
            "tdpbuud tmm1, tmm4, tmm6",             // (2,3)
            "tdpbuud tmm2, tmm5, tmm6",             // (3,3)
            "tileloadd tmm7, [{b} + {s}*1 + 2048]", // B2
            "tdpbuud tmm0, tmm4, tmm7",             // (2,2)
            "tdpbuud tmm1, tmm5, tmm7",             // (3,2)
            "tileloadd tmm6, [{b} + {s}*1 + 1024]", // B1
            "tdpbuud tmm0, tmm5, tmm6",             // (3,1)
            // A4, A5 against B0..B3 (B2 in tmm7, B1 in tmm6).
            "tileloadd tmm4, [{a} + {s}*1 + 4096]", // A4
            "tileloadd tmm5, [{a} + {s}*1 + 5120]", // A5
            "tdpbuud tmm2, tmm4, tmm7",             // (4,2)
            "tdpbuud tmm3, tmm5, tmm7",             // (5,2)
            "tdpbuud tmm1, tmm4, tmm6",             // (4,1)
            "tdpbuud tmm2, tmm5, tmm6",             // (5,1)
            "tileloadd tmm7, [{b} + {s}*1]",        // B0
            "tdpbuud tmm0, tmm4, tmm7",             // (4,0)
            "tdpbuud tmm1, tmm5, tmm7",             // (5,0)
            "tileloadd tmm6, [{b} + {s}*1 + 3072]", // B3
            "tdpbuud tmm3, tmm4, tmm6",             // (4,3)
            // A6, A7 against B0, B1 (B0 in tmm7).
            "tileloadd tmm4, [{a} + {s}*1 + 6144]", // A6
            "tileloadd tmm5, [{a} + {s}*1 + 7168]", // A7
            "tdpbuud tmm2, tmm4, tmm7",             // (6,0)
            "tdpbuud tmm3, tmm5, tmm7",             // (7,0)
            "tileloadd tmm6, [{b} + {s}*1 + 1024]", // B1
            "tdpbuud tmm3, tmm4, tmm6",             // (6,1)
            "prefetcht1 [{pf}]",
            "prefetcht1 [{pf} + 64]",
            "prefetcht1 [{pf} + 128]",
            "prefetcht1 [{pf} + 192]",
            "prefetcht1 [{pf} + 256]",
            "prefetcht1 [{pf} + 320]",
            "prefetcht1 [{pf} + 384]",
            "prefetcht1 [{pf} + 448]",
            "add {pf}, 512",
            "add {a}, {step}",
            "add {b}, {step}",
            "dec {n}",
            "jnz 2b",
            "tilestored [{o} + {s}*1], tmm0",
            "tilestored [{o} + {s}*1 + 1024], tmm1",
            "tilestored [{o} + {s}*1 + 2048], tmm2",
            "tilestored [{o} + {s}*1 + 3072], tmm3",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            n = inout(reg) chunks => _,
            step = in(reg) step,
            s = in(reg) 64usize,
            o = in(reg) out.0.as_mut_ptr(),
            pf = inout(reg) pf => _,
            options(nostack),
        );
    }
}
