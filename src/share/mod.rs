//! Secret shares: [`Shared`] (additive, arithmetic) and input/reveal.
//!
//! x is shared among N parties as x = x_0 + ... + x_{N-1} mod 2^k; any N-1
//! shares are uniformly distributed and reveal nothing about x.

mod arith;
mod input;

pub use arith::Shared;
