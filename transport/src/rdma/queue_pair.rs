//! One RC queue pair per peer: creation, the RESET -> INIT -> RTR -> RTS
//! transitions from the exchanged endpoints, and posting one SEND or one
//! receive on a registered buffer. Every call is a short verbs call into
//! the driver; none waits for the network.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use sideway::ibverbs::address::{AddressHandleAttribute, Gid};
use sideway::ibverbs::completion::BasicCompletionQueue;
use sideway::ibverbs::device_context::Mtu;
use sideway::ibverbs::protection_domain::ProtectionDomain;
use sideway::ibverbs::queue_pair::{
    BasicQueuePair, PostSendGuard, QueuePair, QueuePairAttribute, QueuePairState,
    SetScatterGatherEntry, WorkRequestFlags,
};
use sideway::ibverbs::AccessFlags;

use super::endpoint::{Endpoint, Route};
use super::error_chain;

/// Local ACK timeout exponent: 4.096 µs * 2^14 = 67 ms per try.
const ACK_TIMEOUT: u8 = 14;
/// Transport retries before a send fails with "retry exceeded" (max 7):
/// a vanished peer fails a send after about 8 * 67 ms.
const RETRY_COUNT: u8 = 7;
/// Receiver-not-ready retries: 7 means retry forever (the receiver reposts
/// each buffer right after copying it out, so this only waits for its
/// completion thread).
const RNR_RETRY: u8 = 7;
/// Delay the responder asks for on receiver-not-ready: code 12 = 0.64 ms.
const MIN_RNR_TIMER: u8 = 12;
/// Hop limit of the global routing header (RoCE).
const HOP_LIMIT: u8 = 64;

/// Creates an RC queue pair on `pd` with `cq` for both queues, room for
/// `send_wr` SENDs and `recv_wr` receives of one buffer each.
///
/// Errors: a reason (device limits, resources).
pub(crate) fn create(
    pd: &Arc<ProtectionDomain>,
    cq: &Arc<BasicCompletionQueue>,
    send_wr: u32,
    recv_wr: u32,
) -> Result<BasicQueuePair, String> {
    pd.create_qp_builder()
        .setup_send_cq(cq.clone())
        .setup_recv_cq(cq.clone())
        .setup_max_send_wr(send_wr)
        .setup_max_recv_wr(recv_wr)
        .setup_max_send_sge(1)
        .setup_max_recv_sge(1)
        .build()
        .map_err(|e| format!("cannot create a queue pair: {}", error_chain(&e)))
}

/// RESET -> INIT on `port`. Receives may be posted from INIT on.
///
/// Errors: a reason.
pub(crate) fn to_init(qp: &mut BasicQueuePair, port: u8) -> Result<(), String> {
    let mut a = QueuePairAttribute::new();
    a.setup_state(QueuePairState::Init)
        .setup_pkey_index(0)
        .setup_port(port)
        .setup_access_flags(AccessFlags::LocalWrite);
    qp.modify(&a)
        .map_err(|e| format!("queue pair to INIT: {}", error_chain(&e)))
}

/// INIT -> RTR (ready to receive) towards the peer's queue pair described
/// by `remote` (its QP number, first PSN, LID and GID), routed as `route`
/// says, from `port` and GID index `gid_index`.
///
/// Errors: a reason (bad MTU code, unreachable GID, driver refusal).
pub(crate) fn to_rtr(
    qp: &mut BasicQueuePair,
    port: u8,
    gid_index: u8,
    route: &Route,
    remote: &Endpoint,
) -> Result<(), String> {
    let mtu = match route.mtu {
        1 => Mtu::Mtu256,
        2 => Mtu::Mtu512,
        3 => Mtu::Mtu1024,
        4 => Mtu::Mtu2048,
        5 => Mtu::Mtu4096,
        c => return Err(format!("unknown MTU code {c}")),
    };
    let mut av = AddressHandleAttribute::new();
    av.setup_dest_lid(remote.lid)
        .setup_port(port)
        .setup_service_level(0);
    if route.use_grh {
        av.setup_grh(&Gid { raw: remote.gid }, 0, gid_index, HOP_LIMIT, 0);
    }
    let mut a = QueuePairAttribute::new();
    a.setup_state(QueuePairState::ReadyToReceive)
        .setup_path_mtu(mtu)
        .setup_dest_qp_num(remote.qpn)
        .setup_rq_psn(remote.psn)
        .setup_max_dest_read_atomic(1)
        .setup_min_rnr_timer(MIN_RNR_TIMER)
        .setup_address_vector(&av);
    qp.modify(&a)
        .map_err(|e| format!("queue pair to RTR: {}", error_chain(&e)))
}

/// RTR -> RTS (ready to send), sending from PSN `local_psn`.
///
/// Errors: a reason.
pub(crate) fn to_rts(qp: &mut BasicQueuePair, local_psn: u32) -> Result<(), String> {
    let mut a = QueuePairAttribute::new();
    a.setup_state(QueuePairState::ReadyToSend)
        .setup_sq_psn(local_psn)
        .setup_timeout(ACK_TIMEOUT)
        .setup_retry_cnt(RETRY_COUNT)
        .setup_rnr_retry(RNR_RETRY)
        .setup_max_read_atomic(1);
    qp.modify(&a)
        .map_err(|e| format!("queue pair to RTS: {}", error_chain(&e)))
}

/// Posts one signaled SEND of `len` bytes at device address `addr`
/// (registered with `lkey`), with work request id `wr_id`.
///
/// Errors: a reason (send queue full, queue pair in error).
pub(crate) fn post_send(
    qp: &mut BasicQueuePair,
    wr_id: u64,
    lkey: u32,
    addr: u64,
    len: u32,
) -> Result<(), String> {
    let mut guard = qp.start_post_send();
    let wr = guard
        .construct_wr(wr_id, WorkRequestFlags::Signaled)
        .setup_send();
    // SAFETY: the caller passes a registered buffer it owns until the
    // completion of `wr_id` is polled.
    unsafe { wr.setup_sge(lkey, addr, len) };
    guard
        .post()
        .map_err(|e| format!("posting a send: {}", error_chain(&e)))
}

/// Posts one receive into the `len` bytes at device address `addr`
/// (registered with `lkey`), with work request id `wr_id`.
///
/// Errors: a reason (receive queue full, queue pair in error).
pub(crate) fn post_recv(
    qp: &mut BasicQueuePair,
    wr_id: u64,
    lkey: u32,
    addr: u64,
    len: u32,
) -> Result<(), String> {
    let mut guard = qp.start_post_recv();
    let wr = guard.construct_wr(wr_id);
    // SAFETY: the caller passes a registered buffer that software does not
    // touch until the completion of `wr_id` is polled.
    unsafe { wr.setup_sge(lkey, addr, len) };
    guard
        .post()
        .map_err(|e| format!("posting a receive: {}", error_chain(&e)))
}

/// A random 24-bit first packet sequence number (not secret: it only keeps
/// stale packets of an earlier queue pair with the same number out).
pub(crate) fn random_psn() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() as u32) & 0x00FF_FFFF
}
