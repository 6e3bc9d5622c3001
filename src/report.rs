//! What a run reports besides its result: named phases with their wall
//! time and traffic.

/// Time and traffic of one named phase of a job at one party.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPhase {
    /// "load", "inference", "epoch 1", ...
    pub label: String,
    /// Wall time.
    pub time: std::time::Duration,
    /// This party's traffic during the phase.
    pub link: spindle_transport::LinkStats,
}
