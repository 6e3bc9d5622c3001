//! [`Session`]: one party's handle on a computation. No global state.
//!
//! A session owns the party's transport, backend, preprocessing provider and
//! configuration, and is the only path from protocol code to the network:
//! protocols call [`Session::open`] (or [`Session::open_to`]) and the session
//! packs all values of that round into one message per peer, posts the sends
//! without waiting, then awaits the peers' messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use spindle_transport::{LinkStats, PartyId, Transport};

use crate::backend::Device;
use crate::error::{Error, Result};
use crate::pipeline::{InnerPipeline, Turns};
use crate::preprocess::{Dealer, PartyStore, PlanRecorder, Provider, Request, SeededProvider};
use crate::prg::Seed;
use crate::ring::append_le_bytes;
use crate::ring::{FixedPoint, Ring, RingTensor};
use crate::share::Opened;

/// How [`crate::protocol::trunc::truncate`] divides shares by 2^f.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TruncMode {
    /// Dealer-assisted probabilistic truncation for any N (Escudero et al.,
    /// CRYPTO 2020): one round, exact up to 1 ulp for |x| < 2^(k-2).
    #[default]
    Dealer,
    /// SecureML's local shift (Mohassel and Zhang, S&P 2017): zero rounds,
    /// two parties only, an explicit opt-in. Each element is off by at most
    /// 1 ulp, except with probability about |x| / 2^(k-1) (x the encoded
    /// value; 2^-43 for |x| = 1.0 at f = 20 in Z_2^64) where it is wildly
    /// wrong.
    LocalShift,
}

/// Per-session settings.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// Fractional bits of fixed-point values; `None`: the ring's default
    /// ([`Ring::DEFAULT_FRAC_BITS`]: 20 in Z_2^64, 8 in Z_2^32).
    pub frac_bits: Option<u32>,
    /// The truncation protocol.
    pub trunc: TruncMode,
    /// When elementwise protocols on large tensors run as an inner-layer
    /// pipeline ([`crate::pipeline::Lanes`]).
    pub pipeline: InnerPipeline,
}

/// Where a party's correlated randomness comes from.
pub enum ProviderSpec {
    /// A store generated offline by the dealer.
    Store(PartyStore),
    /// Trusted first party: party 0 deals on the fly and sends each other
    /// party its seed during setup. Party 0 learns every mask: tests and
    /// demos only, and logged as such.
    TrustedFirstParty,
    /// A provider built by the caller.
    Custom(Box<dyn Provider>),
}

/// One party of an MPC computation.
pub struct Session {
    party: PartyId,
    n_parties: usize,
    transport: Option<Arc<dyn Transport>>,
    backend: Device,
    /// Shared with the lanes of an inner-layer pipeline, like the counters.
    provider: Arc<Mutex<Box<dyn Provider>>>,
    config: SessionConfig,
    next_round: Arc<AtomicU64>,
    next_input: Arc<AtomicU64>,
    next_static: Arc<AtomicU64>,
    /// This session's lane of an inner-layer pipeline, if it is one.
    lane: Option<(Arc<Turns>, usize)>,
    /// Seed shared with each other party, for input sharing.
    pair_seeds: Vec<Option<Seed>>,
    /// Link counters right after setup (start of the online phase).
    online_start: LinkStats,
    setup_stats: LinkStats,
}

/// Round tags used during setup; online rounds start after them.
const ROUND_PAIR_SEEDS: u64 = 0;
const ROUND_TFP_SEEDS: u64 = 1;
const FIRST_ONLINE_ROUND: u64 = 2;

impl Session {
    /// Connects party `transport.party()` to its peers: agrees a pairwise
    /// seed with every other party (the lower id sends a fresh seed to the
    /// higher, over the transport, which must be confidential in deployment)
    /// and sets up the provider.
    ///
    /// Errors: [`Error::InvalidParty`] for fewer than 2 parties or a store of
    /// another party; transport errors during setup.
    pub async fn connect(
        transport: Arc<dyn Transport>,
        backend: Device,
        provider: ProviderSpec,
        config: SessionConfig,
    ) -> Result<Session> {
        let (party, n) = (transport.party(), transport.n_parties());
        if n < 2 || party >= n {
            return Err(Error::InvalidParty(format!(
                "party {party} of {n}: need N >= 2 and party < N"
            )));
        }
        if let Some(f) = config.frac_bits {
            FixedPoint::new::<u64>(f)?;
        }
        let mut pair_seeds = vec![None; n];
        for (peer, slot) in pair_seeds.iter_mut().enumerate() {
            if peer > party {
                let s = Seed::random()?;
                transport.send(peer, ROUND_PAIR_SEEDS, Bytes::copy_from_slice(&s.0))?;
                *slot = Some(s);
            }
        }
        for (peer, slot) in pair_seeds.iter_mut().enumerate().take(party) {
            let msg = transport.recv(peer, ROUND_PAIR_SEEDS).await?;
            *slot = Some(seed_from_msg(peer, &msg)?);
        }
        let provider: Box<dyn Provider> = match provider {
            ProviderSpec::Store(store) => {
                if store.party != party || store.n_parties != n {
                    return Err(Error::InvalidParty(format!(
                        "preprocessing store is for party {} of {}, this is party {party} of {n}",
                        store.party, store.n_parties
                    )));
                }
                Box::new(store.into_provider(backend.clone()))
            }
            ProviderSpec::TrustedFirstParty => {
                if party == 0 {
                    tracing::warn!(
                        "trusted first party mode: party 0 generates all correlated randomness and can \
                         unmask every value; use a dealer outside tests and demos"
                    );
                    let dealer = Dealer::new(n, backend.clone())?;
                    for peer in 1..n {
                        transport.send(
                            peer,
                            ROUND_TFP_SEEDS,
                            Bytes::copy_from_slice(&dealer.seed(peer).0),
                        )?;
                    }
                    Box::new(SeededProvider::trusted_first_party(dealer, backend.clone()))
                } else {
                    let msg = transport.recv(0, ROUND_TFP_SEEDS).await?;
                    Box::new(SeededProvider::from_seed(
                        seed_from_msg(0, &msg)?,
                        None,
                        backend.clone(),
                    ))
                }
            }
            ProviderSpec::Custom(p) => p,
        };
        let stats = transport.stats();
        Ok(Session {
            party,
            n_parties: n,
            transport: Some(transport),
            backend,
            provider: Arc::new(Mutex::new(provider)),
            config,
            next_round: Arc::new(AtomicU64::new(FIRST_ONLINE_ROUND)),
            next_input: Arc::new(AtomicU64::new(0)),
            next_static: Arc::new(AtomicU64::new(0)),
            lane: None,
            pair_seeds,
            online_start: stats,
            setup_stats: stats,
        })
    }

    /// A session for a dry run of party `party`: no network (openings
    /// return this party's own share), zero material, and every request
    /// recorded into the plan. Used to plan the offline phase.
    ///
    /// Errors: [`Error::InvalidParty`].
    pub fn dry_run(
        party: PartyId,
        n_parties: usize,
        config: SessionConfig,
    ) -> Result<(Session, PlanHandle)> {
        if n_parties < 2 || party >= n_parties {
            return Err(Error::InvalidParty(format!("party {party} of {n_parties}")));
        }
        let recorder = Arc::new(Mutex::new(PlanRecorder::default()));
        let provider = Box::new(SharedRecorder(recorder.clone()));
        Ok((
            Session {
                party,
                n_parties,
                transport: None,
                backend: Device::DryRun(crate::backend::ShapeBackend),
                provider: Arc::new(Mutex::new(provider)),
                config,
                next_round: Arc::new(AtomicU64::new(FIRST_ONLINE_ROUND)),
                next_input: Arc::new(AtomicU64::new(0)),
                next_static: Arc::new(AtomicU64::new(0)),
                lane: None,
                pair_seeds: vec![Some(Seed([0; 16])); n_parties],
                online_start: LinkStats::default(),
                setup_stats: LinkStats::default(),
            },
            PlanHandle(recorder),
        ))
    }

    /// This party's id, 0-based.
    pub fn party(&self) -> PartyId {
        self.party
    }
    /// Number of parties N.
    pub fn n_parties(&self) -> usize {
        self.n_parties
    }
    /// The backend local share arithmetic runs on.
    pub fn backend(&self) -> &Device {
        &self.backend
    }
    /// The session's configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }
    /// True for a lane of an inner-layer pipeline.
    pub fn is_lane(&self) -> bool {
        self.lane.is_some()
    }
    /// True in a dry run (no network, zero material).
    pub fn is_dry_run(&self) -> bool {
        self.transport.is_none()
    }
    /// Fixed-point parameters of the session for ring `R`.
    pub fn fixed_point<R: Ring>(&self) -> Result<FixedPoint> {
        match self.config.frac_bits {
            Some(f) => FixedPoint::new::<R>(f),
            None => Ok(FixedPoint::default_for::<R>()),
        }
    }

    /// Traffic since the end of setup (the online phase).
    pub fn online_stats(&self) -> LinkStats {
        self.link_stats() - self.online_start
    }
    /// Traffic of setup (pairwise seeds; dealer seeds in trusted-first-party mode).
    pub fn setup_stats(&self) -> LinkStats {
        self.setup_stats
    }
    /// Cumulative traffic of this party.
    pub fn link_stats(&self) -> LinkStats {
        self.transport
            .as_ref()
            .map(|t| t.stats())
            .unwrap_or_default()
    }
    /// Round tags handed out so far (for tests counting rounds in dry runs).
    pub fn rounds_used(&self) -> u64 {
        self.next_round.load(Ordering::SeqCst) - FIRST_ONLINE_ROUND
    }

    /// This party's material for `req`, typed.
    ///
    /// Errors: as [`Provider::next`].
    pub fn fetch<R: Ring>(&self, req: &Request) -> Result<Vec<RingTensor<R>>> {
        let mut p = self
            .provider
            .lock()
            .map_err(|_| Error::Unsupported("provider poisoned by a panic".into()))?;
        p.next(req)?.into_typed()
    }

    /// Switches the provider to dealer stream `stream`
    /// ([`Provider::begin_stream`]); every party must call it at the same
    /// point of the program. A no-op in a dry run.
    ///
    /// Errors: [`Error::Unsupported`] for single-stream providers; link
    /// errors of a remote dealer.
    pub fn begin_stream(&self, stream: u64) -> Result<()> {
        if self.is_dry_run() {
            return Ok(());
        }
        self.provider
            .lock()
            .map_err(|_| Error::Unsupported("provider poisoned by a panic".into()))?
            .begin_stream(stream)
    }

    /// This party's material for `req` as ring-tagged tensors (for requests
    /// that mix arithmetic shares with packed binary words).
    ///
    /// Errors: as [`Provider::next`].
    pub fn fetch_any(&self, req: &Request) -> Result<Vec<crate::ring::AnyTensor>> {
        let mut p = self
            .provider
            .lock()
            .map_err(|_| Error::Unsupported("provider poisoned by a panic".into()))?;
        Ok(p.next(req)?.0)
    }

    /// A fresh id for a static operand (same sequence on every party).
    pub(crate) fn next_static_id(&self) -> u64 {
        self.next_static.fetch_add(1, Ordering::SeqCst)
    }

    /// The seed this party shares with `peer` and the next input-sharing stream.
    pub(crate) fn next_input_stream(&self) -> u64 {
        self.next_input.fetch_add(1, Ordering::SeqCst)
    }
    pub(crate) fn pair_seed(&self, peer: PartyId) -> Option<&Seed> {
        self.pair_seeds.get(peer).and_then(|s| s.as_ref())
    }

    /// Lane `lane` of an inner-layer pipeline over this session
    /// ([`crate::pipeline::Lanes`]): the same party, links, backend,
    /// provider and counters, and every opening hands the turn to the next
    /// lane between its sends and its receives ([`Turns`]).
    pub(crate) fn lane(&self, turns: Arc<Turns>, lane: usize) -> Session {
        Session {
            party: self.party,
            n_parties: self.n_parties,
            transport: self.transport.clone(),
            backend: self.backend.clone(),
            provider: self.provider.clone(),
            config: self.config.clone(),
            next_round: self.next_round.clone(),
            next_input: self.next_input.clone(),
            next_static: self.next_static.clone(),
            lane: Some((turns, lane)),
            pair_seeds: self.pair_seeds.clone(),
            online_start: self.online_start,
            setup_stats: self.setup_stats,
        }
    }

    /// The point between an opening's sends and its receives: a lane of an
    /// inner-layer pipeline lets the other lanes compute while its messages
    /// travel. Every opening passes here, in dry runs too, so that the
    /// order of requests and round tags is the same in the plan and online.
    async fn in_flight(&self) {
        if let Some((turns, lane)) = &self.lane {
            turns.hand_over(*lane).await;
        }
    }

    /// Opens (reveals to every party) the sum over parties of each tensor:
    /// this party's share of each value goes to every peer in ONE message,
    /// so a call is one round whatever the number of tensors.
    ///
    /// Bytes sent per party: (N - 1) * sum(numel) * k / 8.
    /// Errors: transport errors; [`Error::Malformed`] for a peer message of
    /// the wrong size.
    pub async fn open<R: Ring>(&self, shares: &[&RingTensor<R>]) -> Result<Vec<RingTensor<R>>> {
        Ok(self.open_mixed(shares, &[]).await?.0)
    }

    /// Opens XOR-shared words (the XOR over parties of each slice) in one round.
    ///
    /// Bytes sent per party: (N - 1) * 8 * sum(len).
    /// Errors: as [`Session::open`].
    pub async fn open_xor(&self, words: &[&[u64]]) -> Result<Vec<Vec<u64>>> {
        Ok(self.open_mixed::<u64>(&[], words).await?.1)
    }

    /// Opens additive shares and XOR-shared words together: ONE message per
    /// peer, one round.
    ///
    /// Bytes sent per party: (N - 1) * (sum(numel) * k / 8 + 8 * sum(len)).
    /// Errors: as [`Session::open`].
    pub async fn open_mixed<R: Ring>(
        &self,
        shares: &[&RingTensor<R>],
        words: &[&[u64]],
    ) -> Result<(Vec<RingTensor<R>>, Vec<Vec<u64>>)> {
        let sums: Vec<RingTensor<R>> = shares.iter().map(|t| (*t).clone()).collect();
        let xors: Vec<Vec<u64>> = words.iter().map(|w| w.to_vec()).collect();
        self.open_into(sums, xors).await
    }

    /// [`Session::open`] of shares this party no longer needs: the peers'
    /// shares are added into them in place (no copy of the own shares).
    ///
    /// Bytes sent per party: as [`Session::open`]. Errors: as
    /// [`Session::open`].
    pub async fn open_owned<R: Ring>(
        &self,
        shares: Vec<RingTensor<R>>,
    ) -> Result<Vec<RingTensor<R>>> {
        Ok(self.open_into(shares, vec![]).await?.0)
    }

    /// [`Session::open_owned`] whose sums are left to their consumers: with
    /// 2 parties each value comes back as this party's share and the
    /// peer's, which the kernel reading it adds as it reads
    /// ([`crate::share::Opened`]); otherwise as the sum. Same message, same
    /// round, same bytes as [`Session::open`].
    ///
    /// Errors: as [`Session::open`].
    pub(crate) async fn open_parts<R: Ring>(
        &self,
        shares: Vec<RingTensor<R>>,
    ) -> Result<Vec<Opened<R>>> {
        let two_parties = self.n_parties == 2 && cfg!(target_endian = "little");
        let transport = match &self.transport {
            Some(t) if two_parties => t,
            _ => {
                let sums = self.open_owned(shares).await?;
                return Ok(sums.into_iter().map(Opened::from_sum).collect());
            }
        };
        let round = self.next_round.fetch_add(1, Ordering::SeqCst);
        let peer = 1 - self.party;
        let shapes: Vec<_> = shares.iter().map(|t| t.shape().clone()).collect();
        let own: Vec<Bytes> = shares
            .into_iter()
            .map(|t| Ok(Bytes::from_owner(PodBytes(t.try_into_data()?))))
            .collect::<Result<_>>()?;
        let total: usize = own.iter().map(Bytes::len).sum();
        transport.send_parts(peer, round, own.clone())?;
        self.in_flight().await;
        let msg = transport.recv(peer, round).await?;
        check_len(peer, total, msg.len())?;
        let mut off = 0;
        Ok(own
            .into_iter()
            .zip(shapes)
            .map(|(own, shape)| {
                let theirs = msg.slice(off..off + own.len());
                off += own.len();
                Opened::from_parts(shape, own, theirs)
            })
            .collect())
    }

    /// [`Session::open_xor`] of words this party no longer needs: the peers'
    /// words are XORed into them in place (no copy of the own words).
    ///
    /// Bytes sent per party: as [`Session::open_xor`]. Errors: as
    /// [`Session::open`].
    pub async fn open_xor_owned(&self, words: Vec<Vec<u64>>) -> Result<Vec<Vec<u64>>> {
        Ok(self.open_into::<u64>(vec![], words).await?.1)
    }

    /// One round: sends the own shares, adds (XORs) every peer's to them.
    ///
    /// On little-endian machines each buffer is sent as it is (its memory
    /// is its wire format: [`Transport::send_parts`], no packing copy) and
    /// each result is formed in one pass that reads the own and the peers'
    /// values.
    async fn open_into<R: Ring>(
        &self,
        sums: Vec<RingTensor<R>>,
        xors: Vec<Vec<u64>>,
    ) -> Result<(Vec<RingTensor<R>>, Vec<Vec<u64>>)> {
        let round = self.next_round.fetch_add(1, Ordering::SeqCst);
        let Some(transport) = &self.transport else {
            self.in_flight().await;
            return Ok((sums, xors));
        };
        if cfg!(target_endian = "big") {
            return self.open_packed(transport, round, sums, xors).await;
        }
        let shapes: Vec<_> = sums.iter().map(|t| t.shape().clone()).collect();
        // The transport boundary: device results come down here (a failed
        // copy is an error, not a panic).
        let own_sums: Vec<Bytes> = sums
            .into_iter()
            .map(|t| Ok(Bytes::from_owner(PodBytes(t.try_into_data()?))))
            .collect::<Result<_>>()?;
        let own_xors: Vec<Bytes> = xors
            .into_iter()
            .map(|w| Bytes::from_owner(PodBytes(w)))
            .collect();
        let parts: Vec<Bytes> = own_sums.iter().chain(&own_xors).cloned().collect();
        let total: usize = parts.iter().map(Bytes::len).sum();
        let peers = || (0..self.n_parties).filter(|&p| p != self.party);
        for peer in peers() {
            transport.send_parts(peer, round, parts.clone())?;
        }
        drop(parts);
        self.in_flight().await;
        let mut out_sums: Vec<Option<Vec<R>>> = vec![None; own_sums.len()];
        let mut out_xors: Vec<Option<Vec<u64>>> = vec![None; own_xors.len()];
        for peer in peers() {
            let msg = transport.recv(peer, round).await?;
            check_len(peer, total, msg.len())?;
            let mut off = 0;
            for (own, out) in own_sums.iter().zip(&mut out_sums) {
                combine(out, own, &msg[off..off + own.len()], R::wrapping_add);
                off += own.len();
            }
            for (own, out) in own_xors.iter().zip(&mut out_xors) {
                combine(out, own, &msg[off..off + own.len()], |a: u64, b| a ^ b);
                off += own.len();
            }
        }
        // The own buffers are the results only with no peer (never for N >= 2).
        fn done<T: bytemuck::Pod>(own: &Bytes) -> Vec<T> {
            bytemuck::cast_slice(own).to_vec()
        }
        let sums = own_sums
            .iter()
            .zip(out_sums)
            .zip(shapes)
            .map(|((own, out), shape)| RingTensor::new(shape, out.unwrap_or_else(|| done(own))))
            .collect::<Result<_>>()?;
        let xors = own_xors
            .iter()
            .zip(out_xors)
            .map(|(own, out)| out.unwrap_or_else(|| done(own)))
            .collect();
        Ok((sums, xors))
    }

    /// [`Session::open_into`] through one packed little-endian message (for
    /// big-endian machines, whose memory is not the wire format).
    async fn open_packed<R: Ring>(
        &self,
        transport: &Arc<dyn Transport>,
        round: u64,
        mut sums: Vec<RingTensor<R>>,
        mut xors: Vec<Vec<u64>>,
    ) -> Result<(Vec<RingTensor<R>>, Vec<Vec<u64>>)> {
        let payload = {
            let shares: Vec<&RingTensor<R>> = sums.iter().collect();
            let words: Vec<&[u64]> = xors.iter().map(|w| &w[..]).collect();
            pack(&shares, &words)
        };
        for peer in (0..self.n_parties).filter(|&p| p != self.party) {
            transport.send(peer, round, payload.clone())?;
        }
        self.in_flight().await;
        for peer in (0..self.n_parties).filter(|&p| p != self.party) {
            let msg = transport.recv(peer, round).await?;
            self.accumulate(peer, &msg, &mut sums, &mut xors)?;
        }
        Ok((sums, xors))
    }

    /// Opens the values to party `to` only: the others send it their shares
    /// (one message each, one round). Returns `Some` at `to`, `None` elsewhere.
    ///
    /// Errors: [`Error::InvalidParty`], transport errors, [`Error::Malformed`].
    pub async fn open_to<R: Ring>(
        &self,
        to: PartyId,
        shares: &[&RingTensor<R>],
    ) -> Result<Option<Vec<RingTensor<R>>>> {
        if to >= self.n_parties {
            return Err(Error::InvalidParty(format!(
                "cannot open to party {to} of {}",
                self.n_parties
            )));
        }
        let round = self.next_round.fetch_add(1, Ordering::SeqCst);
        let Some(transport) = &self.transport else {
            self.in_flight().await;
            return Ok((self.party == to).then(|| shares.iter().map(|t| (*t).clone()).collect()));
        };
        if self.party != to {
            transport.send(to, round, pack(shares, &[]))?;
            self.in_flight().await;
            return Ok(None);
        }
        self.in_flight().await;
        let mut sums: Vec<RingTensor<R>> = shares.iter().map(|t| (*t).clone()).collect();
        for peer in (0..self.n_parties).filter(|&p| p != self.party) {
            let msg = transport.recv(peer, round).await?;
            self.accumulate(peer, &msg, &mut sums, &mut [])?;
        }
        Ok(Some(sums))
    }

    fn accumulate<R: Ring>(
        &self,
        peer: PartyId,
        msg: &[u8],
        sums: &mut [RingTensor<R>],
        xors: &mut [Vec<u64>],
    ) -> Result<()> {
        let expected: usize = sums.iter().map(|t| t.numel() * R::BYTES).sum::<usize>()
            + xors.iter().map(|w| w.len() * 8).sum::<usize>();
        if msg.len() != expected {
            return Err(Error::Malformed {
                from: peer,
                detail: format!("expected {expected} bytes of shares, got {}", msg.len()),
            });
        }
        let mut off = 0;
        for sum in sums.iter_mut() {
            let len = sum.numel() * R::BYTES;
            add_le_bytes(sum.data_mut(), &msg[off..off + len]);
            off += len;
        }
        for w in xors.iter_mut() {
            let len = 8 * w.len();
            for (v, chunk) in w.iter_mut().zip(msg[off..off + len].chunks_exact(8)) {
                *v ^= u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            }
            off += len;
        }
        Ok(())
    }
}

/// A peer's message of shares must have the own message's length.
fn check_len(peer: PartyId, total: usize, got: usize) -> Result<()> {
    if got != total {
        return Err(Error::Malformed {
            from: peer,
            detail: format!("expected {total} bytes of shares, got {got}"),
        });
    }
    Ok(())
}

/// sum[i] += the i-th little-endian element of `bytes` (wrapping).
fn add_le_bytes<R: Ring>(sum: &mut [R], bytes: &[u8]) {
    match bytemuck::try_cast_slice::<u8, R>(bytes) {
        Ok(theirs) if cfg!(target_endian = "little") => {
            sum.iter_mut()
                .zip(theirs)
                .for_each(|(a, b)| *a = a.wrapping_add(*b));
        }
        _ => {
            for (a, chunk) in sum.iter_mut().zip(bytes.chunks_exact(R::BYTES)) {
                let mut w = [0u8; 8];
                w[..R::BYTES].copy_from_slice(chunk);
                *a = a.wrapping_add(R::from_u64(u64::from_le_bytes(w)));
            }
        }
    }
}

/// out = out ∘ theirs, element by element with `op` (ring addition or
/// XOR), where an empty `out` stands for `own`: the first peer's message
/// makes a fresh buffer in one pass over both, later ones combine in place.
/// `own` is a [`PodBytes`] buffer (aligned for T); `theirs` may be
/// unaligned (then read element by element). The lengths match (checked by
/// the caller).
fn combine<T: bytemuck::Pod>(
    out: &mut Option<Vec<T>>,
    own: &[u8],
    theirs: &[u8],
    op: impl Fn(T, T) -> T,
) {
    let size = std::mem::size_of::<T>();
    let aligned = bytemuck::try_cast_slice::<u8, T>(theirs);
    let at = |i: usize| match aligned {
        Ok(t) => t[i],
        Err(_) => bytemuck::pod_read_unaligned(&theirs[i * size..(i + 1) * size]),
    };
    match (out.as_mut(), aligned) {
        (Some(o), Ok(t)) => o.iter_mut().zip(t).for_each(|(a, b)| *a = op(*a, *b)),
        (Some(o), Err(_)) => o
            .iter_mut()
            .enumerate()
            .for_each(|(i, a)| *a = op(*a, at(i))),
        (None, Ok(t)) => {
            let mine: &[T] = bytemuck::cast_slice(own);
            *out = Some(mine.iter().zip(t).map(|(a, b)| op(*a, *b)).collect());
        }
        (None, Err(_)) => {
            let mine: &[T] = bytemuck::cast_slice(own);
            *out = Some(
                mine.iter()
                    .enumerate()
                    .map(|(i, a)| op(*a, at(i)))
                    .collect(),
            );
        }
    }
}

/// A vector of plain values as the bytes of a message (little-endian
/// machines only: the wire format is little-endian).
struct PodBytes<T>(Vec<T>);

impl<T: bytemuck::Pod> AsRef<[u8]> for PodBytes<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Packs additive shares, then XOR-shared words, into one little-endian message.
fn pack<R: Ring>(shares: &[&RingTensor<R>], words: &[&[u64]]) -> Bytes {
    let total: usize = shares.iter().map(|t| t.numel() * R::BYTES).sum::<usize>()
        + words.iter().map(|w| w.len() * 8).sum::<usize>();
    let mut buf = Vec::with_capacity(total);
    for t in shares {
        append_le_bytes(t.data(), &mut buf);
    }
    for w in words {
        append_le_bytes(w, &mut buf);
    }
    Bytes::from(buf)
}

fn seed_from_msg(peer: PartyId, msg: &[u8]) -> Result<Seed> {
    let bytes: [u8; 16] = msg.try_into().map_err(|_| Error::Malformed {
        from: peer,
        detail: format!("a seed is 16 bytes, got {}", msg.len()),
    })?;
    Ok(Seed(bytes))
}

/// The plan being recorded by a dry-run session.
#[derive(Clone)]
pub struct PlanHandle(Arc<Mutex<PlanRecorder>>);

impl PlanHandle {
    /// The plan recorded so far.
    pub fn plan(&self) -> crate::preprocess::Plan {
        self.0.lock().map(|r| r.plan().clone()).unwrap_or_default()
    }
}

struct SharedRecorder(Arc<Mutex<PlanRecorder>>);

impl Provider for SharedRecorder {
    fn next(&mut self, req: &Request) -> Result<crate::preprocess::Material> {
        self.0
            .lock()
            .map_err(|_| Error::Unsupported("plan recorder poisoned by a panic".into()))?
            .next(req)
    }
    fn label(&self) -> &'static str {
        "plan recorder (dry run)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// open_parts: a peer message of the wrong length is a clear error
    /// naming the peer (no panic, no slicing past its end), and a right
    /// one opens the sum.
    #[test]
    fn open_parts_checks_the_peer_message() {
        use spindle_transport::InMemoryNetwork;
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut eps = InMemoryNetwork::new(2);
            let t1: Arc<dyn Transport> = Arc::new(eps.pop().unwrap());
            let t0: Arc<dyn Transport> = Arc::new(eps.pop().unwrap());
            let spec = || ProviderSpec::TrustedFirstParty;
            let cfg = SessionConfig::default;
            let s1 = tokio::spawn(Session::connect(t1.clone(), Device::default(), spec(), cfg()));
            let s0 = Session::connect(t0, Device::default(), spec(), cfg())
                .await
                .unwrap();
            let s1 = s1.await.unwrap().unwrap();
            let mine = RingTensor::<u64>::new([3], vec![1, 2, u64::MAX]).unwrap();
            let theirs = RingTensor::<u64>::new([3], vec![5, 6, 2]).unwrap();
            let (a, b) = tokio::join!(s0.open_parts(vec![mine.clone()]), s1.open_parts(vec![theirs]));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a[0].clone().into_tensor().data(), &[6, 8, 1]);
            assert_eq!(b[0].clone().into_tensor().data(), &[6, 8, 1]);
            // Party 1 answers the next round with 2 elements instead of 3.
            let round = s1.next_round.load(Ordering::SeqCst);
            t1.send(0, round, Bytes::from(vec![0u8; 16])).unwrap();
            let err = s0.open_parts(vec![mine]).await.unwrap_err();
            assert!(
                matches!(&err, Error::Malformed { from: 1, detail } if detail.contains("expected 24 bytes")),
                "{err}"
            );
        });
    }

    /// The first peer's message makes a fresh buffer, later ones combine in
    /// place; an unaligned message is read element by element, with the
    /// same result.
    #[test]
    fn combine_aligned_and_unaligned() {
        let own = Bytes::from_owner(PodBytes(vec![1u64, u64::MAX, 7]));
        let theirs: Vec<u64> = vec![2, 2, 3];
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(bytemuck::cast_slice(&theirs));
        let add = |a: u64, b: u64| a.wrapping_add(b);
        let (mut a, mut b) = (None, None);
        combine(&mut a, &own, bytemuck::cast_slice(&theirs), add);
        combine(&mut b, &own, &shifted[1..], add);
        assert_eq!(a.as_deref(), Some(&[3, 1, 10][..]));
        assert_eq!(a, b);
        combine(&mut a, &own, &shifted[1..], |x: u64, y| x ^ y);
        assert_eq!(a.as_deref(), Some(&[1, 3, 9][..]));
        combine(&mut b, &own, bytemuck::cast_slice(&theirs), |x: u64, y| {
            x ^ y
        });
        assert_eq!(a, b);
    }
}
