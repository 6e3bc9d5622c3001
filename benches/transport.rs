//! Transport benchmark: loopback throughput of 64 MiB messages and
//! round-trip time of small messages between two parties, plain TCP and
//! mutual TLS in the same run; then the emulated WAN link's delivered
//! bandwidth against its configured 400 Mbit/s (fails if off by > 10%).
//!
//! `cargo bench --bench transport`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spindle_transport::tls::test_identities;
use spindle_transport::{
    Emulated, InMemoryNetwork, LinkOptions, LinkProfile, Security, TcpTransport, Transport,
};
use tokio::net::TcpListener;

const BIG: usize = 64 << 20;

async fn pair(security: [Security; 2]) -> (Arc<dyn Transport>, Arc<dyn Transport>) {
    let l0 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = vec![
        l0.local_addr().unwrap().to_string(),
        l1.local_addr().unwrap().to_string(),
    ];
    let mut o = LinkOptions::new("bench", 2);
    o.max_frame = 128 << 20;
    let [s0, s1] = security;
    let (a2, o2) = (addrs.clone(), o.clone());
    let h = tokio::spawn(async move { TcpTransport::connect(1, &a2, l1, s1, o2).await });
    let t0 = TcpTransport::connect(0, &addrs, l0, s0, o).await.unwrap();
    let t1 = h.await.unwrap().unwrap();
    (Arc::new(t0), Arc::new(t1))
}

/// Seconds per 64 MiB message, party 0 to party 1 (median of `iters`).
async fn throughput(
    a: &Arc<dyn Transport>,
    b: &Arc<dyn Transport>,
    round: &mut u64,
    iters: usize,
) -> f64 {
    let payload = Bytes::from(vec![0x5au8; BIG]);
    let mut times = Vec::new();
    for i in 0..iters + 1 {
        *round += 1;
        let t = Instant::now();
        a.send(1, *round, payload.clone()).unwrap();
        let got = b.recv(0, *round).await.unwrap();
        assert_eq!(got.len(), BIG);
        if i > 0 {
            times.push(t.elapsed().as_secs_f64()); // first one is warm-up
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Round-trip times of 8-byte ping-pongs: (median, p99) in microseconds.
async fn rtt(
    a: &Arc<dyn Transport>,
    b: &Arc<dyn Transport>,
    round: &mut u64,
    iters: usize,
) -> (f64, f64) {
    let ping = Bytes::from_static(b"pingpong");
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        *round += 1;
        let r = *round;
        let t = Instant::now();
        a.send(1, r, ping.clone()).unwrap();
        let m = b.recv(0, r).await.unwrap();
        b.send(0, r, m).unwrap();
        a.recv(1, r).await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    (times[iters / 2], times[iters * 99 / 100])
}

async fn run() -> bool {
    println!("transport benchmark: two parties in one process over 127.0.0.1");
    println!(
        "{:<22} {:>16} {:>16} {:>16}",
        "link", "64 MiB msg", "RTT median", "RTT p99"
    );
    for name in ["plain TCP", "mutual TLS 1.3"] {
        let sec = if name == "plain TCP" {
            [Security::InsecurePlaintext, Security::InsecurePlaintext]
        } else {
            let ids = test_identities(2, false).unwrap();
            [
                Security::Tls(Arc::new(ids[0].clone())),
                Security::Tls(Arc::new(ids[1].clone())),
            ]
        };
        let (a, b) = pair(sec).await;
        let mut round = 0;
        let secs = throughput(&a, &b, &mut round, 5).await;
        let (med, p99) = rtt(&a, &b, &mut round, 2000).await;
        println!(
            "{:<22} {:>10.0} MiB/s {:>13.1} us {:>13.1} us",
            name,
            64.0 / secs,
            med,
            p99
        );
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }

    println!("\nemulated links (in-memory transport underneath), 64 MiB from party 0 to party 1:");
    let mut ok = true;
    for (name, profile) in [("wan", LinkProfile::WAN), ("lan", LinkProfile::LAN)] {
        let mut eps = InMemoryNetwork::new(2).into_iter();
        let a: Arc<dyn Transport> = Arc::new(eps.next().unwrap());
        let b = eps.next().unwrap();
        let a = Emulated::new(a, profile);
        let payload = Bytes::from(vec![1u8; BIG]);
        let t = Instant::now();
        a.send(1, 1, payload).unwrap();
        b.recv(0, 1).await.unwrap();
        let total = t.elapsed();
        let wire = total
            .saturating_sub(profile.latency)
            .max(Duration::from_micros(1));
        let delivered = BIG as f64 * 8.0 / wire.as_secs_f64();
        let dev = delivered / profile.bits_per_sec - 1.0;
        println!(
            "  {name}: configured {:.0} Mbit/s + {:?}; delivered {:.1} Mbit/s ({:+.2}%), {:.3} s in all",
            profile.bits_per_sec / 1e6,
            profile.latency,
            delivered / 1e6,
            dev * 100.0,
            total.as_secs_f64()
        );
        if name == "wan" && dev.abs() > 0.10 {
            println!("  FAIL: the wan link is off its configured bandwidth by more than 10%");
            ok = false;
        }
        // Latency of a small message on an idle emulated link.
        let t = Instant::now();
        a.send(1, 2, Bytes::from_static(b"x")).unwrap();
        b.recv(0, 2).await.unwrap();
        println!(
            "  {name}: one-way latency of a 1-byte message {:.3} ms (configured {:.3} ms)",
            t.elapsed().as_secs_f64() * 1e3,
            profile.latency.as_secs_f64() * 1e3
        );
    }
    ok
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if !rt.block_on(run()) {
        std::process::exit(1);
    }
}
