// Layout ops, bit for bit src/backend/layout.rs: the sum and the broadcast
// along one axis, a copy of a range of one axis into a range of another
// (slices and concatenations), and an axis permutation of rank <= 6.
// An axis op sees its tensor as [outer][len][inner].
// (common.cuh is prepended by the registry.)

#define SPINDLE_LAYOUT(T, SUF)                                                 \
    /* out[o][i] = sum over l of x[o][l][i]. */                               \
    extern "C" __global__ void axis_sum_##SUF(T* out, const T* x, u64 outer,  \
                                              u64 len, u64 inner) {           \
        SPINDLE_FOR(idx, outer * inner) {                                      \
            const u64 o = idx / inner, i = idx % inner;                        \
            T acc = 0;                                                         \
            for (u64 l = 0; l < len; ++l) acc = acc + x[(o * len + l) * inner + i]; \
            out[idx] = acc;                                                    \
        }                                                                      \
    }                                                                          \
    /* out[o][l][i] = x[o][i]. */                                             \
    extern "C" __global__ void axis_broadcast_##SUF(                          \
        T* out, const T* x, u64 outer, u64 len, u64 inner) {                  \
        SPINDLE_FOR(idx, outer * len * inner) {                                \
            const u64 o = idx / (len * inner), i = idx % inner;                \
            out[idx] = x[o * inner + i];                                       \
        }                                                                      \
    }                                                                          \
    /* dst[o][dst_start + l][i] = src[o][src_start + l][i], l < count. */     \
    extern "C" __global__ void axis_copy_##SUF(                               \
        T* dst, const T* src, u64 outer, u64 src_len, u64 dst_len, u64 inner,  \
        u64 src_start, u64 dst_start, u64 count) {                             \
        SPINDLE_FOR(idx, outer * count * inner) {                              \
            const u64 i = idx % inner;                                         \
            const u64 l = (idx / inner) % count;                               \
            const u64 o = idx / (inner * count);                               \
            dst[(o * dst_len + dst_start + l) * inner + i] =                   \
                src[(o * src_len + src_start + l) * inner + i];                \
        }                                                                      \
    }                                                                          \
    /* out (dims d0..d5, row-major) at its index (i0..i5) reads x at        \
       sum_a i_a * s_a: s_a is the input stride of output axis a. Unused   \
       leading axes have dimension 1. */                                      \
    extern "C" __global__ void permute_##SUF(                                 \
        T* out, const T* x, u64 n, u64 d0, u64 d1, u64 d2, u64 d3, u64 d4,     \
        u64 d5, u64 s0, u64 s1, u64 s2, u64 s3, u64 s4, u64 s5) {              \
        SPINDLE_FOR(idx, n) {                                                  \
            u64 r = idx;                                                       \
            const u64 i5 = r % d5; r /= d5;                                    \
            const u64 i4 = r % d4; r /= d4;                                    \
            const u64 i3 = r % d3; r /= d3;                                    \
            const u64 i2 = r % d2; r /= d2;                                    \
            const u64 i1 = r % d1; r /= d1;                                    \
            const u64 i0 = r % d0;                                             \
            out[idx] = x[i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3 + i4 * s4 + i5 * s5]; \
        }                                                                      \
    }

SPINDLE_LAYOUT(u32, u32)
SPINDLE_LAYOUT(u64, u64)
