//! Plaintext weights as a PyTorch `nn.Sequential` state dict in
//! safetensors: what `safetensors.torch.save_file(model.state_dict(), f)`
//! writes for the same layer list as the [`ModelSpec`].
//!
//! Names: layer `i` of the spec (counting every layer, as `nn.Sequential`
//! does) holds `"{i}.weight"` and `"{i}.bias"`. Shapes are PyTorch's:
//! Conv2d weight [out, in, kh, kw]; Linear weight [out, in] (transposed
//! here to the [in, out] of [`ModelSpec::param_shapes`]); BatchNorm2d
//! weight and bias [channels] (its running statistics are not read:
//! refused, since this engine's BatchNorm2d normalizes by batch statistics).

use std::collections::BTreeMap;
use std::path::Path;

use super::{LayerSpec, ModelSpec, ModelWeights};
use crate::error::{Error, Result};
use crate::io::tensors::{read_f32_tensors, write_f32_tensors, NamedTensor};
use crate::ring::Shape;

/// `rows x cols` row-major to `cols x rows`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// The (name, PyTorch dims) of every parameter of `spec`, in
/// [`ModelSpec::param_shapes`] order.
fn torch_names(spec: &ModelSpec) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let shapes = layer.param_shapes();
        for (shape, part) in shapes.iter().zip(["weight", "bias"]) {
            let dims = match (layer, part) {
                (LayerSpec::Linear { inputs, outputs }, "weight") => vec![*outputs, *inputs],
                _ => shape.0.clone(),
            };
            out.push((format!("{i}.{part}"), dims));
        }
    }
    out
}

impl ModelWeights {
    /// The weights of `spec` from a state dict (tensor name to dims and
    /// values); `what` names the source in errors.
    ///
    /// Errors: [`Error::Format`] naming the tensor when one is missing,
    /// has other dims than the spec implies, or is not a parameter of
    /// `spec` (another architecture, or BatchNorm running statistics).
    pub fn from_state_dict(
        spec: &ModelSpec,
        mut tensors: BTreeMap<String, NamedTensor>,
        what: &str,
    ) -> Result<Self> {
        let fail = |detail: String| Error::Format {
            what: what.to_string(),
            detail,
        };
        let mut out = Vec::new();
        for ((name, dims), shape) in torch_names(spec).into_iter().zip(spec.param_shapes()) {
            let (got, values) = tensors.remove(&name).ok_or_else(|| {
                fail(format!(
                    "missing tensor {name} (model {}: an nn.Sequential state dict with layer \
                     indices as names)",
                    spec.name
                ))
            })?;
            if got != dims {
                return Err(fail(format!(
                    "tensor {name} has dims {got:?}, {} expects {dims:?}",
                    spec.name
                )));
            }
            let values = if dims.len() == 2 && shape.0 != dims {
                transpose(&values, dims[0], dims[1])
            } else {
                values
            };
            out.push((shape, values));
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(fail(format!(
                "tensor {extra} is not a parameter of {} ({} more unused): another architecture?",
                spec.name,
                tensors.len() - 1
            )));
        }
        let w = ModelWeights { tensors: out };
        w.check(spec)?;
        Ok(w)
    }

    /// Reads the weights of `spec` from a safetensors state dict at `path`
    /// (the module docs give the names and layouts).
    ///
    /// Errors: as [`crate::io::tensors::read_f32_tensors`] and
    /// [`ModelWeights::from_state_dict`].
    pub fn read_state_dict(spec: &ModelSpec, path: &Path) -> Result<Self> {
        Self::from_state_dict(spec, read_f32_tensors(path)?, &path.display().to_string())
    }

    /// Writes these weights of `spec` as a safetensors state dict at
    /// `path`, readable by [`ModelWeights::read_state_dict`] and by
    /// PyTorch (`safetensors.torch.load_file`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for weights that do not fit `spec`;
    /// [`Error::Io`].
    pub fn write_state_dict(&self, spec: &ModelSpec, path: &Path) -> Result<()> {
        self.check(spec)?;
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = torch_names(spec)
            .into_iter()
            .zip(&self.tensors)
            .map(|((name, dims), (shape, values)): (_, &(Shape, Vec<f32>))| {
                let values = if dims.len() == 2 && shape.0 != dims {
                    transpose(values, shape.0[0], shape.0[1])
                } else {
                    values.clone()
                };
                (name, dims, values)
            })
            .collect();
        write_f32_tensors(path, &tensors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    /// A LeNet state dict round-trips; the Linear weights are stored
    /// [out, in] as PyTorch does; a missing, misshapen or extra tensor is
    /// a clear error.
    #[test]
    fn lenet_weights_round_trip_through_a_torch_state_dict() {
        let spec = crate::models::lenet();
        let w = ModelWeights::init(&spec, Init::PyTorchDefault, 7);
        let dir = std::env::temp_dir().join(format!("spindle-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lenet.safetensors");
        w.write_state_dict(&spec, &path).unwrap();
        assert_eq!(ModelWeights::read_state_dict(&spec, &path).unwrap(), w);
        let mut t = read_f32_tensors(&path).unwrap();
        // linear(800, 500) is layer 7: PyTorch's [500, 800].
        assert_eq!(t["7.weight"].0, vec![500, 800]);
        assert_eq!(t["7.weight"].1[1], w.tensors[4].1[500]);
        let mut extra = t.clone();
        extra.insert("3.running_mean".into(), (vec![50], vec![0.0; 50]));
        let e = ModelWeights::from_state_dict(&spec, extra, "f").unwrap_err();
        assert!(e.to_string().contains("3.running_mean"), "{e}");
        let mut bad = t.clone();
        bad.get_mut("0.bias").unwrap().0 = vec![21];
        let e = ModelWeights::from_state_dict(&spec, bad, "f").unwrap_err();
        assert!(e.to_string().contains("0.bias"), "{e}");
        t.remove("9.weight");
        let e = ModelWeights::from_state_dict(&spec, t, "f").unwrap_err();
        assert!(e.to_string().contains("missing tensor 9.weight"), "{e}");
        let e = ModelWeights::read_state_dict(&spec, &dir.join("absent.safetensors")).unwrap_err();
        assert!(e.to_string().contains("absent.safetensors"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
