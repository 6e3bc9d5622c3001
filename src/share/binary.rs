//! [`BinShared`]: XOR shares of bit-sliced values (CrypTen's binary shares).

use super::BitPlanes;
use crate::error::Result;
use crate::ring::Shape;
use crate::session::Session;

/// This party's XOR share of secret bits, bit-sliced ([`BitPlanes`]): the
/// secret is the XOR over parties of their shares. XOR and NOT are local;
/// AND needs a binary Beaver triple ([`crate::protocol::bitwise`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinShared {
    share: BitPlanes,
}

impl BinShared {
    /// Wraps this party's share.
    pub fn from_share(share: BitPlanes) -> Self {
        BinShared { share }
    }
    /// A sharing of public bits: party 0 holds them, the others zeros.
    pub fn from_public(sess: &Session, bits: &BitPlanes) -> Self {
        if sess.party() == 0 {
            BinShared::from_share(bits.clone())
        } else {
            BinShared::from_share(BitPlanes::zeros(bits.shape().clone(), bits.planes()))
        }
    }
    /// This party's share.
    pub fn share(&self) -> &BitPlanes {
        &self.share
    }
    /// Element shape.
    pub fn shape(&self) -> &Shape {
        self.share.shape()
    }
    /// Number of bit planes.
    pub fn planes(&self) -> usize {
        self.share.planes()
    }
    /// [x ^ y].
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn xor(&self, other: &BinShared) -> Result<Self> {
        let mut s = self.share.clone();
        s.xor_assign(&other.share)?;
        Ok(BinShared::from_share(s))
    }
    /// [x ^ c] for public bits c (party 0 applies it).
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn xor_public(&self, sess: &Session, c: &BitPlanes) -> Result<Self> {
        let mut s = self.share.clone();
        if sess.party() == 0 {
            s.xor_assign(c)?;
        } else if s.shape().numel() != c.shape().numel() || s.planes() != c.planes() {
            // Same layout check as party 0's, so every party fails alike.
            s.xor_assign(c)?;
        }
        Ok(BinShared::from_share(s))
    }
    /// [x & c] for public bits c: every party ANDs its share.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn and_public(&self, c: &BitPlanes) -> Result<Self> {
        Ok(BinShared::from_share(self.share.and(c)?))
    }
    /// [NOT x] (party 0 flips its share).
    pub fn not(&self, sess: &Session) -> Self {
        if sess.party() == 0 {
            BinShared::from_share(self.share.not())
        } else {
            self.clone()
        }
    }
    /// Planes `range` only.
    pub fn select_planes(&self, range: std::ops::Range<usize>) -> Self {
        BinShared::from_share(self.share.select_planes(range))
    }
}
