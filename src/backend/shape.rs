//! The shape-only backend of dry runs: every op checks its operands exactly
//! as the real backends do and returns zeros of the right shape without
//! computing. A dry run only needs the sequence of preprocessing requests,
//! which depends on shapes alone, so planning costs no arithmetic.

use super::{bilinear::matmul_shape, Backend, BilinearOp, Conv2dParams, Pool2d};
use crate::error::{Error, Result};
use crate::prg::Seed;
use crate::ring::{Ring, RingTensor, Shape};

/// Backend for dry runs: shapes right, values zero.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShapeBackend;

impl Backend for ShapeBackend {
    fn name(&self) -> String {
        "dry-run".into()
    }
    fn add<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        a.check_same_shape(b, "add")?;
        Ok(RingTensor::zeros(a.shape().clone()))
    }
    fn sub<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        a.check_same_shape(b, "sub")?;
        Ok(RingTensor::zeros(a.shape().clone()))
    }
    fn mul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        a.check_same_shape(b, "mul")?;
        Ok(RingTensor::zeros(a.shape().clone()))
    }
    fn add_assign<R: Ring>(&self, a: &mut RingTensor<R>, b: &RingTensor<R>) -> Result<()> {
        Ok(a.check_same_shape(b, "add_assign")?)
    }
    fn neg<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(a.shape().clone()))
    }
    fn mul_scalar<R: Ring>(&self, a: &RingTensor<R>, _s: R) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(a.shape().clone()))
    }
    fn add_scalar<R: Ring>(&self, a: &RingTensor<R>, _s: R) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(a.shape().clone()))
    }
    fn ashr<R: Ring>(&self, a: &RingTensor<R>, _s: u32) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(a.shape().clone()))
    }
    fn matmul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(matmul_shape(a.shape(), b.shape())?))
    }
    fn conv2d<R: Ring>(
        &self,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
    ) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(p.output_shape(x.shape(), w.shape())?))
    }
    fn conv2d_grad_weight<R: Ring>(
        &self,
        x: &RingTensor<R>,
        g: &RingTensor<R>,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<RingTensor<R>> {
        let op = BilinearOp::Conv2dGradWeight { params: *p, kernel };
        Ok(RingTensor::zeros(op.output_shape(x.shape(), g.shape())?))
    }
    fn conv2d_grad_input<R: Ring>(
        &self,
        g: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<RingTensor<R>> {
        let op = BilinearOp::Conv2dGradInput { params: *p, input };
        Ok(RingTensor::zeros(op.output_shape(g.shape(), w.shape())?))
    }
    fn transpose<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        let d = a.dims();
        if d.len() < 2 {
            return Err(Error::shape(
                "transpose",
                format!("needs rank >= 2, got {}", a.shape()),
            ));
        }
        let mut s = d.to_vec();
        s.swap(d.len() - 2, d.len() - 1);
        Ok(RingTensor::zeros(s))
    }
    fn trunc_combine<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: &RingTensor<R>,
        r_msb: &RingTensor<R>,
        _frac_bits: u32,
        _party0: bool,
    ) -> Result<RingTensor<R>> {
        c.check_same_shape(r_shifted, "trunc_combine")?;
        c.check_same_shape(r_msb, "trunc_combine")?;
        Ok(RingTensor::zeros(c.shape().clone()))
    }
    fn pool_windows<R: Ring>(
        &self,
        x: &RingTensor<R>,
        p: &Pool2d,
        _pad: R,
    ) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(p.windows_shape(x.shape())?))
    }
    fn pool_scatter<R: Ring>(
        &self,
        routed: &RingTensor<R>,
        input: &Shape,
        p: &Pool2d,
    ) -> Result<RingTensor<R>> {
        super::pool::check_routed(routed, input, p)?;
        Ok(RingTensor::zeros(input.clone()))
    }
    fn prg_tensor<R: Ring>(
        &self,
        _seed: &Seed,
        _stream: u64,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        Ok(RingTensor::zeros(shape.clone()))
    }
}
