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
//! - [`run_micro_batches`] (the inter-batch pipeline): several
//!   micro-batches of a job in flight at once, each on its own fork.

mod inner_layer;
mod inter_batch;

pub use inner_layer::{InnerPipeline, Lanes, RowLanes};
pub use inter_batch::{run_micro_batches, InterBatch, Progress};
