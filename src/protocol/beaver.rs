//! Beaver products: one routine for every bilinear op (elementwise multiply,
//! square, matmul, batched matmul, conv2d), after Beaver, "Efficient
//! Multiparty Protocols Using Circuit Randomization" (CRYPTO 1991), in the
//! dealer model of CrypTen's `beaver.py`.
//!
//! With a dealer triple ([a], [b], [c = a op b]), the parties open
//! e = x - a and f = y - b in ONE round, then each party i sets
//! z_i = c_i + e op b_i + x_i op f, which sums to x op y because
//! c + e op b + x op f = a op b + (x - a) op b + x op (y - b).
//!
//! Domain: any ring elements (exact mod 2^k; for fixed point, follow with
//! [`crate::protocol::trunc`]). Error: none (exact). Rounds: 1.
//! Bytes sent per party: (N - 1) * (numel(x) + numel(y)) * k / 8; for a
//! square, or a product with a static operand, (N - 1) * numel(x) * k / 8.

use std::sync::Arc;

use crate::backend::{Backend, BilinearOp, Conv2dParams, Device};
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::{Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::Shared;

/// z_i = c_i + e op b_i + x_i op f: this party's share of x op y.
async fn combine<R: Ring>(
    sess: &Session,
    op: &BilinearOp,
    c: RingTensor<R>,
    e: Operand<'_, R>,
    b_i: Operand<'_, R>,
    x_i: &RingTensor<R>,
    f: Operand<'_, R>,
) -> Result<Shared<R>> {
    let be = sess.backend();
    if *op == BilinearOp::Mul {
        // One fused pass (one kernel on the GPU) instead of four ops.
        return Ok(Shared::from_share(be.beaver_mul_combine(
            c,
            e.get(),
            b_i.get(),
            x_i,
            f.get(),
        )?));
    }
    let terms = vec![(e, b_i), (Operand::Borrowed(x_i), f)];
    Ok(Shared::from_share(local_terms(sess, *op, c, terms).await?))
}

/// Products of at least this many multiply-adds
/// ([`BilinearOp::multiplications`]) go to the session's compute stage;
/// smaller ones run inline (a hand-off costs tens of microseconds).
const QUEUED_MIN_MULTIPLICATIONS: usize = 1 << 18;

/// One operand of a local product: borrowed from the caller, owned, or
/// shared (a static operand's mask and opened value, used by every
/// product against it).
enum Operand<'a, R: Ring> {
    Borrowed(&'a RingTensor<R>),
    Owned(RingTensor<R>),
    Shared(Arc<RingTensor<R>>),
}

impl<R: Ring> Operand<'_, R> {
    fn get(&self) -> &RingTensor<R> {
        match self {
            Operand::Borrowed(t) => t,
            Operand::Owned(t) => t,
            Operand::Shared(t) => t,
        }
    }

    /// The operand as a value a worker thread may hold (a borrowed one is
    /// copied).
    fn into_static(self) -> Operand<'static, R> {
        match self {
            Operand::Borrowed(t) => Operand::Owned(t.clone()),
            Operand::Owned(t) => Operand::Owned(t),
            Operand::Shared(t) => Operand::Shared(t),
        }
    }
}

/// acc + sum of x op y over `terms`: the local side of a Beaver product.
/// Runs on the session's compute stage ([`Session::compute_queue`]) when
/// it has one and the products are large, inline otherwise; the result is
/// the same either way.
///
/// Errors: backend errors; the compute stage's errors.
async fn local_terms<R: Ring>(
    sess: &Session,
    op: BilinearOp,
    acc: RingTensor<R>,
    terms: Vec<(Operand<'_, R>, Operand<'_, R>)>,
) -> Result<RingTensor<R>> {
    let large = match terms.first() {
        Some((x, y)) => {
            op.multiplications(x.get().shape(), y.get().shape())? >= QUEUED_MIN_MULTIPLICATIONS
        }
        None => false,
    };
    match sess.compute_queue() {
        Some(queue) if large => {
            let be = sess.backend().clone();
            let terms: Vec<_> = terms
                .into_iter()
                .map(|(x, y)| (x.into_static(), y.into_static()))
                .collect();
            queue.run(move || sum_terms(&be, &op, acc, &terms)).await
        }
        _ => sum_terms(sess.backend(), &op, acc, &terms),
    }
}

/// acc + sum of x op y over `terms`, on `be`.
fn sum_terms<R: Ring>(
    be: &Device,
    op: &BilinearOp,
    mut acc: RingTensor<R>,
    terms: &[(Operand<'_, R>, Operand<'_, R>)],
) -> Result<RingTensor<R>> {
    for (x, y) in terms {
        be.add_assign(&mut acc, &op.apply(be, x.get(), y.get())?)?;
    }
    Ok(acc)
}

/// The N tensors of one request's material, or a format error.
pub(crate) fn take<const N: usize, R: Ring>(
    m: Vec<RingTensor<R>>,
    req: &Request,
) -> Result<[RingTensor<R>; N]> {
    m.try_into().map_err(|m: Vec<_>| Error::Format {
        what: "preprocessing material".into(),
        detail: format!("{req} should have {N} tensors, got {}", m.len()),
    })
}

/// [x op y] for shared x and y: one round, exact in Z_2^k.
///
/// Shapes: as [`BilinearOp::output_shape`]. Errors:
/// [`Error::ShapeMismatch`], preprocessing and transport errors.
pub async fn product<R: Ring>(
    sess: &Session,
    op: BilinearOp,
    x: &Shared<R>,
    y: &Shared<R>,
) -> Result<Shared<R>> {
    op.output_shape(x.shape(), y.shape())?;
    let req = Request::Triple {
        ring: R::ID,
        op,
        lhs: x.shape().clone(),
        rhs: y.shape().clone(),
    };
    let [a, b, c] = take(sess.fetch::<R>(&req)?, &req)?;
    let be = sess.backend();
    let e_i = be.sub(x.share(), &a)?;
    let f_i = be.sub(y.share(), &b)?;
    let [e, f]: [RingTensor<R>; 2] =
        sess.open(&[&e_i, &f_i])
            .await?
            .try_into()
            .map_err(|v: Vec<_>| Error::Format {
                what: "opening".into(),
                detail: format!("2 values expected, got {}", v.len()),
            })?;
    combine(
        sess,
        &op,
        c,
        Operand::Owned(e),
        Operand::Owned(b),
        x.share(),
        Operand::Owned(f),
    )
    .await
}

/// Several independent products in ONE round: all the e and f of every
/// product go out in a single message per peer. Same cost per product as
/// [`product`], one round in total.
///
/// Errors: as [`product`].
pub async fn product_many<R: Ring>(
    sess: &Session,
    items: &[(BilinearOp, &Shared<R>, &Shared<R>)],
) -> Result<Vec<Shared<R>>> {
    let be = sess.backend();
    let mut triples = Vec::with_capacity(items.len());
    let mut masked = Vec::with_capacity(2 * items.len());
    for (op, x, y) in items {
        op.output_shape(x.shape(), y.shape())?;
        let req = Request::Triple {
            ring: R::ID,
            op: *op,
            lhs: x.shape().clone(),
            rhs: y.shape().clone(),
        };
        let [a, b, c] = take(sess.fetch::<R>(&req)?, &req)?;
        masked.push(be.sub(x.share(), &a)?);
        masked.push(be.sub(y.share(), &b)?);
        triples.push((b, c));
    }
    let refs: Vec<&RingTensor<R>> = masked.iter().collect();
    let mut opened = sess.open(&refs).await?.into_iter();
    let mut out = Vec::with_capacity(items.len());
    for ((op, x, _), (b, c)) in items.iter().zip(triples) {
        let (Some(e), Some(f)) = (opened.next(), opened.next()) else {
            return Err(Error::Format {
                what: "opening".into(),
                detail: format!("{} values for {} products", refs.len(), items.len()),
            });
        };
        let (e, b, f) = (Operand::Owned(e), Operand::Owned(b), Operand::Owned(f));
        out.push(combine(sess, op, c, e, b, x.share(), f).await?);
    }
    Ok(out)
}

/// [x * y] elementwise. One round; see [`product`].
///
/// Errors: as [`product`].
pub async fn mul<R: Ring>(sess: &Session, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>> {
    product(sess, BilinearOp::Mul, x, y).await
}

/// [x @ y]: [m,k] x [k,n] or batched [b,m,k] x [b,k,n]. One round.
///
/// Errors: as [`product`].
pub async fn matmul<R: Ring>(sess: &Session, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>> {
    product(sess, BilinearOp::Matmul, x, y).await
}

/// [conv2d(x, w)], x [n,c,h,w], w [o,c,kh,kw], NCHW. One round.
///
/// Errors: as [`product`].
pub async fn conv2d<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    w: &Shared<R>,
    p: Conv2dParams,
) -> Result<Shared<R>> {
    product(sess, BilinearOp::Conv2d(p), x, w).await
}

/// [x * x] elementwise with a square pair ([a], [a^2]): one round opening
/// only e = x - a, then z_i = c_i + e * a_i + x_i * e.
///
/// Errors: preprocessing and transport errors.
pub async fn square<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let req = Request::Square {
        ring: R::ID,
        shape: x.shape().clone(),
    };
    let [a, c] = take(sess.fetch::<R>(&req)?, &req)?;
    let e_i = sess.backend().sub(x.share(), &a)?;
    let e = sess.open(&[&e_i]).await?.pop().expect("one value");
    let (e_b, a) = (Operand::Borrowed(&e), Operand::Borrowed(&a));
    let op = BilinearOp::Mul;
    combine(sess, &op, c, e_b, a, x.share(), Operand::Borrowed(&e)).await
}

/// A static right operand (e.g. model weights) whose mask is opened once:
/// f = y - b is public, and every later [`product_static`] opens only
/// x - a. Reusing b is safe because y - b is opened once, for one fixed y.
///
/// The mask b is either shared by all parties ([`prepare_static`]) or held
/// by party 0 alone when party 0 knows y ([`prepare_static_owned`]): then
/// e = x - a is opened to party 0 only and e (op) b is party 0's term, so
/// the other parties send e to one peer instead of N - 1 and compute one
/// product (x_i (op) f) instead of two.
#[derive(Clone, Debug)]
pub struct StaticOperand<R: Ring> {
    id: u64,
    value: Shared<R>,
    /// Shared (not copied) by the products on the compute stage.
    mask: Arc<RingTensor<R>>,
    opened: Arc<RingTensor<R>>,
    owned: bool,
}

impl<R: Ring> StaticOperand<R> {
    /// The shared value y.
    pub fn value(&self) -> &Shared<R> {
        &self.value
    }
    /// Its shape.
    pub fn shape(&self) -> &Shape {
        self.value.shape()
    }
    /// The public opened value f = y - b.
    pub fn opened(&self) -> &RingTensor<R> {
        &self.opened
    }
    /// This party's share of the static mask b.
    pub(crate) fn mask(&self) -> &RingTensor<R> {
        &self.mask
    }
    /// The dealer's id of the mask, named by [`Request::StaticTriple`].
    pub(crate) fn mask_id(&self) -> u64 {
        self.id
    }
    /// Whether party 0 alone holds the mask.
    pub fn owned(&self) -> bool {
        self.owned
    }
    /// Opens e = x - a (this party's `e_i`) for a product against this
    /// operand, in one round: to every party for a shared mask, to party 0
    /// alone for an owned one. Returns e where this party needs it for the
    /// term e (op) b.
    pub(crate) async fn open_lhs(
        &self,
        sess: &Session,
        e_i: &RingTensor<R>,
    ) -> Result<Option<RingTensor<R>>> {
        Ok(match self.owned {
            true => sess.open_to(0, &[e_i]).await?.and_then(|mut v| v.pop()),
            false => sess.open(&[e_i]).await?.pop(),
        })
    }
}

/// Masks and opens a static operand once. Rounds: 1. Bytes sent per party:
/// (N - 1) * numel(y) * k / 8.
///
/// Errors: preprocessing and transport errors.
pub async fn prepare_static<R: Ring>(sess: &Session, y: &Shared<R>) -> Result<StaticOperand<R>> {
    let id = sess.next_static_id();
    let req = Request::StaticMask {
        ring: R::ID,
        id,
        shape: y.shape().clone(),
    };
    let [b] = take(sess.fetch::<R>(&req)?, &req)?;
    let f_i = sess.backend().sub(y.share(), &b)?;
    let f = sess.open(&[&f_i]).await?.pop().expect("one value");
    Ok(StaticOperand {
        id,
        value: y.clone(),
        mask: Arc::new(b),
        opened: Arc::new(f),
        owned: false,
    })
}

/// [`prepare_static`] with the mask held by party 0 alone
/// ([`Request::OwnedMask`]), for a y that party 0 knows (its own model
/// weights): party 0 learns nothing new from f = y - b, the others see y
/// masked by a b they do not hold. Never use it for a y party 0 must not
/// learn. Rounds: 1. Bytes sent per party: (N - 1) * numel(y) * k / 8.
///
/// Errors: preprocessing and transport errors.
pub async fn prepare_static_owned<R: Ring>(
    sess: &Session,
    y: &Shared<R>,
) -> Result<StaticOperand<R>> {
    let id = sess.next_static_id();
    let req = Request::OwnedMask {
        ring: R::ID,
        id,
        shape: y.shape().clone(),
    };
    let [b] = take(sess.fetch::<R>(&req)?, &req)?;
    let f_i = match sess.party() {
        0 => sess.backend().sub(y.share(), &b)?,
        _ => y.share().clone(),
    };
    let f = sess.open(&[&f_i]).await?.pop().expect("one value");
    Ok(StaticOperand {
        id,
        value: y.clone(),
        mask: Arc::new(b),
        opened: Arc::new(f),
        owned: true,
    })
}

/// [x op y] for a static y prepared by [`prepare_static`] or
/// [`prepare_static_owned`]: one round that opens only e = x - a. Bytes
/// sent per party: (N - 1) * numel(x) * k / 8 for a shared mask; for an
/// owned one numel(x) * k / 8 by parties 1..N-1 (to party 0) and none by
/// party 0.
///
/// Errors: [`Error::ShapeMismatch`], preprocessing and transport errors.
pub async fn product_static<R: Ring>(
    sess: &Session,
    op: BilinearOp,
    x: &Shared<R>,
    y: &StaticOperand<R>,
) -> Result<Shared<R>> {
    op.output_shape(x.shape(), y.shape())?;
    let req = Request::StaticTriple {
        ring: R::ID,
        id: y.id,
        op,
        lhs: x.shape().clone(),
        rhs: y.shape().clone(),
    };
    let [a, c] = take(sess.fetch::<R>(&req)?, &req)?;
    let be = sess.backend();
    let e_i = be.sub(x.share(), &a)?;
    let e = y.open_lhs(sess, &e_i).await?;
    // z_i = c_i + [e known] e op b_i + x_i op f
    let mut terms = Vec::with_capacity(2);
    if let Some(e) = e {
        terms.push((Operand::Owned(e), Operand::Shared(y.mask.clone())));
    }
    terms.push((
        Operand::Borrowed(x.share()),
        Operand::Shared(y.opened.clone()),
    ));
    Ok(Shared::from_share(local_terms(sess, op, c, terms).await?))
}
