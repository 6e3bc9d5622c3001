//! The CPU's fused B2A step ([`crate::backend::MpcSteps::b2a_combine`],
//! for [`crate::protocol::convert::b2a_weighted`]): every output
//! accumulated in one pass over the daBits.

use rayon::prelude::*;

use crate::ring::Ring;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn par(n: usize) -> bool {
    n >= 4 * CHUNK
}

/// The local step of [`crate::protocol::convert::b2a_weighted`]: with the
/// opened words e = b ^ s and this party's arithmetic daBit shares
/// `s_arith` (bit i of plane j at j * 64 * words + i), returns for each
/// weight vector w the shares sum_j w[j] * ([one] e + (1 - 2e) [s]) of the
/// n values; `one` is 1 at party 0 and 0 elsewhere. One pass over the
/// daBits, all outputs accumulated per chunk of values (branch-free, so
/// the inner loop vectorizes; up to 3 outputs unrolled).
pub(crate) fn dabit_linear<R: Ring>(
    e: &[u64],
    s_arith: &[R],
    one: R,
    weights: &[Vec<R>],
    n: usize,
    words: usize,
) -> Vec<Vec<R>> {
    let d = Dabits {
        e,
        s_arith,
        one,
        n,
        words,
        planes: weights.first().map_or(0, Vec::len),
    };
    match weights {
        [a] => Vec::from(d.linear([a])),
        [a, b] => Vec::from(d.linear([a, b])),
        [a, b, c] => Vec::from(d.linear([a, b, c])),
        _ => weights.iter().flat_map(|w| d.linear([w])).collect(),
    }
}

/// Values i0..i1 (i0 a multiple of 64) of [`Dabits::linear`]. Compiled
/// for AVX-512 and AVX2 as well, picked at run time: the multiply-adds by
/// the weights are the bulk of the work, and wide u64 multiplies need
/// AVX-512 (the baseline x86-64 target has none).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2",
    "aarch64+neon"
))]
#[allow(clippy::needless_range_loop)] // j indexes three arrays
fn dabit_chunk<R: Ring, const O: usize>(
    d: &Dabits<'_, R>,
    w: [&[R]; O],
    i0: usize,
    i1: usize,
) -> [Vec<R>; O] {
    let mut acc: [Vec<R>; O] = std::array::from_fn(|_| vec![R::ZERO; i1 - i0]);
    // Plane j: its weights, its daBits and its opened words.
    for j in 0..d.planes {
        let wj: [R; O] = std::array::from_fn(|o| w[o][j]);
        let base = j * 64 * d.words;
        let s = &d.s_arith[base + i0..base + i1];
        // i0 is a multiple of 64: word i0 / 64 holds bit i0.
        let ew = &d.e[j * d.words + i0 / 64..(j + 1) * d.words];
        let mut b = [R::ZERO; 64];
        for (blk, (sb, &bits)) in s.chunks(64).zip(ew).enumerate() {
            for (t, (bt, &sv)) in b.iter_mut().zip(sb).enumerate() {
                let m = R::from_u64(((bits >> t) & 1).wrapping_neg());
                *bt = (sv ^ m).wrapping_sub(m).wrapping_add(d.one & m);
            }
            for (a, wo) in acc.iter_mut().zip(wj) {
                let a = &mut a[blk * 64..blk * 64 + sb.len()];
                for (av, bv) in a.iter_mut().zip(&b) {
                    *av = av.wrapping_add(wo.wrapping_mul(*bv));
                }
            }
        }
    }
    acc
}

/// Opened daBit words and this party's arithmetic daBit shares.
struct Dabits<'a, R> {
    e: &'a [u64],
    s_arith: &'a [R],
    one: R,
    n: usize,
    words: usize,
    planes: usize,
}

impl<R: Ring> Dabits<'_, R> {
    /// O weighted sums of the n values.
    fn linear<const O: usize>(&self, w: [&Vec<R>; O]) -> [Vec<R>; O] {
        let len = self.n;
        let w: [&[R]; O] = std::array::from_fn(|o| &w[o][..]);
        let chunk = |c: usize| -> [Vec<R>; O] {
            let (i0, i1) = (c * CHUNK, ((c + 1) * CHUNK).min(len));
            dabit_chunk(self, w, i0, i1)
        };
        let parts: Vec<[Vec<R>; O]> = if par(len) {
            (0..len.div_ceil(CHUNK))
                .into_par_iter()
                .map(chunk)
                .collect()
        } else {
            (0..len.div_ceil(CHUNK)).map(chunk).collect()
        };
        std::array::from_fn(|o| {
            let mut out = Vec::with_capacity(len);
            parts.iter().for_each(|p| out.extend_from_slice(&p[o]));
            out
        })
    }
}
