// Bit-sliced binary (XOR-shared) ops on u64 words, the GPU twins of
// `BitPlanes` (src/share/bits.rs) and of the AND gate of
// src/protocol/bitwise.rs. Layout: plane j holds bit j of every element,
// element e at bit e % 64 of word e / 64 (Piranha, Falcon).
// (common.cuh is prepended by the registry.)

// out = a ^ b over n words
extern "C" __global__ void xor_words(u64* out, const u64* a, const u64* b,
                                     u64 n) {
    SPINDLE_FOR(i, n) out[i] = a[i] ^ b[i];
}

// out = a & b over n words
extern "C" __global__ void and_words(u64* out, const u64* a, const u64* b,
                                     u64 n) {
    SPINDLE_FOR(i, n) out[i] = a[i] & b[i];
}

// out = ~a over n words
extern "C" __global__ void not_words(u64* out, const u64* a, u64 n) {
    SPINDLE_FOR(i, n) out[i] = ~a[i];
}

// AND gate with a binary Beaver triple (a, b, c = a & b), after opening
// e = x ^ a and f = y ^ b: z = c ^ (e & b) ^ (f & a) ^ (e & f & p0mask),
// p0mask all ones on party 0, zero elsewhere (src/protocol/bitwise.rs).
extern "C" __global__ void and_combine_words(u64* out, const u64* c,
                                             const u64* e, const u64* f,
                                             const u64* a, const u64* b,
                                             u64 p0mask, u64 n) {
    SPINDLE_FOR(i, n) {
        const u64 ev = e[i], fv = f[i];
        out[i] = c[i] ^ (ev & b[i]) ^ (fv & a[i]) ^ (ev & fv & p0mask);
    }
}

// Bit-slicing (`BitPlanes::from_ring`): x [n] -> planes [k][words],
// words = ceil(n / 64). One warp per word: lane l holds elements 64w + l and
// 64w + 32 + l (zero past n, as on the CPU) and one __ballot_sync per half
// gathers bit j of 32 elements. Launch with blockDim.x a multiple of 32.
#define SPINDLE_BITSLICE(T, SUF)                                               \
    extern "C" __global__ void bitslice_##SUF(u64* planes, const T* x, u64 n, \
                                              u64 words) {                     \
        const u32 k = (u32)(sizeof(T) * 8);                                    \
        const u32 lane = threadIdx.x & 31u;                                    \
        const u64 warps = ((u64)blockDim.x * gridDim.x) / 32u;                 \
        for (u64 w = ((u64)blockIdx.x * blockDim.x + threadIdx.x) / 32u;      \
             w < words; w += warps) {                                          \
            const u64 e0 = w * 64u + lane, e1 = e0 + 32u;                      \
            const T v0 = e0 < n ? x[e0] : (T)0;                                \
            const T v1 = e1 < n ? x[e1] : (T)0;                                \
            for (u32 j = 0; j < k; ++j) {                                      \
                const u32 lo = __ballot_sync(0xffffffffu, (u32)(v0 >> j) & 1u);\
                const u32 hi = __ballot_sync(0xffffffffu, (u32)(v1 >> j) & 1u);\
                if (lane == 0) planes[(u64)j * words + w] = (u64)lo | ((u64)hi << 32);\
            }                                                                  \
        }                                                                      \
    }                                                                          \
    /* `BitPlanes::to_ring`: planes [nplanes][words] -> x [n]; planes at or \
       past min(nplanes, k) read as zero. */                                   \
    extern "C" __global__ void unbitslice_##SUF(T* x, const u64* planes,      \
                                                u64 n, u64 words,              \
                                                u64 nplanes) {                 \
        const u64 k = sizeof(T) * 8;                                           \
        const u64 top = nplanes < k ? nplanes : k;                             \
        SPINDLE_FOR(e, n) {                                                    \
            const u64 w = e / 64u;                                             \
            const u32 bit = (u32)(e % 64u);                                    \
            T v = 0;                                                           \
            for (u64 j = 0; j < top; ++j)                                      \
                v |= (T)((planes[j * words + w] >> bit) & 1u) << j;            \
            x[e] = v;                                                          \
        }                                                                      \
    }

SPINDLE_BITSLICE(u32, u32)
SPINDLE_BITSLICE(u64, u64)
