//! Backends: where share arithmetic runs.
//!
//! One [`Backend`] trait (elementwise ring ops, GEMM, convolution, PRG
//! expansion) with one implementation per device, and a [`Device`] enum that
//! picks one at run time (candle's one-tensor-API-many-backends split): the
//! CPU backend (the reference), the shape-only dry-run backend, the
//! transfer-audit backend ([`audit`]: CPU arithmetic on a simulated device
//! memory that counts every host round trip), and the CUDA
//! backend ([`cuda`], feature `cuda`, chosen by [`select_device`]; unverified
//! on a GPU so far, see `kernels/README.md`).

mod adder;
pub mod audit;
mod bilinear;
pub mod binary;
pub mod carry_groups;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod fanin;
pub mod layout;
pub mod limb;
pub(crate) mod pool;
mod queue;
// Only the CUDA backend lowers convolutions this way (the CPU has its own loops).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod lowering;
mod select;
mod shape;
pub mod steps;

pub use audit::{AuditBackend, TransferCounts};
pub use bilinear::{BilinearOp, Conv2dParams};
pub use cpu::CpuBackend;
pub use pool::Pool2d;
pub use queue::ComputeQueue;
pub use select::{select_device, DeviceChoice};
pub use shape::ShapeBackend;
pub use steps::{MpcSteps, TruncParts, TruncProduct};

use crate::error::Result;
use crate::prg::Seed;
use crate::ring::{Ring, RingTensor, Shape};

/// Local (non-interactive) arithmetic on ring tensors.
///
/// Every op wraps modulo 2^k. Elementwise ops need operands of equal shape
/// (no broadcasting) and fail with [`crate::Error::ShapeMismatch`] otherwise.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Short name for logs ("cpu", "cuda:0").
    fn name(&self) -> String;
    /// a + b, elementwise.
    fn add<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>>;
    /// a - b, elementwise.
    fn sub<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>>;
    /// a * b, elementwise (Hadamard product).
    fn mul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>>;
    /// a += b in place, elementwise.
    fn add_assign<R: Ring>(&self, a: &mut RingTensor<R>, b: &RingTensor<R>) -> Result<()>;
    /// -a.
    fn neg<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>>;
    /// a * s for a public scalar s.
    fn mul_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>>;
    /// a + s for a public scalar s.
    fn add_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>>;
    /// Arithmetic (sign-extending) right shift of every element by `s` < k
    /// bits (a shift of k or more is [`Error::Unsupported`] on CUDA).
    fn ashr<R: Ring>(&self, a: &RingTensor<R>, s: u32) -> Result<RingTensor<R>>;
    /// Matrix product. Shapes: [m, k] x [k, n] -> [m, n], or batched
    /// [b, m, k] x [b, k, n] -> [b, m, n].
    fn matmul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>>;
    /// 2-D convolution (cross-correlation, as in PyTorch), NCHW.
    /// Shapes: x [n, c, h, w], weight [o, c, kh, kw] -> [n, o, ho, wo] with
    /// ho = (h + 2 * pad_h - kh) / stride_h + 1 (likewise wo).
    fn conv2d<R: Ring>(
        &self,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
    ) -> Result<RingTensor<R>>;
    /// Weight gradient of [`Backend::conv2d`]: x [n,c,h,w], g [n,o,ho,wo] ->
    /// [o,c,kh,kw]. Shapes are checked by [`BilinearOp::output_shape`].
    fn conv2d_grad_weight<R: Ring>(
        &self,
        x: &RingTensor<R>,
        g: &RingTensor<R>,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<RingTensor<R>>;
    /// Input gradient of [`Backend::conv2d`]: g [n,o,ho,wo], w [o,c,kh,kw] ->
    /// [n,c,h,w] with (h, w) = `input`.
    fn conv2d_grad_input<R: Ring>(
        &self,
        g: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<RingTensor<R>>;
    /// Swaps the last two dimensions ([.., m, n] -> [.., n, m]).
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] for rank below 2.
    fn transpose<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>>;
    /// Fused final step of dealer-assisted truncation ([`crate::protocol::trunc`]):
    /// from the opened c = x + 2^(k-2) + r and this party's shares of
    /// r' = (r mod 2^(k-1)) >> f and of r_msb, returns this party's share of
    /// x >> f: [p0](c' - 2^(k-2-f)) - r' + b * 2^(k-1-f), with c' = (c mod 2^(k-1)) >> f
    /// and b = c_msb XOR r_msb = [p0] c_msb + r_msb (1 - 2 c_msb).
    fn trunc_combine<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: &RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>>;
    /// [`Backend::trunc_combine`] taking the dealer's r' by value: a
    /// backend may write the result over it instead of a fresh tensor (the
    /// CPU backend does; the default calls `trunc_combine`).
    ///
    /// Errors: as [`Backend::trunc_combine`].
    fn trunc_combine_into<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        self.trunc_combine(c, &r_shifted, r_msb, frac_bits, party0)
    }
    /// The local step of a Beaver multiplication for the elementwise
    /// product (Beaver, CRYPTO '91; [`crate::protocol::beaver`]): from the
    /// dealer's share c of a*b (taken by value, the result may be written
    /// over it), the opened e = x - a and f = y - b, and this party's shares
    /// b and x, returns this party's share c + e*b + x*f of x*y (the sum over
    /// parties is ab + eb + xf = xy, with x in place of a so that no party
    /// adds e*f). All five tensors share one shape.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`]. The default runs four
    /// elementwise ops; the CPU and CUDA backends fuse them in one pass.
    fn beaver_mul_combine<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &RingTensor<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        let mut z = c;
        self.add_assign(&mut z, &self.mul(e, b)?)?;
        self.add_assign(&mut z, &self.mul(x, f)?)?;
        Ok(z)
    }
    /// The windows of a 2-D pooling (pooling's im2col): x [n, c, h, w] ->
    /// [n c ho wo, kh kw], row (img ho + oy) wo + ox holding window (oy, ox)
    /// of plane img in row-major (ki, kj) order; positions in the padding
    /// hold `pad`. ho and wo as [`Pool2d::output_shape`].
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] as [`Pool2d::output_shape`].
    /// The default is the host loop (CPU backend); the CUDA backend gathers
    /// on the device (`kernels/pool.cu`).
    fn pool_windows<R: Ring>(
        &self,
        x: &RingTensor<R>,
        p: &Pool2d,
        pad: R,
    ) -> Result<RingTensor<R>> {
        pool::windows_host(x, p, pad)
    }
    /// The adjoint of [`Backend::pool_windows`] (padding dropped): every
    /// input position of `input` [n, c, h, w] receives the sum of the
    /// `routed` values (one per window element, [n c ho wo, kh kw] or any
    /// shape of that size) of the window elements that read it.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] for a bad geometry or a
    /// `routed` of the wrong size. Default and CUDA as `pool_windows`.
    fn pool_scatter<R: Ring>(
        &self,
        routed: &RingTensor<R>,
        input: &Shape,
        p: &Pool2d,
    ) -> Result<RingTensor<R>> {
        pool::scatter_host(routed, input, p)
    }
    /// The sum along `axis`, kept with length 1: x [.., n, ..] ->
    /// [.., 1, ..] (LayerNorm's and softmax's row sums).
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] for an axis past the rank.
    /// The default is the host loop ([`layout`]); the CUDA backend runs
    /// `kernels/layout.cu`.
    fn sum_axis<R: Ring>(&self, x: &RingTensor<R>, axis: usize) -> Result<RingTensor<R>> {
        layout::sum_host(x, axis)
    }
    /// x, holding `shape`'s elements with `axis` taken out (any shape of
    /// that size, e.g. [.., 1, ..]), repeated along `axis` to `shape`.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] for a size that does not fit.
    /// Default and CUDA as [`Backend::sum_axis`].
    fn broadcast_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        shape: &Shape,
        axis: usize,
    ) -> Result<RingTensor<R>> {
        layout::broadcast_host(x, shape, axis)
    }
    /// Elements [start, start + len) along `axis` (the other axes whole).
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] for a range past the axis.
    /// Default and CUDA as [`Backend::sum_axis`].
    fn slice_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<RingTensor<R>> {
        layout::slice_host(x, axis, start, len)
    }
    /// The parts joined along `axis` (equal shapes elsewhere).
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] for no parts or parts that
    /// differ elsewhere. Default and CUDA as [`Backend::sum_axis`].
    fn concat_axis<R: Ring>(&self, parts: &[&RingTensor<R>], axis: usize) -> Result<RingTensor<R>> {
        layout::concat_host(parts, axis)
    }
    /// The axes reordered: output axis i is input axis `perm[i]` (PyTorch's
    /// `permute`; rank at most [`layout::MAX_PERMUTE_RANK`]). Attention's
    /// head split and merge.
    ///
    /// Errors: [`crate::Error::ShapeMismatch`] for a `perm` that is not a
    /// permutation of the axes. Default and CUDA as [`Backend::sum_axis`].
    fn permute<R: Ring>(&self, x: &RingTensor<R>, perm: &[usize]) -> Result<RingTensor<R>> {
        layout::permute_host(x, perm)
    }
    /// ((x + add) >> shift) mod 2^32 for every element, with a logical
    /// shift of the ring element: a down-cast to Z_2^32 (each share
    /// reduced locally, as in Ditto's ring conversion; with `add` and
    /// `shift` the local part of a probabilistic truncation). Shapes kept.
    ///
    /// Errors: [`crate::Error::Unsupported`] for a shift of k or more.
    /// The default is the host loop; the CUDA backend runs `cast_u32_uK`.
    fn cast_u32<R: Ring>(&self, x: &RingTensor<R>, add: R, shift: u32) -> Result<RingTensor<u32>> {
        check_cast::<R>(shift)?;
        let data = x
            .try_data()?
            .iter()
            .map(|v| (v.wrapping_add(add).to_u64() >> shift) as u32)
            .collect();
        Ok(RingTensor::new(x.shape().clone(), data)?)
    }
    /// A uniform tensor from stream `stream` of the AES-CTR PRG keyed by `seed`
    /// (layout in [`crate::prg`]).
    fn prg_tensor<R: Ring>(&self, seed: &Seed, stream: u64, shape: &Shape)
        -> Result<RingTensor<R>>;
}

/// The backend a session runs on, chosen at run time.
#[derive(Debug, Clone)]
pub enum Device {
    /// The CPU backend (rayon thread pool).
    Cpu(CpuBackend),
    /// Shapes only, no arithmetic: the backend of dry runs.
    DryRun(ShapeBackend),
    /// The CPU's arithmetic on a simulated device memory that counts every
    /// copy to and from the host (residency tests without a GPU).
    Audit(AuditBackend),
    /// A CUDA device (unverified on hardware so far; see `kernels/README.md`).
    #[cfg(feature = "cuda")]
    Cuda(cuda::CudaBackend),
}

impl Default for Device {
    fn default() -> Self {
        Device::Cpu(CpuBackend::default())
    }
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {{
        // A compute span of the timeline (nothing outside a traced run).
        let _span = crate::trace::op_span(stringify!($e));
        match $self {
            Device::Cpu($b) => $e,
            Device::DryRun($b) => $e,
            Device::Audit($b) => $e,
            #[cfg(feature = "cuda")]
            Device::Cuda($b) => $e,
        }
    }};
}

impl Backend for Device {
    fn name(&self) -> String {
        dispatch!(self, b => b.name())
    }
    fn add<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.add(a, b))
    }
    fn sub<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.sub(a, b))
    }
    fn mul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.mul(a, b))
    }
    fn add_assign<R: Ring>(&self, a: &mut RingTensor<R>, b: &RingTensor<R>) -> Result<()> {
        dispatch!(self, be => be.add_assign(a, b))
    }
    fn neg<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.neg(a))
    }
    fn mul_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.mul_scalar(a, s))
    }
    fn add_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.add_scalar(a, s))
    }
    fn ashr<R: Ring>(&self, a: &RingTensor<R>, s: u32) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.ashr(a, s))
    }
    fn matmul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.matmul(a, b))
    }
    fn conv2d<R: Ring>(
        &self,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.conv2d(x, w, p))
    }
    fn conv2d_grad_weight<R: Ring>(
        &self,
        x: &RingTensor<R>,
        g: &RingTensor<R>,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.conv2d_grad_weight(x, g, p, kernel))
    }
    fn conv2d_grad_input<R: Ring>(
        &self,
        g: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.conv2d_grad_input(g, w, p, input))
    }
    fn transpose<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.transpose(a))
    }
    fn trunc_combine<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: &RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.trunc_combine(c, r_shifted, r_msb, frac_bits, party0))
    }
    fn trunc_combine_into<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.trunc_combine_into(c, r_shifted, r_msb, frac_bits, party0))
    }
    fn beaver_mul_combine<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &RingTensor<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.beaver_mul_combine(c, e, b, x, f))
    }
    fn pool_windows<R: Ring>(
        &self,
        x: &RingTensor<R>,
        p: &Pool2d,
        pad: R,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.pool_windows(x, p, pad))
    }
    fn pool_scatter<R: Ring>(
        &self,
        routed: &RingTensor<R>,
        input: &Shape,
        p: &Pool2d,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.pool_scatter(routed, input, p))
    }
    fn sum_axis<R: Ring>(&self, x: &RingTensor<R>, axis: usize) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.sum_axis(x, axis))
    }
    fn broadcast_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        shape: &Shape,
        axis: usize,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.broadcast_axis(x, shape, axis))
    }
    fn slice_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.slice_axis(x, axis, start, len))
    }
    fn concat_axis<R: Ring>(&self, parts: &[&RingTensor<R>], axis: usize) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.concat_axis(parts, axis))
    }
    fn permute<R: Ring>(&self, x: &RingTensor<R>, perm: &[usize]) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.permute(x, perm))
    }
    fn cast_u32<R: Ring>(&self, x: &RingTensor<R>, add: R, shift: u32) -> Result<RingTensor<u32>> {
        dispatch!(self, be => be.cast_u32(x, add, shift))
    }
    fn prg_tensor<R: Ring>(
        &self,
        seed: &Seed,
        stream: u64,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        dispatch!(self, be => be.prg_tensor(seed, stream, shape))
    }
}

/// A down-cast's shift fits the ring (below k).
///
/// Errors: [`crate::Error::Unsupported`].
pub(crate) fn check_cast<R: Ring>(shift: u32) -> Result<()> {
    if shift >= R::BITS {
        return Err(crate::Error::Unsupported(format!(
            "down-cast shift by {shift} >= {} bits",
            R::BITS
        )));
    }
    Ok(())
}
