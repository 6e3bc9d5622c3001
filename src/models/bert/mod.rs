//! BERT-family encoders (Devlin et al., NAACL 2019) for secure sentence
//! embedding: the configuration and weights of a Hugging Face folder, the
//! plaintext f32 twin, and the secure N-party forward.
//!
//! The target model is sentence-transformers' all-MiniLM-L6-v2 (6 layers,
//! H = 384, 12 heads, 22.7M parameters): masked mean pooling and L2
//! normalisation after the encoder.

pub mod config;
pub mod plain;
pub mod reference;
pub mod secure;
pub mod weights;

pub use config::{BertConfig, HiddenAct};
pub use weights::{BertWeights, Dense, LayerWeights, Matrix, Norm};
