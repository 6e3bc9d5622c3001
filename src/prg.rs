//! The pseudorandom generator behind every mask, share and seed expansion.
//!
//! AES-128 in counter mode (NIST SP 800-38A), keyed by a 128-bit seed, with
//! one independent stream per `stream` id: block j of stream s is
//! AES_seed(s * 2^64 + j), the 128-bit counter encoded big-endian. Keystream
//! bytes are read as little-endian ring words. This exact layout is the
//! specification a GPU expansion must reproduce bit for bit.

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rayon::prelude::*;

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

    /// The seed of forked stream `stream` ([`crate::Session::fork`]) derived
    /// from this one: [`Seed::derive`] under the stream's domain (top bit
    /// set: never a stream of material, input sharing or dealer streams,
    /// which all stay below 2^63).
    pub fn derive_fork(&self, stream: u64) -> Seed {
        self.derive((1 << 63) | (stream >> 1))
    }

    /// A child seed: the first block of stream `stream` of this seed. Used to
    /// derive independent seeds (e.g. per party) from one master seed.
    pub fn derive(&self, stream: u64) -> Seed {
        let mut out = [0u8; 16];
        Prg::new(self, stream).fill_bytes(&mut out);
        Seed(out)
    }
}

/// Keystream requests of at least this many bytes are filled in parallel.
const PAR_MIN_BYTES: usize = 1 << 20;
/// Bytes per parallel piece (a multiple of the 16-byte block).
const PAR_PIECE_BYTES: usize = 1 << 18;

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
        self.apply_keystream(out);
    }

    /// XORs the next `buf.len()` keystream bytes into `buf`. Counter mode
    /// can start anywhere, so above [`PAR_MIN_BYTES`] the buffer is cut
    /// into pieces that rayon fills in parallel, each from its own copy of
    /// the cipher moved to the piece's position: the same stream as one
    /// sequential pass (AES-128-CTR runs at about 5 GB/s on one core).
    fn apply_keystream(&mut self, buf: &mut [u8]) {
        if buf.len() < PAR_MIN_BYTES {
            self.cipher.apply_keystream(buf);
            return;
        }
        let start: u128 = self.cipher.current_pos();
        let cipher = &self.cipher;
        buf.par_chunks_mut(PAR_PIECE_BYTES)
            .enumerate()
            .for_each(|(i, piece)| {
                let mut c = cipher.clone();
                c.seek(start + (i * PAR_PIECE_BYTES) as u128);
                c.apply_keystream(piece);
            });
        self.cipher.seek(start + buf.len() as u128);
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
        self.apply_keystream(bytemuck::cast_slice_mut(&mut data));
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

    /// Requests above the parallel threshold give the stream that small
    /// sequential requests give, from a block-aligned or unaligned
    /// position, and leave the cipher where the sequential reads would.
    #[test]
    fn parallel_fills_are_the_sequential_stream() {
        let s = Seed([5; 16]);
        let big = PAR_MIN_BYTES + 3 * PAR_PIECE_BYTES + 40;
        for skip in [0usize, 16, 7] {
            let mut seq = vec![0u8; skip + big + 100];
            let mut p = Prg::new(&s, 9);
            for piece in seq.chunks_mut(4096) {
                p.fill_bytes(piece);
            }
            let mut p = Prg::new(&s, 9);
            let mut head = vec![0u8; skip];
            p.fill_bytes(&mut head);
            let mut body = vec![0u8; big];
            p.fill_bytes(&mut body);
            let mut tail = vec![0u8; 100];
            p.fill_bytes(&mut tail);
            let par: Vec<u8> = [head, body, tail].concat();
            assert!(par == seq, "stream differs after skipping {skip} bytes");
        }
        let t: RingTensor<u64> = Prg::new(&s, 2).tensor([PAR_MIN_BYTES / 8 + 5]);
        let mut one = vec![0u64; PAR_MIN_BYTES / 8 + 5];
        let mut p = Prg::new(&s, 2);
        for piece in one.chunks_mut(1000) {
            p.fill(piece);
        }
        assert_eq!(t.data(), &one[..]);
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
