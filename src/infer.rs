//! Secure sentence-embedding inference with a BERT encoder, all parties in
//! this process: what `spindle infer` runs and what the tests and the
//! benchmark call.
//!
//! Roles: party 0 is the model owner (it shares the weights), party N - 1
//! the client (it shares its token ids and alone receives the
//! embeddings); with N > 2 the parties in between only compute. The model
//! is loaded once per run (weights shared, masks opened: the "load"
//! phase), then the batch is embedded (the "inference" phase, the latency
//! users wait for); correlated randomness for both comes from the dealer's
//! offline phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_transport::LinkStats;

use crate::error::{Error, Result};
use crate::io::tokenizer::TokenBatch;
use crate::models::bert::secure::{SecureBert, TokenLayout};
use crate::models::bert::BertWeights;
pub use crate::pipeline::Progress;
use crate::pipeline::{run_micro_batches, InterBatch};
use crate::protocol::attention::AttentionOptions;
use crate::runner::{run_parties_blocking, RunOptions};

/// The party that owns the model.
pub const MODEL_OWNER: usize = 0;

/// The party that owns the input and receives the embeddings.
pub fn client_of(n_parties: usize) -> usize {
    n_parties - 1
}

/// Options of [`infer`].
#[derive(Clone, Debug)]
pub struct InferOptions {
    /// The run: parties, session (fractional bits), preprocessing, backend.
    pub run: RunOptions,
    /// Attention optimizations.
    pub attention: AttentionOptions,
    /// Embed the batch this many times after one model load (fresh
    /// preprocessing each time) and report the median: a latency benchmark.
    pub repeats: usize,
    /// The inter-batch pipeline ([`InterBatch`]): the batch cut into
    /// micro-batches, several in flight, each on its own fork of the
    /// session (`None`: the whole batch in one piece). Needs `repeats` 1.
    pub pipeline: Option<InterBatch>,
    /// With the pipeline: pad each micro-batch to its own longest sentence
    /// (true) or every one to the batch's padded length (false).
    pub dynamic_padding: bool,
    /// Called at the client as each micro-batch's embeddings arrive, with
    /// the number of sentences done so far (a progress bar).
    pub progress: Option<Progress>,
}

impl InferOptions {
    /// Defaults for `n_parties`: dealer preprocessing, every attention
    /// optimization on.
    pub fn new(n_parties: usize) -> Self {
        InferOptions {
            run: RunOptions::new(n_parties),
            attention: AttentionOptions::default(),
            repeats: 1,
            pipeline: None,
            dynamic_padding: true,
            progress: None,
        }
    }
}

/// Time and traffic of one phase at one party.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseCost {
    /// Wall time at this party.
    pub time: Duration,
    /// This party's traffic during the phase.
    pub link: LinkStats,
}

/// What [`infer`] measured and produced.
#[derive(Clone, Debug)]
pub struct InferReport {
    /// One embedding [H] per sequence, as revealed to the client.
    pub embeddings: Vec<Vec<f32>>,
    /// Per party: sharing the weights and opening their masks.
    pub load: Vec<PhaseCost>,
    /// Per party: the inference itself (lookup to revealed embeddings), in
    /// the repeat of median latency.
    pub inference: Vec<PhaseCost>,
    /// Latency (slowest party) of every repeat, in order.
    pub latencies: Vec<Duration>,
    /// Bytes each party received from the dealer (offline phase).
    pub dealer_bytes: Vec<usize>,
    /// Wall time of the offline phase (plan dry run and dealer).
    pub offline_time: Duration,
    /// The preprocessing plan (dealer mode): load and inference together.
    pub plan: Option<crate::preprocess::Plan>,
    /// Every party's timeline (`opts.run.trace`).
    pub trace: Option<crate::trace::Trace>,
}

impl InferReport {
    /// The median over repeats of the slowest party's inference time.
    pub fn latency(&self) -> Duration {
        median_index(&self.latencies).map_or_else(Duration::default, |i| self.latencies[i])
    }
}

/// The index of the median (the lower one for an even count).
fn median_index(times: &[Duration]) -> Option<usize> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&i| times[i]);
    order.get(times.len().saturating_sub(1) / 2).copied()
}

struct PartyOutput {
    embeddings: Option<Vec<f64>>,
    load: PhaseCost,
    /// One per repeat.
    inference: Vec<PhaseCost>,
}

/// One party's model load (the owner's weights shared, the static masks
/// opened), timed with its traffic: the "load" phase.
async fn load_model(
    sess: &crate::Session,
    config: &crate::models::bert::BertConfig,
    weights: Option<&BertWeights>,
    attention: AttentionOptions,
) -> Result<(SecureBert<u64>, PhaseCost)> {
    let (t0, s0) = (Instant::now(), sess.link_stats());
    let model = crate::trace::in_span(
        sess.stream_id(),
        "load",
        SecureBert::<u64>::share(sess, MODEL_OWNER, weights, config, attention),
    )
    .await?;
    let load = PhaseCost {
        time: t0.elapsed(),
        link: sess.link_stats() - s0,
    };
    Ok((model, load))
}

/// One party's model load (shares and static masks) then `repeats`
/// inferences (forward and reveal to the client), each timed with its
/// traffic: the program of [`infer`] and of [`InferJob::run`].
async fn embed_in_phases(
    sess: &crate::Session,
    config: &crate::models::bert::BertConfig,
    weights: Option<&BertWeights>,
    ids: Option<&TokenBatch>,
    layout: &TokenLayout,
    attention: AttentionOptions,
    repeats: usize,
) -> Result<PartyOutput> {
    if repeats == 0 {
        return Err(Error::Format {
            what: "inference repeats".into(),
            detail: "need at least one".into(),
        });
    }
    let client = client_of(sess.n_parties());
    let (model, load) = load_model(sess, config, weights, attention).await?;
    let mut inference = Vec::with_capacity(repeats);
    let mut revealed = None;
    for _ in 0..repeats {
        let (t1, s1) = (Instant::now(), sess.link_stats());
        let y = model.forward(sess, client, ids, layout).await?;
        revealed = sess.reveal_to(&y, client).await?;
        inference.push(PhaseCost {
            time: t1.elapsed(),
            link: sess.link_stats() - s1,
        });
    }
    let fp = sess.fixed_point::<u64>()?;
    Ok(PartyOutput {
        embeddings: revealed.map(|t| fp.decode_tensor(&t)),
        load,
        inference,
    })
}

/// One party's model load, then the sentences of `layout` (public
/// lengths; the client also holds their `ids`) in micro-batches through
/// the inter-batch pipeline ([`run_micro_batches`]): micro-batch `i` on
/// the `i`-th fork, padded to `pad_to` or its longest sentence, revealed
/// to the client on that fork; the embeddings in order. The inference
/// phase is the whole stream.
#[allow(clippy::too_many_arguments)]
async fn embed_streamed(
    sess: &crate::Session,
    config: &crate::models::bert::BertConfig,
    weights: Option<&BertWeights>,
    layout: &TokenLayout,
    ids: Option<&TokenBatch>,
    attention: AttentionOptions,
    pipeline: InterBatch,
    pad_to: Option<usize>,
    progress: Option<&Progress>,
) -> Result<PartyOutput> {
    let client = client_of(sess.n_parties());
    let is_client = sess.party() == client;
    let (model, load) = load_model(sess, config, weights, attention).await?;
    let (t1, s1) = (Instant::now(), sess.link_stats());
    let ranges = pipeline.ranges(layout.lengths.len());
    let fp = sess.fixed_point::<u64>()?;
    let model = &model;
    let ranges_ref = &ranges;
    let parts = run_micro_batches(
        sess,
        ranges.len(),
        pipeline.in_flight,
        |fork, i| async move {
            // Lengths are public: every party knows each micro-batch's
            // layout; only the client holds its ids.
            let lengths = layout.lengths[ranges_ref[i].clone()].to_vec();
            let part_layout = TokenLayout {
                seq_len: pad_to.unwrap_or_else(|| lengths.iter().copied().max().unwrap_or(0)),
                lengths,
            };
            part_layout.check(config)?;
            let part = match ids {
                Some(b) => Some(b.select(ranges_ref[i].clone(), Some(part_layout.seq_len))?),
                None => None,
            };
            let y = model
                .forward(&fork, client, part.as_ref(), &part_layout)
                .await?;
            let revealed = fork.reveal_to(&y, client).await?;
            Ok(revealed.map(|t| fp.decode_tensor(&t)))
        },
        |i| {
            if let (true, Some(p)) = (is_client, progress) {
                (p.0)(ranges[i].end);
            }
        },
    )
    .await?;
    let embeddings = is_client.then(|| parts.into_iter().flatten().flatten().collect());
    Ok(PartyOutput {
        embeddings,
        load,
        inference: vec![PhaseCost {
            time: t1.elapsed(),
            link: sess.link_stats() - s1,
        }],
    })
}

/// Runs the secure forward of `weights` on `batch` with `opts.run.n_parties`
/// parties in this process.
///
/// Errors: [`Error::InvalidParty`] for fewer than 2 parties;
/// [`Error::Resources`] for a run estimated to need more memory than the
/// machine has ([`crate::resources::infer_estimate`]); as
/// [`SecureBert::share`] and [`SecureBert::forward`].
pub fn infer(
    weights: Arc<BertWeights>,
    batch: Arc<TokenBatch>,
    opts: &InferOptions,
) -> Result<InferReport> {
    let n = opts.run.n_parties;
    if n < 2 {
        return Err(Error::InvalidParty(format!(
            "need at least 2 parties, got {n}"
        )));
    }
    let client = client_of(n);
    let (attention, repeats) = (opts.attention, opts.repeats);
    let sequences = batch.batch();
    let layers = weights.layers.len();
    TokenLayout::of(&batch).check(&weights.config)?;
    if let Some(p) = opts.pipeline {
        p.validate()?;
        if repeats != 1 {
            return Err(Error::Format {
                what: "secure inference".into(),
                detail: "the inter-batch pipeline embeds the batch once: use repeats 1".into(),
            });
        }
    }
    // What is held at once: with the pipeline and material made on demand
    // (the online dealer, the trusted first party), the micro-batches in
    // flight and one layer's material; else every sentence's material.
    let (held, held_layers) = match opts.pipeline {
        Some(p) if opts.run.preprocessing != crate::runner::Preprocessing::Dealer => {
            ((p.micro_batch * p.in_flight).min(sequences), 1)
        }
        _ => (sequences * repeats.max(1), layers),
    };
    crate::resources::check_fits(
        crate::resources::infer_estimate(&weights.config, n, held, batch.seq_len, held_layers),
        &format!(
            "secure inference of {sequences} sentence(s) of {} tokens through {layers} layer(s) \
             with {n} parties in one process",
            batch.seq_len
        ),
        "use fewer --parties, fewer sentences or a shorter --seq-len, fewer --layers or \
         --repeat, smaller --micro-batch or --in-flight, or run the parties as separate \
         processes (spindle party --job infer)",
    )?;
    let (pipeline, progress) = (opts.pipeline, opts.progress.clone());
    let pad_to = (!opts.dynamic_padding).then_some(batch.seq_len);
    let report = run_parties_blocking(&opts.run, move |sess| {
        let (weights, batch, progress) = (weights.clone(), batch.clone(), progress.clone());
        async move {
            let party = sess.party();
            let owned = (party == MODEL_OWNER).then_some(&*weights);
            if let Some(p) = pipeline {
                return embed_streamed(
                    &sess,
                    &weights.config,
                    owned,
                    &TokenLayout::of(&batch),
                    (party == client).then_some(&*batch),
                    attention,
                    p,
                    pad_to,
                    progress.as_ref(),
                )
                .await;
            }
            let layout = TokenLayout::of(&batch);
            let ids = (party == client).then_some(&*batch);
            embed_in_phases(
                &sess,
                &weights.config,
                owned,
                ids,
                &layout,
                attention,
                repeats,
            )
            .await
        }
    })?;
    let flat = report.parties[client]
        .output
        .embeddings
        .as_ref()
        .ok_or_else(|| Error::InvalidParty("the client received no embeddings".into()))?;
    let embeddings = flat
        .chunks((flat.len() / sequences).max(1))
        .map(|r| r.iter().map(|&v| v as f32).collect())
        .collect();
    let latencies: Vec<Duration> = (0..repeats)
        .map(|k| {
            let times = report.parties.iter().map(|p| p.output.inference[k].time);
            times.max().unwrap_or_default()
        })
        .collect();
    let median = median_index(&latencies).unwrap_or(0);
    Ok(InferReport {
        embeddings,
        load: report.parties.iter().map(|p| p.output.load).collect(),
        inference: report
            .parties
            .iter()
            .map(|p| p.output.inference[median])
            .collect(),
        latencies,
        dealer_bytes: report.parties.iter().map(|p| p.dealer_bytes).collect(),
        offline_time: report.offline_time,
        plan: report.plan,
        trace: report.trace,
    })
}

/// Writes embeddings [B, H] to `path`: NumPy `.npy` (little-endian f32,
/// C order) when the name ends in `.npy`, else JSON (a list of lists).
///
/// Errors: [`Error::Io`] if the file cannot be written; [`Error::Format`]
/// for rows of different lengths.
pub fn write_embeddings(path: &std::path::Path, embeddings: &[Vec<f32>]) -> Result<()> {
    let h = embeddings.first().map_or(0, Vec::len);
    if embeddings.iter().any(|e| e.len() != h) {
        return Err(Error::Format {
            what: "embeddings".into(),
            detail: "rows of different lengths".into(),
        });
    }
    let bytes = if path.extension().is_some_and(|e| e == "npy") {
        // NPY format 1.0: magic, version, header length, a Python dict
        // literal padded with spaces to a multiple of 64 bytes, then data.
        let mut header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {h}), }}",
            embeddings.len()
        );
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in embeddings.iter().flatten() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    } else {
        serde_json::to_vec(embeddings).map_err(|e| Error::Format {
            what: "embeddings".into(),
            detail: e.to_string(),
        })?
    };
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// [`crate::jobs::AnyJob::Infer`]: one party of a secure inference as its
/// own process (`spindle party --job infer`, `spindle dealer --job infer`).
///
/// Every process gets the same arguments; each reads only what its role
/// may see: the dealer and the compute-only parties read the public
/// `config.json` (and the public layout), party 0 also the weights, party
/// N - 1 also the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferJob {
    /// The Hugging Face model folder.
    pub model: std::path::PathBuf,
    /// The client's sentences.
    pub text: Vec<String>,
    /// Public: padded length.
    pub seq_len: usize,
    /// Public: tokens of each sentence.
    pub lengths: Vec<usize>,
    /// Run only the first L layers.
    pub layers: Option<usize>,
    /// Attention optimizations.
    pub attention: AttentionOptions,
    /// Inferences after one model load (see [`InferOptions::repeats`]).
    pub repeats: usize,
    /// Public: the inter-batch pipeline ([`InferOptions::pipeline`]); with
    /// it the job takes its material from the online dealer.
    pub pipeline: Option<InterBatch>,
    /// Public, with the pipeline: pad each micro-batch to its longest
    /// sentence (true) or to `seq_len` (false).
    pub dynamic_padding: bool,
}

impl InferJob {
    /// Identifies the job for the dealer's check (public parts only).
    pub fn fingerprint(&self) -> String {
        format!(
            "infer model={} seq_len={} lengths={:?} layers={:?} attention={:?} repeats={} \
             pipeline={:?} dynamic_padding={}",
            self.model.display(),
            self.seq_len,
            self.lengths,
            self.layers,
            self.attention,
            self.repeats,
            self.pipeline,
            self.dynamic_padding
        )
    }

    /// Checks the public layout.
    ///
    /// Errors: [`Error::Format`] for no sentence or lengths outside 1..=seq_len.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = self.pipeline {
            p.validate()?;
            if self.repeats != 1 {
                return Err(Error::Format {
                    what: "infer job".into(),
                    detail: "the inter-batch pipeline embeds the text once: use --repeat 1".into(),
                });
            }
        }
        if self.lengths.is_empty() || self.lengths.iter().any(|&l| l == 0 || l > self.seq_len) {
            return Err(Error::Format {
                what: "infer job".into(),
                detail: format!(
                    "lengths {:?} for padded length {}",
                    self.lengths, self.seq_len
                ),
            });
        }
        Ok(())
    }

    fn config(&self) -> Result<crate::models::bert::BertConfig> {
        let mut c = crate::models::bert::BertConfig::from_dir(&self.model)?;
        if let Some(l) = self.layers {
            c.num_layers = c.num_layers.min(l);
        }
        Ok(c)
    }

    /// Runs the job as `sess.party()` (or as a dry run without model or
    /// text): embeddings at the client, nothing elsewhere; phases "load"
    /// and "inference".
    ///
    /// Errors: model, tokenizer and layout errors; as [`SecureBert::share`]
    /// and [`SecureBert::forward`].
    pub async fn run_party(
        &self,
        sess: &crate::Session,
    ) -> Result<(Vec<f64>, Vec<crate::report::JobPhase>)> {
        use crate::report::JobPhase;
        let (party, n) = (sess.party(), sess.n_parties());
        let client = client_of(n);
        let config = self.config()?;
        let real = !sess.is_dry_run();
        TokenLayout {
            seq_len: self.seq_len,
            lengths: self.lengths.clone(),
        }
        .check(&config)?;
        // What this party holds at once (see `infer`).
        let (held, held_layers) = match self.pipeline {
            Some(p) => ((p.micro_batch * p.in_flight).min(self.lengths.len()), 1),
            None => (self.lengths.len() * self.repeats.max(1), config.num_layers),
        };
        if real {
            // This process holds one party.
            crate::resources::check_fits(
                crate::resources::infer_estimate(&config, 1, held, self.seq_len, held_layers),
                &format!(
                    "party {party}'s share of secure inference of {} sentence(s) of {} tokens",
                    self.lengths.len(),
                    self.seq_len
                ),
                "use fewer sentences, a shorter --seq-len, fewer --layers or --repeat, or \
                 --micro-batch",
            )?;
        }
        let weights = if party == MODEL_OWNER && real {
            let mut w = BertWeights::from_dir(&self.model)?;
            w = w.truncated(config.num_layers)?;
            Some(w)
        } else {
            None
        };
        let layout = TokenLayout {
            seq_len: self.seq_len,
            lengths: self.lengths.clone(),
        };
        let batch = if party == client && real {
            let tk = crate::io::tokenizer::Tokenizer::from_dir(&self.model)?;
            let ids = self
                .text
                .iter()
                .map(|t| tk.encode(t))
                .collect::<Result<Vec<_>>>()?;
            let b = TokenBatch::new(ids, Some(self.seq_len))?;
            if TokenLayout::of(&b) != layout {
                return Err(Error::Format {
                    what: "infer job".into(),
                    detail: format!(
                        "the text has {:?} tokens, the public layout says {:?}",
                        b.lengths, layout.lengths
                    ),
                });
            }
            Some(b)
        } else {
            None
        };
        let out = match self.pipeline {
            Some(p) => {
                let pad_to = (!self.dynamic_padding).then_some(self.seq_len);
                embed_streamed(
                    sess,
                    &config,
                    weights.as_ref(),
                    &layout,
                    batch.as_ref(),
                    self.attention,
                    p,
                    pad_to,
                    None,
                )
                .await?
            }
            None => {
                embed_in_phases(
                    sess,
                    &config,
                    weights.as_ref(),
                    batch.as_ref(),
                    &layout,
                    self.attention,
                    self.repeats,
                )
                .await?
            }
        };
        let phase = |label: String, c: PhaseCost| JobPhase {
            label,
            time: c.time,
            link: c.link,
        };
        let times: Vec<Duration> = out.inference.iter().map(|c| c.time).collect();
        let median = out.inference[median_index(&times).unwrap_or(0)];
        let label = match self.repeats {
            1 => "inference".to_string(),
            k => format!("inference (median of {k})"),
        };
        Ok((
            out.embeddings.unwrap_or_default(),
            vec![phase("load".into(), out.load), phase(label, median)],
        ))
    }
}
