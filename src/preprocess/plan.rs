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
}

impl Plan {
    /// Total ring elements of material (all parties' shares have this size each).
    pub fn elements(&self) -> Result<usize> {
        self.requests.iter().map(Request::elements).sum()
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
        for r in &self.requests {
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

impl PlanRecorder {
    /// The plan recorded so far.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// The recorded plan, consuming the recorder.
    pub fn into_plan(self) -> Plan {
        self.plan
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
