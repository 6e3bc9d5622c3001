//! [`MpcSteps`]: the fused local steps of the MPC protocols, as backend ops.
//!
//! Between two openings a protocol does local arithmetic on its shares:
//! it masks values to open (Beaver's e = x - a, a truncation's
//! c = x + 2^(k-2) + r), and after the opening combines the public values
//! with its shares (Beaver's c + e b + x f, a truncation's P + L, the
//! products of truncated values of [`crate::protocol::nonlinear`]'s
//! truncation groups). Each step is one op here so that a device backend
//! keeps the shares in its memory: the only host data an op reads is the
//! opened values ([`Opened`], which came off the wire) and public
//! scalars.
//!
//! Every method has a default built from the [`Backend`] primitives (so
//! a new backend is correct at once, with one kernel launch per
//! primitive: the CUDA, dry-run and transfer-audit backends use them);
//! the CPU backend overrides each with a fused single pass over memory
//! (`backend/cpu/steps.rs`). Both must agree bit for bit: the protocol
//! tests run on the CPU and on the transfer-audit device (CI), which
//! checks the defaults.
//!
//! Every op wraps modulo 2^k; all tensors of one call share one shape
//! ([`crate::Error::ShapeMismatch`] otherwise).

use super::fanin::{self, FanIn};
use super::{adder, binary, carry_groups, Backend};
use crate::error::{Error, Result};
use crate::ring::{signed, Opened, Ring, RingTensor, Shape, TruncStep};

/// One dealer truncation by `bits` after its opening (Escudero et al.,
/// CRYPTO 2020; [`crate::protocol::trunc`]): the opened
/// c = x + 2^(k-2) + r and this party's shares of r' = (r mod 2^(k-1)) >> f
/// and of r's top bit. The truncated value is P + L with P public and L
/// this party's share (`ring/trunc.rs`).
#[derive(Clone, Copy, Debug)]
pub struct TruncParts<'a, R: Ring> {
    /// The opened masked value.
    pub c: &'a Opened<R>,
    /// This party's share of r'.
    pub r_shifted: &'a RingTensor<R>,
    /// This party's share of r_msb.
    pub r_msb: &'a RingTensor<R>,
    /// Bits shifted out (at most k - 2).
    pub bits: u32,
}

/// One product of two truncated values of a group
/// ([`MpcSteps::trunc_products`]): the pair (i, j), i <= j, of
/// [`TruncParts`], and the dealer's shares besides r'_i r'_j:
/// `[r'_i r_msb_i]` for a square (i == j), `[r'_i r_msb_j, r_msb_i r'_j,
/// r_msb_i r_msb_j]` otherwise.
#[derive(Clone, Debug)]
pub struct TruncProduct<'a, R: Ring> {
    /// Indices of the two truncations, i <= j.
    pub pair: (usize, usize),
    /// The dealer's product shares (1 for a square, 3 otherwise).
    pub corr: Vec<&'a RingTensor<R>>,
}

/// Fused local steps of the MPC protocols (see the module docs). Shapes:
/// every tensor of a call has one shape. Errors: [`Error::ShapeMismatch`]
/// for unequal shapes, [`Error::Unsupported`] for a malformed product
/// list; device errors.
pub trait MpcSteps: Backend {
    /// r + x + bias, in r's buffer: a value masked for an opening (bias
    /// 2^(k-2) at party 0 for a dealer truncation, else 0).
    fn mask<R: Ring>(&self, r: RingTensor<R>, x: &RingTensor<R>, bias: R) -> Result<RingTensor<R>> {
        let mut z = r;
        self.add_assign(&mut z, x)?;
        if bias == R::ZERO {
            return Ok(z);
        }
        self.add_scalar(&z, bias)
    }

    /// x - a, in a's buffer: Beaver's e = x - a formed over the mask a.
    fn rsub<R: Ring>(&self, a: RingTensor<R>, x: &RingTensor<R>) -> Result<RingTensor<R>> {
        self.sub(x, &a)
    }

    /// k a + c, in a's buffer (k, c public).
    fn scale_add<R: Ring>(&self, a: RingTensor<R>, k: R, c: R) -> Result<RingTensor<R>> {
        let z = self.mul_scalar(&a, k)?;
        self.add_scalar(&z, c)
    }

    /// acc + k x + c, in acc's buffer (k, c public).
    fn add_scaled<R: Ring>(
        &self,
        acc: RingTensor<R>,
        x: &RingTensor<R>,
        k: R,
        c: R,
    ) -> Result<RingTensor<R>> {
        let mut z = acc;
        self.add_assign(&mut z, &self.mul_scalar(x, k)?)?;
        if c == R::ZERO {
            return Ok(z);
        }
        self.add_scalar(&z, c)
    }

    /// sum_i k_i x_i + c as a tensor of `shape` (the public constant c
    /// alone for no terms): an exact linear combination of shares.
    fn lincomb<R: Ring>(
        &self,
        terms: &[(&RingTensor<R>, R)],
        c: R,
        shape: &Shape,
    ) -> Result<RingTensor<R>> {
        let Some(((x, k), rest)) = terms.split_first() else {
            return Ok(RingTensor::full(shape.clone(), c));
        };
        check_shape(x, shape, "linear combination")?;
        let mut z = self.mul_scalar(x, *k)?;
        for (x, k) in rest {
            self.add_assign(&mut z, &self.mul_scalar(x, *k)?)?;
        }
        if c == R::ZERO {
            return Ok(z);
        }
        self.add_scalar(&z, c)
    }

    /// Beaver's local step for x * y (elementwise) from opened e = x - a
    /// and f = y - b: c + e b + x f ([`Backend::beaver_mul_combine`] with
    /// the opened values as they came off the wire).
    fn beaver_mul_opened<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &Opened<R>,
        b: &RingTensor<R>,
        x: &RingTensor<R>,
        f: &Opened<R>,
    ) -> Result<RingTensor<R>> {
        self.beaver_mul_combine(c, &e.to_tensor(), b, x, &f.to_tensor())
    }

    /// This party's share of x^2 from a square pair (a, c = a^2) and the
    /// opened e = x - a: c + 2 e x - [party 0] e^2 (the sum over parties
    /// is a^2 + 2 e x - e^2 = x^2), in c's buffer.
    fn beaver_sq_combine<R: Ring>(
        &self,
        c: RingTensor<R>,
        e: &Opened<R>,
        x: &RingTensor<R>,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        check_shape(x, e.shape(), "square")?;
        let mut z = c;
        self.add_assign(&mut z, &self.mul(x, &e.map(|v| v.shl(1)))?)?;
        if !party0 {
            return Ok(z);
        }
        self.sub(&z, &e.map(|v| v.wrapping_mul(v)))
    }

    /// This party's share of the truncated value P + L (P added at party
    /// 0) of one dealer truncation, in r_shifted's buffer
    /// ([`Backend::trunc_combine_into`] with the opened value as it came
    /// off the wire).
    fn trunc_value<R: Ring>(
        &self,
        c: &Opened<R>,
        r_shifted: RingTensor<R>,
        r_msb: &RingTensor<R>,
        bits: u32,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        check_bits::<R>(bits)?;
        self.trunc_combine_into(&c.to_tensor(), r_shifted, r_msb, bits, party0)
    }

    /// The products of pairs of truncated values of one round (a
    /// truncation group), each in its `outs` buffer, which holds the
    /// dealer's share of r'_i r'_j on entry. With v = P + L per
    /// truncation (u = k - 1 - f, s = 1 - 2 c_msb): v_i v_j = P_i P_j +
    /// P_i L_j + P_j L_i + L_i L_j, where L_i L_j is a public combination
    /// of the dealer's products of r' and r_msb; party 0 adds P_i P_j.
    ///
    /// Errors: [`Error::Unsupported`] for a pair that is not i <= j of
    /// `views` or a product with other than 1 (square) or 3 shares;
    /// [`Error::ShapeMismatch`].
    fn trunc_products<R: Ring>(
        &self,
        views: &[TruncParts<'_, R>],
        prods: &[TruncProduct<'_, R>],
        outs: Vec<RingTensor<R>>,
        party0: bool,
    ) -> Result<Vec<RingTensor<R>>> {
        check_products(views, prods, &outs)?;
        let publics: Vec<TruncPublic<R>> = views.iter().map(TruncPublic::of).collect();
        let mut done = Vec::with_capacity(outs.len());
        for (p, rr) in prods.iter().zip(outs) {
            let (i, j) = p.pair;
            let (vi, pi) = (&views[i], &publics[i]);
            let li = trunc_share(self, vi, pi)?;
            let mut z = rr;
            match p.corr[..] {
                [rm] => {
                    // L^2 = r'^2 - 2 s 2^u r' r_msb + 2^(2u) r_msb
                    let two_su = map_public(&pi.su, |v| v.shl(1));
                    z = self.sub(&z, &self.mul(rm, &two_su)?)?;
                    let two_u = pow2::<R>(2 * TruncStep::<R>::new(vi.bits).top);
                    z = self.add_scaled(z, vi.r_msb, two_u, R::ZERO)?;
                    let two_p = map_public(&pi.p, |v| v.shl(1));
                    self.add_assign(&mut z, &self.mul(&li, &two_p)?)?;
                    if party0 {
                        let pp = map_public(&pi.p, |v| v.wrapping_mul(v));
                        self.add_assign(&mut z, &pp)?;
                    }
                }
                [rm, mr, mm] => {
                    let (vj, pj) = (&views[j], &publics[j]);
                    let lj = trunc_share(self, vj, pj)?;
                    // L_i L_j = r'_i r'_j - s_j 2^u_j r'_i m_j - s_i 2^u_i m_i r'_j
                    //           + s_i s_j 2^(u_i + u_j) m_i m_j
                    z = self.sub(&z, &self.mul(rm, &pj.su)?)?;
                    z = self.sub(&z, &self.mul(mr, &pi.su)?)?;
                    let ss = zip_public(&pi.su, &pj.su, R::wrapping_mul);
                    self.add_assign(&mut z, &self.mul(mm, &ss)?)?;
                    self.add_assign(&mut z, &self.mul(&lj, &pi.p)?)?;
                    self.add_assign(&mut z, &self.mul(&li, &pj.p)?)?;
                    if party0 {
                        let pp = zip_public(&pi.p, &pj.p, R::wrapping_mul);
                        self.add_assign(&mut z, &pp)?;
                    }
                }
                _ => unreachable!("counted by check_products"),
            }
            done.push(z);
        }
        Ok(done)
    }

    /// `next` + v^2 + bias, in next's buffer, for a truncated value v whose
    /// square is only masked for the next opening (`rr`, `rm`: the
    /// dealer's shares of r'^2 and r' r_msb): [`MpcSteps::trunc_products`]
    /// of one square, then [`MpcSteps::mask`], fused on the CPU.
    fn trunc_square_masked<R: Ring>(
        &self,
        v: &TruncParts<'_, R>,
        rr: &RingTensor<R>,
        rm: &RingTensor<R>,
        next: RingTensor<R>,
        bias: R,
        party0: bool,
    ) -> Result<RingTensor<R>> {
        let square = TruncProduct {
            pair: (0, 0),
            corr: vec![rm],
        };
        let sq = self.trunc_products(&[*v], &[square], vec![rr.clone()], party0)?;
        self.mask(next, &sq[0], bias)
    }

    /// Bit injection's local step ([`crate::protocol::convert::inject`];
    /// daBits, Rotaru and Wood, INDOCRYPT 2019): from this party's shares
    /// of x [n * width] (bit i scales x[i width..(i + 1) width]), of the
    /// dealer's c = a s [n * width] and of s [n] (arithmetic daBits), the
    /// opened d = x - a (a host tensor of x's shape) and the opened words e
    /// = b ^ s (bit i for element i): this party's shares of x b (x's
    /// shape) and of b ([n]): [x s] = c + d [s], [x b] = e x + (1 - 2e)
    /// [x s], [b] = [party 0] e + (1 - 2e) [s].
    ///
    /// Errors: [`Error::ShapeMismatch`] for sizes that do not fit.
    fn inject_combine<R: Ring>(
        &self,
        x: &RingTensor<R>,
        c: &RingTensor<R>,
        s: &RingTensor<R>,
        d: &RingTensor<R>,
        e: &[u64],
        party0: bool,
    ) -> Result<[RingTensor<R>; 2]> {
        let width = check_inject(x, c, s, d, e)?;
        let n = s.numel();
        let bit = |i: usize| R::from_u64((e[i / 64] >> (i % 64)) & 1);
        // Public factors on the host (functions of the opened e).
        let e_wide: Vec<R> = (0..n * width).map(|j| bit(j / width)).collect();
        let e_wide = RingTensor::new(x.shape().clone(), e_wide)?;
        let flip: Vec<R> = (0..n).map(|i| R::ONE.wrapping_sub(bit(i).shl(1))).collect();
        let flip = RingTensor::new([n], flip)?;
        let s_wide = self.broadcast_axis(s, &[n, width].into(), 1)?;
        let s_wide = s_wide.reshape(x.shape().clone())?;
        let mut xs = c.clone();
        self.add_assign(&mut xs, &self.mul(d, &s_wide)?)?;
        // x b = xs + e (x - 2 xs)
        let diff = self.sub(x, &self.mul_scalar(&xs, R::from_u64(2))?)?;
        let mut xb = xs;
        self.add_assign(&mut xb, &self.mul(&e_wide, &diff)?)?;
        let s_flat = s.clone().reshape([n])?;
        let mut b = self.mul(&s_flat, &flip)?;
        if party0 {
            let e_bits = RingTensor::new([n], (0..n).map(bit).collect())?;
            self.add_assign(&mut b, &e_bits)?;
        }
        Ok([xb, b])
    }

    /// B2A's local step for public linear maps of bits
    /// ([`crate::protocol::convert::b2a_weighted`], daBits): from the
    /// opened words e = b ^ s (plane j at j * words) and this party's
    /// arithmetic daBit shares s (bit i of plane j at j * 64 * words + i),
    /// for each weight vector w (one weight per plane) this party's share
    /// of sum_j w[j] b_j over the n values, b_j = [party 0] e_j + (1 - 2
    /// e_j) s_j. The default forms each plane's b_j with backend ops; the
    /// CPU accumulates every output in one pass over the daBits.
    ///
    /// Errors: [`Error::ShapeMismatch`] for sizes that do not fit.
    fn b2a_combine<R: Ring>(
        &self,
        e: &[u64],
        s: &RingTensor<R>,
        weights: &[Vec<R>],
        n: usize,
        words: usize,
        party0: bool,
    ) -> Result<Vec<RingTensor<R>>> {
        let planes = check_b2a(e, s, weights, n, words)?;
        let s = s.clone().reshape([s.numel()])?;
        let mut outs: Vec<Option<RingTensor<R>>> = vec![None; weights.len()];
        for j in 0..planes {
            let bit = |i: usize| R::from_u64((e[j * words + i / 64] >> (i % 64)) & 1);
            let flip: Vec<R> = (0..n).map(|i| R::ONE.wrapping_sub(bit(i).shl(1))).collect();
            let sj = self.slice_axis(&s, 0, j * 64 * words, n)?;
            let mut bj = self.mul(&sj, &RingTensor::new([n], flip)?)?;
            if party0 {
                self.add_assign(&mut bj, &RingTensor::new([n], (0..n).map(bit).collect())?)?;
            }
            for (out, w) in outs.iter_mut().zip(weights) {
                *out = Some(match out.take() {
                    None => self.mul_scalar(&bj, w[j])?,
                    Some(acc) => self.add_scaled(acc, &bj, w[j], R::ZERO)?,
                });
            }
        }
        Ok(outs
            .into_iter()
            .map(|o| o.unwrap_or_else(|| RingTensor::zeros([n])))
            .collect())
    }

    /// The leaves of MSB's carry tree over `bits` bit positions from the
    /// public bit planes of c and this party's shares of r's bit planes
    /// (u64 words, plane-major, `words` per plane): (G, P) [bits - 1
    /// planes] and top [1 plane] (`backend/binary.rs`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for planes shorter than `bits`.
    fn carry_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        binary::carry_leaves_host(c, r, bits, words, party0)
    }

    /// The leaves of MSB's carry tree over `bits` bit positions in groups
    /// of 4, computed without a round from the public bit planes of c and
    /// this party's shares of r's bit planes and of the dealer's products
    /// of NOT r (`backend/carry_groups.rs`): (G, P) [one plane per group]
    /// and top [1 plane]. The default is the host loop (the CUDA backend
    /// runs it on the host too, for now).
    ///
    /// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
    fn carry_group_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        products: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        carry_groups::carry_group_leaves_host(c, r, products, bits, words, party0)
    }

    /// The planes to open for a layer of multi-input ANDs
    /// (`backend/fanin.rs`): each input of [`FanIn::opened`] XOR its mask,
    /// from this party's shares of the inputs `x` [inputs * words] and of
    /// the masks [opened * words]. The default is the host loop.
    ///
    /// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
    fn fanin_mask(
        &self,
        x: &RingTensor<u64>,
        lambda: &RingTensor<u64>,
        spec: &FanIn,
        words: usize,
    ) -> Result<RingTensor<u64>> {
        fanin::fanin_mask_host(x, lambda, spec, words)
    }

    /// This party's shares of a layer of multi-input ANDs' outputs
    /// ([polys x words] words) after the opening of `delta` (host words
    /// off the wire), from its shares of the inputs, the masks and the
    /// dealer's mask products (`backend/fanin.rs`). The default is the
    /// host loop.
    ///
    /// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
    #[allow(clippy::too_many_arguments)]
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
        fanin::fanin_combine_host(delta, x, lambda, products, spec, words, party0)
    }

    /// The masked inputs (e, f) of one carry-tree level's ANDs over
    /// `nodes` nodes (G, P) with this party's binary triple shares a, b
    /// [`binary::level_ands`] planes each (`backend/binary.rs`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
    fn carry_level_mask(
        &self,
        g: &RingTensor<u64>,
        p: &RingTensor<u64>,
        a: &RingTensor<u64>,
        b: &RingTensor<u64>,
        nodes: usize,
        words: usize,
    ) -> Result<[RingTensor<u64>; 2]> {
        binary::carry_level_mask_host(g, p, a, b, nodes, words)
    }

    /// The next carry-tree level (G, P) from the opened e, f (host words,
    /// off the wire) and this party's triple shares [a, b, c]
    /// (`backend/binary.rs`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for inputs of other lengths.
    #[allow(clippy::too_many_arguments)]
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
        binary::carry_level_combine_host(g, p, e, f, abc, nodes, words, party0)
    }

    /// This party's share of x AND y for XOR-shared words, from the opened
    /// e = x ^ a and f = y ^ b (host words, off the wire) and its binary
    /// triple shares [a, b, c] (`backend/binary.rs`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for inputs of other lengths.
    fn and_combine(
        &self,
        e: &[u64],
        f: &[u64],
        abc: [&RingTensor<u64>; 3],
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        binary::and_combine_host(e, f, abc, party0)
    }

    /// a ^ b over u64 words (XOR shares: local).
    ///
    /// Errors: [`Error::ShapeMismatch`] for different lengths.
    fn xor_words(&self, a: &RingTensor<u64>, b: &RingTensor<u64>) -> Result<RingTensor<u64>> {
        binary::xor_host(a, b)
    }

    /// The leaves (G, P, p) of A2B's prefix adder over `bits` planes of
    /// `words` words from the public bit planes of c and this party's
    /// shares of r's bits (`backend/adder.rs`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
    fn adder_leaves(
        &self,
        c: &RingTensor<u64>,
        r: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<[RingTensor<u64>; 3]> {
        adder::adder_leaves_host(c, r, bits, words, party0)
    }

    /// One level of span `dist` of A2B's prefix adder after its ANDs
    /// (`pg` = P_hi & G_lo, `new_p` = P_hi & P_lo or `None` once
    /// 2 dist >= bits): the new (G, P) (`backend/adder.rs`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
    #[allow(clippy::too_many_arguments)]
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
        adder::adder_level_host(g, p, pg, new_p, dist, bits, words)
    }

    /// The sum planes p_j ^ carry_j of A2B's prefix adder (carry_0 = 1,
    /// carry_j = G_(j-1)): this party's XOR share of x's bits
    /// (`backend/adder.rs`).
    ///
    /// Errors: [`Error::ShapeMismatch`] for tensors of other lengths.
    fn adder_sum(
        &self,
        p: &RingTensor<u64>,
        g: &RingTensor<u64>,
        bits: usize,
        words: usize,
        party0: bool,
    ) -> Result<RingTensor<u64>> {
        adder::adder_sum_host(p, g, bits, words, party0)
    }
}

/// This party's share L = s 2^u r_msb - r' of a truncated value (the
/// default steps' helper).
fn trunc_share<B: Backend + ?Sized, R: Ring>(
    be: &B,
    v: &TruncParts<'_, R>,
    public: &TruncPublic<R>,
) -> Result<RingTensor<R>> {
    be.sub(&be.mul(v.r_msb, &public.su)?, v.r_shifted)
}

/// The public parts of one truncation, on the host: P and s 2^u per
/// element (the default steps' helper).
#[derive(Debug)]
struct TruncPublic<R: Ring> {
    p: RingTensor<R>,
    su: RingTensor<R>,
}

impl<R: Ring> TruncPublic<R> {
    fn of(v: &TruncParts<'_, R>) -> Self {
        let step = TruncStep::<R>::new(v.bits);
        let one_u = pow2::<R>(step.top);
        TruncPublic {
            p: v.c.map(|c| step.at(c, R::ZERO, R::ZERO).0),
            su: v.c.map(|c| signed(one_u, step.at(c, R::ZERO, R::ZERO).1)),
        }
    }
}

/// f of every element of a public host tensor (made from opened values).
fn map_public<R: Ring>(a: &RingTensor<R>, f: impl Fn(R) -> R) -> RingTensor<R> {
    let data = a.data().iter().map(|&v| f(v)).collect();
    RingTensor::new(a.shape().clone(), data).expect("same length")
}

fn zip_public<R: Ring>(
    a: &RingTensor<R>,
    b: &RingTensor<R>,
    f: impl Fn(R, R) -> R,
) -> RingTensor<R> {
    let data = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| f(*x, *y))
        .collect();
    RingTensor::new(a.shape().clone(), data).expect("same length")
}

/// 2^e in Z_2^k (0 when e >= k).
pub(crate) fn pow2<R: Ring>(e: u32) -> R {
    if e >= R::BITS {
        R::ZERO
    } else {
        R::ONE.shl(e)
    }
}

pub(crate) fn check_shape<R: Ring>(
    x: &RingTensor<R>,
    shape: &Shape,
    op: &'static str,
) -> Result<()> {
    if x.shape() != shape {
        return Err(Error::shape(
            op,
            format!("a share of shape {} for {shape}", x.shape()),
        ));
    }
    Ok(())
}

/// The checks of [`MpcSteps::trunc_products`], shared by every backend.
pub(crate) fn check_products<R: Ring>(
    views: &[TruncParts<'_, R>],
    prods: &[TruncProduct<'_, R>],
    outs: &[RingTensor<R>],
) -> Result<()> {
    if prods.len() != outs.len() {
        return Err(Error::Unsupported(format!(
            "{} truncation products with {} output buffers (internal)",
            prods.len(),
            outs.len()
        )));
    }
    let Some(shape) = views.first().map(|v| v.c.shape()) else {
        return match prods.is_empty() {
            true => Ok(()),
            false => Err(Error::Unsupported(
                "products of no truncations (internal)".into(),
            )),
        };
    };
    for v in views {
        for t in [v.r_shifted, v.r_msb] {
            check_shape(t, shape, "truncation product")?;
        }
        if v.c.shape() != shape {
            return Err(Error::shape(
                "truncation product",
                format!("opened values of shapes {shape} and {}", v.c.shape()),
            ));
        }
        check_bits::<R>(v.bits)?;
    }
    for (p, out) in prods.iter().zip(outs) {
        let (i, j) = p.pair;
        let want = if i == j { 1 } else { 3 };
        if i > j || j >= views.len() || p.corr.len() != want {
            return Err(Error::Unsupported(format!(
                "truncation product {:?} with {} shares over {} truncations (internal)",
                p.pair,
                p.corr.len(),
                views.len()
            )));
        }
        check_shape(out, shape, "truncation product")?;
        for t in &p.corr {
            check_shape(t, shape, "truncation product")?;
        }
    }
    Ok(())
}

/// The checks of [`MpcSteps::inject_combine`]; returns the width.
pub(crate) fn check_inject<R: Ring>(
    x: &RingTensor<R>,
    c: &RingTensor<R>,
    s: &RingTensor<R>,
    d: &RingTensor<R>,
    e: &[u64],
) -> Result<usize> {
    let n = s.numel();
    if n == 0 || !x.numel().is_multiple_of(n) || e.len() < n.div_ceil(64) {
        return Err(Error::shape(
            "inject",
            format!(
                "{} values over {n} bits ({} opened words)",
                x.numel(),
                e.len()
            ),
        ));
    }
    for t in [c, d] {
        check_shape(t, x.shape(), "inject")?;
    }
    Ok(x.numel() / n)
}

/// The checks of [`MpcSteps::b2a_combine`]; returns the planes.
pub(crate) fn check_b2a<R: Ring>(
    e: &[u64],
    s: &RingTensor<R>,
    weights: &[Vec<R>],
    n: usize,
    words: usize,
) -> Result<usize> {
    let planes = weights.first().map_or(0, Vec::len);
    let ok = planes > 0
        && weights.iter().all(|w| w.len() == planes)
        && words == n.div_ceil(64)
        && e.len() >= planes * words
        && s.numel() >= (planes - 1) * 64 * words + n;
    if !ok {
        return Err(Error::shape(
            "b2a",
            format!(
                "{planes} planes of {n} values from {} opened words and {} daBits",
                e.len(),
                s.numel()
            ),
        ));
    }
    Ok(planes)
}

/// A truncation by `bits` fits Z_2^k (bits <= k - 2).
///
/// Errors: [`Error::InvalidFixedPoint`].
pub(crate) fn check_bits<R: Ring>(bits: u32) -> Result<()> {
    if bits + 2 > R::BITS {
        return Err(Error::InvalidFixedPoint(format!(
            "cannot truncate {bits} bits in Z_2^{}",
            R::BITS
        )));
    }
    Ok(())
}

mod audit;
mod dispatch;
