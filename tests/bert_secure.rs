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
