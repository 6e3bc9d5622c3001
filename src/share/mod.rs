//! Secret shares: [`Shared`] (additive, arithmetic), [`BinShared`] (XOR,
//! bit-sliced), input sharing and reveal.
//!
//! x is shared among N parties as x = x_0 + ... + x_{N-1} mod 2^k; any N-1
//! shares are uniformly distributed and reveal nothing about x.

mod arith;
mod binary;
mod input;

pub(crate) use crate::ring::Opened;
pub use crate::ring::{transpose64, words_for, BitPlanes};
pub use arith::Shared;
pub use binary::BinShared;
