//! Softmax (and the opt-in 2Quad) over the test axes (N = 2, 3, 4, every
//! test device; `tests/common/axes.rs`): error against f64 on random rows,
//! masked entries, fully masked rows, ties; rounds and bytes.

mod common;
mod nonlinear_helpers;

use common::axes::{cases, Truncs};
use common::fresh_seed;
use nonlinear_helpers::*;
use spindle::prg::Prg;
use spindle::protocol::nonlinear;
use spindle::ring::{FixedPoint, Ring};
use spindle::SessionConfig;

/// f64 softmax of `x + mask` along the last axis of [rows, n] (masked:
/// mask <= MASKED -> output 0; fully masked rows -> 0).
fn reference(x: &[f64], mask: Option<&[f64]>, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (r, row) in x.chunks(n).enumerate() {
        let keep = |j: usize| mask.is_none_or(|m| m[r * n + j] > nonlinear::MASKED);
        let add = |j: usize| mask.map_or(0.0, |m| m[r * n + j]);
        let mx = (0..n)
            .filter(|&j| keep(j))
            .map(|j| row[j] + add(j))
            .fold(f64::MIN, f64::max);
        let s: f64 = (0..n)
            .filter(|&j| keep(j))
            .map(|j| (row[j] + add(j) - mx).exp())
            .sum();
        for j in (0..n).filter(|&j| keep(j)) {
            out[r * n + j] = (row[j] + add(j) - mx).exp() / s;
        }
    }
    out
}

struct Case {
    rows: usize,
    n: usize,
    spread: f64,
    masked: bool,
    tol: f64,
    rounds: u64,
    bytes: Option<u64>,
}

fn check<R: Ring>(c: Case) {
    let fp = FixedPoint::default_for::<R>();
    for case in cases(Truncs::Dealer) {
        let parties = case.n;
        let mut prg = Prg::new(&fresh_seed("softmax"), 0);
        let len = c.rows * c.n;
        let mut xs = uniform_reals(&mut prg, len, -c.spread / 2.0, c.spread / 2.0);
        // Row 0: all equal (uniform output); row 1: a tie for the max.
        xs[..c.n].iter_mut().for_each(|v| *v = 1.5);
        xs[c.n] = c.spread / 2.0;
        xs[c.n + 1] = c.spread / 2.0;
        let xs = quantize::<R>(fp, &xs);
        let mask: Option<Vec<f64>> = c.masked.then(|| {
            let u = uniform_reals(&mut prg, len, 0.0, 1.0);
            (0..len)
                .map(|i| match i / c.n {
                    2 => f64::NEG_INFINITY, // fully masked row
                    _ if u[i] < 0.25 => -1e9,
                    _ if u[i] < 0.5 => quantize::<R>(fp, &[-2.5])[0],
                    _ => 0.0,
                })
                .collect()
        });
        let want = reference(&xs, mask.as_deref(), c.n);
        let m2 = mask.clone();
        let out = run_unary_with::<R, _, _>(
            case.options(),
            SessionConfig::default(),
            xs.clone(),
            vec![c.rows, c.n],
            move |s, x| {
                let m = m2.clone();
                async move { nonlinear::softmax(&s, &x, 1, m.as_deref()).await }
            },
        );
        for (got, cost) in &out {
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0, f64::max);
            eprintln!(
                "softmax Z_2^{} N={parties} {}x{} masked={}: max error {err:.2e}, rounds {}, bytes/peer {}",
                R::BITS,
                c.rows,
                c.n,
                c.masked,
                cost.rounds,
                cost.bytes_sent / (parties as u64 - 1)
            );
            assert!(err <= c.tol, "softmax error {err} above {}", c.tol);
            if c.masked {
                for (i, g) in got.iter().enumerate() {
                    if want[i] == 0.0 {
                        assert!(g.abs() <= 2.0 / fp.scale(), "masked entry {i} = {g}");
                    }
                }
            }
            assert_eq!(cost.rounds, c.rounds, "rounds");
            if let Some(b) = c.bytes {
                assert_eq!(cost.bytes_sent, b * (parties as u64 - 1), "bytes");
            }
        }
    }
}

#[test]
fn softmax_rows_of_128_z64() {
    check::<u64>(Case {
        rows: 128,
        n: 128,
        spread: 40.0,
        masked: false,
        tol: 3e-5,
        rounds: 23,
        bytes: Some(2_995_456),
    });
}

#[test]
fn softmax_with_mask_z64() {
    check::<u64>(Case {
        rows: 8,
        n: 16,
        spread: 50.0,
        masked: true,
        tol: 5e-6,
        rounds: 19,
        bytes: Some(121_024),
    });
}

#[test]
fn softmax_z32() {
    check::<u32>(Case {
        rows: 8,
        n: 16,
        spread: 12.0,
        masked: true,
        tol: 0.01,
        rounds: 18,
        bytes: Some(59_392),
    });
}

#[test]
fn softmax_one_level_max_takes_20_rounds() {
    let fp = FixedPoint::default_for::<u64>();
    let mut prg = Prg::new(&fresh_seed("softmax-g128"), 0);
    let (rows, n) = (4, 128);
    let xs = quantize::<u64>(fp, &uniform_reals(&mut prg, rows * n, -20.0, 20.0));
    let want = reference(&xs, None, n);
    for case in cases(Truncs::Dealer) {
        let _ = case.n;
        let out = run_unary_with::<u64, _, _>(
            case.options(),
            SessionConfig::default(),
            xs.clone(),
            vec![rows, n],
            |s, x| async move {
                let opts = nonlinear::SoftmaxOptions {
                    max_group: Some(128),
                };
                nonlinear::softmax_with(&s, &x, 1, None, opts).await
            },
        );
        for (got, cost) in &out {
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0, f64::max);
            assert!(err <= 3e-5, "error {err}");
            assert_eq!(cost.rounds, 20);
        }
    }
}

#[test]
fn softmax_along_axis_0() {
    let fp = FixedPoint::default_for::<u64>();
    let mut prg = Prg::new(&fresh_seed("softmax-axis0"), 0);
    let (n, cols) = (16, 3);
    let xs = quantize::<u64>(fp, &uniform_reals(&mut prg, n * cols, -10.0, 10.0));
    // Reference on the transpose.
    let xt: Vec<f64> = (0..cols)
        .flat_map(|c| (0..n).map(move |r| (r, c)))
        .map(|(r, c)| xs[r * cols + c])
        .collect();
    let wt = reference(&xt, None, n);
    let out = run_unary::<u64, _, _>(
        2,
        SessionConfig::default(),
        xs.clone(),
        vec![n, cols],
        |s, x| async move { nonlinear::softmax(&s, &x, 0, None).await },
    );
    for r in 0..n {
        for c in 0..cols {
            assert!((out[0].0[r * cols + c] - wt[c * n + r]).abs() <= 3e-6);
        }
    }
}

#[test]
fn softmax_2quad_matches_its_f64_definition() {
    let fp = FixedPoint::default_for::<u64>();
    for case in cases(Truncs::Dealer) {
        let parties = case.n;
        let mut prg = Prg::new(&fresh_seed("2quad"), 0);
        let (rows, n) = (16, 64);
        let xs = quantize::<u64>(fp, &uniform_reals(&mut prg, rows * n, -12.0, 12.0));
        let want: Vec<f64> = xs
            .chunks(n)
            .flat_map(|r| {
                let s: f64 = r.iter().map(|v| (v + 5.0).powi(2)).sum();
                r.iter()
                    .map(move |v| (v + 5.0).powi(2) / s)
                    .collect::<Vec<_>>()
            })
            .collect();
        let out = run_unary_with::<u64, _, _>(
            case.options(),
            SessionConfig::default(),
            xs.clone(),
            vec![rows, n],
            |s, x| async move { nonlinear::softmax_2quad(&s, &x, 1, None).await },
        );
        for (got, cost) in &out {
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0, f64::max);
            eprintln!(
                "2quad N={parties}: error {err:.2e}, rounds {}, bytes/peer {}",
                cost.rounds,
                cost.bytes_sent / (parties as u64 - 1)
            );
            assert!(err <= 1e-5, "2quad error {err}");
            // 2 square, 9 reciprocal of the row sums (exponent by
            // comparisons), 1 product.
            assert_eq!(cost.rounds, 12);
        }
    }
}

#[test]
fn softmax_rejects_bad_axis_and_mask() {
    let r = spindle::runner::run_parties_blocking(
        &spindle::runner::RunOptions::new(2),
        |s| async move {
            let x =
                s.share_input_f64::<u64>(0, (s.party() == 0).then_some(&[0.0; 6][..]), [2, 3])?;
            let bad_axis = nonlinear::softmax(&s, &x, 2, None).await.is_err();
            let bad_mask = nonlinear::softmax(&s, &x, 1, Some(&[0.0; 5]))
                .await
                .is_err();
            Ok((bad_axis, bad_mask))
        },
    )
    .unwrap();
    for p in r.parties {
        assert_eq!(p.output, (true, true));
    }
}
