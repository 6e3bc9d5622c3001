//! Round batching: many Beaver products and many truncations (each by its
//! own number of bits) opened in ONE round.
//!
//! Rounds dominate the latency of every non-linear function, so each
//! function here is a short sequence of levels, and every level opens all
//! of its masked values in a single [`Session::open`] call. The protocols
//! are those of [`crate::protocol::beaver`] (Beaver, CRYPTO 1991) and
//! [`crate::protocol::trunc`] (Escudero et al., CRYPTO 2020) with the same
//! dealer material; only the openings are merged, and the local steps are
//! the backend's fused MPC steps ([`MpcSteps`]: single passes over memory
//! on the CPU).

use super::linked_output::LinkedSquare;
use crate::backend::steps::check_bits;
use crate::backend::{Backend, BilinearOp, MpcSteps, TruncParts, TruncProduct};
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::protocol::beaver::take;
use crate::protocol::trunc;
use crate::ring::{Ring, RingTensor};
use crate::session::{Session, TruncMode};
use crate::share::{Opened, Shared};

/// One elementwise Beaver product of a batch.
#[derive(Clone, Debug)]
pub(crate) enum Prod<'a, R: Ring> {
    /// x * y (a triple; opens two values per element).
    Mul(&'a Shared<R>, &'a Shared<R>),
    /// x * x (a square pair; opens one value per element).
    Sq(&'a Shared<R>),
}

/// One truncation of a batch: the share and the number of bits to drop.
pub(crate) type Trunc<'a, R> = (&'a Shared<R>, u32);

/// Truncations whose outputs are also multiplied pairwise, in the same
/// round and with no opening beyond the truncations' own
/// ([`Request::TruncProducts`]): a value truncated here and squared (or
/// multiplied by another value of the group) costs one opened element
/// instead of two and one round instead of two. The products may also
/// take the outputs of the truncations linked to an earlier square
/// ([`super::linked`]), which cost no opening at all. All values have one
/// shape.
pub(crate) struct TruncGroup<'a, R: Ring> {
    /// The values and the bits to drop from each.
    pub(crate) items: Vec<Trunc<'a, R>>,
    /// The linked truncations taking part: items n.. in `pairs`, in their
    /// order (n = `items.len()`).
    pub(crate) linked: Option<&'a LinkedSquare<R>>,
    /// Pairs (i, j), i <= j, of truncated values to multiply.
    pub(crate) pairs: Vec<(usize, usize)>,
    /// The items (of `items`, in this order) whose truncated values are
    /// wanted besides the products: one pass over memory each.
    pub(crate) values: Vec<usize>,
}

/// What a [`TruncGroup`] yields: the truncated values of
/// [`TruncGroup::values`], and the products of the requested pairs, raw
/// (exact in Z_2^k at the sum of the two truncated scales).
pub(crate) struct GroupOut<R: Ring> {
    pub(crate) values: Vec<Shared<R>>,
    pub(crate) products: Vec<Shared<R>>,
}

/// A [`TruncGroup`] alone: one round.
pub(crate) async fn trunc_group<R: Ring>(
    sess: &Session,
    group: &TruncGroup<'_, R>,
) -> Result<GroupOut<R>> {
    Ok(round_group(sess, &[], &[], group).await?.2)
}

/// The repeated squaring y_0 = x, y_(j+1) = (y_j truncated by
/// `bits[j]`)^2, then the last y truncated by `last`: exactly the
/// [`TruncGroup`]s of one item and its square and the final [`round`] it
/// stands for (the same requests in the same order, the same openings,
/// rounds and results), with each square masked for the next opening in
/// the pass that forms it, as nothing else reads it
/// ([`MpcSteps::trunc_square_masked`]). The next step's material is fetched
/// after an opening and before the kernel that uses it.
///
/// Rounds: `bits.len()` + 1 (0 for `last` = 0 in the last step). Elements
/// opened per element of x, to each peer: as many.
///
/// Errors: [`Error::InvalidFixedPoint`] for a shift that does not fit the
/// ring; preprocessing and transport errors.
pub(crate) async fn trunc_square_chain<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    bits: &[u32],
    last: u32,
) -> Result<Shared<R>> {
    if sess.config().trunc == TruncMode::LocalShift || bits.is_empty() || last == 0 {
        // The groups themselves (no opened square to mask).
        let mut square;
        let mut y = x;
        for &b in bits {
            let g = TruncGroup {
                items: vec![(y, b)],
                linked: None,
                pairs: vec![(0, 0)],
                values: vec![],
            };
            let next = trunc_group(sess, &g).await?.products.pop();
            square = next.expect("one square");
            y = &square;
        }
        let (_, mut t) = round(sess, &[], &[(y, last)]).await?;
        return Ok(t.pop().expect("one truncation"));
    }
    let party0 = sess.party() == 0;
    let bias = trunc_bias::<R>(sess);
    let shape = x.shape().clone();
    // Material of step j (a square for j < n, the last truncation at n):
    // the mask r, then r', r_msb and, for a square, r'^2 and r' r_msb.
    let fetch = |j: usize| -> Result<(RingTensor<R>, Vec<RingTensor<R>>)> {
        let req = match bits.get(j) {
            Some(&b) => Request::TruncProducts {
                ring: R::ID,
                shape: shape.clone(),
                frac_bits: vec![b],
                pairs: vec![(0, 0)],
                linked: None,
            },
            None => Request::Trunc {
                ring: R::ID,
                shape: shape.clone(),
                frac_bits: last,
            },
        };
        check_bits::<R>(bits.get(j).copied().unwrap_or(last))?;
        let mut m = sess.fetch::<R>(&req)?;
        let want = if j < bits.len() { 5 } else { 3 };
        if m.len() != want {
            return Err(Error::Format {
                what: "preprocessing material".into(),
                detail: format!("{req} should have {want} tensors"),
            });
        }
        let rest = m.split_off(1);
        Ok((m.pop().expect("counted"), rest))
    };
    let be = sess.backend();
    let (masked, mut parts) = fetch(0)?;
    let mut masked = be.mask(masked, x.share(), bias)?;
    for (j, &b) in bits.iter().enumerate() {
        let c = sess.open_parts(vec![masked]).await?.pop().expect("one");
        let (next, next_parts) = fetch(j + 1)?;
        let [rs, ms, rr, rm] = &parts[..] else {
            unreachable!("a square's material is counted")
        };
        let v = TruncParts {
            c: &c,
            r_shifted: rs,
            r_msb: ms,
            bits: b,
        };
        let next = be.trunc_square_masked(&v, rr, rm, next, bias, party0)?;
        (masked, parts) = (next, next_parts);
    }
    let c = sess.open_parts(vec![masked]).await?.pop().expect("one");
    let [rs, ms] = <[RingTensor<R>; 2]>::try_from(parts).map_err(|_| Error::Format {
        what: "preprocessing material".into(),
        detail: "a truncation should have 3 tensors".into(),
    })?;
    Ok(Shared::from_share(
        be.trunc_value(&c, rs, &ms, last, party0)?,
    ))
}

/// [`round`] with a [`TruncGroup`] opened in the same round.
///
/// With the local-shift truncation (2 parties, opt-in) the group's values
/// are truncated locally and its products become Beaver products of this
/// round (two opened elements per product).
///
/// Errors: as [`round`]; [`Error::ShapeMismatch`] for values of different
/// shapes in the group; [`Error::Unsupported`] for a pair that is not
/// i <= j of the group.
pub(crate) async fn round_group<R: Ring>(
    sess: &Session,
    prods: &[Prod<'_, R>],
    truncs: &[Trunc<'_, R>],
    group: &TruncGroup<'_, R>,
) -> Result<(Vec<Shared<R>>, Vec<Shared<R>>, GroupOut<R>)> {
    let n = group.items.len();
    let links = group.linked.map_or(&[][..], |l| &l.links[..]);
    let n_all = n + links.len();
    if let Some(p) = group.pairs.iter().find(|(i, j)| i > j || *j >= n_all) {
        return Err(Error::Unsupported(format!(
            "truncation product {p:?} is not a pair i <= j of the {n_all} truncations (internal)"
        )));
    }
    if let Some(i) = group.values.iter().find(|&&i| i >= n) {
        return Err(Error::Unsupported(format!(
            "value {i} asked of a group of {n} truncations (internal)"
        )));
    }
    let shape = match (group.items.first(), group.linked) {
        (Some((x, _)), _) => x.shape().clone(),
        (None, Some(l)) => l.shape.clone(),
        (None, None) => {
            let (p, t) = round(sess, prods, truncs).await?;
            let none = GroupOut {
                values: vec![],
                products: vec![],
            };
            return Ok((p, t, none));
        }
    };
    let linked_shape = group.linked.map(|l| &l.shape);
    if let Some(other) = group
        .items
        .iter()
        .map(|(x, _)| x.shape())
        .chain(linked_shape)
        .find(|s| *s != &shape)
    {
        return Err(Error::shape(
            "truncation group",
            format!("values of shapes {shape} and {other}"),
        ));
    }
    if sess.config().trunc == TruncMode::LocalShift {
        let mut values = Vec::with_capacity(n_all);
        for &(x, bits) in &group.items {
            values.push(trunc::truncate(sess, x, bits).await?);
        }
        for l in links {
            values.push(l.value(sess)?);
        }
        let mut all = prods.to_vec();
        all.extend(group.pairs.iter().map(|&(i, j)| match i == j {
            true => Prod::Sq(&values[i]),
            false => Prod::Mul(&values[i], &values[j]),
        }));
        let (mut p, t) = round(sess, &all, truncs).await?;
        let products = p.split_off(p.len() - group.pairs.len());
        drop(all);
        let mut values: Vec<Option<Shared<R>>> = values.into_iter().map(Some).collect();
        let values = group
            .values
            .iter()
            .map(|&i| values[i].take().ok_or_else(|| asked_twice(i)))
            .collect::<Result<_>>()?;
        return Ok((p, t, GroupOut { values, products }));
    }
    let linked = match group.linked {
        None => None,
        Some(l) => Some(l.items.clone().ok_or_else(|| {
            Error::Unsupported(
                "linked truncations of a local-shift square in a dealer group (internal)".into(),
            )
        })?),
    };
    let req = Request::TruncProducts {
        ring: R::ID,
        shape,
        frac_bits: group.items.iter().map(|(_, b)| *b).collect(),
        pairs: group.pairs.clone(),
        linked,
    };
    let mut m = sess.fetch::<R>(&req)?.into_iter();
    let expected = req.correlated_parts()?.len() + n;
    if m.len() != expected {
        return Err(Error::Format {
            what: "preprocessing material".into(),
            detail: format!("{req} should have {expected} tensors"),
        });
    }
    let bias = trunc_bias::<R>(sess);
    let be = sess.backend();
    // c_i = x_i + 2^(k-2) + r_i, built in r_i's buffer, opened with the rest.
    let masked: Vec<RingTensor<R>> = group
        .items
        .iter()
        .map(|&(x, bits)| {
            check_bits::<R>(bits)?;
            be.mask(m.next().expect("counted"), x.share(), bias)
        })
        .collect::<Result<_>>()?;
    let parts: Vec<(RingTensor<R>, RingTensor<R>)> = (0..n)
        .map(|_| (m.next().expect("counted"), m.next().expect("counted")))
        .collect();
    let corr: Vec<RingTensor<R>> = m.collect();
    let (p, t, opened) = round_opening(sess, prods, truncs, masked).await?;
    let party0 = sess.party() == 0;
    let mut views: Vec<TruncParts<'_, R>> = opened
        .iter()
        .zip(&parts)
        .zip(&group.items)
        .map(|((c, (rs, rm)), (_, bits))| TruncParts {
            c,
            r_shifted: rs,
            r_msb: rm,
            bits: *bits,
        })
        .collect();
    for l in links {
        views.push(l.view().ok_or_else(|| {
            Error::Unsupported(
                "a local-shift linked truncation in a dealer group (internal)".into(),
            )
        })?);
    }
    // The products, each written over its dealer r'_i r'_j, all in one
    // pass over the elements.
    let mut corr = corr.into_iter();
    let mut outs = Vec::with_capacity(group.pairs.len());
    let mut rest = Vec::with_capacity(group.pairs.len());
    for &(i, j) in &group.pairs {
        outs.push(corr.next().expect("counted"));
        let more = if i == j { 1 } else { 3 };
        rest.push(((i, j), corr.by_ref().take(more).collect::<Vec<_>>()));
    }
    let prods: Vec<TruncProduct<'_, R>> = rest
        .iter()
        .map(|(pair, c)| TruncProduct {
            pair: *pair,
            corr: c.iter().collect(),
        })
        .collect();
    let outs = be.trunc_products(&views, &prods, outs, party0)?;
    drop(prods);
    let products: Vec<Shared<R>> = outs.into_iter().map(Shared::from_share).collect();
    drop(views);
    // The values last: each is written over its r', which the products read.
    let mut parts: Vec<Option<_>> = parts.into_iter().map(Some).collect();
    let mut values = Vec::with_capacity(group.values.len());
    for &i in &group.values {
        let (rs, rm) = parts[i].take().ok_or_else(|| asked_twice(i))?;
        let v = be.trunc_value(&opened[i], rs, &rm, group.items[i].1, party0)?;
        values.push(Shared::from_share(v));
    }
    Ok((p, t, GroupOut { values, products }))
}

enum Pending<R: Ring> {
    Mul { c: RingTensor<R>, b: RingTensor<R> },
    Sq { c: RingTensor<R> },
}

/// Runs the products and truncations in one round (no round at all when
/// nothing is opened: empty lists, zero-bit or local truncations).
/// Products come back raw: exact in Z_2^k, with the sum of the operands'
/// scales. Truncations are exact up to one unit in the last place.
///
/// Elements sent to each peer, per element of each operand: 2 per `Mul`,
/// 1 per `Sq`, 1 per truncation that is opened.
pub(crate) async fn round<R: Ring>(
    sess: &Session,
    prods: &[Prod<'_, R>],
    truncs: &[Trunc<'_, R>],
) -> Result<(Vec<Shared<R>>, Vec<Shared<R>>)> {
    let (p, t, _) = round_opening(sess, prods, truncs, vec![]).await?;
    Ok((p, t))
}

/// [`round`], also opening `extra` masked values (after everything else)
/// and returning them opened.
async fn round_opening<R: Ring>(
    sess: &Session,
    prods: &[Prod<'_, R>],
    truncs: &[Trunc<'_, R>],
    extra: Vec<RingTensor<R>>,
) -> Result<(Vec<Shared<R>>, Vec<Shared<R>>, Vec<Opened<R>>)> {
    let local_trunc = sess.config().trunc == TruncMode::LocalShift;
    let (be, party0) = (sess.backend(), sess.party() == 0);
    let mut opened: Vec<RingTensor<R>> = Vec::new();
    let mut pending = Vec::with_capacity(prods.len());
    for p in prods {
        match p {
            Prod::Mul(x, y) => {
                if x.shape() != y.shape() {
                    return Err(Error::shape(
                        "nonlinear product",
                        format!("operands have shapes {} and {}", x.shape(), y.shape()),
                    ));
                }
                let req = Request::Triple {
                    ring: R::ID,
                    op: BilinearOp::Mul,
                    lhs: x.shape().clone(),
                    rhs: y.shape().clone(),
                };
                let [a, b, c] = take::<3, R>(sess.fetch::<R>(&req)?, &req)?;
                // e = x - a over a (only b is used after the opening).
                opened.push(be.rsub(a, x.share())?);
                opened.push(be.sub(y.share(), &b)?);
                pending.push(Pending::Mul { c, b });
            }
            Prod::Sq(x) => {
                let req = Request::Square {
                    ring: R::ID,
                    shape: x.shape().clone(),
                };
                let [a, c] = take::<2, R>(sess.fetch::<R>(&req)?, &req)?;
                opened.push(be.rsub(a, x.share())?);
                pending.push(Pending::Sq { c });
            }
        }
    }
    // Dealer truncation: open c = x + 2^(k-2) + r (built in r's buffer).
    let mut trunc_mat = Vec::with_capacity(truncs.len());
    for &(x, bits) in truncs {
        check_bits::<R>(bits)?;
        if bits == 0 || local_trunc {
            trunc_mat.push(None);
            continue;
        }
        let req = Request::Trunc {
            ring: R::ID,
            shape: x.shape().clone(),
            frac_bits: bits,
        };
        let [r, r_shifted, r_msb] = take::<3, R>(sess.fetch::<R>(&req)?, &req)?;
        opened.push(be.mask(r, x.share(), trunc_bias::<R>(sess))?);
        trunc_mat.push(Some((r_shifted, r_msb, bits)));
    }
    let n_extra = extra.len();
    opened.extend(extra);
    let mut opened = if opened.is_empty() {
        vec![]
    } else {
        sess.open_parts(opened).await?
    };
    let extra = opened.split_off(opened.len() - n_extra);
    let mut it = opened.into_iter();
    let mut out_p = Vec::with_capacity(prods.len());
    for (p, pend) in prods.iter().zip(pending) {
        match (p, pend) {
            (Prod::Mul(x, _), Pending::Mul { c, b }) => {
                let (e, f) = (it.next().expect("e"), it.next().expect("f"));
                // z_i = c_i + e * b_i + x_i * f
                out_p.push(Shared::from_share(be.beaver_mul_opened(
                    c,
                    &e,
                    &b,
                    x.share(),
                    &f,
                )?));
            }
            (Prod::Sq(x), Pending::Sq { c }) => {
                let e = it.next().expect("e");
                // z_i = c_i + 2 e x_i - [p0] e^2 (sums to a^2 + 2ex - e^2 = x^2)
                out_p.push(Shared::from_share(be.beaver_sq_combine(
                    c,
                    &e,
                    x.share(),
                    party0,
                )?));
            }
            _ => unreachable!("pending matches its product"),
        }
    }
    let mut out_t = Vec::with_capacity(truncs.len());
    for (&(x, bits), m) in truncs.iter().zip(trunc_mat) {
        out_t.push(match m {
            None if bits == 0 => x.clone(),
            None => trunc::truncate(sess, x, bits).await?,
            Some((r_shifted, r_msb, bits)) => {
                let c = it.next().expect("c");
                Shared::from_share(be.trunc_value(&c, r_shifted, &r_msb, bits, party0)?)
            }
        });
    }
    Ok((out_p, out_t, extra))
}

fn asked_twice(i: usize) -> Error {
    Error::Unsupported(format!("value {i} asked twice of a group (internal)"))
}

/// Party 0's share of the bias 2^(k-2) that a dealer truncation adds to
/// its input before masking (Escudero et al., CRYPTO 2020: the shifted
/// value is non-negative, so the opened value's top bit is the mask's
/// carry alone); the other parties add 0.
fn trunc_bias<R: Ring>(sess: &Session) -> R {
    if sess.party() == 0 {
        R::ONE.shl(R::BITS - 2)
    } else {
        R::ZERO
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::prg::{Prg, Seed};
    use crate::runner::{run_parties_blocking, RunOptions};

    /// Truncation shifts and the pairs multiplied: squares, cross products,
    /// a zero-bit "truncation" (exact re-randomization) and a wide shift.
    const BITS: [u32; 4] = [13, 1, 0, 20];
    const PAIRS: [(usize, usize); 5] = [(0, 0), (0, 1), (1, 3), (2, 2), (1, 2)];
    const LEN: usize = 777;

    /// Signed values below 2^(k/2 - 3) in magnitude, so every product of
    /// truncated values is far inside the ring.
    fn inputs<R: Ring>() -> Vec<Vec<R>> {
        let mut prg = Prg::new(&Seed([7; 16]), 0);
        (0..BITS.len())
            .map(|_| {
                let mut raw = vec![0u64; LEN];
                prg.fill(&mut raw);
                let half = R::BITS / 2 - 3;
                raw.iter()
                    .map(|&v| R::from_i64(((v >> (64 - half)) as i64) - (1i64 << (half - 1))))
                    .collect()
            })
            .collect()
    }

    /// Runs one group for N parties; returns (truncated values, products,
    /// rounds, bytes sent) at party 0.
    #[allow(clippy::type_complexity)]
    fn run_group<R: Ring>(
        n: usize,
        trunc: TruncMode,
        want_values: bool,
    ) -> (Vec<Vec<R>>, Vec<Vec<R>>, u64, u64) {
        let xs = Arc::new(inputs::<R>());
        let mut opts = RunOptions::new(n);
        opts.session.trunc = trunc;
        let report = run_parties_blocking(&opts, move |sess: Arc<Session>| {
            let xs = xs.clone();
            async move {
                let me = sess.party();
                let mut shared = Vec::new();
                for x in xs.iter() {
                    let t = RingTensor::new([LEN], x.clone())?;
                    shared.push(sess.share_input::<R>(0, (me == 0).then_some(&t), [LEN])?);
                }
                let before = sess.link_stats();
                let group = TruncGroup {
                    items: shared.iter().zip(BITS).collect(),
                    linked: None,
                    pairs: PAIRS.to_vec(),
                    values: match want_values {
                        true => (0..BITS.len()).collect(),
                        false => vec![],
                    },
                };
                let out = trunc_group(&sess, &group).await?;
                let cost = sess.link_stats() - before;
                let mut values = Vec::new();
                for v in out.values.iter() {
                    values.push(sess.reveal(v).await?.into_data());
                }
                let mut products = Vec::new();
                for p in out.products.iter() {
                    products.push(sess.reveal(p).await?.into_data());
                }
                Ok((values, products, cost.rounds, cost.bytes_sent))
            }
        })
        .expect("runs");
        report.parties.into_iter().next().expect("party 0").output
    }

    fn check<R: Ring>(n: usize, trunc: TruncMode) {
        let xs = inputs::<R>();
        let (values, products, rounds, bytes) = run_group::<R>(n, trunc, true);
        assert_eq!(values.len(), BITS.len());
        for ((x, v), bits) in xs.iter().zip(&values).zip(BITS) {
            for (xe, ve) in x.iter().zip(v) {
                // floor(x / 2^bits) or one more (probabilistic truncation).
                let lo = xe.ashr(bits);
                assert!(*ve == lo || *ve == lo.wrapping_add(R::ONE), "truncation");
            }
        }
        for (&(i, j), p) in PAIRS.iter().zip(&products) {
            for e in 0..LEN {
                assert_eq!(
                    p[e],
                    values[i][e].wrapping_mul(values[j][e]),
                    "product {i} x {j}"
                );
            }
        }
        assert_eq!(rounds, 1, "one round");
        // Dealer mode opens the four values only; the local shift opens
        // Beaver products instead (1 per square, 2 per other product).
        let elems = match trunc {
            TruncMode::Dealer => BITS.len(),
            TruncMode::LocalShift => 1 + 2 + 2 + 1 + 2,
        };
        assert_eq!(bytes, ((n - 1) * elems * LEN * R::BYTES) as u64, "bytes");
    }

    #[test]
    fn group_products_are_exact_for_every_party_count_and_ring() {
        for n in [2, 3, 4] {
            check::<u64>(n, TruncMode::Dealer);
            check::<u32>(n, TruncMode::Dealer);
        }
    }

    #[test]
    fn group_with_the_local_shift_multiplies_by_beaver() {
        check::<u64>(2, TruncMode::LocalShift);
    }

    /// Products only: no values come back, and each product is that of
    /// the two truncations, each floor(x / 2^bits) or one more.
    fn check_products_only<R: Ring>(n: usize, trunc: TruncMode) {
        let xs = inputs::<R>();
        let (values, products, rounds, _) = run_group::<R>(n, trunc, false);
        assert!(values.is_empty(), "values not asked for");
        assert_eq!(rounds, 1, "one round");
        for (&(i, j), p) in PAIRS.iter().zip(&products) {
            for e in 0..LEN {
                let (a, b) = (xs[i][e].ashr(BITS[i]), xs[j][e].ashr(BITS[j]));
                let ok = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .filter(|(da, db)| i != j || da == db)
                    .any(|&(da, db)| {
                        p[e] == a
                            .wrapping_add(R::from_u64(da))
                            .wrapping_mul(b.wrapping_add(R::from_u64(db)))
                    });
                assert!(ok, "product {i} x {j} at {e}");
            }
        }
    }

    /// Runs [`trunc_square_chain`] (or, with `reference`, the groups and the
    /// round it stands for) on x in [0.5, 1.5) at scale `s0`, with a fixed
    /// dealer seed; returns the opened result and the rounds and bytes the
    /// call cost party 0.
    fn run_chain<R: Ring>(
        n: usize,
        trunc: TruncMode,
        s0: u32,
        bits: &'static [u32],
        last: u32,
        reference: bool,
    ) -> (Vec<R>, u64, u64) {
        let mut prg = Prg::new(&Seed([9; 16]), 1);
        let mut raw = vec![0u64; LEN];
        prg.fill(&mut raw);
        // 0.5 + (up to 1) at scale s0.
        let xs: Vec<R> = raw
            .iter()
            .map(|&v| R::from_u64((1u64 << (s0 - 1)) + (v >> (64 - s0))))
            .collect();
        let xs = Arc::new(xs);
        let mut opts = RunOptions::new(n);
        opts.session.trunc = trunc;
        opts.dealer_seed = Some(Seed([3; 16]));
        let report = run_parties_blocking(&opts, move |sess: Arc<Session>| {
            let xs = xs.clone();
            async move {
                let t = RingTensor::new([LEN], xs.to_vec())?;
                let x = sess.share_input::<R>(0, (sess.party() == 0).then_some(&t), [LEN])?;
                let before = sess.link_stats();
                let y = if reference {
                    let mut y = x;
                    for &b in bits {
                        let g = TruncGroup {
                            items: vec![(&y, b)],
                            linked: None,
                            pairs: vec![(0, 0)],
                            values: vec![],
                        };
                        y = trunc_group(&sess, &g)
                            .await?
                            .products
                            .pop()
                            .expect("square");
                    }
                    round(&sess, &[], &[(&y, last)])
                        .await?
                        .1
                        .pop()
                        .expect("one")
                } else {
                    trunc_square_chain(&sess, &x, bits, last).await?
                };
                let cost = sess.link_stats() - before;
                Ok((
                    sess.reveal(&y).await?.into_data(),
                    cost.rounds,
                    cost.bytes_sent,
                ))
            }
        })
        .expect("runs");
        report.parties.into_iter().next().expect("party 0").output
    }

    /// The chain is the groups and the round it replaces, bit for bit
    /// (same dealer material), in as many rounds and bytes.
    #[test]
    fn square_chain_is_its_groups_bit_for_bit() {
        const B64: &[u32] = &[10, 20];
        const B32: &[u32] = &[4, 8];
        for n in [2, 3] {
            let chain = run_chain::<u64>(n, TruncMode::Dealer, 30, B64, 20, false);
            let groups = run_chain::<u64>(n, TruncMode::Dealer, 30, B64, 20, true);
            assert_eq!(chain.0, groups.0, "Z_2^64, {n} parties");
            assert_eq!((chain.1, chain.2), (3, ((n - 1) * 3 * LEN * 8) as u64));
            assert_eq!((chain.1, chain.2), (groups.1, groups.2));
            let chain = run_chain::<u32>(n, TruncMode::Dealer, 12, B32, 8, false);
            let groups = run_chain::<u32>(n, TruncMode::Dealer, 12, B32, 8, true);
            assert_eq!(chain.0, groups.0, "Z_2^32, {n} parties");
            assert_eq!((chain.1, chain.2), (3, ((n - 1) * 3 * LEN * 4) as u64));
        }
        // And it computes x^4 (each truncation is exact to one unit).
        let (y, _, _) = run_chain::<u64>(2, TruncMode::Dealer, 30, B64, 20, false);
        check_fourth_powers(&y);
    }

    /// y (at 2^-20) is x^4 for run_chain's x (at 2^-30), to 1e-4.
    fn check_fourth_powers(y: &[u64]) {
        let mut prg = Prg::new(&Seed([9; 16]), 1);
        let mut raw = vec![0u64; LEN];
        prg.fill(&mut raw);
        for (v, r) in y.iter().zip(&raw) {
            let x = ((1u64 << 29) + (r >> 34)) as f64 / 2f64.powi(30);
            let got = *v as i64 as f64 / 2f64.powi(20);
            assert!((got - x.powi(4)).abs() < 1e-4, "x^4 of {x}: {got}");
        }
    }

    /// With the local shift the chain runs its groups (Beaver squares).
    #[test]
    fn square_chain_with_the_local_shift_squares_too() {
        let (y, rounds, _) = run_chain::<u64>(2, TruncMode::LocalShift, 30, &[10, 20], 20, false);
        assert_eq!(
            rounds, 2,
            "a Beaver round per square; the last shift is local"
        );
        check_fourth_powers(&y);
    }

    #[test]
    fn group_without_values_still_multiplies() {
        check_products_only::<u64>(3, TruncMode::Dealer);
        check_products_only::<u32>(2, TruncMode::Dealer);
        check_products_only::<u64>(2, TruncMode::LocalShift);
    }
}
