//! The local, per-element step of dealer truncation (Escudero et al.,
//! "Improved Primitives for MPC over Mixed Arithmetic-Binary Circuits",
//! CRYPTO 2020), written once for every CPU kernel that applies it.
//!
//! The opened value is c = x + 2^(k-2) + r; a party holds shares of
//! r' = (r mod 2^(k-1)) >> f and of r's top bit r_msb. Its share of
//! x >> f is L + [party 0] P with
//! - P = ((c mod 2^(k-1)) >> f) - 2^(k-2-f) + c_msb 2^(k-1-f) (public),
//! - L = (1 - 2 c_msb) r_msb 2^(k-1-f) - r' (this party's share).

use super::Ring;

/// The loop-invariant constants of one truncation by `bits` in ring `R`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TruncStep<R> {
    low: R,
    offset: R,
    /// k - 1 - bits: where r_msb and c_msb land after the shift.
    pub(crate) top: u32,
    bits: u32,
}

impl<R: Ring> TruncStep<R> {
    /// Constants for a truncation by `bits` (bits <= k - 2).
    pub(crate) fn new(bits: u32) -> Self {
        let k = R::BITS;
        TruncStep {
            low: R::ONE.shl(k - 1).wrapping_sub(R::ONE),
            offset: R::ONE.shl(k - 2 - bits),
            top: k - 1 - bits,
            bits,
        }
    }

    /// (P, all ones when c_msb = 1 else 0, this party's L) from the opened
    /// c and this party's shares of r' and r_msb. Branch-free, so loops
    /// over it vectorize.
    #[inline(always)]
    pub(crate) fn at(&self, c: R, r_shifted: R, r_msb: R) -> (R, R, R) {
        let msb = c.shr(R::BITS - 1);
        let neg = R::ZERO.wrapping_sub(msb);
        let p = (c & self.low)
            .shr(self.bits)
            .wrapping_sub(self.offset)
            .wrapping_add(msb.shl(self.top));
        let l = signed(r_msb.shl(self.top), neg).wrapping_sub(r_shifted);
        (p, neg, l)
    }

    /// This party's share of x >> f: L + P at party 0, L elsewhere.
    #[inline(always)]
    pub(crate) fn share<const PARTY0: bool>(&self, c: R, r_shifted: R, r_msb: R) -> R {
        let (p, _, l) = self.at(c, r_shifted, r_msb);
        if PARTY0 {
            l.wrapping_add(p)
        } else {
            l
        }
    }
}

/// x, or -x where `neg` is all ones.
#[inline(always)]
pub(crate) fn signed<R: Ring>(x: R, neg: R) -> R {
    (x ^ neg).wrapping_sub(neg)
}
