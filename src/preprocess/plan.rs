//! The preprocessing plan and the dry-run recorder that produces it.

use serde::{Deserialize, Serialize};

use super::correlation::zero_material;
use super::{Material, Provider, Request};
use crate::error::Result;

/// The requests of one online computation, in consumption order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Every request, in the order the online phase will make it.
    pub requests: Vec<Request>,
    /// The requests of each forked session ([`crate::Session::fork`]), in
    /// the order the forks were made (a fork after its parent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forks: Vec<ForkPlan>,
}

/// The requests of one forked session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkPlan {
    /// The fork's stream id ([`crate::Session::stream_id`]).
    pub stream: u64,
    /// The stream it was forked from (0: the root session).
    pub parent: u64,
    /// Its requests, in its own order.
    pub requests: Vec<Request>,
}

impl Plan {
    /// The root's requests, then every fork's.
    pub fn all_requests(&self) -> impl Iterator<Item = &Request> {
        self.requests
            .iter()
            .chain(self.forks.iter().flat_map(|f| &f.requests))
    }

    /// Total ring elements of material (all parties' shares have this size each).
    pub fn elements(&self) -> Result<usize> {
        self.all_requests().map(Request::elements).sum()
    }

    /// Arithmetic Beaver products in the plan (triples, static-operand
    /// triples, squares) and the scalar multiplications they stand for
    /// ([`crate::backend::BilinearOp::multiplications`]); binary AND gates
    /// are not counted.
    ///
    /// Errors: a request whose shapes do not fit its op.
    pub fn beaver_products(&self) -> Result<(usize, usize)> {
        let mut products = 0;
        let mut mults = 0;
        for r in self.all_requests() {
            match r {
                Request::Triple { op, lhs, rhs, .. }
                | Request::StaticTriple { op, lhs, rhs, .. } => {
                    products += 1;
                    mults += op.multiplications(lhs, rhs)?;
                }
                Request::Square { shape, .. } | Request::SquareLinked { shape, .. } => {
                    products += 1;
                    mults += shape.numel();
                }
                _ => {}
            }
        }
        Ok((products, mults))
    }
}

/// A provider for dry runs: records every request and returns zero material
/// of the right shapes, so the program runs through without a dealer.
#[derive(Debug, Default)]
pub struct PlanRecorder {
    plan: Plan,
}

/// The recorder of a forked session's requests: into the shared plan's
/// entry for its stream.
struct ForkRecorder {
    plan: std::sync::Arc<std::sync::Mutex<PlanRecorder>>,
    stream: u64,
}

impl Provider for ForkRecorder {
    fn next(&mut self, req: &Request) -> Result<Material> {
        let m = zero_material(req)?;
        let mut rec = self
            .plan
            .lock()
            .map_err(|_| crate::Error::Unsupported("plan recorder poisoned by a panic".into()))?;
        let forks = &mut rec.plan.forks;
        // Recent forks are at the end.
        match forks.iter_mut().rev().find(|f| f.stream == self.stream) {
            Some(f) => f.requests.push(req.clone()),
            None => {
                return Err(crate::Error::Unsupported(format!(
                    "fork stream {:#x} is not in the plan",
                    self.stream
                )))
            }
        }
        Ok(Material(m))
    }
    fn label(&self) -> &'static str {
        "plan recorder of a fork (dry run)"
    }
    fn fork(&mut self, stream: u64) -> Result<Box<dyn Provider>> {
        PlanRecorder::fork_shared(&self.plan, self.stream, stream)
    }
}

impl PlanRecorder {
    /// The plan recorded so far.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// The recorded plan, consuming the recorder.
    pub fn into_plan(self) -> Plan {
        self.plan
    }

    /// The recorder of stream `stream`, forked from stream `parent`, of
    /// the recorder `shared`: it records into `shared`'s plan, under
    /// [`Plan::forks`].
    ///
    /// Errors: [`crate::Error::Unsupported`] for a recorder poisoned by a panic.
    pub fn fork_shared(
        shared: &std::sync::Arc<std::sync::Mutex<PlanRecorder>>,
        parent: u64,
        stream: u64,
    ) -> Result<Box<dyn Provider>> {
        shared
            .lock()
            .map_err(|_| crate::Error::Unsupported("plan recorder poisoned by a panic".into()))?
            .plan
            .forks
            .push(ForkPlan {
                stream,
                parent,
                requests: vec![],
            });
        Ok(Box::new(ForkRecorder {
            plan: shared.clone(),
            stream,
        }))
    }
}

impl Provider for PlanRecorder {
    fn next(&mut self, req: &Request) -> Result<Material> {
        let m = zero_material(req)?;
        self.plan.requests.push(req.clone());
        Ok(Material(m))
    }
    fn label(&self) -> &'static str {
        "plan recorder (dry run)"
    }
}
