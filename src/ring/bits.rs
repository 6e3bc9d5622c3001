//! [`BitPlanes`]: bit-sliced storage of k-bit values, 64 elements per word.
//!
//! Plane j holds bit j of every element; element e sits at bit e % 64 of
//! word e / 64 of each plane. Bit-slicing turns the same boolean gate on
//! every element into one word operation per 64 elements, which is how the
//! carry circuits of comparison run (Piranha, Falcon use the same layout).

use super::error::{Result, RingError};
use crate::ring::{Ring, RingTensor, Shape};

/// `planes` bit planes of `numel` elements each, packed 64 per u64 word.
///
/// Bits past `numel` in the last word of a plane are unspecified (they carry
/// masks in shares) and are ignored by every reader. The words are a
/// [`RingTensor<u64>`] of shape [planes * words], so they may live on a
/// device like any share ([`BitPlanes::words_tensor`]); the slice accessors
/// read them on the host (one copy from a device, as
/// [`RingTensor::data`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitPlanes {
    shape: Shape,
    planes: usize,
    words: usize,
    data: RingTensor<u64>,
}

/// Words needed for `numel` bits.
pub fn words_for(numel: usize) -> usize {
    numel.div_ceil(64)
}

impl BitPlanes {
    /// All-zero planes for elements of `shape`.
    pub fn zeros(shape: impl Into<Shape>, planes: usize) -> Self {
        let shape = shape.into();
        let words = words_for(shape.numel());
        BitPlanes {
            shape,
            planes,
            words,
            data: RingTensor::zeros([planes * words]),
        }
    }

    /// Planes from raw words (`planes * words_for(numel)` of them, plane-major).
    ///
    /// Errors: [`RingError::ShapeMismatch`] if the word count is wrong.
    pub fn from_words(shape: impl Into<Shape>, planes: usize, data: Vec<u64>) -> Result<Self> {
        let shape = shape.into();
        let words = words_for(shape.numel());
        if data.len() != planes * words {
            return Err(RingError::shape(
                "BitPlanes::from_words",
                format!(
                    "{planes} planes of {shape} need {} words, got {}",
                    planes * words,
                    data.len()
                ),
            ));
        }
        Ok(BitPlanes {
            shape,
            planes,
            words,
            data: RingTensor::new([planes * words], data)?,
        })
    }

    /// Planes from a tensor of words (`planes * words_for(numel)` of them,
    /// plane-major, any shape of that size), wherever it lives.
    ///
    /// Errors: [`RingError::ShapeMismatch`] if the word count is wrong.
    pub fn from_tensor(shape: impl Into<Shape>, planes: usize, t: RingTensor<u64>) -> Result<Self> {
        let shape = shape.into();
        let words = words_for(shape.numel());
        if t.numel() != planes * words {
            return Err(RingError::shape(
                "BitPlanes::from_tensor",
                format!(
                    "{planes} planes of {shape} need {} words, got {}",
                    planes * words,
                    t.numel()
                ),
            ));
        }
        Ok(BitPlanes {
            shape,
            planes,
            words,
            data: t.reshape([planes * words])?,
        })
    }

    /// The words as a tensor [planes * words] (where they live).
    pub fn words_tensor(&self) -> &RingTensor<u64> {
        &self.data
    }

    /// The bits of every element of `t`, bit-sliced: planes 0..k.
    pub fn from_ring<R: Ring>(t: &RingTensor<R>) -> Self {
        let k = R::BITS as usize;
        let mut out = BitPlanes::zeros(t.shape().clone(), k);
        let words = out.words;
        let mut block = [0u64; 64];
        let data = out.data.data_mut();
        for (w, chunk) in t.data().chunks(64).enumerate() {
            for (i, v) in chunk.iter().enumerate() {
                block[i] = v.to_u64();
            }
            block[chunk.len()..].fill(0);
            transpose64(&mut block);
            for (j, row) in block.iter().take(k).enumerate() {
                data[j * words + w] = *row;
            }
        }
        out
    }

    /// Reassembles ring elements from planes 0..k (missing planes read as 0).
    pub fn to_ring<R: Ring>(&self) -> RingTensor<R> {
        let n = self.shape.numel();
        let mut out = vec![R::ZERO; n];
        let mut block = [0u64; 64];
        let data = self.data.data();
        for w in 0..self.words {
            for (j, row) in block.iter_mut().enumerate() {
                *row = if j < self.planes && j < R::BITS as usize {
                    data[j * self.words + w]
                } else {
                    0
                };
            }
            transpose64(&mut block);
            let end = ((w + 1) * 64).min(n);
            for (i, v) in out[w * 64..end].iter_mut().enumerate() {
                *v = R::from_u64(block[i]);
            }
        }
        RingTensor::new(self.shape.clone(), out).expect("numel matches")
    }

    /// Element shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// Number of planes.
    pub fn planes(&self) -> usize {
        self.planes
    }
    /// Words per plane.
    pub fn words(&self) -> usize {
        self.words
    }
    /// All words, plane-major.
    pub fn data(&self) -> &[u64] {
        self.data.data()
    }
    /// All words, mutable.
    pub fn data_mut(&mut self) -> &mut [u64] {
        self.data.data_mut()
    }
    /// Plane j.
    pub fn plane(&self, j: usize) -> &[u64] {
        &self.data()[j * self.words..(j + 1) * self.words]
    }
    /// Plane j, mutable.
    pub fn plane_mut(&mut self, j: usize) -> &mut [u64] {
        let w = self.words;
        &mut self.data_mut()[j * w..(j + 1) * w]
    }
    /// The bit of element `e` in plane `j`.
    pub fn bit(&self, j: usize, e: usize) -> bool {
        (self.data()[j * self.words + e / 64] >> (e % 64)) & 1 == 1
    }
    /// Keeps planes `range` only.
    pub fn select_planes(&self, range: std::ops::Range<usize>) -> Self {
        let words = self.data()[range.start * self.words..range.end * self.words].to_vec();
        BitPlanes {
            shape: self.shape.clone(),
            planes: range.len(),
            words: self.words,
            data: RingTensor::new([words.len()], words).expect("length counted"),
        }
    }
    /// a ^= b, wordwise.
    ///
    /// Errors: [`RingError::ShapeMismatch`] if the layouts differ.
    pub fn xor_assign(&mut self, other: &BitPlanes) -> Result<()> {
        self.check_same(other, "xor")?;
        self.data
            .data_mut()
            .iter_mut()
            .zip(other.data())
            .for_each(|(a, b)| *a ^= b);
        Ok(())
    }
    /// a & b, wordwise (b public or both local).
    ///
    /// Errors: [`RingError::ShapeMismatch`] if the layouts differ.
    pub fn and(&self, other: &BitPlanes) -> Result<Self> {
        self.check_same(other, "and")?;
        let mut out = self.clone();
        out.data
            .data_mut()
            .iter_mut()
            .zip(other.data())
            .for_each(|(a, b)| *a &= b);
        Ok(out)
    }
    /// Flips every bit.
    pub fn not(&self) -> Self {
        let mut out = self.clone();
        out.data.data_mut().iter_mut().for_each(|a| *a = !*a);
        out
    }
    fn check_same(&self, other: &BitPlanes, op: &'static str) -> Result<()> {
        if self.shape.numel() != other.shape.numel() || self.planes != other.planes {
            return Err(RingError::shape(
                op,
                format!(
                    "{} planes of {} vs {} planes of {}",
                    self.planes, self.shape, other.planes, other.shape
                ),
            ));
        }
        Ok(())
    }
}

/// In-place transpose of a 64x64 bit matrix (row i = word i, column j = bit j),
/// by recursive block swaps (Warren, Hacker's Delight, 2nd ed., section 7-3).
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            // Swap the upper-right and lower-left j x j blocks of each 2j x 2j block.
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::{Prg, Seed};

    #[test]
    fn transpose_moves_bit_i_j_to_j_i() {
        let mut a = [0u64; 64];
        Prg::new(&Seed([9; 16]), 0).fill(&mut a);
        let orig = a;
        transpose64(&mut a);
        for (i, row) in a.iter().enumerate() {
            for (j, col) in orig.iter().enumerate() {
                assert_eq!((row >> j) & 1, (col >> i) & 1);
            }
        }
    }

    #[test]
    fn ring_round_trip_and_bit_layout() {
        for n in [1, 63, 64, 65, 300] {
            let t: RingTensor<u64> = Prg::new(&Seed([1; 16]), n as u64).tensor([n]);
            let p = BitPlanes::from_ring(&t);
            assert_eq!(p.planes(), 64);
            for e in 0..n {
                for j in [0, 17, 63] {
                    assert_eq!(p.bit(j, e), (t.data()[e] >> j) & 1 == 1);
                }
            }
            assert_eq!(p.to_ring::<u64>(), t);
            let t32: RingTensor<u32> = Prg::new(&Seed([2; 16]), n as u64).tensor([n]);
            let p32 = BitPlanes::from_ring(&t32);
            assert_eq!(p32.planes(), 32);
            assert_eq!(p32.to_ring::<u32>(), t32);
        }
    }
}
