//! Link emulation: a wrapper that gives every outgoing link of any
//! [`Transport`] a bandwidth and a one-way latency, so LAN and WAN settings
//! can be benchmarked on one machine.
//!
//! Model: each directed link is a FIFO wire. A message of `b` bytes posted
//! at `t` starts when the wire is free (`start = max(t, free)`), occupies it
//! for `8 b / bandwidth` seconds, and is handed to the inner transport
//! `latency` after it left the wire. Sends still return at once; a delivery
//! task per link does the waiting. Delays are added on top of whatever the
//! inner transport costs (negligible in memory, small on loopback).

use std::str::FromStr;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{LinkStats, PartyId, PhaseStats, StatsRecorder, Transport, TransportError};

/// Bandwidth and one-way latency of an emulated link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    /// Bandwidth in bits per second (> 0; `f64::INFINITY` for none).
    pub bits_per_sec: f64,
    /// One-way latency.
    pub latency: Duration,
}

impl LinkProfile {
    /// LAN preset: 10 Gbit/s, 0.1 ms.
    pub const LAN: LinkProfile = LinkProfile {
        bits_per_sec: 10e9,
        latency: Duration::from_micros(100),
    };
    /// WAN preset: 400 Mbit/s, 20 ms (Ditto's WAN setting).
    pub const WAN: LinkProfile = LinkProfile {
        bits_per_sec: 400e6,
        latency: Duration::from_millis(20),
    };

    /// Time a message of `bytes` bytes occupies the wire.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        if self.bits_per_sec.is_infinite() {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(bytes as f64 * 8.0 / self.bits_per_sec)
    }
}

/// Parses `lan`, `wan`, or `RATE:LATENCY` with RATE like `400mbit`,
/// `10gbit`, `1.5gbit`, `800kbit`, `1e9` (bits/s) and LATENCY like `20ms`,
/// `100us`, `0.5s`.
impl FromStr for LinkProfile {
    type Err = TransportError;
    fn from_str(s: &str) -> Result<Self, TransportError> {
        let bad = |why: &str| {
            TransportError::Config(format!(
                "bad link profile {s:?}: {why} (expected lan, wan or RATE:LATENCY such as 1gbit:5ms)"
            ))
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "lan" => return Ok(LinkProfile::LAN),
            "wan" => return Ok(LinkProfile::WAN),
            _ => {}
        }
        let (rate, lat) = s.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        let rate = rate.trim().to_ascii_lowercase();
        let (num, mult) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
            .iter()
            .find_map(|(suf, m)| rate.strip_suffix(suf).map(|n| (n.to_string(), *m)))
            .unwrap_or((rate.clone(), 1.0));
        let bits: f64 = num.trim().parse().map_err(|_| bad("bad rate"))?;
        let bits = bits * mult;
        if bits.is_nan() || bits <= 0.0 {
            return Err(bad("rate must be positive"));
        }
        let lat = lat.trim().to_ascii_lowercase();
        let (num, mult) = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)]
            .iter()
            .find_map(|(suf, m)| lat.strip_suffix(suf).map(|n| (n.to_string(), *m)))
            .ok_or_else(|| bad("latency needs a unit (us, ms, s)"))?;
        let secs: f64 = num.trim().parse().map_err(|_| bad("bad latency"))?;
        if !(0.0..=3600.0).contains(&(secs * mult)) {
            return Err(bad("latency out of range"));
        }
        Ok(LinkProfile {
            bits_per_sec: bits,
            latency: Duration::from_secs_f64(secs * mult),
        })
    }
}

type Delivery = Option<(Instant, u64, Bytes)>;

struct EmuLink {
    profile: LinkProfile,
    tx: mpsc::UnboundedSender<Delivery>,
    wire_free: StdMutex<Instant>,
    failed: Arc<OnceLock<TransportError>>,
    task: StdMutex<Option<JoinHandle<()>>>,
}

/// A transport whose outgoing links are slowed to a [`LinkProfile`].
/// Accounting counts a send when it is posted, as the inner transport would.
pub struct Emulated {
    inner: Arc<dyn Transport>,
    links: Vec<Option<EmuLink>>,
    stats: StatsRecorder,
}

impl std::fmt::Debug for Emulated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulated")
            .field("party", &self.inner.party())
            .finish()
    }
}

/// Sleeps until `at` with sub-millisecond precision: the timer for the bulk,
/// then yielding for the last millisecond (tokio's timer has 1 ms ticks,
/// too coarse for the 0.1 ms LAN preset).
async fn sleep_precise(at: Instant) {
    let now = Instant::now();
    if at > now + Duration::from_millis(2) {
        tokio::time::sleep_until(at - Duration::from_millis(1)).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

impl Emulated {
    /// Wraps `inner`, giving every outgoing link `profile`. Must be called
    /// inside a tokio runtime (it spawns one delivery task per link).
    pub fn new(inner: Arc<dyn Transport>, profile: LinkProfile) -> Emulated {
        let n = inner.n_parties();
        Self::per_link(inner, vec![profile; n])
    }

    /// Wraps `inner` with one profile per peer (`profiles[peer]`; the entry
    /// for this party itself is ignored). Missing entries get no emulation.
    pub fn per_link(inner: Arc<dyn Transport>, profiles: Vec<LinkProfile>) -> Emulated {
        let me = inner.party();
        let links = (0..inner.n_parties())
            .map(|peer| {
                if peer == me {
                    return None;
                }
                let profile = profiles.get(peer).copied().unwrap_or(LinkProfile {
                    bits_per_sec: f64::INFINITY,
                    latency: Duration::ZERO,
                });
                let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
                let failed: Arc<OnceLock<TransportError>> = Arc::default();
                let (inner, f) = (inner.clone(), failed.clone());
                let task = tokio::spawn(async move {
                    while let Some(Some((at, round, payload))) = rx.recv().await {
                        sleep_precise(at).await;
                        if let Err(e) = inner.send(peer, round, payload) {
                            let _ = f.set(e);
                            return;
                        }
                    }
                });
                Some(EmuLink {
                    profile,
                    tx,
                    wire_free: StdMutex::new(Instant::now()),
                    failed,
                    task: StdMutex::new(Some(task)),
                })
            })
            .collect();
        Emulated {
            inner,
            links,
            stats: StatsRecorder::default(),
        }
    }

    fn link(&self, peer: PartyId) -> Result<&EmuLink, TransportError> {
        self.links
            .get(peer)
            .and_then(|l| l.as_ref())
            .ok_or(TransportError::NoSuchPeer {
                peer,
                me: self.inner.party(),
                n: self.inner.n_parties(),
            })
    }
}

#[async_trait]
impl Transport for Emulated {
    fn party(&self) -> PartyId {
        self.inner.party()
    }

    fn n_parties(&self) -> usize {
        self.inner.n_parties()
    }

    fn send(&self, to: PartyId, round: u64, payload: Bytes) -> Result<(), TransportError> {
        let link = self.link(to)?;
        if let Some(e) = link.failed.get() {
            return Err(e.clone());
        }
        let len = payload.len();
        let at = {
            let mut free = link
                .wire_free
                .lock()
                .map_err(|_| TransportError::Config("emulated link poisoned".into()))?;
            let start = (*free).max(Instant::now());
            *free = start + link.profile.transmit_time(len);
            *free + link.profile.latency
        };
        link.tx
            .send(Some((at, round, payload)))
            .map_err(|_| TransportError::PeerClosed { peer: to })?;
        self.stats.record_send(round, len);
        Ok(())
    }

    async fn recv(&self, from: PartyId, round: u64) -> Result<Bytes, TransportError> {
        let msg = self.inner.recv(from, round).await?;
        self.stats.record_recv(round, msg.len());
        Ok(msg)
    }

    fn stats(&self) -> LinkStats {
        self.stats.snapshot()
    }

    fn begin_phase(&self, label: &str) {
        self.stats.begin_phase(label);
    }

    fn phase_stats(&self) -> Vec<PhaseStats> {
        self.stats.phases()
    }

    async fn shutdown(&self) -> Result<(), TransportError> {
        for l in self.links.iter().flatten() {
            let _ = l.tx.send(None);
            let task = l.task.lock().ok().and_then(|mut t| t.take());
            if let Some(t) = task {
                let _ = t.await;
            }
        }
        self.inner.shutdown().await
    }

    async fn abort(&self, reason: &str) {
        self.inner.abort(reason).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryNetwork;

    #[test]
    fn profiles_parse() {
        assert_eq!("lan".parse::<LinkProfile>().unwrap(), LinkProfile::LAN);
        assert_eq!("WAN".parse::<LinkProfile>().unwrap(), LinkProfile::WAN);
        let p: LinkProfile = "1.5gbit:250us".parse().unwrap();
        assert_eq!(p.bits_per_sec, 1.5e9);
        assert_eq!(p.latency, Duration::from_micros(250));
        for bad in [
            "",
            "fast",
            "1gbit",
            "1gbit:5",
            "-1mbit:1ms",
            "xmbit:1ms",
            "0bit:1ms",
        ] {
            assert!(bad.parse::<LinkProfile>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn latency_and_bandwidth_are_applied() {
        let eps = InMemoryNetwork::new(2);
        let mut it = eps.into_iter();
        let a: Arc<dyn Transport> = Arc::new(it.next().unwrap());
        let b = it.next().unwrap();
        // 8 Mbit/s and 30 ms: 100 kB take 100 ms on the wire, then 30 ms.
        let a = Emulated::new(a, "8mbit:30ms".parse().unwrap());
        let t0 = Instant::now();
        a.send(1, 0, Bytes::from(vec![0u8; 100_000])).unwrap();
        a.send(1, 1, Bytes::from_static(b"x")).unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(20),
            "send must not block"
        );
        b.recv(0, 0).await.unwrap();
        let t = t0.elapsed();
        assert!(t >= Duration::from_millis(130), "{t:?}");
        assert_eq!(&b.recv(0, 1).await.unwrap()[..], b"x");
        assert_eq!(a.stats().bytes_sent, 100_001);
        a.shutdown().await.unwrap();
    }
}
