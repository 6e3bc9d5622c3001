//! [`MpcSteps`] on the transfer-audit device (its memory, the CUDA
//! backend's residency) and on the dry-run backend (shapes only).

use super::MpcSteps;
use crate::backend::fanin::{self, FanIn};
use crate::backend::{adder, binary, carry_groups};
use crate::error::Result;
use crate::ring::RingTensor;

// The dry-run backend uses the defaults (shapes only); the audit backend
// the compositions, with the binary family on its memory (the CUDA
// backend's residency); the CUDA backend's impl is in `cuda/carry.rs`.
impl MpcSteps for crate::backend::ShapeBackend {}
impl MpcSteps for crate::backend::AuditBackend {
    // The binary family has no composition from ring primitives: the
    // audit device runs the host loops on its own memory, as CUDA runs
    // `kernels/carry.cu`.
    fn carry_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        let out =
            binary::carry_leaves_host(&self.operand(c)?, &self.operand(r)?, bits, words, party0)?;
        self.results(out)
    }
    fn carry_group_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        products: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        let [c, r, products] = [c, r, products].map(|t| self.operand(t));
        let out = carry_groups::carry_group_leaves_host(&c?, &r?, &products?, bits, words, party0)?;
        self.results(out)
    }
    fn fanin_mask(
        &self,
        x: &RingTensor<u64>,
        lambda: &RingTensor<u64>,
        spec: &FanIn,
        words: usize,
    ) -> Result<RingTensor<u64>> {
        let (x, lambda) = (self.operand(x)?, self.operand(lambda)?);
        self.results([fanin::fanin_mask_host(&x, &lambda, spec, words)?])
            .map(|[t]| t)
    }
    fn fanin_combine(
        &self,
        delta: &[u64],
        x: &RingTensor<u64>,
        lambda: &RingTensor<u64>,
        products: &RingTensor<u64>,
        spec: &FanIn,
        words: usize,
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        let [x, lambda, products] = [x, lambda, products].map(|t| self.operand(t));
        let out = fanin::fanin_combine_host(delta, &x?, &lambda?, &products?, spec, words, party0)?;
        self.results([out]).map(|[t]| t)
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
        let [g, p, a, b] = [g, p, a, b].map(|t| self.operand(t));
        let out = binary::carry_level_mask_host(&g?, &p?, &a?, &b?, nodes, words)?;
        self.results(out)
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
        let [a, b, c] = abc.map(|t| self.operand(t));
        let (a, b, c) = (a?, b?, c?);
        let (g, p) = (self.operand(g)?, self.operand(p)?);
        let out =
            binary::carry_level_combine_host(&g, &p, e, f, [&a, &b, &c], nodes, words, party0)?;
        self.results(out)
    }
    fn and_combine(
        &self,
        e: &[u64],
        f: &[u64],
        abc: [&RingTensor<u64>; 3],
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        let [a, b, c] = abc.map(|t| self.operand(t));
        let (a, b, c) = (a?, b?, c?);
        self.results([binary::and_combine_host(e, f, [&a, &b, &c], party0)?])
            .map(|[t]| t)
    }
    fn xor_words(&self, a: &RingTensor<u64>, b: &RingTensor<u64>) -> Result<RingTensor<u64>> {
        self.results([binary::xor_host(&self.operand(a)?, &self.operand(b)?)?])
            .map(|[t]| t)
    }
    fn adder_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        let (c, r) = (self.operand(c)?, self.operand(r)?);
        self.results(adder::adder_leaves_host(&c, &r, bits, words, party0)?)
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
        let (g, p, pg) = (self.operand(g)?, self.operand(p)?, self.operand(pg)?);
        let new_p = new_p.map(|t| self.operand(t)).transpose()?;
        let out = adder::adder_level_host(&g, &p, &pg, new_p.as_ref(), dist, bits, words)?;
        self.results(out)
    }
    fn adder_sum(
        &self,
        p: &RingTensor<u64>,
        g: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        let (p, g) = (self.operand(p)?, self.operand(g)?);
        self.results([adder::adder_sum_host(&p, &g, bits, words, party0)?])
            .map(|[t]| t)
    }
}
