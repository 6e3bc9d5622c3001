//! Reductions and broadcasts along one axis of a share (local ops).

use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor, Shape};
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

/// Sum along `axis` (kept with size 1).
pub(crate) fn sum<R: Ring>(x: &Shared<R>, axis: usize) -> Result<Shared<R>> {
    let (outer, len, inner) = split(x.shape(), axis, "sum along an axis")?;
    let d = x.share().data();
    let mut out = vec![R::ZERO; outer * inner];
    for o in 0..outer {
        for i in 0..len {
            let row = &d[(o * len + i) * inner..(o * len + i + 1) * inner];
            for (v, r) in out[o * inner..(o + 1) * inner].iter_mut().zip(row) {
                *v = v.wrapping_add(*r);
            }
        }
    }
    Ok(Shared::from_share(RingTensor::new(
        reduced(x.shape(), axis),
        out,
    )?))
}

/// Repeats a [.., 1, ..] share `len` times along `axis` to `shape`.
pub(crate) fn broadcast<R: Ring>(x: &Shared<R>, shape: &Shape, axis: usize) -> Result<Shared<R>> {
    let (outer, len, inner) = split(shape, axis, "broadcast along an axis")?;
    if x.numel() != outer * inner {
        return Err(Error::shape(
            "broadcast along an axis",
            format!(
                "{} cannot be broadcast to {shape} along axis {axis}",
                x.shape()
            ),
        ));
    }
    let d = x.share().data();
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        for _ in 0..len {
            out.extend_from_slice(&d[o * inner..(o + 1) * inner]);
        }
    }
    Ok(Shared::from_share(RingTensor::new(shape.clone(), out)?))
}
