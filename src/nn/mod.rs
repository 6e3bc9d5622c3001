//! Neural networks on secret shares, with a plaintext f32 twin.
//!
//! A model is a [`ModelSpec`] (a list of [`LayerSpec`]s); the same spec and
//! the same [`ModelWeights`] build the secure [`SecureModel`] and the
//! plaintext [`PlainModel`], which serves as the accuracy oracle. Layers
//! implement [`Module`]: forward and backward on fixed-point shares.

// Shares stay where they live: host access only at named I/O boundaries
// (clippy.toml; an `#[allow]` with its reason).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

mod activation;
mod conv;
mod init;
mod linear;
pub mod loss;
mod model;
mod module;
mod optim;
pub(crate) mod plain;
mod pooling;
mod reshape;
mod spec;
mod state_dict;

pub use activation::ReLU;
pub use conv::Conv2d;
pub use init::{Init, ModelWeights};
pub use linear::Linear;
pub use model::SecureModel;
pub use module::{Module, Param};
pub use optim::Sgd;
pub use plain::{argmax_row, softmax_rows, PlainModel, PlainTensor};
pub use pooling::{AvgPool2d, MaxPool2d};
pub use reshape::{BatchNorm2d, Dropout, Flatten};
pub use spec::{LayerSpec, ModelSpec};
