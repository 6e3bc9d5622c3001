//! Exponential on fixed-point shares for N = 2, 3, 4 in Z_2^64 and Z_2^32:
//! error against f64 over the documented domains and at their edges, rounds
//! and bytes (tests/nonlinear_helpers has the harness).

mod common;
mod nonlinear_helpers;

use common::fresh_seed;
use nonlinear_helpers::*;
use spindle::prg::Prg;
use spindle::protocol::nonlinear;
use spindle::ring::{FixedPoint, Ring};
use spindle::SessionConfig;

struct Case {
    lo: f64,
    hi: f64,
    /// Max absolute error for x <= 0 and relative error for x > 0.
    abs: f64,
    rel: f64,
    rounds: u64,
    elems: usize,
}

fn check_exp<R: Ring>(nonpositive: bool, c: Case) {
    let fp = FixedPoint::default_for::<R>();
    for case in common::axes::cases(common::axes::Truncs::Dealer) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("exp"), 0);
        let mut xs = uniform_reals(&mut prg, 3000, c.lo, c.hi);
        // Edges: both ends, zero, the smallest magnitudes, the steep part.
        let ulp = 1.0 / fp.scale();
        xs.extend([c.lo, c.hi, 0.0, ulp, -ulp, -1.0, 1.0, -20.0, c.lo + 0.5]);
        xs.retain(|&x| x >= c.lo && x <= c.hi);
        let xs = quantize::<R>(fp, &xs);
        let len = xs.len();
        let out = run_unary_with::<R, _, _>(
            case.options(),
            SessionConfig::default(),
            xs.clone(),
            vec![len],
            move |s, x| async move {
                if nonpositive {
                    nonlinear::exp_nonpositive(&s, &x).await
                } else {
                    nonlinear::exp(&s, &x).await
                }
            },
        );
        for (got, cost) in &out {
            let (ea, at_a) = max_err(&xs, got, f64::exp, |_| false);
            let neg: Vec<usize> = (0..len).filter(|&i| xs[i] <= 0.0).collect();
            let pos: Vec<usize> = (0..len).filter(|&i| xs[i] > 0.0).collect();
            let pick = |idx: &[usize], v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
            let (e_abs, at) = max_err(&pick(&neg, &xs), &pick(&neg, got), f64::exp, |_| false);
            let (e_rel, at_r) = max_err(&pick(&pos, &xs), &pick(&pos, got), f64::exp, |_| true);
            eprintln!(
                "exp{} Z_2^{} N={n}: abs err {e_abs:.2e} at {at}, rel err {e_rel:.2e} at {at_r} (overall abs {ea:.2e} at {at_a})",
                if nonpositive { "_nonpositive" } else { "" },
                R::BITS
            );
            assert!(
                e_abs <= c.abs,
                "absolute error {e_abs} at x = {at} above {}",
                c.abs
            );
            assert!(
                e_rel <= c.rel,
                "relative error {e_rel} at x = {at_r} above {}",
                c.rel
            );
            assert_traffic::<R>(cost, n, c.rounds, c.elems * len, "exp");
        }
    }
}

#[test]
fn exp_z64_over_its_domain() {
    check_exp::<u64>(
        false,
        Case {
            lo: -64.0,
            hi: 12.0,
            abs: 3e-6,
            rel: 3e-6,
            rounds: 8,
            elems: 9,
        },
    );
}

#[test]
fn exp_nonpositive_z64_over_its_domain() {
    check_exp::<u64>(
        true,
        Case {
            lo: -64.0,
            hi: 0.0,
            abs: 3e-6,
            rel: 0.0,
            rounds: 7,
            elems: 8,
        },
    );
}

#[test]
fn exp_z32_over_its_domain() {
    check_exp::<u32>(
        false,
        Case {
            lo: -64.0,
            hi: 8.0,
            abs: 0.02,
            rel: 0.03,
            rounds: 8,
            elems: 9,
        },
    );
}

#[test]
fn exp_nonpositive_z32_over_its_domain() {
    check_exp::<u32>(
        true,
        Case {
            lo: -64.0,
            hi: 0.0,
            abs: 0.01,
            rel: 0.0,
            rounds: 7,
            elems: 8,
        },
    );
}
