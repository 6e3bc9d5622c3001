//! TEMPORARY PLACEHOLDER written by the lead engineer so the rest of the crate
//! compiles; the GEMM helper owns this file and should overwrite it entirely.
#![allow(missing_docs)]
use crate::ring::Ring;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    Single,
    Rayon,
}

pub fn gemm<R: Ring>(
    m: usize,
    k: usize,
    n: usize,
    a: &[R],
    b: &[R],
    c: &mut [R],
    _par: Parallelism,
) {
    c.iter_mut().for_each(|v| *v = R::ZERO);
    for i in 0..m {
        for p in 0..k {
            let av = a[i * k + p];
            for j in 0..n {
                c[i * n + j] = c[i * n + j].wrapping_add(av.wrapping_mul(b[p * n + j]));
            }
        }
    }
}
