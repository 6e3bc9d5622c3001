//! Frames over fixed-size registered buffers: the sender cuts each frame
//! (the 16-byte header of [`crate::frame`], then the payload) into chunks of
//! at most one buffer, one RDMA SEND per chunk; the receiver glues the
//! chunks of a frame back together. Pure code (no device), compiled with or
//! without the `rdma` feature.
//!
//! Rules: every frame starts at the beginning of a chunk, so its first
//! chunk holds the whole header; a chunk never carries bytes of two frames;
//! no chunk is empty. RC queue pairs deliver SENDs in order and each SEND
//! consumes exactly one posted receive, so the chunks of a frame arrive
//! consecutively.

use bytes::Bytes;

use crate::frame::{
    decode_header, encode_header, Frame, FrameError, FrameKind, Header, HEADER_LEN,
};

/// Largest buffer allocated up front for an announced payload; the rest
/// grows as chunks arrive (as [`crate::frame::read_frame`] does), bytes.
const MAX_PREALLOC: usize = 16 << 20;

/// One frame on its way out: header and payload, and how much of it has
/// been copied into send buffers so far.
#[derive(Clone, Debug)]
pub struct OutFrame {
    head: [u8; HEADER_LEN],
    payload: Bytes,
    /// Bytes of header plus payload already copied out.
    done: usize,
}

impl OutFrame {
    /// A frame of `kind` tagged `round` carrying `payload`.
    ///
    /// Errors: a reason if the payload does not fit the 32-bit length field
    /// (4 GiB or more).
    pub fn new(round: u64, kind: FrameKind, payload: Bytes) -> Result<OutFrame, String> {
        if payload.len() > u32::MAX as usize {
            return Err(format!(
                "a frame carries at most 4 GiB - 1, got {} bytes",
                payload.len()
            ));
        }
        let head = encode_header(&Header {
            round,
            len: payload.len(),
            kind,
        });
        Ok(OutFrame {
            head,
            payload,
            done: 0,
        })
    }

    /// Header plus payload, bytes.
    pub fn total(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Whether every byte has been copied out.
    pub fn is_done(&self) -> bool {
        self.done == self.total()
    }

    /// Copies the next chunk (at most `dst.len()` bytes) into `dst` and
    /// returns its length; 0 once the frame is done.
    ///
    /// `dst` must hold at least [`HEADER_LEN`] bytes so that the header is
    /// never split; with a shorter `dst` nothing is copied and 0 returned.
    pub fn fill(&mut self, dst: &mut [u8]) -> usize {
        if dst.len() < HEADER_LEN || self.is_done() {
            return 0;
        }
        let n = dst.len().min(self.total() - self.done);
        let mut written = 0;
        if self.done < HEADER_LEN {
            // Only the first chunk starts inside the header, and it holds all of it.
            dst[..HEADER_LEN].copy_from_slice(&self.head);
            written = HEADER_LEN;
        }
        let from = self.done + written - HEADER_LEN;
        let take = n - written;
        dst[written..n].copy_from_slice(&self.payload[from..from + take]);
        self.done += n;
        n
    }
}

/// Why a chunk cannot be part of a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The header is invalid (length above the maximum, unknown kind, ...)
    /// or an abort reason is not UTF-8.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame's first chunk is shorter than a header.
    #[error("chunk of {0} bytes cannot start a frame (a header is 16 bytes)")]
    ShortHeader(usize),
    /// A chunk carries more bytes than its frame has left.
    #[error("chunk overruns its frame by {extra} bytes")]
    Overrun {
        /// Bytes past the end of the frame.
        extra: usize,
    },
    /// A chunk with no bytes inside a frame.
    #[error("empty chunk inside a frame")]
    Empty,
}

/// Glues received chunks back into frames.
#[derive(Debug)]
pub struct Reassembler {
    max_frame: usize,
    partial: Option<(Header, Vec<u8>)>,
}

impl Reassembler {
    /// A reassembler accepting payloads of at most `max_frame` bytes (abort
    /// reasons at most [`crate::frame::MAX_ABORT_REASON`]).
    pub fn new(max_frame: usize) -> Reassembler {
        Reassembler {
            max_frame,
            partial: None,
        }
    }

    /// Whether a frame has started and not finished.
    pub fn in_frame(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes the next chunk; returns the frame it completes, if any.
    ///
    /// Errors: [`ChunkError`]. After an error the link is broken; the
    /// reassembler should not be used again.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Option<Frame>, ChunkError> {
        let (header, mut buf, body) = match self.partial.take() {
            Some((header, buf)) => {
                if chunk.is_empty() {
                    return Err(ChunkError::Empty);
                }
                (header, buf, chunk)
            }
            None => {
                let Some(head) = chunk.first_chunk::<HEADER_LEN>() else {
                    return Err(ChunkError::ShortHeader(chunk.len()));
                };
                let header = decode_header(head, self.max_frame)?;
                let buf = Vec::with_capacity(header.len.min(MAX_PREALLOC));
                (header, buf, &chunk[HEADER_LEN..])
            }
        };
        let left = header.len - buf.len();
        if body.len() > left {
            return Err(ChunkError::Overrun {
                extra: body.len() - left,
            });
        }
        buf.extend_from_slice(body);
        if buf.len() < header.len {
            self.partial = Some((header, buf));
            return Ok(None);
        }
        if header.kind == FrameKind::Abort && std::str::from_utf8(&buf).is_err() {
            return Err(FrameError::BadReason.into());
        }
        Ok(Some(Frame {
            header,
            payload: Bytes::from(buf),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MAX_ABORT_REASON;

    fn chunks(round: u64, kind: FrameKind, payload: &[u8], slot: usize) -> Vec<Vec<u8>> {
        let mut f = OutFrame::new(round, kind, Bytes::copy_from_slice(payload)).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; slot];
        loop {
            let n = f.fill(&mut buf);
            if n == 0 {
                break;
            }
            out.push(buf[..n].to_vec());
        }
        assert!(f.is_done());
        out
    }

    #[test]
    fn chunk_counts_and_sizes() {
        let payload: Vec<u8> = (0..100u8).collect();
        // 116 bytes in 32-byte chunks: 32, 32, 32, 20.
        let c = chunks(3, FrameKind::Data, &payload, 32);
        assert_eq!(
            c.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![32, 32, 32, 20]
        );
        // Exactly one buffer.
        assert_eq!(chunks(3, FrameKind::Data, &payload, 116).len(), 1);
        // An empty payload is one header-only chunk.
        let c = chunks(9, FrameKind::Close, &[], 64);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len(), HEADER_LEN);
        // A buffer shorter than a header never splits it.
        let mut f = OutFrame::new(0, FrameKind::Data, Bytes::from_static(b"x")).unwrap();
        assert_eq!(f.fill(&mut [0u8; 15]), 0);
        assert_eq!(f.fill(&mut [0u8; 16]), 16);
        assert_eq!(f.fill(&mut [0u8; 16]), 1);
        assert_eq!(f.fill(&mut [0u8; 16]), 0);
    }

    #[test]
    fn frames_survive_chunking_at_any_size() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..500u64 {
            let slot = HEADER_LEN + (next() % 200) as usize;
            let len = (next() % 1000) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut r = Reassembler::new(1 << 20);
            let cs = chunks(i, FrameKind::Data, &payload, slot);
            assert_eq!(cs.len(), (HEADER_LEN + len).div_ceil(slot));
            for (k, c) in cs.iter().enumerate() {
                let got = r.push(c).unwrap();
                if k + 1 < cs.len() {
                    assert!(got.is_none() && r.in_frame());
                } else {
                    let f = got.unwrap();
                    assert_eq!((f.header.round, f.header.kind), (i, FrameKind::Data));
                    assert_eq!(&f.payload[..], &payload[..]);
                    assert!(!r.in_frame());
                }
            }
        }
    }

    #[test]
    fn consecutive_frames_and_kinds() {
        let mut r = Reassembler::new(1 << 20);
        for c in chunks(1, FrameKind::Data, b"first message", 20) {
            let _ = r.push(&c).unwrap();
        }
        let c = chunks(0, FrameKind::Abort, "party 2 failed".as_bytes(), 64);
        let f = r.push(&c[0]).unwrap().unwrap();
        assert_eq!(f.header.kind, FrameKind::Abort);
        assert_eq!(&f.payload[..], b"party 2 failed");
        let c = chunks(0, FrameKind::Close, &[], 64);
        assert_eq!(
            r.push(&c[0]).unwrap().unwrap().header.kind,
            FrameKind::Close
        );
    }

    #[test]
    fn bad_chunks_are_errors() {
        let mut r = Reassembler::new(1 << 20);
        assert_eq!(r.push(&[0u8; 10]), Err(ChunkError::ShortHeader(10)));
        assert_eq!(r.push(&[]), Err(ChunkError::ShortHeader(0)));

        // Two frames glued in one chunk: the first overruns.
        let mut glued = chunks(1, FrameKind::Data, b"abc", 64).concat();
        glued.extend(chunks(2, FrameKind::Data, b"def", 64).concat());
        let mut r = Reassembler::new(1 << 20);
        assert_eq!(
            r.push(&glued),
            Err(ChunkError::Overrun {
                extra: HEADER_LEN + 3
            })
        );

        // Overrun in a continuation chunk, and an empty continuation.
        let c = chunks(1, FrameKind::Data, &[7u8; 40], 32);
        let mut r = Reassembler::new(1 << 20);
        assert_eq!(r.push(&c[0]), Ok(None));
        assert_eq!(r.push(&[]), Err(ChunkError::Empty));
        let mut r = Reassembler::new(1 << 20);
        assert_eq!(r.push(&c[0]), Ok(None));
        let mut long = c[1].clone();
        long.push(0);
        assert_eq!(r.push(&long), Err(ChunkError::Overrun { extra: 1 }));

        // Header checks of frame.rs apply: too large, unknown kind, bad reason.
        let mut r = Reassembler::new(10);
        assert_eq!(
            r.push(&chunks(1, FrameKind::Data, &[0u8; 11], 64)[0]),
            Err(ChunkError::Frame(FrameError::TooLarge { len: 11, max: 10 }))
        );
        let mut bad = chunks(1, FrameKind::Data, b"x", 64)[0].clone();
        bad[12] = 7;
        assert_eq!(
            Reassembler::new(100).push(&bad),
            Err(ChunkError::Frame(FrameError::UnknownKind(7)))
        );
        let c = chunks(0, FrameKind::Abort, &[0xff, 0xfe], 64);
        assert_eq!(
            Reassembler::new(100).push(&c[0]),
            Err(ChunkError::Frame(FrameError::BadReason))
        );
        let c = chunks(0, FrameKind::Abort, &vec![b'a'; MAX_ABORT_REASON + 1], 8192);
        assert!(matches!(
            Reassembler::new(1 << 20).push(&c[0]),
            Err(ChunkError::Frame(FrameError::TooLarge { .. }))
        ));
    }

    #[test]
    fn lying_length_allocates_only_what_arrives() {
        // A header announcing 1 GiB followed by 3 bytes: the buffer stays small.
        let mut head = encode_header(&Header {
            round: 0,
            len: 1 << 30,
            kind: FrameKind::Data,
        })
        .to_vec();
        head.extend_from_slice(b"abc");
        let mut r = Reassembler::new(1 << 30);
        assert_eq!(r.push(&head), Ok(None));
        let (_, buf) = r.partial.as_ref().unwrap();
        assert!(buf.capacity() <= MAX_PREALLOC);
        assert_eq!(buf.len(), 3);
    }
}
