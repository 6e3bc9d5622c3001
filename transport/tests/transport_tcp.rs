//! TCP transport over loopback: mesh start-up with and without TLS, message
//! exchange, and every failure mode of the issue (dead peer, abort,
//! timeout, bad certificate, wrong session, malformed frames), each bounded
//! by a generous hang-detection timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use spindle_transport::frame::{encode_header, FrameKind, Header};
use spindle_transport::link::dial;
use spindle_transport::tls::test_identities;
use spindle_transport::{LinkOptions, Security, TcpTransport, Transport, TransportError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::{timeout, Instant};

const HANG: Duration = Duration::from_secs(20);

fn opts(n: usize) -> LinkOptions {
    let mut o = LinkOptions::new("test-session", n);
    o.connect_timeout = Duration::from_secs(5);
    o.handshake_timeout = Duration::from_secs(5);
    o.recv_timeout = Duration::from_secs(5);
    o
}

async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let mut ls = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        ls.push(l);
    }
    (ls, addrs)
}

async fn mesh_with(
    securities: Vec<Security>,
    opts_of: impl Fn(usize) -> LinkOptions,
) -> Vec<Result<TcpTransport, TransportError>> {
    let n = securities.len();
    let (ls, addrs) = listeners(n).await;
    let mut handles = Vec::new();
    for (me, (l, sec)) in ls.into_iter().zip(securities).enumerate() {
        let (addrs, o) = (addrs.clone(), opts_of(me));
        handles.push(tokio::spawn(async move {
            TcpTransport::connect(me, &addrs, l, sec, o).await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(timeout(HANG, h).await.expect("no hang").unwrap());
    }
    out
}

async fn tls_mesh(n: usize) -> Vec<TcpTransport> {
    let ids = test_identities(n, false).unwrap();
    let secs = ids
        .into_iter()
        .map(|i| Security::Tls(Arc::new(i)))
        .collect();
    mesh_with(secs, |_| opts(n))
        .await
        .into_iter()
        .map(|r| r.expect("mesh connects"))
        .collect()
}

async fn plain_mesh(n: usize) -> Vec<TcpTransport> {
    let secs = (0..n).map(|_| Security::InsecurePlaintext).collect();
    mesh_with(secs, |_| opts(n))
        .await
        .into_iter()
        .map(|r| r.expect("mesh connects"))
        .collect()
}

async fn exchange(eps: &[TcpTransport]) {
    let n = eps.len();
    for (me, ep) in eps.iter().enumerate() {
        for peer in (0..n).filter(|&p| p != me) {
            // Two rounds, posted in order; received in reverse order below.
            ep.send(peer, 10, Bytes::from(vec![me as u8; 1000 + peer]))
                .unwrap();
            ep.send(peer, 11, Bytes::from(format!("{me}->{peer}")))
                .unwrap();
        }
    }
    for (me, ep) in eps.iter().enumerate() {
        for peer in (0..n).filter(|&p| p != me) {
            let b = timeout(HANG, ep.recv(peer, 11)).await.unwrap().unwrap();
            assert_eq!(&b[..], format!("{peer}->{me}").as_bytes());
            let a = timeout(HANG, ep.recv(peer, 10)).await.unwrap().unwrap();
            assert_eq!(a.len(), 1000 + me);
            assert!(a.iter().all(|&x| x == peer as u8));
        }
    }
    for ep in eps {
        let s = ep.stats();
        assert_eq!(s.messages_sent, 2 * (n as u64 - 1));
        assert_eq!(s.messages_received, 2 * (n as u64 - 1));
        assert_eq!(s.rounds, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mesh_of_three_exchanges_messages() {
    let eps = tls_mesh(3).await;
    exchange(&eps).await;
    for ep in &eps {
        ep.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_mesh_of_four_exchanges_messages() {
    let eps = plain_mesh(4).await;
    exchange(&eps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_close_then_recv_is_peer_closed() {
    let eps = tls_mesh(2).await;
    eps[0].send(1, 3, Bytes::from_static(b"last")).unwrap();
    eps[0].shutdown().await.unwrap();
    // Data posted before the close still arrives, then the close is seen.
    assert_eq!(&eps[1].recv(0, 3).await.unwrap()[..], b"last");
    let e = timeout(HANG, eps[1].recv(0, 4)).await.unwrap().unwrap_err();
    assert_eq!(e, TransportError::PeerClosed { peer: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_peer_fails_pending_and_later_operations() {
    let mut eps = tls_mesh(3).await;
    let p2 = eps.pop().unwrap();
    let p1 = eps.pop().unwrap();
    let p0 = eps.pop().unwrap();
    let pending = tokio::spawn(async move {
        let r = p0.recv(1, 7).await;
        (p0, r)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(p1); // party 1 dies: its sockets close
    let (p0, r) = timeout(HANG, pending).await.unwrap().unwrap();
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            TransportError::PeerClosed { peer: 1 } | TransportError::Link { peer: 1, .. }
        ),
        "{e}"
    );
    // Later operations fail too, naming the same peer.
    let e2 = timeout(HANG, p0.recv(1, 8)).await.unwrap().unwrap_err();
    assert_eq!(e2, e);
    let e3 = timeout(HANG, p2.recv(1, 7)).await.unwrap().unwrap_err();
    assert!(e3.to_string().contains("party 1"), "{e3}");
    let mut send_failed = false;
    for _ in 0..50 {
        if p0.send(1, 9, Bytes::from_static(b"x")).is_err() {
            send_failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(send_failed, "sends to a dead peer fail once noticed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_reason_reaches_peers() {
    let eps = tls_mesh(3).await;
    eps[2].abort("party 1 closed its connection").await;
    for ep in &eps[..2] {
        let e = timeout(HANG, ep.recv(2, 5)).await.unwrap().unwrap_err();
        match e {
            TransportError::Aborted { peer: 2, reason } => {
                assert!(reason.contains("party 1 closed"), "{reason}")
            }
            other => panic!("expected Aborted, got {other}"),
        }
    }
}

/// A silent peer is a timeout error, not a hang: its first message is
/// awaited for the receive plus the connect timeout (it may still be
/// fetching its preprocessing), later ones for the receive timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out() {
    let n = 2;
    let secs = (0..n).map(|_| Security::InsecurePlaintext).collect();
    let eps: Vec<TcpTransport> = mesh_with(secs, |_| {
        let mut o = opts(n);
        o.recv_timeout = Duration::from_millis(300);
        o.connect_timeout = Duration::from_secs(3);
        o
    })
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let is_timeout = |e: &TransportError, r: u64| matches!(e, TransportError::Timeout { peer: 1, round, .. } if *round == r);
    let t0 = Instant::now();
    let e = eps[0].recv(1, 4).await.unwrap_err();
    assert!(is_timeout(&e, 4), "{e}");
    let first = t0.elapsed();
    assert!(first >= Duration::from_millis(3300), "first wait {first:?}");
    assert!(first < HANG);
    eps[1].send(0, 5, Bytes::from_static(b"x")).unwrap();
    assert_eq!(&eps[0].recv(1, 5).await.unwrap()[..], b"x");
    let t1 = Instant::now();
    let e = eps[0].recv(1, 6).await.unwrap_err();
    assert!(is_timeout(&e, 6), "{e}");
    assert!(
        t1.elapsed() < Duration::from_secs(3),
        "later wait {:?}",
        t1.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_not_in_config_is_refused() {
    let good = test_identities(2, false).unwrap();
    let rogue = test_identities(2, false).unwrap(); // another cluster's keys
    let secs = vec![
        Security::Tls(Arc::new(good[0].clone())),
        Security::Tls(Arc::new(rogue[1].clone())),
    ];
    let res = mesh_with(secs, |_| {
        let mut o = opts(2);
        o.connect_timeout = Duration::from_secs(2);
        o
    })
    .await;
    // Party 0 dials party 1, whose certificate it does not know.
    let e0 = res[0].as_ref().unwrap_err();
    assert!(matches!(e0, TransportError::Handshake { .. }), "{e0}");
    // Party 1 never gets an accepted connection from party 0.
    let e1 = res[1].as_ref().unwrap_err();
    assert!(matches!(e1, TransportError::Connect { .. }), "{e1}");
    assert!(e1.to_string().contains("party 0"), "{e1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_with_another_members_certificate_is_refused() {
    // Party 0 presents party 2's (valid, configured) certificate while
    // claiming to be party 0: the TLS layer accepts, the identity check refuses.
    let ids = test_identities(3, false).unwrap();
    let mut liar = ids[2].clone();
    liar.me = 0;
    let (ls, addrs) = listeners(2).await;
    let mut it = ls.into_iter();
    let _l0 = it.next().unwrap();
    let l1 = it.next().unwrap();
    let server = tokio::spawn({
        let (addrs, sec) = (addrs.clone(), Security::Tls(Arc::new(ids[1].clone())));
        async move {
            let mut o = opts(3);
            o.connect_timeout = Duration::from_secs(2);
            o.n_parties = 2;
            TcpTransport::connect(1, &addrs, l1, sec, o).await
        }
    });
    let mut o = opts(2);
    o.connect_timeout = Duration::from_secs(2);
    let e = dial(
        0,
        1,
        &addrs[1],
        &Security::Tls(Arc::new(liar)),
        &o,
        Instant::now() + Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(timeout(HANG, server).await.unwrap().unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_session_id_is_refused_at_startup_and_later() {
    let n = 2;
    let secs = (0..n).map(|_| Security::InsecurePlaintext).collect();
    let res = mesh_with(secs, |me| {
        let mut o = opts(n);
        o.connect_timeout = Duration::from_secs(2);
        o.session = format!("session-{me}");
        o
    })
    .await;
    let e = res[0].as_ref().unwrap_err();
    assert!(e.to_string().contains("session id mismatch"), "{e}");

    // After start-up: a reconnecting peer with another session id, or with
    // the right one, is refused with a reason; the session is unaffected.
    let (ls, addrs) = listeners(2).await;
    let mut handles = Vec::new();
    for (me, l) in ls.into_iter().enumerate() {
        let addrs = addrs.clone();
        handles.push(tokio::spawn(async move {
            TcpTransport::connect(me, &addrs, l, Security::InsecurePlaintext, opts(2)).await
        }));
    }
    let mut eps = Vec::new();
    for h in handles {
        eps.push(h.await.unwrap().unwrap());
    }
    let mut other = opts(2);
    other.session = "another-session".into();
    let deadline = Instant::now() + Duration::from_secs(2);
    let e = dial(
        0,
        1,
        &addrs[1],
        &Security::InsecurePlaintext,
        &other,
        deadline,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("session id mismatch"), "{e}");
    let e = dial(
        0,
        1,
        &addrs[1],
        &Security::InsecurePlaintext,
        &opts(2),
        deadline,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("may not connect now"), "{e}");
    eps[0]
        .send(1, 2, Bytes::from_static(b"still fine"))
        .unwrap();
    assert_eq!(&eps[1].recv(0, 2).await.unwrap()[..], b"still fine");
}

/// Party 1 is a real transport; party 0 is a raw socket that completes the
/// handshake and then writes `bytes`. Returns party 1's error for round 5.
async fn receive_from_raw_peer(bytes: Vec<u8>) -> TransportError {
    let (ls, addrs) = listeners(2).await;
    let l1 = ls.into_iter().nth(1).unwrap();
    let addrs2 = addrs.clone();
    let server = tokio::spawn(async move {
        TcpTransport::connect(1, &addrs2, l1, Security::InsecurePlaintext, opts(2)).await
    });
    let link = dial(
        0,
        1,
        &addrs[1],
        &Security::InsecurePlaintext,
        &opts(2),
        Instant::now() + Duration::from_secs(5),
    )
    .await
    .unwrap();
    let p1 = timeout(HANG, server).await.unwrap().unwrap().unwrap();
    let mut s = link.stream;
    s.write_all(&bytes).await.unwrap();
    s.shutdown().await.unwrap(); // a truncated frame is only known at EOF
    let e = timeout(HANG, p1.recv(0, 5)).await.unwrap().unwrap_err();
    drop(s);
    e
}

fn frame(round: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = encode_header(&Header {
        round,
        len: payload.len(),
        kind: FrameKind::Data,
    })
    .to_vec();
    v.extend_from_slice(payload);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_is_rejected() {
    let mut b = frame(5, b"");
    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = receive_from_raw_peer(b).await;
    assert!(matches!(e, TransportError::BadFrame { peer: 0, .. }), "{e}");
    assert!(e.to_string().contains("exceeds the maximum"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_round_tag_is_rejected() {
    let mut b = frame(6, b"six");
    b.extend(frame(4, b"four"));
    let e = receive_from_raw_peer(b).await;
    assert!(matches!(e, TransportError::BadFrame { peer: 0, .. }), "{e}");
    assert!(e.to_string().contains("out-of-order"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_rejected() {
    let e =
        receive_from_raw_peer(b"\x16\x03\x01 this is not a spindle frame at all".to_vec()).await;
    assert!(matches!(e, TransportError::BadFrame { peer: 0, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_is_rejected() {
    let mut b = frame(5, b"abcdefgh");
    b.truncate(20);
    let e = receive_from_raw_peer(b).await;
    assert!(matches!(e, TransportError::BadFrame { peer: 0, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_peer_is_a_connect_error() {
    // Party 1's address has nobody listening.
    let (ls, addrs) = listeners(2).await;
    let mut it = ls.into_iter();
    let l0 = it.next().unwrap();
    drop(it);
    let mut o = opts(2);
    o.connect_timeout = Duration::from_millis(600);
    let e = TcpTransport::connect(0, &addrs, l0, Security::InsecurePlaintext, o)
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("party 1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_message_round_trips_over_tls() {
    let eps = tls_mesh(2).await;
    let big: Vec<u8> = (0..(8usize << 20)).map(|i| (i * 7 + 3) as u8).collect();
    eps[0].send(1, 2, Bytes::from(big.clone())).unwrap();
    let got = timeout(HANG, eps[1].recv(0, 2)).await.unwrap().unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got[..] == big[..]);
}

/// `send_parts` delivers ONE message, the concatenation of the parts (an
/// empty part and a part above the reader's buffer included), in order with
/// plain sends around it, over TLS and plain TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_arrive_as_one_message() {
    for eps in [tls_mesh(2).await, plain_mesh(2).await] {
        let a: Vec<u8> = (0..(3usize << 20)).map(|i| (i * 13 + 1) as u8).collect();
        let parts = vec![
            Bytes::from(a.clone()),
            Bytes::new(),
            Bytes::from_static(b"tail"),
        ];
        eps[0].send(1, 1, Bytes::from_static(b"before")).unwrap();
        eps[0].send_parts(1, 2, parts).unwrap();
        eps[0].send(1, 3, Bytes::from_static(b"after")).unwrap();
        let got = timeout(HANG, eps[1].recv(0, 2)).await.unwrap().unwrap();
        assert_eq!(got.len(), a.len() + 4);
        assert!(got[..a.len()] == a[..] && &got[a.len()..] == b"tail");
        let before = timeout(HANG, eps[1].recv(0, 1)).await.unwrap().unwrap();
        let after = timeout(HANG, eps[1].recv(0, 3)).await.unwrap().unwrap();
        assert_eq!((&before[..], &after[..]), (&b"before"[..], &b"after"[..]));
    }
}
