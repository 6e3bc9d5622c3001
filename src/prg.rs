//! The pseudorandom generator behind every mask, share and seed expansion.
//!
//! AES-128 in counter mode (NIST SP 800-38A), keyed by a 128-bit seed, with
//! one independent stream per `stream` id: block j of stream s is
//! AES_seed(s * 2^64 + j), the 128-bit counter encoded big-endian. Keystream
//! bytes are read as little-endian ring words. This exact layout is the
//! specification a GPU expansion must reproduce bit for bit.

use aes::cipher::{KeyIvInit, StreamCipher};

use crate::ring::{Ring, RingTensor, Shape};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// A 128-bit PRG seed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seed(pub [u8; 16]);

impl std::fmt::Debug for Seed {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Seed {
    /// A fresh seed from the operating system's CSPRNG.
    ///
    /// Errors: [`crate::Error::Unsupported`] if the OS has no entropy source.
    pub fn random() -> crate::Result<Self> {
        let mut s = [0u8; 16];
        getrandom::getrandom(&mut s)
            .map_err(|e| crate::Error::Unsupported(format!("no OS randomness available: {e}")))?;
        Ok(Seed(s))
    }

    /// A child seed: the first block of stream `stream` of this seed. Used to
    /// derive independent seeds (e.g. per party) from one master seed.
    pub fn derive(&self, stream: u64) -> Seed {
        let mut out = [0u8; 16];
        Prg::new(self, stream).fill_bytes(&mut out);
        Seed(out)
    }
}

/// One AES-CTR keystream: `Prg::new(seed, stream)`.
pub struct Prg {
    cipher: Aes128Ctr,
}

impl Prg {
    /// The keystream of `stream` under `seed`, from its first block.
    pub fn new(seed: &Seed, stream: u64) -> Self {
        let iv = ((stream as u128) << 64).to_be_bytes();
        Prg {
            cipher: Aes128Ctr::new(&seed.0.into(), &iv.into()),
        }
    }

    /// Fills `out` with the next keystream bytes.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        out.fill(0);
        self.cipher.apply_keystream(out);
    }

    /// Fills `out` with uniform ring elements (the next k/8 bytes each, little-endian).
    pub fn fill<R: Ring>(&mut self, out: &mut [R]) {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
        self.fill_bytes(bytes);
        if cfg!(target_endian = "big") {
            for v in out.iter_mut() {
                let le = v.to_u64();
                *v = R::from_u64(if R::BITS == 64 {
                    le.swap_bytes()
                } else {
                    (le as u32).swap_bytes() as u64
                });
            }
        }
    }

    /// A uniform tensor of the given shape (the next `numel` elements).
    pub fn tensor<R: Ring>(&mut self, shape: impl Into<Shape>) -> RingTensor<R> {
        let shape = shape.into();
        let mut data = vec![R::ZERO; shape.numel()];
        // Already zero: XOR the keystream in directly (no second memset).
        self.cipher
            .apply_keystream(bytemuck::cast_slice_mut(&mut data));
        if cfg!(target_endian = "big") {
            for v in data.iter_mut() {
                let le = v.to_u64();
                *v = R::from_u64(if R::BITS == 64 {
                    le.swap_bytes()
                } else {
                    (le as u32).swap_bytes() as u64
                });
            }
        }
        RingTensor::new(shape, data).expect("numel matches by construction")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let s = Seed([7; 16]);
        let a: RingTensor<u64> = Prg::new(&s, 3).tensor([100]);
        let b: RingTensor<u64> = Prg::new(&s, 3).tensor([100]);
        let c: RingTensor<u64> = Prg::new(&s, 4).tensor([100]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Reading in two pieces gives the same stream as one piece.
        let mut p = Prg::new(&s, 3);
        let mut first = vec![0u64; 37];
        let mut rest = vec![0u64; 63];
        p.fill(&mut first);
        p.fill(&mut rest);
        first.extend(rest);
        assert_eq!(first, a.data());
    }

    #[test]
    fn matches_fips197_aes128_on_counter_zero() {
        // FIPS-197 appendix C.1 key; with stream 0 the first counter block is all zero,
        // whose encryption under key 000102..0f is c6a13b37878f5b826f4f8162a1c8d879.
        let key = Seed(core::array::from_fn(|i| i as u8));
        let mut out = [0u8; 16];
        Prg::new(&key, 0).fill_bytes(&mut out);
        let expect = [
            0xc6, 0xa1, 0x3b, 0x37, 0x87, 0x8f, 0x5b, 0x82, 0x6f, 0x4f, 0x81, 0x62, 0xa1, 0xc8,
            0xd8, 0x79,
        ];
        assert_eq!(out, expect);
    }
}
