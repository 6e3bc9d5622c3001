//! Pooling geometry and the two data movements of max pooling: the window
//! gather of the forward pass (pooling's im2col) and its adjoint, the
//! gradient scatter of the backward pass (Falcon and Piranha route the
//! gradient through the argmax one-hot the same way). The host loops here
//! are the reference the backends' [`super::Backend::pool_windows`] and
//! [`super::Backend::pool_scatter`] follow (`kernels/pool.cu` on the GPU).

use super::Conv2dParams;
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor, Shape};

/// Window size and geometry of a 2-D pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Window (rows, columns), both >= 1.
    pub kernel: (usize, usize),
    /// Stride and padding; padded positions never win the max.
    pub geometry: Conv2dParams,
}

impl Pool2d {
    /// A k x k window with stride k and no padding (the usual "maxpool k").
    pub fn square(k: usize) -> Self {
        Pool2d {
            kernel: (k, k),
            geometry: Conv2dParams {
                stride: (k, k),
                padding: (0, 0),
            },
        }
    }

    /// Output shape [n, c, ho, wo] for input [n, c, h, w].
    ///
    /// Errors: [`Error::ShapeMismatch`] for a non-4-D input, a zero window or
    /// stride, or a window larger than the padded input.
    pub fn output_shape(&self, x: &Shape) -> Result<Shape> {
        let d = x.dims();
        if d.len() != 4 || self.kernel.0 == 0 || self.kernel.1 == 0 {
            return Err(Error::shape(
                "maxpool2d",
                format!("need x [n,c,h,w] and a window >= 1, got {x}"),
            ));
        }
        let w = Shape(vec![d[1], d[1], self.kernel.0, self.kernel.1]);
        self.geometry.output_shape(x, &w)
    }

    /// Shape of the gathered windows of input `x`: [n c ho wo, kh kw].
    ///
    /// Errors: as [`Pool2d::output_shape`].
    pub fn windows_shape(&self, x: &Shape) -> Result<Shape> {
        let out = self.output_shape(x)?;
        Ok(Shape(vec![out.numel(), self.kernel.0 * self.kernel.1]))
    }

    /// Input index (within one [h, w] plane) of window element (ki, kj) of
    /// output position (oy, ox), or None in the padding.
    fn source(
        &self,
        (h, w): (usize, usize),
        (oy, ox): (usize, usize),
        (ki, kj): (usize, usize),
    ) -> Option<usize> {
        let g = &self.geometry;
        let iy = (oy * g.stride.0 + ki) as isize - g.padding.0 as isize;
        let ix = (ox * g.stride.1 + kj) as isize - g.padding.1 as isize;
        (iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w)
            .then(|| iy as usize * w + ix as usize)
    }

    /// Calls `f(window element index, input index or None)` for every
    /// element of every window of input `x`, in the windows' row-major order
    /// (element k belongs to output position k / (kh kw)).
    ///
    /// Errors: as [`Pool2d::output_shape`].
    pub(crate) fn for_each_tap(
        &self,
        x: &Shape,
        mut f: impl FnMut(usize, Option<usize>),
    ) -> Result<()> {
        let out = self.output_shape(x)?;
        let (d, o) = (x.dims(), out.dims());
        let (planes, h, w, ho, wo) = (d[0] * d[1], d[2], d[3], o[2], o[3]);
        let mut idx = 0;
        for img in 0..planes {
            for oy in 0..ho {
                for ox in 0..wo {
                    for ki in 0..self.kernel.0 {
                        for kj in 0..self.kernel.1 {
                            let src = self.source((h, w), (oy, ox), (ki, kj));
                            f(idx, src.map(|i| img * h * w + i));
                            idx += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The window gather on the host: [`super::Backend::pool_windows`] of the
/// CPU backend.
pub(crate) fn windows_host<R: Ring>(
    x: &RingTensor<R>,
    p: &Pool2d,
    pad: R,
) -> Result<RingTensor<R>> {
    let shape = p.windows_shape(x.shape())?;
    let xd = x.try_data()?;
    let mut out = Vec::with_capacity(shape.numel());
    p.for_each_tap(x.shape(), |_, src| out.push(src.map_or(pad, |i| xd[i])))?;
    Ok(RingTensor::new(shape, out)?)
}

/// The gradient scatter on the host: [`super::Backend::pool_scatter`] of
/// the CPU backend.
pub(crate) fn scatter_host<R: Ring>(
    routed: &RingTensor<R>,
    input: &Shape,
    p: &Pool2d,
) -> Result<RingTensor<R>> {
    check_routed(routed, input, p)?;
    let r = routed.try_data()?;
    let mut gin = vec![R::ZERO; input.numel()];
    p.for_each_tap(input, |k, src| {
        if let Some(i) = src {
            gin[i] = gin[i].wrapping_add(r[k]);
        }
    })?;
    Ok(RingTensor::new(input.clone(), gin)?)
}

/// `routed` holds one value per window element of `input`'s pooling.
///
/// Errors: [`Error::ShapeMismatch`].
pub(crate) fn check_routed<R: Ring>(
    routed: &RingTensor<R>,
    input: &Shape,
    p: &Pool2d,
) -> Result<()> {
    let want = p.windows_shape(input)?;
    if routed.numel() != want.numel() {
        return Err(Error::shape(
            "pool_scatter",
            format!(
                "{} values routed, the windows of {input} hold {}",
                routed.numel(),
                want.numel()
            ),
        ));
    }
    Ok(())
}
