//! Named plaintext f32 tensors in safetensors files (model weights): the
//! dtype conversion every weight reader shares, and a plain read and write
//! of all the tensors of a file.
//!
//! Format: the safetensors specification
//! (<https://github.com/huggingface/safetensors>, little-endian data).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A tensor's bytes as f32: F32, F16 and BF16 (little-endian) are read.
///
/// Errors: [`Error::Unsupported`] for another dtype, naming the tensor.
pub fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let out = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::Unsupported(format!(
                "tensor {name} has dtype {other:?}: only F32, F16 and BF16 weights"
            )))
        }
    };
    Ok(out)
}

/// One named tensor: its dims and row-major values.
pub type NamedTensor = (Vec<usize>, Vec<f32>);

/// Every tensor of the safetensors file at `path`, by name, as f32.
///
/// Errors: [`Error::Io`] if the file cannot be read; [`Error::Format`]
/// naming the file when it is not safetensors or a tensor holds NaN or
/// infinite values; [`Error::Unsupported`] for a dtype other than F32,
/// F16 or BF16.
pub fn read_f32_tensors(path: &Path) -> Result<BTreeMap<String, NamedTensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let what = path.display().to_string();
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Format {
        what: what.clone(),
        detail: format!("not a safetensors file: {e}"),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let values = to_f32(&name, view.dtype(), view.data())?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Format {
                what,
                detail: format!("tensor {name} holds NaN or infinite values"),
            });
        }
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Writes `tensors` (name, dims, row-major values) to `path` as F32
/// safetensors.
///
/// Errors: [`Error::Io`]; [`Error::Format`] for values that do not fill
/// their dims.
pub fn write_f32_tensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, dims, _), b)| {
            TensorView::new(Dtype::F32, dims.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Format {
                    what: path.display().to_string(),
                    detail: format!("tensor {name}: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, &None, path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => Error::io(path, io),
        other => Error::Format {
            what: path.display().to_string(),
            detail: other.to_string(),
        },
    })
}
