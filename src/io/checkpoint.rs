//! Per-party share checkpoints in safetensors.
//!
//! Each party writes its own shares (never the secret): parameters and
//! momentum buffers as ring tensors (`param.{i}`, `velocity.{i}`), with
//! metadata naming the model and its architecture fingerprint, the party,
//! the party count, the ring, the fractional bits, the epoch, the training
//! run's identifier and a SHA-256 digest of the share data. A checkpoint of
//! another model or party, or one whose bytes changed, is refused with a
//! clear error; [`check_agreement`] refuses checkpoints of several parties
//! that do not belong together (another run, another epoch, other
//! settings), since shares of two runs mixed reconstruct to garbage.

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
    /// The training run: drawn at random when it starts, kept by every
    /// resume, the same at every party.
    pub run_id: u128,
    /// [`crate::nn::ModelSpec::fingerprint`] of the model.
    pub spec: u64,
    /// Shares of every parameter, in spec order.
    pub params: Vec<RingTensor<R>>,
    /// Shares of the momentum buffers (empty without momentum).
    pub velocity: Vec<RingTensor<R>>,
}

/// What the parties' checkpoints must agree on to be resumed together:
/// public metadata, compared across parties at resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointId {
    /// Epochs completed.
    pub epoch: usize,
    /// The training run ([`ShareCheckpoint::run_id`]).
    pub run_id: u128,
    /// Fixed-point fractional bits of the shares.
    pub frac_bits: u32,
    /// Architecture fingerprint ([`ShareCheckpoint::spec`]).
    pub spec: u64,
}

impl CheckpointId {
    /// Number of u64 words of [`CheckpointId::to_words`].
    pub const WORDS: usize = 5;

    /// The id as words (for parties that exchange it over the network).
    pub fn to_words(&self) -> [u64; Self::WORDS] {
        [
            self.epoch as u64,
            self.run_id as u64,
            (self.run_id >> 64) as u64,
            self.frac_bits as u64,
            self.spec,
        ]
    }

    /// The inverse of [`CheckpointId::to_words`].
    pub fn from_words(w: &[u64]) -> Self {
        let w = |i: usize| w.get(i).copied().unwrap_or_default();
        CheckpointId {
            epoch: w(0) as usize,
            run_id: w(1) as u128 | (w(2) as u128) << 64,
            frac_bits: w(3) as u32,
            spec: w(4),
        }
    }
}

/// Checks that the checkpoints of every party (`ids[p]` is party p's) can
/// be resumed together, and match this run's fractional bits and model.
///
/// Errors: [`Error::Format`] naming the first mismatch and the parties
/// concerned: checkpoints of different epochs (one party's latest missing),
/// of different runs (share files of two runs mixed), of other fractional
/// bits than `frac_bits` (with the flag that fixes it), or of another
/// architecture than `spec`.
pub fn check_agreement(ids: &[CheckpointId], frac_bits: u32, spec: u64) -> Result<()> {
    let fail = |detail: String| {
        Err(Error::Format {
            what: "checkpoints".into(),
            detail,
        })
    };
    let list = |f: &dyn Fn(&CheckpointId) -> String| {
        ids.iter()
            .enumerate()
            .map(|(p, id)| format!("party {p}: {}", f(id)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(first) = ids.first() else {
        return Ok(());
    };
    if ids.iter().any(|id| id.epoch != first.epoch) {
        return fail(format!(
            "the parties' latest checkpoints are of different epochs ({}): resume needs every \
             party's checkpoint of the same epoch (a party's file missing or deleted?)",
            list(&|id| id.epoch.to_string())
        ));
    }
    if ids.iter().any(|id| id.run_id != first.run_id) {
        return fail(format!(
            "the parties' checkpoints come from different training runs ({}): share files of \
             two runs cannot be mixed",
            list(&|id| format!("{:032x}", id.run_id))
        ));
    }
    if let Some(p) = ids.iter().position(|id| id.frac_bits != frac_bits) {
        return fail(format!(
            "party {p}'s checkpoint holds shares with {} fractional bits, this run uses {frac_bits}: \
             resume with --frac-bits {}",
            ids[p].frac_bits, ids[p].frac_bits
        ));
    }
    if let Some(p) = ids.iter().position(|id| id.spec != spec) {
        return fail(format!(
            "party {p}'s checkpoint is of another architecture (fingerprint {:016x}, this model's is \
             {spec:016x})",
            ids[p].spec
        ));
    }
    Ok(())
}

/// SHA-256 of the share data in file order, as hex.
fn digest<'a>(tensors: impl Iterator<Item = &'a [u8]>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for t in tensors {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
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
            ("run_id", format!("{:032x}", self.run_id)),
            ("spec", format!("{:016x}", self.spec)),
            ("params", self.params.len().to_string()),
            ("velocity", self.velocity.len().to_string()),
            ("sha256", digest(bytes.iter().map(|(_, b, _)| b.as_slice()))),
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
    /// `n_parties`, in this ring, and that its share data still has the
    /// digest written with it.
    ///
    /// Errors: [`Error::Io`] for a missing file; [`Error::Format`] for a
    /// corrupt file (unreadable, or share bytes that do not match the
    /// digest) or one of another model, party, party count or ring.
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
            Ok(RingTensor::from_le_bytes(t.shape().to_vec(), t.data())?)
        };
        let hex = |k: &str| -> Result<u128> {
            u128::from_str_radix(&get(k)?, 16)
                .map_err(|_| fmt(format!("metadata {k:?} is not hexadecimal")))
        };
        let ck = ShareCheckpoint {
            model: model.to_string(),
            party,
            n_parties,
            frac_bits: num("frac_bits")? as u32,
            epoch: num("epoch")?,
            run_id: hex("run_id")?,
            spec: hex("spec")? as u64,
            params: (0..num("params")?)
                .map(|i| load(format!("param.{i}")))
                .collect::<Result<_>>()?,
            velocity: (0..num("velocity")?)
                .map(|i| load(format!("velocity.{i}")))
                .collect::<Result<_>>()?,
        };
        let data: Vec<Vec<u8>> = ck
            .params
            .iter()
            .chain(&ck.velocity)
            .map(|t| t.to_le_bytes())
            .collect();
        if digest(data.iter().map(Vec::as_slice)) != get("sha256")? {
            return Err(fmt(
                "the share data does not match the SHA-256 digest written with it: the file was \
                 changed or damaged after it was written"
                    .into(),
            ));
        }
        Ok(ck)
    }

    /// What must agree across parties ([`check_agreement`]).
    pub fn id(&self) -> CheckpointId {
        CheckpointId {
            epoch: self.epoch,
            run_id: self.run_id,
            frac_bits: self.frac_bits,
            spec: self.spec,
        }
    }
}
