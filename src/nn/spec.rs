//! Model definitions shared by the secure model and its plaintext twin.

use crate::backend::Conv2dParams;
use crate::error::{Error, Result};
use crate::protocol::pool::Pool2d;
use crate::ring::Shape;

/// One layer of a sequential model. The same spec builds the secure layer
/// ([`crate::nn::SecureModel`]) and its f32 twin ([`crate::nn::PlainModel`]).
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// y = x W + b; x [batch, inputs], W [inputs, outputs], b [outputs].
    Linear {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
    },
    /// NCHW convolution with bias; W [out, in, kh, kw], b [out].
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel (kh, kw).
        kernel: (usize, usize),
        /// Stride and padding.
        params: Conv2dParams,
    },
    /// max(x, 0).
    ReLU,
    /// Max pooling over windows.
    MaxPool2d(Pool2d),
    /// Average pooling over windows (padding counts as zeros, as PyTorch's
    /// default `count_include_pad`).
    AvgPool2d(Pool2d),
    /// [batch, ...] -> [batch, prod(...)].
    Flatten,
    /// Inference-time batch norm with running statistics folded into a
    /// per-channel scale and shift; parameters: scale [c], shift [c].
    BatchNorm2d {
        /// Channels.
        channels: usize,
    },
    /// Dropout with drop probability `p`: identity at evaluation; training
    /// with p > 0 is not supported yet (a clear error).
    Dropout {
        /// Drop probability.
        p: f32,
    },
}

/// A sequential model: per-sample input shape and layers.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Name for logs and checkpoints ("lenet", ...).
    pub name: String,
    /// Shape of one input sample (e.g. [1, 28, 28] or [784]).
    pub input: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
}

impl ModelSpec {
    /// A 64-bit fingerprint of the architecture (name, input shape and every
    /// layer with its settings): the first 8 bytes of SHA-256 over the
    /// spec's debug form. Checkpoints carry it so that shares of another
    /// architecture under the same name are refused.
    pub fn fingerprint(&self) -> u64 {
        use sha2::Digest;
        let d = sha2::Sha256::digest(format!("{self:?}").as_bytes());
        u64::from_le_bytes(d[..8].try_into().expect("SHA-256 has 32 bytes"))
    }
}

impl LayerSpec {
    /// Parameter shapes, in the order the layer stores them (weight, bias, ...).
    pub fn param_shapes(&self) -> Vec<Shape> {
        match self {
            LayerSpec::Linear { inputs, outputs } => {
                vec![Shape(vec![*inputs, *outputs]), Shape(vec![*outputs])]
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => vec![
                Shape(vec![*out_channels, *in_channels, kernel.0, kernel.1]),
                Shape(vec![*out_channels]),
            ],
            LayerSpec::BatchNorm2d { channels } => {
                vec![Shape(vec![*channels]), Shape(vec![*channels])]
            }
            _ => vec![],
        }
    }

    /// Output shape for an input of shape `x` (batch dimension included).
    ///
    /// Errors: [`Error::ShapeMismatch`] when `x` does not fit the layer.
    pub fn output_shape(&self, x: &Shape) -> Result<Shape> {
        let d = x.dims();
        match self {
            LayerSpec::Linear { inputs, outputs } => {
                if d.len() != 2 || d[1] != *inputs {
                    return Err(Error::shape(
                        "linear",
                        format!("expects [batch, {inputs}], got {x}"),
                    ));
                }
                Ok(Shape(vec![d[0], *outputs]))
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                params,
            } => {
                if d.len() != 4 || d[1] != *in_channels {
                    return Err(Error::shape(
                        "conv2d",
                        format!("expects [batch, {in_channels}, h, w], got {x}"),
                    ));
                }
                params.output_shape(
                    x,
                    &Shape(vec![*out_channels, *in_channels, kernel.0, kernel.1]),
                )
            }
            LayerSpec::MaxPool2d(p) | LayerSpec::AvgPool2d(p) => p.output_shape(x),
            LayerSpec::Flatten => {
                if d.is_empty() {
                    return Err(Error::shape("flatten", "needs a batch dimension"));
                }
                Ok(Shape(vec![d[0], d[1..].iter().product()]))
            }
            LayerSpec::BatchNorm2d { channels } => {
                if d.len() != 4 || d[1] != *channels {
                    return Err(Error::shape(
                        "batchnorm2d",
                        format!("expects [batch, {channels}, h, w], got {x}"),
                    ));
                }
                Ok(x.clone())
            }
            LayerSpec::ReLU | LayerSpec::Dropout { .. } => Ok(x.clone()),
        }
    }

    /// Fan-in of a weight layer (for initialisation).
    pub fn fan_in(&self) -> usize {
        match self {
            LayerSpec::Linear { inputs, .. } => *inputs,
            LayerSpec::Conv2d {
                in_channels,
                kernel,
                ..
            } => in_channels * kernel.0 * kernel.1,
            _ => 1,
        }
    }

    /// Fan-out of a weight layer (for Xavier initialisation).
    pub fn fan_out(&self) -> usize {
        match self {
            LayerSpec::Linear { outputs, .. } => *outputs,
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                ..
            } => out_channels * kernel.0 * kernel.1,
            _ => 1,
        }
    }
}

impl ModelSpec {
    /// Shapes after every layer for a batch of `batch` samples.
    ///
    /// Errors: [`Error::ShapeMismatch`] at the first layer that does not fit.
    pub fn shapes(&self, batch: usize) -> Result<Vec<Shape>> {
        let mut s = Shape([vec![batch], self.input.clone()].concat());
        let mut out = vec![s.clone()];
        for l in &self.layers {
            s = l.output_shape(&s)?;
            out.push(s.clone());
        }
        Ok(out)
    }

    /// Every parameter shape, layer by layer.
    pub fn param_shapes(&self) -> Vec<Shape> {
        self.layers
            .iter()
            .flat_map(LayerSpec::param_shapes)
            .collect()
    }
}
