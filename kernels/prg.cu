// AES-128-CTR keystream expansion: bit for bit the stream of src/prg.rs.
// (common.cuh is prepended by the registry.)
//
// Specification (src/prg.rs): AES-128 (FIPS-197) keyed by the 16-byte seed;
// block j of stream s is AES_seed(s * 2^64 + j), the 128-bit counter encoded
// big-endian (NIST SP 800-38A CTR, RustCrypto `ctr::Ctr128BE`); keystream
// bytes are read as little-endian ring words, so u64 element i is bytes
// 8(i mod 2)..+8 of block i / 2 and u32 element i bytes 4(i mod 4)..+4 of
// block i / 4.
//
// Implementation: the 32-bit T-table formulation of Daemen and Rijmen
// (AES proposal, section 5.2.1; the public-domain rijndael-alg-fst.c of
// Rijmen, Bosselaers and Barreto): one table Te0 in shared memory, the other
// three as byte rotations of it; the key schedule of FIPS-197 section 5.2,
// computed once per thread block into shared memory. One thread per 16-byte
// counter block. The seed is passed as two big-endian halves:
// key_hi = bytes 0..8, key_lo = bytes 8..16.

// FIPS-197 figure 7, the S-box.
__constant__ u8 SPINDLE_SBOX[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

__device__ __forceinline__ u32 spindle_rotr(u32 x, u32 r) {
    return (x >> r) | (x << (32u - r));
}

__device__ __forceinline__ u32 spindle_bswap32(u32 x) {
    return (x >> 24) | ((x >> 8) & 0x0000ff00u) | ((x << 8) & 0x00ff0000u) |
           (x << 24);
}

// xtime: multiplication by x (i.e. {02}) in GF(2^8) mod x^8+x^4+x^3+x+1.
__device__ __forceinline__ u32 spindle_xtime(u32 b) {
    return ((b << 1) ^ ((b & 0x80u) ? 0x1bu : 0u)) & 0xffu;
}

// FIPS-197 section 5.2, Nk = 4: 44 round-key words, big-endian words.
__device__ void spindle_aes128_key_schedule(u32 rk[44], u64 key_hi,
                                            u64 key_lo, const u8* sbox) {
    const u32 rcon[10] = {0x01000000u, 0x02000000u, 0x04000000u, 0x08000000u,
                          0x10000000u, 0x20000000u, 0x40000000u, 0x80000000u,
                          0x1b000000u, 0x36000000u};
    rk[0] = (u32)(key_hi >> 32);
    rk[1] = (u32)key_hi;
    rk[2] = (u32)(key_lo >> 32);
    rk[3] = (u32)key_lo;
    for (int i = 0; i < 10; ++i) {
        const u32 t = rk[4 * i + 3];
        rk[4 * i + 4] = rk[4 * i] ^ ((u32)sbox[(t >> 16) & 0xff] << 24) ^
                        ((u32)sbox[(t >> 8) & 0xff] << 16) ^
                        ((u32)sbox[t & 0xff] << 8) ^ (u32)sbox[t >> 24] ^
                        rcon[i];
        rk[4 * i + 5] = rk[4 * i + 1] ^ rk[4 * i + 4];
        rk[4 * i + 6] = rk[4 * i + 2] ^ rk[4 * i + 5];
        rk[4 * i + 7] = rk[4 * i + 3] ^ rk[4 * i + 6];
    }
}

// Te0[x] = S[x] * {02, 01, 01, 03} as a big-endian word.
__device__ __forceinline__ u32 spindle_te0_entry(u32 s) {
    const u32 s2 = spindle_xtime(s);
    return (s2 << 24) | (s << 16) | (s << 8) | (s2 ^ s);
}

// Encrypts the block whose big-endian words are in[0..4] into out[0..4].
__device__ void spindle_aes128_encrypt(u32 out[4], const u32 in[4],
                                       const u32 rk[44], const u32* te0,
                                       const u8* sbox) {
    u32 s0 = in[0] ^ rk[0], s1 = in[1] ^ rk[1], s2 = in[2] ^ rk[2],
        s3 = in[3] ^ rk[3];
    for (int r = 1; r < 10; ++r) {
        const u32* k = rk + 4 * r;
        const u32 t0 = te0[s0 >> 24] ^ spindle_rotr(te0[(s1 >> 16) & 0xff], 8) ^
                       spindle_rotr(te0[(s2 >> 8) & 0xff], 16) ^
                       spindle_rotr(te0[s3 & 0xff], 24) ^ k[0];
        const u32 t1 = te0[s1 >> 24] ^ spindle_rotr(te0[(s2 >> 16) & 0xff], 8) ^
                       spindle_rotr(te0[(s3 >> 8) & 0xff], 16) ^
                       spindle_rotr(te0[s0 & 0xff], 24) ^ k[1];
        const u32 t2 = te0[s2 >> 24] ^ spindle_rotr(te0[(s3 >> 16) & 0xff], 8) ^
                       spindle_rotr(te0[(s0 >> 8) & 0xff], 16) ^
                       spindle_rotr(te0[s1 & 0xff], 24) ^ k[2];
        const u32 t3 = te0[s3 >> 24] ^ spindle_rotr(te0[(s0 >> 16) & 0xff], 8) ^
                       spindle_rotr(te0[(s1 >> 8) & 0xff], 16) ^
                       spindle_rotr(te0[s2 & 0xff], 24) ^ k[3];
        s0 = t0; s1 = t1; s2 = t2; s3 = t3;
    }
    // Last round: SubBytes, ShiftRows, AddRoundKey (no MixColumns).
    const u32* k = rk + 40;
#define SPINDLE_LAST(a, b, c, d)                                               \
    (((u32)sbox[a >> 24] << 24) ^ ((u32)sbox[(b >> 16) & 0xff] << 16) ^       \
     ((u32)sbox[(c >> 8) & 0xff] << 8) ^ (u32)sbox[d & 0xff])
    out[0] = SPINDLE_LAST(s0, s1, s2, s3) ^ k[0];
    out[1] = SPINDLE_LAST(s1, s2, s3, s0) ^ k[1];
    out[2] = SPINDLE_LAST(s2, s3, s0, s1) ^ k[2];
    out[3] = SPINDLE_LAST(s3, s0, s1, s2) ^ k[3];
#undef SPINDLE_LAST
}

// Keystream block `block` (counter = stream * 2^64 + block, with the carry
// into the stream half that a 128-bit big-endian counter has) as big-endian
// words.
__device__ __forceinline__ void spindle_ctr_block(u32 out[4], u64 stream,
                                                  u64 block, const u32 rk[44],
                                                  const u32* te0,
                                                  const u8* sbox) {
    const u32 in[4] = {(u32)(stream >> 32), (u32)stream, (u32)(block >> 32),
                       (u32)block};
    spindle_aes128_encrypt(out, in, rk, te0, sbox);
}

// Shared-memory setup common to both ring widths: S-box, Te0 and the
// round keys, filled cooperatively, then a barrier.
#define SPINDLE_PRG_SETUP                                                      \
    __shared__ u8 sbox[256];                                                   \
    __shared__ u32 te0[256];                                                   \
    __shared__ u32 rk[44];                                                     \
    for (u32 t = threadIdx.x; t < 256; t += blockDim.x) {                      \
        sbox[t] = SPINDLE_SBOX[t];                                             \
        te0[t] = spindle_te0_entry(SPINDLE_SBOX[t]);                           \
    }                                                                          \
    __syncthreads();                                                           \
    if (threadIdx.x == 0) spindle_aes128_key_schedule(rk, key_hi, key_lo, sbox);\
    __syncthreads();

// out[i] for i < n: elements first_block * 2.. of stream `stream` (u64:
// two elements per block). first_block = 0 gives `Prg::new(seed, stream)`'s
// first n elements.
extern "C" __global__ void prg_fill_u64(u64* out, u64 n, u64 key_hi,
                                        u64 key_lo, u64 stream,
                                        u64 first_block) {
    SPINDLE_PRG_SETUP
    const u64 blocks = (n + 1) / 2;
    SPINDLE_FOR(j, blocks) {
        const u64 lo = first_block + j;
        const u64 hi = stream + (lo < first_block ? 1u : 0u);
        u32 w[4];
        spindle_ctr_block(w, hi, lo, rk, te0, sbox);
        // Bytes 0..8 of the block, read little-endian.
        out[2 * j] = ((u64)spindle_bswap32(w[1]) << 32) | spindle_bswap32(w[0]);
        if (2 * j + 1 < n)
            out[2 * j + 1] =
                ((u64)spindle_bswap32(w[3]) << 32) | spindle_bswap32(w[2]);
    }
}

// As prg_fill_u64 with four u32 elements per block.
extern "C" __global__ void prg_fill_u32(u32* out, u64 n, u64 key_hi,
                                        u64 key_lo, u64 stream,
                                        u64 first_block) {
    SPINDLE_PRG_SETUP
    const u64 blocks = (n + 3) / 4;
    SPINDLE_FOR(j, blocks) {
        const u64 lo = first_block + j;
        const u64 hi = stream + (lo < first_block ? 1u : 0u);
        u32 w[4];
        spindle_ctr_block(w, hi, lo, rk, te0, sbox);
        for (u32 t = 0; t < 4; ++t)
            if (4 * j + t < n) out[4 * j + t] = spindle_bswap32(w[t]);
    }
}
