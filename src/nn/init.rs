//! Model weights in f32 and their initialisation by the model owner.

use crate::error::{Error, Result};
use crate::prg::{Prg, Seed};
use crate::ring::Shape;

use super::{LayerSpec, ModelSpec};

/// Weight initialisation schemes (He et al., ICCV 2015; Glorot and Bengio,
/// AISTATS 2010), uniform variants as in PyTorch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's default for Linear and Conv2d: Kaiming uniform with
    /// a = sqrt(5), i.e. U(-b, b) with b = 1 / sqrt(fan_in).
    #[default]
    PyTorchDefault,
    /// U(-b, b) with b = sqrt(6 / fan_in) (gain sqrt(2), for ReLU nets).
    KaimingUniform,
    /// U(-b, b) with b = sqrt(6 / (fan_in + fan_out)).
    XavierUniform,
}

/// All parameters of a model in plaintext f32, in [`ModelSpec::param_shapes`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelWeights {
    /// (shape, row-major values) per parameter.
    pub tensors: Vec<(Shape, Vec<f32>)>,
}

impl ModelWeights {
    /// Fresh weights for `spec` from a seeded PRG: weights by `init`,
    /// biases zero, batch-norm scale 1 and shift 0. Same seed, same weights.
    pub fn init(spec: &ModelSpec, init: Init, seed: u64) -> Self {
        let mut prg = Prg::new(&Seed([0x5e; 16]), seed);
        let mut tensors = Vec::new();
        for layer in &spec.layers {
            let shapes = layer.param_shapes();
            match layer {
                LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. } => {
                    let bound = match init {
                        Init::PyTorchDefault => (1.0 / layer.fan_in() as f64).sqrt(),
                        Init::KaimingUniform => (6.0 / layer.fan_in() as f64).sqrt(),
                        Init::XavierUniform => {
                            (6.0 / (layer.fan_in() + layer.fan_out()) as f64).sqrt()
                        }
                    };
                    let n = shapes[0].numel();
                    let mut raw = vec![0u64; n];
                    prg.fill(&mut raw);
                    let w = raw
                        .iter()
                        .map(|&r| {
                            (((r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound) as f32
                        })
                        .collect();
                    tensors.push((shapes[0].clone(), w));
                    tensors.push((shapes[1].clone(), vec![0.0; shapes[1].numel()]));
                }
                LayerSpec::BatchNorm2d { channels } => {
                    tensors.push((shapes[0].clone(), vec![1.0; *channels]));
                    tensors.push((shapes[1].clone(), vec![0.0; *channels]));
                }
                _ => {}
            }
        }
        ModelWeights { tensors }
    }

    /// Checks the weights fit `spec`.
    ///
    /// Errors: [`Error::ShapeMismatch`] naming the first parameter that does not fit.
    pub fn check(&self, spec: &ModelSpec) -> Result<()> {
        let shapes = spec.param_shapes();
        if shapes.len() != self.tensors.len() {
            return Err(Error::shape(
                "model weights",
                format!(
                    "{} has {} parameters, weights hold {}",
                    spec.name,
                    shapes.len(),
                    self.tensors.len()
                ),
            ));
        }
        for (i, (s, (ws, v))) in shapes.iter().zip(&self.tensors).enumerate() {
            if s != ws || v.len() != s.numel() {
                return Err(Error::shape(
                    "model weights",
                    format!(
                        "parameter {i} of {} should be {s}, got {ws} with {} values",
                        spec.name,
                        v.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}
