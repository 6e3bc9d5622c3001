//! The dealer's recipes for Beaver products ([`crate::protocol::beaver`],
//! [`crate::protocol::lookup`]; Beaver, CRYPTO 1991): triples c = a (op) b
//! (also against a static operand's kept mask b) and square pairs c = a^2.
//! The static masks themselves need no correlated value: the dealer keeps
//! them for the triples that use them (`mod.rs`).

use crate::backend::{Backend, BilinearOp, Device};
use crate::error::Result;
use crate::ring::{AnyTensor, Ring, RingTensor};

/// `[c]` = a (op) b from the full masks a and b.
///
/// Errors: [`crate::Error::ShapeMismatch`] for masks `op` cannot combine.
pub(super) fn triple<R: Ring>(
    be: &Device,
    op: BilinearOp,
    a: &RingTensor<R>,
    b: &RingTensor<R>,
) -> Result<AnyTensor> {
    Ok(R::into_any(op.apply(be, a, b)?))
}

/// `[c]` = a * a (elementwise) from the full mask a.
///
/// Errors: device errors.
pub(super) fn square<R: Ring>(be: &Device, a: &RingTensor<R>) -> Result<AnyTensor> {
    Ok(R::into_any(be.mul(a, a)?))
}
