//! Plan recording: the provider of a dry run, shared with the handle that
//! reads the plan.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::preprocess::{PlanRecorder, Provider, Request};

/// The plan being recorded by a dry-run session.
#[derive(Clone)]
pub struct PlanHandle(pub(super) Arc<Mutex<PlanRecorder>>);

impl PlanHandle {
    /// The plan recorded so far.
    pub fn plan(&self) -> crate::preprocess::Plan {
        self.0.lock().map(|r| r.plan().clone()).unwrap_or_default()
    }
}

pub(super) struct SharedRecorder(pub(super) Arc<Mutex<PlanRecorder>>);

impl Provider for SharedRecorder {
    fn next(&mut self, req: &Request) -> Result<crate::preprocess::Material> {
        self.0
            .lock()
            .map_err(|_| Error::Unsupported("plan recorder poisoned by a panic".into()))?
            .next(req)
    }
    fn label(&self) -> &'static str {
        "plan recorder (dry run)"
    }
    fn fork(&mut self, stream: u64) -> Result<Box<dyn Provider>> {
        PlanRecorder::fork_shared(&self.0, 0, stream)
    }
}
