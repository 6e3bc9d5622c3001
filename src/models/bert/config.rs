//! The Hugging Face `config.json` of a BERT-family encoder, reduced to what
//! the secure and plaintext forwards need, with every unsupported value
//! rejected up front rather than silently computed wrong.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The activation of the feed-forward block (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenAct {
    /// `gelu`: the exact erf form x Phi(x) (BERT, MiniLM).
    GeluErf,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
}

/// Encoder hyper-parameters (Devlin et al., "BERT", NAACL 2019; field names
/// of `transformers.BertConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Width H of the hidden states.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_layers: usize,
    /// Attention heads; H must be a multiple of it.
    pub num_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Vocabulary size V (rows of the word-embedding table).
    pub vocab_size: usize,
    /// Rows of the position-embedding table (the longest input).
    pub max_positions: usize,
    /// Rows of the token-type table.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Feed-forward activation.
    pub hidden_act: HiddenAct,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    position_embedding_type: Option<String>,
    is_decoder: Option<bool>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Parses `config.json` text.
    ///
    /// Errors: [`Error::Format`] for JSON that does not parse or lacks a
    /// field; [`Error::Unsupported`] for a model type other than BERT-like
    /// encoders, relative position embeddings, a decoder, an activation
    /// other than GeLU, or a hidden size not divisible by the head count.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| Error::Format {
            what: "config.json".into(),
            detail: e.to_string(),
        })?;
        if let Some(t) = &raw.model_type {
            if !matches!(t.as_str(), "bert" | "roberta" | "xlm-roberta") {
                return Err(Error::Unsupported(format!(
                    "config.json model_type {t:?}: only BERT-family encoders are supported"
                )));
            }
        }
        if let Some(p) = &raw.position_embedding_type {
            if p != "absolute" {
                return Err(Error::Unsupported(format!(
                    "config.json position_embedding_type {p:?}: only \"absolute\" is supported"
                )));
            }
        }
        if raw.is_decoder == Some(true) {
            return Err(Error::Unsupported(
                "config.json is_decoder = true: only encoders are supported".into(),
            ));
        }
        let hidden_act = match raw.hidden_act.as_str() {
            "gelu" => HiddenAct::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => HiddenAct::GeluTanh,
            other => {
                return Err(Error::Unsupported(format!(
                    "config.json hidden_act {other:?}: only gelu, gelu_new and gelu_pytorch_tanh"
                )))
            }
        };
        let positive = [
            ("hidden_size", raw.hidden_size),
            ("num_hidden_layers", raw.num_hidden_layers),
            ("num_attention_heads", raw.num_attention_heads),
            ("intermediate_size", raw.intermediate_size),
            ("vocab_size", raw.vocab_size),
            ("max_position_embeddings", raw.max_position_embeddings),
            ("type_vocab_size", raw.type_vocab_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Format {
                what: "config.json".into(),
                detail: format!("{name} must be positive"),
            });
        }
        if !raw.hidden_size.is_multiple_of(raw.num_attention_heads) {
            return Err(Error::Unsupported(format!(
                "config.json hidden_size {} is not a multiple of num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            )));
        }
        if !(raw.layer_norm_eps > 0.0 && raw.layer_norm_eps.is_finite()) {
            return Err(Error::Format {
                what: "config.json".into(),
                detail: format!("layer_norm_eps {} must be positive", raw.layer_norm_eps),
            });
        }
        Ok(BertConfig {
            hidden_size: raw.hidden_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            vocab_size: raw.vocab_size,
            max_positions: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps,
            hidden_act,
        })
    }

    /// Reads and parses `dir/config.json`.
    ///
    /// Errors: [`Error::Io`] if it cannot be read, else as [`Self::from_json`].
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Self::from_json(&text)
    }

    /// Width of one attention head (H / heads).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"{"model_type":"bert","hidden_size":8,"num_hidden_layers":1,
        "num_attention_heads":2,"intermediate_size":16,"vocab_size":10,
        "max_position_embeddings":4,"hidden_act":"gelu"}"#;

    #[test]
    fn parses_and_defaults() {
        let c = BertConfig::from_json(MINI).unwrap();
        assert_eq!(c.head_dim(), 4);
        assert_eq!(c.type_vocab_size, 2);
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!(c.hidden_act, HiddenAct::GeluErf);
    }

    #[test]
    fn rejects_unsupported_values() {
        let relu = MINI.replace("\"gelu\"", "\"relu\"");
        assert!(matches!(
            BertConfig::from_json(&relu),
            Err(Error::Unsupported(_))
        ));
        let heads = MINI.replace("\"num_attention_heads\":2", "\"num_attention_heads\":3");
        assert!(matches!(
            BertConfig::from_json(&heads),
            Err(Error::Unsupported(_))
        ));
        let gpt = MINI.replace("\"bert\"", "\"gpt2\"");
        assert!(matches!(
            BertConfig::from_json(&gpt),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            BertConfig::from_json("{\"hidden_size\": 8}"),
            Err(Error::Format { .. })
        ));
    }
}
