//! Telling a paused process from time passing.
//!
//! A scheduler sleeps until the earliest deadline. If it wakes much later than that, the process
//! (or the whole machine) did not run meanwhile: a laptop asleep, a stopped container, a long GC
//! or VM stall, or the store it needs was unreachable. The heartbeats that clients sent during
//! the pause are still queued (in the kernel's socket buffers, or retried by clients after a 503),
//! so acting on every deadline that passed would end everyone's session at once and then let
//! them all join again. Instead expiry waits `stall_grace_ms` after the pause, so the queued
//! heartbeats are served first and only sessions that really went away end.

/// How much later than planned a scheduler may wake before it counts as a pause (timer slack
/// and a busy runtime stay well below this).
pub(crate) const STALL_THRESHOLD_MS: u64 = 2_000;

/// What a scheduler remembers between wakes.
#[derive(Debug, Default)]
pub(crate) struct StallGuard {
    /// The time the scheduler last planned to wake at, if it planned one.
    planned: Option<u64>,
    /// The store was unreachable; it answers again now.
    outage: bool,
    /// No expiry before this time.
    held_until: u64,
}

impl StallGuard {
    /// The scheduler woke at `now`; `late_by` tells how late it woke for the time it planned
    /// (see [`StallGuard::planned`] and [`super::Clock::lateness`]). `Some(until)`: a pause was
    /// detected (now or earlier) and expiry must wait until `until`; `None`: go ahead.
    pub fn woke(&mut self, now: u64, late_by: u64, grace_ms: u64) -> Option<u64> {
        let paused = std::mem::take(&mut self.outage) || late_by > STALL_THRESHOLD_MS;
        if paused && grace_ms > 0 {
            self.held_until = self.held_until.max(now.saturating_add(grace_ms));
        }
        self.planned = None;
        (now < self.held_until).then_some(self.held_until)
    }

    /// The time the scheduler planned to wake at, if any.
    pub fn planned(&self) -> Option<u64> {
        self.planned
    }

    /// The store could not be reached (its outage is a pause as far as heartbeats go) and now
    /// answers again: expiry waits `grace_ms` from the next wake.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn outage(&mut self) {
        self.outage = true;
    }

    /// The scheduler is going to sleep until the deadline `at` (or until woken, if `None`).
    pub fn sleeping_until(&mut self, at: Option<u64>) {
        self.planned = at;
    }

    /// The scheduler is going to sleep until a hold ends. Waking late from that is not a new
    /// pause (a busy runtime must not chain holds); a pause during it shows at the next deadline.
    pub fn holding_until(&mut self, _until: u64) {
        self.planned = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waking_on_time_or_a_little_late_is_not_a_pause() {
        let mut g = StallGuard::default();
        assert_eq!(g.woke(1_000, 0, 5_000), None);
        g.sleeping_until(Some(10_000));
        assert_eq!(g.planned(), Some(10_000));
        assert_eq!(
            g.woke(12_000, STALL_THRESHOLD_MS, 5_000),
            None,
            "within the slack"
        );
        assert_eq!(g.planned(), None);
    }

    #[test]
    fn waking_late_holds_expiry_for_the_grace() {
        let mut g = StallGuard::default();
        assert_eq!(g.woke(30_000, 20_000, 5_000), Some(35_000));
        assert_eq!(
            g.woke(32_000, 0, 5_000),
            Some(35_000),
            "still held when woken early"
        );
        assert_eq!(g.woke(35_000, 0, 5_000), None, "then expiry goes ahead");
        // A grace of 0 turns the guard off.
        assert_eq!(g.woke(90_000, 50_000, 0), None);
    }

    #[test]
    fn waking_late_from_a_hold_does_not_chain_another() {
        let mut g = StallGuard::default();
        assert_eq!(g.woke(30_000, 20_000, 5_000), Some(35_000));
        g.holding_until(35_000);
        // Nothing is planned to be late for: a starved runtime that wakes 4 s after the hold
        // ended is not a new pause, and expiry goes ahead.
        assert_eq!(g.planned(), None);
        assert_eq!(g.woke(39_000, 0, 5_000), None);
    }

    #[test]
    fn an_outage_counts_as_a_pause_once_the_store_answers() {
        let mut g = StallGuard::default();
        g.outage();
        assert_eq!(g.woke(50_000, 0, 5_000), Some(55_000));
        assert_eq!(g.woke(55_000, 0, 5_000), None, "once");
    }
}
