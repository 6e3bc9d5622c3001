//! The outputs of a linked square ([`super::linked::square_linked`]):
//! truncations that rode on the square's opening, kept in the form P + L
//! of every dealer truncation so a later truncation group
//! ([`super::batch::TruncGroup::linked`]) can multiply them with no
//! opening of their own.

use crate::backend::{MpcSteps, TruncParts};
use crate::error::Result;
use crate::preprocess::LinkedItems;
use crate::ring::{Opened, Ring, RingTensor, Shape};
use crate::session::Session;
use crate::share::Shared;

/// A linked truncation after the square's round.
pub(crate) enum Linked<R: Ring> {
    /// Dealer truncation: the public masked value and this party's shares
    /// of r' and r_msb (the output is P + L, [`TruncParts`]).
    Opened {
        c: Opened<R>,
        r_shifted: RingTensor<R>,
        r_msb: RingTensor<R>,
        bits: u32,
    },
    /// The local-shift truncation ([`TruncMode::LocalShift`]): the value.
    Value(Shared<R>),
}

impl<R: Ring> Linked<R> {
    /// The truncation's view for products, `None` for a local shift.
    pub(crate) fn view(&self) -> Option<TruncParts<'_, R>> {
        match self {
            Linked::Opened {
                c,
                r_shifted,
                r_msb,
                bits,
            } => Some(TruncParts {
                c,
                r_shifted,
                r_msb,
                bits: *bits,
            }),
            Linked::Value(_) => None,
        }
    }

    /// The truncated value (m x + d) >> bits: floor or one more.
    ///
    /// Errors: backend errors.
    pub(crate) fn value(&self, sess: &Session) -> Result<Shared<R>> {
        match self {
            Linked::Opened {
                c,
                r_shifted,
                r_msb,
                bits,
            } => Ok(Shared::from_share(sess.backend().trunc_value(
                c,
                r_shifted.clone(),
                r_msb,
                *bits,
                sess.party() == 0,
            )?)),
            Linked::Value(v) => Ok(v.clone()),
        }
    }
}

/// The linked truncations of one [`square_linked`].
pub(crate) struct LinkedSquare<R: Ring> {
    /// Shape of the squared value (and of every link).
    pub(crate) shape: Shape,
    /// The linked truncations, in the order asked.
    pub(crate) links: Vec<Linked<R>>,
    /// The dealer's handle on the square's mask (dealer truncation only),
    /// for the truncation group that multiplies the links.
    pub(crate) items: Option<LinkedItems>,
}
