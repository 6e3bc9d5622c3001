//! A timeline of the online phase (`--trace FILE`): per party, one track
//! per stage (compute: backend ops; protocol: the protocols and layers
//! that ran; send and receive per peer), written as Chrome trace-event
//! JSON (opens in Perfetto and chrome://tracing), with a one-line summary
//! of each stage's busy time over the wall time.
//!
//! Recording is per party task: [`traced`] scopes a [`PartyTrace`] over a
//! party's program (a tokio task-local, so every fork of the party's
//! session, run in the same task, records into it), and [`span`] returns a
//! guard that records its interval when dropped, or nothing outside a
//! traced scope (one task-local lookup: the cost when tracing is off).
//! Spans of concurrent forks on one track may overlap in time; the writer
//! merges them, so each track holds non-overlapping spans (a merged span
//! is named after its first and counts the others).

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The stage a span belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Track {
    /// Share arithmetic on the backend (one span per backend op).
    Compute,
    /// The protocols and layers of one stream of the party's session (the
    /// root's id is 0; each fork, e.g. a micro-batch, has its own track).
    Protocol(u64),
    /// Handing a round's message to peer `p`'s link (the asynchronous
    /// send: the time to queue it, with its bytes; not its time on the wire).
    Send(usize),
    /// Waiting for peer `p`'s message of a round, in stream `s` (the
    /// root's id is 0; each fork has its own track, so the waits of
    /// micro-batches in flight show side by side).
    Recv(usize, u64),
}

impl Track {
    /// The Chrome trace thread id and name of this track; `forks` numbers
    /// the protocol tracks of forked streams in order of appearance.
    fn tid_name(self, forks: &[u64]) -> (usize, String) {
        match self {
            Track::Compute => (0, "compute".into()),
            Track::Protocol(0) => (1, "protocol".into()),
            Track::Protocol(s) => {
                let k = forks.iter().position(|&f| f == s).unwrap_or(forks.len());
                (1000 + k, format!("protocol (fork {k})"))
            }
            Track::Send(p) => (2 + 2 * p, format!("send to party {p}")),
            Track::Recv(p, 0) => (3 + 2 * p, format!("receive from party {p}")),
            Track::Recv(p, s) => {
                let k = forks.iter().position(|&f| f == s).unwrap_or(forks.len());
                (
                    2000 + 64 * k + p,
                    format!("receive from party {p} (fork {k})"),
                )
            }
        }
    }
}

/// One recorded interval.
#[derive(Clone, Debug)]
struct Event {
    track: Track,
    name: Cow<'static, str>,
    start: Duration,
    dur: Duration,
    bytes: Option<u64>,
}

/// One party's recorded spans, times from a common origin.
#[derive(Debug)]
pub struct PartyTrace {
    party: usize,
    origin: Instant,
    events: Mutex<Vec<Event>>,
}

impl PartyTrace {
    /// An empty trace of party `party`, times measured from `origin`
    /// (the same for every party of one run).
    pub fn new(party: usize, origin: Instant) -> Arc<Self> {
        Arc::new(PartyTrace {
            party,
            origin,
            events: Mutex::new(Vec::new()),
        })
    }

    fn record(&self, e: Event) {
        if let Ok(mut v) = self.events.lock() {
            v.push(e);
        }
    }

    /// Spans recorded so far.
    pub fn len(&self) -> usize {
        self.events.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spans of each track, sorted and merged where they overlap.
    fn merged(&self) -> Vec<(Track, Vec<Event>)> {
        let mut events = self.events.lock().map(|v| v.clone()).unwrap_or_default();
        events.sort_by_key(|e| (e.track, e.start));
        let mut out: Vec<(Track, Vec<Event>)> = Vec::new();
        let mut extra = 0usize;
        for e in events {
            match out.last_mut() {
                Some((t, spans)) if *t == e.track => {
                    let last = spans.last_mut().expect("a track has spans");
                    if e.start < last.start + last.dur {
                        // Overlaps (concurrent forks): one busy span.
                        let end = (last.start + last.dur).max(e.start + e.dur);
                        last.dur = end - last.start;
                        last.bytes = match (last.bytes, e.bytes) {
                            (None, None) => None,
                            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                        };
                        extra += 1;
                        let base = last.name.split(" (+").next().unwrap_or("").to_string();
                        last.name = format!("{base} (+{extra})").into();
                    } else {
                        extra = 0;
                        spans.push(e);
                    }
                }
                _ => {
                    extra = 0;
                    out.push((e.track, vec![e]));
                }
            }
        }
        out
    }
}

tokio::task_local! {
    static CURRENT: Arc<PartyTrace>;
}

/// Runs `f` recording into `trace` (nothing recorded with `None`).
pub async fn traced<F: Future>(trace: Option<Arc<PartyTrace>>, f: F) -> F::Output {
    match trace {
        Some(t) => CURRENT.scope(t, f).await,
        None => f.await,
    }
}

/// The trace of the current party's task, if it is traced: handed to work
/// that runs off the task (the compute stage's worker threads).
pub(crate) fn current() -> Option<Arc<PartyTrace>> {
    CURRENT.try_with(|t| t.clone()).ok()
}

/// Runs `f` on this thread recording into `trace` (nothing with `None`):
/// the synchronous twin of [`traced`], for a worker thread running a job
/// of a traced task.
pub(crate) fn traced_sync<T>(trace: Option<Arc<PartyTrace>>, f: impl FnOnce() -> T) -> T {
    match trace {
        Some(t) => CURRENT.sync_scope(t, f),
        None => f(),
    }
}

/// A span being timed; recorded when dropped.
pub struct Span {
    trace: Arc<PartyTrace>,
    track: Track,
    name: Cow<'static, str>,
    start: Instant,
    bytes: Option<u64>,
}

impl Span {
    /// Attaches a byte count (a message's size).
    pub fn bytes(mut self, n: u64) -> Self {
        self.bytes = Some(n);
        self
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let now = Instant::now();
        self.trace.record(Event {
            track: self.track,
            name: std::mem::take(&mut self.name),
            start: self.start.saturating_duration_since(self.trace.origin),
            dur: now.saturating_duration_since(self.start),
            bytes: self.bytes,
        });
    }
}

/// Starts a span on `track` named `name` in the current party's trace;
/// `None` outside a [`traced`] scope.
pub fn span(track: Track, name: impl Into<Cow<'static, str>>) -> Option<Span> {
    CURRENT
        .try_with(|t| Span {
            trace: t.clone(),
            track,
            name: name.into(),
            start: Instant::now(),
            bytes: None,
        })
        .ok()
}

/// Awaits `f` inside a span named `name` (a layer or a protocol step) on
/// the protocol track of stream `stream` ([`crate::Session::stream_id`]).
pub async fn in_span<F: Future>(
    stream: u64,
    name: impl Into<Cow<'static, str>>,
    f: F,
) -> F::Output {
    let _span = span(Track::Protocol(stream), name);
    f.await
}

/// A compute span for the backend op called by `call` (the dispatch
/// expression, `"be.mul(a, b)"`); the name is worked out only inside a
/// traced scope, so an untraced run pays one task-local lookup per op.
pub fn op_span(call: &'static str) -> Option<Span> {
    CURRENT
        .try_with(|t| Span {
            trace: t.clone(),
            track: Track::Compute,
            name: Cow::Borrowed(op_name(call)),
            start: Instant::now(),
            bytes: None,
        })
        .ok()
}

/// The name of a backend op from the dispatch expression that calls it
/// (`"be.mul(a, b)"` gives `"mul"`).
pub fn op_name(call: &'static str) -> &'static str {
    let after = call.split_once('.').map_or(call, |(_, r)| r);
    after.split('(').next().unwrap_or(after).trim()
}

/// Every party's trace of one run.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// One per party.
    pub parties: Vec<Arc<PartyTrace>>,
}

impl Trace {
    /// Chrome trace-event JSON: one process per party, one thread per
    /// track, complete ("X") events in microseconds with the bytes of
    /// messages as arguments.
    pub fn to_chrome_json(&self) -> serde_json::Value {
        let mut events = Vec::new();
        for p in &self.parties {
            let merged = p.merged();
            // Forked streams' tracks in order of their first span.
            let mut forks: Vec<(Duration, u64)> = merged
                .iter()
                .filter_map(|(t, spans)| match t {
                    Track::Protocol(s) | Track::Recv(_, s) if *s != 0 => Some((spans[0].start, *s)),
                    _ => None,
                })
                .collect();
            forks.sort_unstable();
            let mut seen = std::collections::HashSet::new();
            let forks: Vec<u64> = forks
                .into_iter()
                .map(|(_, s)| s)
                .filter(|s| seen.insert(*s))
                .collect();
            events.push(serde_json::json!({
                "name": "process_name", "ph": "M", "pid": p.party, "tid": 0,
                "args": { "name": format!("party {}", p.party) }
            }));
            for (track, spans) in merged {
                let (tid, tname) = track.tid_name(&forks);
                events.push(serde_json::json!({
                    "name": "thread_name", "ph": "M", "pid": p.party, "tid": tid,
                    "args": { "name": tname }
                }));
                for s in spans {
                    let mut e = serde_json::json!({
                        "name": s.name, "ph": "X", "pid": p.party, "tid": tid,
                        "ts": s.start.as_secs_f64() * 1e6,
                        "dur": s.dur.as_secs_f64() * 1e6,
                    });
                    if let Some(b) = s.bytes {
                        e["args"] = serde_json::json!({ "bytes": b });
                    }
                    events.push(e);
                }
            }
        }
        serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" })
    }

    /// Writes [`Trace::to_chrome_json`] to `path`.
    ///
    /// Errors: [`Error::Io`] if the file cannot be written.
    pub fn write(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_vec(&self.to_chrome_json()).map_err(|e| Error::Format {
            what: "trace".into(),
            detail: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// One line per party: each stage's busy time (the union of the
    /// spans of all its tracks: every peer and every fork) as a share of
    /// the party's traced wall time (first span's start to last span's
    /// end): how much of the run each stage kept busy, and so the overlap
    /// the pipeline reached.
    pub fn summary(&self) -> Vec<String> {
        self.parties
            .iter()
            .map(|p| {
                let merged = p.merged();
                let all = merged.iter().flat_map(|(_, s)| s);
                let first = all.clone().map(|s| s.start).min().unwrap_or_default();
                let last = all.map(|s| s.start + s.dur).max().unwrap_or_default();
                let wall = last.saturating_sub(first);
                let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64().max(1e-9);
                let stage = |t: &Track| match t {
                    Track::Compute => 0,
                    Track::Protocol(_) => 1,
                    Track::Send(_) => 2,
                    Track::Recv(..) => 3,
                };
                let busy: Vec<Duration> = (0..4)
                    .map(|k| {
                        let mut iv: Vec<(Duration, Duration)> = merged
                            .iter()
                            .filter(|(t, _)| stage(t) == k)
                            .flat_map(|(_, spans)| spans.iter().map(|s| (s.start, s.start + s.dur)))
                            .collect();
                        iv.sort_unstable();
                        union_length(&iv)
                    })
                    .collect();
                format!(
                    "party {}: compute {:.0}%, protocol {:.0}%, send {:.0}%, receive {:.0}% of {:.3} s",
                    p.party,
                    pct(busy[0]),
                    pct(busy[1]),
                    pct(busy[2]),
                    pct(busy[3]),
                    wall.as_secs_f64()
                )
            })
            .collect()
    }
}

/// Total length of the union of sorted intervals.
fn union_length(iv: &[(Duration, Duration)]) -> Duration {
    let mut total = Duration::ZERO;
    let mut cur: Option<(Duration, Duration)> = None;
    for &(a, b) in iv {
        cur = match cur {
            Some((s, e)) if a <= e => Some((s, e.max(b))),
            Some((s, e)) => {
                total += e - s;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    total + cur.map_or(Duration::ZERO, |(s, e)| e - s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spans record only inside a traced scope; overlapping spans of one
    /// track merge into one; the JSON has one process per party and a
    /// thread per track.
    #[test]
    fn spans_merge_per_track_and_write_chrome_json() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert!(span(Track::Compute, "outside").is_none());
        let t = PartyTrace::new(1, Instant::now());
        rt.block_on(traced(Some(t.clone()), async {
            let a = span(Track::Recv(0, 0), "round 1");
            let b = span(Track::Recv(0, 0), "round 2").map(|s| s.bytes(64));
            drop(a);
            drop(b);
            let _c = span(Track::Compute, op_name("be.mul(a, b)"));
        }));
        assert_eq!(t.len(), 3);
        let merged = t.merged();
        assert_eq!(merged.len(), 2, "{merged:?}");
        let recv = &merged
            .iter()
            .find(|(k, _)| *k == Track::Recv(0, 0))
            .unwrap()
            .1;
        assert_eq!(recv.len(), 1);
        assert_eq!(recv[0].name, "round 1 (+1)");
        let trace = Trace { parties: vec![t] };
        let json = trace.to_chrome_json();
        let events = json["traceEvents"].as_array().unwrap();
        assert!(events
            .iter()
            .any(|e| e["ph"] == "X" && e["name"] == "mul" && e["pid"] == 1));
        assert_eq!(trace.summary().len(), 1);
    }
}
