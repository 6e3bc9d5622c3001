//! The plaintext BERT twin against sentence-transformers' reference
//! embeddings of all-MiniLM-L6-v2 (`../shared/data/minilm/reference.json`).
//! Skips, saying why, where the model folder is absent.

mod common;

use spindle::io::tokenizer::Tokenizer;
use spindle::models::bert::plain::{cosine, sentence_embedding, DomainTrace};
use spindle::models::bert::BertWeights;

#[test]
fn twin_reproduces_the_reference_embeddings() {
    let Some(dir) = common::minilm_dir() else {
        return;
    };
    let reference = common::minilm_reference(&dir);
    let w = BertWeights::from_dir(&dir).unwrap();
    // 22,713,728 in the model card counts the pooler and the position-id buffer.
    assert_eq!(w.num_parameters(), 22_565_376);
    let tk = Tokenizer::from_dir(&dir).unwrap();
    let mut trace = DomainTrace::default();
    for r in &reference {
        assert_eq!(
            tk.encode(&r.sentence).unwrap(),
            r.token_ids,
            "{}",
            r.sentence
        );
        let e = sentence_embedding(&w, &r.token_ids, &mut trace).unwrap();
        let c = cosine(&e, &r.embedding);
        assert!(c >= 0.9999, "cosine {c} for {:?}", r.sentence);
    }
    println!("{trace:?}");
}
