//! The model zoo of the secure-training literature, as [`ModelSpec`]s.
//!
//! SecureML, LeNet, AlexNet and VGG16 as defined by Piranha
//! (`files/models/*.json` in ucbrise/piranha) and Falcon. Piranha's files end
//! every network with a ReLU on the logits; these specs end with the last
//! linear layer, as the softmax cross-entropy loss expects.

// Shares stay where they live: host access only at named I/O boundaries
// (clippy.toml; an `#[allow]` with its reason).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use crate::backend::Conv2dParams;
use crate::error::{Error, Result};

pub mod bert;
use crate::nn::{LayerSpec, ModelSpec};
use crate::protocol::pool::Pool2d;

fn conv(
    in_channels: usize,
    out_channels: usize,
    k: usize,
    stride: usize,
    padding: usize,
) -> LayerSpec {
    LayerSpec::Conv2d {
        in_channels,
        out_channels,
        kernel: (k, k),
        params: Conv2dParams {
            stride: (stride, stride),
            padding: (padding, padding),
        },
    }
}

fn linear(inputs: usize, outputs: usize) -> LayerSpec {
    LayerSpec::Linear { inputs, outputs }
}

fn pool(k: usize, stride: usize) -> Pool2d {
    Pool2d {
        kernel: (k, k),
        geometry: Conv2dParams {
            stride: (stride, stride),
            padding: (0, 0),
        },
    }
}

/// SecureML (Mohassel and Zhang, S&P 2017): FC 784-128-128-10 with ReLU.
/// Input [784] (a flattened MNIST image).
pub fn secureml() -> ModelSpec {
    use LayerSpec::ReLU;
    ModelSpec {
        name: "secureml".into(),
        input: vec![784],
        layers: vec![
            linear(784, 128),
            ReLU,
            linear(128, 128),
            ReLU,
            linear(128, 10),
        ],
    }
}

/// LeNet as in Falcon and Piranha: conv 5x5x20, ReLU, maxpool 2, conv
/// 5x5x50, ReLU, maxpool 2, FC 800-500, ReLU, FC 500-10. Input [1, 28, 28].
pub fn lenet() -> ModelSpec {
    use LayerSpec::{Flatten, MaxPool2d, ReLU};
    ModelSpec {
        name: "lenet".into(),
        input: vec![1, 28, 28],
        layers: vec![
            conv(1, 20, 5, 1, 0),
            ReLU,
            MaxPool2d(pool(2, 2)),
            conv(20, 50, 5, 1, 0),
            ReLU,
            MaxPool2d(pool(2, 2)),
            Flatten,
            linear(800, 500),
            ReLU,
            linear(500, 10),
        ],
    }
}

/// AlexNet, CIFAR-10 variant of Piranha/Falcon (average pooling). Input [3, 32, 32].
pub fn alexnet() -> ModelSpec {
    use LayerSpec::{AvgPool2d, Flatten, ReLU};
    ModelSpec {
        name: "alexnet".into(),
        input: vec![3, 32, 32],
        layers: vec![
            conv(3, 96, 11, 4, 9),
            AvgPool2d(pool(3, 2)),
            ReLU,
            conv(96, 256, 5, 1, 1),
            AvgPool2d(pool(2, 1)),
            ReLU,
            conv(256, 384, 3, 1, 1),
            ReLU,
            conv(384, 384, 3, 1, 1),
            ReLU,
            conv(384, 256, 3, 1, 1),
            ReLU,
            Flatten,
            linear(256, 256),
            ReLU,
            linear(256, 256),
            ReLU,
            linear(256, 10),
        ],
    }
}

/// VGG16, CIFAR-10 variant of Piranha/Falcon: 13 convolutions (3x3,
/// padding 1) in five blocks with 2x2 average pooling, then FC
/// 512-256-256-10; input [3, 32, 32].
pub fn vgg16() -> ModelSpec {
    use LayerSpec::{AvgPool2d, Flatten, ReLU};
    let mut layers = Vec::new();
    let blocks: [&[usize]; 5] = [
        &[64, 64],
        &[128, 128],
        &[256, 256, 256],
        &[512, 512, 512],
        &[512, 512, 512],
    ];
    let mut c = 3;
    for block in blocks {
        for (i, &out) in block.iter().enumerate() {
            layers.push(conv(c, out, 3, 1, 1));
            c = out;
            if i + 1 == block.len() {
                layers.push(AvgPool2d(pool(2, 2)));
            }
            layers.push(ReLU);
        }
    }
    layers.extend([
        Flatten,
        linear(512, 256),
        ReLU,
        linear(256, 256),
        ReLU,
        linear(256, 10),
    ]);
    ModelSpec {
        name: "vgg16".into(),
        input: vec![3, 32, 32],
        layers,
    }
}

/// A zoo model by name: "secureml", "lenet", "alexnet" or "vgg16".
///
/// Errors: [`Error::Unsupported`] for any other name.
pub fn by_name(name: &str) -> Result<ModelSpec> {
    match name {
        "secureml" => Ok(secureml()),
        "lenet" => Ok(lenet()),
        "alexnet" => Ok(alexnet()),
        "vgg16" => Ok(vgg16()),
        other => Err(Error::Unsupported(format!(
            "unknown model {other:?}: choose secureml, lenet, alexnet or vgg16"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_shapes_chain() {
        for (spec, params) in [
            (secureml(), 6),
            (lenet(), 8),
            (alexnet(), 16),
            (vgg16(), 32),
        ] {
            let shapes = spec.shapes(2).unwrap();
            assert_eq!(shapes.last().unwrap().dims(), [2, 10], "{}", spec.name);
            assert_eq!(spec.param_shapes().len(), params, "{}", spec.name);
        }
        let lenet_shapes = lenet().shapes(1).unwrap();
        assert_eq!(lenet_shapes[6].dims(), [1, 50, 4, 4]);
        assert!(by_name("resnet").is_err());
    }
}
