//! The fixed round-robin schedule of an inner-layer pipeline's lanes.
//!
//! Lanes run concurrently on one party, but every party must issue its
//! round tags and its preprocessing requests in the same order, or the
//! messages and the dealer's material would not match. So exactly one
//! lane runs at a time: it holds the turn from the moment it wakes until
//! it has posted the sends of its next opening, then hands the turn to the
//! next unfinished lane (0, 1, ..., L - 1, 0, ...) and waits for it to come
//! back before reading the peers' messages. The order of everything a lane
//! does is then fixed by the program alone, whatever the timing; the
//! overlap comes from the messages: lane i's round is on the wire while
//! lanes i + 1, ... compute.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Whose turn it is among `L` lanes.
pub(crate) struct Turns {
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    turn: usize,
    finished: Vec<bool>,
}

impl Turns {
    /// `lanes` lanes (at least 1); lane 0 holds the first turn.
    pub(crate) fn new(lanes: usize) -> Turns {
        Turns {
            state: Mutex::new(State {
                turn: 0,
                finished: vec![false; lanes.max(1)],
            }),
            changed: Notify::new(),
        }
    }

    /// Waits until it is `lane`'s turn.
    pub(crate) async fn wait(&self, lane: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check: a hand-over between the check
            // and the await still wakes this lane.
            changed.as_mut().enable();
            if self.with_state(|s| s.turn == lane) {
                return;
            }
            changed.await;
        }
    }

    /// `lane` hands the turn to the next unfinished lane after it (itself
    /// when it is the only one left).
    pub(crate) fn pass(&self, lane: usize) {
        self.with_state(|s| {
            let n = s.finished.len();
            if let Some(next) = (1..=n).map(|d| (lane + d) % n).find(|&l| !s.finished[l]) {
                s.turn = next;
            }
        });
        self.changed.notify_waiters();
    }

    /// `lane` has finished (or failed): it leaves the rotation, and the
    /// turn moves on if it held it.
    pub(crate) fn finish(&self, lane: usize) {
        let held = self.with_state(|s| {
            s.finished[lane] = true;
            s.turn == lane
        });
        if held {
            self.pass(lane);
        }
    }

    /// `lane` hands the turn on and waits for it to come back: the step
    /// between posting an opening's sends and awaiting its messages.
    pub(crate) async fn hand_over(&self, lane: usize) {
        self.pass(lane);
        self.wait(lane).await;
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means a lane panicked while holding it; the
        // state (two plain fields) is still consistent.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }
}

/// Marks a lane finished when it ends, by return, error or cancellation.
pub(crate) struct LaneGuard<'a> {
    pub(crate) turns: &'a Turns,
    pub(crate) lane: usize,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        self.turns.finish(self.lane);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Three lanes that hand over at uneven points log their steps in the
    /// round-robin order, and a lane that finishes early leaves the
    /// rotation without stalling the others.
    #[test]
    fn lanes_run_in_round_robin_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let turns = Arc::new(Turns::new(3));
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = [3usize, 1, 2];
        rt.block_on(async {
            let lanes = (0..3).map(|lane| {
                let (turns, log) = (turns.clone(), log.clone());
                async move {
                    let _guard = LaneGuard {
                        turns: &turns,
                        lane,
                    };
                    turns.wait(lane).await;
                    for s in 0..steps[lane] {
                        log.lock().unwrap().push((s, lane));
                        // Lanes further on sleep less: without the turns
                        // they would overtake lane 0.
                        tokio::time::sleep(std::time::Duration::from_millis(3 - lane as u64)).await;
                        turns.hand_over(lane).await;
                    }
                }
            });
            let handles: Vec<_> = lanes.collect();
            futures_util::future::join_all(handles).await;
        });
        let got = log.lock().unwrap().clone();
        assert_eq!(got, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0)]);
    }
}
