//! The wire format of one message between two parties: a 16-byte header
//! followed by the payload.
//!
//! ```text
//! offset  size  field
//!      0     8  round tag, u64 little-endian
//!      8     4  payload length in bytes, u32 little-endian
//!     12     1  kind: 0 data, 1 close (graceful end), 2 abort (payload = UTF-8 reason)
//!     13     3  reserved, must be zero
//!     16   len  payload
//! ```
//!
//! The decoder is a pure function of the bytes ([`decode_header`],
//! [`decode_frame`]) so that it can be fuzzed (`fuzz/`); the async readers
//! ([`read_frame`]) use it and never allocate more than the configured
//! maximum frame size, and only as the payload actually arrives.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Size of a frame header in bytes.
pub const HEADER_LEN: usize = 16;

/// Largest payload an abort frame may carry (its UTF-8 reason), bytes.
pub const MAX_ABORT_REASON: usize = 4096;

/// Default maximum payload of one frame: 1 GiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 30;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A protocol message for the round in the header.
    Data = 0,
    /// The sender finished and closes the link; no payload.
    Close = 1,
    /// The sender aborts the session; the payload is a UTF-8 reason.
    Abort = 2,
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Round tag.
    pub round: u64,
    /// Payload length in bytes.
    pub len: usize,
    /// Kind of frame.
    pub kind: FrameKind,
}

/// A whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// `header.len` payload bytes.
    pub payload: Bytes,
}

/// Why bytes are not a valid frame. Typed so tests and callers can tell the
/// cases apart; the transports wrap it into
/// [`TransportError::BadFrame`](crate::TransportError::BadFrame).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field exceeds the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced payload length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The kind byte is not 0, 1 or 2.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Reserved header bytes are not zero (garbage or another protocol).
    #[error("reserved header bytes are not zero: {0:02x?}")]
    Reserved([u8; 3]),
    /// A close frame with a payload.
    #[error("close frame carries {0} payload bytes")]
    CloseWithPayload(usize),
    /// A round tag not above the previous one on this link.
    #[error("out-of-order frame: round {round} after round {previous}")]
    OutOfOrder {
        /// Tag received.
        round: u64,
        /// Tag of the previous data frame on the link.
        previous: u64,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {got} of {want} bytes")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// An abort frame whose reason is not UTF-8.
    #[error("abort reason is not UTF-8")]
    BadReason,
}

/// Encodes a header.
pub fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&h.round.to_le_bytes());
    b[8..12].copy_from_slice(&(h.len as u32).to_le_bytes());
    b[12] = h.kind as u8;
    b
}

/// Decodes and validates a header against `max_len` (the largest payload
/// accepted; abort frames are capped at [`MAX_ABORT_REASON`] whatever it is).
///
/// Errors: [`FrameError::TooLarge`], [`FrameError::UnknownKind`],
/// [`FrameError::Reserved`], [`FrameError::CloseWithPayload`].
pub fn decode_header(b: &[u8; HEADER_LEN], max_len: usize) -> Result<Header, FrameError> {
    let round = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")) as usize;
    let kind = match b[12] {
        0 => FrameKind::Data,
        1 => FrameKind::Close,
        2 => FrameKind::Abort,
        k => return Err(FrameError::UnknownKind(k)),
    };
    let reserved = [b[13], b[14], b[15]];
    if reserved != [0; 3] {
        return Err(FrameError::Reserved(reserved));
    }
    let max = match kind {
        FrameKind::Abort => MAX_ABORT_REASON,
        _ => max_len,
    };
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if kind == FrameKind::Close && len != 0 {
        return Err(FrameError::CloseWithPayload(len));
    }
    Ok(Header { round, len, kind })
}

/// Decodes one frame from the front of `buf`: `Ok(None)` if `buf` holds
/// only part of a frame, `Ok(Some((frame, consumed)))` otherwise. The
/// fuzz target drives this function.
///
/// Errors: as [`decode_header`], and [`FrameError::BadReason`].
pub fn decode_frame(buf: &[u8], max_len: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let header = decode_header(head.try_into().expect("16 bytes"), max_len)?;
    let end = HEADER_LEN + header.len;
    let Some(payload) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    if header.kind == FrameKind::Abort && std::str::from_utf8(payload).is_err() {
        return Err(FrameError::BadReason);
    }
    Ok(Some((
        Frame {
            header,
            payload: Bytes::copy_from_slice(payload),
        },
        end,
    )))
}

/// Checks that data frames on one link carry strictly increasing ordered
/// round tags (the session hands out ordered tags in order, so anything
/// else is a replay, a duplicate or a corrupted stream). Unordered tags
/// ([`crate::UNORDERED`], a forked session's) pass in any order; the
/// receiving inbox refuses two held messages with one tag.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundOrder {
    last: Option<u64>,
}

impl RoundOrder {
    /// Accepts an ordered `round` if it is above every earlier ordered
    /// one, and any unordered one.
    ///
    /// Errors: [`FrameError::OutOfOrder`].
    pub fn check(&mut self, round: u64) -> Result<(), FrameError> {
        if !crate::is_ordered(round) {
            return Ok(());
        }
        if let Some(previous) = self.last {
            if round <= previous {
                return Err(FrameError::OutOfOrder { round, previous });
            }
        }
        self.last = Some(round);
        Ok(())
    }

    /// The last accepted ordered round, if any.
    pub fn last(&self) -> Option<u64> {
        self.last
    }
}

/// An error of [`read_frame`]: the stream failed or the bytes are bad.
#[derive(Debug)]
pub enum ReadError {
    /// Clean end of stream at a frame boundary.
    Eof,
    /// I/O error of the underlying stream.
    Io(std::io::Error),
    /// Bytes that are not a valid frame.
    Frame(FrameError),
}

/// Reads one frame. Reserves `min(len, 256 MiB)` up front, which is address
/// space only: pages are touched as payload bytes arrive, so a lying length
/// field costs nothing until the bytes exist, and a payload up to 256 MiB
/// is read straight into place (no regrowth copies). Larger ones grow.
///
/// Errors: [`ReadError::Eof`] at a frame boundary, [`ReadError::Frame`] for
/// an invalid header or a stream that ends inside a frame, [`ReadError::Io`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: usize,
) -> Result<Frame, ReadError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]).await {
            Ok(0) if got == 0 => return Err(ReadError::Eof),
            Ok(0) => {
                return Err(ReadError::Frame(FrameError::Truncated {
                    got,
                    want: HEADER_LEN,
                }))
            }
            Ok(k) => got += k,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let header = decode_header(&head, max_len).map_err(ReadError::Frame)?;
    let mut payload = Vec::with_capacity(header.len.min(256 << 20));
    while payload.len() < header.len {
        let want = header.len - payload.len();
        match r
            .read_buf(&mut bytes::BufMut::limit(&mut payload, want))
            .await
        {
            Ok(0) => {
                return Err(ReadError::Frame(FrameError::Truncated {
                    got: HEADER_LEN + payload.len(),
                    want: HEADER_LEN + header.len,
                }))
            }
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    if header.kind == FrameKind::Abort && std::str::from_utf8(&payload).is_err() {
        return Err(ReadError::Frame(FrameError::BadReason));
    }
    Ok(Frame {
        header,
        payload: Bytes::from(payload),
    })
}

/// Writes one frame (header, then payload; no flush).
///
/// Errors: I/O errors, and `InvalidInput` for a payload of 4 GiB or more.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    round: u64,
    kind: FrameKind,
    payload: &[u8],
) -> std::io::Result<()> {
    write_frame_parts(w, round, kind, &[payload]).await
}

/// [`write_frame`] of the concatenation of `parts` (one header, the parts
/// back to back): no copy into one buffer first.
///
/// Errors: as [`write_frame`].
pub async fn write_frame_parts<W: AsyncWrite + Unpin, P: AsRef<[u8]>>(
    w: &mut W,
    round: u64,
    kind: FrameKind,
    parts: &[P],
) -> std::io::Result<()> {
    let len: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    if len > u32::MAX as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a frame carries at most 4 GiB - 1, got {len} bytes"),
        ));
    }
    let head = encode_header(&Header { round, len, kind });
    w.write_all(&head).await?;
    for p in parts {
        w.write_all(p.as_ref()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(round: u64, kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut v = encode_header(&Header {
            round,
            len: payload.len(),
            kind,
        })
        .to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn round_trip() {
        let b = frame_bytes(7, FrameKind::Data, b"hello");
        let (f, used) = decode_frame(&b, 100).unwrap().unwrap();
        assert_eq!(used, b.len());
        assert_eq!(f.header.round, 7);
        assert_eq!(&f.payload[..], b"hello");
        assert_eq!(decode_frame(&b[..10], 100), Ok(None));
        assert_eq!(decode_frame(&b[..18], 100), Ok(None));
    }

    #[test]
    fn oversized_length_is_rejected_before_allocation() {
        let mut b = frame_bytes(0, FrameKind::Data, b"");
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_frame(&b, 1 << 20),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 1 << 20
            })
        );
        // Abort reasons are capped whatever the frame maximum.
        let mut a = frame_bytes(0, FrameKind::Abort, b"");
        a[8..12].copy_from_slice(&10_000u32.to_le_bytes());
        assert!(matches!(
            decode_frame(&a, 1 << 30),
            Err(FrameError::TooLarge {
                max: MAX_ABORT_REASON,
                ..
            })
        ));
    }

    #[test]
    fn garbage_is_rejected() {
        let garbage = *b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(decode_frame(&garbage, 1 << 30).is_err());
        let mut b = frame_bytes(0, FrameKind::Data, b"x");
        b[12] = 9;
        assert_eq!(decode_frame(&b, 100), Err(FrameError::UnknownKind(9)));
        let mut b = frame_bytes(0, FrameKind::Data, b"x");
        b[14] = 1;
        assert_eq!(decode_frame(&b, 100), Err(FrameError::Reserved([0, 1, 0])));
        let mut b = frame_bytes(0, FrameKind::Close, b"x");
        b[12] = 1;
        assert_eq!(decode_frame(&b, 100), Err(FrameError::CloseWithPayload(1)));
        let b = frame_bytes(0, FrameKind::Abort, &[0xff, 0xfe]);
        assert_eq!(decode_frame(&b, 100), Err(FrameError::BadReason));
    }

    #[test]
    fn round_tags_must_increase() {
        let mut o = RoundOrder::default();
        o.check(2).unwrap();
        o.check(5).unwrap();
        assert_eq!(
            o.check(5),
            Err(FrameError::OutOfOrder {
                round: 5,
                previous: 5
            })
        );
        assert_eq!(
            o.check(3),
            Err(FrameError::OutOfOrder {
                round: 3,
                previous: 5
            })
        );
        // A forked session's tags pass in any order, between ordered ones.
        o.check(crate::UNORDERED | 9).unwrap();
        o.check(crate::UNORDERED | 1).unwrap();
        o.check(6).unwrap();
        assert_eq!(o.last(), Some(6));
    }

    #[tokio::test]
    async fn reader_reports_truncation_and_eof() {
        let b = frame_bytes(1, FrameKind::Data, b"abcdef");
        let mut r = &b[..b.len() - 2];
        assert!(matches!(
            read_frame(&mut r, 100).await,
            Err(ReadError::Frame(FrameError::Truncated {
                got: 20,
                want: 22
            }))
        ));
        let mut r = &b[..5];
        assert!(matches!(
            read_frame(&mut r, 100).await,
            Err(ReadError::Frame(FrameError::Truncated { got: 5, want: 16 }))
        ));
        let mut r: &[u8] = &[];
        assert!(matches!(read_frame(&mut r, 100).await, Err(ReadError::Eof)));
        let mut r = &b[..];
        let f = read_frame(&mut r, 100).await.unwrap();
        assert_eq!(&f.payload[..], b"abcdef");
    }

    /// The fuzz target's property (fuzz/fuzz_targets/frame_decoder.rs) on
    /// pseudo-random buffers, so CI exercises it without cargo-fuzz.
    #[test]
    fn random_bytes_never_panic_and_frames_reencode() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= HEADER_LEN && next() % 2 == 0 {
                // Plausible headers reach the payload paths more often.
                buf[8..12].copy_from_slice(&((next() % 64) as u32).to_le_bytes());
                buf[12] = (next() % 3) as u8;
                buf[13..16].fill(0);
            }
            let max = (next() % 64) as usize;
            let mut rest = &buf[..];
            while let Ok(Some((f, used))) = decode_frame(rest, max) {
                assert!(used >= HEADER_LEN && used <= rest.len());
                assert_eq!(used, HEADER_LEN + f.payload.len());
                assert_eq!(&encode_header(&f.header)[..], &rest[..HEADER_LEN]);
                rest = &rest[used..];
            }
        }
    }

    #[tokio::test]
    async fn lying_length_allocates_only_what_arrives() {
        // Claims 1 GiB, sends 3 bytes: a truncation error, not a 1 GiB buffer.
        let mut b = frame_bytes(0, FrameKind::Data, b"abc");
        b[8..12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let mut r = &b[..];
        assert!(matches!(
            read_frame(&mut r, 1 << 30).await,
            Err(ReadError::Frame(FrameError::Truncated { .. }))
        ));
    }
}
