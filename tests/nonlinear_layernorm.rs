//! LayerNorm over the last axis over the test axes (N = 2, 3, 4, every
//! test device; `tests/common/axes.rs`): rows with the variances
//! real models produce (0.004 for MiniLM's embedding LayerNorm up to 100),
//! shared gamma and beta, error against f64, rounds and bytes.

mod common;
mod nonlinear_helpers;

use std::sync::Arc;

use common::axes::{cases, Truncs};
use common::fresh_seed;
use nonlinear_helpers::*;
use spindle::prg::Prg;
use spindle::protocol::nonlinear;
use spindle::ring::FixedPoint;
use spindle::runner::{run_parties_blocking, RunOptions};
use spindle::session::LinkCost;

fn reference(x: &[f64], h: usize, eps: f64, g: &[f64], b: &[f64]) -> Vec<f64> {
    x.chunks(h)
        .flat_map(|r| {
            let m = r.iter().sum::<f64>() / h as f64;
            let v = r.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / h as f64;
            r.iter()
                .enumerate()
                .map(move |(i, a)| (a - m) / (v + eps).sqrt() * g[i] + b[i])
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layer_norm_small_and_large_variances() {
    let fp = FixedPoint::default_for::<u64>();
    let (rows, h, eps) = (6, 384, 1e-12);
    // The default link (lan) prefers rounds at this size: the final
    // product folded into the inverse square root; a thinner link (100
    // Mbit/s) prefers bytes: the product after it (the exponent still by
    // comparisons there).
    let thin = LinkCost {
        bits_per_sec: 1e8,
        latency: std::time::Duration::from_micros(100),
    };
    let links = [(LinkCost::LAN, 12, 174_544), (thin, 14, 137_824)];
    for (case, (link, rounds, bytes)) in cases(Truncs::Dealer)
        .into_iter()
        .flat_map(|c| links.map(|l| (c.clone(), l)))
    {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("layernorm"), 0);
        // Row r has standard deviation sd[r] around mean mu[r].
        let sd = [0.063, 0.1, 1.0, 3.0, 10.0, 0.5];
        let mu = [0.5, -3.0, 0.0, 20.0, -100.0, 7.0];
        let z = uniform_reals(&mut prg, rows * h, -1.7, 1.7);
        let x: Vec<f64> = (0..rows * h)
            .map(|i| mu[i / h] + sd[i / h] * z[i])
            .collect();
        let x = Arc::new(quantize::<u64>(fp, &x));
        let g = Arc::new(quantize::<u64>(fp, &uniform_reals(&mut prg, h, -2.0, 2.0)));
        let b = Arc::new(quantize::<u64>(fp, &uniform_reals(&mut prg, h, -1.0, 1.0)));
        let want = reference(&x, h, eps, &g, &b);
        let (xa, ga, ba) = (x.clone(), g.clone(), b.clone());
        let mut opts = case.options();
        opts.session.link = link;
        let report = run_parties_blocking(&opts, move |sess| {
            let (x, g, b) = (xa.clone(), ga.clone(), ba.clone());
            async move {
                let me = sess.party();
                let xs = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [rows, h])?;
                let gs = sess.share_input_f64::<u64>(1, (me == 1).then_some(&g[..]), [h])?;
                let bs = sess.share_input_f64::<u64>(1, (me == 1).then_some(&b[..]), [h])?;
                let before = sess.link_stats();
                let y = nonlinear::layer_norm(&sess, &xs, eps, Some(&gs), Some(&bs)).await?;
                let cost = sess.link_stats() - before;
                Ok((sess.reveal_f64(&y).await?, cost))
            }
        })
        .unwrap();
        for p in report.parties {
            let (got, cost) = p.output;
            let per_row = row_errors(&got, &want, h);
            let err = per_row.iter().cloned().fold(0.0, f64::max);
            eprintln!(
                "layer_norm N={n}: per-row errors (sd {sd:?}): {:?}",
                sci(&per_row)
            );
            eprintln!(
                "layer_norm N={n}: max error {err:.2e}, rounds {}, bytes to each peer {}",
                cost.rounds,
                cost.bytes_sent / (n as u64 - 1)
            );
            assert!(err <= 5e-5, "layer_norm error {err}");
            // 1 mean, 2 squares, 9 inverse square root (with the product
            // folded in), else 2 more for the product. The exponent's 22
            // comparisons of 6 rows (each padded to 64) cost 3,176 bytes
            // more than the A2B and suffix OR would; the fold opens 2
            // elements more per element and 18 fewer.
            assert_eq!(cost.rounds, rounds);
            assert_eq!(cost.bytes_sent, bytes * (n as u64 - 1), "bytes");
        }
    }
}

#[test]
fn layer_norm_rejects_bad_parameters() {
    let report = run_parties_blocking(&RunOptions::new(2), |sess| async move {
        let x =
            sess.share_input_f64::<u64>(0, (sess.party() == 0).then_some(&[1.0; 8][..]), [2, 4])?;
        let g =
            sess.share_input_f64::<u64>(0, (sess.party() == 0).then_some(&[1.0; 3][..]), [3])?;
        let bad_gamma = nonlinear::layer_norm(&sess, &x, 1e-5, Some(&g), None)
            .await
            .is_err();
        let bad_eps = nonlinear::layer_norm(&sess, &x, 0.0, None, None)
            .await
            .is_err();
        Ok((bad_gamma, bad_eps))
    })
    .unwrap();
    for p in report.parties {
        assert_eq!(p.output, (true, true));
    }
}
