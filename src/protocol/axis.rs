//! Reductions and broadcasts along one axis of a share (local ops).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ring::{Ring, Shape};
use crate::session::Session;
use crate::share::Shared;

/// (outer, len, inner) sizes around `axis`.
///
/// Errors: [`Error::ShapeMismatch`] for a missing or empty axis.
pub(crate) fn split(shape: &Shape, axis: usize, op: &'static str) -> Result<(usize, usize, usize)> {
    let d = shape.dims();
    if axis >= d.len() || d[axis] == 0 {
        return Err(Error::shape(
            op,
            format!("axis {axis} of shape {shape} is missing or empty"),
        ));
    }
    Ok((
        d[..axis].iter().product(),
        d[axis],
        d[axis + 1..].iter().product(),
    ))
}

/// The shape with `axis` reduced to 1.
pub(crate) fn reduced(shape: &Shape, axis: usize) -> Shape {
    let mut d = shape.dims().to_vec();
    d[axis] = 1;
    Shape(d)
}

/// Sum along `axis` (kept with size 1), on the backend.
///
/// Errors: [`Error::ShapeMismatch`] for a missing or empty axis.
pub(crate) fn sum<R: Ring>(sess: &Session, x: &Shared<R>, axis: usize) -> Result<Shared<R>> {
    split(x.shape(), axis, "sum along an axis")?;
    Ok(Shared::from_share(
        sess.backend().sum_axis(x.share(), axis)?,
    ))
}

/// Repeats a [.., 1, ..] share `len` times along `axis` to `shape`, on the
/// backend.
///
/// Errors: [`Error::ShapeMismatch`] for a missing or empty axis or a size
/// that does not fit.
pub(crate) fn broadcast<R: Ring>(
    sess: &Session,
    x: &Shared<R>,
    shape: &Shape,
    axis: usize,
) -> Result<Shared<R>> {
    split(shape, axis, "broadcast along an axis")?;
    Ok(Shared::from_share(sess.backend().broadcast_axis(
        x.share(),
        shape,
        axis,
    )?))
}
