// Ring GEMM pieces over Z_2^k: a direct tiled GEMM (native integer
// multiply-add, exact, the baseline until the tensor-core path of issue 8),
// batched transpose, and the limb split / recombination of CryptGPU
// (Tan et al., IEEE S&P 2021; REFERENCE.md "Dependencies") for exact
// floating-point or 8-bit integer GEMMs.
// (common.cuh is prepended by the registry.)

#define SPINDLE_TILE 16

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
    /* 8-bit limbs, limb-major: out[l][i] = byte l of a[i], l < k/8 */        \
    extern "C" __global__ void limb_split8_##SUF(u8* out, const T* a, u64 n) { \
        const u32 limbs = (u32)sizeof(T);                                      \
        SPINDLE_FOR(i, n) {                                                    \
            const T v = a[i];                                                  \
            for (u32 l = 0; l < limbs; ++l)                                    \
                out[(u64)l * n + i] = (u8)(v >> (8u * l));                     \
        }                                                                      \
    }                                                                          \
    /* 16-bit limbs as doubles (exact), limb-major: out[l][i], l < k/16 */    \
    extern "C" __global__ void limb_split16_f64_##SUF(double* out, const T* a,\
                                                      u64 n) {                 \
        const u32 limbs = (u32)sizeof(T) / 2u;                                 \
        SPINDLE_FOR(i, n) {                                                    \
            const T v = a[i];                                                  \
            for (u32 l = 0; l < limbs; ++l)                                    \
                out[(u64)l * n + i] = (double)(u32)((v >> (16u * l)) & 0xffffu);\
        }                                                                      \
    }                                                                          \
    /* out[i] = sum_p prods[p][i] * 2^shifts[p] mod 2^k, for limb-product    \
       GEMM results that are exact non-negative integers below 2^64 held in \
       doubles (CryptGPU: inner dimension < 2^21 for 16-bit limbs); shifts  \
       at or above k contribute nothing mod 2^k. */                           \
    extern "C" __global__ void limb_recombine_f64_##SUF(                      \
        T* out, const double* prods, const u32* shifts, u64 nprods, u64 n) {   \
        const u32 k = (u32)(sizeof(T) * 8);                                    \
        SPINDLE_FOR(i, n) {                                                    \
            T acc = 0;                                                         \
            for (u64 p = 0; p < nprods; ++p)                                   \
                if (shifts[p] < k)                                             \
                    acc = acc + ((T)(u64)prods[p * n + i] << shifts[p]);       \
            out[i] = acc;                                                      \
        }                                                                      \
    }                                                                          \
    /* As limb_recombine_f64 for 32-bit integer accumulators (int8 tensor   \
       cores, wrapping mod 2^32: the caller keeps only products whose       \
       weight makes that wrap vanish mod 2^k). */                             \
    extern "C" __global__ void limb_recombine_u32acc_##SUF(                   \
        T* out, const u32* prods, const u32* shifts, u64 nprods, u64 n) {      \
        const u32 k = (u32)(sizeof(T) * 8);                                    \
        SPINDLE_FOR(i, n) {                                                    \
            T acc = 0;                                                         \
            for (u64 p = 0; p < nprods; ++p)                                   \
                if (shifts[p] < k) acc = acc + ((T)prods[p * n + i] << shifts[p]);\
            out[i] = acc;                                                      \
        }                                                                      \
    }

SPINDLE_GEMM(u32, u32)
SPINDLE_GEMM(u64, u64)
