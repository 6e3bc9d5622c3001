//! Openings: one round each, one message per peer.

use std::sync::Arc;

use bytes::Bytes;
use spindle_transport::{PartyId, Transport};

use super::codec::{add_le_bytes, check_len, combine, pack, PodBytes};
use super::{Opened, Session};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ring::{Ring, RingTensor};
use crate::trace::{span, Track};

impl Session {
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
    /// ([`Opened`]); otherwise as the sum. Same message, same
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
        let round = self.tags.next();
        let peer = 1 - self.party;
        let shapes: Vec<_> = shares.iter().map(|t| t.shape().clone()).collect();
        let own: Vec<Bytes> = shares
            .into_iter()
            .map(|t| Ok(Bytes::from_owner(PodBytes(t.try_into_data()?))))
            .collect::<Result<_>>()?;
        let total: usize = own.iter().map(Bytes::len).sum();
        send_traced(peer, total, || {
            transport.send_parts(peer, round, own.clone())
        })?;
        self.in_flight().await;
        let msg = recv_traced(transport, peer, self.stream_id(), round).await?;
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
    pub async fn open_xor_owned(&self, words: Vec<RingTensor<u64>>) -> Result<Vec<Vec<u64>>> {
        Ok(self.open_mixed_owned::<u64>(vec![], words).await?.1)
    }

    /// [`Session::open_mixed`] of values this party no longer needs, the
    /// XOR-shared words as tensors wherever they live (copied to the host
    /// here, for the wire).
    ///
    /// Bytes sent per party: as [`Session::open_mixed`]. Errors: as
    /// [`Session::open`]; device errors.
    pub async fn open_mixed_owned<R: Ring>(
        &self,
        shares: Vec<RingTensor<R>>,
        words: Vec<RingTensor<u64>>,
    ) -> Result<(Vec<RingTensor<R>>, Vec<Vec<u64>>)> {
        let words = words
            .into_iter()
            .map(|w| Ok(w.try_into_data()?))
            .collect::<Result<_>>()?;
        self.open_into(shares, words).await
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
        let round = self.tags.next();
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
            send_traced(peer, total, || {
                transport.send_parts(peer, round, parts.clone())
            })?;
        }
        drop(parts);
        self.in_flight().await;
        let mut out_sums: Vec<Option<Vec<R>>> = vec![None; own_sums.len()];
        let mut out_xors: Vec<Option<Vec<u64>>> = vec![None; own_xors.len()];
        for peer in peers() {
            let msg = recv_traced(transport, peer, self.stream_id(), round).await?;
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
            .map(|((own, out), shape)| {
                RingTensor::new(shape, out.unwrap_or_else(|| done(own))).map_err(Error::from)
            })
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
            send_traced(peer, payload.len(), || {
                transport.send(peer, round, payload.clone())
            })?;
        }
        self.in_flight().await;
        for peer in (0..self.n_parties).filter(|&p| p != self.party) {
            let msg = recv_traced(transport, peer, self.stream_id(), round).await?;
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
        let round = self.tags.next();
        let Some(transport) = &self.transport else {
            self.in_flight().await;
            return Ok((self.party == to).then(|| shares.iter().map(|t| (*t).clone()).collect()));
        };
        if self.party != to {
            let payload = pack(shares, &[]);
            send_traced(to, payload.len(), || transport.send(to, round, payload))?;
            self.in_flight().await;
            return Ok(None);
        }
        self.in_flight().await;
        let mut sums: Vec<RingTensor<R>> = shares.iter().map(|t| (*t).clone()).collect();
        for peer in (0..self.n_parties).filter(|&p| p != self.party) {
            let msg = recv_traced(transport, peer, self.stream_id(), round).await?;
            if sums.iter().all(RingTensor::is_on_host) {
                self.accumulate(peer, &msg, &mut sums, &mut [])?;
            } else {
                self.accumulate_on_backend(peer, &msg, &mut sums)?;
            }
        }
        Ok(Some(sums))
    }

    /// [`Session::accumulate`] for shares that live on a device (none of
    /// them sent, so never read on the host): the peer's shares go up and
    /// are added there, so the opened value stays where the share was.
    ///
    /// Errors: [`Error::Malformed`] for a message of the wrong size; device
    /// errors.
    fn accumulate_on_backend<R: Ring>(
        &self,
        peer: PartyId,
        msg: &[u8],
        sums: &mut [RingTensor<R>],
    ) -> Result<()> {
        let expected: usize = sums.iter().map(|t| t.numel() * R::BYTES).sum();
        check_len(peer, expected, msg.len())?;
        let mut off = 0;
        for sum in sums.iter_mut() {
            let len = sum.numel() * R::BYTES;
            let theirs = RingTensor::from_le_bytes(sum.shape().clone(), &msg[off..off + len])?;
            self.backend().add_assign(sum, &theirs)?;
            off += len;
        }
        Ok(())
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

/// A send on the timeline's send track of `peer` (the asynchronous send:
/// the time to hand the message over, with its bytes).
fn send_traced<T>(peer: PartyId, bytes: usize, send: impl FnOnce() -> T) -> T {
    let _span = span(Track::Send(peer), "send").map(|s| s.bytes(bytes as u64));
    send()
}

/// A receive on the timeline's receive track of `peer` and `stream` (the wait).
async fn recv_traced(
    transport: &Arc<dyn Transport>,
    peer: PartyId,
    stream: u64,
    round: u64,
) -> Result<Bytes> {
    let _span = span(Track::Recv(peer, stream), "receive");
    Ok(transport.recv(peer, round).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Device;
    use crate::session::{ProviderSpec, SessionConfig};

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
            let round = s1.tags.peek();
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
