//! The one error type of the engine. Bad input is an [`Error`], never a panic.

use spindle_transport::TransportError;

/// Everything that can go wrong in Spindle, typed so callers can react.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operand shapes do not fit the operation (e.g. inner dimensions of a
    /// matmul, element counts of an elementwise op, a conv kernel larger than
    /// its padded input).
    #[error("shape mismatch in {op}: {detail}")]
    ShapeMismatch {
        /// The operation that rejected its operands.
        op: &'static str,
        /// What was expected and what was given.
        detail: String,
    },
    /// Fixed-point parameters outside what the ring supports.
    #[error("invalid fixed-point parameters: {0}")]
    InvalidFixedPoint(String),
    /// A real number that cannot be encoded (NaN, infinite, or too large).
    #[error("cannot encode {value} with {frac_bits} fractional bits in Z_2^{bits}: {reason}")]
    Encode {
        /// The offending value.
        value: f64,
        /// Fractional bits requested.
        frac_bits: u32,
        /// Ring width k.
        bits: u32,
        /// Why it failed.
        reason: &'static str,
    },
    /// The online phase asked for more correlated randomness than the offline
    /// phase produced.
    #[error("preprocessing exhausted: request #{index} ({request}) has no material; the store held {available} requests")]
    PreprocessingExhausted {
        /// Index of the failing request in consumption order.
        index: usize,
        /// The request that could not be served.
        request: String,
        /// How many requests the store was generated for.
        available: usize,
    },
    /// The online phase asked for material of another kind or shape than the
    /// plan recorded at this position.
    #[error("preprocessing mismatch at request #{index}: the online phase asked for {got}, the plan recorded {expected}")]
    PreprocessingMismatch {
        /// Index of the failing request in consumption order.
        index: usize,
        /// What the plan holds at that index.
        expected: String,
        /// What the online phase asked for.
        got: String,
    },
    /// A party id, party count or owner outside the session.
    #[error("invalid party configuration: {0}")]
    InvalidParty(String),
    /// A feature that is not implemented (yet) or not allowed in this setting.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A message from a peer that does not decode.
    #[error("malformed message from party {from}: {detail}")]
    Malformed {
        /// Sender.
        from: usize,
        /// What was wrong with it.
        detail: String,
    },
    /// The link to a peer failed (dead peer, timeout, bad frame).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A CUDA failure: driver call, NVRTC compilation, module load or kernel
    /// launch (the CUDA backend, [`crate::backend::cuda`]).
    #[error("CUDA error in {op}: {detail}")]
    Gpu {
        /// What was being done ("nvrtc compile elementwise for compute_90").
        op: String,
        /// The driver's or compiler's message (with the NVRTC log).
        detail: String,
    },
    /// A run that needs more memory (or another resource) than the
    /// machine has: the message gives the estimate and the flags that
    /// shrink the run ([`crate::resources`]).
    #[error("not enough memory: {0}")]
    Resources(String),
    /// A file or blob that does not have the expected format.
    #[error("bad format in {what}: {detail}")]
    Format {
        /// Which file or structure.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

impl From<crate::ring::RingError> for Error {
    /// Each ring-level failure as the engine's variant of the same name.
    fn from(e: crate::ring::RingError) -> Self {
        use crate::ring::RingError as E;
        match e {
            E::ShapeMismatch { op, detail } => Error::ShapeMismatch { op, detail },
            E::InvalidFixedPoint(m) => Error::InvalidFixedPoint(m),
            E::Encode {
                value,
                frac_bits,
                bits,
                reason,
            } => Error::Encode {
                value,
                frac_bits,
                bits,
                reason,
            },
            E::Format { what, detail } => Error::Format { what, detail },
            E::Gpu { op, detail } => Error::Gpu { op, detail },
            E::Unsupported(m) => Error::Unsupported(m),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::ShapeMismatch {
            op,
            detail: detail.into(),
        }
    }

    /// Shorthand for [`Error::Io`] with the path attached.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
