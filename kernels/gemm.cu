// Ring GEMM pieces over Z_2^k: a direct tiled GEMM (native integer
// multiply-add, exact), batched transpose, and the limb split /
// recombination around the cuBLAS limb GEMMs of issue 8 (CryptGPU, Tan et
// al., IEEE S&P 2021; the plan and its exactness bounds: src/backend/limb,
// docs/gemm.md).
// (common.cuh is prepended by the registry.)

#define SPINDLE_TILE 16

// Limb split body (see limb_split_i8 below): W-bit digits of type D, low
// to high, balanced (signed, with carry: t = field + carry; t >= 2^(W-1)
// gives t - 2^W and carry 1; the top carry has weight 2^k and is dropped)
// when bal != 0, else unsigned.
template <typename T, typename D, u32 W>
__device__ void limb_split(D* out, const T* a, u64 batch, u64 rows, u64 valid,
                           u64 k, u64 kp, u64 sb, u64 rs, u64 ps, u32 rev,
                           u32 bal) {
    const u32 limbs = (u32)(sizeof(T) * 8) / W;
    const i64 half = (i64)1 << (W - 1u);
    SPINDLE_FOR(idx, batch * rows * kp) {
        const u64 p = idx % kp;
        const u64 r = (idx / kp) % rows;
        const u64 bt = idx / (kp * rows);
        const T v = (p < k && r < valid) ? a[bt * sb + r * rs + p * ps] : (T)0;
        i64 carry = 0;
        for (u32 l = 0; l < limbs; ++l) {
            i64 t = (i64)((v >> (W * l)) & (T)((1u << W) - 1u)) + carry;
            carry = (bal && t >= half) ? 1 : 0;
            t -= carry << W;
            const u64 slot = rev ? (u64)(limbs - 1u - l) : (u64)l;
            out[((bt * rows + r) * limbs + slot) * kp + p] = (D)t;
        }
    }
}

// Recombination of one limb GEMM chunk: for r < rows (batch * m), c < n,
// out[r*n + c] = (first ? 0 : out[r*n + c]) + (T)(i64)acc[r*ldc + c] << shift
// mod 2^k (sign-extending; accumulators are exact integers); a shift >= k
// contributes nothing.
template <typename T, typename A>
__device__ void limb_accum(T* out, const A* acc, u64 rows, u64 n, u64 ldc,
                           u32 shift, u32 first) {
    const u32 bits = (u32)(sizeof(T) * 8);
    SPINDLE_FOR(idx, rows * n) {
        const u64 c = idx % n, r = idx / n;
        const T v = shift < bits ? ((T)(i64)acc[r * ldc + c]) << shift : (T)0;
        out[idx] = (first ? (T)0 : out[idx]) + v;
    }
}

#define SPINDLE_GEMM(T, SUF)                                                   \
    /* C[b] = A[b] B[b] mod 2^k: A[b] at am + b*stride_a ([m][k]), B[b] at   \
       bm + b*stride_b ([k][n]), C [batch][m][n]; a stride of 0 reuses one   \
       operand for every b. Grid (ceil(n/16), ceil(m/16), batch), block     \
       (16, 16). */                                                            \
    extern "C" __global__ void gemm_##SUF(T* cm, const T* am, const T* bm,    \
                                          u64 m, u64 k, u64 n, u64 stride_a,   \
                                          u64 stride_b) {                      \
        __shared__ T as[SPINDLE_TILE][SPINDLE_TILE];                           \
        __shared__ T bs[SPINDLE_TILE][SPINDLE_TILE];                           \
        const u64 bt = blockIdx.z;                                             \
        const u64 row = (u64)blockIdx.y * SPINDLE_TILE + threadIdx.y;          \
        const u64 col = (u64)blockIdx.x * SPINDLE_TILE + threadIdx.x;          \
        const T* a = am + bt * stride_a;                                       \
        const T* b = bm + bt * stride_b;                                       \
        T acc = 0;                                                             \
        for (u64 p0 = 0; p0 < k; p0 += SPINDLE_TILE) {                         \
            const u64 pa = p0 + threadIdx.x, pb = p0 + threadIdx.y;            \
            as[threadIdx.y][threadIdx.x] = (row < m && pa < k) ? a[row * k + pa] : (T)0;\
            bs[threadIdx.y][threadIdx.x] = (pb < k && col < n) ? b[pb * n + col] : (T)0;\
            __syncthreads();                                                   \
            for (int q = 0; q < SPINDLE_TILE; ++q)                             \
                acc = acc + as[threadIdx.y][q] * bs[q][threadIdx.x];           \
            __syncthreads();                                                   \
        }                                                                      \
        if (row < m && col < n) cm[bt * m * n + row * n + col] = acc;          \
    }                                                                          \
    /* out[b][j][i] = a[b][i][j]: [batch][m][n] -> [batch][n][m] */           \
    extern "C" __global__ void transpose_##SUF(T* out, const T* a, u64 batch, \
                                               u64 m, u64 n) {                 \
        SPINDLE_FOR(idx, batch * m * n) {                                      \
            const u64 j = idx % n;                                             \
            const u64 i = (idx / n) % m;                                       \
            const u64 bt = idx / (m * n);                                      \
            out[bt * m * n + j * m + i] = a[idx];                              \
        }                                                                      \
    }                                                                          \
    /* Limb split for the limb GEMMs (src/backend/limb, docs/gemm.md):    \
       source element (r, p) of batch bt at a[bt*sb + r*rs + p*ps],         \
       r < valid, p < k; out [batch][rows][L][kp], balanced signed 8-bit    \
       digits (L = k_ring/8), the digit of limb l in slot l, or L-1-l when  \
       rev; zero for p >= k or r >= valid (padding up to kp and rows). A is \
       split with rows = valid = m, rs = k, ps = 1; B with rows = n padded, \
       valid = n, rs = 1, ps = n, rev = 1, so that a diagonal's stacked     \
       operands are contiguous (cuBLAS "TN"). */                             \
    extern "C" __global__ void limb_split_i8_##SUF(                           \
        signed char* out, const T* a, u64 batch, u64 rows, u64 valid, u64 k,  \
        u64 kp, u64 sb, u64 rs, u64 ps, u32 rev) {                             \
        limb_split<T, signed char, 8u>(out, a, batch, rows, valid, k, kp, sb, \
                                       rs, ps, rev, 1u);                      \
    }                                                                          \
    /* As limb_split_i8 with 16-bit digits held in doubles (exact), L =    \
       k_ring/16: unsigned in [0, 65535] (CryptGPU), or balanced in         \
       [-32768, 32767] when balanced != 0. */                                 \
    extern "C" __global__ void limb_split_f64_##SUF(                          \
        double* out, const T* a, u64 batch, u64 rows, u64 valid, u64 k,       \
        u64 kp, u64 sb, u64 rs, u64 ps, u32 rev, u32 balanced) {               \
        limb_split<T, double, 16u>(out, a, batch, rows, valid, k, kp, sb, rs, \
                                   ps, rev, balanced);                        \
    }                                                                          \
    /* Recombination of one limb GEMM chunk with int32 accumulators (exact, \
       or wrapped only where the plan shows the wrap vanishes mod 2^k). */  \
    extern "C" __global__ void limb_accum_i32_##SUF(                          \
        T* out, const i32* acc, u64 rows, u64 n, u64 ldc, u32 shift,           \
        u32 first) {                                                           \
        limb_accum<T, i32>(out, acc, rows, n, ldc, shift, first);              \
    }                                                                          \
    /* As limb_accum_i32 for f64 accumulators holding exact integers of    \
       magnitude <= 2^53 (the plan's chunking). */                            \
    extern "C" __global__ void limb_accum_f64_##SUF(                          \
        T* out, const double* acc, u64 rows, u64 n, u64 ldc, u32 shift,        \
        u32 first) {                                                           \
        limb_accum<T, double>(out, acc, rows, n, ldc, shift, first);           \
    }

SPINDLE_GEMM(u32, u32)
SPINDLE_GEMM(u64, u64)
