//! [`Opened`]: a public tensor (a value opened by the session) whose sum
//! may still be formed by its consumer.
//!
//! Opening adds the peers' shares to the own one. Forming that sum as its
//! own pass writes the value and reads it back in the kernel that uses it;
//! with 2 parties an `Opened` keeps the own share and the peer's message
//! as they are, and the kernel adds them element by element as it reads
//! them (one pass over memory fewer per opening: about a tenth of exp's
//! time on the CPU). With more parties, an unaligned message or a
//! big-endian machine the sum is formed once, at the opening.

use bytes::Bytes;

use super::{Ring, RingTensor, Shape};

/// An opened (public) tensor, always in host memory (it came off the
/// wire): either its value or the two parts whose ring sum (wrapping,
/// element by element) it is. The fused MPC steps of the backends
/// ([`crate::backend::MpcSteps`]) take opened operands in this form.
#[derive(Clone, Debug)]
pub struct Opened<R: Ring> {
    value: Value<R>,
}

#[derive(Clone, Debug)]
enum Value<R: Ring> {
    Sum(RingTensor<R>),
    /// Own share and the peer's, as little-endian bytes aligned for R
    /// (checked by [`Opened::from_parts`]), of `shape`'s length.
    Parts {
        shape: Shape,
        own: Bytes,
        peer: Bytes,
    },
}

impl<R: Ring> Opened<R> {
    /// An opened value already summed (a host tensor).
    pub fn from_sum(value: RingTensor<R>) -> Self {
        Opened {
            value: Value::Sum(value),
        }
    }

    /// The value own + peer, kept as its two parts when both are aligned
    /// for R on a little-endian machine (else summed now). Both hold
    /// `shape.numel()` little-endian elements (checked by the caller: the
    /// message length).
    pub(crate) fn from_parts(shape: Shape, own: Bytes, peer: Bytes) -> Self {
        let aligned = |b: &Bytes| bytemuck::try_cast_slice::<u8, R>(b).is_ok();
        debug_assert_eq!(own.len(), shape.numel() * R::BYTES);
        debug_assert_eq!(peer.len(), own.len());
        if cfg!(target_endian = "little") && aligned(&own) && aligned(&peer) {
            return Opened {
                value: Value::Parts { shape, own, peer },
            };
        }
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[..R::BYTES].copy_from_slice(b);
            R::from_u64(u64::from_le_bytes(w))
        };
        let sum: Vec<R> = own
            .chunks_exact(R::BYTES)
            .zip(peer.chunks_exact(R::BYTES))
            .map(|(a, b)| word(a).wrapping_add(word(b)))
            .collect();
        Opened::from_sum(RingTensor::new(shape, sum).expect("numel checked by the caller"))
    }

    /// The shape of the value.
    pub fn shape(&self) -> &Shape {
        match &self.value {
            Value::Sum(t) => t.shape(),
            Value::Parts { shape, .. } => shape,
        }
    }

    /// The elements, for a kernel that forms the sum as it reads.
    pub(crate) fn elems(&self) -> OpenedSlice<'_, R> {
        match &self.value {
            Value::Sum(t) => OpenedSlice::Sum(t.data()),
            Value::Parts { own, peer, .. } => {
                OpenedSlice::Parts(bytemuck::cast_slice(own), bytemuck::cast_slice(peer))
            }
        }
    }

    /// f applied to every element of the value: public arithmetic on the
    /// host, in one pass (the sum formed as it is read), as a host tensor.
    pub(crate) fn map(&self, f: impl Fn(R) -> R) -> RingTensor<R> {
        let n = self.shape().numel();
        let data = with_elems!(self.elems(), c => {
            let c = c.chunk(0, n);
            (0..n).map(|i| f(c.elem(i))).collect()
        });
        RingTensor::new(self.shape().clone(), data).expect("the shape's length")
    }

    /// The value as a tensor (a copy; one pass over both parts when kept
    /// apart).
    pub fn to_tensor(&self) -> RingTensor<R> {
        match &self.value {
            Value::Sum(t) => t.clone(),
            Value::Parts { .. } => self.map(|v| v),
        }
    }

    /// The value as a tensor (one pass over both parts when kept apart).
    pub fn into_tensor(self) -> RingTensor<R> {
        match self.value {
            Value::Sum(t) => t,
            Value::Parts { shape, own, peer } => {
                let (a, b): (&[R], &[R]) =
                    (bytemuck::cast_slice(&own), bytemuck::cast_slice(&peer));
                let sum = a.iter().zip(b).map(|(x, y)| x.wrapping_add(*y)).collect();
                RingTensor::new(shape, sum).expect("parts of the shape's length")
            }
        }
    }
}

/// The elements of an [`Opened`] as a kernel reads them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OpenedSlice<'a, R> {
    /// The values.
    Sum(&'a [R]),
    /// Two slices of one length whose element-wise ring sum is the value.
    Parts(&'a [R], &'a [R]),
}

/// Element access for kernels generic over how an opened value is held:
/// a slice of values, or [`SumOf2`]. Kernels take a chunk once, then read
/// by index (both forms have the chunk's length, so the reads carry no
/// bounds checks in the inner loop).
pub(crate) trait Elems<R>: Copy + Send + Sync {
    /// Elements i0..i0 + n.
    fn chunk(self, i0: usize, n: usize) -> Self;
    /// Element i.
    fn elem(&self, i: usize) -> R;
}

impl<R: Ring> Elems<R> for &[R] {
    #[inline(always)]
    fn chunk(self, i0: usize, n: usize) -> Self {
        &self[i0..i0 + n]
    }
    #[inline(always)]
    fn elem(&self, i: usize) -> R {
        self[i]
    }
}

/// Two slices of one length read as their element-wise ring sum.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SumOf2<'a, R>(pub(crate) &'a [R], pub(crate) &'a [R]);

impl<R: Ring> Elems<R> for SumOf2<'_, R> {
    #[inline(always)]
    fn chunk(self, i0: usize, n: usize) -> Self {
        SumOf2(&self.0[i0..i0 + n], &self.1[i0..i0 + n])
    }
    #[inline(always)]
    fn elem(&self, i: usize) -> R {
        self.0[i].wrapping_add(self.1[i])
    }
}

/// Runs `$body` with `$c` bound to the [`Elems`] form of an
/// [`OpenedSlice`] (one monomorphized copy per form).
macro_rules! with_elems {
    ($slice:expr, $c:ident => $body:expr) => {
        match $slice {
            $crate::ring::OpenedSlice::Sum(s) => {
                let $c = s;
                $body
            }
            $crate::ring::OpenedSlice::Parts(a, b) => {
                let $c = $crate::ring::SumOf2(a, b);
                $body
            }
        }
    };
}
pub(crate) use with_elems;

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(v: &[u64]) -> Bytes {
        Bytes::copy_from_slice(bytemuck::cast_slice(v))
    }

    #[test]
    fn parts_read_as_their_wrapping_sum() {
        let (own, peer) = (vec![1u64, u64::MAX, 7], vec![2u64, 2, 3]);
        let shape = Shape::from([3]);
        let o = Opened::<u64>::from_parts(shape.clone(), bytes_of(&own), bytes_of(&peer));
        let want = vec![3u64, 1, 10];
        match o.elems() {
            OpenedSlice::Parts(..) => {}
            OpenedSlice::Sum(_) => panic!("aligned parts are kept apart"),
        }
        let read: Vec<u64> =
            with_elems!(o.elems(), c => (0..3).map(|i| c.chunk(0, 3).elem(i)).collect());
        assert_eq!(read, want);
        assert_eq!(with_elems!(o.elems(), c => c.chunk(1, 2).elem(1)), 10);
        assert_eq!(o.shape(), &shape);
        assert_eq!(o.into_tensor().data(), &want[..]);
    }

    #[test]
    fn unaligned_parts_are_summed_at_once() {
        let peer: Vec<u8> = [0u8]
            .iter()
            .chain(bytemuck::cast_slice::<u32, u8>(&[1, u32::MAX, 9, 9]))
            .copied()
            .collect();
        let own32: Vec<u8> = bytemuck::cast_slice::<u32, u8>(&[5, 6]).to_vec();
        let peer = Bytes::from(peer).slice(1..9);
        let o = Opened::<u32>::from_parts(Shape::from([2]), Bytes::from(own32), peer);
        match o.elems() {
            OpenedSlice::Sum(s) => assert_eq!(s, &[6, 5]),
            OpenedSlice::Parts(..) => panic!("an unaligned part is summed"),
        }
    }
}
