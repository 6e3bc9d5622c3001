//! The registered buffer pool of one peer link: one page-aligned
//! allocation registered once with the device, cut into `send_slots` send
//! buffers followed by `recv_slots` receive buffers of `slot_bytes` each.
//!
//! A send buffer belongs to software while it is in the [`SlotPool`] and to
//! the device from the moment a SEND is posted on it until its completion
//! is polled. Every receive buffer is posted to the device except between
//! the poll of its completion and its repost, during which software copies
//! the chunk out. Completions name their buffer through the work request id
//! ([`WrId`]).
//!
//! [`WrId`] and [`SlotPool`] are pure bookkeeping and compiled with or
//! without the `rdma` feature; the registered memory itself needs it.

use crate::PartyId;

/// Whether a work request sends or receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A SEND from a send buffer.
    Send,
    /// A posted receive into a receive buffer.
    Recv,
}

/// What a work request id encodes: the peer link, the direction and the
/// buffer index. Layout of the 64-bit id: bits 32..48 peer, bit 31
/// direction (1 = receive), bits 0..31 buffer index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrId {
    /// The peer whose queue pair the request was posted on.
    pub peer: PartyId,
    /// Send or receive.
    pub dir: Direction,
    /// Index of the buffer within its direction.
    pub slot: u32,
}

const RECV_BIT: u64 = 1 << 31;

impl WrId {
    /// The 64-bit id; `None` if the peer or slot does not fit its field
    /// (peer >= 2^16, slot >= 2^31).
    pub fn encode(self) -> Option<u64> {
        if self.peer > 0xFFFF || self.slot >= 1 << 31 {
            return None;
        }
        let dir = match self.dir {
            Direction::Send => 0,
            Direction::Recv => RECV_BIT,
        };
        Some(((self.peer as u64) << 32) | dir | self.slot as u64)
    }

    /// Parses an id made by [`WrId::encode`]; `None` if bits 48..64 are set.
    pub fn decode(id: u64) -> Option<WrId> {
        if id >> 48 != 0 {
            return None;
        }
        Some(WrId {
            peer: (id >> 32) as PartyId,
            dir: if id & RECV_BIT != 0 {
                Direction::Recv
            } else {
                Direction::Send
            },
            slot: (id & (RECV_BIT - 1)) as u32,
        })
    }
}

/// The free send buffers of one link. Handing out a buffer that is in use
/// is impossible; returning one twice or one that does not exist is
/// refused.
#[derive(Clone, Debug)]
pub struct SlotPool {
    free: Vec<u32>,
    in_use: Vec<bool>,
}

impl SlotPool {
    /// A pool of buffers `0..n`, all free.
    pub fn new(n: u32) -> SlotPool {
        SlotPool {
            // Popped from the back: buffer 0 first.
            free: (0..n).rev().collect(),
            in_use: vec![false; n as usize],
        }
    }

    /// A free buffer, now in use; `None` when all are in use.
    pub fn take(&mut self) -> Option<u32> {
        let s = self.free.pop()?;
        self.in_use[s as usize] = true;
        Some(s)
    }

    /// Returns buffer `s`; `false` (and nothing changes) if it is not in use.
    pub fn put(&mut self, s: u32) -> bool {
        match self.in_use.get_mut(s as usize) {
            Some(used) if *used => {
                *used = false;
                self.free.push(s);
                true
            }
            _ => false,
        }
    }

    /// Buffers in use (posted and not yet completed).
    pub fn in_use(&self) -> usize {
        self.in_use.len() - self.free.len()
    }

    /// Whether no buffer is in use.
    pub fn all_free(&self) -> bool {
        self.in_use() == 0
    }
}

#[cfg(feature = "rdma")]
pub(crate) use registered::RegisteredBuffers;

#[cfg(feature = "rdma")]
mod registered {
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::ptr::NonNull;
    use std::sync::Arc;

    use sideway::ibverbs::memory_region::MemoryRegion;
    use sideway::ibverbs::protection_domain::ProtectionDomain;
    use sideway::ibverbs::AccessFlags;

    use super::Direction;

    /// The memory of one link's buffers, registered for local write (the
    /// device writes received chunks into it; SEND and RECV need no remote
    /// access). Deregistered, then freed, on drop.
    pub(crate) struct RegisteredBuffers {
        /// Registration of `ptr..ptr + layout.size()`; taken in `drop`
        /// before the memory is freed.
        mr: Option<Arc<MemoryRegion>>,
        ptr: NonNull<u8>,
        layout: Layout,
        slot_bytes: usize,
        send_slots: usize,
        recv_slots: usize,
    }

    // The raw pointer is owned memory; access goes through `&mut self`
    // (the completion thread owns the buffers after setup).
    unsafe impl Send for RegisteredBuffers {}

    impl RegisteredBuffers {
        /// Allocates and registers `(send_slots + recv_slots) * slot_bytes`
        /// bytes, page-aligned and zeroed, with `pd`.
        ///
        /// Errors: a reason for a size overflow, an allocation failure or a
        /// failed registration (e.g. the locked-memory limit, `ulimit -l`).
        pub(crate) fn new(
            pd: &Arc<ProtectionDomain>,
            slot_bytes: usize,
            send_slots: usize,
            recv_slots: usize,
        ) -> Result<RegisteredBuffers, String> {
            let total = send_slots
                .checked_add(recv_slots)
                .and_then(|n| n.checked_mul(slot_bytes))
                .filter(|&t| t > 0)
                .ok_or_else(|| "buffer pool size overflows or is zero".to_string())?;
            let layout = Layout::from_size_align(total, 4096)
                .map_err(|e| format!("buffer pool layout: {e}"))?;
            // SAFETY: `layout` has a nonzero size.
            let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })
                .ok_or_else(|| format!("cannot allocate {total} bytes of RDMA buffers"))?;
            // SAFETY: `ptr` is valid for `total` bytes and stays allocated
            // until `drop`, which deregisters first.
            let mr = unsafe { pd.reg_mr(ptr.as_ptr() as usize, total, AccessFlags::LocalWrite) };
            let mr = match mr {
                Ok(mr) => mr,
                Err(e) => {
                    // SAFETY: allocated above with this layout, not registered.
                    unsafe { dealloc(ptr.as_ptr(), layout) };
                    return Err(format!(
                        "cannot register {total} bytes of RDMA buffers: {} \
                         (is the locked-memory limit, ulimit -l, too low?)",
                        super::super::error_chain(&e)
                    ));
                }
            };
            Ok(RegisteredBuffers {
                mr: Some(mr),
                ptr,
                layout,
                slot_bytes,
                send_slots,
                recv_slots,
            })
        }

        /// Local key of the registration (0 once dropped, never observed).
        pub(crate) fn lkey(&self) -> u32 {
            self.mr.as_ref().map(|m| m.lkey()).unwrap_or(0)
        }

        /// Size of each buffer, bytes.
        pub(crate) fn slot_bytes(&self) -> usize {
            self.slot_bytes
        }

        /// Number of buffers of a direction.
        pub(crate) fn slot_count(&self, dir: Direction) -> usize {
            match dir {
                Direction::Send => self.send_slots,
                Direction::Recv => self.recv_slots,
            }
        }

        fn offset(&self, dir: Direction, slot: u32) -> Option<usize> {
            let (base, count) = match dir {
                Direction::Send => (0, self.send_slots),
                Direction::Recv => (self.send_slots, self.recv_slots),
            };
            let slot = slot as usize;
            (slot < count).then(|| (base + slot) * self.slot_bytes)
        }

        /// Device address of a buffer, for a scatter/gather entry; `None`
        /// for an index out of range.
        pub(crate) fn addr(&self, dir: Direction, slot: u32) -> Option<u64> {
            let off = self.offset(dir, slot)?;
            Some(self.ptr.as_ptr() as u64 + off as u64)
        }

        /// Send buffer `slot`, to fill before posting it. The caller must
        /// own the buffer (taken from its [`super::SlotPool`], not posted).
        pub(crate) fn send_buf(&mut self, slot: u32) -> Option<&mut [u8]> {
            let off = self.offset(Direction::Send, slot)?;
            // SAFETY: in bounds; the device does not touch a send buffer
            // that is not posted, and `&mut self` excludes other views.
            Some(unsafe {
                std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), self.slot_bytes)
            })
        }

        /// The first `len` bytes of receive buffer `slot`, whose completion
        /// has been polled and which is not reposted yet; `None` for an
        /// index out of range or `len` above the buffer size.
        pub(crate) fn recv_buf(&self, slot: u32, len: usize) -> Option<&[u8]> {
            let off = self.offset(Direction::Recv, slot)?;
            if len > self.slot_bytes {
                return None;
            }
            // SAFETY: in bounds; the device wrote this buffer before the
            // completion was generated and does not write it again until it
            // is reposted, which needs `&mut` access to the queue pair
            // while this borrow is alive in the caller.
            Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) })
        }
    }

    impl Drop for RegisteredBuffers {
        fn drop(&mut self) {
            // Deregister before freeing. The queue pair that used these
            // buffers must be gone already (field order in the link state).
            drop(self.mr.take());
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wr_ids_round_trip() {
        for peer in [0, 1, 7, 0xFFFF] {
            for dir in [Direction::Send, Direction::Recv] {
                for slot in [0, 1, 4095, (1 << 31) - 1] {
                    let w = WrId { peer, dir, slot };
                    let id = w.encode().unwrap();
                    assert_eq!(WrId::decode(id), Some(w));
                }
            }
        }
        let too_big = WrId {
            peer: 0x1_0000,
            dir: Direction::Send,
            slot: 0,
        };
        assert_eq!(too_big.encode(), None);
        let too_big = WrId {
            peer: 0,
            dir: Direction::Recv,
            slot: 1 << 31,
        };
        assert_eq!(too_big.encode(), None);
        assert_eq!(WrId::decode(1 << 48), None);
        assert_eq!(WrId::decode(u64::MAX), None);
    }

    #[test]
    fn slot_pool_hands_out_each_buffer_once() {
        let mut p = SlotPool::new(3);
        assert!(p.all_free());
        let a = p.take().unwrap();
        let b = p.take().unwrap();
        let c = p.take().unwrap();
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(p.take(), None);
        assert_eq!(p.in_use(), 3);
        assert!(p.put(b));
        assert!(!p.put(b), "double return");
        assert!(!p.put(3), "no such buffer");
        assert_eq!(p.take(), Some(b));
        for s in [a, b, c] {
            assert!(p.put(s));
        }
        assert!(p.all_free());
        assert_eq!(SlotPool::new(0).take(), None);
    }
}
