//! Memory the machine has, what a run will need, and a guard against the
//! kernel's out-of-memory killer: a run that cannot fit is refused up front
//! with its estimate and the flags that shrink it, and one that outgrows
//! the machine anyway stops with a message instead of being killed
//! without a word.
//!
//! The estimates are models of this version's peak resident memory, with
//! constants measured with `/usr/bin/time -f %M` on `spindle infer` (all-
//! MiniLM-L6-v2, 1 to 4 sentences of 4 to 57 tokens, 1 to 3 layers, 2 to 4
//! parties) and `spindle train` (LeNet, batch 32 and 128, 2 and 4 parties),
//! all parties in one process, Z_2^64, CPU backend; they are within about
//! 25% of those measurements (docs/transport.md, "Resources"). They bound
//! in-process runs, where every party and the dealer share one machine,
//! until streaming preprocessing (issue 11) makes memory independent of the
//! input size.

use crate::error::{Error, Result};
use crate::models::bert::BertConfig;
use crate::nn::{LayerSpec, ModelSpec};

/// Set to `off` to skip the up-front check ([`check_fits`]), e.g. when the
/// estimate is known to be pessimistic for a run; the watchdog stays on.
pub const SKIP_ENV: &str = "SPINDLE_MEMORY_CHECK";

const GIB: f64 = (1u64 << 30) as f64;

/// Bytes the kernel reports as available (`MemAvailable` of
/// `/proc/meminfo`), or `None` where that file does not exist or does not
/// parse (the checks then pass).
pub fn available_memory() -> Option<u64> {
    meminfo("MemAvailable:")
}

fn meminfo(key: &str) -> Option<u64> {
    kib_field("/proc/meminfo", key)
}

/// The `key: N kB` line of a /proc file, in bytes.
fn kib_field(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Refuses a run whose estimated peak memory `estimate` (bytes) exceeds
/// what the machine has available. `what` describes the run, `hint` names
/// the flags that make it smaller.
///
/// Errors: [`Error::Resources`] with the estimate, the available memory and
/// the hint; never when [`SKIP_ENV`] is `off` or the available memory is
/// unknown.
pub fn check_fits(estimate: u64, what: &str, hint: &str) -> Result<()> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "off") {
        return Ok(());
    }
    check_against(estimate, available_memory(), what, hint)
}

/// [`check_fits`] against a given amount of available memory.
///
/// Errors: [`Error::Resources`] when `estimate > available`.
pub fn check_against(estimate: u64, available: Option<u64>, what: &str, hint: &str) -> Result<()> {
    match available {
        Some(avail) if estimate > avail => Err(Error::Resources(format!(
            "{what} needs about {:.1} GiB of memory, and this machine has {:.1} GiB available: \
             {hint} (or set {SKIP_ENV}=off to try anyway)",
            estimate as f64 / GIB,
            avail as f64 / GIB
        ))),
        _ => Ok(()),
    }
}

/// Estimated peak memory (bytes) of secure BERT inference with all
/// `parties` in one process: `sequences` sentences of `seq_len` tokens
/// through the embeddings and `layers` encoder layers of `config` (count a
/// sentence once per repeat of a benchmark: each repeat's material is
/// planned ahead).
///
/// Model: every party holds its share, mask and opened difference of the
/// weights it uses (28 bytes per parameter); the material and activations
/// of one token in one layer take 1,760 bytes per element of its hidden
/// states (4 x hidden), feed-forward (intermediate) and attention scores
/// (heads x seq_len), mostly at party 0 (10% more per further party).
pub fn infer_estimate(
    config: &BertConfig,
    parties: usize,
    sequences: usize,
    seq_len: usize,
    layers: usize,
) -> u64 {
    let (h, i) = (config.hidden_size as f64, config.intermediate_size as f64);
    let embed = (config.vocab_size + config.max_positions + config.type_vocab_size + 2) as f64 * h;
    let per_layer = 4.0 * (h * h + h) + 2.0 * h * i + i + h + 4.0 * h;
    let params = embed + layers as f64 * per_layer;
    let token_layer = 1760.0 * (4.0 * h + i + (config.num_heads * seq_len) as f64);
    let tokens = (sequences * seq_len * layers.max(1)) as f64;
    let act = tokens * token_layer * (1.0 + 0.1 * parties.saturating_sub(1) as f64);
    (0.2 * GIB + parties as f64 * 28.0 * params + act) as u64
}

/// Elements of one sample's activations through `spec`: every layer's
/// output plus the lowered (im2col) input of each convolution.
///
/// Errors: [`Error::ShapeMismatch`] for a spec whose layers do not chain.
pub fn activation_elements(spec: &ModelSpec) -> Result<usize> {
    let shapes = spec.shapes(1)?;
    let mut total: usize = shapes.iter().map(|s| s.numel()).sum();
    for (l, out) in spec.layers.iter().zip(&shapes[1..]) {
        if let LayerSpec::Conv2d {
            in_channels,
            kernel,
            ..
        } = l
        {
            let d = out.dims();
            total += in_channels * kernel.0 * kernel.1 * d[2] * d[3];
        }
    }
    Ok(total)
}

/// Estimated peak memory (bytes) of secure training of `spec` with all
/// `parties` in one process and batches of `batch`.
///
/// Model: every party keeps 80 bytes (10 words) per activation element of
/// each sample in flight ([`activation_elements`]: shares, Beaver and
/// comparison material, gradients) and 64 bytes per parameter (shares of
/// weights, momentum, gradients and masks).
///
/// Errors: as [`activation_elements`].
pub fn train_estimate(spec: &ModelSpec, parties: usize, batch: usize) -> Result<u64> {
    let params: usize = spec.param_shapes().iter().map(|s| s.numel()).sum();
    let per_party = (batch * activation_elements(spec)?) as f64 * 80.0 + params as f64 * 64.0;
    Ok((0.15 * GIB + parties as f64 * per_party) as u64)
}

/// [`start_watchdog`] with the floor at 3% of the machine's memory
/// (`MemTotal`), and at least 384 MiB.
pub fn start_default_watchdog() {
    let total = meminfo("MemTotal:").unwrap_or(0);
    start_watchdog((total / 33).max(384 << 20));
}

/// A thread that watches the machine's available memory and, when it
/// falls below `floor` bytes, prints why and ends the process with exit
/// code 3, before the kernel's out-of-memory killer would end it without a
/// word. For the command-line tool; libraries return errors instead.
pub fn start_watchdog(floor: u64) {
    if available_memory().is_none() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("spindle-memory-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let Some(avail) = available_memory() else {
                return;
            };
            if avail < floor {
                let rss = meminfo_self_rss().unwrap_or(0);
                eprintln!(
                    "error: out of memory: the machine has {:.2} GiB left and this process uses \
                     {:.1} GiB; stopping before the kernel kills it. Make the run smaller (fewer \
                     --parties, sentences, --seq-len, --layers or a smaller --batch), or run the \
                     parties as separate processes on several machines",
                    avail as f64 / GIB,
                    rss as f64 / GIB
                );
                std::process::exit(3);
            }
        });
}

/// Resident memory of this process (`VmRSS` of `/proc/self/status`).
fn meminfo_self_rss() -> Option<u64> {
    kib_field("/proc/self/status", "VmRSS:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_larger_than_the_machine_is_refused_with_its_estimate_and_the_flags() {
        let e = check_against(30 << 30, Some(20 << 30), "inference", "use fewer --parties")
            .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Resources(_)));
        assert!(
            msg.contains("30.0 GiB") && msg.contains("20.0 GiB"),
            "{msg}"
        );
        assert!(msg.contains("--parties") && msg.contains(SKIP_ENV), "{msg}");
        assert!(check_against(10 << 30, Some(20 << 30), "x", "y").is_ok());
        assert!(check_against(u64::MAX, None, "x", "y").is_ok());
    }

    #[test]
    fn estimates_grow_with_parties_tokens_layers_and_batch() {
        let lenet = crate::models::by_name("lenet").unwrap();
        let a = train_estimate(&lenet, 3, 128).unwrap();
        assert!(train_estimate(&lenet, 100, 128).unwrap() > 20 * a);
        assert!(train_estimate(&lenet, 3, 32).unwrap() < a);
        // LeNet, 3 parties, batch 128 (the README's run) fits a small machine.
        assert!(a < 4 << 30, "{a}");
        // 100 parties of MiniLM do not fit 24 GiB; one sentence with 3 does.
        let cfg = BertConfig {
            hidden_size: 384,
            num_layers: 6,
            num_heads: 12,
            intermediate_size: 1536,
            vocab_size: 30522,
            max_positions: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: crate::models::bert::HiddenAct::GeluErf,
        };
        assert!(infer_estimate(&cfg, 100, 1, 3, 1) > 24 << 30);
        assert!(infer_estimate(&cfg, 3, 1, 12, 6) < 4 << 30);
        assert!(infer_estimate(&cfg, 3, 12, 57, 6) > 24 << 30);
    }

    #[test]
    fn the_machine_reports_its_available_memory() {
        if std::path::Path::new("/proc/meminfo").exists() {
            let m = available_memory().expect("MemAvailable parses");
            assert!(m > 0);
        }
    }
}
