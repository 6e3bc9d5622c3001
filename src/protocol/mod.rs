//! MPC protocols: async functions of a [`crate::Session`] and shares.
//!
//! Every protocol documents its input domain, its maximum error against f64,
//! its rounds, and the bytes each party sends; tests check all four for
//! N = 2, 3 and 4 parties.

// Shares stay where they live: host access only at named I/O boundaries
// (clippy.toml; an `#[allow]` with its reason).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

pub mod attention;
pub(crate) mod axis;
pub mod beaver;
pub mod bitwise;
pub mod compare;
pub mod convert;
pub mod fanin;
pub mod fixed;
pub mod linear;
pub mod lookup;
pub mod nonlinear;
pub mod pool;
pub mod trunc;
