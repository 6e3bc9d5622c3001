//! Per-session settings.

/// How [`crate::protocol::trunc::truncate`] divides shares by 2^f.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TruncMode {
    /// Dealer-assisted probabilistic truncation for any N (Escudero et al.,
    /// CRYPTO 2020): one round, exact up to 1 ulp for |x| < 2^(k-2).
    #[default]
    Dealer,
    /// SecureML's local shift (Mohassel and Zhang, S&P 2017): zero rounds,
    /// two parties only, an explicit opt-in. Each element is off by at most
    /// 1 ulp, except with probability about |x| / 2^(k-1) (x the encoded
    /// value; 2^-43 for |x| = 1.0 at f = 20 in Z_2^64) where it is wildly
    /// wrong.
    LocalShift,
}

/// Per-session settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Fractional bits of fixed-point values; `None`: the ring's default
    /// ([`Ring::DEFAULT_FRAC_BITS`]: 20 in Z_2^64, 8 in Z_2^32).
    pub frac_bits: Option<u32>,
    /// The truncation protocol.
    pub trunc: TruncMode,
    /// When elementwise protocols on large tensors run as an inner-layer
    /// pipeline ([`crate::pipeline::Lanes`]).
    pub pipeline: InnerPipeline,
    /// Worker threads of the compute stage ([`crate::backend::ComputeQueue`]):
    /// the large local products of Beaver multiplications (GEMMs and
    /// convolutions) run there while the party's protocol task goes on with
    /// its other streams. 0: every op inline (the serial engine). Results
    /// are the same either way. Default 1.
    pub compute_workers: usize,
    /// The link the protocols assume where they trade bytes for rounds
    /// (the range reduction's exponent: comparisons or a bit
    /// decomposition). Default [`LinkCost::LAN`]; processes take it from
    /// the cluster file's declared `link`, which the dealer reads too.
    pub link: LinkCost,
}

/// A link's cost model: a round costs one latency, a byte 8 / bandwidth
/// seconds (the bandwidth-delay reasoning of issue 26's link-chosen
/// defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkCost {
    /// Bandwidth in bits per second.
    pub bits_per_sec: f64,
    /// One-way latency (the time one round adds).
    pub latency: std::time::Duration,
}

impl LinkCost {
    /// 10 Gbit/s, 0.1 ms: the `lan` profile, and the default.
    pub const LAN: LinkCost = LinkCost {
        bits_per_sec: 10e9,
        latency: std::time::Duration::from_micros(100),
    };

    /// Whether sending `extra_bytes` more to each peer takes less time
    /// than `rounds_saved` rounds: the round-cheaper variant pays.
    pub fn prefers_rounds(&self, extra_bytes: f64, rounds_saved: u32) -> bool {
        let bytes_s = match self.bits_per_sec > 0.0 && self.bits_per_sec.is_finite() {
            true => extra_bytes * 8.0 / self.bits_per_sec,
            false => 0.0,
        };
        bytes_s < rounds_saved as f64 * self.latency.as_secs_f64()
    }
}

impl Default for LinkCost {
    fn default() -> Self {
        LinkCost::LAN
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            frac_bits: None,
            trunc: TruncMode::default(),
            pipeline: InnerPipeline::default(),
            compute_workers: 1,
            link: LinkCost::default(),
        }
    }
}

/// Jobs that may wait in a session's compute-stage queue: enough for the
/// streams of a pipeline to queue one product each.
pub(crate) const COMPUTE_QUEUE_DEPTH: usize = 8;

/// When an elementwise protocol runs as an inner-layer pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerPipeline {
    /// Lanes (chunks) per call; 1 turns the pipeline off.
    pub lanes: usize,
    /// Inputs of fewer elements run as one piece (below this the extra
    /// messages cost more than the overlap gains).
    pub min_elems: usize,
}

impl Default for InnerPipeline {
    /// 4 lanes from 2^17 elements up.
    fn default() -> Self {
        InnerPipeline {
            lanes: 4,
            min_elems: 1 << 17,
        }
    }
}

/// The compute time of one protocol round per element on this engine's
/// CPU path, in nanoseconds: the rate [`InnerPipeline::for_link`] assumes
/// (an MSB round, a polynomial step: a few ring operations per element
/// and their bookkeeping; measured order of magnitude on the 2-core
/// development machine).
pub const COMPUTE_NS_PER_ELEMENT_ROUND: f64 = 10.0;

impl InnerPipeline {
    /// The inner-layer pipeline for a link of `bits_per_sec` and one-way
    /// `latency`: 4 lanes from the size where a round's compute and
    /// transfer take at least twice the link's latency, so that the lanes'
    /// compute and transfers can hide a round trip (below it the extra
    /// messages only add latency). Per element and round: `compute_ns`
    /// of compute ([`COMPUTE_NS_PER_ELEMENT_ROUND`] by default) plus one
    /// 64-bit ring element on the wire; `min_elems` = 2 latency / (compute
    /// + wire time per element), at least 4 x 64.
    ///
    /// Source: the bandwidth-delay reasoning of MPC-Pipe's inner-layer
    /// scheme (Wang et al., ASPLOS 2024): overlap pays only where there
    /// is compute or transfer to overlap with the wait.
    ///
    /// Examples: lan (10 Gbit/s, 0.1 ms): about 12,000 elements; wan
    /// (400 Mbit/s, 20 ms): about 235,000.
    pub fn for_link(bits_per_sec: f64, latency: std::time::Duration, compute_ns: f64) -> Self {
        let wire_ns = if bits_per_sec.is_finite() && bits_per_sec > 0.0 {
            64.0 / bits_per_sec * 1e9
        } else {
            0.0
        };
        let per_elem = (compute_ns.max(0.0) + wire_ns).max(1e-3);
        let lanes = InnerPipeline::default().lanes;
        let min = (2.0 * latency.as_nanos() as f64 / per_elem).ceil();
        InnerPipeline {
            lanes,
            min_elems: (min.min(usize::MAX as f64) as usize).max(lanes * ALIGN),
        }
    }

    /// No pipelining: every protocol runs as one piece.
    pub const OFF: InnerPipeline = InnerPipeline {
        lanes: 1,
        min_elems: usize::MAX,
    };

    /// Lanes for an input of `numel` elements (1: run as one piece); at
    /// most one per 64 elements.
    pub fn lanes_for(&self, numel: usize) -> usize {
        if numel < self.min_elems {
            1
        } else {
            self.lanes.min(numel / ALIGN).max(1)
        }
    }
}

/// Lanes start at multiples of this many elements, so that bit-packed
/// binary shares (64 per word) cost the same words as one piece.
pub(crate) const ALIGN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The lanes start where a round's compute and transfer cover two
    /// latencies: far later on a WAN than on a LAN.
    #[test]
    fn the_lanes_threshold_follows_the_link() {
        let lan = InnerPipeline::for_link(10e9, Duration::from_micros(100), 10.0);
        let wan = InnerPipeline::for_link(400e6, Duration::from_millis(20), 10.0);
        assert_eq!(lan.min_elems, 12_196); // 2e5 ns / (10 + 6.4) ns
        assert_eq!(wan.min_elems, 235_295); // 4e7 ns / (10 + 160) ns
        let none = InnerPipeline::for_link(f64::INFINITY, Duration::ZERO, 10.0);
        assert_eq!(none.min_elems, 4 * ALIGN);
        assert_eq!(wan.lanes, 4);
    }
}
