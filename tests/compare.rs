//! The comparison family for N = 2, 3, 4 in both rings: exact results
//! against plaintext, rounds and bytes as documented.

mod common;

use std::sync::Arc;

use common::axes::{over_axes, Case, RingTest, Truncs};
use common::*;
use spindle::backend::Conv2dParams;
use spindle::prg::Prg;
use spindle::protocol::bitwise::and_many;
use spindle::protocol::compare::{self, msb_cost};
use spindle::protocol::convert::{b2a, b2a_weighted, b2a_weighted_times};
use spindle::protocol::pool::{maxpool2d, maxpool2d_backward, maxpool2d_max, Pool2d};
use spindle::ring::{Ring, RingTensor};
use spindle::share::{words_for, BinShared, BitPlanes};

/// Ring values spread over the whole signed range, plus edge cases.
fn edge_values<R: Ring>(prg: &mut Prg, n: usize) -> RingTensor<R> {
    let mut v: Vec<R> = uniform::<R>(prg, [n]).into_data();
    let half = R::ONE.shl(R::BITS - 1);
    v.extend([
        R::ZERO,
        R::ONE,
        R::ONE.wrapping_neg(),
        half,
        half.wrapping_sub(R::ONE),
        half.wrapping_add(R::ONE),
    ]);
    // Small magnitudes, where fixed-point values live.
    v.extend(
        uniform::<R>(prg, [n])
            .data()
            .iter()
            .map(|x| x.ashr(R::BITS - 24)),
    );
    let len = v.len();
    RingTensor::new([len], v).unwrap()
}

/// MSB and DReLU exact on edge values, with their rounds and bytes.
struct MsbAndDrelu;

impl RingTest for MsbAndDrelu {
    fn run<R: Ring>(&self, case: &Case) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("msb"), 0);
        let x = Arc::new(edge_values::<R>(&mut prg, 300));
        let xa = x.clone();
        let report = case.run(move |sess| {
            let x = xa.clone();
            async move {
                let xs =
                    sess.share_input(0, (sess.party() == 0).then_some(&*x), x.shape().clone())?;
                let (m, cost) = measured(&sess, compare::msb(&sess, &xs)).await?;
                let (d, dcost) = measured(&sess, compare::drelu(&sess, &xs)).await?;
                Ok((
                    sess.reveal_bits(&m).await?,
                    cost,
                    sess.reveal(&d).await?,
                    dcost,
                ))
            }
        });
        let (rounds, bytes) = msb_cost(R::BITS, x.numel());
        for p in &report.parties {
            let (bits, cost, d, dcost) = &p.output;
            for (e, v) in x.data().iter().enumerate() {
                assert_eq!(bits.bit(0, e), v.msb(), "N={n} msb of {v:?}");
                assert_eq!(
                    d.data()[e],
                    R::from_u64(!v.msb() as u64),
                    "N={n} drelu of {v:?}"
                );
            }
            assert_eq!(cost.rounds, rounds, "msb rounds");
            assert_eq!(cost.bytes_sent, (n as u64 - 1) * bytes, "msb bytes");
            assert_eq!(dcost.rounds, rounds + 1, "drelu rounds");
            assert_eq!(
                dcost.bytes_sent,
                (n as u64 - 1) * (bytes + 8 * words_for(x.numel()) as u64)
            );
        }
    }
}

#[test]
fn msb_and_drelu_are_exact_over_the_axes() {
    over_axes(&MsbAndDrelu, Truncs::Dealer);
    // 16 groups of bits in Z_2^64: two levels of a radix-4 tree; 8 in
    // Z_2^32: one level of all 8.
    assert_eq!(msb_cost(64, 1).0, 3, "1 + log4(16) rounds");
    assert_eq!(msb_cost(32, 1).0, 2);
    assert_eq!(msb_cost(32, 64_000).1, 64_000 * 4 + 14 * 8 * 1000);
    // Opening c (8 bytes) and the planes the tree opens: 27 over 16 nodes
    // (G_0..G_2 of each group of 4, P_1..P_3 of the first, P_0..P_3 of
    // the others), then 6 over 4.
    assert_eq!(msb_cost(64, 64_000).1, 64_000 * 8 + (27 + 6) * 8 * 1000);
}

/// Values in [-2^(bits-1), 2^(bits-1)), with both ends and 0.
fn bounded_values<R: Ring>(prg: &mut Prg, n: usize, bits: u32) -> RingTensor<R> {
    let lim = R::ONE.shl(bits - 1);
    let mut v: Vec<R> = uniform::<R>(prg, [n])
        .data()
        .iter()
        .map(|x| x.ashr(R::BITS - bits))
        .collect();
    v.extend([
        R::ZERO,
        R::ONE,
        R::ONE.wrapping_neg(),
        lim.wrapping_neg(),
        lim.wrapping_sub(R::ONE),
    ]);
    let len = v.len();
    RingTensor::new([len], v).unwrap()
}

fn msb_bounded_is_exact<R: Ring>(bits: u32) {
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("msb-bounded"), 0);
        let x = Arc::new(bounded_values::<R>(&mut prg, 300, bits));
        let xa = x.clone();
        let report = run(n, move |sess| {
            let x = xa.clone();
            async move {
                let xs =
                    sess.share_input(0, (sess.party() == 0).then_some(&*x), x.shape().clone())?;
                let (m, cost) = measured(&sess, compare::msb_bounded(&sess, &xs, bits)).await?;
                Ok((sess.reveal_bits(&m).await?, cost))
            }
        });
        let (rounds, bytes) = compare::msb_bounded_cost(R::BITS, bits, x.numel());
        for p in &report.parties {
            let (out, cost) = &p.output;
            for (e, v) in x.data().iter().enumerate() {
                assert_eq!(out.bit(0, e), v.msb(), "N={n} bits={bits} msb of {v:?}");
            }
            assert_eq!(cost.rounds, rounds, "rounds");
            assert_eq!(cost.bytes_sent, (n as u64 - 1) * bytes, "bytes");
        }
    }
}

#[test]
fn bounded_msb_is_exact_on_its_domain() {
    msb_bounded_is_exact::<u64>(29);
    msb_bounded_is_exact::<u64>(40);
    msb_bounded_is_exact::<u32>(17);
    // Fewer rounds and under half the bytes of the full MSB in Z_2^64.
    // 28 positions below bit 28: 7 groups, one level of all 7.
    assert_eq!(compare::msb_bounded_cost(64, 29, 1).0, 2);
    assert_eq!(compare::msb_bounded_cost(64, 64, 1), msb_cost(64, 1));
    let (full, bounded) = (
        msb_cost(64, 64_000).1,
        compare::msb_bounded_cost(64, 29, 64_000).1,
    );
    assert!(2 * bounded < full, "{bounded} vs {full}");
}

#[test]
fn bounded_max_is_exact_for_bounded_spread() {
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("max-bounded"), 0);
        let bits = 29;
        // Rows of 40 around an offset, spread below 2^(bits-2).
        let x: Vec<u64> = (0..6 * 40)
            .map(|i| {
                let v = bounded_values::<u64>(&mut prg, 1, bits - 2).data()[0];
                v.wrapping_add(((i / 40) as u64) << 40)
            })
            .collect();
        let x = Arc::new(RingTensor::new([6, 40], x).unwrap());
        let xa = x.clone();
        let report = run(n, move |sess| {
            let x = xa.clone();
            async move {
                let xs = sess.share_input(0, (sess.party() == 0).then_some(&*x), [6, 40])?;
                let (m, cost) =
                    measured(&sess, compare::max_bounded(&sess, &xs, 1, 8, bits)).await?;
                Ok((sess.reveal(&m).await?, cost))
            }
        });
        for p in &report.parties {
            let (m, cost) = &p.output;
            for r in 0..6 {
                let want = x.data()[r * 40..(r + 1) * 40]
                    .iter()
                    .map(|v| *v as i64)
                    .max()
                    .unwrap() as u64;
                assert_eq!(m.data()[r], want, "N={n} row {r}");
            }
            assert_eq!(
                cost.rounds,
                compare::max_bounded_rounds(64, bits, 40, 8),
                "rounds"
            );
        }
    }
    // Two levels (groups of 16, then 8): (2 + 2 + 1) + (2 + 1 + 1): MSB,
    // AND tree over 15 (radix 4) then 7 bits (one level), injection; one
    // group of 128: 2 + 3 + 1.
    assert_eq!(compare::max_bounded_rounds(64, 29, 128, 16), 9);
    assert_eq!(compare::max_bounded_rounds(64, 29, 128, 128), 6);
}

/// ReLU and its derivative exact on edge values, with rounds and bytes.
struct ReluAndDerivative;

impl RingTest for ReluAndDerivative {
    fn run<R: Ring>(&self, case: &Case) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("relu"), 0);
        let x = Arc::new(edge_values::<R>(&mut prg, 200));
        let xa = x.clone();
        let report = case.run(move |sess| {
            let x = xa.clone();
            async move {
                let xs =
                    sess.share_input(1, (sess.party() == 1).then_some(&*x), x.shape().clone())?;
                let ((r, d), cost) =
                    measured(&sess, compare::relu_with_derivative(&sess, &xs)).await?;
                Ok((sess.reveal_many(&[&r, &d]).await?, cost))
            }
        });
        let (rounds, bytes) = msb_cost(R::BITS, x.numel());
        for p in &report.parties {
            let (out, cost) = &p.output;
            for (e, v) in x.data().iter().enumerate() {
                let expect = if v.msb() { R::ZERO } else { *v };
                assert_eq!(out[0].data()[e], expect, "N={n} relu({v:?})");
                assert_eq!(out[1].data()[e], R::from_u64(!v.msb() as u64));
            }
            assert_eq!(cost.rounds, rounds + 1);
            let inject = (x.numel() * R::BYTES + 8 * words_for(x.numel())) as u64;
            assert_eq!(cost.bytes_sent, (n as u64 - 1) * (bytes + inject));
        }
    }
}

#[test]
fn relu_and_derivative_are_exact_over_the_axes() {
    over_axes(&ReluAndDerivative, Truncs::Dealer);
}

#[test]
fn comparisons_and_selects() {
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("cmp"), 0);
        let fp_vals = |prg: &mut Prg| reals(prg, 64, 1000.0);
        let mut x = fp_vals(&mut prg);
        let mut y = fp_vals(&mut prg);
        x[0] = y[0]; // equal values
        x[1] = 0.0;
        y[2] = 0.0;
        let (x, y) = (Arc::new(x), Arc::new(y));
        let (xa, ya) = (x.clone(), y.clone());
        let report = run(n, move |sess| {
            let (x, y) = (xa.clone(), ya.clone());
            async move {
                let me = sess.party();
                let xs = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [64])?;
                let ys = sess.share_input_f64::<u64>(1, (me == 1).then_some(&y[..]), [64])?;
                let lt = compare::less_than(&sess, &xs, &ys).await?;
                let gt = compare::greater_than(&sess, &xs, &ys).await?;
                let pos = compare::greater_than_zero(&sess, &xs).await?;
                let (sel, c_sel) = measured(&sess, compare::select(&sess, &lt, &xs, &ys)).await?;
                let bit = compare::msb(&sess, &xs.sub(&sess, &ys)?).await?;
                let (selb, c_selb) =
                    measured(&sess, compare::select_bit(&sess, &bit, &xs, &ys)).await?;
                let opened = sess.reveal_many(&[&lt, &gt, &pos]).await?;
                Ok((
                    opened,
                    sess.reveal_f64(&sel).await?,
                    sess.reveal_f64(&selb).await?,
                    c_sel,
                    c_selb,
                ))
            }
        });
        for p in &report.parties {
            let (o, sel, selb, c_sel, c_selb) = &p.output;
            for i in 0..64 {
                assert_eq!(o[0].data()[i], (x[i] < y[i]) as u64, "lt {} {}", x[i], y[i]);
                assert_eq!(o[1].data()[i], (x[i] > y[i]) as u64, "gt {} {}", x[i], y[i]);
                assert_eq!(o[2].data()[i], (x[i] > 0.0) as u64, "gt0 {}", x[i]);
                let min = x[i].min(y[i]);
                assert!(
                    (sel[i] - min).abs() < 1e-5,
                    "select min {} vs {}",
                    sel[i],
                    min
                );
                assert!((selb[i] - min).abs() < 1e-5, "select_bit min");
            }
            assert_cost::<u64>(c_sel, n, 1, 128, "select is one Beaver product");
            assert_eq!(c_selb.rounds, 1);
            assert_eq!(c_selb.bytes_sent, (n as u64 - 1) * (64 * 8 + 8));
        }
    }
}

#[test]
fn binary_and_and_b2a() {
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("and"), 0);
        let a: Arc<RingTensor<u64>> = Arc::new(uniform(&mut prg, [100]));
        let b: Arc<RingTensor<u64>> = Arc::new(uniform(&mut prg, [100]));
        let (aa, ba) = (a.clone(), b.clone());
        let report = run(n, move |sess| {
            let (a, b) = (aa.clone(), ba.clone());
            async move {
                // Binary sharings from arithmetic ones are not needed here: share the
                // bits of public-to-owner values by XOR with zero shares.
                let ab = BitPlanes::from_ring(&*a);
                let bb = BitPlanes::from_ring(&*b);
                let xa = BinShared::from_public(&sess, &ab);
                let xb = BinShared::from_public(&sess, &bb);
                let (z, cost) = measured(&sess, and_many(&sess, &[(&xa, &xb), (&xb, &xb)])).await?;
                let low = xa.select_planes(0..1);
                let (arith, c_b2a) = measured(&sess, b2a::<u64>(&sess, &low)).await?;
                Ok((
                    sess.reveal_bits(&z[0]).await?,
                    sess.reveal_bits(&z[1]).await?,
                    sess.reveal(&arith).await?,
                    cost,
                    c_b2a,
                ))
            }
        });
        for p in &report.parties {
            let (z0, z1, arith, cost, c_b2a) = &p.output;
            let and: Vec<u64> = a.data().iter().zip(b.data()).map(|(x, y)| x & y).collect();
            assert_eq!(z0.to_ring::<u64>().data(), &and[..]);
            assert_eq!(&z1.to_ring::<u64>(), &*b);
            for i in 0..100 {
                assert_eq!(arith.data()[i], a.data()[i] & 1);
            }
            // Two ANDs of 64 planes x 2 words: e and f, 8 bytes per word.
            assert_eq!(
                (cost.rounds, cost.bytes_sent),
                (1, (n as u64 - 1) * 2 * 2 * 64 * 2 * 8)
            );
            assert_eq!(
                (c_b2a.rounds, c_b2a.bytes_sent),
                (1, (n as u64 - 1) * 2 * 8)
            );
        }
    }
}

/// Linear maps of J bit planes in one B2A: exact against plaintext for
/// random bits and weights, with n not a multiple of 64 and n large enough
/// for the chunked parallel pass.
fn b2a_weighted_is_exact<R: Ring>() {
    const J: usize = 5;
    for (n, numel) in [(2, 70_001), (3, 130), (4, 1)] {
        let mut prg = Prg::new(&fresh_seed("b2a weighted"), numel as u64);
        let bits: Vec<u64> = uniform::<u64>(&mut prg, [J * words_for(numel)]).into_data();
        let planes = Arc::new(BitPlanes::from_words([numel], J, mask_tail(bits, numel)).unwrap());
        let weights: Arc<Vec<Vec<R>>> = Arc::new(vec![
            uniform::<R>(&mut prg, [J]).into_data(),
            vec![R::ONE; J],
            uniform::<R>(&mut prg, [J]).into_data(),
        ]);
        let (pa, wa) = (planes.clone(), weights.clone());
        let report = run(n, move |sess| {
            let (planes, weights) = (pa.clone(), wa.clone());
            async move {
                let b = BinShared::from_public(&sess, &planes);
                let (outs, cost) = measured(&sess, b2a_weighted::<R>(&sess, &b, &weights)).await?;
                let mut revealed = Vec::new();
                for o in &outs {
                    revealed.push(sess.reveal(o).await?);
                }
                Ok((revealed, cost))
            }
        });
        for p in &report.parties {
            let (outs, cost) = &p.output;
            for (o, w) in outs.iter().zip(weights.iter()) {
                for i in 0..numel {
                    let want = (0..J).fold(R::ZERO, |acc, j| {
                        let bit = (planes.data()[j * words_for(numel) + i / 64] >> (i % 64)) & 1;
                        acc.wrapping_add(w[j].wrapping_mul(R::from_u64(bit)))
                    });
                    assert_eq!(o.data()[i], want, "n={n} numel={numel} i={i}");
                }
            }
            assert_eq!(
                (cost.rounds, cost.bytes_sent),
                (1, (n as u64 - 1) * 8 * (J * words_for(numel)) as u64)
            );
        }
    }
}

/// The same maps and x times one more, in one round: exact against
/// plaintext with random ring values x (N = 2, 3, 4).
fn b2a_weighted_times_is_exact<R: Ring>() {
    const J: usize = 6;
    for (n, numel) in [(2, 3_001), (3, 130), (4, 1)] {
        let mut prg = Prg::new(&fresh_seed("b2a weighted times"), numel as u64);
        let bits: Vec<u64> = uniform::<u64>(&mut prg, [J * words_for(numel)]).into_data();
        let planes = Arc::new(BitPlanes::from_words([numel], J, mask_tail(bits, numel)).unwrap());
        let weights: Arc<Vec<Vec<R>>> = Arc::new(vec![uniform::<R>(&mut prg, [J]).into_data()]);
        let xw: Arc<Vec<R>> = Arc::new(uniform::<R>(&mut prg, [J]).into_data());
        let x = Arc::new(uniform::<R>(&mut prg, [numel]));
        let (pa, wa, xa, xwa) = (planes.clone(), weights.clone(), x.clone(), xw.clone());
        let report = run(n, move |sess| {
            let (planes, weights, x, xw) = (pa.clone(), wa.clone(), xa.clone(), xwa.clone());
            async move {
                let b = BinShared::from_public(&sess, &planes);
                let xs = sess.share_input(0, (sess.party() == 0).then_some(&*x), [numel])?;
                let ((outs, xt), cost) = measured(
                    &sess,
                    b2a_weighted_times::<R>(&sess, &b, &weights, &xs, &xw),
                )
                .await?;
                Ok((sess.reveal(&outs[0]).await?, sess.reveal(&xt).await?, cost))
            }
        });
        let table = |w: &[R], i: usize| {
            (0..J).fold(R::ZERO, |acc, j| {
                let bit = (planes.data()[j * words_for(numel) + i / 64] >> (i % 64)) & 1;
                acc.wrapping_add(w[j].wrapping_mul(R::from_u64(bit)))
            })
        };
        for p in &report.parties {
            let (out, xt, cost) = &p.output;
            for i in 0..numel {
                assert_eq!(out.data()[i], table(&weights[0], i), "n={n} table i={i}");
                let want = x.data()[i].wrapping_mul(table(&xw, i));
                assert_eq!(xt.data()[i], want, "n={n} x times i={i}");
            }
            assert_eq!(
                (cost.rounds, cost.bytes_sent),
                (
                    1,
                    (n as u64 - 1)
                        * (8 * (J * words_for(numel)) + numel * R::BITS as usize / 8) as u64
                )
            );
        }
    }
}

#[test]
fn b2a_weighted_times_exact_u64() {
    b2a_weighted_times_is_exact::<u64>();
}

#[test]
fn b2a_weighted_times_exact_u32() {
    b2a_weighted_times_is_exact::<u32>();
}

/// Clears the bits past `numel` in each plane (padding stays zero).
fn mask_tail(mut words: Vec<u64>, numel: usize) -> Vec<u64> {
    let w = words_for(numel);
    if !numel.is_multiple_of(64) {
        for plane in words.chunks_mut(w) {
            plane[w - 1] &= (1u64 << (numel % 64)) - 1;
        }
    }
    words
}

#[test]
fn b2a_weighted_exact_u64() {
    b2a_weighted_is_exact::<u64>();
}

#[test]
fn b2a_weighted_exact_u32() {
    b2a_weighted_is_exact::<u32>();
}

#[test]
fn b2a_weighted_rejects_wrong_weights() {
    let report = run(2, |sess| async move {
        let planes = BitPlanes::from_words([3], 2, vec![0b101, 0b011]).unwrap();
        let b = BinShared::from_public(&sess, &planes);
        let err = b2a_weighted::<u64>(&sess, &b, &[vec![1, 2, 3]])
            .await
            .unwrap_err();
        Ok(err.to_string())
    });
    for p in &report.parties {
        assert!(
            p.output.contains("3 weights for 2 bit planes"),
            "{}",
            p.output
        );
    }
}

#[test]
fn max_and_argmax_along_each_axis() {
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("max"), 0);
        let mut vals = reals(&mut prg, 3 * 5 * 4, 100.0);
        vals[7] = vals[3]; // ties along axis 1 (positions 0 and 1 of row 0, column 3)
        let vals = Arc::new(vals);
        let va = vals.clone();
        let report = run(n, move |sess| {
            let v = va.clone();
            async move {
                let xs = sess.share_input_f64::<u64>(
                    0,
                    (sess.party() == 0).then_some(&v[..]),
                    [3, 5, 4],
                )?;
                let mut out = Vec::new();
                for axis in 0..3 {
                    // The binary tree (group 2) and the default grouped tournament agree.
                    let (m2, cost2) =
                        measured(&sess, compare::max_grouped(&sess, &xs, axis, 2)).await?;
                    let m2 = sess.reveal_f64(&m2).await?;
                    let (m, cost) = measured(&sess, compare::max(&sess, &xs, axis)).await?;
                    let (am, oh) = compare::argmax(&sess, &xs, axis).await?;
                    out.push((
                        sess.reveal_f64(&m).await?,
                        sess.reveal_f64(&am).await?,
                        sess.reveal(&oh).await?,
                        cost,
                        m2,
                        cost2,
                    ));
                }
                Ok(out)
            }
        });
        let dims = [3usize, 5, 4];
        let at = |i: usize, j: usize, k: usize| vals[(i * 5 + j) * 4 + k];
        for p in &report.parties {
            for (axis, (m, am, oh, cost, m2, cost2)) in p.output.iter().enumerate() {
                assert_eq!(m, m2, "binary tree and grouped tournament agree");
                assert_eq!(cost2.rounds, compare::max_rounds(64, dims[axis], 2));
                assert_eq!(
                    cost.rounds,
                    compare::max_rounds(64, dims[axis], compare::DEFAULT_MAX_GROUP),
                    "axis {axis}"
                );
                let mut idx = 0;
                for i in 0..(if axis == 0 { 1 } else { 3 }) {
                    for j in 0..(if axis == 1 { 1 } else { 5 }) {
                        for k in 0..(if axis == 2 { 1 } else { 4 }) {
                            let cands: Vec<f64> = (0..dims[axis])
                                .map(|t| match axis {
                                    0 => at(t, j, k),
                                    1 => at(i, t, k),
                                    _ => at(i, j, t),
                                })
                                .collect();
                            let best = cands.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                            let first = cands.iter().position(|&c| c == best).unwrap();
                            assert!((m[idx] - best).abs() < 1e-5 && (am[idx] - best).abs() < 1e-5);
                            for t in 0..dims[axis] {
                                let pos = match axis {
                                    0 => (t * 5 + j) * 4 + k,
                                    1 => (i * 5 + t) * 4 + k,
                                    _ => (i * 5 + j) * 4 + t,
                                };
                                assert_eq!(
                                    oh.data()[pos],
                                    (t == first) as u64,
                                    "one-hot axis {axis}"
                                );
                            }
                            idx += 1;
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn maxpool_forward_and_backward_match_plaintext() {
    let pool = Pool2d {
        kernel: (3, 2),
        geometry: Conv2dParams {
            stride: (2, 2),
            padding: (1, 1),
        },
    };
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("maxpool"), 0);
        let x = Arc::new(reals(&mut prg, 2 * 2 * 7 * 6, 50.0));
        let out_shape = pool.output_shape(&[2, 2, 7, 6].into()).unwrap();
        let g = Arc::new(reals(&mut prg, out_shape.numel(), 5.0));
        let (xa, ga) = (x.clone(), g.clone());
        let report = run(n, move |sess| {
            let (x, g) = (xa.clone(), ga.clone());
            async move {
                let me = sess.party();
                let xs =
                    sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [2, 2, 7, 6])?;
                let gs = sess.share_input_f64::<u64>(
                    1,
                    (me == 1).then_some(&g[..]),
                    pool.output_shape(xs.shape())?,
                )?;
                let (out, oh) = maxpool2d(&sess, &xs, &pool).await?;
                let (gin, cost) = measured(
                    &sess,
                    maxpool2d_backward(&sess, &gs, &oh, xs.shape(), &pool),
                )
                .await?;
                Ok((
                    sess.reveal_f64(&out).await?,
                    sess.reveal_f64(&gin).await?,
                    cost,
                ))
            }
        });
        // Plaintext reference.
        let (ho, wo) = (out_shape.dims()[2], out_shape.dims()[3]);
        let mut expect = vec![f64::NEG_INFINITY; out_shape.numel()];
        let mut grad_in = vec![0.0; x.len()];
        for img in 0..4 {
            for oy in 0..ho {
                for ox in 0..wo {
                    let o = (img * ho + oy) * wo + ox;
                    let mut arg = None;
                    for ki in 0..3 {
                        for kj in 0..2 {
                            let (iy, ix) = ((oy * 2 + ki) as isize - 1, (ox * 2 + kj) as isize - 1);
                            if iy < 0 || ix < 0 || iy >= 7 || ix >= 6 {
                                continue;
                            }
                            let i = img * 42 + iy as usize * 6 + ix as usize;
                            if x[i] > expect[o] {
                                expect[o] = x[i];
                                arg = Some(i);
                            }
                        }
                    }
                    grad_in[arg.unwrap()] += g[o];
                }
            }
        }
        for p in &report.parties {
            let (out, gin, cost) = &p.output;
            for (a, b) in out.iter().zip(&expect) {
                assert!((a - b).abs() < 1e-5, "maxpool {a} vs {b}");
            }
            for (a, b) in gin.iter().zip(&grad_in) {
                assert!((a - b).abs() < 1e-4, "maxpool grad {a} vs {b}");
            }
            assert_cost::<u64>(
                cost,
                n,
                1,
                2 * out_shape.numel() * 6,
                "backward is one product",
            );
        }
    }
}

/// Inference pooling: the max alone equals the training forward's, and
/// the fused ReLU + max-pool equals ReLU then max-pool bit for bit (ring
/// values, ties and all-negative windows included) in the pool's 5 rounds
/// instead of 4 + 5.
#[test]
fn fused_relu_maxpool_is_relu_then_maxpool_exactly() {
    let pool = Pool2d::square(2);
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("relu-pool"), 0);
        let mut x = reals(&mut prg, 2 * 3 * 6 * 6, 20.0);
        // An all-negative window (rows 0 and 1 of 6, columns 0 and 1), a
        // tie at the max (the next window), a zero.
        for (i, v) in [
            (0, -1.0),
            (1, -2.0),
            (6, -0.5),
            (7, -3.0),
            (2, 7.5),
            (3, 7.5),
        ] {
            x[i] = v;
        }
        x[12] = 0.0;
        let x = Arc::new(x);
        let xa = x.clone();
        let report = run(n, move |sess| {
            let x = xa.clone();
            async move {
                let me = sess.party();
                let xs =
                    sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [2, 3, 6, 6])?;
                let relu = compare::relu(&sess, &xs).await?;
                let (twice, _) = maxpool2d(&sess, &relu, &pool).await?;
                let (plain, c_plain) =
                    measured(&sess, maxpool2d_max(&sess, &xs, &pool, false)).await?;
                let (fused, c_fused) =
                    measured(&sess, maxpool2d_max(&sess, &xs, &pool, true)).await?;
                let (max_only, _) = maxpool2d(&sess, &xs, &pool).await?;
                Ok((
                    sess.reveal(&twice).await?,
                    sess.reveal(&fused).await?,
                    sess.reveal(&plain).await?,
                    sess.reveal(&max_only).await?,
                    c_plain,
                    c_fused,
                ))
            }
        });
        for p in &report.parties {
            let (twice, fused, plain, max_only, c_plain, c_fused) = &p.output;
            assert_eq!(twice.data(), fused.data(), "N={n}: fused vs ReLU then pool");
            assert_eq!(plain.data(), max_only.data(), "N={n}: max without one-hot");
            assert!(fused.data()[0] == 0, "all-negative window gives 0");
            assert_eq!(
                c_plain.rounds,
                compare::max_rounds(64, 4, compare::DEFAULT_MAX_GROUP)
            );
            assert_eq!(c_fused.rounds, 5, "N={n}: fused rounds");
            assert_eq!(c_plain.rounds, 5, "N={n}: pool rounds");
        }
    }
}

/// A2B then B2A gives x back, with the adder's rounds and bytes.
struct A2bB2aRoundTrip;

impl RingTest for A2bB2aRoundTrip {
    fn run<R: Ring>(&self, case: &Case) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("a2b"), 0);
        let x = Arc::new(edge_values::<R>(&mut prg, 90));
        let xa = x.clone();
        let report = case.run(move |sess| {
            let x = xa.clone();
            async move {
                let xs =
                    sess.share_input(0, (sess.party() == 0).then_some(&*x), x.shape().clone())?;
                let (bits, c_a2b) =
                    measured(&sess, spindle::protocol::convert::a2b(&sess, &xs)).await?;
                let (back, c_b2a) = measured(
                    &sess,
                    spindle::protocol::convert::b2a_value::<R>(&sess, &bits),
                )
                .await?;
                Ok((
                    sess.reveal_bits(&bits).await?,
                    sess.reveal(&back).await?,
                    c_a2b,
                    c_b2a,
                ))
            }
        });
        let k = R::BITS as u64;
        let levels = (k as f64).log2().ceil() as u64;
        for p in &report.parties {
            let (bits, back, c_a2b, c_b2a) = &p.output;
            assert_eq!(&bits.to_ring::<R>(), &*x, "N={n} a2b");
            assert_eq!(back, &*x, "N={n} b2a");
            assert_eq!(c_a2b.rounds, 1 + levels);
            // Per level d: ANDs for the generate bits above d and the
            // propagate bits above 2d (none at the last level).
            let ands: u64 = (0..levels)
                .map(|l| 1u64 << l)
                .map(|d| (k - d) + k.saturating_sub(2 * d))
                .sum();
            assert_eq!(ands, if k == 64 { 579 } else { 227 });
            assert_eq!(
                c_a2b.bytes_sent,
                (n as u64 - 1)
                    * (x.numel() as u64 * k / 8 + 2 * 8 * words_for(x.numel()) as u64 * ands),
                "N={n} a2b bytes"
            );
            assert_eq!(c_b2a.rounds, 1);
            assert_eq!(
                c_b2a.bytes_sent,
                (n as u64 - 1) * 8 * k * words_for(x.numel()) as u64
            );
        }
    }
}

#[test]
fn a2b_and_b2a_round_trip_over_the_axes() {
    over_axes(&A2bB2aRoundTrip, Truncs::Dealer);
}

#[test]
fn max_over_128_takes_11_rounds() {
    for n in [2, 3] {
        let mut prg = Prg::new(&fresh_seed("max128"), 0);
        let vals = Arc::new(reals(&mut prg, 4 * 128, 30.0));
        let va = vals.clone();
        let report = run(n, move |sess| {
            let v = va.clone();
            async move {
                let xs = sess.share_input_f64::<u64>(
                    0,
                    (sess.party() == 0).then_some(&v[..]),
                    [4, 128],
                )?;
                let (m, cost) = measured(&sess, compare::max(&sess, &xs, 1)).await?;
                Ok((sess.reveal_f64(&m).await?, cost))
            }
        });
        // (3 + 2 + 1) + (3 + 1 + 1): MSB, AND tree over 15 bits (radix 4)
        // then 7 (one level), bit injection per level.
        assert_eq!(compare::max_rounds(64, 128, compare::DEFAULT_MAX_GROUP), 11);
        for p in &report.parties {
            let (m, cost) = &p.output;
            assert_eq!(cost.rounds, 11);
            for r in 0..4 {
                let best = vals[r * 128..(r + 1) * 128]
                    .iter()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max);
                assert!((m[r] - best).abs() < 1e-5);
            }
        }
    }
}

/// Levels whose last group holds a single candidate (17 = 16 + 1 at the
/// default group, 5 = 4 + 1 and 9 = 4 + 4 + 1 at group 4) next to groups
/// that need AND trees: that candidate passes the level unchanged. A
/// softmax over 17 or 33 keys takes this path (it panicked in session 21).
#[test]
fn max_with_a_single_candidate_left_over_in_a_level() {
    for n in PARTY_COUNTS {
        for (len, group) in [(17, compare::DEFAULT_MAX_GROUP), (33, 16), (5, 4), (9, 4)] {
            let mut prg = Prg::new(&fresh_seed("max-leftover"), len as u64);
            let mut vals = reals(&mut prg, 3 * len, 50.0);
            // Row 0's maximum is the leftover candidate, row 1's is a tie
            // between the first and the leftover (the first wins).
            vals[len - 1] = 60.0;
            vals[len] = 70.0;
            vals[2 * len - 1] = 70.0;
            let vals = Arc::new(vals);
            let va = vals.clone();
            let report = run(n, move |sess| {
                let v = va.clone();
                async move {
                    let xs = sess.share_input_f64::<u64>(
                        0,
                        (sess.party() == 0).then_some(&v[..]),
                        [3, len],
                    )?;
                    let (m, cost) =
                        measured(&sess, compare::max_grouped(&sess, &xs, 1, group)).await?;
                    let (_, oh) = compare::argmax(&sess, &xs, 1).await?;
                    Ok((sess.reveal_f64(&m).await?, cost, sess.reveal(&oh).await?))
                }
            });
            for p in &report.parties {
                let (m, cost, oh) = &p.output;
                assert_eq!(cost.rounds, compare::max_rounds(64, len, group), "{len}");
                for r in 0..3 {
                    let row = &vals[r * len..(r + 1) * len];
                    let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let first = row.iter().position(|&c| c == best).unwrap();
                    assert!((m[r] - best).abs() < 1e-5, "len {len} row {r}");
                    for t in 0..len {
                        assert_eq!(oh.data()[r * len + t], (t == first) as u64, "len {len}");
                    }
                }
            }
        }
    }
}
