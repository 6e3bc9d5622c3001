// The local steps of A2B's parallel-prefix adder, bit-sliced over u64
// words: the GPU twin of `src/backend/adder.rs` (Kogge and Stone, 1973;
// src/protocol/convert.rs's a2b). With c = x + r public and r's bits
// XOR-shared, x = c + NOT(r) + 1:
//   adder_leaves   (G, P, p) from c's and r's bit planes
//   adder_level    one level of span dist after its ANDs (opened elsewhere)
//   adder_sum      x_j = p_j ^ carry_j, carry_0 = 1, carry_j = G_{j-1}
// Layout: [bits][words] u64 words, plane-major. flip is all ones on party 0.
// (common.cuh is prepended by the registry.)

// g_j = c_j & NOT r_j, p_j = c_j ^ NOT r_j (NOT r = r ^ flip, c XORed in at
// party 0 only); G_0 = g_0 ^ p_0 (the carry-in), P_0 = 0, G_j = g_j and
// P_j = p_j above. G, P, p, c, r: [bits][words].
extern "C" __global__ void adder_leaves(u64* G, u64* P, u64* p, const u64* c,
                                        const u64* r, u64 bits, u64 words,
                                        u64 flip) {
    SPINDLE_FOR(i, bits * words) {
        const u64 not_r = r[i] ^ flip;
        const u64 gv = c[i] & not_r, pv = (c[i] & flip) ^ not_r;
        p[i] = pv;
        G[i] = i < words ? gv ^ pv : gv;
        P[i] = i < words ? 0 : pv;
    }
}

// One level of span dist: G_j ^= PG_{j-dist} for j >= dist (PG: the ANDs
// P_j & G_{j-dist}, [bits-dist][words]); P_j = 0 for dist <= j < 2 dist and
// P_j = NP_{j-2dist} above (NP: the ANDs P_j & P_{j-dist},
// [bits-2dist][words], empty once 2 dist >= bits).
// G2, P2, G, P: [bits][words].
extern "C" __global__ void adder_level(u64* G2, u64* P2, const u64* G,
                                       const u64* P, const u64* PG,
                                       const u64* NP, u64 dist, u64 bits,
                                       u64 words) {
    const u64 lo = dist * words;
    const u64 zero_to = (2 * dist < bits ? 2 * dist : bits) * words;
    SPINDLE_FOR(i, bits * words) {
        G2[i] = i < lo ? G[i] : G[i] ^ PG[i - lo];
        P2[i] = i < lo ? P[i] : (i < zero_to ? 0 : NP[i - zero_to]);
    }
}

// x_j = p_j ^ carry_j: plane 0 flipped at party 0 (carry-in 1), plane j
// XOR G_{j-1} above. out, p, G: [bits][words].
extern "C" __global__ void adder_sum(u64* out, const u64* p, const u64* G,
                                     u64 bits, u64 words, u64 flip) {
    SPINDLE_FOR(i, bits * words) {
        out[i] = p[i] ^ (i < words ? flip : G[i - words]);
    }
}
