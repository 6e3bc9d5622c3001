//! [`RingError`]: what ring arithmetic, encoding and tensor storage can
//! report. `ring/` is the bottom layer of the engine and depends on nothing
//! above it (no session, no transport); [`crate::Error`] takes each
//! variant over as its own variant of the same name (`From<RingError>`).

/// A failure of ring-level code: shapes, encodings, fixed-point
/// parameters, serialized tensors, a device copy.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// Operand shapes do not fit the operation ([`crate::Error::ShapeMismatch`]).
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
    /// Bytes or a tensor of another ring that do not decode as asked.
    #[error("malformed {what}: {detail}")]
    Format {
        /// What was being decoded.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A device failure while copying a tensor ([`crate::Error::Gpu`]).
    #[error("GPU error in {op}: {detail}")]
    Gpu {
        /// The call that failed.
        op: String,
        /// The driver's message.
        detail: String,
    },
    /// Something this layer cannot do (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl RingError {
    /// A [`RingError::ShapeMismatch`].
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        RingError::ShapeMismatch {
            op,
            detail: detail.into(),
        }
    }
}

/// The result of ring-level code.
pub type Result<T> = std::result::Result<T, RingError>;
