//! Reference embeddings (`reference.json` next to the model in
//! `../shared/data/minilm`): sentences, their token ids and the embeddings
//! sentence-transformers computed in f32. Used by the tests and by
//! `spindle infer --reference` to check the secure forward end to end.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// One reference sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceSentence {
    /// The text.
    pub sentence: String,
    /// Its token ids, with [CLS] and [SEP].
    pub token_ids: Vec<u32>,
    /// The expected embedding [H], L2-normalised.
    pub embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct RawReference {
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

/// Reads a reference file.
///
/// Errors: [`Error::Io`] if it cannot be read; [`Error::Format`] for bad
/// JSON or lists of different lengths.
pub fn read_reference(path: &Path) -> Result<Vec<ReferenceSentence>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let raw: RawReference = serde_json::from_str(&text).map_err(|e| Error::Format {
        what: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let n = raw.sentences.len();
    if raw.token_ids.len() != n || raw.embeddings.len() != n {
        return Err(Error::Format {
            what: path.display().to_string(),
            detail: format!(
                "{n} sentences, {} id lists, {} embeddings",
                raw.token_ids.len(),
                raw.embeddings.len()
            ),
        });
    }
    Ok(raw
        .sentences
        .into_iter()
        .zip(raw.token_ids)
        .zip(raw.embeddings)
        .map(|((sentence, token_ids), embedding)| ReferenceSentence {
            sentence,
            token_ids,
            embedding,
        })
        .collect())
}
