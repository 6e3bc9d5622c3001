//! The wire format of openings: each party's shares, little-endian, back
//! to back in one message per peer; and the passes that add (or XOR) the
//! peers' values into the own.

use bytes::Bytes;
use spindle_transport::PartyId;

use crate::error::{Error, Result};
use crate::ring::{append_le_bytes, Ring, RingTensor};

/// A peer's message of shares must have the own message's length.
pub(super) fn check_len(peer: PartyId, total: usize, got: usize) -> Result<()> {
    if got != total {
        return Err(Error::Malformed {
            from: peer,
            detail: format!("expected {total} bytes of shares, got {got}"),
        });
    }
    Ok(())
}

/// sum[i] += the i-th little-endian element of `bytes` (wrapping).
pub(super) fn add_le_bytes<R: Ring>(sum: &mut [R], bytes: &[u8]) {
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
pub(super) fn combine<T: bytemuck::Pod>(
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
pub(super) struct PodBytes<T>(pub(super) Vec<T>);

impl<T: bytemuck::Pod> AsRef<[u8]> for PodBytes<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Packs additive shares, then XOR-shared words, into one little-endian message.
pub(super) fn pack<R: Ring>(shares: &[&RingTensor<R>], words: &[&[u64]]) -> Bytes {
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
