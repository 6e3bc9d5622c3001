//! Secure training of the zoo models on MNIST: the engine behind
//! `spindle train` and the training benchmarks.
//!
//! Party 0 owns the data (it secret-shares each batch and its one-hot
//! labels), party 1 owns the model (it initialises and shares the weights).
//! Each epoch is one in-process run of all parties whose dealer seed derives
//! from the run seed and the epoch, so `--resume` from the per-party share
//! checkpoints continues exactly as an uninterrupted run would.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use spindle_transport::LinkStats;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::io::checkpoint::{check_agreement, CheckpointId, ShareCheckpoint};
use crate::io::mnist::{self, MnistSplit, Split};
use crate::models;
use crate::nn::argmax_row as argmax;
use crate::nn::{loss, Init, ModelSpec, ModelWeights, PlainModel, PlainTensor, SecureModel, Sgd};
use crate::pipeline::{run_micro_batches, InterBatch};
use crate::prg::{Prg, Seed};
use crate::ring::RingTensor;
use crate::runner::{run_parties, Preprocessing, RunOptions};
use crate::session::SessionConfig;

/// How test accuracy is measured after each epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Evaluation {
    /// Secure inference on the test set; the logits are revealed to the data owner.
    #[default]
    Secure,
    /// The trained weights are revealed to the model owner, who evaluates in plaintext.
    RevealToOwner,
}

/// Where the MNIST images come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Data {
    /// The 512-image sample shipped in the binary: 384 to train, 128 to test.
    #[default]
    EmbeddedSample,
    /// A directory with the four standard (gzipped) IDX files.
    Dir(PathBuf),
}

/// Settings of a training run (PyTorch-like defaults).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Zoo model: "secureml" or "lenet" (MNIST-shaped).
    pub model: String,
    /// MNIST source.
    pub data: Data,
    /// Number of parties (>= 2).
    pub parties: usize,
    /// Epochs to train (in total, counting resumed ones).
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// SGD learning rate, momentum, weight decay.
    pub sgd: Sgd,
    /// Use only the first `n` training images.
    pub train_limit: Option<usize>,
    /// Use only the first `n` test images.
    pub test_limit: Option<usize>,
    /// Seeds the weights and the batch order (the dealer: [`TrainOptions::dealer_seed`]).
    pub seed: u64,
    /// Correlated randomness (default: the online dealer).
    pub preprocessing: Preprocessing,
    /// How accuracy is measured.
    pub evaluation: Evaluation,
    /// Where per-party share checkpoints go after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the latest complete checkpoint in `checkpoint_dir`.
    pub resume: bool,
    /// Also train the plaintext twin with the same seed and report its accuracy.
    pub plaintext_twin: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Fixed-point fractional bits (default 20).
    pub frac_bits: Option<u32>,
    /// Where share arithmetic runs ([`crate::backend::select_device`]).
    pub backend: crate::backend::Device,
    /// Master seed of the in-process dealer. `None` (the default): fresh OS
    /// randomness for every run. A fixed seed makes the dealer's material
    /// predictable to anyone who knows it; it exists for tests and for
    /// bit-exact reproduction (a run and its `--resume` with the same seed
    /// give the same losses as one uninterrupted run), and is logged as a
    /// warning. Party processes ignore it: their dealer process has its own
    /// (`spindle dealer --master-seed`).
    pub dealer_seed: Option<Seed>,
    /// Record the timeline of the last epoch trained ([`crate::trace`];
    /// [`TrainReport::trace`]).
    pub trace: bool,
    /// The inter-batch pipeline in training: each optimizer step's batch
    /// runs as micro-batches on forks of the session, several in flight,
    /// their weight gradients summed before the one step (`None`: the
    /// batch in one piece). Results are bit-identical for any number in
    /// flight; against the batch in one piece they differ by the
    /// truncation of each micro-batch's gradient (1 ulp each) and its own
    /// dealer material. Models with BatchNorm2d are refused (batch
    /// statistics would be per micro-batch).
    pub pipeline: Option<InterBatch>,
    /// Worker threads of each party's compute stage
    /// ([`SessionConfig::compute_workers`]; 0: every op inline). Results
    /// are the same either way.
    pub compute_workers: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            model: "lenet".into(),
            data: Data::EmbeddedSample,
            parties: 3,
            epochs: 1,
            batch: 128,
            sgd: Sgd {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 0.0,
            },
            train_limit: None,
            test_limit: None,
            seed: 1,
            preprocessing: Preprocessing::OnlineDealer,
            evaluation: Evaluation::Secure,
            checkpoint_dir: None,
            resume: false,
            plaintext_twin: false,
            progress: false,
            frac_bits: None,
            backend: crate::backend::Device::default(),
            dealer_seed: None,
            trace: false,
            pipeline: None,
            compute_workers: 1,
        }
    }
}

/// One epoch's outcome.
#[derive(Clone, Debug)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss (softmax cross-entropy), computed by the data owner.
    pub loss: f64,
    /// Test accuracy of the secure model.
    pub accuracy: f64,
    /// Test accuracy of the plaintext twin, if trained.
    pub plaintext_accuracy: Option<f64>,
    /// Median wall time of one training iteration (all parties in this process).
    pub iteration_time: Duration,
    /// Online traffic of party 0 per training iteration (mean).
    pub per_iteration: LinkStats,
}

/// The result of [`train`].
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// One entry per epoch trained in this run.
    pub epochs: Vec<EpochReport>,
    /// Training losses of every iteration (data owner's view).
    pub losses: Vec<f64>,
    /// Every party's timeline of the last epoch trained
    /// ([`TrainOptions::trace`]).
    pub trace: Option<crate::trace::Trace>,
}

impl TrainOptions {
    /// Checks the settings that need no data: at least 2 parties, 1 epoch
    /// and a batch of at least 1.
    ///
    /// Errors: [`Error::InvalidParty`] for fewer than 2 parties,
    /// [`Error::Unsupported`] for 0 epochs or a batch of 0.
    pub fn validate(&self) -> Result<()> {
        if self.parties < 2 {
            return Err(Error::InvalidParty(format!(
                "training needs at least 2 parties, got {}",
                self.parties
            )));
        }
        if self.epochs == 0 {
            return Err(Error::Unsupported(
                "--epochs must be at least 1 (it counts resumed epochs too)".into(),
            ));
        }
        if self.batch == 0 {
            return Err(Error::Unsupported("--batch must be at least 1".into()));
        }
        if let Some(p) = self.pipeline {
            p.validate()?;
        }
        Ok(())
    }
}

/// MNIST train and test splits per `data` and the limits, checked against
/// the model's input: every image must have the model's `rows x cols`, and
/// the test set must hold at least one image. A limit above the split's
/// size takes the whole split (and says so).
///
/// Errors: data errors ([`Error::Io`], [`Error::Format`]), and
/// [`Error::Shape`] for images of another size or an empty test set.
fn load_data(opts: &TrainOptions, spec: &ModelSpec) -> Result<(MnistSplit, MnistSplit)> {
    let (train, test) = load_splits(opts)?;
    let want: usize = spec.input.iter().product();
    for (what, split) in [("training", &train), ("test", &test)] {
        if split.images.pixels_per_image() != want {
            return Err(Error::shape(
                "train",
                format!(
                    "the {what} images are {}x{} pixels, but model {} takes inputs of shape {:?} ({want} pixels)",
                    split.images.rows, split.images.cols, spec.name, spec.input
                ),
            ));
        }
    }
    if test.images.n == 0 {
        return Err(Error::shape(
            "train",
            "the test set is empty: test accuracy needs at least one image (--test-limit)",
        ));
    }
    Ok((train, test))
}

fn load_splits(opts: &TrainOptions) -> Result<(MnistSplit, MnistSplit)> {
    let (train, test) = match &opts.data {
        Data::EmbeddedSample => {
            let s = mnist::embedded_sample()?;
            let idx = |r: std::ops::Range<usize>| -> Result<MnistSplit> {
                let d = s.images.pixels_per_image();
                Ok(MnistSplit {
                    images: mnist::MnistImages {
                        n: r.len(),
                        rows: s.images.rows,
                        cols: s.images.cols,
                        pixels: s.images.pixels[r.start * d..r.end * d].to_vec(),
                    },
                    labels: s.labels[r].to_vec(),
                })
            };
            (idx(0..384)?, idx(384..512)?)
        }
        Data::Dir(dir) => (
            mnist::load_split(dir, Split::Train)?,
            mnist::load_split(dir, Split::Test)?,
        ),
    };
    let limit = |split: MnistSplit, limit: Option<usize>, flag: &str| match limit {
        Some(n) if n > split.images.n => {
            tracing::warn!(
                "{flag} {n} is more than the {} images there are: using them all",
                split.images.n
            );
            Ok(split)
        }
        Some(n) => split.take(n),
        None => Ok(split),
    };
    Ok((
        limit(train, opts.train_limit, "--train-limit")?,
        limit(test, opts.test_limit, "--test-limit")?,
    ))
}

/// The per-sample input shape of a zoo model trained on MNIST.
fn mnist_model(name: &str) -> Result<ModelSpec> {
    let spec = models::by_name(name)?;
    let flat = spec.input.iter().product::<usize>();
    if flat != 784 || spec.shapes(1)?.last().map(|s| s.dims()[1]) != Some(10) {
        return Err(Error::Unsupported(format!(
            "model {name} takes {:?} inputs: only MNIST-shaped models (secureml, lenet) train on MNIST; CIFAR-10 is not wired in yet",
            spec.input
        )));
    }
    Ok(spec)
}

/// Batch order of an epoch: a seeded permutation (Fisher-Yates on the PRG).
fn permutation(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut r = vec![0u64; n];
    Prg::new(&Seed([0x7a; 16]), seed ^ ((epoch as u64) << 32)).fill(&mut r);
    for i in (1..n).rev() {
        order.swap(i, (r[i] % (i as u64 + 1)) as usize);
    }
    order
}

fn checkpoint_path(dir: &std::path::Path, model: &str, party: usize, epoch: usize) -> PathBuf {
    dir.join(format!("{model}-party{party}-epoch{epoch}.safetensors"))
}

/// The dealer stream of `epoch` (from 0) of a run seeded with `seed`: each
/// epoch starts a fresh stream, so a resumed run gets the same material.
pub fn epoch_stream(seed: u64, epoch: usize) -> u64 {
    seed ^ ((epoch as u64) << 40)
}

/// The latest epoch (at most `epochs`) of which `party` has a checkpoint
/// in `dir` (a scan of the folder's file names).
pub(crate) fn latest_checkpoint(
    dir: &std::path::Path,
    model: &str,
    party: usize,
    epochs: usize,
) -> Option<usize> {
    let prefix = format!("{model}-party{party}-epoch");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix(&prefix)?
                .strip_suffix(".safetensors")?
                .parse::<usize>()
                .ok()
        })
        .filter(|e| (1..=epochs).contains(e))
        .max()
}

/// Every party's checkpoint identifier, each announced by its party in
/// turn (public: epoch, run, fractional bits, architecture); `mine` is
/// this party's. One input sharing and one opening per party.
///
/// Errors: transport and protocol errors.
pub(crate) async fn announce_checkpoint_ids(
    sess: &crate::Session,
    mine: &CheckpointId,
) -> Result<Vec<CheckpointId>> {
    let (me, n) = (sess.party(), sess.n_parties());
    let mut ids = Vec::with_capacity(n);
    for p in 0..n {
        let t = RingTensor::<u64>::new([CheckpointId::WORDS], mine.to_words().to_vec())?;
        let shared = sess.share_input(p, (p == me).then_some(&t), [CheckpointId::WORDS])?;
        ids.push(CheckpointId::from_words(sess.reveal(&shared).await?.data()));
    }
    Ok(ids)
}

/// Party `party`'s checkpoint of `epoch` in `dir`, read and checked
/// ([`ShareCheckpoint::read`]).
///
/// Errors: [`Error::Format`] naming the party and the file when it is
/// missing or holds another epoch than its name says; read errors.
pub(crate) fn read_checkpoint(
    dir: &std::path::Path,
    spec: &ModelSpec,
    party: usize,
    n: usize,
    epoch: usize,
) -> Result<ShareCheckpoint<u64>> {
    let path = checkpoint_path(dir, &spec.name, party, epoch);
    let fail = |detail: String| Error::Format {
        what: path.display().to_string(),
        detail,
    };
    if !path.exists() {
        return Err(fail(format!(
            "party {party}'s checkpoint of epoch {epoch} is missing: every party needs its \
             checkpoint of the same epoch"
        )));
    }
    let ck = ShareCheckpoint::<u64>::read(&path, &spec.name, party, n)?;
    if ck.epoch != epoch {
        return Err(fail(format!(
            "the file is named for epoch {epoch} but holds epoch {}",
            ck.epoch
        )));
    }
    Ok(ck)
}

/// A fresh training run's identifier (OS randomness).
fn new_run_id() -> Result<u128> {
    Ok(u128::from_le_bytes(Seed::random()?.0))
}

/// Per-party shares carried from epoch to epoch.
type PartyState = Option<(Vec<RingTensor<u64>>, Vec<RingTensor<u64>>)>;

/// Trains a zoo model securely; see the module docs.
///
/// Errors: [`Error::InvalidParty`] for fewer than 2 parties,
/// [`Error::Resources`] for a run estimated to need more memory than the
/// machine has ([`crate::resources::train_estimate`]),
/// [`Error::Unsupported`] for a model that does not take MNIST, data and
/// checkpoint errors ([`Error::Io`], [`Error::Format`]), and any protocol error.
pub async fn train(opts: &TrainOptions) -> Result<TrainReport> {
    opts.validate()?;
    let spec = Arc::new(mnist_model(&opts.model)?);
    let (train_set, test_set) = load_data(opts, &spec)?;
    let steps = train_set.images.n / opts.batch;
    if steps == 0 {
        return Err(Error::shape(
            "train",
            format!(
                "{} training images do not fill one batch of {}",
                train_set.images.n, opts.batch
            ),
        ));
    }
    let n = opts.parties;
    crate::resources::check_fits(
        crate::resources::train_estimate(&spec, n, opts.batch)?,
        &format!(
            "secure training of {} with {n} parties in one process and batches of {}",
            spec.name, opts.batch
        ),
        "use fewer --parties or a smaller --batch, or run the parties as separate processes \
         (spindle party --job train)",
    )?;
    let master = crate::preprocess::master_seed(opts.dealer_seed, "--dealer-seed")?;
    let weights = Arc::new(ModelWeights::init(&spec, Init::PyTorchDefault, opts.seed));
    let mut state: Vec<PartyState> = vec![None; n];
    let mut start_epoch = 0;
    let frac_bits = opts.frac_bits.unwrap_or(20);
    let mut run_id = new_run_id()?;
    if opts.resume {
        let dir = opts
            .checkpoint_dir
            .as_ref()
            .ok_or_else(|| Error::Unsupported("--resume needs --checkpoint-dir".into()))?;
        let latest = (0..n)
            .filter_map(|p| latest_checkpoint(dir, &spec.name, p, opts.epochs))
            .max();
        if let Some(e) = latest {
            let cks = (0..n)
                .map(|p| read_checkpoint(dir, &spec, p, n, e))
                .collect::<Result<Vec<_>>>()?;
            let ids: Vec<CheckpointId> = cks.iter().map(ShareCheckpoint::id).collect();
            check_agreement(&ids, frac_bits, spec.fingerprint())?;
            run_id = ids[0].run_id;
            for (s, ck) in state.iter_mut().zip(cks) {
                *s = Some((ck.params, ck.velocity));
            }
            start_epoch = e;
        }
    }
    let x_train: Arc<Vec<f64>> = Arc::new(train_set.images.normalized_f64());
    let y_train = Arc::new(train_set.labels.clone());
    let x_test: Arc<Vec<f64>> = Arc::new(test_set.images.normalized_f64());
    let y_test = Arc::new(test_set.labels.clone());
    let mut twin = if opts.plaintext_twin {
        Some(PlainModel::new(&spec, (*weights).clone())?)
    } else {
        None
    };
    let bar = opts.progress.then(|| {
        let b = ProgressBar::new(((opts.epochs - start_epoch) * steps) as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} it  {msg}  [{elapsed_precise} < {eta_precise}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut report = TrainReport {
        epochs: Vec::new(),
        losses: Vec::new(),
        trace: None,
    };
    for epoch in start_epoch..opts.epochs {
        let order = Arc::new(permutation(train_set.images.n, opts.seed, epoch));
        let mut ro = RunOptions::new(n);
        ro.backend = opts.backend.clone();
        ro.preprocessing = opts.preprocessing;
        ro.session = SessionConfig {
            frac_bits: opts.frac_bits,
            compute_workers: opts.compute_workers,
            ..Default::default()
        };
        ro.dealer_seed = Some(master.derive(epoch_stream(opts.seed, epoch)));
        ro.timeout = Duration::from_secs(600);
        ro.trace = opts.trace;
        let losses = Arc::new(Mutex::new(Vec::new()));
        let ctx = Arc::new(EpochCtx {
            spec: spec.clone(),
            weights: Some(weights.clone()),
            n_test: y_test.len(),
            state: state.clone(),
            x_train: x_train.clone(),
            y_train: y_train.clone(),
            x_test: x_test.clone(),
            y_test: y_test.clone(),
            order: order.clone(),
            batch: opts.batch,
            steps,
            sgd: opts.sgd,
            evaluation: opts.evaluation,
            losses: losses.clone(),
            bar: bar.clone(),
            pipeline: opts.pipeline,
        });
        let run = run_parties(&ro, move |sess| {
            let ctx = ctx.clone();
            async move { ctx.run_party(&sess).await }
        })
        .await?;
        if run.trace.is_some() {
            report.trace = run.trace.clone();
        }
        let mut times = Vec::new();
        let mut accuracy = 0.0;
        for p in &run.parties {
            let (params, velocity, acc, iter_times) = p.output.clone();
            if p.party == 0 {
                accuracy = acc;
                times = iter_times;
            }
            state[p.party] = Some((params, velocity));
        }
        if let Some(dir) = &opts.checkpoint_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            for (party, s) in state.iter().enumerate() {
                let (params, velocity) = s.clone().expect("every party returned its shares");
                ShareCheckpoint::<u64> {
                    model: spec.name.clone(),
                    party,
                    n_parties: n,
                    frac_bits,
                    epoch: epoch + 1,
                    run_id,
                    spec: spec.fingerprint(),
                    params,
                    velocity,
                }
                .write(&checkpoint_path(dir, &spec.name, party, epoch + 1))?;
            }
        }
        let plaintext_accuracy = match twin.as_mut() {
            Some(t) => Some(train_twin_epoch(
                t, &x_train, &y_train, &order, opts, &x_test, &y_test,
            )?),
            None => None,
        };
        let epoch_losses = losses.lock().map(|l| l.clone()).unwrap_or_default();
        times.sort();
        let iters = steps as u64;
        let online = run.parties[0].online;
        report.epochs.push(EpochReport {
            epoch: epoch + 1,
            loss: epoch_losses.iter().sum::<f64>() / epoch_losses.len().max(1) as f64,
            accuracy,
            plaintext_accuracy,
            iteration_time: times.get(times.len() / 2).copied().unwrap_or_default(),
            per_iteration: online.per(iters),
        });
        report.losses.extend(epoch_losses);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(report)
}

/// One epoch of a training run, as the data owner reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochSummary {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's iterations.
    pub loss: f64,
    /// Test accuracy after the epoch, in [0, 1].
    pub accuracy: f64,
}

/// One party of a training run whose parties are separate processes
/// ([`crate::jobs::AnyJob::Train`], `spindle party --job train`): the same
/// per-epoch program as [`train`], in one session for the whole run. The
/// session's provider must switch dealer streams (the online dealer
/// process): each epoch begins stream [`epoch_stream`], so a run whose
/// dealer has the master seed of [`TrainOptions::dealer_seed`] reproduces
/// [`train`] exactly.
///
/// Only the data owner (party 0) reads MNIST (`opts.data`) and announces
/// the public image counts; the model owner (party 1) initialises the
/// weights, and also reads the test set for [`Evaluation::RevealToOwner`].
/// Every party writes only its own checkpoint; on `resume` each checks its
/// own (digest, party, model) and the parties compare their checkpoints'
/// epoch, run, fractional bits and architecture
/// ([`crate::io::checkpoint::check_agreement`]).
/// `opts.parties`, `preprocessing`, `plaintext_twin` and `progress` are
/// not used (the session decides the first two).
///
/// Returns, at the data owner, the mean training loss and the test
/// accuracy of each epoch trained, elsewhere nothing; and per epoch two phases: the whole epoch (time,
/// traffic), and its median training iteration (time) with the epoch's
/// traffic divided by its iterations (evaluation included, as in [`train`]).
///
/// Errors: as [`train`]; [`Error::Format`] when the parties' checkpoints
/// disagree; [`Error::Unsupported`] for a provider with a single stream.
pub async fn train_party(
    opts: &TrainOptions,
    sess: &crate::Session,
) -> Result<(Vec<EpochSummary>, Vec<crate::report::JobPhase>)> {
    const DATA_OWNER: usize = 0;
    const MODEL_OWNER: usize = 1;
    let (me, n) = (sess.party(), sess.n_parties());
    TrainOptions {
        parties: n,
        ..opts.clone()
    }
    .validate()?;
    let spec = Arc::new(mnist_model(&opts.model)?);
    if !sess.is_dry_run() {
        // This process holds one party.
        crate::resources::check_fits(
            crate::resources::train_estimate(&spec, 1, opts.batch)?,
            &format!(
                "party {me}'s share of secure training of {} with batches of {}",
                spec.name, opts.batch
            ),
            "use a smaller --batch",
        )?;
    }
    let reads_data =
        me == DATA_OWNER || (me == MODEL_OWNER && opts.evaluation == Evaluation::RevealToOwner);
    let data = if reads_data && !sess.is_dry_run() {
        Some(load_data(opts, &spec)?)
    } else {
        None
    };
    // The data owner announces the (public) image counts.
    let counts = data
        .as_ref()
        .filter(|_| me == DATA_OWNER)
        .map(|(tr, te)| RingTensor::<u64>::new([2], vec![tr.images.n as u64, te.images.n as u64]))
        .transpose()?;
    let counts = sess.share_input(DATA_OWNER, counts.as_ref(), [2])?;
    let counts = sess.reveal(&counts).await?;
    let (n_train, n_test) = (counts.data()[0] as usize, counts.data()[1] as usize);
    let steps = n_train / opts.batch;
    if steps == 0 && !sess.is_dry_run() {
        return Err(Error::shape(
            "train",
            format!(
                "{n_train} training images do not fill one batch of {}",
                opts.batch
            ),
        ));
    }
    // Resume: every party's latest checkpoint, checked locally (digest,
    // party, model) and then against the others' (epoch, run, settings),
    // which the parties announce; a fresh run takes party 0's run id.
    let frac_bits = sess.fixed_point::<u64>()?.frac_bits();
    let mut own = None;
    if opts.resume {
        let dir = opts
            .checkpoint_dir
            .as_ref()
            .ok_or_else(|| Error::Unsupported("--resume needs --checkpoint-dir".into()))?;
        if let Some(e) = latest_checkpoint(dir, &spec.name, me, opts.epochs) {
            own = Some(read_checkpoint(dir, &spec, me, n, e)?);
        }
    }
    let mine = match &own {
        Some(ck) => ck.id(),
        None => CheckpointId {
            epoch: 0,
            run_id: if me == DATA_OWNER { new_run_id()? } else { 0 },
            frac_bits,
            spec: spec.fingerprint(),
        },
    };
    let ids = announce_checkpoint_ids(sess, &mine).await?;
    let resumed = ids.iter().any(|id| id.epoch > 0);
    if resumed && !sess.is_dry_run() {
        check_agreement(&ids, frac_bits, spec.fingerprint())?;
    }
    let run_id = ids[DATA_OWNER].run_id;
    let (mut state, start_epoch): (PartyState, usize) = match own {
        Some(ck) if resumed => (Some((ck.params, ck.velocity)), ck.epoch),
        _ => (None, 0),
    };
    let flat = |split: &MnistSplit| -> Arc<Vec<f64>> { Arc::new(split.images.normalized_f64()) };
    let empty = || (Arc::new(Vec::new()), Arc::new(Vec::new()));
    let ((x_train, y_train), (x_test, y_test)) = match &data {
        Some((tr, te)) => (
            (flat(tr), Arc::new(tr.labels.clone())),
            (flat(te), Arc::new(te.labels.clone())),
        ),
        None => (empty(), empty()),
    };
    let weights = (me == MODEL_OWNER)
        .then(|| Arc::new(ModelWeights::init(&spec, Init::PyTorchDefault, opts.seed)));
    let mut result = Vec::new();
    let mut phases = Vec::new();
    for epoch in start_epoch..opts.epochs {
        sess.begin_stream(epoch_stream(opts.seed, epoch))?;
        let (t0, link0) = (Instant::now(), sess.link_stats());
        let order = match me {
            DATA_OWNER => permutation(n_train, opts.seed, epoch),
            _ => Vec::new(),
        };
        let losses = Arc::new(Mutex::new(Vec::new()));
        let ctx = EpochCtx {
            spec: spec.clone(),
            weights: weights.clone(),
            n_test,
            state: (0..n)
                .map(|p| if p == me { state.clone() } else { None })
                .collect(),
            x_train: x_train.clone(),
            y_train: y_train.clone(),
            x_test: x_test.clone(),
            y_test: y_test.clone(),
            order: Arc::new(order),
            batch: opts.batch,
            steps,
            sgd: opts.sgd,
            evaluation: opts.evaluation,
            losses: losses.clone(),
            bar: None,
            pipeline: opts.pipeline,
        };
        let (params, velocity, accuracy, mut times) = ctx.run_party(sess).await?;
        if let Some(dir) = &opts.checkpoint_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            ShareCheckpoint::<u64> {
                model: spec.name.clone(),
                party: me,
                n_parties: n,
                frac_bits,
                epoch: epoch + 1,
                run_id,
                spec: spec.fingerprint(),
                params: params.clone(),
                velocity: velocity.clone(),
            }
            .write(&checkpoint_path(dir, &spec.name, me, epoch + 1))?;
        }
        state = Some((params, velocity));
        let epoch_losses = losses.lock().map(|l| l.clone()).unwrap_or_default();
        let loss = epoch_losses.iter().sum::<f64>() / epoch_losses.len().max(1) as f64;
        if me == DATA_OWNER {
            tracing::info!(
                "epoch {}: loss {loss:.4}, test accuracy {:.2}%",
                epoch + 1,
                100.0 * accuracy
            );
            result.push(EpochSummary {
                epoch: epoch + 1,
                loss,
                accuracy,
            });
        }
        let link = sess.link_stats() - link0;
        times.sort();
        phases.push(crate::report::JobPhase {
            label: format!("epoch {}", epoch + 1),
            time: t0.elapsed(),
            link,
        });
        phases.push(crate::report::JobPhase {
            label: format!("epoch {}: median iteration (traffic: mean)", epoch + 1),
            time: times.get(times.len() / 2).copied().unwrap_or_default(),
            link: link.per(steps as u64),
        });
    }
    Ok((result, phases))
}

/// Everything a party's program needs for one epoch.
struct EpochCtx {
    spec: Arc<ModelSpec>,
    /// The initial weights (at the model owner; `None` elsewhere in a process run).
    weights: Option<Arc<ModelWeights>>,
    /// Public: the number of test images.
    n_test: usize,
    state: Vec<PartyState>,
    x_train: Arc<Vec<f64>>,
    y_train: Arc<Vec<u8>>,
    x_test: Arc<Vec<f64>>,
    y_test: Arc<Vec<u8>>,
    order: Arc<Vec<usize>>,
    batch: usize,
    steps: usize,
    sgd: Sgd,
    evaluation: Evaluation,
    losses: Arc<Mutex<Vec<f64>>>,
    bar: Option<ProgressBar>,
    /// The inter-batch pipeline of each step ([`TrainOptions::pipeline`]).
    pipeline: Option<InterBatch>,
}

type PartyOutput = (
    Vec<RingTensor<u64>>,
    Vec<RingTensor<u64>>,
    f64,
    Vec<Duration>,
);

impl EpochCtx {
    async fn run_party(&self, sess: &crate::Session) -> Result<PartyOutput> {
        const DATA_OWNER: usize = 0;
        const MODEL_OWNER: usize = 1;
        let me = sess.party();
        let d: usize = self.spec.input.iter().product();
        let mut model = SecureModel::<u64>::share(
            sess,
            &self.spec,
            MODEL_OWNER,
            self.weights.as_deref().filter(|_| me == MODEL_OWNER),
        )?;
        if let Some(Some((params, velocity))) = self.state.get(me) {
            for (i, p) in model.params_mut().into_iter().enumerate() {
                p.value = crate::Shared::from_share(params[i].clone());
                p.velocity = velocity.get(i).cloned().map(crate::Shared::from_share);
            }
        }
        let shape = |b: usize| -> Vec<usize> { [vec![b], self.spec.input.clone()].concat() };
        let mut times = Vec::with_capacity(self.steps);
        for step in 0..self.steps {
            let t0 = Instant::now();
            // The batch's images: known to the data owner alone.
            let idx = self
                .order
                .get(step * self.batch..(step + 1) * self.batch)
                .unwrap_or_default();
            let (xb, yb) = if me == DATA_OWNER {
                let x: Vec<f64> = idx
                    .iter()
                    .flat_map(|&i| self.x_train[i * d..(i + 1) * d].iter().copied())
                    .collect();
                let y: Vec<f64> = idx
                    .iter()
                    .flat_map(|&i| {
                        (0..10).map(move |c| (c == self.y_train[i] as usize) as u8 as f64)
                    })
                    .collect();
                (Some(x), Some(y))
            } else {
                (None, None)
            };
            let xs = sess.share_input_f64::<u64>(DATA_OWNER, xb.as_deref(), shape(self.batch))?;
            let ys = sess.share_input_f64::<u64>(DATA_OWNER, yb.as_deref(), [self.batch, 10])?;
            let probs = self.gradients(sess, &mut model, &xs, &ys).await?;
            self.sgd.step(sess, model.params_mut()).await?;
            // The data owner learns the batch loss (its own labels, the model's probabilities).
            if let Some(p) = sess.reveal_to(&probs, DATA_OWNER).await? {
                if !sess.is_dry_run() {
                    let fp = sess.fixed_point::<u64>()?;
                    let l: f64 = idx
                        .iter()
                        .enumerate()
                        .map(|(r, &i)| {
                            -fp.decode(p.data()[r * 10 + self.y_train[i] as usize])
                                .max(1e-6)
                                .ln()
                        })
                        .sum::<f64>()
                        / self.batch as f64;
                    if let Ok(mut v) = self.losses.lock() {
                        v.push(l);
                    }
                    if let Some(b) = &self.bar {
                        b.inc(1);
                        b.set_message(format!("loss {l:.4}"));
                    }
                }
            }
            times.push(t0.elapsed());
        }
        let accuracy = match self.evaluation {
            Evaluation::Secure => {
                // The weights are fixed for the whole test set: opened once.
                model.prepare_inference(sess).await?;
                self.secure_accuracy(sess, &model, DATA_OWNER).await?
            }
            Evaluation::RevealToOwner => {
                let w = model.reveal_weights_to(sess, MODEL_OWNER).await?;
                let acc = match w {
                    Some(w) => plain_accuracy(&self.spec, w, &self.x_test, &self.y_test)?,
                    None => 0.0,
                };
                // The owner announces the accuracy (a public output).
                let t = RingTensor::<u64>::new([1], vec![(acc * 1e6).round() as u64])?;
                let shared =
                    sess.share_input(MODEL_OWNER, (me == MODEL_OWNER).then_some(&t), [1])?;
                sess.reveal(&shared).await?.data()[0] as f64 / 1e6
            }
        };
        let params: Vec<RingTensor<u64>> = model
            .params_mut()
            .iter()
            .map(|p| p.value.share().clone())
            .collect();
        let velocity: Vec<RingTensor<u64>> = model
            .params_mut()
            .iter()
            .filter_map(|p| p.velocity.as_ref().map(|v| v.share().clone()))
            .collect();
        Ok((params, velocity, accuracy, times))
    }

    /// One step's forward and backward passes on the batch (xs, ys): the
    /// gradients left in `model`'s parameters, the softmax probabilities
    /// returned. With the inter-batch pipeline the batch runs as
    /// micro-batches on forks ([`run_micro_batches`]), each through its
    /// own copy of the model's shares (its own layer caches), and their
    /// gradients are summed (local additions).
    async fn gradients(
        &self,
        sess: &crate::Session,
        model: &mut SecureModel<u64>,
        xs: &crate::Shared<u64>,
        ys: &crate::Shared<u64>,
    ) -> Result<crate::Shared<u64>> {
        let Some(p) = self.pipeline else {
            let logits = model.forward(sess, xs, true).await?;
            let (grad, probs) = loss::softmax_cross_entropy_grad(sess, &logits, ys).await?;
            model.backward(sess, &grad, false).await?;
            return Ok(probs);
        };
        if self
            .spec
            .layers
            .iter()
            .any(|l| matches!(l, crate::nn::LayerSpec::BatchNorm2d { .. }))
        {
            return Err(Error::Unsupported(format!(
                "{} has BatchNorm2d: micro-batches would normalize by their own statistics; \
                 train it without --micro-batch",
                self.spec.name
            )));
        }
        // Inter-linear: the weights are fixed until the step, so every
        // micro-batch's forward products share one opening of W - B.
        model.prepare_inference(sess).await?;
        let ranges = p.ranges(self.batch);
        let (main, ranges, batch) = (&*model, &ranges, self.batch);
        let parts = run_micro_batches(
            sess,
            ranges.len(),
            p.in_flight,
            |fork, i| async move {
                let r = ranges[i].clone();
                let be = fork.backend();
                let x =
                    crate::Shared::from_share(be.slice_axis(xs.share(), 0, r.start, r.len())?);
                let y =
                    crate::Shared::from_share(be.slice_axis(ys.share(), 0, r.start, r.len())?);
                let mut m = main.replicate();
                let logits = m.forward(&fork, &x, true).await?;
                let (grad, probs) =
                    loss::softmax_cross_entropy_grad_over(&fork, &logits, &y, batch).await?;
                m.backward(&fork, &grad, false).await?;
                let grads = m
                    .params_mut()
                    .into_iter()
                    .map(|p| p.grad.take())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| Error::Unsupported("a layer left no gradient".into()))?;
                Ok::<_, Error>((grads, probs))
            },
            |_| {},
        )
        .await?;
        let mut sums: Option<Vec<crate::Shared<u64>>> = None;
        let mut probs = Vec::with_capacity(parts.len());
        for (grads, pr) in parts {
            sums = Some(match sums {
                None => grads,
                Some(s) => s
                    .iter()
                    .zip(&grads)
                    .map(|(a, b)| a.add(sess, b))
                    .collect::<Result<_>>()?,
            });
            probs.push(pr);
        }
        for (p, g) in model.params_mut().into_iter().zip(sums.unwrap_or_default()) {
            p.grad = Some(g);
        }
        let parts: Vec<&RingTensor<u64>> = probs.iter().map(|p| p.share()).collect();
        Ok(crate::Shared::from_share(
            sess.backend().concat_axis(&parts, 0)?,
        ))
    }

    /// The secure model's accuracy on the test set, revealed to the data
    /// owner: the test batches run as micro-batches of the inter-batch
    /// pipeline ([`EVAL_IN_FLIGHT`] in flight, each on its own fork, the
    /// model shared by them: [`SecureModel::infer`]).
    async fn secure_accuracy(
        &self,
        sess: &crate::Session,
        model: &SecureModel<u64>,
        owner: usize,
    ) -> Result<f64> {
        let d: usize = self.spec.input.iter().product();
        let n = self.n_test;
        let ranges = InterBatch {
            micro_batch: self.batch,
            in_flight: EVAL_IN_FLIGHT,
        }
        .ranges(n);
        let fp = sess.fixed_point::<u64>()?;
        let ranges = &ranges;
        let correct = run_micro_batches(
            sess,
            ranges.len(),
            EVAL_IN_FLIGHT,
            |fork, i| async move {
                let r = ranges[i].clone();
                let b = r.len();
                let x =
                    (fork.party() == owner).then(|| self.x_test[r.start * d..r.end * d].to_vec());
                let shape = [vec![b], self.spec.input.clone()].concat();
                let xs = fork.share_input_f64::<u64>(owner, x.as_deref(), shape)?;
                let logits = model.infer(&fork, &xs).await?;
                let mut correct = 0;
                if let Some(l) = fork.reveal_to(&logits, owner).await? {
                    for (k, row) in l.data().chunks(10).enumerate() {
                        let row: Vec<f64> = row.iter().map(|&v| fp.decode(v)).collect();
                        correct += (argmax(&row) == self.y_test[r.start + k] as usize) as usize;
                    }
                }
                Ok(correct)
            },
            |_| {},
        )
        .await?;
        Ok(correct.iter().sum::<usize>() as f64 / n.max(1) as f64)
    }
}

/// Test batches in flight at once in the secure evaluation (the
/// inter-batch pipeline: one batch's rounds on the wire while another
/// computes; the accuracy does not depend on it).
pub const EVAL_IN_FLIGHT: usize = 2;

/// Test accuracy of plaintext weights.
fn plain_accuracy(spec: &ModelSpec, w: ModelWeights, x: &[f64], y: &[u8]) -> Result<f64> {
    let mut m = PlainModel::new(spec, w)?;
    let d: usize = spec.input.iter().product();
    let xs: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let shape = [vec![y.len()], spec.input.clone()].concat();
    let logits = m.forward(&PlainTensor::new(shape, xs[..y.len() * d].to_vec())?, false)?;
    let correct = (0..y.len())
        .filter(|&i| {
            let row: Vec<f64> = logits.data[i * 10..(i + 1) * 10]
                .iter()
                .map(|&v| v as f64)
                .collect();
            argmax(&row) == y[i] as usize
        })
        .count();
    Ok(correct as f64 / y.len().max(1) as f64)
}

/// One epoch of the plaintext twin on the same batches; returns test accuracy.
fn train_twin_epoch(
    twin: &mut PlainModel,
    x: &[f64],
    y: &[u8],
    order: &[usize],
    opts: &TrainOptions,
    x_test: &[f64],
    y_test: &[u8],
) -> Result<f64> {
    let spec = models::by_name(&opts.model)?;
    let d: usize = spec.input.iter().product();
    let shape = [vec![opts.batch], spec.input.clone()].concat();
    for step in 0..order.len() / opts.batch {
        let idx = &order[step * opts.batch..(step + 1) * opts.batch];
        let xb: Vec<f32> = idx
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].iter().map(|&v| v as f32))
            .collect();
        let logits = twin.forward(&PlainTensor::new(shape.clone(), xb)?, true)?;
        let mut g = crate::nn::softmax_rows(&logits);
        for (r, &i) in idx.iter().enumerate() {
            g[r * 10 + y[i] as usize] -= 1.0;
        }
        g.iter_mut().for_each(|v| *v /= opts.batch as f32);
        twin.backward(&PlainTensor::new([opts.batch, 10], g)?)?;
        twin.sgd_step(
            opts.sgd.lr as f32,
            opts.sgd.momentum as f32,
            opts.sgd.weight_decay as f32,
        );
    }
    plain_accuracy(&spec, twin.weights().clone(), x_test, y_test)
}
