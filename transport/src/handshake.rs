//! The handshake that opens every link, after TLS (when on) and before any
//! frame: the connecting side sends a hello, the accepting side answers
//! accept or reject (with a reason).
//!
//! ```text
//! offset  size  field
//!      0     4  magic "SPDL"
//!      4     2  protocol version, u16 LE (PROTOCOL_VERSION)
//!      6     1  kind: 0 hello, 1 accept, 2 reject
//!      7     1  reserved, zero
//!      8     2  number of parties N, u16 LE
//!     10     2  sender id, u16 LE (0xFFFF: the dealer)
//!     12     2  intended receiver id, u16 LE
//!     14     1  session id length S (1..=255)
//!     15     1  reserved, zero
//!     16     S  session id, UTF-8
//!   (reject only) 2 bytes reason length R (<= 1024), R bytes UTF-8 reason
//! ```

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{PartyId, DEALER};

/// Version of the wire protocol (handshake and frames). Bumped on any
/// incompatible change; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;

const MAGIC: [u8; 4] = *b"SPDL";
const MAX_REASON: usize = 1024;

/// Handshake message kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloKind {
    /// Sent by the connecting side.
    Hello = 0,
    /// The accepting side agrees.
    Accept = 1,
    /// The accepting side refuses (reason attached).
    Reject = 2,
}

/// One handshake message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Kind of message.
    pub kind: HelloKind,
    /// Protocol version of the sender.
    pub version: u16,
    /// Number of parties in the sender's session.
    pub n_parties: usize,
    /// Sender's id ([`DEALER`] for the dealer).
    pub from: PartyId,
    /// Intended receiver's id.
    pub to: PartyId,
    /// Session id (1..=255 bytes of UTF-8).
    pub session: String,
    /// Why a reject was sent; empty otherwise.
    pub reason: String,
}

/// Why handshake bytes are invalid.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// Not a Spindle peer (wrong magic).
    #[error("not a Spindle peer (bad magic {0:02x?})")]
    Magic([u8; 4]),
    /// Unknown kind or nonzero reserved bytes.
    #[error("malformed handshake: {0}")]
    Malformed(String),
    /// Stream error or end of stream.
    #[error("handshake I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn wire_id(id: PartyId) -> u16 {
    if id == DEALER {
        0xFFFF
    } else {
        id.min(0xFFFE) as u16
    }
}

fn from_wire_id(id: u16) -> PartyId {
    if id == 0xFFFF {
        DEALER
    } else {
        id as PartyId
    }
}

impl Hello {
    /// A hello from `from` to `to`.
    pub fn new(n_parties: usize, from: PartyId, to: PartyId, session: &str) -> Hello {
        Hello {
            kind: HelloKind::Hello,
            version: PROTOCOL_VERSION,
            n_parties,
            from,
            to,
            session: session.to_string(),
            reason: String::new(),
        }
    }

    /// The answer to `self` (a hello) from its receiver: accept, or reject
    /// with `reason`.
    pub fn answer(
        &self,
        me: PartyId,
        n_parties: usize,
        session: &str,
        reject: Option<&str>,
    ) -> Hello {
        Hello {
            kind: if reject.is_some() {
                HelloKind::Reject
            } else {
                HelloKind::Accept
            },
            version: PROTOCOL_VERSION,
            n_parties,
            from: me,
            to: self.from,
            session: session.to_string(),
            reason: reject.unwrap_or("").to_string(),
        }
    }

    /// Serializes the message (session id and reason are truncated to
    /// their maximum lengths at a character boundary).
    pub fn encode(&self) -> Vec<u8> {
        let sid = truncate(&self.session, 255);
        let mut b = Vec::with_capacity(16 + sid.len());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.push(self.kind as u8);
        b.push(0);
        b.extend_from_slice(&(self.n_parties.min(0xFFFF) as u16).to_le_bytes());
        b.extend_from_slice(&wire_id(self.from).to_le_bytes());
        b.extend_from_slice(&wire_id(self.to).to_le_bytes());
        b.push(sid.len() as u8);
        b.push(0);
        b.extend_from_slice(sid.as_bytes());
        if self.kind == HelloKind::Reject {
            let r = truncate(&self.reason, MAX_REASON);
            b.extend_from_slice(&(r.len() as u16).to_le_bytes());
            b.extend_from_slice(r.as_bytes());
        }
        b
    }

    /// Reads one message. Reads at most 16 + 255 + 2 + 1024 bytes.
    ///
    /// Errors: [`HelloError`]. A peer with another protocol version decodes
    /// fine (so that it can be refused with a reason).
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, HelloError> {
        let mut head = [0u8; 16];
        r.read_exact(&mut head).await?;
        let magic: [u8; 4] = head[0..4].try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(HelloError::Magic(magic));
        }
        let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
        let kind = match head[6] {
            0 => HelloKind::Hello,
            1 => HelloKind::Accept,
            2 => HelloKind::Reject,
            k => return Err(HelloError::Malformed(format!("unknown kind {k}"))),
        };
        if head[7] != 0 || head[15] != 0 {
            return Err(HelloError::Malformed("reserved bytes are not zero".into()));
        }
        let sid_len = head[14] as usize;
        if sid_len == 0 {
            return Err(HelloError::Malformed("empty session id".into()));
        }
        let mut sid = vec![0u8; sid_len];
        r.read_exact(&mut sid).await?;
        let session = String::from_utf8(sid)
            .map_err(|_| HelloError::Malformed("session id is not UTF-8".into()))?;
        let mut reason = String::new();
        if kind == HelloKind::Reject {
            let mut l = [0u8; 2];
            r.read_exact(&mut l).await?;
            let len = u16::from_le_bytes(l) as usize;
            if len > MAX_REASON {
                return Err(HelloError::Malformed(format!("reason of {len} bytes")));
            }
            let mut buf = vec![0u8; len];
            r.read_exact(&mut buf).await?;
            reason = String::from_utf8_lossy(&buf).into_owned();
        }
        Ok(Hello {
            kind,
            version: u16_at(4),
            n_parties: u16_at(8) as usize,
            from: from_wire_id(u16_at(10)),
            to: from_wire_id(u16_at(12)),
            session,
            reason,
        })
    }

    /// Writes and flushes the message.
    ///
    /// Errors: I/O errors.
    pub async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.encode()).await?;
        w.flush().await
    }

    /// Checks a received hello against the receiver's view of the session:
    /// version, session id, party count, receiver id and `allowed` senders.
    /// Returns the reason to refuse it, if any.
    pub fn check(
        &self,
        me: PartyId,
        n_parties: usize,
        session: &str,
        allowed: impl Fn(PartyId) -> bool,
    ) -> Option<String> {
        if self.kind != HelloKind::Hello {
            return Some(format!("expected a hello, got {:?}", self.kind));
        }
        if self.version != PROTOCOL_VERSION {
            return Some(format!(
                "protocol version mismatch: peer speaks {}, this party {PROTOCOL_VERSION}",
                self.version
            ));
        }
        if self.session != session {
            return Some(format!(
                "session id mismatch: peer is in session {:?}, this party in {:?}",
                self.session, session
            ));
        }
        if self.n_parties != n_parties {
            return Some(format!(
                "party count mismatch: peer expects {} parties, this session has {n_parties}",
                self.n_parties
            ));
        }
        if self.to != me {
            return Some(format!(
                "peer wanted {}, this is {}",
                crate::peer_name(self.to),
                crate::peer_name(me)
            ));
        }
        if !allowed(self.from) {
            return Some(format!(
                "{} is not expected to connect here",
                crate::peer_name(self.from)
            ));
        }
        None
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_checks() {
        let h = Hello::new(3, 0, 2, "job-1");
        let bytes = h.encode();
        let back = Hello::read(&mut &bytes[..]).await.unwrap();
        assert_eq!(back, h);
        assert_eq!(back.check(2, 3, "job-1", |p| p < 2), None);
        assert!(back
            .check(2, 3, "job-2", |p| p < 2)
            .unwrap()
            .contains("session id mismatch"));
        assert!(back.check(1, 3, "job-1", |p| p < 2).is_some());
        assert!(back.check(2, 4, "job-1", |p| p < 2).is_some());
        assert!(back.check(2, 3, "job-1", |_| false).is_some());
        let rej = h.answer(2, 3, "job-1", Some("no"));
        let back = Hello::read(&mut &rej.encode()[..]).await.unwrap();
        assert_eq!((back.kind, back.reason.as_str()), (HelloKind::Reject, "no"));
        let dealer = Hello::new(3, 1, DEALER, "s");
        let back = Hello::read(&mut &dealer.encode()[..]).await.unwrap();
        assert_eq!(back.to, DEALER);
    }

    #[tokio::test]
    async fn garbage_and_versions() {
        let garbage = b"SSH-2.0-OpenSSH_9.6\r\n\0\0\0\0\0\0".to_vec();
        assert!(matches!(
            Hello::read(&mut &garbage[..]).await,
            Err(HelloError::Magic(_))
        ));
        let mut h = Hello::new(2, 0, 1, "s");
        h.version = 99;
        let back = Hello::read(&mut &h.encode()[..]).await.unwrap();
        assert!(back.check(1, 2, "s", |_| true).unwrap().contains("version"));
        let short = &Hello::new(2, 0, 1, "session").encode()[..18];
        assert!(matches!(
            Hello::read(&mut &short[..]).await,
            Err(HelloError::Io(_))
        ));
    }
}
