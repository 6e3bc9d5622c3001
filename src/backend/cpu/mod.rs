//! The CPU backend: the reference implementation and test oracle.
//!
//! Elementwise ops are rayon-parallel above a size threshold; the ring GEMM
//! is a packed, register-tiled kernel ([`gemm`]); convolution lowers to GEMM
//! through im2col ([`conv`]).

mod amx;
pub mod conv;
mod dabit;
pub mod gemm;
mod steps;

use rayon::prelude::*;

use super::{bilinear::matmul_shape, Backend, Conv2dParams};
use crate::error::Result;
use crate::prg::{Prg, Seed};
use crate::ring::{Ring, RingTensor, Shape, TruncStep};
use gemm::Parallelism;

/// Below this many elements, elementwise ops stay on the calling thread.
const PAR_THRESHOLD: usize = 1 << 15;

/// The CPU backend. `parallelism` selects rayon or a single thread.
#[derive(Debug, Clone, Copy)]
pub struct CpuBackend {
    /// Threading of GEMM and elementwise kernels.
    pub parallelism: Parallelism,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend {
            parallelism: Parallelism::Rayon,
        }
    }
}

impl CpuBackend {
    fn zip<R: Ring>(
        &self,
        a: &RingTensor<R>,
        b: &RingTensor<R>,
        op: &'static str,
        f: impl Fn(R, R) -> R + Sync,
    ) -> Result<RingTensor<R>> {
        a.check_same_shape(b, op)?;
        let mut out = vec![R::ZERO; a.numel()];
        let body = |(o, (x, y)): (&mut R, (&R, &R))| *o = f(*x, *y);
        if self.parallel(a.numel()) {
            out.par_iter_mut()
                .zip(a.data().par_iter().zip(b.data()))
                .for_each(body);
        } else {
            out.iter_mut()
                .zip(a.data().iter().zip(b.data()))
                .for_each(body);
        }
        Ok(RingTensor::new(a.shape().clone(), out)?)
    }

    fn map<R: Ring>(&self, a: &RingTensor<R>, f: impl Fn(R) -> R + Sync) -> RingTensor<R> {
        let data: Vec<R> = if self.parallel(a.numel()) {
            a.data().par_iter().map(|&x| f(x)).collect()
        } else {
            a.data().iter().map(|&x| f(x)).collect()
        };
        RingTensor::new(a.shape().clone(), data).expect("same numel")
    }

    fn parallel(&self, n: usize) -> bool {
        self.parallelism == Parallelism::Rayon && n >= PAR_THRESHOLD
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }
    fn add<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.zip(a, b, "add", R::wrapping_add)
    }
    fn sub<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.zip(a, b, "sub", R::wrapping_sub)
    }
    fn mul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.zip(a, b, "mul", R::wrapping_mul)
    }
    fn add_assign<R: Ring>(&self, a: &mut RingTensor<R>, b: &RingTensor<R>) -> Result<()> {
        a.check_same_shape(b, "add_assign")?;
        let par = self.parallel(a.numel());
        let body = |(x, y): (&mut R, &R)| *x = x.wrapping_add(*y);
        if par {
            a.data_mut().par_iter_mut().zip(b.data()).for_each(body);
        } else {
            a.data_mut().iter_mut().zip(b.data()).for_each(body);
        }
        Ok(())
    }
    fn neg<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        Ok(self.map(a, R::wrapping_neg))
    }
    fn mul_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        Ok(self.map(a, |x| x.wrapping_mul(s)))
    }
    fn add_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        Ok(self.map(a, |x| x.wrapping_add(s)))
    }
    fn ashr<R: Ring>(&self, a: &RingTensor<R>, s: u32) -> Result<RingTensor<R>> {
        Ok(self.map(a, |x| x.ashr(s)))
    }
    fn matmul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        let out_shape = matmul_shape(a.shape(), b.shape())?;
        let (batch, m, k, n) = match (a.dims(), b.dims()) {
            ([m, k], [_, n]) => (1, *m, *k, *n),
            ([bt, m, k], [_, _, n]) => (*bt, *m, *k, *n),
            _ => unreachable!("matmul_shape accepted only rank 2 or 3"),
        };
        let mut out = vec![R::ZERO; batch * m * n];
        for i in 0..batch {
            gemm::gemm(
                m,
                k,
                n,
                &a.data()[i * m * k..(i + 1) * m * k],
                &b.data()[i * k * n..(i + 1) * k * n],
                &mut out[i * m * n..(i + 1) * m * n],
                self.parallelism,
            );
        }
        Ok(RingTensor::new(out_shape, out)?)
    }
    fn conv2d<R: Ring>(
        &self,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
    ) -> Result<RingTensor<R>> {
        conv::conv2d(x, w, p, self.parallelism)
    }
    fn conv2d_grad_weight<R: Ring>(
        &self,
        x: &RingTensor<R>,
        g: &RingTensor<R>,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<RingTensor<R>> {
        conv::conv2d_grad_weight(x, g, p, kernel, self.parallelism)
    }
    fn conv2d_grad_input<R: Ring>(
        &self,
        g: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<RingTensor<R>> {
        conv::conv2d_grad_input(g, w, p, input, self.parallelism)
    }
    fn transpose<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        let d = a.dims();
        if d.len() < 2 {
            return Err(crate::Error::shape(
                "transpose",
                format!("needs rank >= 2, got {}", a.shape()),
            ));
        }
        let (m, n) = (d[d.len() - 2], d[d.len() - 1]);
        let batch = a.numel() / (m * n).max(1);
        let mut out = vec![R::ZERO; a.numel()];
        for b in 0..batch {
            let (src, dst) = (
                &a.data()[b * m * n..(b + 1) * m * n],
                &mut out[b * m * n..(b + 1) * m * n],
            );
            for i in 0..m {
                for j in 0..n {
                    dst[j * m + i] = src[i * n + j];
                }
            }
        }
        let mut shape = d.to_vec();
        shape.swap(d.len() - 2, d.len() - 1);
        Ok(RingTensor::new(shape, out)?)
    }
    fn trunc_combine<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: &RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        self.trunc_combine_into(c, r_shifted.clone(), r_msb, frac_bits, party0)
    }
    fn trunc_combine_into<R: Ring>(
        &self,
        c: &RingTensor<R>,
        mut r_shifted: RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        c.check_same_shape(&r_shifted, "trunc_combine")?;
        c.check_same_shape(r_msb, "trunc_combine")?;
        let n = c.numel();
        let body = |(o, (cv, rm)): TruncChunk<'_, R>| match party0 {
            true => trunc_combine_slice::<R, true>(o, cv, rm, frac_bits),
            false => trunc_combine_slice::<R, false>(o, cv, rm, frac_bits),
        };
        const CHUNK: usize = 1 << 14;
        let (cd, rm) = (c.data(), r_msb.data());
        if self.parallel(n) {
            r_shifted
                .data_mut()
                .par_chunks_mut(CHUNK)
                .zip(cd.par_chunks(CHUNK).zip(rm.par_chunks(CHUNK)))
                .for_each(body);
        } else {
            r_shifted
                .data_mut()
                .chunks_mut(CHUNK)
                .zip(cd.chunks(CHUNK).zip(rm.chunks(CHUNK)))
                .for_each(body);
        }
        Ok(r_shifted)
    }
    fn beaver_mul_combine<R: Ring>(
        &self,
        mut c: RingTensor<R>,
        e: &RingTensor<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        for t in [e, b, x, f] {
            c.check_same_shape(t, "beaver_mul_combine")?;
        }
        const CHUNK: usize = 1 << 14;
        let n = c.numel();
        let (e, b, x, f) = (e.data(), b.data(), x.data(), f.data());
        let body = |(k, out): (usize, &mut [R])| {
            let (i0, len) = (k * CHUNK, out.len());
            let r = i0..i0 + len;
            let (e, b, x, f) = (&e[r.clone()], &b[r.clone()], &x[r.clone()], &f[r]);
            for i in 0..len {
                out[i] = out[i]
                    .wrapping_add(e[i].wrapping_mul(b[i]))
                    .wrapping_add(x[i].wrapping_mul(f[i]));
            }
        };
        if self.parallel(n) {
            c.data_mut()
                .par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(body);
        } else {
            c.data_mut().chunks_mut(CHUNK).enumerate().for_each(body);
        }
        Ok(c)
    }
    fn prg_tensor<R: Ring>(
        &self,
        seed: &Seed,
        stream: u64,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        Ok(Prg::new(seed, stream).tensor(shape.clone()))
    }
}

/// One chunk of [`trunc_combine_slice`]'s r' (overwritten by the output)
/// and inputs (c, r_msb).
type TruncChunk<'a, R> = (&'a mut [R], (&'a [R], &'a [R]));

/// The local step of dealer truncation on slices ([`TruncStep`]): from
/// the opened c = x + 2^(k-2) + r and this party's shares of
/// r' = (r mod 2^(k-1)) >> f (`out` on entry) and of r's top bit, this
/// party's share of x >> f (`out` on return).
#[inline(always)]
fn trunc_combine_slice<R: Ring, const PARTY0: bool>(
    out: &mut [R],
    c: &[R],
    r_msb: &[R],
    frac_bits: u32,
) {
    let step = TruncStep::<R>::new(frac_bits);
    for ((o, &cv), &rm) in out.iter_mut().zip(c).zip(r_msb) {
        *o = step.share::<PARTY0>(cv, *o, rm);
    }
}
