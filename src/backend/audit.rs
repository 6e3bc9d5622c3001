//! The transfer-audit device: the CPU backend's arithmetic on tensors kept
//! in a separate, simulated device memory, counting every copy between the
//! host and that memory. It answers, on a machine without a GPU, the
//! question a GPU run would: which host round trips does a protocol make?
//!
//! Residency follows the CUDA backend exactly: results are device tensors
//! only ([`RingTensor::from_device`]); an operand's device copy is used when
//! it has one, else its host copy is uploaded (counted) and kept next to
//! it; a host read of a device tensor ([`RingTensor::data`], the transport
//! boundary, protocol logic on the CPU) downloads it once (counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Backend, Conv2dParams, CpuBackend, Pool2d};
use crate::error::Result;
use crate::prg::Seed;
use crate::ring::{append_le_bytes, DeviceBuffer, Ring, RingError, RingTensor, Shape};

/// Copies between the host and the audit device, with their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferCounts {
    /// Host-to-device copies (uploads of host tensors used as operands).
    pub to_device: u64,
    /// Bytes of those copies.
    pub to_device_bytes: u64,
    /// Device-to-host copies (first host reads of device tensors).
    pub to_host: u64,
    /// Bytes of those copies.
    pub to_host_bytes: u64,
}

impl std::ops::Sub for TransferCounts {
    type Output = TransferCounts;
    fn sub(self, rhs: TransferCounts) -> TransferCounts {
        TransferCounts {
            to_device: self.to_device - rhs.to_device,
            to_device_bytes: self.to_device_bytes - rhs.to_device_bytes,
            to_host: self.to_host - rhs.to_host,
            to_host_bytes: self.to_host_bytes - rhs.to_host_bytes,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    to_device: AtomicU64,
    to_device_bytes: AtomicU64,
    to_host: AtomicU64,
    to_host_bytes: AtomicU64,
}

/// The transfer-audit backend. Clones share one set of counters (so the
/// parties of an in-process run that share a backend are counted together;
/// give each party its own [`AuditBackend::new`] to count them apart).
#[derive(Clone, Debug, Default)]
pub struct AuditBackend {
    cpu: CpuBackend,
    counters: Arc<Counters>,
}

/// One tensor's bytes in the audit device's memory.
#[derive(Debug)]
struct AuditBuffer {
    bytes: Vec<u8>,
    counters: Arc<Counters>,
}

impl DeviceBuffer for AuditBuffer {
    fn location(&self) -> String {
        "audit:0".into()
    }
    fn len_bytes(&self) -> usize {
        self.bytes.len()
    }
    fn read_to_host(&self, dst: &mut [u8]) -> std::result::Result<(), RingError> {
        if dst.len() != self.bytes.len() {
            return Err(RingError::shape(
                "audit device copy to host",
                format!("{} bytes into {}", self.bytes.len(), dst.len()),
            ));
        }
        if std::env::var_os("SPINDLE_AUDIT_TRACE").is_some() {
            let bt = std::backtrace::Backtrace::force_capture().to_string();
            let frames: Vec<&str> = bt
                .lines()
                .filter(|l| {
                    l.contains("spindle::") && !l.contains("audit") && !l.contains("ring::tensor")
                })
                .take(4)
                .collect();
            eprintln!("D2H {} bytes: {}", dst.len(), frames.join(" <- "));
        }
        self.counters.to_host.fetch_add(1, Ordering::Relaxed);
        self.counters
            .to_host_bytes
            .fetch_add(dst.len() as u64, Ordering::Relaxed);
        dst.copy_from_slice(&self.bytes);
        Ok(())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl AuditBackend {
    /// A backend with fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The copies counted so far.
    pub fn counts(&self) -> TransferCounts {
        let c = &self.counters;
        TransferCounts {
            to_device: c.to_device.load(Ordering::Relaxed),
            to_device_bytes: c.to_device_bytes.load(Ordering::Relaxed),
            to_host: c.to_host.load(Ordering::Relaxed),
            to_host_bytes: c.to_host_bytes.load(Ordering::Relaxed),
        }
    }

    /// `t`'s value for the CPU arithmetic: read from its device copy when
    /// it has one here (no copy counted: the arithmetic stands for device
    /// work), else uploaded from the host (counted) and kept on `t`.
    pub(crate) fn operand<R: Ring>(&self, t: &RingTensor<R>) -> Result<RingTensor<R>> {
        if let Some(b) = t.device_copy() {
            if let Some(ab) = b.as_any().downcast_ref::<AuditBuffer>() {
                return Ok(RingTensor::from_le_bytes(t.shape().clone(), &ab.bytes)?);
            }
        }
        let mut bytes = Vec::with_capacity(t.numel() * R::BYTES);
        append_le_bytes(t.try_data()?, &mut bytes);
        self.counters.to_device.fetch_add(1, Ordering::Relaxed);
        self.counters
            .to_device_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let value = RingTensor::from_le_bytes(t.shape().clone(), &bytes)?;
        t.attach_device_copy(self.buffer(bytes))?;
        Ok(value)
    }

    fn buffer(&self, bytes: Vec<u8>) -> Arc<dyn DeviceBuffer> {
        Arc::new(AuditBuffer {
            bytes,
            counters: self.counters.clone(),
        })
    }

    /// Results of device work, each a device tensor only.
    pub(crate) fn results<R: Ring, const N: usize>(
        &self,
        ts: [RingTensor<R>; N],
    ) -> Result<[RingTensor<R>; N]> {
        let out: Vec<RingTensor<R>> = ts
            .into_iter()
            .map(|t| self.result(t))
            .collect::<Result<_>>()?;
        Ok(out.try_into().expect("N results"))
    }

    /// A result of device work: a device tensor only (no copy counted).
    fn result<R: Ring>(&self, t: RingTensor<R>) -> Result<RingTensor<R>> {
        let bytes = t.to_le_bytes();
        Ok(RingTensor::from_device(
            t.shape().clone(),
            self.buffer(bytes),
        )?)
    }
}

impl Backend for AuditBackend {
    fn name(&self) -> String {
        "audit".into()
    }
    fn add<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.result(self.cpu.add(&self.operand(a)?, &self.operand(b)?)?)
    }
    fn sub<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.result(self.cpu.sub(&self.operand(a)?, &self.operand(b)?)?)
    }
    fn mul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.result(self.cpu.mul(&self.operand(a)?, &self.operand(b)?)?)
    }
    fn add_assign<R: Ring>(&self, a: &mut RingTensor<R>, b: &RingTensor<R>) -> Result<()> {
        *a = self.add(a, b)?;
        Ok(())
    }
    fn neg<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.result(self.cpu.neg(&self.operand(a)?)?)
    }
    fn mul_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        self.result(self.cpu.mul_scalar(&self.operand(a)?, s)?)
    }
    fn add_scalar<R: Ring>(&self, a: &RingTensor<R>, s: R) -> Result<RingTensor<R>> {
        self.result(self.cpu.add_scalar(&self.operand(a)?, s)?)
    }
    fn ashr<R: Ring>(&self, a: &RingTensor<R>, s: u32) -> Result<RingTensor<R>> {
        self.result(self.cpu.ashr(&self.operand(a)?, s)?)
    }
    fn matmul<R: Ring>(&self, a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.result(self.cpu.matmul(&self.operand(a)?, &self.operand(b)?)?)
    }
    fn conv2d<R: Ring>(
        &self,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
    ) -> Result<RingTensor<R>> {
        self.result(self.cpu.conv2d(&self.operand(x)?, &self.operand(w)?, p)?)
    }
    fn conv2d_grad_weight<R: Ring>(
        &self,
        x: &RingTensor<R>,
        g: &RingTensor<R>,
        p: &Conv2dParams,
        kernel: (usize, usize),
    ) -> Result<RingTensor<R>> {
        let (x, g) = (self.operand(x)?, self.operand(g)?);
        self.result(self.cpu.conv2d_grad_weight(&x, &g, p, kernel)?)
    }
    fn conv2d_grad_input<R: Ring>(
        &self,
        g: &RingTensor<R>,
        w: &RingTensor<R>,
        p: &Conv2dParams,
        input: (usize, usize),
    ) -> Result<RingTensor<R>> {
        let (g, w) = (self.operand(g)?, self.operand(w)?);
        self.result(self.cpu.conv2d_grad_input(&g, &w, p, input)?)
    }
    fn transpose<R: Ring>(&self, a: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.result(self.cpu.transpose(&self.operand(a)?)?)
    }
    fn trunc_combine<R: Ring>(
        &self,
        c: &RingTensor<R>,
        r_shifted: &RingTensor<R>,
        r_msb: &RingTensor<R>,
        frac_bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        let (c, r, m) = (
            self.operand(c)?,
            self.operand(r_shifted)?,
            self.operand(r_msb)?,
        );
        self.result(self.cpu.trunc_combine(&c, &r, &m, frac_bits, party0)?)
    }
    fn beaver_mul_combine<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &RingTensor<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &RingTensor<R>,
    ) -> Result<RingTensor<R>> {
        let c = self.operand(&c)?;
        let (e, b, x, f) = (
            self.operand(e)?,
            self.operand(b)?,
            self.operand(x)?,
            self.operand(f)?,
        );
        self.result(self.cpu.beaver_mul_combine(c, &e, &b, &x, &f)?)
    }
    fn pool_windows<R: Ring>(
        &self,
        x: &RingTensor<R>,
        p: &Pool2d,
        pad: R,
    ) -> Result<RingTensor<R>> {
        self.result(self.cpu.pool_windows(&self.operand(x)?, p, pad)?)
    }
    fn pool_scatter<R: Ring>(
        &self,
        routed: &RingTensor<R>,
        input: &Shape,
        p: &Pool2d,
    ) -> Result<RingTensor<R>> {
        self.result(self.cpu.pool_scatter(&self.operand(routed)?, input, p)?)
    }
    fn sum_axis<R: Ring>(&self, x: &RingTensor<R>, axis: usize) -> Result<RingTensor<R>> {
        self.result(self.cpu.sum_axis(&self.operand(x)?, axis)?)
    }
    fn broadcast_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        shape: &Shape,
        axis: usize,
    ) -> Result<RingTensor<R>> {
        self.result(self.cpu.broadcast_axis(&self.operand(x)?, shape, axis)?)
    }
    fn slice_axis<R: Ring>(
        &self,
        x: &RingTensor<R>,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Result<RingTensor<R>> {
        self.result(self.cpu.slice_axis(&self.operand(x)?, axis, start, len)?)
    }
    fn concat_axis<R: Ring>(&self, parts: &[&RingTensor<R>], axis: usize) -> Result<RingTensor<R>> {
        let parts: Vec<RingTensor<R>> = parts
            .iter()
            .map(|p| self.operand(p))
            .collect::<Result<_>>()?;
        let refs: Vec<&RingTensor<R>> = parts.iter().collect();
        self.result(self.cpu.concat_axis(&refs, axis)?)
    }
    fn permute<R: Ring>(&self, x: &RingTensor<R>, perm: &[usize]) -> Result<RingTensor<R>> {
        self.result(self.cpu.permute(&self.operand(x)?, perm)?)
    }
    fn cast_u32<R: Ring>(&self, x: &RingTensor<R>, add: R, shift: u32) -> Result<RingTensor<u32>> {
        self.result(self.cpu.cast_u32(&self.operand(x)?, add, shift)?)
    }
    fn prg_tensor<R: Ring>(
        &self,
        seed: &Seed,
        stream: u64,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        self.result(self.cpu.prg_tensor(seed, stream, shape)?)
    }
}
