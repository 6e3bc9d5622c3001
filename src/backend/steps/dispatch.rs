//! [`MpcSteps`] on [`Device`]: each step forwarded to the device's backend.

use super::{MpcSteps, TruncParts, TruncProduct};
use crate::backend::fanin::FanIn;
use crate::backend::Device;
use crate::error::Result;
use crate::ring::{Opened, Ring, RingTensor, Shape};

macro_rules! dispatch_steps {
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

impl MpcSteps for Device {
    fn mask<R: Ring>(&self, r: RingTensor<R>, x: &RingTensor<R>, bias: R) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.mask(r, x, bias))
    }
    fn rsub<R: Ring>(&self, a: RingTensor<R>, x: &RingTensor<R>) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.rsub(a, x))
    }
    fn scale_add<R: Ring>(&self, a: RingTensor<R>, k: R, c: R) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.scale_add(a, k, c))
    }
    fn add_scaled<R: Ring>(
        &self,
        acc: RingTensor<R>,
        x: &RingTensor<R>,
        k: R,
        c: R,
    ) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.add_scaled(acc, x, k, c))
    }
    fn lincomb<R: Ring>(
        &self,
        terms: &[(&RingTensor<R>, R)],
        c: R,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.lincomb(terms, c, shape))
    }
    fn beaver_mul_opened<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &Opened<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &Opened<R>,
    ) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.beaver_mul_opened(c, e, b, x, f))
    }
    fn beaver_sq_combine<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &Opened<R>,
        x: &RingTensor<R>,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.beaver_sq_combine(c, e, x, party0))
    }
    fn trunc_value<R: Ring>(
        &self,
        c: &Opened<R>,
        r_shifted: RingTensor<R>,
        r_msb: &RingTensor<R>,
        bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.trunc_value(c, r_shifted, r_msb, bits, party0))
    }
    fn trunc_products<R: Ring>(
        &self,
        views: &[TruncParts<'_, R>],
        prods: &[TruncProduct<'_, R>],
        outs: Vec<RingTensor<R>>,
        party0: bool,
    ) -> Result<Vec<RingTensor<R>>> {
        dispatch_steps!(self, be => be.trunc_products(views, prods, outs, party0))
    }
    fn trunc_square_masked<R: Ring>(
        &self,
        v: &TruncParts<'_, R>,
        rr: &RingTensor<R>,
        rm: &RingTensor<R>,
        next: RingTensor<R>,
        bias: R,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        dispatch_steps!(self, be => be.trunc_square_masked(v, rr, rm, next, bias, party0))
    }
    fn inject_combine<R: Ring>(
        &self,
        x: &RingTensor<R>,
        c: &RingTensor<R>,
        s: &RingTensor<R>,
        d: &RingTensor<R>,
        e: &[u64],
        party0: bool,
    ) -> Result<[RingTensor<R>; 2]> {
        dispatch_steps!(self, be => be.inject_combine(x, c, s, d, e, party0))
    }
    fn b2a_combine<R: Ring>(
        &self,
        e: &[u64],
        s: &RingTensor<R>,
        weights: &[Vec<R>],
        n: usize,
        words: usize,
        party0: bool,
    ) -> Result<Vec<RingTensor<R>>> {
        dispatch_steps!(self, be => be.b2a_combine(e, s, weights, n, words, party0))
    }
    fn carry_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        dispatch_steps!(self, be => be.carry_leaves(c, r, bits, words, party0))
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
        dispatch_steps!(self, be => be.carry_group_leaves(c, r, products, bits, words, party0))
    }
    fn fanin_mask(
        &self,
        x: &RingTensor<u64>,
        lambda: &RingTensor<u64>,
        spec: &FanIn,
        words: usize,
    ) -> Result<RingTensor<u64>> {
        dispatch_steps!(self, be => be.fanin_mask(x, lambda, spec, words))
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
        dispatch_steps!(self, be => be.fanin_combine(delta, x, lambda, products, spec, words, party0))
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
        dispatch_steps!(self, be => be.carry_level_mask(g, p, a, b, nodes, words))
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
        dispatch_steps!(self, be => be.carry_level_combine(g, p, e, f, abc, nodes, words, party0))
    }
    fn and_combine(
        &self,
        e: &[u64],
        f: &[u64],
        abc: [&RingTensor<u64>; 3],
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        dispatch_steps!(self, be => be.and_combine(e, f, abc, party0))
    }
    fn xor_words(&self, a: &RingTensor<u64>, b: &RingTensor<u64>) -> Result<RingTensor<u64>> {
        dispatch_steps!(self, be => be.xor_words(a, b))
    }
    fn adder_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        dispatch_steps!(self, be => be.adder_leaves(c, r, bits, words, party0))
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
        dispatch_steps!(self, be => be.adder_level(g, p, pg, new_p, dist, bits, words))
    }
    fn adder_sum(
        &self,
        p: &RingTensor<u64>,
        g: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        dispatch_steps!(self, be => be.adder_sum(p, g, bits, words, party0))
    }
}
