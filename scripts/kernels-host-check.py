#!/usr/bin/env python3
"""Host emulation of the CUDA kernels in kernels/ (no GPU, no NVRTC).

Compiles each kernel file with g++ as C++ under a shim that makes every
launch a single thread (blockIdx = threadIdx = 0, blockDim = gridDim = 1;
the grid-stride loops then cover all elements) and calls the kernels through
ctypes against independent Python references: AES-128-CTR from the
`cryptography` package with the counter layout of src/prg.rs, and direct
re-statements of the CPU backend's trunc_combine, im2col/col2im, pooling,
layout (axis sums, broadcasts, copies, permutations),
bit-slicing, limb split / recombination (the limb GEMM of src/backend/limb)
and elementwise ops; the carry-circuit kernels run as N parties computing
the MSB of random values.

What this checks: the arithmetic and indexing of each kernel body. What it
cannot check: anything that needs several threads (warp ballots in
bitslice_*, the shared-memory tiles of gemm_*), launch geometry, and the
device compiler itself. Those stay for the GPU parity tests
(tests/gpu_parity.rs). Needs g++, numpy and cryptography.

Usage: scripts/kernels-host-check.py   (exit status 0 when every check passes)
"""
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KDIR = os.path.join(ROOT, "kernels")

SHIM = r"""
struct spindle_dim3 { unsigned x, y, z; };
static spindle_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0};
static spindle_dim3 blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
#define __global__
#define __device__
#define __forceinline__ inline
#define __constant__ static
#define __shared__ static
#define __syncthreads() ((void)0)
static unsigned __ballot_sync(unsigned, unsigned) { return 0; } /* not emulated */
"""

U64, U32, U8 = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint8
rng = np.random.default_rng(12345)
failures = []


def build(name):
    tmp = tempfile.mkdtemp(prefix="spindle-khost-")
    src = os.path.join(tmp, name + ".cpp")
    with open(src, "w") as f:
        f.write(SHIM)
        f.write(open(os.path.join(KDIR, "common.cuh")).read().replace("#pragma once", ""))
        f.write(open(os.path.join(KDIR, name + ".cu")).read())
    lib = os.path.join(tmp, "lib" + name + ".so")
    try:
        subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-w", "-o", lib, src], check=True)
        return ctypes.CDLL(lib)
    finally:
        # A loaded library stays mapped after its file is gone.
        shutil.rmtree(tmp, ignore_errors=True)


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def check(what, got, want):
    ok = np.array_equal(np.asarray(got), np.asarray(want))
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def rand(dt, n):
    return rng.integers(0, np.iinfo(dt).max, size=n, dtype=dt, endpoint=True)


def prg_reference(seed, stream, nbytes):
    iv = ((stream << 64) % (1 << 128)).to_bytes(16, "big")
    enc = Cipher(algorithms.AES(seed), modes.CTR(iv)).encryptor()
    return enc.update(bytes(nbytes))


def test_prg():
    lib = build("prg")
    for dt, fn in [(np.uint64, lib.prg_fill_u64), (np.uint32, lib.prg_fill_u32)]:
        for n in [1, 2, 3, 5, 8, 257]:
            seed = bytes(rng.integers(0, 256, 16, dtype=np.uint8))
            stream = int(rng.integers(0, 2**63))
            out = np.zeros(n, dtype=dt)
            fn(ptr(out), U64(n), U64(int.from_bytes(seed[:8], "big")),
               U64(int.from_bytes(seed[8:], "big")), U64(stream), U64(0))
            want = np.frombuffer(prg_reference(seed, stream, n * out.itemsize), dtype="<" + np.dtype(dt).str[1:])
            check(f"prg_fill_{np.dtype(dt).name} n={n}", out, want)
    # FIPS-197 C.1 key on counter zero (the CPU PRG's own known answer).
    key = bytes(range(16))
    out = np.zeros(2, dtype=np.uint64)
    lib.prg_fill_u64(ptr(out), U64(2), U64(int.from_bytes(key[:8], "big")),
                     U64(int.from_bytes(key[8:], "big")), U64(0), U64(0))
    check("prg FIPS-197 C.1", out.tobytes().hex(), "c6a13b37878f5b826f4f8162a1c8d879")
    # Counter carry from the block half into the stream half.
    out = np.zeros(4, dtype=np.uint64)
    lib.prg_fill_u64(ptr(out), U64(4), U64(1), U64(2), U64(7), U64(2**64 - 1))
    iv = (7 * 2**64 + 2**64 - 1).to_bytes(16, "big")
    enc = Cipher(algorithms.AES((1).to_bytes(8, "big") + (2).to_bytes(8, "big")), modes.CTR(iv)).encryptor()
    check("prg counter carry", out.tobytes(), enc.update(bytes(32)))


def test_elementwise():
    lib = build("elementwise")
    for dt, bits, suf in [(np.uint32, 32, "u32"), (np.uint64, 64, "u64")]:
        n = 1000
        a, b, c, e, f = (rand(dt, n) for _ in range(5))
        out = np.zeros(n, dtype=dt)
        T = U32 if bits == 32 else U64
        with np.errstate(over="ignore"):
            for op, ref in [("add", a + b), ("sub", a - b), ("mul", a * b)]:
                getattr(lib, f"{op}_{suf}")(ptr(out), ptr(a), ptr(b), U64(n))
                check(f"{op}_{suf}", out, ref)
            getattr(lib, f"neg_{suf}")(ptr(out), ptr(a), U64(n))
            check(f"neg_{suf}", out, (dt(0) - a))
            s = dt(rand(dt, 1)[0])
            getattr(lib, f"mul_scalar_{suf}")(ptr(out), ptr(a), T(int(s)), U64(n))
            check(f"mul_scalar_{suf}", out, a * s)
            getattr(lib, f"add_scalar_{suf}")(ptr(out), ptr(a), T(int(s)), U64(n))
            check(f"add_scalar_{suf}", out, a + s)
            sdt = np.int32 if bits == 32 else np.int64
            for sh in [0, 1, 13, bits - 1]:
                getattr(lib, f"ashr_{suf}")(ptr(out), ptr(a), U32(sh), U64(n))
                check(f"ashr_{suf} s={sh}", out, (a.view(sdt) >> sh).view(dt))
            getattr(lib, f"beaver_combine_{suf}")(ptr(out), ptr(c), ptr(e), ptr(b), ptr(a), ptr(f), U64(n))
            check(f"beaver_combine_{suf}", out, c + e * b + a * f)
            acc = a.copy()
            getattr(lib, f"add_assign_{suf}")(ptr(acc), ptr(b), U64(n))
            check(f"add_assign_{suf}", acc, a + b)
            cast = np.zeros(n, dtype=np.uint32)
            for add, sh in [(0, 0), (int(s), 9), (int(s), bits - 1)]:
                getattr(lib, f"cast_u32_{suf}")(ptr(cast), ptr(a), T(add), U32(sh), U64(n))
                want = (((a + dt(add)).astype(dt)) >> dt(sh)).astype(np.uint64) & 0xFFFFFFFF
                check(f"cast_u32_{suf} add shift={sh}", cast, want.astype(np.uint32))


def trunc_reference(c, rs, rm, f, p0, bits):
    m = 1 << bits
    out = []
    for cv, r1, r2 in zip(c.tolist(), rs.tolist(), rm.tolist()):
        cmsb = cv >> (bits - 1)
        b = (r2 * (1 - 2 * cmsb)) % m
        z = (-r1) % m
        if p0:
            b = (b + cmsb) % m
            z = (z + ((cv & ((1 << (bits - 1)) - 1)) >> f) - (1 << (bits - 2 - f))) % m
        out.append((z + b * (1 << (bits - 1 - f))) % m)
    return out


def test_trunc():
    lib = build("trunc")
    for dt, bits, suf in [(np.uint32, 32, "u32"), (np.uint64, 64, "u64")]:
        n = 500
        c, rs, rm = rand(dt, n), rand(dt, n), rand(dt, n)
        out = np.zeros(n, dtype=dt)
        for f in [0, 8, 20, bits - 2]:
            for p0 in [0, 1]:
                getattr(lib, f"trunc_combine_{suf}")(ptr(out), ptr(c), ptr(rs), ptr(rm), U32(f), U32(p0), U64(n))
                check(f"trunc_combine_{suf} f={f} p0={p0}", out.tolist(), trunc_reference(c, rs, rm, f, p0, bits))


def bitslice(x, bits):
    """Planes [bits][words] of the values x (element e at bit e % 64 of word e // 64)."""
    n = len(x)
    words = (n + 63) // 64
    planes = np.zeros(bits * words, dtype=np.uint64)
    for j in range(bits):
        for e_ in range(n):
            if (int(x[e_]) >> j) & 1:
                planes[j * words + e_ // 64] |= np.uint64(1 << (e_ % 64))
    return planes


def test_binary():
    lib = build("binary")
    n = 300
    a, b, c, e, f = (rand(np.uint64, n) for _ in range(5))
    out = np.zeros(n, dtype=np.uint64)
    lib.xor_words(ptr(out), ptr(a), ptr(b), U64(n)); check("xor_words", out, a ^ b)
    lib.and_words(ptr(out), ptr(a), ptr(b), U64(n)); check("and_words", out, a & b)
    lib.not_words(ptr(out), ptr(a), U64(n)); check("not_words", out, ~a)
    for p0 in [0, 2**64 - 1]:
        lib.and_combine_words(ptr(out), ptr(c), ptr(e), ptr(f), ptr(a), ptr(b), U64(p0), U64(n))
        check(f"and_combine_words p0={p0 != 0}", out, c ^ (e & b) ^ (f & a) ^ (e & f & np.uint64(p0)))
    for dt, bits, suf in [(np.uint32, 32, "u32"), (np.uint64, 64, "u64")]:
        for n in [1, 64, 65, 300]:
            x = rand(dt, n)
            words = (n + 63) // 64
            planes = bitslice(x, bits)
            out = np.zeros(n, dtype=dt)
            for np_ in [bits, bits // 2]:
                getattr(lib, f"unbitslice_{suf}")(ptr(out), ptr(planes), U64(n), U64(words), U64(np_))
                want = x if np_ == bits else (x & dt((1 << np_) - 1))
                check(f"unbitslice_{suf} n={n} planes={np_}", out, want)


def test_carry():
    """MSB through the carry kernels, run as N parties would: random x and
    mask r, c = x + r public, r's bit planes XOR-shared, one random binary
    triple per level, e and f opened by XOR. The XOR of the parties' results
    must be bit b-1 of x (the sign for |x| < 2^(b-1)), an independent check
    of the tree and of the AND ordering of src/protocol/compare.rs."""
    lib = build("carry")
    ones = np.uint64(2**64 - 1)
    for k, bits, n, parties in [(64, 64, 300, 2), (64, 28, 130, 3), (32, 32, 64, 2), (32, 2, 70, 4), (64, 3, 65, 2)]:
        mod = 1 << k
        x = [int(v) % mod for v in rng.integers(-(2**62), 2**62, size=n)]
        r = [int(v) % mod for v in rng.integers(0, 2**63, size=n)]
        c_vals = [(a + b) % mod for a, b in zip(x, r)]
        words = (n + 63) // 64
        c_planes = bitslice(c_vals, k)
        r_planes = bitslice(r, k)
        r_sh = [rand(np.uint64, k * words) for _ in range(parties - 1)]
        last = r_planes.copy()
        for sh in r_sh:
            last ^= sh
        r_sh.append(last)
        nodes = bits - 1
        G = [np.zeros(nodes * words, dtype=np.uint64) for _ in range(parties)]
        P = [np.zeros(nodes * words, dtype=np.uint64) for _ in range(parties)]
        top = [np.zeros(words, dtype=np.uint64) for _ in range(parties)]
        for i in range(parties):
            flip = ones if i == 0 else np.uint64(0)
            lib.carry_leaves(ptr(G[i]), ptr(P[i]), ptr(top[i]), ptr(c_planes), ptr(r_sh[i]),
                             U64(bits), U64(words), U64(flip))
        while nodes > 1:
            pairs = nodes // 2
            ands = 2 * pairs - 1
            a = [rand(np.uint64, ands * words) for _ in range(parties)]
            b = [rand(np.uint64, ands * words) for _ in range(parties)]
            A = np.bitwise_xor.reduce(a)
            B = np.bitwise_xor.reduce(b)
            cs = [rand(np.uint64, ands * words) for _ in range(parties - 1)]
            cs.append((A & B) ^ np.bitwise_xor.reduce(cs) if cs else (A & B))
            e = [np.zeros(ands * words, dtype=np.uint64) for _ in range(parties)]
            f = [np.zeros(ands * words, dtype=np.uint64) for _ in range(parties)]
            for i in range(parties):
                lib.carry_level_mask(ptr(e[i]), ptr(f[i]), ptr(G[i]), ptr(P[i]), ptr(a[i]), ptr(b[i]),
                                     U64(pairs), U64(words))
            E, F = np.bitwise_xor.reduce(e), np.bitwise_xor.reduce(f)
            nxt = (nodes + 1) // 2
            for i in range(parties):
                G2 = np.zeros(nxt * words, dtype=np.uint64)
                P2 = np.zeros(nxt * words, dtype=np.uint64)
                p0 = ones if i == 0 else np.uint64(0)
                lib.carry_level_combine(ptr(G2), ptr(P2), ptr(G[i]), ptr(P[i]), ptr(E), ptr(F), ptr(a[i]),
                                        ptr(b[i]), ptr(cs[i]), U64(nodes), U64(words), U64(p0))
                G[i], P[i] = G2, P2
            nodes = nxt
        msb = np.bitwise_xor.reduce([top[i] ^ G[i][:words] for i in range(parties)])
        got = [int((int(msb[e_ // 64]) >> (e_ % 64)) & 1) for e_ in range(n)]
        want = [(v >> (bits - 1)) & 1 for v in x]
        check(f"carry_* MSB k={k} bits={bits} n={n} parties={parties}", got, want)


def test_adder():
    """A2B through the adder kernels, run as N parties would: random x and
    mask r, c = x + r public, r's bit planes XOR-shared, each level's ANDs
    done by an ideal AND (the XOR of the parties' inputs ANDed, reshared at
    random). The XOR of the parties' sums must be x's bit planes: an
    independent check of the Kogge-Stone levels of src/protocol/convert.rs."""
    lib = build("adder")
    ones = np.uint64(2**64 - 1)

    def share(v, parties):
        sh = [rand(np.uint64, len(v)) for _ in range(parties - 1)]
        last = v.copy()
        for t in sh:
            last ^= t
        return sh + [last]

    for k, n, parties in [(64, 300, 2), (32, 130, 3), (32, 64, 4), (64, 1, 2)]:
        mod = 1 << k
        x = [int(v) % mod for v in rng.integers(-(2**62), 2**62, size=n)]
        r = [int(v) % mod for v in rng.integers(0, 2**63, size=n)]
        words = (n + 63) // 64
        c_planes = bitslice([(a + b) % mod for a, b in zip(x, r)], k)
        r_sh = share(bitslice(r, k), parties)
        size = k * words
        G, P, p = ([np.zeros(size, dtype=np.uint64) for _ in range(parties)] for _ in range(3))
        for i in range(parties):
            flip = ones if i == 0 else np.uint64(0)
            lib.adder_leaves(ptr(G[i]), ptr(P[i]), ptr(p[i]), ptr(c_planes), ptr(r_sh[i]),
                             U64(k), U64(words), U64(flip))
        dist = 1
        while dist < k:
            Gx, Px = np.bitwise_xor.reduce(G), np.bitwise_xor.reduce(P)
            pg = share(Px[dist * words:] & Gx[:(k - dist) * words], parties)
            if 2 * dist < k:
                npp = share(Px[2 * dist * words:] & Px[dist * words:(k - dist) * words], parties)
            else:
                npp = [pg[i] for i in range(parties)]  # not read
            for i in range(parties):
                G2, P2 = np.zeros(size, dtype=np.uint64), np.zeros(size, dtype=np.uint64)
                lib.adder_level(ptr(G2), ptr(P2), ptr(G[i]), ptr(P[i]), ptr(pg[i]), ptr(npp[i]),
                                U64(dist), U64(k), U64(words))
                G[i], P[i] = G2, P2
            dist *= 2
        out = []
        for i in range(parties):
            o = np.zeros(size, dtype=np.uint64)
            flip = ones if i == 0 else np.uint64(0)
            lib.adder_sum(ptr(o), ptr(p[i]), ptr(G[i]), U64(k), U64(words), U64(flip))
            out.append(o)
        got = np.bitwise_xor.reduce(out)
        want = bitslice(x, k)
        # Bits past n in the last word are unspecified.
        if n % 64:
            tail = np.uint64((1 << (n % 64)) - 1)
            got = got.copy()
            want = want.copy()
            for j in range(k):
                got[j * words + words - 1] &= tail
                want[j * words + words - 1] &= tail
        check(f"adder_* A2B k={k} n={n} parties={parties}", got, want)


def conv_geometry():
    return [((2, 3, 9, 7), (3, 3), (1, 1), (0, 0)), ((1, 2, 8, 8), (5, 5), (2, 1), (2, 1)),
            ((2, 1, 6, 5), (2, 3), (2, 3), (1, 2))]


def test_conv_and_pool():
    lib = build("conv")
    plib = build("pool")
    for dt, suf in [(np.uint32, "u32"), (np.uint64, "u64")]:
        for (n, c, h, w), (kh, kw), (sh, sw), (ph, pw) in conv_geometry():
            ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            x = rand(dt, n * c * h * w)
            xi = x.reshape(n, c, h, w)
            want = np.zeros((n, c * kh * kw, ho * wo), dtype=dt)
            for img in range(n):
                for ci in range(c):
                    for ki in range(kh):
                        for kj in range(kw):
                            row = (ci * kh + ki) * kw + kj
                            for oy in range(ho):
                                for ox in range(wo):
                                    iy, ix = oy * sh + ki - ph, ox * sw + kj - pw
                                    if 0 <= iy < h and 0 <= ix < w:
                                        want[img, row, oy * wo + ox] = xi[img, ci, iy, ix]
            cols = np.zeros(want.size, dtype=dt)
            args = [U64(v) for v in (n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo)]
            getattr(lib, f"im2col_{suf}")(ptr(cols), ptr(x), *args)
            check(f"im2col_{suf} {n,c,h,w} k={kh,kw} s={sh,sw} p={ph,pw}", cols, want.ravel())
            # col2im: the CPU's scatter-add.
            src = rand(dt, want.size).reshape(want.shape)
            img_want = np.zeros((n, c, h, w), dtype=dt)
            with np.errstate(over="ignore"):
                for img in range(n):
                    for ci in range(c):
                        for ki in range(kh):
                            for kj in range(kw):
                                row = (ci * kh + ki) * kw + kj
                                for oy in range(ho):
                                    for ox in range(wo):
                                        iy, ix = oy * sh + ki - ph, ox * sw + kj - pw
                                        if 0 <= iy < h and 0 <= ix < w:
                                            img_want[img, ci, iy, ix] += src[img, row, oy * wo + ox]
            got = np.zeros(n * c * h * w, dtype=dt)
            getattr(lib, f"col2im_{suf}")(ptr(got), ptr(src.ravel().copy()), *args)
            check(f"col2im_{suf} {n,c,h,w} k={kh,kw} s={sh,sw} p={ph,pw}", got, img_want.ravel())
            # Pooling: windows [nc][ho][wo][kk] with pad, and the routing back.
            pad = dt(rand(dt, 1)[0])
            nc, kk = n * c, kh * kw
            win_want = np.full((nc, ho, wo, kk), pad, dtype=dt)
            xp = x.reshape(nc, h, w)
            for img in range(nc):
                for oy in range(ho):
                    for ox in range(wo):
                        for ki in range(kh):
                            for kj in range(kw):
                                iy, ix = oy * sh + ki - ph, ox * sw + kj - pw
                                if 0 <= iy < h and 0 <= ix < w:
                                    win_want[img, oy, ox, ki * kw + kj] = xp[img, iy, ix]
            win = np.zeros(win_want.size, dtype=dt)
            T = U32 if dt == np.uint32 else U64
            pargs = [U64(v) for v in (nc, h, w, kh, kw, sh, sw, ph, pw, ho, wo)]
            getattr(plib, f"pool_gather_{suf}")(ptr(win), ptr(x), T(int(pad)), *pargs)
            check(f"pool_gather_{suf} {nc,h,w} k={kh,kw}", win, win_want.ravel())
            routed = rand(dt, win_want.size)
            r4 = routed.reshape(nc, ho, wo, kk)
            gin_want = np.zeros((nc, h, w), dtype=dt)
            with np.errstate(over="ignore"):
                for img in range(nc):
                    for oy in range(ho):
                        for ox in range(wo):
                            for ki in range(kh):
                                for kj in range(kw):
                                    iy, ix = oy * sh + ki - ph, ox * sw + kj - pw
                                    if 0 <= iy < h and 0 <= ix < w:
                                        gin_want[img, iy, ix] += r4[img, oy, ox, ki * kw + kj]
            gin = np.zeros(nc * h * w, dtype=dt)
            getattr(plib, f"pool_scatter_{suf}")(ptr(gin), ptr(routed), *pargs)
            check(f"pool_scatter_{suf} {nc,h,w} k={kh,kw}", gin, gin_want.ravel())


def test_layout():
    """axis_sum / axis_broadcast / axis_copy / permute against numpy."""
    lib = build("layout")
    for dt, suf in [(np.uint32, "u32"), (np.uint64, "u64")]:
        for outer, ln, inner in [(3, 5, 4), (1, 7, 1), (4, 1, 6)]:
            x = rand(dt, outer * ln * inner)
            x3 = x.reshape(outer, ln, inner)
            got = np.zeros(outer * inner, dtype=dt)
            getattr(lib, f"axis_sum_{suf}")(ptr(got), ptr(x), U64(outer), U64(ln), U64(inner))
            with np.errstate(over="ignore"):
                want = x3.sum(axis=1, dtype=dt)
            check(f"axis_sum_{suf} {outer, ln, inner}", got, want.ravel())
            r = rand(dt, outer * inner)
            got = np.zeros(outer * ln * inner, dtype=dt)
            getattr(lib, f"axis_broadcast_{suf}")(ptr(got), ptr(r), U64(outer), U64(ln), U64(inner))
            want = np.broadcast_to(r.reshape(outer, 1, inner), (outer, ln, inner))
            check(f"axis_broadcast_{suf} {outer, ln, inner}", got, want.ravel())
            # A slice [start, start + count) into the middle of a wider axis.
            start, count, dst_len, at = ln // 3, ln - ln // 3, ln + 2, 1
            dst = rand(dt, outer * dst_len * inner)
            want = dst.reshape(outer, dst_len, inner).copy()
            want[:, at:at + count, :] = x3[:, start:start + count, :]
            args = [U64(v) for v in (outer, ln, dst_len, inner, start, at, count)]
            getattr(lib, f"axis_copy_{suf}")(ptr(dst), ptr(x), *args)
            check(f"axis_copy_{suf} {outer, ln, inner} [{start}, +{count}) -> {at}", dst, want.ravel())
        for dims, perm in [((2, 3, 4, 5), (0, 2, 3, 1)), ((4, 6), (1, 0)), ((2, 1, 3, 2, 2, 3), (5, 0, 4, 1, 3, 2))]:
            x = rand(dt, int(np.prod(dims)))
            want = np.transpose(x.reshape(dims), perm)
            strides = [int(np.prod(dims[a + 1:])) for a in range(len(dims))]
            pad = 6 - len(dims)
            d = [1] * pad + [dims[p] for p in perm]
            st = [0] * pad + [strides[p] for p in perm]
            got = np.zeros(x.size, dtype=dt)
            getattr(lib, f"permute_{suf}")(ptr(got), ptr(x), U64(x.size), *[U64(v) for v in d + st])
            check(f"permute_{suf} {dims} {perm}", got, want.ravel())


def test_gemm_helpers():
    lib = build("gemm")
    for dt, bits, suf in [(np.uint32, 32, "u32"), (np.uint64, 64, "u64")]:
        bt, m, n = 3, 5, 7
        a = rand(dt, bt * m * n)
        out = np.zeros_like(a)
        getattr(lib, f"transpose_{suf}")(ptr(out), ptr(a), U64(bt), U64(m), U64(n))
        check(f"transpose_{suf}", out, a.reshape(bt, m, n).transpose(0, 2, 1).ravel())
        test_limb_gemm(lib, dt, bits, suf)


def test_limb_gemm(lib, dt, bits, suf):
    """The limb GEMM of src/backend/limb through the split and accumulate
    kernels, with each diagonal's stacked GEMM done exactly in numpy: checks
    the digit encodings, the padded [rows][slot][kp] layouts, and the
    sign-extending recombination against the exact product mod 2^k."""
    bt, m, k, n, kp, ldc = 2, 3, 37, 5, 48, 8
    ext = [np.iinfo(dt).max, int("80" * (bits // 8), 16), int("7f" * (bits // 8 - 1) + "80", 16), 0]
    for path, balanced in [("i8", 1), ("f64", 0), ("f64", 1)]:
        w = 8 if path == "i8" else 16
        L = bits // w
        ldt = np.int8 if path == "i8" else np.float64
        A, B = rand(dt, bt * m * k), rand(dt, bt * k * n)
        A[: len(ext)] = ext
        B[: len(ext)] = ext[::-1]
        extra = [U32(balanced)] if path == "f64" else []
        split = getattr(lib, f"limb_split_{path}_{suf}")
        sa = np.full(bt * m * L * kp, 99, dtype=ldt)
        split(ptr(sa), ptr(A), U64(bt), U64(m), U64(m), U64(k), U64(kp), U64(m * k), U64(k), U64(1), U32(0), *extra)
        npad = n + 3  # B's columns padded: rows n..npad of the split are zero
        sb = np.full(bt * npad * L * kp, 99, dtype=ldt)
        split(ptr(sb), ptr(B), U64(bt), U64(npad), U64(n), U64(k), U64(kp), U64(k * n), U64(1), U64(n), U32(1), *extra)
        check(f"limb_split_{path}_{suf} zero padded columns", bool((sb.reshape(bt, npad, L * kp)[:, n:] == 0).all()), True)
        sb = np.ascontiguousarray(sb.reshape(bt, npad, L * kp)[:, :n]).ravel()
        lo, hi = ((-(1 << (w - 1)), (1 << (w - 1)) - 1) if balanced else (0, (1 << w) - 1))
        SA = sa.reshape(bt, m, L, kp).astype(np.int64).astype(object)
        SB = sb.reshape(bt, n, L, kp).astype(np.int64).astype(object)
        rec_a = sum(SA[:, :, l, :k] << (w * l) for l in range(L)) % (1 << bits)
        rec_b = sum(SB[:, :, L - 1 - l, :k] << (w * l) for l in range(L)) % (1 << bits)
        name = f"limb_split_{path}_{suf}" + (" balanced" if balanced else "")
        check(name + " digits of A", rec_a, A.reshape(bt, m, k).astype(object))
        check(name + " digits of B (reversed, by column)", rec_b, B.reshape(bt, k, n).transpose(0, 2, 1).astype(object))
        check(name + " range and zero padding",
              [bool(((sa >= lo) & (sa <= hi)).all()), bool((SA[:, :, :, k:] == 0).all()), bool((SB[:, :, :, k:] == 0).all())],
              [True, True, True])
        out = np.full(bt * m * n, 7, dtype=dt)
        accum = getattr(lib, f"limb_accum_{'i32' if path == 'i8' else 'f64'}_{suf}")
        ra, rb = sa.reshape(bt, m, L * kp).astype(np.int64), sb.reshape(bt, n, L * kp).astype(np.int64)
        for s in range(L):  # diagonal s: [A_0 .. A_s] x [B_s; ..; B_0]
            c = np.einsum("bmt,bnt->bmn", ra[:, :, : (s + 1) * kp], rb[:, :, (L - 1 - s) * kp :])
            cp = np.zeros((bt, m, ldc), dtype=np.int32 if path == "i8" else np.float64)
            cp[:, :, :n] = c
            accum(ptr(out), ptr(cp), U64(bt * m), U64(n), U64(ldc), U32(w * s), U32(s == 0))
        want = np.einsum("bmk,bkn->bmn", A.reshape(bt, m, k).astype(object), B.reshape(bt, k, n).astype(object))
        check(f"limb GEMM {name} via limb_accum (k={bits})", out, (want % (1 << bits)).astype(dt).ravel())

if __name__ == "__main__":
    test_prg()
    test_elementwise()
    test_trunc()
    test_binary()
    test_carry()
    test_adder()
    test_conv_and_pool()
    test_layout()
    test_gemm_helpers()
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}")
        sys.exit(1)
    print("all host-emulation checks passed")
