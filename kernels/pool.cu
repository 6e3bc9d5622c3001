// Pooling helpers, bit for bit src/protocol/pool.rs: the window gather of
// maxpool2d (padded positions hold `pad`) and the gradient routing of
// maxpool2d_backward (a sum over the windows that cover each input).
// Layouts: x [nc][h][w], windows [nc][ho][wo][kh*kw].
// (common.cuh is prepended by the registry.)

#define SPINDLE_POOL(T, SUF)                                                   \
    extern "C" __global__ void pool_gather_##SUF(                             \
        T* windows, const T* x, T pad, u64 nc, u64 h, u64 w, u64 kh, u64 kw,  \
        u64 sh, u64 sw, u64 ph, u64 pw, u64 ho, u64 wo) {                      \
        const u64 total = nc * ho * wo * kh * kw;                              \
        SPINDLE_FOR(idx, total) {                                              \
            u64 r = idx;                                                       \
            const u64 kj = r % kw; r /= kw;                                    \
            const u64 ki = r % kh; r /= kh;                                    \
            const u64 ox = r % wo; r /= wo;                                    \
            const u64 oy = r % ho;                                             \
            const u64 img = r / ho;                                            \
            const i64 iy = (i64)(oy * sh + ki) - (i64)ph;                      \
            const i64 ix = (i64)(ox * sw + kj) - (i64)pw;                      \
            T v = pad;                                                         \
            if (iy >= 0 && iy < (i64)h && ix >= 0 && ix < (i64)w)              \
                v = x[(img * h + (u64)iy) * w + (u64)ix];                      \
            windows[idx] = v;                                                  \
        }                                                                      \
    }                                                                          \
    /* gin[img][iy][ix] = sum of routed[img][oy][ox][ki*kw+kj] over the      \
       windows (oy, ox) whose element (ki, kj) is (iy, ix). */                \
    extern "C" __global__ void pool_scatter_##SUF(                            \
        T* gin, const T* routed, u64 nc, u64 h, u64 w, u64 kh, u64 kw, u64 sh,\
        u64 sw, u64 ph, u64 pw, u64 ho, u64 wo) {                              \
        const u64 total = nc * h * w;                                          \
        SPINDLE_FOR(idx, total) {                                              \
            u64 r = idx;                                                       \
            const u64 ix = r % w; r /= w;                                      \
            const u64 iy = r % h;                                              \
            const u64 img = r / h;                                             \
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
                    acc = acc + routed[((img * ho + oy) * wo + ox) * kh * kw + \
                                       ki * kw + kj];                          \
                }                                                              \
            }                                                                  \
            gin[idx] = acc;                                                    \
        }                                                                      \
    }

SPINDLE_POOL(u32, u32)
SPINDLE_POOL(u64, u64)
