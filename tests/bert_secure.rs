//! The secure BERT forward against its plaintext twin and the reference
//! embeddings of all-MiniLM-L6-v2. The suite runs a cut of the model (the
//! full model's check is `scripts/check-minilm.sh`); skips, saying why,
//! where the model folder is absent.

mod common;

use std::sync::Arc;

use spindle::infer::{infer, InferOptions};
use spindle::io::tokenizer::TokenBatch;
use spindle::models::bert::plain::{cosine, hidden_states, sentence_embedding, DomainTrace};
use spindle::models::bert::BertWeights;

#[test]
fn one_layer_cut_matches_the_twin_for_two_and_three_parties() {
    let Some(dir) = common::minilm_dir() else {
        return;
    };
    let reference = common::minilm_reference(&dir);
    let w = Arc::new(BertWeights::from_dir(&dir).unwrap().truncated(1).unwrap());
    // Two sentences of different lengths: padding and the key mask matter.
    let seqs = vec![
        reference[2].token_ids.clone(),
        reference[0].token_ids.clone(),
    ];
    let batch = Arc::new(TokenBatch::new(seqs, None).unwrap());
    for n in [2, 3] {
        let rep = infer(w.clone(), batch.clone(), &InferOptions::new(n)).unwrap();
        for (i, e) in rep.embeddings.iter().enumerate() {
            let twin = sentence_embedding(&w, batch.real(i), &mut DomainTrace::default()).unwrap();
            let c = cosine(e, &twin);
            let max_err = e
                .iter()
                .zip(&twin)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            println!(
                "N = {n}, sentence {i}: cosine {c:.7}, max abs error {max_err:.2e}, latency {:?}",
                rep.latency()
            );
            assert!(c >= 0.9999, "cosine {c}");
        }
        let _ = hidden_states;
    }
}

#[test]
fn tiny_random_model_matches_the_twin_for_two_three_and_four_parties() {
    let dir = common::tiny_bert_dir("secure", None, None);
    let w = Arc::new(BertWeights::from_dir(&dir).unwrap());
    let batch =
        Arc::new(TokenBatch::new(vec![vec![1, 5, 39, 7, 2], vec![1, 3, 2]], Some(6)).unwrap());
    let mut rounds = Vec::new();
    for n in common::PARTY_COUNTS {
        let rep = infer(w.clone(), batch.clone(), &InferOptions::new(n)).unwrap();
        assert_eq!(rep.embeddings.len(), 2);
        for (i, e) in rep.embeddings.iter().enumerate() {
            let twin = sentence_embedding(&w, batch.real(i), &mut DomainTrace::default()).unwrap();
            let c = cosine(e, &twin);
            assert!(c >= 0.9999, "N = {n}, sentence {i}: cosine {c}");
            let max_err = e
                .iter()
                .zip(&twin)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max_err < 1e-3, "N = {n}, sentence {i}: max error {max_err}");
        }
        let r = rep.inference.iter().map(|c| c.link.rounds).max().unwrap();
        rounds.push(r);
        // Every party sends to each peer the same amount (one message per
        // peer per round), so bytes grow with N - 1.
        let sent: Vec<u64> = rep.inference.iter().map(|c| c.link.bytes_sent).collect();
        println!("N = {n}: {r} rounds, bytes sent per party {sent:?}");
    }
    // The round count depends only on the model's shape, not on N.
    assert!(rounds.iter().all(|&r| r == rounds[0]), "{rounds:?}");
}

#[test]
fn bad_models_and_inputs_are_clear_errors() {
    use spindle::Error;
    let missing = common::tiny_bert_dir(
        "missing",
        Some("encoder.layer.0.attention.self.key.weight"),
        None,
    );
    let e = BertWeights::from_dir(&missing).unwrap_err();
    assert!(
        matches!(e, Error::Format { .. })
            && e.to_string()
                .contains("missing tensor encoder.layer.0.attention.self.key.weight"),
        "{e}"
    );
    let shape = common::tiny_bert_dir("shape", None, Some("embeddings.position_embeddings.weight"));
    let e = BertWeights::from_dir(&shape).unwrap_err();
    assert!(e.to_string().contains("has shape [17, 16]"), "{e}");
    let e = BertWeights::from_dir(std::path::Path::new("/nonexistent/model")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");

    let w = Arc::new(BertWeights::from_dir(&common::tiny_bert_dir("inputs", None, None)).unwrap());
    let outside = Arc::new(TokenBatch::new(vec![vec![1, 40, 2]], None).unwrap());
    let e = infer(w.clone(), outside, &InferOptions::new(2)).unwrap_err();
    assert!(
        e.to_string().contains("token id 40 outside the vocabulary"),
        "{e}"
    );
    let long = Arc::new(TokenBatch::new(vec![vec![1; 17]], None).unwrap());
    let e = infer(w, long, &InferOptions::new(2)).unwrap_err();
    assert!(
        e.to_string().contains("exceeds the model's 16 positions"),
        "{e}"
    );
    assert!(TokenBatch::new(vec![vec![1, 2, 3]], Some(2)).is_err());
    assert!(TokenBatch::new(vec![vec![]], None).is_err());
}
