//! Reading data sets and model files.

pub mod mnist;
