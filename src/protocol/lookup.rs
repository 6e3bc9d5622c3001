//! Oblivious row lookup: [T[ids]] for a shared table T [V, H] prepared as a
//! static operand and row indices known to one party (the client), e.g.
//! the word-embedding lookup of a Transformer.
//!
//! The client shares the one-hot matrix X [rows, V] of its ids (input
//! sharing costs no message) and the parties run a Beaver product against
//! T's static mask: with the dealer's ([a], [c = a b]) for the mask b of
//! T = f + b (f public since the model load), they open e = X - a and set
//! z_i = c_i + e b_i, which sums to X b. The remaining term X f is public
//! data selected by private indices: the client, who knows X, adds the rows
//! f[ids] itself. This saves every party the product x_i f
//! ([rows, V] x [V, H]) of the generic static product
//! ([`crate::protocol::beaver::product_static`]), half the lookup's compute.
//! Neither the ids reach the others (they see e, uniform) nor the table the
//! client (it sees f, masked by b).
//!
//! With a table whose mask party 0 holds alone
//! ([`crate::protocol::beaver::prepare_static_owned`], the model owner's
//! embedding table), e goes to party 0 only and only party 0 computes e b.
//!
//! Domain: any ring elements of T (exact; one-hot entries are integers, so
//! no truncation). Error: none. Rounds: 1. Bytes sent per party:
//! (N - 1) rows V k / 8 (the opening of e) with a shared mask; with an
//! owned one rows V k / 8 by parties 1..N-1, none by party 0.

use super::beaver::{take, StaticOperand};
use crate::backend::{Backend, BilinearOp};
use crate::error::{Error, Result};
use crate::preprocess::Request;
use crate::ring::{Ring, RingTensor};
use crate::session::Session;
use crate::share::Shared;

/// The one-hot matrix [ids.len(), v] of `ids`.
///
/// Errors: [`Error::Format`] for an index at or past v.
pub fn one_hot<R: Ring>(ids: &[usize], v: usize) -> Result<RingTensor<R>> {
    let mut data = vec![R::ZERO; ids.len() * v];
    for (r, &id) in ids.iter().enumerate() {
        if id >= v {
            return Err(Error::Format {
                what: "lookup indices".into(),
                detail: format!("index {id} is outside the table's {v} rows"),
            });
        }
        data[r * v + id] = R::ONE;
    }
    Ok(RingTensor::new(vec![ids.len(), v], data)?)
}

/// [table[ids[r]]] for r < rows: a [rows, H] sharing of the selected rows.
///
/// `table` is [V, H]; the `client` passes `Some(ids)` (rows indices below V),
/// everyone else `None`; all pass the public `rows`.
///
/// Errors: [`Error::ShapeMismatch`] for a table of rank other than 2 or
/// ids not `rows` long; [`Error::InvalidParty`] for a bad client or a
/// missing `ids` at the client; [`Error::Format`] for an index at or past V;
/// preprocessing and transport errors.
pub async fn lookup_rows<R: Ring>(
    sess: &Session,
    table: &StaticOperand<R>,
    client: usize,
    ids: Option<&[usize]>,
    rows: usize,
) -> Result<Shared<R>> {
    let [v, h] = table.shape().dims() else {
        return Err(Error::shape(
            "lookup_rows",
            format!("table of rank 2 expected, got {}", table.shape()),
        ));
    };
    let (v, h) = (*v, *h);
    let mine = sess.party() == client;
    let ids = if mine && !sess.is_dry_run() {
        let ids = ids.ok_or_else(|| {
            Error::InvalidParty(format!("party {client} looks rows up but passed no ids"))
        })?;
        if ids.len() != rows {
            return Err(Error::shape(
                "lookup_rows",
                format!("{} ids for {rows} rows", ids.len()),
            ));
        }
        Some(ids)
    } else {
        None
    };
    let one_hot = ids.map(|ids| one_hot::<R>(ids, v)).transpose()?;
    let x = sess.share_input(client, one_hot.as_ref(), vec![rows, v])?;
    let op = BilinearOp::Matmul;
    let req = Request::StaticTriple {
        ring: R::ID,
        id: table.mask_id(),
        op,
        lhs: x.shape().clone(),
        rhs: table.shape().clone(),
    };
    let [a, c] = take(sess.fetch::<R>(&req)?, &req)?;
    let be = sess.backend();
    let e_i = be.sub(x.share(), &a)?;
    let mut z = c;
    if let Some(e) = table.open_lhs(sess, &e_i).await? {
        be.add_assign(&mut z, &op.apply(be, &e, table.mask())?)?;
    }
    if let Some(ids) = ids {
        // The public term X f: the client selects the rows of f (opened,
        // host data off the wire) and adds them where its share lives.
        #[allow(clippy::disallowed_methods)] // the opened table: host data off the wire
        let f = table.opened().try_data()?;
        let picked: Vec<R> = ids
            .iter()
            .flat_map(|&id| f[id * h..(id + 1) * h].iter().copied())
            .collect();
        let picked = RingTensor::new(z.shape().clone(), picked)?;
        be.add_assign(&mut z, &picked)?;
    }
    Ok(Shared::from_share(z))
}
