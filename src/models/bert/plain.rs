//! The plaintext f32 twin of the secure BERT forward: the accuracy oracle
//! of [`super::secure`] (Piranha's one-party-protocol idea) and the
//! reference `spindle infer --check` compares against.
//!
//! Semantics of `transformers.BertModel` followed by sentence-transformers'
//! masked mean pooling and L2 normalisation: post-LayerNorm encoder layers,
//! exact-erf (or tanh) GeLU, softmax attention over the real tokens only.

use super::config::{BertConfig, HiddenAct};
use super::weights::{BertWeights, Dense, Matrix, Norm};
use crate::error::{Error, Result};
use crate::nn::plain::sgemm;
use crate::protocol::nonlinear::erfc;

/// Ranges seen by the non-linear functions during a plaintext forward: the
/// domains the secure protocols must cover for this model and input.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainTrace {
    /// Smallest and largest GeLU input.
    pub gelu_input: (f32, f32),
    /// Smallest and largest per-row LayerNorm variance (before eps).
    pub layer_norm_variance: (f32, f32),
    /// Largest |LayerNorm input|.
    pub layer_norm_abs_max: f32,
    /// Largest spread (max - min) of one row of attention scores.
    pub score_spread: f32,
    /// Sum of squares of the pooled embeddings (the L2 norm's rsqrt input):
    /// smallest and largest.
    pub pooled_sum_squares: (f32, f32),
}

impl Default for DomainTrace {
    fn default() -> Self {
        DomainTrace {
            gelu_input: (f32::INFINITY, f32::NEG_INFINITY),
            layer_norm_variance: (f32::INFINITY, f32::NEG_INFINITY),
            layer_norm_abs_max: 0.0,
            score_spread: 0.0,
            pooled_sum_squares: (f32::INFINITY, f32::NEG_INFINITY),
        }
    }
}

fn widen(r: &mut (f32, f32), v: f32) {
    r.0 = r.0.min(v);
    r.1 = r.1.max(v);
}

/// x [n, in] @ w [in, out] + b.
fn dense(x: &Matrix, d: &Dense) -> Matrix {
    let (n, k, m) = (x.rows, d.w.rows, d.w.cols);
    let mut data = Vec::with_capacity(n * m);
    for _ in 0..n {
        data.extend_from_slice(&d.b);
    }
    sgemm(
        n,
        k,
        m,
        &x.data,
        (k as isize, 1),
        &d.w.data,
        (m as isize, 1),
        &mut data,
        true,
    );
    Matrix {
        rows: n,
        cols: m,
        data,
    }
}

/// Row-wise LayerNorm with the biased variance, computed in f64.
fn layer_norm(x: &mut Matrix, n: &Norm, eps: f64, trace: &mut DomainTrace) {
    let h = x.cols;
    for row in x.data.chunks_mut(h) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
        widen(&mut trace.layer_norm_variance, var as f32);
        let abs = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        trace.layer_norm_abs_max = trace.layer_norm_abs_max.max(abs);
        let inv = 1.0 / (var + eps).sqrt();
        for (j, v) in row.iter_mut().enumerate() {
            *v = ((*v as f64 - mean) * inv * n.gamma[j] as f64 + n.beta[j] as f64) as f32;
        }
    }
}

fn gelu(v: f32, act: HiddenAct) -> f32 {
    let x = v as f64;
    let y = match act {
        HiddenAct::GeluErf => 0.5 * x * erfc(-x / std::f64::consts::SQRT_2),
        HiddenAct::GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
    };
    y as f32
}

fn add_assign(x: &mut Matrix, y: &Matrix) {
    for (a, b) in x.data.iter_mut().zip(&y.data) {
        *a += b;
    }
}

/// Multi-head self-attention of one sequence x [s, H] (all tokens real).
fn attention(
    x: &Matrix,
    w: &super::weights::LayerWeights,
    c: &BertConfig,
    t: &mut DomainTrace,
) -> Matrix {
    let (s, h, heads, d) = (x.rows, c.hidden_size, c.num_heads, c.head_dim());
    let q = dense(x, &w.query);
    let k = dense(x, &w.key);
    let v = dense(x, &w.value);
    let scale = 1.0 / (d as f32).sqrt();
    let mut ctx = vec![0f32; s * h];
    let mut scores = vec![0f32; s * s];
    for hd in 0..heads {
        let off = hd * d;
        // scores = q_h [s, d] @ k_h^T [d, s], read in place with strides.
        sgemm(
            s,
            d,
            s,
            &q.data[off..],
            (h as isize, 1),
            &k.data[off..],
            (1, h as isize),
            &mut scores,
            false,
        );
        for row in scores.chunks_mut(s) {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for v in row.iter_mut() {
                *v *= scale;
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
            t.score_spread = t.score_spread.max(hi - lo);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - hi).exp();
                sum += *v;
            }
            for v in row.iter_mut() {
                *v /= sum;
            }
        }
        // ctx[:, off..off+d] = p [s, s] @ v_h [s, d]
        let mut part = vec![0f32; s * d];
        sgemm(
            s,
            s,
            d,
            &scores,
            (s as isize, 1),
            &v.data[off..],
            (h as isize, 1),
            &mut part,
            false,
        );
        for i in 0..s {
            ctx[i * h + off..i * h + off + d].copy_from_slice(&part[i * d..(i + 1) * d]);
        }
    }
    dense(
        &Matrix {
            rows: s,
            cols: h,
            data: ctx,
        },
        &w.attn_out,
    )
}

/// The last hidden states [len, H] of one sequence of token ids (all real
/// tokens, token type 0), recording the non-linear functions' input ranges
/// in `trace`.
///
/// Errors: [`Error::Format`] for an empty sequence, one longer than the
/// position table, or a token id outside the vocabulary.
pub fn hidden_states(w: &BertWeights, ids: &[u32], trace: &mut DomainTrace) -> Result<Matrix> {
    let c = &w.config;
    check_ids(c, ids)?;
    let h = c.hidden_size;
    let mut x = Matrix {
        rows: ids.len(),
        cols: h,
        data: Vec::with_capacity(ids.len() * h),
    };
    for (pos, &id) in ids.iter().enumerate() {
        let (we, pe, te) = (
            w.word.row(id as usize),
            w.position.row(pos),
            w.token_type.row(0),
        );
        x.data.extend((0..h).map(|j| we[j] + pe[j] + te[j]));
    }
    layer_norm(&mut x, &w.embedding_norm, c.layer_norm_eps, trace);
    for layer in &w.layers {
        let a = attention(&x, layer, c, trace);
        add_assign(&mut x, &a);
        layer_norm(&mut x, &layer.attn_norm, c.layer_norm_eps, trace);
        let mut inner = dense(&x, &layer.intermediate);
        for v in inner.data.iter_mut() {
            widen(&mut trace.gelu_input, *v);
            *v = gelu(*v, c.hidden_act);
        }
        let out = dense(&inner, &layer.output);
        add_assign(&mut x, &out);
        layer_norm(&mut x, &layer.output_norm, c.layer_norm_eps, trace);
    }
    Ok(x)
}

/// Checks a sequence against the config: non-empty, within the position
/// table, ids within the vocabulary.
///
/// Errors: [`Error::Format`] naming the problem.
pub fn check_ids(c: &BertConfig, ids: &[u32]) -> Result<()> {
    let bad = |detail: String| Error::Format {
        what: "token ids".into(),
        detail,
    };
    if ids.is_empty() {
        return Err(bad("empty sequence".into()));
    }
    if ids.len() > c.max_positions {
        return Err(bad(format!(
            "{} tokens, the model takes at most {}",
            ids.len(),
            c.max_positions
        )));
    }
    if let Some(id) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
        return Err(bad(format!(
            "token id {id} outside the vocabulary of {}",
            c.vocab_size
        )));
    }
    Ok(())
}

/// Sentence embedding [H]: the mean of the hidden states over the tokens,
/// L2-normalised (sentence-transformers' `Pooling(mean)` + `Normalize`).
///
/// Errors: as [`hidden_states`].
pub fn sentence_embedding(
    w: &BertWeights,
    ids: &[u32],
    trace: &mut DomainTrace,
) -> Result<Vec<f32>> {
    let x = hidden_states(w, ids, trace)?;
    Ok(pool_and_normalize(&x, trace))
}

/// Mean over rows, then L2 normalisation (f64 accumulation).
fn pool_and_normalize(x: &Matrix, trace: &mut DomainTrace) -> Vec<f32> {
    let mut mean = vec![0f64; x.cols];
    for i in 0..x.rows {
        for (m, &v) in mean.iter_mut().zip(x.row(i)) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= x.rows as f64);
    let ss: f64 = mean.iter().map(|m| m * m).sum();
    widen(&mut trace.pooled_sum_squares, ss as f32);
    let norm = ss.sqrt().max(1e-12);
    mean.iter().map(|m| (m / norm) as f32).collect()
}

/// Cosine similarity of two vectors (0 if either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
