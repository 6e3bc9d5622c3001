//! RDMA transport: the round-tagged frames of [`crate::frame`] over RDMA
//! reliable-connection (RC) queue pairs, one per pair of parties, through
//! the `sideway` verbs bindings (the `rdma` cargo feature, off by default).
//!
//! **It has never run on RDMA hardware.** It builds, its pure parts (the
//! endpoint exchange format, chunking and reassembly, buffer bookkeeping)
//! are unit-tested, and on a host without a device it fails cleanly with
//! "no RDMA device found"; everything that needs a device is unverified
//! (`docs/transport.md` lists what exactly).
//!
//! Design ([`RdmaTransport::connect`]):
//! 1. Open the device ([`probe`]): a host without one fails here, before
//!    any connection, with [`RdmaUnavailable::NoDevice`].
//! 2. Connect the TCP mesh exactly as [`crate::TcpTransport`] does (same
//!    addresses, hello handshake, mutual TLS, the lower id dials): these
//!    are the bootstrap links.
//! 3. Per peer: a registered buffer pool ([`buffers`]), an RC queue pair
//!    with every receive buffer posted; exchange [`endpoint::Endpoint`]s
//!    (LID, GID, QP number, PSN, buffer size and count, MTU) over the
//!    bootstrap link; move the queue pair to ready-to-send; exchange
//!    [`endpoint::READY`].
//! 4. A dedicated completion thread owns the queue pairs from then on:
//!    it takes sends from a channel, cuts each frame into chunks of at
//!    most one buffer ([`chunk`]), posts one SEND per chunk, polls the
//!    completion queue, reassembles received chunks into frames and hands
//!    them to the receiving side. Nothing of this runs on the tokio
//!    runtime; [`crate::Transport::send`] only enqueues.
//! 5. Close and abort travel in band as frames (after the data, in order)
//!    and, for abort, also over the bootstrap link, which stays open: its
//!    end tells a party that a peer process is gone.
//!
//! Without the `rdma` feature the same items exist, [`probe`] returns
//! [`RdmaUnavailable::NotBuilt`] and [`RdmaTransport::connect`] an
//! [`crate::TransportError::Unsupported`] saying to rebuild with
//! `--features rdma`.

pub mod buffers;
pub mod chunk;
pub mod endpoint;
mod options;

#[cfg(feature = "rdma")]
mod device;
#[cfg(not(feature = "rdma"))]
mod disabled;
#[cfg(feature = "rdma")]
mod poller;
#[cfg(feature = "rdma")]
mod queue_pair;
#[cfg(feature = "rdma")]
mod transport;

#[cfg(not(feature = "rdma"))]
pub use disabled::RdmaTransport;
pub use options::{RdmaOptions, ENV_DEVICE, ENV_GID_INDEX, ENV_PORT};
#[cfg(feature = "rdma")]
pub use transport::RdmaTransport;

use crate::TransportError;

/// Whether this build has the `rdma` feature (the real transport).
pub const BUILT: bool = cfg!(feature = "rdma");

/// Why RDMA cannot be used on this host or in this build.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RdmaUnavailable {
    /// The crate was built without the `rdma` feature.
    #[error(
        "built without the rdma feature: rebuild with `--features rdma` \
         (needs cmake and libclang to build)"
    )]
    NotBuilt,
    /// No device could be listed: no RDMA hardware, no kernel support
    /// (listing fails with errno 38, ENOSYS), no libibverbs, or no device
    /// of the configured name.
    #[error("no RDMA device found: {0}")]
    NoDevice(String),
    /// A device exists but cannot be used (cannot be opened, port not
    /// active, no usable address).
    #[error("RDMA device unusable: {0}")]
    Unusable(String),
}

impl RdmaUnavailable {
    /// The reason in a few words, for a log line: "no RDMA device found",
    /// "built without the rdma feature" or "RDMA device unusable".
    pub fn summary(&self) -> &'static str {
        match self {
            RdmaUnavailable::NotBuilt => "built without the rdma feature",
            RdmaUnavailable::NoDevice(_) => "no RDMA device found",
            RdmaUnavailable::Unusable(_) => "RDMA device unusable",
        }
    }
}

impl From<RdmaUnavailable> for TransportError {
    fn from(e: RdmaUnavailable) -> TransportError {
        TransportError::Unsupported(e.to_string())
    }
}

/// The device and port a transport would use, as found by [`probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmaDevice {
    /// Verbs device name, e.g. `mlx5_0`.
    pub name: String,
    /// Physical port, from 1.
    pub port: u8,
    /// Local identifier of the port (0 on RoCE).
    pub lid: u16,
    /// GID at the configured index (16 raw bytes; all zero if none).
    pub gid: [u8; 16],
    /// Active MTU of the port, bytes (256 ..= 4096).
    pub mtu_bytes: usize,
}

/// Finds the device and port `opts` ask for and checks that the port is
/// active. Blocks for the device queries (milliseconds): call it at
/// start-up or from `spawn_blocking`.
///
/// Errors: [`RdmaUnavailable::NotBuilt`] without the `rdma` feature;
/// [`RdmaUnavailable::NoDevice`] when listing devices fails (errno 38 on
/// hosts without RDMA kernel support) or lists none or not the named one;
/// [`RdmaUnavailable::Unusable`] when the device cannot be opened or the
/// port is not active or has no address.
pub fn probe(opts: &RdmaOptions) -> Result<RdmaDevice, RdmaUnavailable> {
    #[cfg(feature = "rdma")]
    {
        device::open(opts).map(|d| d.info)
    }
    #[cfg(not(feature = "rdma"))]
    {
        let _ = opts;
        Err(RdmaUnavailable::NotBuilt)
    }
}

/// `--transport auto`: the device to use if [`probe`] finds one, else
/// `None` after one log line "no RDMA device found, using TCP" (or "built
/// without the rdma feature, using TCP"; the details at debug level).
///
/// Every party of a session must come to the same answer (a homogeneous
/// cluster): a party on RDMA and one on TCP fail at start-up with an error
/// saying so.
pub fn auto_select(opts: &RdmaOptions) -> Option<RdmaDevice> {
    match probe(opts) {
        Ok(d) => {
            tracing::info!(
                "--transport auto: using RDMA device {} port {}",
                d.name,
                d.port
            );
            Some(d)
        }
        Err(e) => {
            tracing::info!("{}, using TCP", e.summary());
            tracing::debug!("RDMA probe: {e}");
            None
        }
    }
}

/// An error and its sources, joined with ": " (sideway's errors keep the
/// OS error in the source chain).
#[cfg(feature = "rdma")]
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this machine (no RDMA device, no Soft-RoCE; listing devices fails
    /// with errno 38) and in builds without the feature: a clear error from
    /// `probe`, and `auto` falls back to TCP.
    #[test]
    fn probe_without_a_device_is_a_clear_error_and_auto_falls_back() {
        match probe(&RdmaOptions::default()) {
            Err(e) => {
                if BUILT {
                    assert!(
                        matches!(
                            e,
                            RdmaUnavailable::NoDevice(_) | RdmaUnavailable::Unusable(_)
                        ),
                        "{e}"
                    );
                } else {
                    assert_eq!(e, RdmaUnavailable::NotBuilt);
                    assert!(e.to_string().contains("--features rdma"), "{e}");
                }
                assert!(auto_select(&RdmaOptions::default()).is_none());
                let t: TransportError = e.into();
                assert!(matches!(t, TransportError::Unsupported(_)));
            }
            // A host with a device (not this one): auto picks it.
            Ok(d) => assert_eq!(auto_select(&RdmaOptions::default()), Some(d)),
        }
    }

    #[cfg(feature = "rdma")]
    #[test]
    fn no_device_here_says_so() {
        // This machine has no RDMA device: the message the issue asks for.
        if let Err(e) = probe(&RdmaOptions::default()) {
            assert_eq!(e.summary(), "no RDMA device found", "{e}");
            assert!(e.to_string().starts_with("no RDMA device found"), "{e}");
        }
        let named = RdmaOptions {
            device: Some("no_such_dev9".into()),
            ..Default::default()
        };
        assert!(matches!(probe(&named), Err(RdmaUnavailable::NoDevice(_))));
    }

    #[test]
    fn summaries() {
        assert_eq!(
            RdmaUnavailable::NotBuilt.summary(),
            "built without the rdma feature"
        );
        assert_eq!(
            RdmaUnavailable::NoDevice("x".into()).to_string(),
            "no RDMA device found: x"
        );
    }
}
