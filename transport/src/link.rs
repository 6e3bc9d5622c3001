//! One authenticated, framed connection between two cluster members:
//! TCP (TCP_NODELAY), then TLS 1.3 with pinned certificates unless plaintext
//! was asked for, then the [`Hello`] handshake. Used by the party mesh
//! ([`crate::TcpTransport`]) and by the dealer.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::handshake::{Hello, HelloKind};
use crate::tls::{server_name, TlsIdentity};
use crate::{peer_name, PartyId, TransportError};

/// A byte stream: plain TCP or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// How links are secured.
#[derive(Clone, Debug)]
pub enum Security {
    /// Mutual TLS 1.3 with this identity and the certificates it pins.
    Tls(Arc<TlsIdentity>),
    /// Plain TCP: no authentication, no encryption. Only for a trusted lab
    /// network, chosen explicitly (`--insecure-plaintext`).
    InsecurePlaintext,
}

/// Session parameters and limits shared by all links of a process.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// Session id; peers in another session are refused (1..=255 bytes).
    pub session: String,
    /// Number of parties N.
    pub n_parties: usize,
    /// Start-up budget: how long to keep retrying connections and waiting
    /// for peers to connect (default 30 s).
    pub connect_timeout: Duration,
    /// Limit on the TLS handshake plus hello exchange of one link (default 10 s).
    pub handshake_timeout: Duration,
    /// How long a receive waits for a peer's message (default 60 s).
    pub recv_timeout: Duration,
    /// How long one frame write may stall before the link is failed
    /// (default 60 s).
    pub write_timeout: Duration,
    /// Largest accepted frame payload in bytes (default 1 GiB).
    pub max_frame: usize,
    /// First retry delay when a peer is not listening yet (doubles up to 1 s;
    /// default 50 ms).
    pub retry_initial: Duration,
}

impl LinkOptions {
    /// Defaults for a session of `n_parties` called `session`.
    pub fn new(session: impl Into<String>, n_parties: usize) -> Self {
        LinkOptions {
            session: session.into(),
            n_parties,
            connect_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            recv_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
            retry_initial: Duration::from_millis(50),
        }
    }

    /// Checks the options.
    ///
    /// Errors: [`TransportError::Config`] for an empty or over-long session
    /// id or fewer than 2 parties.
    pub fn validate(&self) -> Result<(), TransportError> {
        if self.session.is_empty() || self.session.len() > 255 {
            return Err(TransportError::Config(format!(
                "session id must be 1..=255 bytes, got {}",
                self.session.len()
            )));
        }
        if self.n_parties < 2 || self.n_parties > 0xFFFE {
            return Err(TransportError::Config(format!(
                "need 2..=65534 parties, got {}",
                self.n_parties
            )));
        }
        Ok(())
    }
}

/// An established link to one peer.
pub struct Link {
    /// The peer's id.
    pub peer: PartyId,
    /// The authenticated stream.
    pub stream: Box<dyn Stream>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("peer", &self.peer).finish()
    }
}

fn handshake_err(peer: PartyId, detail: impl Into<String>) -> TransportError {
    TransportError::Handshake {
        with: peer_name(peer),
        detail: detail.into(),
    }
}

/// Connects to `peer` at `addr` as `me`, retrying with backoff while the
/// peer is not listening, until `deadline`.
///
/// Errors: [`TransportError::Connect`] if nobody accepted before the
/// deadline; [`TransportError::Handshake`] if TLS or the hello failed or the
/// peer refused (with its reason). Refusals are not retried.
pub async fn dial(
    me: PartyId,
    peer: PartyId,
    addr: &str,
    security: &Security,
    opts: &LinkOptions,
    deadline: Instant,
) -> Result<Link, TransportError> {
    let mut delay = opts.retry_initial;
    let mut attempts = 0u32;
    let tcp = loop {
        attempts += 1;
        let last = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => break s,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_string(),
        };
        if Instant::now() + delay >= deadline {
            return Err(TransportError::Connect {
                with: peer_name(peer),
                addr: addr.to_string(),
                detail: format!(
                    "gave up after {attempts} attempts in {} ms: {last}",
                    opts.connect_timeout.as_millis()
                ),
            });
        }
        tracing::debug!(
            "{} at {addr} not reachable yet ({last}); retrying",
            peer_name(peer)
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    };
    tcp.set_nodelay(true)
        .map_err(|e| handshake_err(peer, format!("TCP_NODELAY: {e}")))?;
    keepalive(&tcp);
    let hs_deadline = Instant::now() + opts.handshake_timeout;
    let work = async {
        let mut stream: Box<dyn Stream> = match security {
            Security::Tls(id) => {
                let connector = tokio_rustls::TlsConnector::from(id.client_config()?);
                let tls = connector
                    .connect(server_name(), tcp)
                    .await
                    .map_err(|e| handshake_err(peer, format!("TLS handshake failed: {e}")))?;
                if let Some(why) = id.check_peer(
                    peer,
                    tls.get_ref().1.peer_certificates().and_then(|c| c.first()),
                ) {
                    return Err(handshake_err(peer, why));
                }
                Box::new(tls)
            }
            Security::InsecurePlaintext => Box::new(tcp),
        };
        Hello::new(opts.n_parties, me, peer, &opts.session)
            .write(&mut stream)
            .await
            .map_err(|e| handshake_err(peer, format!("sending hello: {e}")))?;
        let answer = Hello::read(&mut stream)
            .await
            .map_err(|e| handshake_err(peer, format!("reading answer: {e}")))?;
        match answer.kind {
            HelloKind::Accept if answer.from == peer && answer.session == opts.session => {
                Ok(Link { peer, stream })
            }
            HelloKind::Reject => Err(handshake_err(peer, format!("refused: {}", answer.reason))),
            _ => Err(handshake_err(
                peer,
                format!(
                    "unexpected answer {:?} from {} in session {:?}",
                    answer.kind,
                    peer_name(answer.from),
                    answer.session
                ),
            )),
        }
    };
    tokio::time::timeout_at(hs_deadline, work)
        .await
        .map_err(|_| handshake_err(peer, "handshake timed out"))?
}

/// Runs the accepting side of a link on a fresh TCP connection: TLS (when
/// on), read the hello, check it against the session and `claim` (which is
/// given the claimed sender id and returns whether it may connect now,
/// registering it), check the certificate, answer.
///
/// Errors: [`TransportError::Handshake`] naming the remote address; the
/// peer has then been sent a reject with the reason where possible.
pub async fn accept(
    tcp: TcpStream,
    me: PartyId,
    security: &Security,
    opts: &LinkOptions,
    claim: impl Fn(PartyId) -> bool,
) -> Result<Link, TransportError> {
    let remote = tcp
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown address".into());
    let err = |detail: String| TransportError::Handshake {
        with: remote.clone(),
        detail,
    };
    let _ = tcp.set_nodelay(true);
    keepalive(&tcp);
    let work = async {
        let (mut stream, cert): (Box<dyn Stream>, _) = match security {
            Security::Tls(id) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(id.server_config()?);
                let tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| err(format!("TLS handshake failed: {e}")))?;
                let cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.clone().into_owned());
                (Box::new(tls), cert)
            }
            Security::InsecurePlaintext => (Box::new(tcp), None),
        };
        let hello = Hello::read(&mut stream)
            .await
            .map_err(|e| err(format!("reading hello: {e}")))?;
        let mut refusal = hello.check(me, opts.n_parties, &opts.session, |_| true);
        if refusal.is_none() {
            if let Security::Tls(id) = security {
                refusal = id.check_peer(hello.from, cert.as_ref());
            }
        }
        if refusal.is_none() && !claim(hello.from) {
            refusal = Some(format!(
                "{} may not connect now (duplicate connection, wrong direction, or session already running)",
                peer_name(hello.from)
            ));
        }
        let answer = hello.answer(me, opts.n_parties, &opts.session, refusal.as_deref());
        let _ = answer.write(&mut stream).await;
        match refusal {
            None => Ok(Link {
                peer: hello.from,
                stream,
            }),
            Some(why) => Err(err(format!("refused {}: {why}", peer_name(hello.from)))),
        }
    };
    tokio::time::timeout(opts.handshake_timeout, work)
        .await
        .map_err(|_| err("handshake timed out".into()))?
}

/// TCP keepalive probes after 30 s of silence, every 10 s: a peer whose host
/// vanishes without closing the connection is noticed even on links that
/// are legitimately idle for long (a party's link to the online dealer
/// between epochs), where no receive timeout applies. Best effort.
fn keepalive(tcp: &TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&ka) {
        tracing::debug!("TCP keepalive not set: {e}");
    }
}
