//! `spindle classify`: secure CNN inference over an image file, all
//! parties in this process; and the classify job's arguments, shared with
//! `spindle party --job classify`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spindle::classify::{ClassifyJob, ModelSource, Reveal};
use spindle::io::mnist::{split_paths, Split};

/// What the data owner learns (`--reveal`).
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum RevealArg {
    /// The predicted class only (a secure argmax).
    Label,
    /// The logits.
    Logits,
}

/// The classify job's own arguments (the model name, the checkpoint
/// folder and the data folder come from the command that holds them).
#[derive(clap::Args, Clone)]
pub(crate) struct ClassifySource {
    /// Plaintext weights of the model owner (party 1): a PyTorch
    /// nn.Sequential state dict in safetensors ("0.weight", "0.bias", ...).
    /// Without it, the share checkpoints of --checkpoint-dir.
    #[arg(long)]
    pub(crate) weights: Option<PathBuf>,
    /// With --checkpoint-dir: the epoch's checkpoints (default: the latest).
    #[arg(long)]
    pub(crate) checkpoint_epoch: Option<usize>,
    /// IDX3 image file (raw or gzip) of the data owner (party 0). Default:
    /// the MNIST test images of --data.
    #[arg(long)]
    pub(crate) images: Option<PathBuf>,
    /// IDX1 labels of the images, for the accuracy (default: the MNIST
    /// test labels of --data when the images come from there).
    #[arg(long)]
    pub(crate) labels: Option<PathBuf>,
    /// Public: classify the first N images (default: every image of the
    /// file, which every process then reads for the count; give it where
    /// only the data owner holds the file).
    #[arg(long)]
    pub(crate) count: Option<usize>,
    /// What the data owner learns about each image.
    #[arg(long, value_enum, default_value_t = RevealArg::Label)]
    pub(crate) reveal: RevealArg,
    /// Inter-linear ablation: open the masked weights afresh in every
    /// product instead of once at load.
    #[arg(long)]
    pub(crate) no_static_weights: bool,
}

/// Micro-batch size of classify when --micro-batch is not given (the
/// batch size of the published CNN inference figures).
const DEFAULT_MICRO_BATCH: usize = 64;

impl ClassifySource {
    /// The job, and the labels file if there is one.
    pub(crate) fn job(
        &self,
        model: String,
        checkpoint_dir: Option<&Path>,
        data: Option<&Path>,
        inter_batch: &crate::args::InterBatchArgs,
    ) -> spindle::Result<(ClassifyJob, Option<PathBuf>)> {
        let source = match (&self.weights, checkpoint_dir) {
            (Some(w), None) => ModelSource::StateDict(w.clone()),
            (None, Some(dir)) => ModelSource::Checkpoints {
                dir: dir.to_path_buf(),
                epoch: self.checkpoint_epoch,
            },
            _ => {
                return Err(spindle::Error::Format {
                    what: "classify".into(),
                    detail: "give the model as --weights FILE (plaintext, party 1) or \
                             --checkpoint-dir DIR (share checkpoints of spindle train), one \
                             of them"
                        .into(),
                })
            }
        };
        let (images, labels) = match (&self.images, data) {
            (Some(i), _) => (i.clone(), self.labels.clone()),
            (None, Some(dir)) => {
                let (i, l) = split_paths(dir, Split::Test)?;
                (i, self.labels.clone().or(Some(l)))
            }
            (None, None) => {
                return Err(spindle::Error::Format {
                    what: "classify".into(),
                    detail: "give the images as --images FILE (IDX) or --data DIR (MNIST)".into(),
                })
            }
        };
        let count = match self.count {
            Some(c) => c,
            None => spindle::io::mnist::read_images(&images)?.n,
        };
        let micro_batch = inter_batch.micro_batch.unwrap_or(DEFAULT_MICRO_BATCH);
        let job = ClassifyJob {
            model,
            source,
            images,
            count,
            pipeline: spindle::pipeline::InterBatch {
                micro_batch,
                in_flight: inter_batch.in_flight,
            },
            reveal: match self.reveal {
                RevealArg::Label => Reveal::Label,
                RevealArg::Logits => Reveal::Logits,
            },
            static_weights: !self.no_static_weights,
        };
        Ok((job, labels))
    }
}

#[derive(clap::Args)]
pub(crate) struct ClassifyArgs {
    /// The zoo model the weights are for (secureml or lenet).
    #[arg(long, default_value = "lenet")]
    pub(crate) model: String,
    #[command(flatten)]
    pub(crate) source: ClassifySource,
    /// Share checkpoints of secure training (spindle train
    /// --checkpoint-dir): each party reads its own.
    #[arg(long)]
    pub(crate) checkpoint_dir: Option<PathBuf>,
    /// MNIST folder: its test images (and labels).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// The inter-batch pipeline (micro-batches of 64 by default).
    #[command(flatten)]
    pub(crate) inter_batch: crate::args::InterBatchArgs,
    /// Number of parties (>= 2): party 0 owns the images, party 1 the weights.
    #[arg(long, default_value_t = 3)]
    pub(crate) parties: usize,
    /// Where correlated randomness comes from (default: the online dealer,
    /// material made as the micro-batches ask: memory bounded by the window).
    #[arg(long, value_enum)]
    pub(crate) preprocessing: Option<crate::args::PreprocessingArg>,
    /// Fixed-point fractional bits (default 20; a checkpoint's own).
    #[arg(long)]
    pub(crate) frac_bits: Option<u32>,
    /// Also classify with the plaintext model (the weights, or the sum of
    /// the checkpoints' shares) and report where the labels differ.
    #[arg(long)]
    pub(crate) check: bool,
    /// Write the result (labels or logits, in input order) to FILE as JSON.
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,
    /// Write the timeline to FILE as Chrome trace-event JSON.
    #[arg(long)]
    pub(crate) trace: Option<PathBuf>,
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: spindle::backend::DeviceChoice,
}

/// The plaintext twin's weights: the file, or the checkpoints' shares
/// summed and decoded (possible only with every party's file at hand).
fn plaintext_weights(
    job: &ClassifyJob,
    parties: usize,
) -> spindle::Result<spindle::nn::ModelWeights> {
    let spec = job.spec()?;
    match &job.source {
        ModelSource::StateDict(p) => spindle::nn::ModelWeights::read_state_dict(&spec, p),
        ModelSource::Checkpoints { dir, epoch } => {
            spindle::classify::reconstruct_checkpoints(dir, &spec, parties, *epoch)
        }
    }
}

pub(crate) fn run_classify(args: ClassifyArgs) -> spindle::Result<()> {
    let (job, labels) = args.source.job(
        args.model.clone(),
        args.checkpoint_dir.as_deref(),
        args.data.as_deref(),
        &args.inter_batch,
    )?;
    job.validate()?;
    let labels = labels
        .map(|l| spindle::io::mnist::read_labels(&l))
        .transpose()?;
    let mut run = spindle::runner::RunOptions::new(args.parties);
    run.session.frac_bits = args.frac_bits;
    run.session.compute_workers = args.inter_batch.compute_workers;
    run.backend = spindle::backend::select_device(args.device)?;
    run.preprocessing = args
        .preprocessing
        .map_or(spindle::runner::Preprocessing::OnlineDealer, Into::into);
    run.trace = args.trace.is_some();
    println!(
        "secure classification: {} over {} image(s), {} parties (party 0 images, {}), \
         micro-batches of {}, {} in flight, {:?} preprocessing",
        job.model,
        job.count,
        args.parties,
        match &job.source {
            ModelSource::StateDict(_) => "party 1 weights",
            ModelSource::Checkpoints { .. } => "every party its share checkpoint",
        },
        job.pipeline.micro_batch,
        job.pipeline.in_flight,
        run.preprocessing
    );
    let bar = indicatif::ProgressBar::new(job.count as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} images  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    let progress = spindle::pipeline::Progress(Arc::new(move |done| b.set_position(done as u64)));
    let t0 = std::time::Instant::now();
    let r = spindle::classify::classify(&job, &run, Some(progress))?;
    bar.finish_and_clear();
    let wall = t0.elapsed();
    let classes = job.classes()?;
    let predicted = spindle::classify::predicted_labels(&r.output, job.reveal, classes);
    let phase = |label: &str| r.phases[0].iter().find(|p| p.label == label).cloned();
    if let Some(p) = phase("classify") {
        println!(
            "classified {} image(s) in {:.2} s ({:.1} images/s); party 0 sent {} in {} rounds",
            job.count,
            p.time.as_secs_f64(),
            job.count as f64 / p.time.as_secs_f64().max(1e-9),
            crate::args::human_bytes(p.link.bytes_sent),
            p.link.rounds
        );
    }
    println!("wall time {:.2} s", wall.as_secs_f64());
    if let Some(l) = &labels {
        let correct = predicted
            .iter()
            .zip(l)
            .filter(|(p, &y)| **p == y as usize)
            .count();
        println!(
            "secure accuracy {:.2}% ({correct}/{})",
            100.0 * correct as f64 / predicted.len().max(1) as f64,
            predicted.len()
        );
    }
    if args.check {
        let spec = job.spec()?;
        let w = plaintext_weights(&job, args.parties)?;
        let images = spindle::io::mnist::read_images(&job.images)?.take(job.count)?;
        let plain = spindle::classify::plaintext_labels(&spec, w, &images)?;
        let differ = plain.iter().zip(&predicted).filter(|(a, b)| a != b).count();
        println!(
            "plaintext twin: {differ} of {} label(s) differ from the secure ones",
            job.count
        );
        if let Some(l) = &labels {
            let correct = plain
                .iter()
                .zip(l)
                .filter(|(p, &y)| **p == y as usize)
                .count();
            println!(
                "plaintext accuracy {:.2}%",
                100.0 * correct as f64 / plain.len().max(1) as f64
            );
        }
    }
    if let Some(path) = &args.output {
        let text = match job.reveal {
            Reveal::Label => serde_json::to_string(&predicted),
            Reveal::Logits => serde_json::to_string(
                &r.output
                    .chunks(classes)
                    .map(<[f64]>::to_vec)
                    .collect::<Vec<_>>(),
            ),
        }
        .unwrap_or_default();
        std::fs::write(path, text).map_err(|e| spindle::Error::io(path, e))?;
        println!("result written to {}", path.display());
    }
    if let (Some(path), Some(trace)) = (&args.trace, &r.trace) {
        crate::args::write_trace(path, trace)?;
    }
    Ok(())
}
