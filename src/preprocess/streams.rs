//! Providers with several dealer streams: the material of stream `s` is
//! what a dealer with master seed `master.derive(s)` would give, so a
//! program can start a fresh, reproducible stream at known points (each
//! training epoch) within one session.

use super::{Material, Provider, Request, SeededProvider};
use crate::error::{Error, Result};

/// Opens one party's provider for a dealer stream.
pub trait StreamSource: Send {
    /// This party's seeded provider for stream `stream` (for party 0 with
    /// its corrections from the online dealer).
    ///
    /// Errors: link errors of a remote dealer, dealer errors.
    fn open(&mut self, stream: u64) -> Result<SeededProvider>;
}

/// A [`Provider`] that serves the stream last begun with
/// [`Provider::begin_stream`].
pub struct StreamingProvider {
    source: Box<dyn StreamSource>,
    current: Option<SeededProvider>,
}

impl StreamingProvider {
    /// A provider with no stream begun yet.
    pub fn new(source: Box<dyn StreamSource>) -> Self {
        StreamingProvider {
            source,
            current: None,
        }
    }

    /// A provider positioned at the start of stream `stream`.
    ///
    /// Errors: as [`StreamSource::open`].
    pub fn starting_at(source: Box<dyn StreamSource>, stream: u64) -> Result<Self> {
        let mut p = Self::new(source);
        p.begin_stream(stream)?;
        Ok(p)
    }
}

impl Provider for StreamingProvider {
    fn next(&mut self, req: &Request) -> Result<Material> {
        match &mut self.current {
            Some(p) => p.next(req),
            None => Err(Error::Unsupported(format!(
                "request {req} before any dealer stream was begun"
            ))),
        }
    }

    fn label(&self) -> &'static str {
        "seeded, per stream (online dealer)"
    }

    fn begin_stream(&mut self, stream: u64) -> Result<()> {
        self.current = Some(self.source.open(stream)?);
        Ok(())
    }

    /// A fork of the current dealer stream: its material derives from
    /// that stream's seeds, and it keeps them after the next
    /// [`Provider::begin_stream`].
    fn fork(&mut self, stream: u64) -> Result<Box<dyn Provider>> {
        match &mut self.current {
            Some(p) => p.fork(stream),
            None => Err(Error::Unsupported(format!(
                "fork {stream:#x} before any dealer stream was begun"
            ))),
        }
    }
}
