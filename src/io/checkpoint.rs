//! Per-party share checkpoints in safetensors.
//!
//! Each party writes its own shares (never the secret): parameters and
//! momentum buffers as ring tensors (`param.{i}`, `velocity.{i}`), with
//! metadata naming the model, the party, the party count, the ring, the
//! fractional bits and the epoch, so a checkpoint of another model or party
//! is refused with a clear error.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor};

/// One party's training state after an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareCheckpoint<R: Ring> {
    /// Model name ([`crate::nn::ModelSpec::name`]).
    pub model: String,
    /// The party whose shares these are.
    pub party: usize,
    /// Number of parties.
    pub n_parties: usize,
    /// Fixed-point fractional bits of the shares.
    pub frac_bits: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Shares of every parameter, in spec order.
    pub params: Vec<RingTensor<R>>,
    /// Shares of the momentum buffers (empty without momentum).
    pub velocity: Vec<RingTensor<R>>,
}

fn dtype<R: Ring>() -> Dtype {
    if R::BITS == 64 {
        Dtype::U64
    } else {
        Dtype::U32
    }
}

impl<R: Ring> ShareCheckpoint<R> {
    /// Writes the checkpoint.
    ///
    /// Errors: [`Error::Io`]; [`Error::Format`] if serialization fails.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("param.{i}"), t))
            .chain(
                self.velocity
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("velocity.{i}"), t)),
            )
            .map(|(name, t)| (name, t.to_le_bytes(), t.dims().to_vec()))
            .collect();
        let views = bytes
            .iter()
            .map(|(name, b, dims)| {
                TensorView::new(dtype::<R>(), dims.clone(), b)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Format {
                        what: "checkpoint".into(),
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let meta: HashMap<String, String> = [
            ("model", self.model.clone()),
            ("party", self.party.to_string()),
            ("n_parties", self.n_parties.to_string()),
            ("ring_bits", R::BITS.to_string()),
            ("frac_bits", self.frac_bits.to_string()),
            ("epoch", self.epoch.to_string()),
            ("params", self.params.len().to_string()),
            ("velocity", self.velocity.len().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        safetensors::serialize_to_file(views, &Some(meta), path).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(io) => Error::io(path, io),
            other => Error::Format {
                what: path.display().to_string(),
                detail: other.to_string(),
            },
        })
    }

    /// Reads a checkpoint and checks it belongs to `model`, `party` of
    /// `n_parties`, in this ring.
    ///
    /// Errors: [`Error::Io`] for a missing file; [`Error::Format`] for a
    /// corrupt file or one of another model, party, party count or ring.
    pub fn read(path: &Path, model: &str, party: usize, n_parties: usize) -> Result<Self> {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let fmt = |detail: String| Error::Format {
            what: what.clone(),
            detail,
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| fmt(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| fmt(format!("metadata lacks {k:?}")))
        };
        let num = |k: &str| -> Result<usize> {
            get(k)?
                .parse()
                .map_err(|_| fmt(format!("metadata {k:?} is not a number")))
        };
        let found = (
            get("model")?,
            num("party")?,
            num("n_parties")?,
            num("ring_bits")?,
        );
        if found != (model.to_string(), party, n_parties, R::BITS as usize) {
            return Err(fmt(format!(
                "checkpoint of model {} party {} of {} in Z_2^{}, expected model {model} party {party} of {n_parties} in Z_2^{}",
                found.0,
                found.1,
                found.2,
                found.3,
                R::BITS
            )));
        }
        let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt(e.to_string()))?;
        let load = |name: String| -> Result<RingTensor<R>> {
            let t = st
                .tensor(&name)
                .map_err(|_| fmt(format!("missing tensor {name}")))?;
            if t.dtype() != dtype::<R>() {
                return Err(fmt(format!("tensor {name} has dtype {:?}", t.dtype())));
            }
            RingTensor::from_le_bytes(t.shape().to_vec(), t.data())
        };
        Ok(ShareCheckpoint {
            model: model.to_string(),
            party,
            n_parties,
            frac_bits: num("frac_bits")? as u32,
            epoch: num("epoch")?,
            params: (0..num("params")?)
                .map(|i| load(format!("param.{i}")))
                .collect::<Result<_>>()?,
            velocity: (0..num("velocity")?)
                .map(|i| load(format!("velocity.{i}")))
                .collect::<Result<_>>()?,
        })
    }
}
