//! Fused local kernels for the Beaver and truncation steps of
//! [`super::batch`]: one pass over memory where the generic backend ops
//! would take three or four (each allocating). CPU only, rayon-parallel
//! above a size threshold; candidates for [`crate::backend::Backend`] ops
//! once a GPU backend exists.

use rayon::prelude::*;

use crate::ring::{Ring, RingTensor};
use crate::share::Shared;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn par(n: usize) -> bool {
    n >= 4 * CHUNK
}

/// a - b (same shapes, checked by the caller's request).
pub(crate) fn sub<R: Ring>(a: &RingTensor<R>, b: &RingTensor<R>) -> RingTensor<R> {
    debug_assert_eq!(a.shape(), b.shape());
    let data: Vec<R> = if par(a.numel()) {
        a.data()
            .par_iter()
            .zip(b.data().par_iter())
            .map(|(x, y)| x.wrapping_sub(*y))
            .collect()
    } else {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| x.wrapping_sub(*y))
            .collect()
    };
    RingTensor::new(a.shape().clone(), data).expect("same numel")
}

/// r += x + bias.
pub(crate) fn add_assign_biased<R: Ring>(r: &mut RingTensor<R>, x: &RingTensor<R>, bias: R) {
    debug_assert_eq!(r.shape(), x.shape());
    zip1(r.data_mut(), x.data(), |o, v| {
        *o = o.wrapping_add(v).wrapping_add(bias)
    });
}

/// c += e * b + x * f.
pub(crate) fn beaver_mul_combine<R: Ring>(
    c: &mut RingTensor<R>,
    e: &RingTensor<R>,
    b: &RingTensor<R>,
    x: &RingTensor<R>,
    f: &RingTensor<R>,
) {
    let (e, b, x, f) = (e.data(), b.data(), x.data(), f.data());
    let body = |(i, chunk): (usize, &mut [R])| {
        let o = i * CHUNK;
        for (j, cv) in chunk.iter_mut().enumerate() {
            let k = o + j;
            *cv = cv
                .wrapping_add(e[k].wrapping_mul(b[k]))
                .wrapping_add(x[k].wrapping_mul(f[k]));
        }
    };
    let n = c.numel();
    if par(n) {
        c.data_mut()
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(body);
    } else {
        c.data_mut().chunks_mut(CHUNK).enumerate().for_each(body);
    }
}

/// The stacked [fan, ..] tensor of y_j - b_j (b stacked likewise).
pub(crate) fn fan_sub<R: Ring>(ys: &[&Shared<R>], b: &RingTensor<R>) -> RingTensor<R> {
    let n = ys.first().map_or(0, |y| y.numel());
    let mut out = Vec::with_capacity(b.numel());
    for (y, bj) in ys.iter().zip(b.data().chunks(n.max(1))) {
        out.extend(
            y.share()
                .data()
                .iter()
                .zip(bj)
                .map(|(y, b)| y.wrapping_sub(*b)),
        );
    }
    RingTensor::new(b.shape().clone(), out).expect("same numel")
}

/// The fan products z_j = c_j + e * b_j + x * f_j, each of x's shape
/// (c, b and f stacked [fan, ..]; e and x one operand's worth), each
/// written once into its own buffer.
pub(crate) fn fan_combine<R: Ring>(
    c: &RingTensor<R>,
    e: &RingTensor<R>,
    b: &RingTensor<R>,
    x: &RingTensor<R>,
    f: &RingTensor<R>,
) -> Vec<RingTensor<R>> {
    let (n, shape) = (x.numel(), x.shape().clone());
    let (e, x) = (e.data(), x.data());
    let z = |k: usize, (cv, (bv, fv)): (&R, (&R, &R))| {
        cv.wrapping_add(e[k].wrapping_mul(*bv))
            .wrapping_add(x[k].wrapping_mul(*fv))
    };
    let (cd, bd, fd) = (c.data(), b.data(), f.data());
    (0..c.numel().checked_div(n).unwrap_or(0))
        .map(|j| {
            let r = j * n..(j + 1) * n;
            let (cj, bj, fj) = (&cd[r.clone()], &bd[r.clone()], &fd[r]);
            let ops = cj.iter().zip(bj.iter().zip(fj));
            let data: Vec<R> = if par(n) {
                let ops = cj.par_iter().zip(bj.par_iter().zip(fj.par_iter()));
                ops.enumerate().map(|(k, o)| z(k, o)).collect()
            } else {
                ops.enumerate().map(|(k, o)| z(k, o)).collect()
            };
            RingTensor::new(shape.clone(), data).expect("same numel")
        })
        .collect()
}

/// c += e * (a + x).
pub(crate) fn beaver_sq_combine<R: Ring>(
    c: &mut RingTensor<R>,
    e: &RingTensor<R>,
    a: &RingTensor<R>,
    x: &RingTensor<R>,
) {
    let (e, a, x) = (e.data(), a.data(), x.data());
    let body = |(i, chunk): (usize, &mut [R])| {
        let o = i * CHUNK;
        for (j, cv) in chunk.iter_mut().enumerate() {
            let k = o + j;
            *cv = cv.wrapping_add(e[k].wrapping_mul(a[k].wrapping_add(x[k])));
        }
    };
    let n = c.numel();
    if par(n) {
        c.data_mut()
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(body);
    } else {
        c.data_mut().chunks_mut(CHUNK).enumerate().for_each(body);
    }
}

/// out = sum_i k_i * x_i + c (party 0 adds c): an exact integer linear
/// combination of shares, in one pass.
pub(crate) fn lincomb<R: Ring>(terms: &[(&RingTensor<R>, R)], c: R, len: usize) -> Vec<R> {
    let at = |i: usize| {
        terms.iter().fold(c, |acc, (x, k)| {
            acc.wrapping_add(x.data()[i].wrapping_mul(*k))
        })
    };
    match terms {
        [(x, k)] => {
            let f = |v: &R| v.wrapping_mul(*k).wrapping_add(c);
            if par(len) {
                x.data().par_iter().map(f).collect()
            } else {
                x.data().iter().map(f).collect()
            }
        }
        _ if par(len) => (0..len).into_par_iter().map(at).collect(),
        _ => (0..len).map(at).collect(),
    }
}

fn zip1<R: Ring>(out: &mut [R], b: &[R], f: impl Fn(&mut R, R) + Sync) {
    if par(out.len()) {
        out.par_chunks_mut(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .for_each(|(o, y)| o.iter_mut().zip(y).for_each(|(o, y)| f(o, *y)));
    } else {
        out.iter_mut().zip(b).for_each(|(o, y)| f(o, *y));
    }
}
