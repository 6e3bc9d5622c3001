//! Spindle: N-party secure computation (MPC) for machine learning.
//!
//! Parties hold additive secret shares of fixed-point tensors over Z_2^64
//! (Z_2^32 for quantized layers). A dealer supplies correlated randomness in
//! an offline phase ([`preprocess`]); the online phase runs share arithmetic
//! on a [`backend`] and protocol logic ([`protocol`]) that never touches
//! sockets: it asks the [`Session`] to open masked values, and the session
//! batches each round's openings into one message per peer over a
//! [`spindle_transport::Transport`].
//!
//! Start with [`runner::run_parties`] (N parties in one process), the shares
//! in [`share`] and the products in [`protocol::beaver`] and
//! [`protocol::fixed`].

#![warn(missing_docs)]

pub mod backend;
pub mod classify;
pub mod demo;
pub mod error;
pub mod infer;
pub mod io;
pub mod jobs;
pub mod models;
pub mod net;
pub mod nn;
pub mod pipeline;
pub mod preprocess;
pub mod prg;
pub mod protocol;
pub mod report;
pub mod resources;
pub mod ring;
pub mod runner;
pub mod session;
pub mod share;
pub mod trace;
pub mod train;

pub use error::{Error, Result};
pub use session::{Session, SessionConfig, TruncMode};
pub use share::Shared;
