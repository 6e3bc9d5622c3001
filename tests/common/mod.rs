//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;

use spindle::prg::{Prg, Seed};
use spindle::ring::{Ring, RingTensor, Shape};
use spindle::runner::{run_parties_blocking, RunOptions, RunReport};
use spindle::Session;
use spindle_transport::LinkStats;

pub mod axes;

/// The party counts every protocol test covers.
pub const PARTY_COUNTS: [usize; 3] = [2, 3, 4];

/// A fresh random seed, printed so a failure can be reproduced.
pub fn fresh_seed(label: &str) -> Seed {
    let s = Seed::random().expect("OS randomness");
    eprintln!("{label}: seed {:02x?}", s.0);
    s
}

/// Uniform ring tensor.
pub fn uniform<R: Ring>(prg: &mut Prg, shape: impl Into<Shape>) -> RingTensor<R> {
    prg.tensor(shape)
}

/// Uniform reals in [-bound, bound).
pub fn reals(prg: &mut Prg, n: usize, bound: f64) -> Vec<f64> {
    let mut raw = vec![0u64; n];
    prg.fill(&mut raw);
    raw.iter()
        .map(|&v| ((v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound)
        .collect()
}

/// The device the protocol tests run on, from `SPINDLE_TEST_DEVICE`:
/// `cpu` (the default), `audit` (the transfer-audit device: every
/// protocol's device code path, on the CPU; `.ci/run` runs the protocol
/// tests this way too) or `cuda` (CUDA device 0: needs the `cuda` feature
/// and a GPU; `scripts/gpu-check.sh`).
#[allow(dead_code)]
pub fn test_device() -> spindle::backend::Device {
    match std::env::var("SPINDLE_TEST_DEVICE") {
        Err(_) => spindle::backend::Device::default(),
        Ok(name) => axes::TestDevice::parse(&name).backend(),
    }
}

/// Options of an N-party test run: dealer preprocessing, on [`test_device`].
#[allow(dead_code)]
pub fn options(n: usize) -> RunOptions {
    let mut opts = RunOptions::new(n);
    opts.backend = test_device();
    opts
}

/// Runs `program` as each of `n` parties (dealer preprocessing, on
/// [`test_device`]).
pub fn run<T, F, Fut>(n: usize, program: F) -> RunReport<T>
where
    F: Fn(Arc<Session>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = spindle::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    run_parties_blocking(&options(n), program).expect("run succeeds")
}

/// Runs `op` and returns its result with the traffic it caused at this party.
pub async fn measured<T>(
    sess: &Session,
    op: impl Future<Output = spindle::Result<T>>,
) -> spindle::Result<(T, LinkStats)> {
    let before = sess.link_stats();
    let out = op.await?;
    Ok((out, sess.link_stats() - before))
}

/// Asserts one party's traffic for an op: `rounds` rounds and `elems` ring
/// elements sent to each of the other N-1 parties.
pub fn assert_cost<R: Ring>(
    stats: &LinkStats,
    n: usize,
    rounds: u64,
    elems_per_peer: usize,
    what: &str,
) {
    assert_eq!(stats.rounds, rounds, "{what}: rounds");
    assert_eq!(
        stats.bytes_sent,
        ((n - 1) * elems_per_peer * R::BYTES) as u64,
        "{what}: bytes sent"
    );
    if rounds > 0 {
        assert_eq!(
            stats.messages_sent,
            (n as u64 - 1) * rounds,
            "{what}: one message per peer per round"
        );
    }
}

/// The all-MiniLM-L6-v2 folder: `$SPINDLE_MINILM_DIR`, else
/// `../shared/data/minilm` from the project root; `None` (with a message
/// saying why the test skips) where it is absent.
pub fn minilm_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("SPINDLE_MINILM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/minilm")
        });
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: no all-MiniLM-L6-v2 at {} (set SPINDLE_MINILM_DIR)",
            dir.display()
        );
        None
    }
}

/// The reference sentences of the MiniLM folder.
pub fn minilm_reference(
    dir: &std::path::Path,
) -> Vec<spindle::models::bert::reference::ReferenceSentence> {
    spindle::models::bert::reference::read_reference(&dir.join("reference.json"))
        .expect("reference.json")
}

/// A test fixture directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

/// A fresh empty directory under the system's temporary folder, removed
/// when the guard drops.
pub fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("spindle-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a small random BERT (Hugging Face layout, f32 safetensors) to a
/// fresh directory, removed when the returned guard drops: H = 16, 2
/// heads, 1 layer, intermediate 32, vocab 40, 16 positions. `skip` leaves
/// that tensor out; `bad_shape` gives it one extra row.
pub fn tiny_bert_dir(tag: &str, skip: Option<&str>, bad_shape: Option<&str>) -> TempDir {
    let dir = std::env::temp_dir().join(format!("spindle-tiny-bert-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type":"bert","hidden_size":16,"num_hidden_layers":1,"num_attention_heads":2,
            "intermediate_size":32,"vocab_size":40,"max_position_embeddings":16,
            "type_vocab_size":2,"layer_norm_eps":1e-12,"hidden_act":"gelu"}"#,
    )
    .unwrap();
    let (h, i) = (16usize, 32usize);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![40, h]),
        ("embeddings.position_embeddings.weight".into(), vec![16, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    let p = "encoder.layer.0";
    for (name, o, inp) in [
        ("attention.self.query", h, h),
        ("attention.self.key", h, h),
        ("attention.self.value", h, h),
        ("attention.output.dense", h, h),
        ("intermediate.dense", i, h),
        ("output.dense", h, i),
    ] {
        shapes.push((format!("{p}.{name}.weight"), vec![o, inp]));
        shapes.push((format!("{p}.{name}.bias"), vec![o]));
    }
    for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
        shapes.push((format!("{p}.{name}.weight"), vec![h]));
        shapes.push((format!("{p}.{name}.bias"), vec![h]));
    }
    let mut prg = Prg::new(&Seed([7; 16]), 0);
    let mut blobs = Vec::new();
    for (name, mut dims) in shapes {
        if skip == Some(name.as_str()) {
            continue;
        }
        if bad_shape == Some(name.as_str()) {
            dims[0] += 1;
        }
        let n: usize = dims.iter().product();
        let scale = if name.contains("LayerNorm.weight") {
            0.0
        } else {
            0.4
        };
        let vals: Vec<f32> = reals(&mut prg, n, scale)
            .iter()
            .map(|v| {
                if name.contains("LayerNorm.weight") {
                    1.0 + *v as f32
                } else {
                    *v as f32
                }
            })
            .collect();
        blobs.push((name, dims, bytemuck_f32(&vals)));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = blobs
        .iter()
        .map(|(n, d, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, d.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.join("model.safetensors")).unwrap();
    TempDir(dir)
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
