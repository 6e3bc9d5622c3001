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
use spindle_transport::LinkStats;

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

/// Row-wise protocols in row lanes ([`spindle::pipeline::RowLanes`]):
/// softmax (with a mask) and LayerNorm keep their documented error against
/// f64 in 3 lanes, max-pool and ReLU with its derivative stay exact and
/// equal to one piece; the bytes stay within 1% of one piece (only the
/// 64-element packing of each lane's binary parts differs) and every lane
/// sends its own message tags. N = 2, 3, dealer preprocessing (the lanes'
/// requests must match the dry run's plan).
#[test]
fn row_wise_protocols_in_lanes_keep_their_accuracy_and_bytes() {
    use spindle::protocol::pool::{maxpool2d, Pool2d};
    let fp = FixedPoint::default_for::<u64>();
    let mut prg = Prg::new(&fresh_seed("pipeline rows"), 0);
    let near = |a: &LinkStats, b: &LinkStats, what: &str| {
        let (x, y) = (a.bytes_sent as f64, b.bytes_sent as f64);
        assert!(
            (x - y).abs() <= 0.01 * y,
            "{what}: {x} bytes in lanes, {y} in one piece"
        );
        assert!(a.rounds > b.rounds, "{what}: lanes send their own tags");
    };
    for n in [2, 3] {
        // softmax over rows of 16, rows 12 x 16 (lanes of 64 rows: a
        // whole word of each packed comparison), the last two entries of
        // each row masked.
        let xs = quantize::<u64>(fp, &uniform_reals(&mut prg, 12 * 16 * 16, -8.0, 8.0));
        let mask: Vec<f64> = (0..xs.len())
            .map(|i| if i % 16 >= 14 { f64::NEG_INFINITY } else { 0.0 })
            .collect();
        let m = std::sync::Arc::new(mask);
        let soft = move |s: std::sync::Arc<spindle::Session>, x: Shared<u64>| {
            let m = m.clone();
            async move { nonlinear::softmax(&s, &x, 2, Some(&m)).await }
        };
        let lanes = run_unary::<u64, _, _>(n, piped(3), xs.clone(), vec![12, 16, 16], soft.clone());
        let whole = run_unary::<u64, _, _>(n, piped(1), xs.clone(), vec![12, 16, 16], soft);
        for ((got, cost), (_, cost1)) in lanes.iter().zip(&whole) {
            let mut worst: f64 = 0.0;
            for (row, g) in xs.chunks(16).zip(got.chunks(16)) {
                let mx = row[..14].iter().cloned().fold(f64::MIN, f64::max);
                let sum: f64 = row[..14].iter().map(|v| (v - mx).exp()).sum();
                for i in 0..16 {
                    let want = if i < 14 {
                        (row[i] - mx).exp() / sum
                    } else {
                        0.0
                    };
                    worst = worst.max((g[i] - want).abs());
                }
            }
            eprintln!("softmax in 3 row lanes N={n}: max error {worst:.2e}");
            assert!(worst <= 2e-5, "softmax error {worst}");
            near(cost, cost1, "softmax");
        }
        // LayerNorm over 192 rows of 64 (no gamma, beta).
        let xs = quantize::<u64>(fp, &uniform_reals(&mut prg, 192 * 64, -3.0, 3.0));
        let ln = |s: std::sync::Arc<spindle::Session>, x: Shared<u64>| async move {
            nonlinear::layer_norm(&s, &x, 1e-5, None, None).await
        };
        let lanes = run_unary::<u64, _, _>(n, piped(3), xs.clone(), vec![192, 64], ln);
        let whole = run_unary::<u64, _, _>(n, piped(1), xs.clone(), vec![192, 64], ln);
        for ((got, cost), (_, cost1)) in lanes.iter().zip(&whole) {
            let mut worst: f64 = 0.0;
            for (row, g) in xs.chunks(64).zip(got.chunks(64)) {
                let mean = row.iter().sum::<f64>() / 64.0;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 64.0;
                for (v, gv) in row.iter().zip(g) {
                    worst = worst.max((gv - (v - mean) / (var + 1e-5).sqrt()).abs());
                }
            }
            eprintln!("layer_norm in 3 row lanes N={n}: max error {worst:.2e}");
            assert!(worst <= 3.5e-5, "layer_norm error {worst}");
            near(cost, cost1, "layer_norm");
        }
        // Max-pool 2x2 over [2, 6, 8, 8] (192 windows) and ReLU with its
        // derivative: exact.
        let xs = quantize::<u64>(fp, &uniform_reals(&mut prg, 2 * 6 * 8 * 8, -50.0, 50.0));
        let pool = |s: std::sync::Arc<spindle::Session>, x: Shared<u64>| async move {
            Ok(maxpool2d(&s, &x, &Pool2d::square(2)).await?.0)
        };
        let lanes = run_unary::<u64, _, _>(n, piped(3), xs.clone(), vec![2, 6, 8, 8], pool);
        let whole = run_unary::<u64, _, _>(n, piped(1), xs.clone(), vec![2, 6, 8, 8], pool);
        assert_eq!(lanes[0].0, whole[0].0, "max-pool in lanes and in one piece");
        for (c, h) in (0..12).flat_map(|c| (0..4).map(move |h| (c, h))) {
            for w in 0..4 {
                let at = |dy: usize, dx: usize| xs[c * 64 + (2 * h + dy) * 8 + 2 * w + dx];
                let want = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                assert_eq!(lanes[0].0[c * 16 + h * 4 + w], want);
            }
        }
        near(&lanes[0].1, &whole[0].1, "max-pool");
        let drelu = |s: std::sync::Arc<spindle::Session>, x: Shared<u64>| async move {
            let (y, d) = compare::relu_with_derivative(&s, &x).await?;
            // Both in one output: the derivative is a ring 0/1, one ulp
            // of the fixed point.
            y.add(&s, &d)
        };
        let lanes = run_unary::<u64, _, _>(n, piped(4), xs.clone(), vec![768], drelu);
        let ulp = 2f64.powi(-(fp.frac_bits() as i32));
        for (x, got) in xs.iter().zip(&lanes[0].0) {
            let want = x.max(0.0) + if *x >= 0.0 { ulp } else { 0.0 };
            assert_eq!(*got, want, "relu and its derivative at {x}");
        }
    }
}

/// The compute stage (`SessionConfig::compute_workers`): a large product's
/// local GEMMs run on its worker, with the same bits and bytes as inline
/// (N = 3, a [64, 128] x [128, 64] product: 524,288 multiply-adds), and
/// its ops are on the parties' compute track.
#[test]
fn large_products_run_on_the_compute_stage_with_the_same_results() {
    use spindle::protocol::fixed;
    let run = |workers: usize| {
        let mut opts = RunOptions::new(3);
        opts.dealer_seed = Some(spindle::prg::Seed([5; 16]));
        opts.session.compute_workers = workers;
        opts.trace = true;
        run_parties_blocking(&opts, |sess| async move {
            let p = sess.party() as u64;
            let share = |rows: usize, cols: usize, salt: u64| {
                let data = (0..(rows * cols) as u64)
                    .map(|i| (i * 2_654_435_761 + salt * 97 + p * 1_000_003) % (1 << 22))
                    .collect();
                Shared::from_share(RingTensor::<u64>::new([rows, cols], data).unwrap())
            };
            let (x, w) = (share(64, 128, 1), share(128, 64, 2));
            let z = fixed::matmul(&sess, &x, &w).await?;
            let jobs = sess.compute_queue().map_or(0, |q| q.jobs_run());
            Ok((sess.reveal(&z).await?, jobs))
        })
        .unwrap()
    };
    let (inline, staged) = (run(0), run(1));
    for (a, b) in inline.parties.iter().zip(&staged.parties) {
        assert_eq!(a.output.0, b.output.0, "party {}: same product", a.party);
        assert_eq!(a.output.1, 0, "no compute stage");
        assert!(
            b.output.1 >= 1,
            "party {}: the GEMMs ran on the stage",
            b.party
        );
        assert_eq!(a.online.bytes_sent, b.online.bytes_sent);
    }
    let json = staged.trace.expect("a trace").to_chrome_json();
    let matmuls = json["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] == 0 && e["name"] == "matmul")
        .count();
    assert!(
        matmuls >= 3,
        "every party's GEMMs on its compute track: {matmuls}"
    );
}
