//! The secure N-party forward of a BERT encoder with sentence-embedding
//! pooling: the model owner secret-shares the weights, the client
//! secret-shares its token ids, and only the client learns the embeddings.
//!
//! - Embedding lookup: the client shares the one-hot matrix of its ids
//!   [B*S, V] (input sharing costs no message); its product with the word
//!   table is a Beaver product against the table's mask opened once per
//!   model load, so an inference opens the masked one-hot (B*S*V ring
//!   elements) and nothing else; one-hot entries are integers, so the
//!   product needs no truncation. Neither the ids reach the model owner nor
//!   the table the client. Positions and token types (0) are public, so
//!   their rows are selected locally from the shared tables.
//! - Embedding LayerNorm, then per layer: attention
//!   ([`crate::protocol::attention`]), residual, LayerNorm, dense, GeLU
//!   (exact erf by default), dense, residual, LayerNorm.
//! - Masked mean pooling over each sequence's real tokens (public lengths:
//!   a local sum and one truncation by the public 1/len), then L2
//!   normalisation by the inverse square root of the sum of squares.
//!
//! What is public: the batch size, the padded length and each sequence's
//! length (as in CrypTen and Spin), the model's configuration.
//!
//! Domain: the ranges of the non-linear functions (GeLU |x| <= 32,
//! LayerNorm variance 0.002..4000 and |x| <= 1024, attention-score spread
//! <= 64, pooled sum of squares 0.001..4095); all-MiniLM-L6-v2 on English
//! text stays inside them (see [`super::plain::DomainTrace`]). Error:
//! cosine similarity with the f64 result >= 0.9999 on the reference
//! sentences (tests `tests/bert_secure.rs`). Rounds and bytes: measured by
//! `spindle infer` and tabled in `docs/attention.md` and `docs/perf.md`.

use super::config::{BertConfig, HiddenAct};
use super::weights::{BertWeights, Dense, Matrix, Norm};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::io::tokenizer::TokenBatch;
use crate::protocol::attention::{
    self_attention, AttentionOptions, AttentionShape, AttentionWeights, QkvProjection,
};
use crate::protocol::linear::{dense, Weight};
use crate::protocol::lookup::{lookup_rows, one_hot};
use crate::protocol::nonlinear::{gelu, l2_normalize, layer_norm, GeluForm};
use crate::protocol::trunc;
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;
use crate::trace::in_span;

/// The public geometry of a padded batch: what every party knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenLayout {
    /// Padded length S.
    pub seq_len: usize,
    /// Real tokens of each sequence.
    pub lengths: Vec<usize>,
}

impl TokenLayout {
    /// The layout of a batch.
    pub fn of(batch: &TokenBatch) -> Self {
        TokenLayout {
            seq_len: batch.seq_len,
            lengths: batch.lengths.clone(),
        }
    }

    /// Checks that the layout fits `config`: at least one sequence, a
    /// padded length of 1 to `max_positions`, and every length in
    /// 1..=seq_len.
    ///
    /// Errors: [`Error::Format`] saying which.
    pub fn check(&self, config: &BertConfig) -> Result<()> {
        let bad = |detail: String| Error::Format {
            what: "token batch".into(),
            detail,
        };
        if self.lengths.is_empty() || self.seq_len == 0 {
            return Err(bad("empty batch".into()));
        }
        if self.seq_len > config.max_positions {
            return Err(bad(format!(
                "length {} exceeds the model's {} positions",
                self.seq_len, config.max_positions
            )));
        }
        if self.lengths.iter().any(|&l| l == 0 || l > self.seq_len) {
            return Err(bad(format!(
                "lengths {:?} for padded length {}",
                self.lengths, self.seq_len
            )));
        }
        Ok(())
    }
}

/// LayerNorm parameters as shares.
#[derive(Clone, Debug)]
struct SharedNorm<R: Ring> {
    gamma: Shared<R>,
    beta: Shared<R>,
}

#[derive(Clone, Debug)]
struct SecureLayer<R: Ring> {
    attention: AttentionWeights<R>,
    attn_norm: SharedNorm<R>,
    intermediate: (Weight<R>, Shared<R>),
    output: (Weight<R>, Shared<R>),
    output_norm: SharedNorm<R>,
}

/// A BERT encoder whose weights are secret-shared among the parties.
#[derive(Clone, Debug)]
pub struct SecureBert<R: Ring> {
    config: BertConfig,
    options: AttentionOptions,
    word: Weight<R>,
    position: Shared<R>,
    token_type: Shared<R>,
    embedding_norm: SharedNorm<R>,
    layers: Vec<SecureLayer<R>>,
}

/// Shares the model owner's plaintext tensors in a fixed order; every
/// other party passes `None` and gets its share of the same shapes.
struct Sharer<'a> {
    sess: &'a Session,
    owner: usize,
    reuse_masks: bool,
    /// Masks held by the owner alone (it must be party 0).
    owner_masks: bool,
}

impl Sharer<'_> {
    fn tensor<R: Ring>(&self, data: Option<Vec<f32>>, dims: Vec<usize>) -> Result<Shared<R>> {
        let fp = self.sess.fixed_point::<R>()?;
        let value = match data {
            Some(d) => Some(fp.encode_tensor_f32::<R>(dims.clone(), &d)?),
            // A dealer's dry run records the plan without the model.
            None if self.sess.is_dry_run() && self.sess.party() == self.owner => {
                Some(RingTensor::zeros(dims.clone()))
            }
            None => None,
        };
        self.sess.share_input(self.owner, value.as_ref(), dims)
    }

    fn vector<R: Ring>(&self, v: Option<&[f32]>, n: usize) -> Result<Shared<R>> {
        self.tensor(v.map(<[f32]>::to_vec), vec![n])
    }

    async fn weight<R: Ring>(
        &self,
        m: Option<&Matrix>,
        rows: usize,
        cols: usize,
    ) -> Result<Weight<R>> {
        let w = self.tensor(m.map(|m| m.data.clone()), vec![rows, cols])?;
        match self.owner_masks {
            true => Weight::prepare_owned(self.sess, w).await,
            false => Weight::prepare(self.sess, w, self.reuse_masks).await,
        }
    }

    async fn dense<R: Ring>(
        &self,
        d: Option<&Dense>,
        i: usize,
        o: usize,
    ) -> Result<(Weight<R>, Shared<R>)> {
        Ok((
            self.weight(d.map(|d| &d.w), i, o).await?,
            self.vector(d.map(|d| d.b.as_slice()), o)?,
        ))
    }

    fn norm<R: Ring>(&self, n: Option<&Norm>, h: usize) -> Result<SharedNorm<R>> {
        Ok(SharedNorm {
            gamma: self.vector(n.map(|n| n.gamma.as_slice()), h)?,
            beta: self.vector(n.map(|n| n.beta.as_slice()), h)?,
        })
    }
}

/// [W_q s | W_k | W_v] and [b_q s | b_k | b_v] with s the query scale.
fn fuse_qkv(q: &Dense, k: &Dense, v: &Dense, s: f32) -> Dense {
    let h = q.w.rows;
    let o = q.w.cols;
    let mut w = Vec::with_capacity(h * 3 * o);
    for r in 0..h {
        w.extend(q.w.row(r).iter().map(|x| x * s));
        w.extend_from_slice(k.w.row(r));
        w.extend_from_slice(v.w.row(r));
    }
    let mut b: Vec<f32> = q.b.iter().map(|x| x * s).collect();
    b.extend_from_slice(&k.b);
    b.extend_from_slice(&v.b);
    Dense {
        w: Matrix {
            rows: h,
            cols: 3 * o,
            data: w,
        },
        b,
    }
}

fn scaled(d: &Dense, s: f32) -> Dense {
    Dense {
        w: Matrix {
            rows: d.w.rows,
            cols: d.w.cols,
            data: d.w.data.iter().map(|x| x * s).collect(),
        },
        b: d.b.iter().map(|x| x * s).collect(),
    }
}

impl<R: Ring> SecureBert<R> {
    /// Secret-shares the model owner's weights (no message: input sharing
    /// derives shares from pairwise seeds) and, with
    /// `options.static_weights`, masks and opens every weight matrix once
    /// (one round each; (N - 1) * 8 bytes per weight element per party in
    /// Z_2^64: 178 MB for all-MiniLM-L6-v2). `weights` is `Some` at the
    /// owner only (a dry run may pass `None` everywhere: the dealer records
    /// the plan without the model); every party passes the same public
    /// `config`.
    ///
    /// Errors: [`Error::InvalidParty`] if the owner passes no weights;
    /// [`Error::Format`] if the weights disagree with `config`; encoding,
    /// preprocessing and transport errors.
    pub async fn share(
        sess: &Session,
        owner: usize,
        weights: Option<&BertWeights>,
        config: &BertConfig,
        options: AttentionOptions,
    ) -> Result<Self> {
        if let Some(w) = weights {
            if &w.config != config {
                return Err(Error::Format {
                    what: "SecureBert::share".into(),
                    detail: "the weights' configuration differs from the public one".into(),
                });
            }
        }
        let c = config;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let sh = Sharer {
            sess,
            owner,
            reuse_masks: options.static_weights,
            owner_masks: options.static_weights && options.owner_masks && owner == 0,
        };
        let scale = if options.fold_scale {
            1.0 / (c.head_dim() as f32).sqrt()
        } else {
            1.0
        };
        let word = sh.weight(weights.map(|w| &w.word), c.vocab_size, h).await?;
        let position = sh.tensor(
            weights.map(|w| w.position.data.clone()),
            vec![c.max_positions, h],
        )?;
        let token_type = sh.tensor(
            weights.map(|w| w.token_type.data.clone()),
            vec![c.type_vocab_size, h],
        )?;
        let embedding_norm = sh.norm(weights.map(|w| &w.embedding_norm), h)?;
        let mut layers = Vec::with_capacity(c.num_layers);
        for l in 0..c.num_layers {
            let lw = weights.map(|w| &w.layers[l]);
            let qkv = if options.fused_qkv {
                let fused = lw.map(|lw| fuse_qkv(&lw.query, &lw.key, &lw.value, scale));
                let (w, b) = sh.dense(fused.as_ref(), h, 3 * h).await?;
                QkvProjection::Fused { w: Box::new(w), b }
            } else {
                let q = lw.map(|lw| scaled(&lw.query, scale));
                QkvProjection::Separate(Box::new([
                    sh.dense(q.as_ref(), h, h).await?,
                    sh.dense(lw.map(|lw| &lw.key), h, h).await?,
                    sh.dense(lw.map(|lw| &lw.value), h, h).await?,
                ]))
            };
            let (out, out_bias) = sh.dense(lw.map(|lw| &lw.attn_out), h, h).await?;
            layers.push(SecureLayer {
                attention: AttentionWeights {
                    qkv,
                    scale_folded: options.fold_scale,
                    out,
                    out_bias,
                },
                attn_norm: sh.norm(lw.map(|lw| &lw.attn_norm), h)?,
                intermediate: sh.dense(lw.map(|lw| &lw.intermediate), h, i).await?,
                output: sh.dense(lw.map(|lw| &lw.output), i, h).await?,
                output_norm: sh.norm(lw.map(|lw| &lw.output_norm), h)?,
            });
        }
        Ok(SecureBert {
            config: config.clone(),
            options,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
        })
    }

    /// The public configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Word + position + token-type embeddings [B*S, H].
    async fn embed(
        &self,
        sess: &Session,
        client: usize,
        ids: Option<&TokenBatch>,
        layout: &TokenLayout,
    ) -> Result<Shared<R>> {
        let (h, s) = (self.config.hidden_size, layout.seq_len);
        let rows = layout.lengths.len() * s;
        let flat: Option<Vec<usize>> =
            ids.map(|b| b.ids.iter().flatten().map(|&i| i as usize).collect());
        let words = match &self.word {
            Weight::Static(table) => {
                lookup_rows(sess, table, client, flat.as_deref(), rows).await?
            }
            Weight::Fresh(_) => {
                let one_hot = flat
                    .map(|ids| one_hot::<R>(&ids, self.config.vocab_size))
                    .transpose()?;
                let x =
                    sess.share_input(client, one_hot.as_ref(), vec![rows, self.config.vocab_size])?;
                self.word.matmul_raw(sess, &x).await?
            }
        };
        // Row r gets position r mod S and token type 0: the first S rows of
        // the position table over every sequence, type 0 over every row.
        let be = sess.backend();
        let batch = rows / s.max(1);
        let pos = be.slice_axis(self.position.share(), 0, 0, s)?;
        let pos = be.broadcast_axis(&pos, &[batch, s * h].into(), 0)?;
        let typ = be.slice_axis(self.token_type.share(), 0, 0, 1)?;
        let typ = be.broadcast_axis(&typ, &[rows, h].into(), 0)?;
        let mut out = words.into_share();
        let shape = out.shape().clone();
        be.add_assign(&mut out, &pos.reshape(shape.clone())?)?;
        be.add_assign(&mut out, &typ.reshape(shape)?)?;
        Ok(Shared::from_share(out))
    }

    /// The last hidden states [B*S, H] (padding rows included).
    ///
    /// Errors: as [`Self::forward`].
    pub async fn hidden_states(
        &self,
        sess: &Session,
        client: usize,
        ids: Option<&TokenBatch>,
        layout: &TokenLayout,
    ) -> Result<Shared<R>> {
        self.check(ids, layout)?;
        let c = &self.config;
        let eps = c.layer_norm_eps;
        let form = match c.hidden_act {
            HiddenAct::GeluErf => GeluForm::Erf,
            HiddenAct::GeluTanh => GeluForm::Tanh,
        };
        let geometry = AttentionShape {
            batch: layout.lengths.len(),
            seq: layout.seq_len,
            heads: c.num_heads,
            lengths: layout.lengths.clone(),
        };
        let e = in_span(
            sess.stream_id(),
            "embedding",
            self.embed(sess, client, ids, layout),
        )
        .await?;
        let n = &self.embedding_norm;
        let mut x = in_span(
            sess.stream_id(),
            "layernorm",
            layer_norm(sess, &e, eps, Some(&n.gamma), Some(&n.beta)),
        )
        .await?;
        for l in &self.layers {
            let a = in_span(
                sess.stream_id(),
                "attention",
                self_attention(sess, &x, &l.attention, &geometry, self.options.batch_heads),
            )
            .await?;
            let n = &l.attn_norm;
            let h = x.add(sess, &a)?;
            x = in_span(
                sess.stream_id(),
                "layernorm",
                layer_norm(sess, &h, eps, Some(&n.gamma), Some(&n.beta)),
            )
            .await?;
            let inner = in_span(
                sess.stream_id(),
                "dense",
                dense(sess, &x, &l.intermediate.0, &l.intermediate.1),
            )
            .await?;
            let act = in_span(sess.stream_id(), "gelu", gelu(sess, &inner, form)).await?;
            let out = in_span(
                sess.stream_id(),
                "dense",
                dense(sess, &act, &l.output.0, &l.output.1),
            )
            .await?;
            let n = &l.output_norm;
            let h = x.add(sess, &out)?;
            x = in_span(
                sess.stream_id(),
                "layernorm",
                layer_norm(sess, &h, eps, Some(&n.gamma), Some(&n.beta)),
            )
            .await?;
        }
        Ok(x)
    }

    /// Sentence embeddings [B, H], secret-shared: masked mean pooling and
    /// L2 normalisation of [`Self::hidden_states`]. The client passes its
    /// batch (`Some`), every party the public layout.
    ///
    /// Errors: [`Error::InvalidParty`] if the client passes no ids;
    /// [`Error::Format`] for ids outside the vocabulary or a batch that
    /// disagrees with the layout or exceeds the position table;
    /// preprocessing and transport errors.
    pub async fn forward(
        &self,
        sess: &Session,
        client: usize,
        ids: Option<&TokenBatch>,
        layout: &TokenLayout,
    ) -> Result<Shared<R>> {
        let x = self.hidden_states(sess, client, ids, layout).await?;
        let pooled = in_span(
            sess.stream_id(),
            "pooling",
            mean_pool(sess, &x, layout, self.config.hidden_size),
        )
        .await?;
        in_span(sess.stream_id(), "normalize", l2_normalize(sess, &pooled)).await
    }

    fn check(&self, ids: Option<&TokenBatch>, layout: &TokenLayout) -> Result<()> {
        let c = &self.config;
        layout.check(c)?;
        let bad = |detail: String| Error::Format {
            what: "token batch".into(),
            detail,
        };
        if let Some(b) = ids {
            if TokenLayout::of(b) != *layout {
                return Err(bad(
                    "the client's batch disagrees with the public layout".into()
                ));
            }
            if let Some(id) = b
                .ids
                .iter()
                .flatten()
                .find(|&&id| id as usize >= c.vocab_size)
            {
                return Err(bad(format!(
                    "token id {id} outside the vocabulary of {}",
                    c.vocab_size
                )));
            }
        }
        Ok(())
    }
}

/// Mean over each sequence's real rows: [B*S, H] -> [B, H]. One round.
async fn mean_pool<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    layout: &TokenLayout,
    h: usize,
) -> Result<Shared<R>> {
    let fp = sess.fixed_point::<R>()?;
    let s = layout.seq_len;
    let b = layout.lengths.len();
    let be = sess.backend();
    let mut rows = Vec::with_capacity(b);
    let mut inv = Vec::with_capacity(b * h);
    for (bi, &len) in layout.lengths.iter().enumerate() {
        // Sequence bi's real rows, summed.
        let seq = be.slice_axis(x.share(), 0, bi * s, len)?;
        rows.push(be.sum_axis(&seq, 0)?);
        let k = fp.encode::<R>(1.0 / len as f64)?;
        inv.extend(std::iter::repeat_n(k, h));
    }
    let sums = be.concat_axis(&rows.iter().collect::<Vec<_>>(), 0)?;
    let sums = Shared::from_share(sums.reshape([b, h])?);
    let scaled = sums.mul_public(sess, &RingTensor::new(vec![b, h], inv)?)?;
    trunc::truncate(sess, &scaled, fp.frac_bits()).await
}
