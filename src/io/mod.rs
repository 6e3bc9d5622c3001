//! Reading data sets and model files.

pub mod checkpoint;
pub mod mnist;
pub mod tensors;
pub mod tokenizer;
