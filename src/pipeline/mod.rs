//! Pipelining of the online phase (MPC-Pipe: Wang et al., "MPC-Pipe: an
//! Efficient Pipeline Scheme for Secure Multi-party Machine Learning
//! Inference", 2022): overlapping one part of a computation's local work
//! with another part's messages, with results identical in distribution
//! and every party's messages and preprocessing requests in a fixed order.
//!
//! - [`Lanes`] (the inner-layer pipeline): an elementwise protocol on a large tensor runs as
//!   lanes over consecutive chunks; each lane's rounds are on the wire
//!   while the other lanes compute (lanes are ordered forks of the
//!   session: [`crate::session::fork`]).

mod inner_layer;

pub use inner_layer::{InnerPipeline, Lanes};
