//! Spindle: N-party secure computation (MPC) for machine learning.
//!
//! Parties hold additive secret shares of fixed-point tensors over Z_2^64
//! (Z_2^32 for quantized layers). A dealer supplies correlated randomness in
//! an offline phase; the online phase runs share arithmetic on a [`backend`]
//! and protocol logic that never touches sockets: it asks the [`Session`] to
//! open masked values, and the session batches each round's openings into one
//! message per peer over a [`spindle_transport::Transport`].
//!
//! Start with [`runner::run_parties`] (N parties in one process) and the
//! protocols in [`protocol`].

#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod io;
pub mod ring;

pub use error::{Error, Result};
