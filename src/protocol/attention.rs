//! Multi-head scaled dot-product self-attention on shares (Vaswani et al.,
//! "Attention Is All You Need", 2017; BERT's encoder block), with the
//! attention-specific savings of the Spin line of work as switches.
//!
//! The straightforward composition projects Q, K and V with three products
//! (three openings of the same layer input), multiplies the scores by
//! 1/sqrt(d) with one more truncation, runs one product per head for Q K^T
//! and for P V, and uses every weight as a fresh Beaver operand (opening
//! W - b at every inference). [`AttentionOptions`] removes each of these:
//! - `fused_qkv`: Q, K and V from ONE product with [W_q | W_k | W_v]: one
//!   opening of x - a instead of three, 2 rounds instead of 6;
//! - `static_weights`: every weight masked and opened once per model load
//!   ([`Weight::Static`]), so an inference opens only activations;
//! - `fold_scale`: 1/sqrt(d) folded into W_q and b_q by the model owner
//!   before sharing: no scaling round;
//! - `batch_heads`: all heads (and all sequences) of Q K^T in one batched
//!   product, likewise P V: 2 + 2 rounds instead of 4 per head.
//!
//! The softmax takes one reciprocal per row (multiplied into the
//! exponentials, see [`nonlinear::softmax`]). Measured multiplications,
//! rounds and bytes per layer with and without each switch: `docs/attention.md`.
//!
//! Domain: attention scores with a spread of at most 64 within each row
//! (the softmax's domain; all-MiniLM-L6-v2 on real text stays below 54),
//! |scores| < 2^20. Error against f64: that of the products (1 ulp each)
//! and of the softmax (1e-6 for rows of 16). Rounds with every switch on:
//! 2 (QKV) + 2 (Q K^T) + softmax (34 for rows of 9 to 16) + 2 (P V) + 2
//! (output projection). Bytes: see `docs/attention.md`.

use super::fixed;
use super::linear::{dense, Weight};
use super::nonlinear;
use crate::backend::{Backend, BilinearOp};
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;

/// Switches of the attention optimizations (all on by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionOptions {
    /// One product for Q, K and V (one opening of the layer input).
    pub fused_qkv: bool,
    /// Weights masked and opened once per model load.
    pub static_weights: bool,
    /// 1/sqrt(d) folded into W_q, b_q by the model owner.
    pub fold_scale: bool,
    /// All heads' products batched into one round.
    pub batch_heads: bool,
    /// With static weights: the weights' masks held by the model owner
    /// (party 0) alone, so products send x - a to party 0 only and the
    /// other parties skip the product with the mask.
    pub owner_masks: bool,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions {
            fused_qkv: true,
            static_weights: true,
            fold_scale: true,
            batch_heads: true,
            owner_masks: true,
        }
    }
}

impl AttentionOptions {
    /// Every switch off: the straightforward composition (the ablation's
    /// baseline).
    pub fn straightforward() -> Self {
        AttentionOptions {
            fused_qkv: false,
            static_weights: false,
            fold_scale: false,
            batch_heads: false,
            owner_masks: false,
        }
    }
}

/// The Q, K, V projections.
#[derive(Clone, Debug)]
pub enum QkvProjection<R: Ring> {
    /// [W_q | W_k | W_v] as one [H, 3H] weight and its [3H] bias.
    Fused {
        /// Weight [H, 3H] (boxed: the variants stay small).
        w: Box<Weight<R>>,
        /// Bias [3H].
        b: Shared<R>,
    },
    /// Three [H, H] weights and [H] biases, in the order Q, K, V.
    Separate(Box<[(Weight<R>, Shared<R>); 3]>),
}

/// The shared weights of one attention block.
#[derive(Clone, Debug)]
pub struct AttentionWeights<R: Ring> {
    /// Q, K, V projections.
    pub qkv: QkvProjection<R>,
    /// Whether W_q and b_q already include the 1/sqrt(d) factor.
    pub scale_folded: bool,
    /// Output projection [H, H].
    pub out: Weight<R>,
    /// Its bias [H].
    pub out_bias: Shared<R>,
}

/// Public geometry of a padded batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences B.
    pub batch: usize,
    /// Padded length S.
    pub seq: usize,
    /// Heads.
    pub heads: usize,
    /// Real tokens of each sequence (keys past it are masked out).
    pub lengths: Vec<usize>,
}

impl AttentionShape {
    /// The softmax's additive mask [B * heads, S, S]: 0 for real keys,
    /// -inf for padding.
    fn key_mask(&self) -> Vec<f64> {
        let s = self.seq;
        let mut m = Vec::with_capacity(self.batch * self.heads * s * s);
        for &len in &self.lengths {
            for _ in 0..self.heads * s {
                m.extend((0..s).map(|j| if j < len { 0.0 } else { f64::NEG_INFINITY }));
            }
        }
        m
    }
}

/// [B*S, H] -> [B*heads, S, d], or [B*heads, d, S] with `transpose` (K^T):
/// a permutation of [B, S, heads, d] on the backend.
///
/// Errors: [`Error::ShapeMismatch`] for a size other than B S heads d.
fn split_heads<R: Ring>(
    be: &impl Backend,
    t: &RingTensor<R>,
    g: &AttentionShape,
    d: usize,
    transpose: bool,
) -> Result<RingTensor<R>> {
    let (s, heads) = (g.seq, g.heads);
    let x = t.clone().reshape([g.batch, s, heads, d])?;
    let (perm, dims) = if transpose {
        ([0, 2, 3, 1], [g.batch * heads, d, s])
    } else {
        ([0, 2, 1, 3], [g.batch * heads, s, d])
    };
    Ok(be.permute(&x, &perm)?.reshape(dims)?)
}

/// [B*heads, S, d] -> [B*S, H] (the inverse permutation).
///
/// Errors: [`Error::ShapeMismatch`] for a size other than B heads S d.
fn merge_heads<R: Ring>(
    be: &impl Backend,
    t: &RingTensor<R>,
    g: &AttentionShape,
    d: usize,
) -> Result<RingTensor<R>> {
    let x = t.clone().reshape([g.batch, g.heads, g.seq, d])?;
    Ok(be
        .permute(&x, &[0, 2, 1, 3])?
        .reshape([g.batch * g.seq, g.heads * d])?)
}

/// Slice `g` of a [G, m, n] tensor as [m, n].
fn slice<R: Ring>(be: &impl Backend, t: &RingTensor<R>, g: usize) -> Result<RingTensor<R>> {
    let (m, n) = (t.dims()[1], t.dims()[2]);
    Ok(be.slice_axis(t, 0, g, 1)?.reshape([m, n])?)
}

/// Fixed-point batched a [G, m, k] @ b [G, k, n]: one product for all G
/// (`batched`), else one product (2 rounds) per slice in turn.
async fn batched_matmul<R: Ring>(
    sess: &Session,
    a: &Shared<R>,
    b: &Shared<R>,
    batched: bool,
) -> Result<Shared<R>> {
    if batched {
        return fixed::product(sess, BilinearOp::Matmul, a, b).await;
    }
    let groups = a.shape().dims()[0];
    let (m, n) = (a.shape().dims()[1], b.shape().dims()[2]);
    let be = sess.backend();
    let mut parts = Vec::with_capacity(groups);
    for g in 0..groups {
        let ag = Shared::from_share(slice(be, a.share(), g)?);
        let bg = Shared::from_share(slice(be, b.share(), g)?);
        let z = fixed::product(sess, BilinearOp::Matmul, &ag, &bg).await?;
        parts.push(z.into_share().reshape([1, m, n])?);
    }
    let refs: Vec<&RingTensor<R>> = parts.iter().collect();
    Ok(Shared::from_share(be.concat_axis(&refs, 0)?))
}

/// Q, K, V [B*S, H] each.
async fn project_qkv<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    qkv: &QkvProjection<R>,
    h: usize,
) -> Result<[Shared<R>; 3]> {
    match qkv {
        QkvProjection::Fused { w, b } => {
            let y = dense(sess, x, w, b).await?;
            let part = |i: usize| -> Result<Shared<R>> {
                Ok(Shared::from_share(sess.backend().slice_axis(
                    y.share(),
                    1,
                    i * h,
                    h,
                )?))
            };
            Ok([part(0)?, part(1)?, part(2)?])
        }
        QkvProjection::Separate(ws) => {
            let q = dense(sess, x, &ws[0].0, &ws[0].1).await?;
            let k = dense(sess, x, &ws[1].0, &ws[1].1).await?;
            let v = dense(sess, x, &ws[2].0, &ws[2].1).await?;
            Ok([q, k, v])
        }
    }
}

/// Multi-head self-attention with output projection: x [B*S, H] ->
/// [B*S, H] (before the residual and LayerNorm). `batch_heads`: see
/// [`AttentionOptions`]; the other switches are properties of `w`.
///
/// Errors: [`Error::ShapeMismatch`] if x is not [B*S, H] with H divisible
/// by the heads or the lengths are not B values in 1..=S; preprocessing and
/// transport errors.
pub async fn self_attention<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    w: &AttentionWeights<R>,
    g: &AttentionShape,
    batch_heads: bool,
) -> Result<Shared<R>> {
    let dims = x.shape().dims();
    let h = *dims.last().unwrap_or(&0);
    if dims.len() != 2
        || dims[0] != g.batch * g.seq
        || g.heads == 0
        || !h.is_multiple_of(g.heads)
        || g.lengths.len() != g.batch
        || g.lengths.iter().any(|&l| l == 0 || l > g.seq)
    {
        return Err(Error::shape(
            "self_attention",
            format!(
                "x {} for batch {}, length {}, {} heads, lengths {:?}",
                x.shape(),
                g.batch,
                g.seq,
                g.heads,
                g.lengths
            ),
        ));
    }
    let d = h / g.heads;
    let [q, k, v] = project_qkv(sess, x, &w.qkv, h).await?;
    let qh = Shared::from_share(split_heads(sess.backend(), q.share(), g, d, false)?);
    let kt = Shared::from_share(split_heads(sess.backend(), k.share(), g, d, true)?);
    let vh = Shared::from_share(split_heads(sess.backend(), v.share(), g, d, false)?);
    let mut scores = batched_matmul(sess, &qh, &kt, batch_heads).await?;
    if !w.scale_folded {
        scores = fixed::mul_public_scalar(sess, &scores, 1.0 / (d as f64).sqrt()).await?;
    }
    let p = nonlinear::softmax(sess, &scores, 2, Some(&g.key_mask())).await?;
    let ctx = batched_matmul(sess, &p, &vh, batch_heads).await?;
    let merged = Shared::from_share(merge_heads(sess.backend(), ctx.share(), g, d)?);
    dense(sess, &merged, &w.out, &w.out_bias).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;

    #[test]
    fn heads_split_and_merge_are_inverse() {
        let g = AttentionShape {
            batch: 2,
            seq: 3,
            heads: 2,
            lengths: vec![3, 2],
        };
        let t = RingTensor::new(vec![6, 4], (0..24u64).collect()).unwrap();
        let s = split_heads(&CpuBackend::default(), &t, &g, 2, false).unwrap();
        assert_eq!(s.dims(), &[4, 3, 2]);
        // sequence 0, head 1, token 2 = row 2, columns 2..4.
        let at = (3 + 2) * 2; // (head 1 * 3 tokens + token 2) * d
        assert_eq!(&s.data()[at..at + 2], &[10, 11]);
        assert_eq!(merge_heads(&CpuBackend::default(), &s, &g, 2).unwrap(), t);
        let kt = split_heads(&CpuBackend::default(), &t, &g, 2, true).unwrap();
        assert_eq!(kt.dims(), &[4, 2, 3]);
        // sequence 1, head 0, dim 1, token 0 = row 3, column 1.
        assert_eq!(kt.data()[2 * 6 + 3], 13);
        let m = g.key_mask();
        assert_eq!(m.len(), 2 * 2 * 9);
        assert!(m[..18].iter().all(|&v| v == 0.0));
        assert_eq!(m[18..21], [0.0, 0.0, f64::NEG_INFINITY]);
    }
}
