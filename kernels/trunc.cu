// Final step of dealer-assisted probabilistic truncation (Escudero et al.,
// CRYPTO 2020; REFERENCE.md "Truncation"): bit for bit the CPU's
// `Backend::trunc_combine` (src/backend/mod.rs, src/backend/cpu/mod.rs).
// (common.cuh is prepended by the registry.)
//
// Inputs: c = x + 2^(k-2) + r (opened), this party's shares of
// r' = (r mod 2^(k-1)) >> f and of r_msb; party0 is 1 on party 0 else 0.
// Output share: [p0](c' - 2^(k-2-f)) - r' + b * 2^(k-1-f), with
// c' = (c mod 2^(k-1)) >> f and b = [p0] c_msb + r_msb (1 - 2 c_msb).
// The caller guarantees f <= k - 2.

#define SPINDLE_TRUNC(T, SUF)                                                  \
    extern "C" __global__ void trunc_combine_##SUF(                           \
        T* out, const T* c, const T* r_shifted, const T* r_msb, u32 f,        \
        u32 party0, u64 n) {                                                   \
        const u32 k = (u32)(sizeof(T) * 8);                                    \
        const T low_mask = ((T)1 << (k - 1)) - (T)1;                           \
        const T offset = (T)1 << (k - 2 - f);                                  \
        const T top_weight = (T)1 << (k - 1 - f);                              \
        SPINDLE_FOR(i, n) {                                                    \
            const T cv = c[i];                                                 \
            const T c_msb = cv >> (k - 1);                                     \
            T b = r_msb[i] * ((T)1 - (T)2 * c_msb);                            \
            T z = (T)0 - r_shifted[i];                                         \
            if (party0) {                                                      \
                b = b + c_msb;                                                 \
                z = z + ((cv & low_mask) >> f) - offset;                       \
            }                                                                  \
            out[i] = z + b * top_weight;                                       \
        }                                                                      \
    }

SPINDLE_TRUNC(u32, u32)
SPINDLE_TRUNC(u64, u64)
