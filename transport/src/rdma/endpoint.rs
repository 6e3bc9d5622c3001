//! What two parties exchange over their TCP bootstrap link to connect a
//! pair of RC queue pairs, and the route they derive from it. Pure code
//! (no device), compiled with or without the `rdma` feature.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "SPRD"
//!      4     2  version, u16 LE (ENDPOINT_VERSION)
//!      6     2  LID of the sender's port, u16 LE (0 on RoCE)
//!      8     4  reserved, zero
//!     12     4  "RDMA" (so that a peer running the TCP transport, which reads
//!               these bytes as a frame header, rejects them at once: kind 0x52)
//!     16    16  GID of the sender's port at the configured GID index
//!     32     4  QP number, u32 LE (24 bits)
//!     36     4  first packet sequence number of the sender, u32 LE (24 bits)
//!     40     4  receive buffer size in bytes, u32 LE (a chunk is at most this)
//!     44     4  receive buffers posted, u32 LE
//!     48     1  active path MTU as the verbs code: 1 = 256 B ... 5 = 4096 B
//!     49     7  reserved, zero
//! ```
//!
//! After both sides moved their queue pair to ready-to-send, each writes
//! [`READY`] and reads the peer's, so that no message is posted before the
//! peer's queue pair can receive it.

/// Size of an encoded [`Endpoint`] in bytes.
pub const ENDPOINT_LEN: usize = 56;

/// Version of the endpoint exchange; peers with another version are refused.
pub const ENDPOINT_VERSION: u16 = 1;

/// The bytes each side sends once its queue pair is ready to send.
pub const READY: [u8; 8] = *b"SPRDRDY1";

/// Smallest receive buffer a peer may announce, bytes.
pub const MIN_SLOT_BYTES: u32 = 1024;

const MAGIC: [u8; 4] = *b"SPRD";
const TAG: [u8; 4] = *b"RDMA";
const MAX_24: u32 = 0x00FF_FFFF;

/// One side's queue-pair endpoint: everything the other side needs to move
/// its RC queue pair to ready-to-receive and to size its chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Local identifier of the port (InfiniBand); 0 on RoCE.
    pub lid: u16,
    /// Global identifier of the port at the configured GID index (16 raw
    /// bytes, network order); all zero when the port has none.
    pub gid: [u8; 16],
    /// Queue pair number (24 bits).
    pub qpn: u32,
    /// First packet sequence number this side sends with (24 bits).
    pub psn: u32,
    /// Size of each receive buffer in bytes: the largest chunk the other
    /// side may send.
    pub slot_bytes: u32,
    /// Receive buffers this side keeps posted: the other side never has
    /// more sends in flight.
    pub recv_slots: u32,
    /// Active MTU of the port, as the verbs code (1 = 256 B ... 5 = 4096 B).
    pub mtu: u8,
}

/// Why received endpoint bytes are not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not an endpoint at all (typically: the peer runs the TCP transport).
    #[error("not an RDMA endpoint (bad magic {0:02x?})")]
    Magic([u8; 4]),
    /// Another version of the exchange.
    #[error("RDMA endpoint version {got}, this party speaks {ENDPOINT_VERSION}")]
    Version {
        /// The version received.
        got: u16,
    },
    /// A field out of range or a nonzero reserved byte.
    #[error("malformed RDMA endpoint: {0}")]
    Malformed(String),
}

impl Endpoint {
    /// Serializes the endpoint (layout in the module docs).
    pub fn encode(&self) -> [u8; ENDPOINT_LEN] {
        let mut b = [0u8; ENDPOINT_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&ENDPOINT_VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&self.lid.to_le_bytes());
        b[12..16].copy_from_slice(&TAG);
        b[16..32].copy_from_slice(&self.gid);
        b[32..36].copy_from_slice(&self.qpn.to_le_bytes());
        b[36..40].copy_from_slice(&self.psn.to_le_bytes());
        b[40..44].copy_from_slice(&self.slot_bytes.to_le_bytes());
        b[44..48].copy_from_slice(&self.recv_slots.to_le_bytes());
        b[48] = self.mtu;
        b
    }

    /// Parses and checks an endpoint received from a peer.
    ///
    /// Errors: [`EndpointError::Magic`] for bytes that are not an endpoint,
    /// [`EndpointError::Version`], [`EndpointError::Malformed`] for a
    /// nonzero reserved byte, a QP number or PSN above 24 bits, an unknown
    /// MTU code, a buffer smaller than [`MIN_SLOT_BYTES`] or no buffers.
    pub fn decode(b: &[u8; ENDPOINT_LEN]) -> Result<Endpoint, EndpointError> {
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(EndpointError::Magic(magic));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let version = u16_at(4);
        if version != ENDPOINT_VERSION {
            return Err(EndpointError::Version { got: version });
        }
        let bad = |what: String| Err(EndpointError::Malformed(what));
        if b[8..12] != [0; 4] || b[12..16] != TAG || b[49..] != [0; 7] {
            return bad("reserved bytes are not as specified".into());
        }
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&b[16..32]);
        let e = Endpoint {
            lid: u16_at(6),
            gid,
            qpn: u32_at(32),
            psn: u32_at(36),
            slot_bytes: u32_at(40),
            recv_slots: u32_at(44),
            mtu: b[48],
        };
        if e.qpn > MAX_24 || e.psn > MAX_24 {
            return bad(format!(
                "QP number {:#x} or PSN {:#x} exceeds 24 bits",
                e.qpn, e.psn
            ));
        }
        if mtu_bytes(e.mtu).is_none() {
            return bad(format!("unknown MTU code {}", e.mtu));
        }
        if e.slot_bytes < MIN_SLOT_BYTES {
            return bad(format!(
                "receive buffers of {} bytes (at least {MIN_SLOT_BYTES})",
                e.slot_bytes
            ));
        }
        if e.recv_slots == 0 {
            return bad("no receive buffers".into());
        }
        if e.lid == 0 && e.gid == [0; 16] {
            return bad("neither a LID nor a GID to route to".into());
        }
        Ok(e)
    }
}

/// Bytes of an MTU code (1 = 256 ... 5 = 4096), `None` for other codes.
pub fn mtu_bytes(code: u8) -> Option<usize> {
    match code {
        1..=5 => Some(128 << code),
        _ => None,
    }
}

/// How this side reaches the peer, derived from both endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Path MTU code: the smaller of the two ports' active MTUs.
    pub mtu: u8,
    /// Whether packets carry a global routing header (addressed by GID):
    /// needed on RoCE, where ports have no LID; InfiniBand ports in one
    /// subnet are addressed by LID alone.
    pub use_grh: bool,
    /// Largest chunk this side sends: the smaller of its own buffer size and
    /// the peer's receive buffer size, bytes.
    pub chunk_bytes: usize,
    /// Sends this side keeps in flight at most: the smaller of its own send
    /// buffers and the peer's posted receive buffers.
    pub window: usize,
}

/// The route from `local` to `remote`, given this side's `send_slots`.
///
/// Errors: a reason when the route needs a GID (some side has no LID) but
/// a side has an all-zero GID.
pub fn route(local: &Endpoint, remote: &Endpoint, send_slots: usize) -> Result<Route, String> {
    let use_grh = local.lid == 0 || remote.lid == 0;
    if use_grh && (local.gid == [0; 16] || remote.gid == [0; 16]) {
        return Err(
            "a port has no LID (RoCE) so GIDs are needed, but a GID is empty: \
             choose another GID index (SPINDLE_RDMA_GID_INDEX)"
                .into(),
        );
    }
    Ok(Route {
        mtu: local.mtu.min(remote.mtu),
        use_grh,
        chunk_bytes: local.slot_bytes.min(remote.slot_bytes) as usize,
        window: send_slots.min(remote.recv_slots as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_header, FrameError, HEADER_LEN};

    fn sample() -> Endpoint {
        Endpoint {
            lid: 7,
            gid: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            qpn: 0x00AB_CDEF,
            psn: 0x0012_3456,
            slot_bytes: 128 << 10,
            recv_slots: 32,
            mtu: 5,
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Endpoint::decode(&e.encode()), Ok(e));
        let roce = Endpoint { lid: 0, ..sample() };
        assert_eq!(Endpoint::decode(&roce.encode()), Ok(roce));
    }

    #[test]
    fn bad_fields_are_refused() {
        let mut b = sample().encode();
        b[0] = b'X';
        assert!(matches!(Endpoint::decode(&b), Err(EndpointError::Magic(_))));
        let mut b = sample().encode();
        b[4] = 9;
        assert_eq!(Endpoint::decode(&b), Err(EndpointError::Version { got: 9 }));
        let cases: Vec<(Endpoint, &str)> = vec![
            (
                Endpoint {
                    qpn: 1 << 24,
                    ..sample()
                },
                "24 bits",
            ),
            (
                Endpoint {
                    psn: u32::MAX,
                    ..sample()
                },
                "24 bits",
            ),
            (Endpoint { mtu: 0, ..sample() }, "MTU"),
            (Endpoint { mtu: 6, ..sample() }, "MTU"),
            (
                Endpoint {
                    slot_bytes: 16,
                    ..sample()
                },
                "receive buffers of 16",
            ),
            (
                Endpoint {
                    recv_slots: 0,
                    ..sample()
                },
                "no receive buffers",
            ),
            (
                Endpoint {
                    lid: 0,
                    gid: [0; 16],
                    ..sample()
                },
                "neither a LID",
            ),
        ];
        for (e, want) in cases {
            let err = Endpoint::decode(&e.encode()).unwrap_err();
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
        for i in [8, 11, 13, 49, 55] {
            let mut b = sample().encode();
            b[i] ^= 1;
            assert!(
                matches!(Endpoint::decode(&b), Err(EndpointError::Malformed(_))),
                "byte {i}"
            );
        }
    }

    #[test]
    fn a_tcp_peer_rejects_an_endpoint_as_a_frame() {
        let b = sample().encode();
        let head: [u8; HEADER_LEN] = b[..HEADER_LEN].try_into().unwrap();
        assert_eq!(
            decode_header(&head, 1 << 30),
            Err(FrameError::UnknownKind(b'R'))
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut b = sample().encode();
            // Flip a few random bytes of a valid endpoint.
            for _ in 0..(next() % 4) {
                let i = (next() % ENDPOINT_LEN as u64) as usize;
                b[i] = next() as u8;
            }
            if let Ok(e) = Endpoint::decode(&b) {
                assert_eq!(e.encode(), b);
            }
        }
    }

    #[test]
    fn routes() {
        let ib = sample();
        let r = route(&ib, &Endpoint { mtu: 3, ..ib }, 16).unwrap();
        assert_eq!(
            r,
            Route {
                mtu: 3,
                use_grh: false,
                chunk_bytes: 128 << 10,
                window: 16
            }
        );
        let roce = Endpoint { lid: 0, ..ib };
        let small = Endpoint {
            slot_bytes: 4096,
            recv_slots: 4,
            ..roce
        };
        let r = route(&roce, &small, 16).unwrap();
        assert!(r.use_grh);
        assert_eq!((r.chunk_bytes, r.window), (4096, 4));
        let no_gid = Endpoint { gid: [0; 16], ..ib };
        assert!(route(&no_gid, &roce, 16).is_err());
        assert!(route(&no_gid, &ib, 16).is_ok());
        assert_eq!(mtu_bytes(1), Some(256));
        assert_eq!(mtu_bytes(5), Some(4096));
        assert_eq!(mtu_bytes(6), None);
    }
}
