//! The inner-layer pipeline ([`spindle::pipeline::Lanes`]): elementwise
//! protocols cut into lanes give the same accuracy and bytes as one piece,
//! L times the message tags, and material that matches the dealer's plan
//! (the default dealer preprocessing plans by a dry run, so a lane order
//! that differed between the plan and the online phase would fail with a
//! preprocessing mismatch).

mod common;
mod nonlinear_helpers;

use common::fresh_seed;
use nonlinear_helpers::*;
use spindle::pipeline::{InnerPipeline, Lanes};
use spindle::prg::Prg;
use spindle::protocol::{compare, nonlinear};
use spindle::ring::{FixedPoint, RingTensor};
use spindle::runner::{run_parties_blocking, RunOptions};
use spindle::{Error, SessionConfig, Shared};

fn piped(lanes: usize) -> SessionConfig {
    SessionConfig {
        pipeline: InnerPipeline {
            lanes,
            min_elems: 1,
        },
        ..Default::default()
    }
}

/// exp in 3 lanes over the test axes (N = 2, 3, 4, every test device):
/// exp's documented error, 9 elements per element to each peer as in one
/// piece, 3 x 8 message tags.
#[test]
fn exp_in_lanes_keeps_its_accuracy_and_bytes() {
    let fp = FixedPoint::default_for::<u64>();
    for case in common::axes::cases(common::axes::Truncs::Dealer) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("pipeline exp"), 0);
        let mut xs = uniform_reals(&mut prg, 3000, -64.0, 12.0);
        xs.extend([-64.0, 12.0, 0.0, -1.0, 1.0]);
        let xs = quantize::<u64>(fp, &xs);
        let len = xs.len();
        let out = run_unary_with::<u64, _, _>(
            case.options(),
            piped(3),
            xs.clone(),
            vec![len],
            |s, x| async move { nonlinear::exp(&s, &x).await },
        );
        for (got, cost) in &out {
            let neg: Vec<usize> = (0..len).filter(|&i| xs[i] <= 0.0).collect();
            let pos: Vec<usize> = (0..len).filter(|&i| xs[i] > 0.0).collect();
            let pick = |idx: &[usize], v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
            let (e_abs, at) = max_err(&pick(&neg, &xs), &pick(&neg, got), f64::exp, |_| false);
            let (e_rel, at_r) = max_err(&pick(&pos, &xs), &pick(&pos, got), f64::exp, |_| true);
            eprintln!("exp in 3 lanes N={n}: abs {e_abs:.2e} at {at}, rel {e_rel:.2e} at {at_r}");
            assert!(e_abs <= 3e-6, "absolute error {e_abs} at {at}");
            assert!(e_rel <= 3e-6, "relative error {e_rel} at {at_r}");
            assert_traffic::<u64>(cost, n, 3 * 8, 9 * len, "exp in 3 lanes");
        }
    }
}

/// ReLU is exact: in 4 lanes it equals the plaintext ReLU element for
/// element, and its packed binary rounds cost the same bytes as in one
/// piece (lanes are cut at multiples of 64 elements).
#[test]
fn relu_in_lanes_is_exact_and_costs_the_same_bytes() {
    let fp = FixedPoint::default_for::<u64>();
    let mut prg = Prg::new(&fresh_seed("pipeline relu"), 0);
    let xs = quantize::<u64>(fp, &uniform_reals(&mut prg, 1000, -100.0, 100.0));
    let relu = |s: std::sync::Arc<spindle::Session>, x: Shared<u64>| async move {
        compare::relu(&s, &x).await
    };
    let whole = run_unary::<u64, _, _>(2, piped(1), xs.clone(), vec![10, 100], relu);
    let lanes = run_unary::<u64, _, _>(2, piped(4), xs.clone(), vec![10, 100], relu);
    for ((got, cost), (_, cost1)) in lanes.iter().zip(&whole) {
        for (x, y) in xs.iter().zip(got) {
            assert_eq!(*y, x.max(0.0), "relu({x})");
        }
        assert_eq!(
            cost.bytes_sent, cost1.bytes_sent,
            "bytes in 4 lanes and in one piece"
        );
        assert_eq!(cost.rounds, 4 * cost1.rounds, "message tags");
    }
}

/// A protocol that does not keep its chunk's shape is a clear error on
/// every party, not a panic or a hang.
#[test]
fn a_lane_that_changes_the_shape_is_an_error() {
    let mut opts = RunOptions::new(2);
    opts.session = piped(2);
    let err = run_parties_blocking(&opts, |sess| async move {
        let x = Shared::from_share(RingTensor::<u64>::zeros([256]));
        let lanes = Lanes::new(&sess, &x)?;
        assert_eq!(lanes.count(), 2);
        lanes
            .run(&sess, &x, |_, _| async {
                Ok(Shared::from_share(RingTensor::<u64>::zeros([3])))
            })
            .await
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { .. }) && err.to_string().contains("lane 0"),
        "{err}"
    );
}

/// The timeline (`--trace`): valid Chrome trace-event JSON with, for every
/// party, a compute track, a protocol track per micro-batch fork, a send
/// track per peer and a receive track per peer and fork, the spans of each track not
/// overlapping; recording changes no output.
#[test]
fn the_trace_has_every_stage_and_non_overlapping_spans() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    let dir = common::tiny_bert_dir("trace", None, None);
    let w = Arc::new(spindle::models::bert::BertWeights::from_dir(&dir).unwrap());
    let seqs = vec![
        vec![1, 5, 39, 7, 2],
        vec![1, 3, 2],
        vec![1, 9, 9, 2],
        vec![1, 2],
    ];
    let batch = Arc::new(spindle::io::tokenizer::TokenBatch::new(seqs, None).unwrap());
    let run = |trace: bool| {
        let mut opts = spindle::infer::InferOptions::new(3);
        opts.run.dealer_seed = Some(spindle::prg::Seed([4; 16]));
        opts.run.preprocessing = spindle::runner::Preprocessing::OnlineDealer;
        opts.run.trace = trace;
        opts.pipeline = Some(spindle::pipeline::InterBatch {
            micro_batch: 1,
            in_flight: 2,
        });
        spindle::infer::infer(w.clone(), batch.clone(), &opts).unwrap()
    };
    let (plain, traced) = (run(false), run(true));
    assert!(plain.trace.is_none());
    assert_eq!(
        plain.embeddings, traced.embeddings,
        "tracing changes nothing"
    );
    let trace = traced.trace.expect("a trace");
    let text = serde_json::to_string(&trace.to_chrome_json()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    // Track names by (party, tid), and the spans of each.
    let mut names = BTreeMap::new();
    let mut spans: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for e in events {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        match e["ph"].as_str().unwrap() {
            "M" if e["name"] == "thread_name" => {
                names.insert(key, e["args"]["name"].as_str().unwrap().to_string());
            }
            "X" => spans.entry(key).or_default().push((
                e["ts"].as_f64().unwrap(),
                e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap(),
            )),
            _ => {}
        }
    }
    for party in 0..3u64 {
        let tracks: Vec<&String> = names
            .iter()
            .filter(|((p, _), _)| *p == party)
            .map(|(_, n)| n)
            .collect();
        let has = |prefix: &str| tracks.iter().filter(|n| n.starts_with(prefix)).count();
        assert_eq!(has("compute"), 1, "party {party}: {tracks:?}");
        assert_eq!(
            has("protocol (fork"),
            4,
            "party {party}: one per micro-batch"
        );
        assert_eq!(has("send to party"), 2, "party {party}: {tracks:?}");
        // Per peer: the root's (the model load) and one per fork.
        assert_eq!(
            has("receive from party"),
            2 * 5,
            "party {party}: {tracks:?}"
        );
    }
    for (key, list) in &mut spans {
        list.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for w in list.windows(2) {
            // A nanosecond of slack for the microsecond floats.
            assert!(
                w[1].0 >= w[0].1 - 1e-3,
                "{key:?}: {:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
    }
    assert_eq!(trace.summary().len(), 3);
}
