//! Secure CNN inference over many images: a secret model classifies an
//! IDX image file in micro-batches through the inter-batch pipeline
//! (MPC-Pipe's third scheme: Wang, Rajat, Annavaram, ASPLOS 2024), the
//! labels (or the logits) revealed to the data owner alone.
//!
//! Roles: party [`DATA_OWNER`] (0) holds the images and receives the
//! result; the model is either the per-party share checkpoints that secure
//! training wrote (`spindle train --checkpoint-dir`: each party reads only
//! its own share, the model is never reconstructed) or plaintext weights
//! of party [`MODEL_OWNER`] (1), a PyTorch `nn.Sequential` state dict in
//! safetensors ([`crate::nn::ModelWeights::read_state_dict`]), secret-shared
//! when the job starts. Images are normalized as in training
//! ([`crate::io::mnist::MnistImages::normalized`]).
//!
//! The weights are masked and opened once at load
//! ([`ClassifyJob::static_weights`]); then the cost per image is that of
//! [`SecureModel::infer`] (each product opening only the activations'
//! masks) plus, with
//! [`Reveal::Label`], one argmax over the classes ([`argmax`]: its rounds
//! and bytes) and an opening of the one-hot to the data owner; with
//! [`Reveal::Logits`] one opening of the logits. Error against f64: that
//! of the model's layers (fixed point, probabilistic truncation); a label
//! differs from the plaintext model's only where two logits are closer
//! than that error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::io::checkpoint::CheckpointId;
use crate::nn::{argmax_row, ModelSpec, ModelWeights, SecureModel};
use crate::pipeline::{run_micro_batches, InterBatch, Progress};
use crate::protocol::compare::argmax;
use crate::report::JobPhase;
use crate::ring::RingTensor;
use crate::runner::{run_parties_blocking, RunOptions};
use crate::session::Session;

/// The party that holds the images and receives the labels.
pub const DATA_OWNER: usize = 0;

/// The party that holds plaintext weights ([`ModelSource::StateDict`]).
pub const MODEL_OWNER: usize = 1;

/// Where the secret model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// Per-party share checkpoints of secure training in `dir`
    /// (`{model}-party{p}-epoch{e}.safetensors`): each party reads its own,
    /// of `epoch` or of its latest; the parties check that their
    /// checkpoints belong together (one opening of their identifiers).
    Checkpoints {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The epoch (default: the latest).
        epoch: Option<usize>,
    },
    /// Plaintext weights of the model owner (party 1): a safetensors state
    /// dict, secret-shared without online messages.
    StateDict(PathBuf),
}

/// What the data owner learns about each image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reveal {
    /// The predicted class only (a secure argmax, then its one-hot opened
    /// to the data owner).
    #[default]
    Label,
    /// The logits (more than the label: the model's confidence).
    Logits,
}

/// Secure classification of the images of an IDX file; every process of
/// a cluster gets the same job and reads only what its role may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifyJob {
    /// The zoo model ([`crate::models::by_name`]) the weights are for.
    pub model: String,
    /// The secret model.
    pub source: ModelSource,
    /// IDX3 image file (raw or gzip), read by the data owner.
    pub images: PathBuf,
    /// Public: how many images (the first `count` of the file).
    pub count: usize,
    /// Public: micro-batch size and micro-batches in flight.
    pub pipeline: InterBatch,
    /// Public: what the data owner learns.
    pub reveal: Reveal,
    /// Public: mask and open the weights once at load (MPC-Pipe's
    /// inter-linear scheme, [`SecureModel::prepare_inference`]), so each
    /// micro-batch's products open only its activations' masks (false:
    /// every product opens W - B afresh).
    pub static_weights: bool,
}

impl ClassifyJob {
    /// Identifies the job for the dealer's check (public parts only).
    pub fn fingerprint(&self) -> String {
        let source = match &self.source {
            ModelSource::Checkpoints { .. } => "checkpoints",
            ModelSource::StateDict(_) => "weights",
        };
        format!(
            "classify model={} source={source} count={} pipeline={:?} reveal={:?} static_weights={}",
            self.model, self.count, self.pipeline, self.reveal, self.static_weights
        )
    }

    /// The model's definition.
    ///
    /// Errors: [`Error::Unsupported`] for an unknown model.
    pub fn spec(&self) -> Result<ModelSpec> {
        crate::models::by_name(&self.model)
    }

    /// Classes per image: the model's output width.
    ///
    /// Errors: as [`ClassifyJob::spec`]; [`Error::ShapeMismatch`] for a
    /// model whose output is not [batch, classes].
    pub fn classes(&self) -> Result<usize> {
        let spec = self.spec()?;
        let shapes = spec.shapes(1)?;
        match shapes.last().map(|s| s.dims().to_vec()).as_deref() {
            Some([1, c]) => Ok(*c),
            other => Err(Error::shape(
                "classify",
                format!("{} outputs {other:?}, not [batch, classes]", spec.name),
            )),
        }
    }

    /// Checks the public parameters.
    ///
    /// Errors: [`Error::Format`] for no image or a pipeline setting of 0;
    /// as [`ClassifyJob::classes`].
    pub fn validate(&self) -> Result<()> {
        self.pipeline.validate()?;
        if self.count == 0 {
            return Err(Error::Format {
                what: "classify".into(),
                detail: "no image to classify".into(),
            });
        }
        self.classes().map(|_| ())
    }

    /// The data owner's images: the first `count` of the file, normalized,
    /// [count * pixels].
    ///
    /// Errors: [`Error::Io`], [`Error::Format`] for the file; a file with
    /// fewer images than `count` or of another size than the model takes.
    fn read_images(&self, spec: &ModelSpec) -> Result<Vec<f64>> {
        let images = crate::io::mnist::read_images(&self.images)?;
        let d: usize = spec.input.iter().product();
        if images.pixels_per_image() != d {
            return Err(Error::Format {
                what: self.images.display().to_string(),
                detail: format!(
                    "images of {} x {} pixels; {} takes {:?}",
                    images.rows, images.cols, spec.name, spec.input
                ),
            });
        }
        if images.n < self.count {
            return Err(Error::Format {
                what: self.images.display().to_string(),
                detail: format!("{} images, {} asked for", images.n, self.count),
            });
        }
        Ok(images.take(self.count)?.normalized_f64())
    }

    /// This party's share of the model: read from its checkpoint (then
    /// checked against the others') or shared by the model owner.
    async fn load_model(&self, sess: &Session, spec: &ModelSpec) -> Result<SecureModel<u64>> {
        let (me, n, real) = (sess.party(), sess.n_parties(), !sess.is_dry_run());
        match &self.source {
            ModelSource::StateDict(path) => {
                let w = match me == MODEL_OWNER && real {
                    true => Some(ModelWeights::read_state_dict(spec, path)?),
                    false => None,
                };
                SecureModel::share(sess, spec, MODEL_OWNER, w.as_ref())
            }
            ModelSource::Checkpoints { dir, epoch } => {
                let frac_bits = sess.fixed_point::<u64>()?.frac_bits();
                let (id, shares) = if real {
                    let e = match epoch {
                        Some(e) => *e,
                        None => crate::train::latest_checkpoint(dir, &spec.name, me, usize::MAX)
                            .ok_or_else(|| Error::Format {
                                what: dir.display().to_string(),
                                detail: format!(
                                    "no checkpoint of party {me} for {} (spindle train \
                                     --checkpoint-dir writes them)",
                                    spec.name
                                ),
                            })?,
                    };
                    let ck = crate::train::read_checkpoint(dir, spec, me, n, e)?;
                    (ck.id(), ck.params)
                } else {
                    let zeros = spec
                        .param_shapes()
                        .into_iter()
                        .map(RingTensor::<u64>::zeros)
                        .collect();
                    (CheckpointId::default(), zeros)
                };
                let ids = crate::train::announce_checkpoint_ids(sess, &id).await?;
                if real {
                    crate::io::checkpoint::check_agreement(&ids, frac_bits, spec.fingerprint())?;
                }
                SecureModel::from_shares(spec, shares)
            }
        }
    }

    /// Runs the job as `sess.party()` (or as a dry run): the labels
    /// (one per image, as f64) or the logits ([count, classes] row-major)
    /// at the data owner, nothing elsewhere; and the phases "load" and
    /// "classify". `progress` is called at the data owner with the images
    /// done so far.
    ///
    /// Errors: as [`ClassifyJob::validate`]; the data owner's image file;
    /// the model's source ([`ModelWeights::read_state_dict`], the
    /// checkpoints and their agreement); protocol and transport errors.
    pub async fn run_party(
        &self,
        sess: &Session,
        progress: Option<&Progress>,
    ) -> Result<(Vec<f64>, Vec<JobPhase>)> {
        self.validate()?;
        let spec = self.spec()?;
        let classes = self.classes()?;
        let (me, real) = (sess.party(), !sess.is_dry_run());
        // The data owner reads its images before anything is sent: a
        // missing file fails this party alone, at once.
        let images = match me == DATA_OWNER && real {
            true => Some(Arc::new(self.read_images(&spec)?)),
            false => None,
        };
        // This party's share of the micro-batches in flight (training's
        // estimate: an upper bound for inference).
        let estimate = crate::resources::train_estimate(
            &spec,
            1,
            self.pipeline.micro_batch * self.pipeline.in_flight,
        )?;
        if real {
            crate::resources::check_fits(
                estimate,
                &format!(
                    "party {me}'s share of {} micro-batches in flight",
                    self.pipeline.in_flight
                ),
                "use a smaller --micro-batch or --in-flight",
            )?;
        }
        let (t0, s0) = (Instant::now(), sess.link_stats());
        let model = crate::trace::in_span(sess.stream_id(), "load", async {
            let mut m = self.load_model(sess, &spec).await?;
            if self.static_weights {
                m.prepare_inference(sess).await?;
            }
            Ok::<_, Error>(m)
        })
        .await?;
        let load = JobPhase {
            label: "load".into(),
            time: t0.elapsed(),
            link: sess.link_stats() - s0,
        };
        let (t1, s1) = (Instant::now(), sess.link_stats());
        let ranges = self.pipeline.ranges(self.count);
        let d: usize = spec.input.iter().product();
        let fp = sess.fixed_point::<u64>()?;
        let (model, ranges, images, spec) = (&model, &ranges, &images, &spec);
        let reveal = self.reveal;
        let parts = run_micro_batches(
            sess,
            ranges.len(),
            self.pipeline.in_flight,
            |fork, i| async move {
                let r = ranges[i].clone();
                let x = images
                    .as_ref()
                    .map(|im| im[r.start * d..r.end * d].to_vec());
                let shape = [vec![r.len()], spec.input.clone()].concat();
                let xs = fork.share_input_f64::<u64>(DATA_OWNER, x.as_deref(), shape)?;
                let logits = model.infer(&fork, &xs).await?;
                let out = match reveal {
                    Reveal::Logits => fork
                        .reveal_to(&logits, DATA_OWNER)
                        .await?
                        .map(|l| l.data().iter().map(|&v| fp.decode(v)).collect()),
                    Reveal::Label => {
                        let (_, onehot) = argmax(&fork, &logits, 1).await?;
                        fork.reveal_to(&onehot, DATA_OWNER).await?.map(|oh| {
                            oh.data()
                                .chunks(classes)
                                .map(|row| row.iter().position(|&v| v != 0).unwrap_or(0) as f64)
                                .collect()
                        })
                    }
                };
                Ok::<Vec<f64>, Error>(out.unwrap_or_default())
            },
            |i| {
                if let (Some(p), true) = (progress, me == DATA_OWNER) {
                    (p.0)(ranges[i].end);
                }
            },
        )
        .await?;
        let classify = JobPhase {
            label: "classify".into(),
            time: t1.elapsed(),
            link: sess.link_stats() - s1,
        };
        Ok((parts.concat(), vec![load, classify]))
    }
}

/// The labels in a classify job's output: the output itself with
/// [`Reveal::Label`], the argmax of each row of `classes` logits with
/// [`Reveal::Logits`].
pub fn predicted_labels(output: &[f64], reveal: Reveal, classes: usize) -> Vec<usize> {
    match reveal {
        Reveal::Label => output.iter().map(|&v| v as usize).collect(),
        Reveal::Logits => output.chunks(classes.max(1)).map(argmax_row).collect(),
    }
}

/// What [`classify`] produced and measured.
#[derive(Clone, Debug)]
pub struct ClassifyReport {
    /// The data owner's result: one label per image, or [count, classes]
    /// logits row-major ([`ClassifyJob::reveal`]).
    pub output: Vec<f64>,
    /// Per party: its phases ("load", "classify").
    pub phases: Vec<Vec<JobPhase>>,
    /// The dealer's offline time (zero with material made online).
    pub offline_time: std::time::Duration,
    /// Bytes each party received from the dealer before the online phase.
    pub dealer_bytes: Vec<usize>,
    /// The timeline, with `run.trace`.
    pub trace: Option<crate::trace::Trace>,
}

/// Runs `job` with `run.n_parties` parties in this process (every party
/// reads its own files, as separate processes would).
///
/// Errors: [`Error::InvalidParty`] for fewer than 2 parties; as
/// [`ClassifyJob::run_party`].
pub fn classify(
    job: &ClassifyJob,
    run: &RunOptions,
    progress: Option<Progress>,
) -> Result<ClassifyReport> {
    if run.n_parties < 2 {
        return Err(Error::InvalidParty(format!(
            "need at least 2 parties, got {}",
            run.n_parties
        )));
    }
    job.validate()?;
    let job = Arc::new(job.clone());
    let report = run_parties_blocking(run, move |sess| {
        let (job, progress) = (job.clone(), progress.clone());
        async move { job.run_party(&sess, progress.as_ref()).await }
    })?;
    Ok(ClassifyReport {
        output: report.parties[DATA_OWNER].output.0.clone(),
        phases: report.parties.iter().map(|p| p.output.1.clone()).collect(),
        offline_time: report.offline_time,
        dealer_bytes: report.parties.iter().map(|p| p.dealer_bytes).collect(),
        trace: report.trace,
    })
}

/// The plaintext model's label for each image (argmax of its logits, the
/// first on ties), in batches of 256.
///
/// Errors: [`Error::ShapeMismatch`] for weights or images that do not fit
/// `spec`.
pub fn plaintext_labels(
    spec: &ModelSpec,
    weights: ModelWeights,
    images: &crate::io::mnist::MnistImages,
) -> Result<Vec<usize>> {
    let mut model = crate::nn::PlainModel::new(spec, weights)?;
    let d = images.pixels_per_image();
    let x = images.normalized();
    let mut out = Vec::with_capacity(images.n);
    for start in (0..images.n).step_by(256) {
        let b = 256.min(images.n - start);
        let shape = [vec![b], spec.input.clone()].concat();
        let xb = crate::nn::PlainTensor::new(shape, x[start * d..(start + b) * d].to_vec())?;
        let logits = model.forward(&xb, false)?;
        let classes = logits.data.len() / b.max(1);
        out.extend(logits.data.chunks(classes.max(1)).map(argmax_row));
    }
    Ok(out)
}

/// The plaintext weights behind every party's share checkpoint of `epoch`
/// (default: party 0's latest) in `dir`: the shares summed and decoded.
/// Only for a check where every party's file is at hand (one process): it
/// reconstructs the secret model.
///
/// Errors: as the checkpoints' reading and [`crate::io::checkpoint::check_agreement`].
pub fn reconstruct_checkpoints(
    dir: &std::path::Path,
    spec: &ModelSpec,
    parties: usize,
    epoch: Option<usize>,
) -> Result<ModelWeights> {
    let e =
        match epoch {
            Some(e) => e,
            None => crate::train::latest_checkpoint(dir, &spec.name, 0, usize::MAX).ok_or_else(
                || Error::Format {
                    what: dir.display().to_string(),
                    detail: format!("no checkpoint of party 0 for {}", spec.name),
                },
            )?,
        };
    let cks = (0..parties)
        .map(|p| crate::train::read_checkpoint(dir, spec, p, parties, e))
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<CheckpointId> = cks.iter().map(|c| c.id()).collect();
    let frac_bits = ids[0].frac_bits;
    crate::io::checkpoint::check_agreement(&ids, frac_bits, spec.fingerprint())?;
    let fp = crate::ring::FixedPoint::new::<u64>(frac_bits)?;
    let tensors = (0..cks[0].params.len())
        .map(|i| {
            let shape = cks[0].params[i].shape().clone();
            let mut sum = vec![0u64; shape.numel()];
            for ck in &cks {
                for (s, v) in sum.iter_mut().zip(ck.params[i].data()) {
                    *s = s.wrapping_add(*v);
                }
            }
            (
                shape,
                sum.into_iter().map(|v| fp.decode(v) as f32).collect(),
            )
        })
        .collect();
    Ok(ModelWeights { tensors })
}
