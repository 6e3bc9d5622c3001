//! Beaver products over the test axes (N = 2, 3, 4, both rings, every test
//! device; `tests/common/axes.rs`): exact results against the plaintext
//! ring op, one round each, and the documented bytes per party.

mod common;

use std::sync::Arc;

use common::*;
use spindle::backend::{Backend, BilinearOp, Conv2dParams, CpuBackend};
use spindle::prg::Prg;
use spindle::protocol::{beaver, lookup};
use spindle::ring::{Ring, RingTensor};

/// (op, lhs shape, rhs shape) of every bilinear op the Beaver routine serves.
fn cases() -> Vec<(BilinearOp, Vec<usize>, Vec<usize>)> {
    vec![
        (BilinearOp::Mul, vec![7, 13], vec![7, 13]),
        (BilinearOp::Matmul, vec![17, 33], vec![33, 9]),
        (BilinearOp::Matmul, vec![3, 5, 8], vec![3, 8, 4]),
        (
            BilinearOp::Conv2d(Conv2dParams {
                stride: (2, 1),
                padding: (1, 2),
            }),
            vec![2, 3, 9, 8],
            vec![4, 3, 3, 3],
        ),
    ]
}

fn products_are_exact<R: Ring>() {
    for case in axes::cases(axes::Truncs::Dealer) {
        let n = case.n;
        for (op, ls, rs) in cases() {
            let mut prg = Prg::new(&fresh_seed("beaver"), 0);
            let x: Arc<RingTensor<R>> = Arc::new(uniform(&mut prg, ls.clone()));
            let y: Arc<RingTensor<R>> = Arc::new(uniform(&mut prg, rs.clone()));
            let expect = op.apply(&CpuBackend::default(), &*x, &*y).unwrap();
            let (x2, y2, ls2, rs2) = (x.clone(), y.clone(), ls.clone(), rs.clone());
            let report = case.run(move |sess| {
                let (x, y, ls, rs) = (x2.clone(), y2.clone(), ls2.clone(), rs2.clone());
                async move {
                    let me = sess.party();
                    let owner_y = sess.n_parties() - 1;
                    let xs = sess.share_input(0, (me == 0).then_some(&*x), ls)?;
                    let ys = sess.share_input(owner_y, (me == owner_y).then_some(&*y), rs)?;
                    let (z, cost) = measured(&sess, beaver::product(&sess, op, &xs, &ys)).await?;
                    Ok((sess.reveal(&z).await?, cost))
                }
            });
            for p in &report.parties {
                assert_eq!(p.output.0, expect, "{op:?} N={n} party {}", p.party);
                assert_cost::<R>(
                    &p.output.1,
                    n,
                    1,
                    x.numel() + y.numel(),
                    &format!("{op:?} N={n}"),
                );
            }
        }
    }
}

#[test]
fn products_are_exact_in_z64() {
    products_are_exact::<u64>();
}

#[test]
fn products_are_exact_in_z32() {
    products_are_exact::<u32>();
}

fn square_and_static_are_exact<R: Ring>() {
    for case in axes::cases(axes::Truncs::Dealer) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("square/static"), 0);
        let x: Arc<RingTensor<R>> = Arc::new(uniform(&mut prg, [6, 10]));
        let x2: Arc<RingTensor<R>> = Arc::new(uniform(&mut prg, [6, 10]));
        let w: Arc<RingTensor<R>> = Arc::new(uniform(&mut prg, [10, 5]));
        let be = CpuBackend::default();
        let sq = be.mul(&x, &x).unwrap();
        let xw = be.matmul(&x, &w).unwrap();
        let x2w = be.matmul(&x2, &w).unwrap();
        let (xa, x2a, wa) = (x.clone(), x2.clone(), w.clone());
        let report = case.run(move |sess| {
            let (x, x2, w) = (xa.clone(), x2a.clone(), wa.clone());
            async move {
                let me = sess.party();
                let xs = sess.share_input(0, (me == 0).then_some(&*x), [6, 10])?;
                let x2s = sess.share_input(0, (me == 0).then_some(&*x2), [6, 10])?;
                let ws = sess.share_input(1, (me == 1).then_some(&*w), [10, 5])?;
                let (sq, c_sq) = measured(&sess, beaver::square(&sess, &xs)).await?;
                let (st, c_prep) = measured(&sess, beaver::prepare_static(&sess, &ws)).await?;
                let (z1, c1) = measured(
                    &sess,
                    beaver::product_static(&sess, BilinearOp::Matmul, &xs, &st),
                )
                .await?;
                let (z2, c2) = measured(
                    &sess,
                    beaver::product_static(&sess, BilinearOp::Matmul, &x2s, &st),
                )
                .await?;
                let opened = sess.reveal_many(&[&sq, &z1, &z2]).await?;
                Ok((opened, [c_sq, c_prep, c1, c2]))
            }
        });
        for p in &report.parties {
            let (opened, costs) = &p.output;
            assert_eq!(opened[0], sq, "square N={n}");
            assert_eq!(opened[1], xw, "static product 1 N={n}");
            assert_eq!(opened[2], x2w, "static product 2 N={n}");
            assert_cost::<R>(&costs[0], n, 1, 60, "square opens only x - a");
            assert_cost::<R>(&costs[1], n, 1, 50, "static operand opened once");
            assert_cost::<R>(&costs[2], n, 1, 60, "static product opens only x - a");
            assert_cost::<R>(&costs[3], n, 1, 60, "static product reused");
        }
    }
}

#[test]
fn square_and_static_products_are_exact_in_z64() {
    square_and_static_are_exact::<u64>();
}

#[test]
fn square_and_static_products_are_exact_in_z32() {
    square_and_static_are_exact::<u32>();
}

/// A weight known to party 0 with its mask held by party 0 alone: exact
/// products; party 0 sends nothing in a product, the others send x - a to
/// party 0 only; the word lookup by a client's ids is exact too, and its
/// client-side rows of f cost nothing.
fn owned_static_and_lookup_are_exact<R: Ring>() {
    for case in axes::cases(axes::Truncs::Dealer) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("owned static"), 0);
        let x: Arc<RingTensor<R>> = Arc::new(uniform(&mut prg, [6, 10]));
        let w: Arc<RingTensor<R>> = Arc::new(uniform(&mut prg, [10, 5]));
        let ids: Arc<Vec<usize>> = Arc::new(vec![3, 0, 9, 3]);
        let be = CpuBackend::default();
        let xw = be.matmul(&x, &w).unwrap();
        let rows: Vec<R> = ids
            .iter()
            .flat_map(|&i| w.data()[i * 5..(i + 1) * 5].to_vec())
            .collect();
        let rows = RingTensor::new([4, 5], rows).unwrap();
        let (xa, wa, ia) = (x.clone(), w.clone(), ids.clone());
        let report = case.run(move |sess| {
            let (x, w, ids) = (xa.clone(), wa.clone(), ia.clone());
            async move {
                let me = sess.party();
                let client = sess.n_parties() - 1;
                let xs = sess.share_input(client, (me == client).then_some(&*x), [6, 10])?;
                let ws = sess.share_input(0, (me == 0).then_some(&*w), [10, 5])?;
                let (st, c_prep) =
                    measured(&sess, beaver::prepare_static_owned(&sess, &ws)).await?;
                let (z, c1) = measured(
                    &sess,
                    beaver::product_static(&sess, BilinearOp::Matmul, &xs, &st),
                )
                .await?;
                let mine = (me == client).then_some(&ids[..]);
                let (l, c2) =
                    measured(&sess, lookup::lookup_rows(&sess, &st, client, mine, 4)).await?;
                let opened = sess.reveal_many(&[&z, &l]).await?;
                Ok((opened, [c_prep, c1, c2], me))
            }
        });
        for p in &report.parties {
            let (opened, costs, me) = &p.output;
            assert_eq!(opened[0], xw, "owned static product N={n}");
            assert_eq!(opened[1], rows, "lookup N={n}");
            assert_cost::<R>(&costs[0], n, 1, 50, "owned static operand opened once");
            let (x_elems, onehot) = if *me == 0 { (0, 0) } else { (60, 40) };
            // To party 0 only: (N - 1) peers' worth is one peer's.
            assert_eq!(costs[1].rounds, 1);
            assert_eq!(
                costs[1].bytes_sent,
                (x_elems * R::BYTES) as u64,
                "product N={n}"
            );
            assert_eq!(costs[2].rounds, 1);
            assert_eq!(
                costs[2].bytes_sent,
                (onehot * R::BYTES) as u64,
                "lookup N={n}"
            );
        }
    }
}

#[test]
fn lookup_ids_past_the_table_are_an_error() {
    assert!(lookup::one_hot::<u64>(&[4, 10], 10).is_err());
    let t = lookup::one_hot::<u64>(&[4, 0], 10).unwrap();
    assert_eq!(t.data()[4], 1);
    assert_eq!(t.data()[10], 1);
    assert_eq!(t.data().iter().sum::<u64>(), 2);
}

#[test]
fn owned_static_and_lookup_are_exact_in_z64() {
    owned_static_and_lookup_are_exact::<u64>();
}

#[test]
fn owned_static_and_lookup_are_exact_in_z32() {
    owned_static_and_lookup_are_exact::<u32>();
}

#[test]
fn input_sharing_costs_nothing_and_reveal_one_round() {
    for case in axes::cases(axes::Truncs::Dealer) {
        let n = case.n;
        let mut prg = Prg::new(&fresh_seed("input"), 0);
        let x: Arc<RingTensor<u64>> = Arc::new(uniform(&mut prg, [5, 3]));
        let xa = x.clone();
        let report = case.run(move |sess| {
            let x = xa.clone();
            async move {
                let owner = sess.n_parties() - 1;
                let before = sess.link_stats();
                let xs = sess.share_input(owner, (sess.party() == owner).then_some(&*x), [5, 3])?;
                let input_cost = sess.link_stats() - before;
                let (to_one, c_one) = measured(&sess, sess.reveal_to(&xs, 0)).await?;
                let (all, c_all) = measured(&sess, sess.reveal(&xs)).await?;
                Ok((input_cost, to_one, c_one, all, c_all))
            }
        });
        for p in &report.parties {
            let (input_cost, to_one, c_one, all, c_all) = &p.output;
            assert_eq!(
                input_cost.bytes_sent + input_cost.rounds,
                0,
                "input sharing is free online"
            );
            assert_eq!(all, &*x);
            assert_cost::<u64>(c_all, n, 1, 15, "reveal");
            if p.party == 0 {
                assert_eq!(to_one.as_ref(), Some(&*x));
                assert_eq!((c_one.bytes_sent, c_one.rounds), (0, 1));
                assert_eq!(c_one.bytes_received, ((n - 1) * 15 * 8) as u64);
            } else {
                assert!(to_one.is_none());
                assert_eq!(
                    (c_one.bytes_sent, c_one.messages_sent, c_one.rounds),
                    (120, 1, 1)
                );
            }
        }
    }
}

#[test]
fn material_expanded_ahead_gives_the_same_products_and_traffic() {
    for n in PARTY_COUNTS {
        let mut prg = Prg::new(&fresh_seed("expand-ahead"), 0);
        let x: Arc<RingTensor<u64>> = Arc::new(uniform(&mut prg, [9, 14]));
        let y: Arc<RingTensor<u64>> = Arc::new(uniform(&mut prg, [14, 5]));
        let program = move |sess: Arc<spindle::Session>| {
            let (x, y) = (x.clone(), y.clone());
            async move {
                let me = sess.party();
                let xs = sess.share_input(0, (me == 0).then_some(&*x), [9, 14])?;
                let ys = sess.share_input(1, (me == 1).then_some(&*y), [14, 5])?;
                let (z, cost) =
                    measured(&sess, spindle::protocol::fixed::matmul(&sess, &xs, &ys)).await?;
                Ok((sess.reveal(&z).await?, cost))
            }
        };
        let mut outputs = Vec::new();
        for expand_ahead in [false, true] {
            let mut opts = spindle::runner::RunOptions::new(n);
            opts.dealer_seed = Some(spindle::prg::Seed([42; 16]));
            opts.expand_ahead = expand_ahead;
            let r = spindle::runner::run_parties_blocking(&opts, program.clone()).unwrap();
            outputs.push(r.parties.into_iter().map(|p| p.output).collect::<Vec<_>>());
        }
        // The same dealer seed: bit-identical results (truncation included), same traffic.
        assert_eq!(outputs[0], outputs[1], "N={n}");
    }
}

/// The CPU backend's fused Beaver step equals c + e*b + x*f formed op by op,
/// below and above its parallel threshold, and refuses mixed shapes.
fn fused_beaver_step_matches_the_ops<R: Ring>() {
    let be = CpuBackend::default();
    let mut prg = Prg::new(&spindle::prg::Seed([3; 16]), R::BITS as u64);
    for n in [0, 1, 1000, (1 << 16) + 5] {
        let [c, e, b, x, f]: [RingTensor<R>; 5] = std::array::from_fn(|_| prg.tensor([n]));
        let mut want = c.clone();
        be.add_assign(&mut want, &be.mul(&e, &b).unwrap()).unwrap();
        be.add_assign(&mut want, &be.mul(&x, &f).unwrap()).unwrap();
        let got = be.beaver_mul_combine(c, &e, &b, &x, &f).unwrap();
        assert_eq!(got, want, "n = {n}");
    }
    let (a, b): (RingTensor<R>, RingTensor<R>) = (prg.tensor([4]), prg.tensor([5]));
    assert!(matches!(
        be.beaver_mul_combine(a.clone(), &a, &a, &b, &a),
        Err(spindle::Error::ShapeMismatch { .. })
    ));
}

#[test]
fn fused_beaver_step_matches_the_ops_in_both_rings() {
    fused_beaver_step_matches_the_ops::<u64>();
    fused_beaver_step_matches_the_ops::<u32>();
}
