//! [`RdmaTransport`] in builds without the `rdma` feature: the same entry
//! point, which always fails with "built without the rdma feature".

use std::convert::Infallible;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::net::TcpListener;

use super::{RdmaDevice, RdmaOptions, RdmaUnavailable};
use crate::link::{LinkOptions, Security};
use crate::{LinkStats, PartyId, Transport, TransportError};

/// The RDMA transport is not in this build (the `rdma` cargo feature is
/// off): [`RdmaTransport::connect`] always fails and no value of this type
/// can exist.
#[derive(Debug)]
pub struct RdmaTransport {
    never: Infallible,
}

impl RdmaTransport {
    /// Always fails: this build lacks the `rdma` feature.
    ///
    /// Errors: [`TransportError::Unsupported`] "built without the rdma
    /// feature: rebuild with `--features rdma` ...".
    pub async fn connect(
        _me: PartyId,
        _addrs: &[String],
        _listener: TcpListener,
        _security: Security,
        _opts: LinkOptions,
        _rdma: RdmaOptions,
    ) -> Result<RdmaTransport, TransportError> {
        Err(RdmaUnavailable::NotBuilt.into())
    }

    /// The device and port this transport uses (unreachable here).
    pub fn device(&self) -> &RdmaDevice {
        match self.never {}
    }
}

#[async_trait]
impl Transport for RdmaTransport {
    fn party(&self) -> PartyId {
        match self.never {}
    }

    fn n_parties(&self) -> usize {
        match self.never {}
    }

    fn send(&self, _to: PartyId, _round: u64, _payload: Bytes) -> Result<(), TransportError> {
        match self.never {}
    }

    async fn recv(&self, _from: PartyId, _round: u64) -> Result<Bytes, TransportError> {
        match self.never {}
    }

    fn stats(&self) -> LinkStats {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_says_the_feature_is_missing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e = RdmaTransport::connect(
            0,
            &["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            listener,
            Security::InsecurePlaintext,
            LinkOptions::new("s", 2),
            RdmaOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, TransportError::Unsupported(_)), "{e}");
        assert!(
            e.to_string().contains("built without the rdma feature"),
            "{e}"
        );
        assert!(e.to_string().contains("--features rdma"), "{e}");
    }
}
