// im2col / col2im for 2-D convolution lowered to GEMM (Chellapilla et al.,
// 2006), bit for bit the layout of src/backend/cpu/conv.rs: NCHW images,
// columns [n][c*kh*kw][ho*wo] with row (ci*kh + ki)*kw + kj, zero padding.
// (common.cuh is prepended by the registry.)

#define SPINDLE_CONV(T, SUF)                                                   \
    /* cols[img][row][oy*wo+ox] = x[img][ci][oy*sh+ki-ph][ox*sw+kj-pw] or 0 */\
    extern "C" __global__ void im2col_##SUF(                                  \
        T* cols, const T* x, u64 n, u64 c, u64 h, u64 w, u64 kh, u64 kw,      \
        u64 sh, u64 sw, u64 ph, u64 pw, u64 ho, u64 wo) {                      \
        const u64 total = n * c * kh * kw * ho * wo;                           \
        SPINDLE_FOR(idx, total) {                                              \
            u64 r = idx;                                                       \
            const u64 ox = r % wo; r /= wo;                                    \
            const u64 oy = r % ho; r /= ho;                                    \
            const u64 kj = r % kw; r /= kw;                                    \
            const u64 ki = r % kh; r /= kh;                                    \
            const u64 ci = r % c;                                              \
            const u64 img = r / c;                                             \
            const i64 iy = (i64)(oy * sh + ki) - (i64)ph;                      \
            const i64 ix = (i64)(ox * sw + kj) - (i64)pw;                      \
            T v = 0;                                                           \
            if (iy >= 0 && iy < (i64)h && ix >= 0 && ix < (i64)w)              \
                v = x[((img * c + ci) * h + (u64)iy) * w + (u64)ix];           \
            cols[idx] = v;                                                     \
        }                                                                      \
    }                                                                          \
    /* Adjoint of im2col: x[img][ci][iy][ix] = sum of the column entries     \
       that im2col copied from it (overlapping windows sum), as a gather     \
       (one thread per image element, no atomics; ring sums are exact, so  \
       the order differs from the CPU's scatter but not the result). */      \
    extern "C" __global__ void col2im_##SUF(                                  \
        T* x, const T* cols, u64 n, u64 c, u64 h, u64 w, u64 kh, u64 kw,      \
        u64 sh, u64 sw, u64 ph, u64 pw, u64 ho, u64 wo) {                      \
        const u64 total = n * c * h * w;                                       \
        const u64 krows = c * kh * kw;                                         \
        SPINDLE_FOR(idx, total) {                                              \
            u64 r = idx;                                                       \
            const u64 ix = r % w; r /= w;                                      \
            const u64 iy = r % h; r /= h;                                      \
            const u64 ci = r % c;                                              \
            const u64 img = r / c;                                             \
            T acc = 0;                                                         \
            for (u64 ki = 0; ki < kh; ++ki) {                                  \
                const i64 ty = (i64)(iy + ph) - (i64)ki;                       \
                if (ty < 0 || (u64)ty % sh != 0) continue;                     \
                const u64 oy = (u64)ty / sh;                                   \
                if (oy >= ho) continue;                                        \
                for (u64 kj = 0; kj < kw; ++kj) {                              \
                    const i64 tx = (i64)(ix + pw) - (i64)kj;                   \
                    if (tx < 0 || (u64)tx % sw != 0) continue;                 \
                    const u64 ox = (u64)tx / sw;                               \
                    if (ox >= wo) continue;                                    \
                    const u64 row = (ci * kh + ki) * kw + kj;                  \
                    acc = acc + cols[((img * krows + row) * ho + oy) * wo + ox];\
                }                                                              \
            }                                                                  \
            x[idx] = acc;                                                      \
        }                                                                      \
    }

SPINDLE_CONV(u32, u32)
SPINDLE_CONV(u64, u64)
