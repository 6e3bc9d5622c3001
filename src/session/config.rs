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
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// Fractional bits of fixed-point values; `None`: the ring's default
    /// ([`Ring::DEFAULT_FRAC_BITS`]: 20 in Z_2^64, 8 in Z_2^32).
    pub frac_bits: Option<u32>,
    /// The truncation protocol.
    pub trunc: TruncMode,
    /// When elementwise protocols on large tensors run as an inner-layer
    /// pipeline ([`crate::pipeline::Lanes`]).
    pub pipeline: InnerPipeline,
}

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

impl InnerPipeline {
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
