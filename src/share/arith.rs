//! [`Shared`]: an additive secret share over Z_2^k, and its local ops.

use crate::backend::Backend;
use crate::error::Result;
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;

/// This party's additive share of a secret tensor over the ring `R`.
///
/// Local ops (no communication): add, sub, neg, add/multiply by public
/// values. Public additions are applied by party 0 only, so the sum of the
/// shares changes by exactly the public value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared<R: Ring> {
    share: RingTensor<R>,
}

impl<R: Ring> Shared<R> {
    /// Wraps this party's share.
    pub fn from_share(share: RingTensor<R>) -> Self {
        Shared { share }
    }
    /// A sharing of a public value: party 0 holds it, the others hold zero.
    pub fn from_public(sess: &Session, value: &RingTensor<R>) -> Self {
        if sess.party() == 0 {
            Shared::from_share(value.clone())
        } else {
            Shared::from_share(RingTensor::zeros(value.shape().clone()))
        }
    }
    /// This party's share.
    pub fn share(&self) -> &RingTensor<R> {
        &self.share
    }
    /// This party's share, consuming self.
    pub fn into_share(self) -> RingTensor<R> {
        self.share
    }
    /// The shape of the secret.
    pub fn shape(&self) -> &Shape {
        self.share.shape()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.share.numel()
    }
    /// The same secret under another shape of equal element count.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Self> {
        Ok(Shared::from_share(self.share.reshape(shape)?))
    }

    /// [x + y].
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn add(&self, sess: &Session, other: &Shared<R>) -> Result<Self> {
        Ok(Shared::from_share(
            sess.backend().add(&self.share, &other.share)?,
        ))
    }
    /// [x - y].
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn sub(&self, sess: &Session, other: &Shared<R>) -> Result<Self> {
        Ok(Shared::from_share(
            sess.backend().sub(&self.share, &other.share)?,
        ))
    }
    /// [-x].
    ///
    /// Errors: the backend's (a failed device launch).
    pub fn neg(&self, sess: &Session) -> Result<Self> {
        Ok(Shared::from_share(sess.backend().neg(&self.share)?))
    }
    /// [x + c] for a public tensor c (party 0 adds it).
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn add_public(&self, sess: &Session, c: &RingTensor<R>) -> Result<Self> {
        self.share.check_same_shape(c, "add_public")?;
        if sess.party() == 0 {
            Ok(Shared::from_share(sess.backend().add(&self.share, c)?))
        } else {
            Ok(self.clone())
        }
    }
    /// [x - c] for a public tensor c.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn sub_public(&self, sess: &Session, c: &RingTensor<R>) -> Result<Self> {
        self.add_public(sess, &sess.backend().neg(c)?)
    }
    /// [x + s] for a public scalar s.
    ///
    /// Errors: the backend's (a failed device launch).
    pub fn add_scalar(&self, sess: &Session, s: R) -> Result<Self> {
        if sess.party() == 0 {
            Ok(Shared::from_share(
                sess.backend().add_scalar(&self.share, s)?,
            ))
        } else {
            Ok(self.clone())
        }
    }
    /// [x * c] elementwise for a public tensor c (every party multiplies its
    /// share). For fixed-point values the result has 2f fractional bits:
    /// truncate it ([`crate::protocol::trunc`]).
    ///
    /// Errors: [`crate::Error::ShapeMismatch`].
    pub fn mul_public(&self, sess: &Session, c: &RingTensor<R>) -> Result<Self> {
        Ok(Shared::from_share(sess.backend().mul(&self.share, c)?))
    }
    /// [x * s] for a public scalar s.
    ///
    /// Errors: the backend's (a failed device launch).
    pub fn mul_scalar(&self, sess: &Session, s: R) -> Result<Self> {
        Ok(Shared::from_share(
            sess.backend().mul_scalar(&self.share, s)?,
        ))
    }
}
