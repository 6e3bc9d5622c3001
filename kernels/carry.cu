// The carry circuit of MSB / DReLU, bit-sliced over u64 words: the GPU twin
// of the local steps of `msb_bounded` (src/protocol/compare.rs; Escudero et
// al., CRYPTO 2020, with the (G, P) prefix tree of Falcon and Piranha).
// With c = x + r public and r's bits XOR-shared, x = c + NOT(r) + 1, whose
// bit b-1 is p_{b-1} ^ carry. The carry is a tree of (G, P) nodes, one AND
// round per level:
//   carry_leaves          leaves from c's and r's bit planes
//   carry_level_mask      e = x ^ a, f = y ^ b for the level's ANDs (opened)
//   carry_level_combine   the next level from the opened e, f
// and MSB = top ^ G[0] (`xor_words`). Layout: G and P hold `nodes` planes
// of `words` words each (node-major); node 0, the group holding bit 0, has
// no P (its plane is kept zero). The ANDs of a level are ordered as on the
// CPU: pair i (nodes lo = 2i, hi = 2i + 1) has the AND P_hi & G_lo at index
// 0 for i = 0 and 2i - 1 otherwise, and P_hi & P_lo at index 2i (i >= 1);
// 2 * pairs - 1 ANDs in all, one binary triple [ands][words] per level.
// (common.cuh is prepended by the registry.)

// Leaves of the tree over bit positions 0..bits-1 (bits >= 2), from the
// public bit planes c [>= bits][words] and this party's shares of r's bits
// r [>= bits][words]; flip is all ones on party 0 (NOT r = r ^ [p0]):
//   g_j = c_j & NOT r_j, p_j = c_j ^ NOT r_j (as shares);
//   node 0 = (g_0 ^ p_0, none): bit 0 with the carry-in of 1;
//   node j = (g_j, p_j) for 1 <= j <= bits - 2;  top = p_{bits-1}.
// G, P: [bits-1][words]; top: [words].
extern "C" __global__ void carry_leaves(u64* G, u64* P, u64* top, const u64* c,
                                        const u64* r, u64 bits, u64 words,
                                        u64 flip) {
    SPINDLE_FOR(i, bits * words) {
        const u64 j = i / words;
        const u64 cv = c[i], rv = r[i];
        const u64 g = cv & (rv ^ flip);
        const u64 p = (cv & flip) ^ rv ^ flip;
        if (j == 0) {
            G[i] = g ^ p;
            P[i] = 0;
        } else if (j + 1 < bits) {
            G[i] = g;
            P[i] = p;
        } else {
            top[i - j * words] = p;
        }
    }
}

// Which AND of a level index t is: (pair, whether it is the P AND).
static __device__ __forceinline__ u64 carry_pair_of(u64 t) { return (t + 1) / 2; }
static __device__ __forceinline__ bool carry_is_p(u64 t) { return t > 0 && t % 2 == 0; }

// The masked inputs of a level's ANDs for `pairs` = nodes / 2 pairs:
// e[t] = P_hi ^ a[t], f[t] = (G_lo or P_lo) ^ b[t], t < 2 * pairs - 1,
// with this party's triple shares a, b [ands][words].
extern "C" __global__ void carry_level_mask(u64* e, u64* f, const u64* G,
                                            const u64* P, const u64* a,
                                            const u64* b, u64 pairs,
                                            u64 words) {
    const u64 ands = pairs == 0 ? 0 : 2 * pairs - 1;
    SPINDLE_FOR(i, ands * words) {
        const u64 t = i / words, w = i % words;
        const u64 lo = 2 * carry_pair_of(t), hi = lo + 1;
        const u64 y = carry_is_p(t) ? P[lo * words + w] : G[lo * words + w];
        e[i] = P[hi * words + w] ^ a[i];
        f[i] = y ^ b[i];
    }
}

// This party's share of AND t from the opened e, f and its triple shares
// (src/protocol/bitwise.rs): c ^ (e & b) ^ (f & a) ^ (e & f & p0mask).
static __device__ __forceinline__ u64 carry_and(const u64* e, const u64* f,
                                                const u64* a, const u64* b,
                                                const u64* c, u64 i,
                                                u64 p0mask) {
    return c[i] ^ (e[i] & b[i]) ^ (f[i] & a[i]) ^ (e[i] & f[i] & p0mask);
}

// The next level, ceil(nodes / 2) nodes, from the opened e, f [ands][words]
// and the triple shares a, b, c: node i < pairs is (G_hi ^ (P_hi & G_lo),
// P_hi & P_lo), with no P for i = 0; an odd last node is carried over.
// G2, P2: [ceil(nodes/2)][words]; p0mask all ones on party 0.
extern "C" __global__ void carry_level_combine(u64* G2, u64* P2, const u64* G,
                                               const u64* P, const u64* e,
                                               const u64* f, const u64* a,
                                               const u64* b, const u64* c,
                                               u64 nodes, u64 words,
                                               u64 p0mask) {
    const u64 pairs = nodes / 2, next = (nodes + 1) / 2;
    SPINDLE_FOR(i, next * words) {
        const u64 n = i / words, w = i % words;
        if (n < pairs) {
            const u64 hi = 2 * n + 1;
            const u64 tg = n == 0 ? 0 : 2 * n - 1;
            G2[i] = G[hi * words + w] ^ carry_and(e, f, a, b, c, tg * words + w, p0mask);
            P2[i] = n == 0 ? 0 : carry_and(e, f, a, b, c, 2 * n * words + w, p0mask);
        } else {
            G2[i] = G[(nodes - 1) * words + w];
            P2[i] = P[(nodes - 1) * words + w];
        }
    }
}
