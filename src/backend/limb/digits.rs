//! Limb encodings of ring elements: how one element of Z_2^k becomes L = k/w
//! digits of w bits each, low digit first, with `x = sum_i d_i 2^(w i) mod 2^k`.
//!
//! * [`LimbEncoding::Unsigned`]: the plain radix-2^w digits, `d_i` in
//!   `[0, 2^w - 1]` (CryptGPU, Tan et al., IEEE S&P 2021: 16-bit limbs held
//!   in f64).
//! * [`LimbEncoding::Balanced`]: signed digits in `[-2^(w-1), 2^(w-1) - 1]`,
//!   computed low to high with a carry: `t = byte_i(x) + carry`; if
//!   `t >= 2^(w-1)` then `d_i = t - 2^w` and the carry is 1, else `d_i = t`
//!   and the carry is 0. Each step keeps `d_i + carry_out 2^w = t`, so
//!   `sum_i d_i 2^(w i) + carry_L 2^(w L) = x`; the last carry has weight
//!   `2^(wL) = 2^k` and vanishes mod 2^k. With w = 8 these digits are exactly
//!   cuBLAS's signed `int8` (`CUDA_R_8I`); unsigned bytes would not fit.
//!   `t` is at most `2^w` (digit 255 plus a carry), which gives `d_i = 0`.

/// How ring elements are cut into limbs (digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimbEncoding {
    /// Radix-2^w digits in `[0, 2^w - 1]` (CryptGPU).
    Unsigned,
    /// Balanced signed digits in `[-2^(w-1), 2^(w-1) - 1]`, with carries; the
    /// final carry vanishes mod 2^k.
    Balanced,
}

impl LimbEncoding {
    /// The largest |digit| for `limb_bits`-bit limbs: `2^w - 1` (unsigned),
    /// `2^(w-1)` (balanced, attained by `-2^(w-1)`). `limb_bits` is 1..=31.
    pub fn max_abs_digit(self, limb_bits: u32) -> u64 {
        match self {
            LimbEncoding::Unsigned => (1u64 << limb_bits) - 1,
            LimbEncoding::Balanced => 1u64 << (limb_bits - 1),
        }
    }

    /// The largest |d e| of two digits: `(2^w - 1)^2` (unsigned) or
    /// `2^(2w - 2)` (balanced; attained only by `(-2^(w-1))^2 > 0`, every
    /// negative product is smaller in magnitude).
    pub fn max_abs_product(self, limb_bits: u32) -> u64 {
        let d = self.max_abs_digit(limb_bits);
        d * d
    }

    /// The smallest and largest digit.
    pub fn digit_range(self, limb_bits: u32) -> (i64, i64) {
        match self {
            LimbEncoding::Unsigned => (0, (1i64 << limb_bits) - 1),
            LimbEncoding::Balanced => (-(1i64 << (limb_bits - 1)), (1i64 << (limb_bits - 1)) - 1),
        }
    }

    /// Short name for logs ("unsigned", "balanced").
    pub fn name(self) -> &'static str {
        match self {
            LimbEncoding::Unsigned => "unsigned",
            LimbEncoding::Balanced => "balanced",
        }
    }
}

/// Writes the `ring_bits / limb_bits` digits of `v` (its low `ring_bits`
/// bits), low digit first, into `out[..L]`.
///
/// `limb_bits` divides `ring_bits` (checked by [`super::LimbPlan`], which is
/// the only producer of these parameters); `out` holds at least L digits.
#[inline]
pub fn split(v: u64, ring_bits: u32, limb_bits: u32, enc: LimbEncoding, out: &mut [i64]) {
    let limbs = (ring_bits / limb_bits) as usize;
    let mask = (1u64 << limb_bits) - 1;
    let half = 1i64 << (limb_bits - 1);
    let mut carry = 0i64;
    for (i, o) in out[..limbs].iter_mut().enumerate() {
        let t = ((v >> (limb_bits as usize * i)) & mask) as i64 + carry;
        match enc {
            LimbEncoding::Unsigned => *o = t,
            LimbEncoding::Balanced if t >= half => {
                *o = t - (1i64 << limb_bits);
                carry = 1;
            }
            LimbEncoding::Balanced => {
                *o = t;
                carry = 0;
            }
        }
    }
}

/// `sum_i digits[i] 2^(w i) mod 2^ring_bits`, the inverse of [`split`].
pub fn join(digits: &[i64], ring_bits: u32, limb_bits: u32) -> u64 {
    let acc = digits.iter().enumerate().fold(0u64, |acc, (i, &d)| {
        acc.wrapping_add((d as u64).wrapping_shl(limb_bits * i as u32))
    });
    if ring_bits == 64 {
        acc
    } else {
        acc & ((1u64 << ring_bits) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CASES: [(u32, u32); 4] = [(64, 8), (64, 16), (32, 8), (32, 16)];

    fn check(v: u64) {
        for (k, w) in CASES {
            for enc in [LimbEncoding::Unsigned, LimbEncoding::Balanced] {
                let mut d = [0i64; 8];
                split(v, k, w, enc, &mut d);
                let l = (k / w) as usize;
                let (lo, hi) = enc.digit_range(w);
                assert!(
                    d[..l].iter().all(|&x| lo <= x && x <= hi),
                    "{v:#x} {enc:?} {d:?}"
                );
                let want = if k == 64 { v } else { v & 0xffff_ffff };
                assert_eq!(join(&d[..l], k, w), want, "{v:#x} k={k} w={w} {enc:?}");
            }
        }
    }

    #[test]
    fn extremes_round_trip() {
        for v in [
            0,
            1,
            u64::MAX,
            0x8080_8080_8080_8080,
            0x7f7f_7f7f_7f7f_7f80,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
            0xffff_ffff,
            0x8000_8000_8000_8000,
        ] {
            check(v);
        }
    }

    #[test]
    fn all_digits_minus_128() {
        // The adversarial operand of the int8 bound: every balanced byte is -128.
        let mut d = [0i64; 8];
        split(0x7f7f_7f7f_7f7f_7f80, 64, 8, LimbEncoding::Balanced, &mut d);
        assert_eq!(d, [-128; 8]);
        split(0x7f7f_7f80, 32, 8, LimbEncoding::Balanced, &mut d);
        assert_eq!(d[..4], [-128; 4]);
    }

    proptest! {
        #[test]
        fn random_round_trip(v in any::<u64>()) {
            check(v);
        }
    }
}
