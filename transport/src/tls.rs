//! Mutual TLS 1.3 between parties (rustls with the `ring` provider).
//!
//! Every process (party or dealer) has a private key and a certificate, and
//! knows the certificate of every other member of the cluster from the
//! cluster config. Certificates are *pinned*: a peer is accepted only if it
//! presents exactly one of the configured certificates, and after the
//! handshake the link layer checks that the certificate is the one of the
//! party the peer claims to be. No CA and no host names are involved, so
//! self-signed certificates from [`generate_self_signed`] (`spindle keygen`)
//! work on any address.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::{peer_name, PartyId, TransportError};

/// One process's TLS identity and the certificates it trusts.
#[derive(Debug)]
pub struct TlsIdentity {
    /// This process's id ([`crate::DEALER`] for the dealer).
    pub me: PartyId,
    key: PrivateKeyDer<'static>,
    cert: CertificateDer<'static>,
    /// Certificate of every cluster member, by id (may include `me`).
    peers: HashMap<PartyId, CertificateDer<'static>>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            me: self.me,
            key: self.key.clone_key(),
            cert: self.cert.clone(),
            peers: self.peers.clone(),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the first certificate of a PEM file.
///
/// Errors: [`TransportError::Config`] naming the file.
pub fn load_cert(path: &Path) -> Result<CertificateDer<'static>, TransportError> {
    CertificateDer::from_pem_file(path).map_err(|e| {
        TransportError::Config(format!("cannot read certificate {}: {e}", path.display()))
    })
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
///
/// Errors: [`TransportError::Config`] naming the file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TransportError::Config(format!("cannot read private key {}: {e}", path.display()))
    })
}

/// A key pair and self-signed certificate, PEM-encoded.
#[derive(Clone, Debug)]
pub struct GeneratedCert {
    /// The certificate (public, goes into the cluster config).
    pub cert_pem: String,
    /// The private key (PKCS#8; keep it on the party's host only).
    pub key_pem: String,
}

/// Generates an ECDSA P-256 key and a self-signed certificate with common
/// name `name` and subject alternative names `sans` (host names or IPs;
/// informative only, since peers pin the certificate itself).
///
/// Errors: [`TransportError::Config`] if rcgen rejects a name.
pub fn generate_self_signed(name: &str, sans: &[String]) -> Result<GeneratedCert, TransportError> {
    let mut names = vec![name.to_string()];
    names.extend(sans.iter().cloned());
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| TransportError::Config(format!("bad certificate name: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate()
        .map_err(|e| TransportError::Config(format!("key generation failed: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TransportError::Config(format!("certificate generation failed: {e}")))?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl TlsIdentity {
    /// An identity from DER parts: this process's key and certificate and
    /// the certificates of the cluster members by id.
    ///
    /// Errors: [`TransportError::Config`] if the key does not match rustls'
    /// supported algorithms.
    pub fn new(
        me: PartyId,
        key: PrivateKeyDer<'static>,
        cert: CertificateDer<'static>,
        peers: HashMap<PartyId, CertificateDer<'static>>,
    ) -> Result<Self, TransportError> {
        provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| TransportError::Config(format!("unusable private key: {e}")))?;
        Ok(TlsIdentity {
            me,
            key,
            cert,
            peers,
        })
    }

    /// An identity from PEM files.
    ///
    /// Errors: [`TransportError::Config`] naming the file that failed.
    pub fn from_files(
        me: PartyId,
        key: &Path,
        cert: &Path,
        peers: &[(PartyId, &Path)],
    ) -> Result<Self, TransportError> {
        let mut map = HashMap::new();
        for (id, p) in peers {
            map.insert(*id, load_cert(p)?);
        }
        Self::new(me, load_key(key)?, load_cert(cert)?, map)
    }

    /// The id whose configured certificate is `cert`, if any.
    pub fn identify(&self, cert: &CertificateDer<'_>) -> Option<PartyId> {
        self.peers
            .iter()
            .find(|(_, c)| c.as_ref() == cert.as_ref())
            .map(|(id, _)| *id)
    }

    fn verifier(&self) -> Arc<PinnedVerifier> {
        Arc::new(PinnedVerifier {
            known: self.peers.values().cloned().collect(),
            provider: provider(),
        })
    }

    /// rustls client configuration (TLS 1.3 only, client certificate sent).
    ///
    /// Errors: [`TransportError::Config`].
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TransportError> {
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier())
            .with_client_auth_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(|e| TransportError::Config(format!("TLS client identity: {e}")))?;
        Ok(Arc::new(cfg))
    }

    /// rustls server configuration (TLS 1.3 only, client certificate required).
    ///
    /// Errors: [`TransportError::Config`].
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TransportError> {
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(format!("TLS setup: {e}")))?
            .with_client_cert_verifier(self.verifier())
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(|e| TransportError::Config(format!("TLS server identity: {e}")))?;
        Ok(Arc::new(cfg))
    }

    /// Checks that the certificate a peer presented belongs to `claimed`.
    /// Returns the reason to refuse it, if any.
    pub fn check_peer(
        &self,
        claimed: PartyId,
        presented: Option<&CertificateDer<'_>>,
    ) -> Option<String> {
        let Some(cert) = presented else {
            return Some("peer presented no certificate".into());
        };
        match self.identify(cert) {
            Some(id) if id == claimed => None,
            Some(id) => Some(format!(
                "peer claims to be {} but presented the certificate of {}",
                peer_name(claimed),
                peer_name(id)
            )),
            None => Some("peer certificate is not in the cluster config".into()),
        }
    }
}

/// The server name the client asks for; unused by the pinned verifier.
pub(crate) fn server_name() -> ServerName<'static> {
    ServerName::try_from("spindle-party").expect("valid DNS name")
}

/// Accepts exactly the configured certificates (both directions) and checks
/// handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct PinnedVerifier {
    known: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.known.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|_| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|_| ClientCertVerified::assertion())
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Test helper: identities for parties `0..n` (and the dealer when
/// `with_dealer`), each trusting all the others, with fresh certificates.
///
/// Errors: as [`generate_self_signed`].
pub fn test_identities(n: usize, with_dealer: bool) -> Result<Vec<TlsIdentity>, TransportError> {
    let mut ids: Vec<PartyId> = (0..n).collect();
    if with_dealer {
        ids.push(crate::DEALER);
    }
    let gen: Vec<(PartyId, GeneratedCert)> = ids
        .iter()
        .map(|&id| {
            Ok((
                id,
                generate_self_signed(&peer_name(id).replace(' ', "-"), &[])?,
            ))
        })
        .collect::<Result<_, TransportError>>()?;
    let certs: HashMap<PartyId, CertificateDer<'static>> = gen
        .iter()
        .map(|(id, g)| {
            CertificateDer::from_pem_slice(g.cert_pem.as_bytes())
                .map(|c| (*id, c))
                .map_err(|e| TransportError::Config(format!("{e}")))
        })
        .collect::<Result<_, _>>()?;
    gen.into_iter()
        .map(|(id, g)| {
            let key = PrivateKeyDer::from_pem_slice(g.key_pem.as_bytes())
                .map_err(|e| TransportError::Config(format!("{e}")))?;
            TlsIdentity::new(id, key, certs[&id].clone(), certs.clone())
        })
        .collect()
}
