//! A2B's parallel-prefix adder as CUDA launches (`kernels/adder.cu`), bit
//! for bit the host loops of `src/backend/adder.rs` (checks shared with
//! them); [`crate::backend::MpcSteps`]' adder steps call these.
//!
//! UNVERIFIED: no GPU has run this code yet (`kernels/README.md`).

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::backend::{gpu, CudaBackend};
use crate::backend::adder::check_level;
use crate::backend::binary::{check_len, p0mask};
use crate::error::Result;
use crate::ring::RingTensor;

impl CudaBackend {
    /// `kernels/adder.cu` `adder_leaves`: (G, P, p) [bits * words] each.
    pub(super) fn launch_adder_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        let n = bits * words;
        check_len(c, n, "adder leaves")?;
        check_len(r, n, "adder leaves")?;
        if n == 0 {
            return Ok([0, 1, 2].map(|_| RingTensor::zeros([0])));
        }
        let f = self.function("adder_leaves")?;
        let (dc, dr) = (self.dev(c)?, self.dev(r)?);
        let st = self.pick();
        let mut g: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let mut pp: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let mut p: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let (b64, w64, flip) = (bits as u64, words as u64, p0mask(party0));
        let mut l = st.launch_builder(&f);
        l.arg(&mut g).arg(&mut pp).arg(&mut p);
        l.arg(dc.slice()).arg(dr.slice());
        l.arg(&b64).arg(&w64).arg(&flip);
        // SAFETY: adder_leaves(u64* G, u64* P, u64* p, const u64* c, const
        // u64* r, u64 bits, u64 words, u64 flip): every buffer holds
        // bits * words words (checked above).
        unsafe { l.launch(Self::cfg_1d(n as u64)) }.map_err(gpu("adder_leaves"))?;
        Ok([
            self.wrap(g, [n].into())?,
            self.wrap(pp, [n].into())?,
            self.wrap(p, [n].into())?,
        ])
    }

    /// `kernels/adder.cu` `adder_level`: the new (G, P) [bits * words].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_adder_level(
        &self,
        g: &RingTensor<u64>,
        p: &RingTensor<u64>,
        pg: &RingTensor<u64>,
        new_p: Option<&RingTensor<u64>>,
        dist: usize,
        bits: usize,
        words: usize,
    ) -> Result<[RingTensor<u64>; 2]> {
        check_level(g, p, pg, new_p, dist, bits, words)?;
        let n = bits * words;
        if n == 0 {
            return Ok([0, 1].map(|_| RingTensor::zeros([0])));
        }
        let f = self.function("adder_level")?;
        let (dg, dp, dpg) = (self.dev(g)?, self.dev(p)?, self.dev(pg)?);
        // Without new P ANDs the kernel reads none: any valid pointer will do.
        let dnp = self.dev(new_p.unwrap_or(pg))?;
        let st = self.pick();
        let mut g2: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let mut p2: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let (d64, b64, w64) = (dist as u64, bits as u64, words as u64);
        let mut l = st.launch_builder(&f);
        l.arg(&mut g2).arg(&mut p2).arg(dg.slice()).arg(dp.slice());
        l.arg(dpg.slice()).arg(dnp.slice());
        l.arg(&d64).arg(&b64).arg(&w64);
        // SAFETY: adder_level(u64* G2, P2, const u64* G, P, PG, NP, u64 dist,
        // bits, words): G2, P2, G, P hold bits * words words, PG
        // (bits - dist) * words, NP (bits - 2 dist) * words when 2 dist <
        // bits and is not read otherwise (checked above).
        unsafe { l.launch(Self::cfg_1d(n as u64)) }.map_err(gpu("adder_level"))?;
        Ok([self.wrap(g2, [n].into())?, self.wrap(p2, [n].into())?])
    }

    /// `kernels/adder.cu` `adder_sum`: x's planes [bits * words].
    pub(super) fn launch_adder_sum(
        &self,
        p: &RingTensor<u64>,
        g: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        let n = bits * words;
        check_len(p, n, "adder sum")?;
        check_len(g, n, "adder sum")?;
        if n == 0 {
            return Ok(RingTensor::zeros([0]));
        }
        let f = self.function("adder_sum")?;
        let (dp, dg) = (self.dev(p)?, self.dev(g)?);
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let (b64, w64, flip) = (bits as u64, words as u64, p0mask(party0));
        let mut l = st.launch_builder(&f);
        l.arg(&mut out).arg(dp.slice()).arg(dg.slice());
        l.arg(&b64).arg(&w64).arg(&flip);
        // SAFETY: adder_sum(u64* out, const u64* p, const u64* G, u64 bits,
        // u64 words, u64 flip): every buffer holds bits * words words.
        unsafe { l.launch(Self::cfg_1d(n as u64)) }.map_err(gpu("adder_sum"))?;
        self.wrap(out, [n].into())
    }
}
