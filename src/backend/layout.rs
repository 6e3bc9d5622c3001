//! Layout ops: reductions, broadcasts, slices, concatenations and axis
//! permutations of ring tensors (the data movement of LayerNorm, softmax,
//! biases and attention heads), as backend ops so shares stay where they
//! are. This file holds their shape checks and host loops (the CPU
//! backend's implementation, and the default); `kernels/layout.cu` holds
//! the CUDA ones, bit for bit the same.
//!
//! An axis op sees its tensor as [outer, len, inner] around the axis
//! (outer: the product of the dimensions before it, inner: after it).

use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor, Shape};

/// A shape seen around one axis: [outer, len, inner].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisSplit {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// The axis's length.
    pub len: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

impl AxisSplit {
    /// `shape` around `axis`.
    ///
    /// Errors: [`Error::ShapeMismatch`] for an axis past the rank.
    pub fn of(shape: &Shape, axis: usize, op: &'static str) -> Result<Self> {
        let d = shape.dims();
        if axis >= d.len() {
            return Err(Error::shape(
                op,
                format!("axis {axis} of shape {shape} is missing"),
            ));
        }
        Ok(AxisSplit {
            outer: d[..axis].iter().product(),
            len: d[axis],
            inner: d[axis + 1..].iter().product(),
        })
    }
}

/// `shape` with `axis` set to `len`.
pub(crate) fn with_axis(shape: &Shape, axis: usize, len: usize) -> Shape {
    let mut d = shape.dims().to_vec();
    d[axis] = len;
    Shape(d)
}

/// The sum along `axis`, kept with length 1: x [.., n, ..] -> [.., 1, ..].
///
/// Errors: [`Error::ShapeMismatch`] for an axis past the rank.
pub(crate) fn sum_host<R: Ring>(x: &RingTensor<R>, axis: usize) -> Result<RingTensor<R>> {
    let s = AxisSplit::of(x.shape(), axis, "sum along an axis")?;
    let d = x.try_data()?;
    let mut out = vec![R::ZERO; s.outer * s.inner];
    for o in 0..s.outer {
        let acc = &mut out[o * s.inner..(o + 1) * s.inner];
        for i in 0..s.len {
            let row = &d[(o * s.len + i) * s.inner..(o * s.len + i + 1) * s.inner];
            acc.iter_mut()
                .zip(row)
                .for_each(|(v, r)| *v = v.wrapping_add(*r));
        }
    }
    Ok(RingTensor::new(with_axis(x.shape(), axis, 1), out)?)
}

/// The checks of a broadcast: x holds outer * inner elements of `shape`
/// around `axis`.
pub(crate) fn check_broadcast<R: Ring>(
    x: &RingTensor<R>,
    shape: &Shape,
    axis: usize,
) -> Result<AxisSplit> {
    let s = AxisSplit::of(shape, axis, "broadcast along an axis")?;
    if x.numel() != s.outer * s.inner {
        return Err(Error::shape(
            "broadcast along an axis",
            format!(
                "{} cannot be broadcast to {shape} along axis {axis}",
                x.shape()
            ),
        ));
    }
    Ok(s)
}

/// x [.., 1, ..] repeated along `axis` to `shape`.
///
/// Errors: [`Error::ShapeMismatch`] unless x has `shape`'s size with
/// `axis` taken out.
pub(crate) fn broadcast_host<R: Ring>(
    x: &RingTensor<R>,
    shape: &Shape,
    axis: usize,
) -> Result<RingTensor<R>> {
    let s = check_broadcast(x, shape, axis)?;
    let d = x.try_data()?;
    let mut out = Vec::with_capacity(shape.numel());
    for o in 0..s.outer {
        for _ in 0..s.len {
            out.extend_from_slice(&d[o * s.inner..(o + 1) * s.inner]);
        }
    }
    Ok(RingTensor::new(shape.clone(), out)?)
}

/// The checks of a slice: [start, start + len) lies on `axis`.
pub(crate) fn check_slice<R: Ring>(
    x: &RingTensor<R>,
    axis: usize,
    start: usize,
    len: usize,
) -> Result<AxisSplit> {
    let s = AxisSplit::of(x.shape(), axis, "slice along an axis")?;
    if start + len > s.len {
        return Err(Error::shape(
            "slice along an axis",
            format!(
                "elements {start}..{} of axis {axis} of {}",
                start + len,
                x.shape()
            ),
        ));
    }
    Ok(s)
}

/// Elements [start, start + len) of `axis`.
///
/// Errors: [`Error::ShapeMismatch`] for a range past the axis.
pub(crate) fn slice_host<R: Ring>(
    x: &RingTensor<R>,
    axis: usize,
    start: usize,
    len: usize,
) -> Result<RingTensor<R>> {
    let s = check_slice(x, axis, start, len)?;
    let d = x.try_data()?;
    let mut out = Vec::with_capacity(s.outer * len * s.inner);
    for o in 0..s.outer {
        let base = (o * s.len + start) * s.inner;
        out.extend_from_slice(&d[base..base + len * s.inner]);
    }
    Ok(RingTensor::new(with_axis(x.shape(), axis, len), out)?)
}

/// The output shape of a concatenation, after its checks: every part has
/// the first one's shape except along `axis`.
pub(crate) fn concat_shape<R: Ring>(parts: &[&RingTensor<R>], axis: usize) -> Result<Shape> {
    let first = parts
        .first()
        .ok_or_else(|| Error::shape("concatenation", "no parts"))?;
    AxisSplit::of(first.shape(), axis, "concatenation")?;
    let mut total = 0;
    for p in parts {
        if p.shape().rank() != first.shape().rank()
            || with_axis(p.shape(), axis, 0) != with_axis(first.shape(), axis, 0)
        {
            return Err(Error::shape(
                "concatenation",
                format!(
                    "parts of shapes {} and {} along axis {axis}",
                    first.shape(),
                    p.shape()
                ),
            ));
        }
        total += p.dims()[axis];
    }
    Ok(with_axis(first.shape(), axis, total))
}

/// The parts joined along `axis`.
///
/// Errors: [`Error::ShapeMismatch`] for no parts or parts that differ
/// elsewhere than along `axis`.
pub(crate) fn concat_host<R: Ring>(parts: &[&RingTensor<R>], axis: usize) -> Result<RingTensor<R>> {
    let shape = concat_shape(parts, axis)?;
    let s = AxisSplit::of(&shape, axis, "concatenation")?;
    let data: Vec<&[R]> = parts
        .iter()
        .map(|p| p.try_data())
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::with_capacity(shape.numel());
    for o in 0..s.outer {
        for (p, d) in parts.iter().zip(&data) {
            let n = p.dims()[axis] * s.inner;
            out.extend_from_slice(&d[o * n..(o + 1) * n]);
        }
    }
    Ok(RingTensor::new(shape, out)?)
}

/// The checks of a permutation: `perm` is a permutation of 0..rank, rank
/// at most [`MAX_PERMUTE_RANK`]. Returns the output shape.
pub(crate) fn permute_shape(shape: &Shape, perm: &[usize]) -> Result<Shape> {
    let rank = shape.rank();
    let mut seen = vec![false; rank];
    let ok = perm.len() == rank
        && rank <= MAX_PERMUTE_RANK
        && perm
            .iter()
            .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
    if !ok {
        return Err(Error::shape(
            "permute",
            format!("{perm:?} is not a permutation of the axes of {shape} (rank at most {MAX_PERMUTE_RANK})"),
        ));
    }
    Ok(Shape(perm.iter().map(|&p| shape.dims()[p]).collect()))
}

/// Highest rank [`permute_host`] (and the CUDA kernel) takes.
pub const MAX_PERMUTE_RANK: usize = 6;

/// Row-major strides of `dims`.
pub(crate) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// The axes of x reordered: output axis i is input axis `perm[i]` (as
/// PyTorch's `permute`).
///
/// Errors: [`Error::ShapeMismatch`] for a `perm` that is not a permutation
/// of x's axes, or a rank above [`MAX_PERMUTE_RANK`].
pub(crate) fn permute_host<R: Ring>(x: &RingTensor<R>, perm: &[usize]) -> Result<RingTensor<R>> {
    let out_shape = permute_shape(x.shape(), perm)?;
    let d = x.try_data()?;
    let in_strides = strides(x.dims());
    // The input stride of each output axis.
    let step: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let od = out_shape.dims();
    let mut out = Vec::with_capacity(d.len());
    let mut idx = vec![0usize; od.len()];
    for _ in 0..d.len() {
        out.push(d[idx.iter().zip(&step).map(|(i, s)| i * s).sum::<usize>()]);
        for a in (0..od.len()).rev() {
            idx[a] += 1;
            if idx[a] < od[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(RingTensor::new(out_shape, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize]) -> RingTensor<u64> {
        let n: usize = dims.iter().product();
        RingTensor::new(dims.to_vec(), (0..n as u64).map(|v| v * 7 + 1).collect()).unwrap()
    }

    #[test]
    fn sum_and_broadcast_are_adjoint_shapes() {
        let x = t(&[2, 3, 4]);
        let s = sum_host(&x, 1).unwrap();
        assert_eq!(s.dims(), &[2, 1, 4]);
        let d = x.data();
        assert_eq!(s.data()[5], d[13] + d[17] + d[21]);
        let b = broadcast_host(&s, x.shape(), 1).unwrap();
        assert_eq!(b.dims(), &[2, 3, 4]);
        assert_eq!(b.data()[12 + 4 + 2], s.data()[4 + 2]);
        assert!(broadcast_host(&x, &Shape::from([2, 3, 4]), 1).is_err());
        assert!(sum_host(&x, 3).is_err());
    }

    #[test]
    fn slices_concatenate_back() {
        let x = t(&[3, 5, 2]);
        let a = slice_host(&x, 1, 0, 2).unwrap();
        let b = slice_host(&x, 1, 2, 3).unwrap();
        assert_eq!(a.dims(), &[3, 2, 2]);
        assert_eq!(concat_host(&[&a, &b], 1).unwrap(), x);
        assert!(slice_host(&x, 1, 4, 2).is_err());
        assert!(concat_host(&[&a, &x], 0).is_err());
        let rows = concat_host(
            &[
                &slice_host(&x, 0, 0, 1).unwrap(),
                &slice_host(&x, 0, 1, 2).unwrap(),
            ],
            0,
        );
        assert_eq!(rows.unwrap(), x);
    }

    #[test]
    fn permute_matches_index_arithmetic() {
        let x = t(&[2, 3, 4, 5]);
        let p = permute_host(&x, &[0, 2, 3, 1]).unwrap();
        assert_eq!(p.dims(), &[2, 4, 5, 3]);
        for (a, b, c, d) in [(1, 2, 3, 1), (0, 0, 4, 2), (1, 3, 0, 0)] {
            assert_eq!(
                p.data()[((a * 4 + b) * 5 + c) * 3 + d],
                x.data()[((a * 3 + d) * 4 + b) * 5 + c]
            );
        }
        let back = permute_host(&p, &[0, 3, 1, 2]).unwrap();
        assert_eq!(back, x);
        assert!(permute_host(&x, &[0, 1, 1, 2]).is_err());
        assert!(permute_host(&x, &[0, 1, 2]).is_err());
    }
}
