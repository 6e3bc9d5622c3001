//! Input sharing and reveal, as methods of [`Session`].
//!
//! Input sharing costs no online message: party j != owner derives its share
//! from the seed it agreed with the owner at setup (stream = the session's
//! input counter), and the owner keeps x minus the sum of those shares. Any
//! N-1 shares are pseudorandom, so they say nothing about x.

use super::{BinShared, BitPlanes, Shared};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ring::{FixedPoint, Ring, RingTensor, Shape};
use crate::session::Session;

impl Session {
    /// Secret-shares a tensor owned by party `owner`. The owner passes
    /// `Some(value)`, everyone else `None`; all pass the public `shape`.
    ///
    /// Rounds: 0. Bytes: 0 (shares derive from pairwise seeds).
    /// Errors: [`Error::InvalidParty`] for a bad owner or a missing value at
    /// the owner; [`Error::ShapeMismatch`] if the value's shape is not `shape`.
    pub fn share_input<R: Ring>(
        &self,
        owner: usize,
        value: Option<&RingTensor<R>>,
        shape: impl Into<Shape>,
    ) -> Result<Shared<R>> {
        let shape = shape.into();
        if owner >= self.n_parties() {
            return Err(Error::InvalidParty(format!(
                "input owner {owner} of {} parties",
                self.n_parties()
            )));
        }
        let stream = self.next_input_stream();
        let be = self.backend();
        let derive = |peer: usize| -> Result<RingTensor<R>> {
            let seed = self.pair_seed(peer).ok_or_else(|| {
                Error::InvalidParty(format!("no pairwise seed with party {peer}"))
            })?;
            be.prg_tensor::<R>(seed, stream, &shape)
        };
        if self.party() != owner {
            if self.is_dry_run() {
                return Ok(Shared::from_share(RingTensor::zeros(shape)));
            }
            return Ok(Shared::from_share(derive(owner)?));
        }
        let value = value.ok_or_else(|| {
            Error::InvalidParty(format!("party {owner} owns this input but passed no value"))
        })?;
        if value.shape() != &shape {
            return Err(Error::shape(
                "share_input",
                format!("declared shape {shape}, value has {}", value.shape()),
            ));
        }
        let mut share = value.clone();
        if !self.is_dry_run() {
            for peer in (0..self.n_parties()).filter(|&p| p != owner) {
                share = be.sub(&share, &derive(peer)?)?;
            }
        }
        Ok(Shared::from_share(share))
    }

    /// Encodes reals with the session's fixed-point parameters and shares them
    /// (see [`Session::share_input`]).
    ///
    /// Errors: as [`Session::share_input`], plus encoding errors.
    pub fn share_input_f64<R: Ring>(
        &self,
        owner: usize,
        value: Option<&[f64]>,
        shape: impl Into<Shape>,
    ) -> Result<Shared<R>> {
        let shape = shape.into();
        let fp = self.fixed_point::<R>()?;
        let encoded = value
            .map(|v| fp.encode_tensor::<R>(shape.clone(), v))
            .transpose()?;
        self.share_input(owner, encoded.as_ref(), shape)
    }

    /// Reveals a secret to every party. Rounds: 1. Bytes sent per party:
    /// (N - 1) * numel * k / 8.
    ///
    /// Errors: transport errors.
    pub async fn reveal<R: Ring>(&self, x: &Shared<R>) -> Result<RingTensor<R>> {
        let mut v = self.open(&[x.share()]).await?;
        Ok(v.pop().expect("one value opened"))
    }

    /// Reveals several secrets to every party in one round.
    ///
    /// Errors: transport errors.
    pub async fn reveal_many<R: Ring>(&self, xs: &[&Shared<R>]) -> Result<Vec<RingTensor<R>>> {
        let shares: Vec<&RingTensor<R>> = xs.iter().map(|x| x.share()).collect();
        self.open(&shares).await
    }

    /// Reveals a secret to party `to` only (`Some` there, `None` elsewhere).
    /// Rounds: 1. Bytes sent: numel * k / 8 by each party other than `to`.
    ///
    /// Errors: [`Error::InvalidParty`], transport errors.
    pub async fn reveal_to<R: Ring>(
        &self,
        x: &Shared<R>,
        to: usize,
    ) -> Result<Option<RingTensor<R>>> {
        Ok(self
            .open_to(to, &[x.share()])
            .await?
            .map(|mut v| v.pop().expect("one value")))
    }

    /// Reveals XOR-shared bits to every party. Rounds: 1. Bytes sent per
    /// party: (N - 1) * 8 * planes * ceil(numel / 64).
    ///
    /// Errors: transport errors.
    pub async fn reveal_bits(&self, x: &BinShared) -> Result<BitPlanes> {
        let words = self
            .open_xor(&[x.share().data()])
            .await?
            .pop()
            .expect("one value");
        Ok(BitPlanes::from_words(x.shape().clone(), x.planes(), words)?)
    }

    /// Reveals a fixed-point secret to every party and decodes it.
    ///
    /// Errors: as [`Session::reveal`].
    pub async fn reveal_f64<R: Ring>(&self, x: &Shared<R>) -> Result<Vec<f64>> {
        let fp: FixedPoint = self.fixed_point::<R>()?;
        Ok(fp.decode_tensor(&self.reveal(x).await?))
    }
}
