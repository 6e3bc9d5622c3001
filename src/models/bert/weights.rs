//! The weights of a BERT encoder, read from a Hugging Face
//! `model.safetensors` (f32, f16 or bf16; converted to f32), with every
//! tensor checked against the config's shapes.
//!
//! Names follow `transformers.BertModel` (`embeddings.word_embeddings.weight`,
//! `encoder.layer.N.attention.self.query.weight`, ...), with or without a
//! `bert.` prefix. Linear weights are stored transposed to [in, out] so that
//! a layer is x @ w + b.

use std::path::Path;

use safetensors::SafeTensors;

use super::config::BertConfig;
use crate::error::{Error, Result};
use crate::io::tensors::to_f32;

/// A row-major f32 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// rows * cols values, row-major.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i` (panics past the end: callers index rows they created).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The transpose.
    pub fn transposed(&self) -> Matrix {
        let mut data = vec![0.0; self.data.len()];
        for i in 0..self.rows {
            for j in 0..self.cols {
                data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        Matrix {
            rows: self.cols,
            cols: self.rows,
            data,
        }
    }
}

/// A dense layer x @ w + b: w [in, out], b [out].
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Weight, [in, out] (the transpose of PyTorch's [out, in]).
    pub w: Matrix,
    /// Bias, [out].
    pub b: Vec<f32>,
}

/// LayerNorm parameters, each [H].
#[derive(Clone, Debug, PartialEq)]
pub struct Norm {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
}

/// One encoder layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Query projection [H, H].
    pub query: Dense,
    /// Key projection [H, H].
    pub key: Dense,
    /// Value projection [H, H].
    pub value: Dense,
    /// Attention output projection [H, H].
    pub attn_out: Dense,
    /// LayerNorm after the attention residual.
    pub attn_norm: Norm,
    /// Feed-forward up-projection [H, I].
    pub intermediate: Dense,
    /// Feed-forward down-projection [I, H].
    pub output: Dense,
    /// LayerNorm after the feed-forward residual.
    pub output_norm: Norm,
}

/// All weights of the encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct BertWeights {
    /// The configuration the weights were checked against.
    pub config: BertConfig,
    /// Word embeddings [V, H].
    pub word: Matrix,
    /// Position embeddings [max_positions, H].
    pub position: Matrix,
    /// Token-type embeddings [type_vocab_size, H].
    pub token_type: Matrix,
    /// Embedding LayerNorm.
    pub embedding_norm: Norm,
    /// Encoder layers, first to last.
    pub layers: Vec<LayerWeights>,
}

struct Reader<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
    what: String,
}

impl Reader<'_> {
    /// The tensor `name` as f32, checked to have shape `dims`.
    fn get(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>> {
        let full = format!("{}{name}", self.prefix);
        let view = self.st.tensor(&full).map_err(|_| Error::Format {
            what: self.what.clone(),
            detail: format!("missing tensor {full}"),
        })?;
        if view.shape() != dims {
            return Err(Error::Format {
                what: self.what.clone(),
                detail: format!(
                    "tensor {full} has shape {:?}, the config implies {dims:?}",
                    view.shape()
                ),
            });
        }
        to_f32(&full, view.dtype(), view.data())
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        Ok(Matrix {
            rows,
            cols,
            data: self.get(name, &[rows, cols])?,
        })
    }

    /// A PyTorch Linear (weight [out, in], bias [out]) as x @ w + b.
    fn dense(&self, name: &str, inputs: usize, outputs: usize) -> Result<Dense> {
        let w = self.matrix(&format!("{name}.weight"), outputs, inputs)?;
        Ok(Dense {
            w: w.transposed(),
            b: self.get(&format!("{name}.bias"), &[outputs])?,
        })
    }

    fn norm(&self, name: &str, h: usize) -> Result<Norm> {
        Ok(Norm {
            gamma: self.get(&format!("{name}.weight"), &[h])?,
            beta: self.get(&format!("{name}.bias"), &[h])?,
        })
    }
}

impl BertWeights {
    /// Parses safetensors bytes against `config`.
    ///
    /// Errors: [`Error::Format`] for bytes that are not safetensors, a
    /// missing tensor or a shape that disagrees with the config;
    /// [`Error::Unsupported`] for a dtype other than f32, f16, bf16.
    pub fn from_safetensors(config: &BertConfig, bytes: &[u8], what: &str) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Format {
            what: what.into(),
            detail: format!("not a safetensors file: {e}"),
        })?;
        let prefix = if st.names().iter().any(|n| n.starts_with("bert.")) {
            "bert."
        } else {
            ""
        };
        let r = Reader {
            st,
            prefix,
            what: what.into(),
        };
        let c = config;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let layers = (0..c.num_layers)
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                Ok(LayerWeights {
                    query: r.dense(&format!("{p}.attention.self.query"), h, h)?,
                    key: r.dense(&format!("{p}.attention.self.key"), h, h)?,
                    value: r.dense(&format!("{p}.attention.self.value"), h, h)?,
                    attn_out: r.dense(&format!("{p}.attention.output.dense"), h, h)?,
                    attn_norm: r.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                    intermediate: r.dense(&format!("{p}.intermediate.dense"), h, i)?,
                    output: r.dense(&format!("{p}.output.dense"), i, h)?,
                    output_norm: r.norm(&format!("{p}.output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BertWeights {
            config: config.clone(),
            word: r.matrix("embeddings.word_embeddings.weight", c.vocab_size, h)?,
            position: r.matrix("embeddings.position_embeddings.weight", c.max_positions, h)?,
            token_type: r.matrix(
                "embeddings.token_type_embeddings.weight",
                c.type_vocab_size,
                h,
            )?,
            embedding_norm: r.norm("embeddings.LayerNorm", h)?,
            layers,
        })
    }

    /// Loads `dir/config.json` and `dir/model.safetensors`.
    ///
    /// Errors: [`Error::Io`] for a missing or unreadable file, else as
    /// [`BertConfig::from_json`] and [`Self::from_safetensors`].
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config = BertConfig::from_dir(dir)?;
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Self::from_safetensors(&config, &bytes, &path.display().to_string())
    }

    /// The same model cut to its first `layers` encoder layers (for fast
    /// tests of the secure forward against the plaintext twin).
    ///
    /// Errors: [`Error::Format`] if the model has fewer layers.
    pub fn truncated(&self, layers: usize) -> Result<Self> {
        if layers > self.layers.len() {
            return Err(Error::Format {
                what: "BertWeights::truncated".into(),
                detail: format!("{layers} layers asked, the model has {}", self.layers.len()),
            });
        }
        let mut w = self.clone();
        w.layers.truncate(layers);
        w.config.num_layers = layers;
        Ok(w)
    }

    /// Number of parameters (all tables, weights, biases, norms).
    pub fn num_parameters(&self) -> usize {
        let dense = |d: &Dense| d.w.data.len() + d.b.len();
        let norm = |n: &Norm| n.gamma.len() + n.beta.len();
        self.word.data.len()
            + self.position.data.len()
            + self.token_type.data.len()
            + norm(&self.embedding_norm)
            + self
                .layers
                .iter()
                .map(|l| {
                    dense(&l.query)
                        + dense(&l.key)
                        + dense(&l.value)
                        + dense(&l.attn_out)
                        + norm(&l.attn_norm)
                        + dense(&l.intermediate)
                        + dense(&l.output)
                        + norm(&l.output_norm)
                })
                .sum::<usize>()
    }
}
