//! Arithmetic non-linear functions on fixed-point shares: exponential,
//! reciprocal, inverse square root and square root, logarithm, sigmoid and
//! tanh, softmax, GeLU and LayerNorm.
//!
//! Every function is a short sequence of levels; each level opens all its
//! masked values in one round ([`batch`]), public coefficients ride on
//! truncations that happen anyway ([`fx`]), and polynomials are evaluated
//! in the Chebyshev basis in log2(degree) levels ([`cheb`]). Each public
//! function documents its domain, its error against f64 as measured by
//! the tests, its rounds and its bytes.
//!
//! The elementwise functions (exp, reciprocal, rsqrt, sqrt, log, sigmoid,
//! tanh, GeLU) run large inputs as an inner-layer pipeline
//! ([`crate::pipeline::Lanes`]; by default 4 lanes from 2^17 elements up,
//! [`crate::SessionConfig::pipeline`]): the documented rounds and bytes
//! are unchanged, each round is sent as one message per lane, and the
//! transport's round counter counts every lane's tags.

mod batch;
mod cheb;
mod exp;
mod fx;
mod gelu;
mod l2norm;
mod layernorm;
mod linked;
mod linked_output;
mod log;
mod normalize;
mod reciprocal;
mod sigmoid;
mod softmax;
mod sqrt;

pub use exp::{exp, exp_nonpositive};
pub(crate) use gelu::erfc;
pub use gelu::{gelu, gelu_quad, GeluForm};
pub use l2norm::l2_normalize;
pub use layernorm::layer_norm;
pub use log::log;
pub use reciprocal::reciprocal;
pub use sigmoid::{sigmoid, tanh};
pub use softmax::{softmax, softmax_2quad, softmax_with, SoftmaxOptions, MASKED};
pub use sqrt::{rsqrt, sqrt};
