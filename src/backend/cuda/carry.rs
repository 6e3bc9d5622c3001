//! The binary family of [`MpcSteps`] as CUDA launches: MSB's carry tree
//! (`kernels/carry.cu`), A2B's adder (`kernels/adder.cu`, launched from
//! `cuda/adder.rs`) and XOR of words (`kernels/binary.cu`), bit for
//! bit the host loops of `src/backend/binary.rs` (checks shared with them).
//! The other steps use [`MpcSteps`]' defaults (compositions of the
//! backend's kernels).
//!
//! UNVERIFIED: no GPU has run this code yet (`kernels/README.md`).

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::backend::{gpu, CudaBackend};
use crate::backend::binary::{check_leaves, check_len, level_ands, p0mask};
use crate::backend::MpcSteps;
use crate::error::Result;
use crate::ring::RingTensor;

impl MpcSteps for CudaBackend {
    fn carry_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        check_leaves(c, r, bits, words)?;
        let nodes = bits - 1;
        let f = self.function("carry_leaves")?;
        let (dc, dr) = (self.dev(c)?, self.dev(r)?);
        let st = self.pick();
        let mut g: CudaSlice<u8> = self.alloc::<u64>(st, nodes * words)?;
        let mut p: CudaSlice<u8> = self.alloc::<u64>(st, nodes * words)?;
        let mut top: CudaSlice<u8> = self.alloc::<u64>(st, words)?;
        let (b64, w64, flip) = (bits as u64, words as u64, p0mask(party0));
        let mut l = st.launch_builder(&f);
        l.arg(&mut g)
            .arg(&mut p)
            .arg(&mut top)
            .arg(dc.slice())
            .arg(dr.slice());
        l.arg(&b64).arg(&w64).arg(&flip);
        // SAFETY: carry_leaves(u64* G, u64* P, u64* top, const u64* c, const
        // u64* r, u64 bits, u64 words, u64 flip): G, P hold (bits - 1) words
        // planes, top one, c and r at least bits (checked above).
        unsafe { l.launch(Self::cfg_1d(b64 * w64)) }.map_err(gpu("carry_leaves"))?;
        Ok([
            self.wrap(g, [nodes * words].into())?,
            self.wrap(p, [nodes * words].into())?,
            self.wrap(top, [words].into())?,
        ])
    }

    fn carry_level_mask(
        &self,
        g: &RingTensor<u64>,
        p: &RingTensor<u64>,
        a: &RingTensor<u64>,
        b: &RingTensor<u64>,
        nodes: usize,
        words: usize,
    ) -> Result<[RingTensor<u64>; 2]> {
        let ands = level_ands(nodes);
        for (t, n) in [(g, nodes), (p, nodes), (a, ands), (b, ands)] {
            check_len(t, n * words, "carry level")?;
        }
        let f = self.function("carry_level_mask")?;
        let [dg, dp, da, db] = [g, p, a, b].map(|t| self.dev(t));
        let (dg, dp, da, db) = (dg?, dp?, da?, db?);
        let st = self.pick();
        let mut e: CudaSlice<u8> = self.alloc::<u64>(st, ands * words)?;
        let mut fo: CudaSlice<u8> = self.alloc::<u64>(st, ands * words)?;
        let (pairs, w64) = ((nodes / 2) as u64, words as u64);
        let mut l = st.launch_builder(&f);
        l.arg(&mut e).arg(&mut fo).arg(dg.slice()).arg(dp.slice());
        l.arg(da.slice()).arg(db.slice()).arg(&pairs).arg(&w64);
        // SAFETY: carry_level_mask(u64* e, u64* f, const u64* G, P, a, b,
        // u64 pairs, u64 words): e, f, a, b hold ands * words words, G and
        // P nodes * words (checked above).
        unsafe { l.launch(Self::cfg_1d((ands * words) as u64)) }
            .map_err(gpu("carry_level_mask"))?;
        Ok([
            self.wrap(e, [ands * words].into())?,
            self.wrap(fo, [ands * words].into())?,
        ])
    }

    fn carry_level_combine(
        &self,
        g: &RingTensor<u64>,
        p: &RingTensor<u64>,
        e: &[u64],
        f: &[u64],
        abc: [&RingTensor<u64>; 3],
        nodes: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 2]> {
        let ands = level_ands(nodes);
        check_len(g, nodes * words, "carry level")?;
        check_len(p, nodes * words, "carry level")?;
        let e = RingTensor::new([e.len()], e.to_vec())?;
        let fv = RingTensor::new([f.len()], f.to_vec())?;
        for t in [&e, &fv, abc[0], abc[1], abc[2]] {
            check_len(t, ands * words, "carry level")?;
        }
        let next = nodes.div_ceil(2);
        let func = self.function("carry_level_combine")?;
        let ops = [g, p, &e, &fv, abc[0], abc[1], abc[2]].map(|t| self.dev(t));
        let [dg, dp, de, df, da, db, dc] = ops;
        let (dg, dp, de, df, da, db, dc) = (dg?, dp?, de?, df?, da?, db?, dc?);
        let st = self.pick();
        let mut g2: CudaSlice<u8> = self.alloc::<u64>(st, next * words)?;
        let mut p2: CudaSlice<u8> = self.alloc::<u64>(st, next * words)?;
        let (n64, w64, m) = (nodes as u64, words as u64, p0mask(party0));
        let mut l = st.launch_builder(&func);
        l.arg(&mut g2).arg(&mut p2).arg(dg.slice()).arg(dp.slice());
        l.arg(de.slice())
            .arg(df.slice())
            .arg(da.slice())
            .arg(db.slice())
            .arg(dc.slice());
        l.arg(&n64).arg(&w64).arg(&m);
        // SAFETY: carry_level_combine(u64* G2, P2, const u64* G, P, e, f, a,
        // b, c, u64 nodes, words, p0mask): G2, P2 hold ceil(nodes / 2) * words
        // words, G and P nodes * words, the others ands * words (checked).
        unsafe { l.launch(Self::cfg_1d((next * words) as u64)) }
            .map_err(gpu("carry_level_combine"))?;
        Ok([
            self.wrap(g2, [next * words].into())?,
            self.wrap(p2, [next * words].into())?,
        ])
    }

    fn and_combine(
        &self,
        e: &[u64],
        f: &[u64],
        abc: [&RingTensor<u64>; 3],
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        let n = e.len();
        let e = RingTensor::new([n], e.to_vec())?;
        let fv = RingTensor::new([f.len()], f.to_vec())?;
        for t in [&fv, abc[0], abc[1], abc[2]] {
            check_len(t, n, "and")?;
        }
        if n == 0 {
            return Ok(RingTensor::zeros([0]));
        }
        let func = self.function("and_combine_words")?;
        let ops = [abc[2], &e, &fv, abc[0], abc[1]].map(|t| self.dev(t));
        let [dc, de, df, da, db] = ops;
        let (dc, de, df, da, db) = (dc?, de?, df?, da?, db?);
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let (m, n64) = (p0mask(party0), n as u64);
        let mut l = st.launch_builder(&func);
        l.arg(&mut out)
            .arg(dc.slice())
            .arg(de.slice())
            .arg(df.slice());
        l.arg(da.slice()).arg(db.slice()).arg(&m).arg(&n64);
        // SAFETY: and_combine_words(u64* out, const u64* c, e, f, a, b, u64
        // p0mask, u64 n): every buffer holds n words (checked above).
        unsafe { l.launch(Self::cfg_1d(n64)) }.map_err(gpu("and_combine_words"))?;
        self.wrap(out, [n].into())
    }

    fn xor_words(&self, a: &RingTensor<u64>, b: &RingTensor<u64>) -> Result<RingTensor<u64>> {
        check_len(b, a.numel(), "xor")?;
        let n = a.numel();
        if n == 0 {
            return Ok(RingTensor::zeros(a.shape().clone()));
        }
        let f = self.function("xor_words")?;
        let (da, db) = (self.dev(a)?, self.dev(b)?);
        let st = self.pick();
        let mut out: CudaSlice<u8> = self.alloc::<u64>(st, n)?;
        let n64 = n as u64;
        let mut l = st.launch_builder(&f);
        l.arg(&mut out).arg(da.slice()).arg(db.slice()).arg(&n64);
        // SAFETY: xor_words(u64* out, const u64* a, const u64* b, u64 n).
        unsafe { l.launch(Self::cfg_1d(n64)) }.map_err(gpu("xor_words"))?;
        self.wrap(out, a.shape().clone())
    }

    fn adder_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        self.launch_adder_leaves(c, r, bits, words, party0)
    }

    fn adder_level(
        &self,
        g: &RingTensor<u64>,
        p: &RingTensor<u64>,
        pg: &RingTensor<u64>,
        new_p: Option<&RingTensor<u64>>,
        dist: usize,
        bits: usize,
        words: usize,
    ) -> Result<[RingTensor<u64>; 2]> {
        self.launch_adder_level(g, p, pg, new_p, dist, bits, words)
    }

    fn adder_sum(
        &self,
        p: &RingTensor<u64>,
        g: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        self.launch_adder_sum(p, g, bits, words, party0)
    }
}
