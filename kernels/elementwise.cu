// Elementwise ring ops over Z_2^k (k = 32, 64): the GPU twins of the
// elementwise methods of `Backend` (src/backend/mod.rs) and of the Beaver
// combination of src/protocol/beaver.rs. All arithmetic wraps mod 2^k.
// (common.cuh is prepended by the registry.)

#define SPINDLE_ELEMENTWISE(T, S, SUF)                                          \
    /* out = a + b */                                                          \
    extern "C" __global__ void add_##SUF(T* out, const T* a, const T* b,      \
                                         u64 n) {                              \
        SPINDLE_FOR(i, n) out[i] = a[i] + b[i];                                \
    }                                                                          \
    /* out = a - b */                                                          \
    extern "C" __global__ void sub_##SUF(T* out, const T* a, const T* b,      \
                                         u64 n) {                              \
        SPINDLE_FOR(i, n) out[i] = a[i] - b[i];                                \
    }                                                                          \
    /* out = a * b (Hadamard) */                                               \
    extern "C" __global__ void mul_##SUF(T* out, const T* a, const T* b,      \
                                         u64 n) {                              \
        SPINDLE_FOR(i, n) out[i] = a[i] * b[i];                                \
    }                                                                          \
    /* a += b in place */                                                      \
    extern "C" __global__ void add_assign_##SUF(T* a, const T* b, u64 n) {     \
        SPINDLE_FOR(i, n) a[i] = a[i] + b[i];                                  \
    }                                                                          \
    /* out = -a */                                                             \
    extern "C" __global__ void neg_##SUF(T* out, const T* a, u64 n) {          \
        SPINDLE_FOR(i, n) out[i] = (T)0 - a[i];                                \
    }                                                                          \
    /* out = a * s for a public scalar s */                                    \
    extern "C" __global__ void mul_scalar_##SUF(T* out, const T* a, T s,       \
                                                u64 n) {                       \
        SPINDLE_FOR(i, n) out[i] = a[i] * s;                                   \
    }                                                                          \
    /* out = a + s for a public scalar s */                                    \
    extern "C" __global__ void add_scalar_##SUF(T* out, const T* a, T s,       \
                                                u64 n) {                       \
        SPINDLE_FOR(i, n) out[i] = a[i] + s;                                   \
    }                                                                          \
    /* out = a >> s, arithmetic (sign-extending); the caller checks s < k */  \
    extern "C" __global__ void ashr_##SUF(T* out, const T* a, u32 s, u64 n) {  \
        SPINDLE_FOR(i, n) out[i] = (T)((S)a[i] >> s);                          \
    }                                                                          \
    /* Beaver combination for the elementwise product, in the form of       \
       src/protocol/beaver.rs: z = c + e * b + x * f, where e = x - a and    \
       f = y - b are opened and c, b, x are this party's shares (no party-0 \
       term is needed since x = e + a is used in place of a). */              \
    extern "C" __global__ void beaver_combine_##SUF(                          \
        T* out, const T* c, const T* e, const T* b, const T* x, const T* f,   \
        u64 n) {                                                               \
        SPINDLE_FOR(i, n) out[i] = c[i] + e[i] * b[i] + x[i] * f[i];           \
    }

SPINDLE_ELEMENTWISE(u32, i32, u32)
SPINDLE_ELEMENTWISE(u64, i64, u64)

// Down-cast to Z_2^32: out = ((a + add) >> shift) mod 2^32, a logical
// shift of the ring element (src/backend/mod.rs, Backend::cast_u32);
// the caller checks shift < k.
#define SPINDLE_CAST_U32(T, SUF)                                               \
    extern "C" __global__ void cast_u32_##SUF(u32* out, const T* a, T add,    \
                                              u32 shift, u64 n) {             \
        SPINDLE_FOR(i, n) out[i] = (u32)((T)(a[i] + add) >> shift);            \
    }

SPINDLE_CAST_U32(u32, u32)
SPINDLE_CAST_U32(u64, u64)
