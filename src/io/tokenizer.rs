//! Tokenizer glue: a Hugging Face `tokenizer.json` through the `tokenizers`
//! crate, and [`TokenBatch`], the padded batch the BERT forwards take.

use std::path::Path;

use crate::error::{Error, Result};

/// Token ids of several sequences, padded with id 0 to a common length.
///
/// The lengths are public in the secure forward (as in CrypTen and Spin):
/// the attention mask and the mean pooling depend on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// Padded id sequences, each `seq_len` long.
    pub ids: Vec<Vec<u32>>,
    /// Number of real tokens of each sequence (>= 1).
    pub lengths: Vec<usize>,
    /// Common padded length.
    pub seq_len: usize,
}

impl TokenBatch {
    /// Pads `seqs` with id 0 to `seq_len` (default: the longest).
    ///
    /// Errors: [`Error::Format`] for no sequence, an empty sequence, or one
    /// longer than `seq_len`.
    pub fn new(seqs: Vec<Vec<u32>>, seq_len: Option<usize>) -> Result<Self> {
        let bad = |detail: String| Error::Format {
            what: "token batch".into(),
            detail,
        };
        if seqs.is_empty() {
            return Err(bad("no sequence".into()));
        }
        if seqs.iter().any(|s| s.is_empty()) {
            return Err(bad("an empty sequence".into()));
        }
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let seq_len = seq_len.unwrap_or(longest);
        if longest > seq_len {
            return Err(bad(format!(
                "a sequence of {longest} tokens does not fit the length {seq_len}"
            )));
        }
        let lengths = seqs.iter().map(Vec::len).collect();
        let ids = seqs
            .into_iter()
            .map(|mut s| {
                s.resize(seq_len, 0);
                s
            })
            .collect();
        Ok(TokenBatch {
            ids,
            lengths,
            seq_len,
        })
    }

    /// Number of sequences.
    pub fn batch(&self) -> usize {
        self.ids.len()
    }

    /// The real (unpadded) ids of sequence `i`.
    pub fn real(&self, i: usize) -> &[u32] {
        &self.ids[i][..self.lengths[i]]
    }

    /// The sequences `range` as a batch of their own, padded to `seq_len`
    /// (default: their longest; a micro-batch of the inter-batch pipeline).
    ///
    /// Errors: as [`TokenBatch::new`] (an empty or out-of-bounds range is
    /// "no sequence").
    pub fn select(&self, range: std::ops::Range<usize>, seq_len: Option<usize>) -> Result<Self> {
        let seqs = range
            .filter(|&i| i < self.batch())
            .map(|i| self.real(i).to_vec())
            .collect();
        TokenBatch::new(seqs, seq_len)
    }
}

/// A WordPiece/BPE tokenizer from `tokenizer.json`, adding the model's
/// special tokens ([CLS] ... [SEP] for BERT).
pub struct Tokenizer(tokenizers::Tokenizer);

impl Tokenizer {
    /// Loads `dir/tokenizer.json`.
    ///
    /// Errors: [`Error::Io`] for a missing file, [`Error::Format`] for one
    /// the tokenizers crate rejects.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let tk = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::Format {
            what: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(Tokenizer(tk))
    }

    /// Token ids of `text` with special tokens, without padding or
    /// truncation.
    ///
    /// Errors: [`Error::Format`] if the tokenizer fails.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut tk = self.0.clone();
        tk.with_padding(None);
        tk.with_truncation(None).map_err(|e| Error::Format {
            what: "tokenizer".into(),
            detail: e.to_string(),
        })?;
        let enc = tk.encode(text, true).map_err(|e| Error::Format {
            what: "tokenizer".into(),
            detail: format!("encoding {text:?}: {e}"),
        })?;
        Ok(enc.get_ids().to_vec())
    }
}
