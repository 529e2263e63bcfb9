//! Time for the engine, injectable so expiry tests run in milliseconds.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// A future that resolves when the clock reaches a time.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Waits for `sleep` (a scheduler's next deadline; none: no deadline) or for `wake`, whichever
/// comes first.
pub(crate) async fn sleep_or_wake(sleep: Option<Sleep>, wake: &Notify) {
    match sleep {
        Some(sleep) => {
            tokio::select! {
                _ = sleep => {}
                _ = wake.notified() => {}
            }
        }
        None => wake.notified().await,
    }
}

/// A source of "now" (milliseconds since the Unix epoch) and of sleeping until a time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Resolves once [`Clock::now_ms`] is at least `at_ms`.
    fn sleep_until(&self, at_ms: u64) -> Sleep;

    /// How much later than `planned_ms` a sleeper that asked for it woke, if it woke at `now_ms`:
    /// time during which the process did not run (see the engine's pause handling). For a real
    /// clock that is simply `now_ms - planned_ms`.
    fn lateness(&self, planned_ms: u64, now_ms: u64) -> u64 {
        now_ms.saturating_sub(planned_ms)
    }
}

/// The real clock. Monotonic: it reads the wall clock once at creation and advances with
/// [`Instant`] after that, so a wall-clock jump on the server neither expires nor revives sessions.
#[derive(Debug, Clone)]
pub struct SystemClock {
    epoch_ms_at_start: u64,
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        let epoch_ms_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        SystemClock {
            epoch_ms_at_start,
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms_at_start + self.start.elapsed().as_millis() as u64
    }

    fn sleep_until(&self, at_ms: u64) -> Sleep {
        let delay = at_ms.saturating_sub(self.now_ms());
        Box::pin(tokio::time::sleep(Duration::from_millis(delay)))
    }
}

/// A clock that moves only when told to. Sleepers wake when [`ManualClock::advance`] or
/// [`ManualClock::set`] passes their time.
///
/// ```
/// use presence_core::server::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: AtomicU64,
    moved: Notify,
    /// The last move was [`ManualClock::pause`]: sleepers woke late, not on time.
    paused: std::sync::atomic::AtomicBool,
}

impl ManualClock {
    /// A clock that reads `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                now: AtomicU64::new(start_ms),
                moved: Notify::new(),
                paused: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Moves the clock forward by `ms`, as time passing while the process runs: whoever slept
    /// until a time in between counts as having woken on time.
    pub fn advance(&self, ms: u64) {
        self.inner.paused.store(false, Ordering::SeqCst);
        self.inner.now.fetch_add(ms, Ordering::SeqCst);
        self.inner.moved.notify_waiters();
    }

    /// Sets the clock to `ms` (forward or back, as a jumpy wall clock would).
    pub fn set(&self, ms: u64) {
        self.inner.paused.store(false, Ordering::SeqCst);
        self.inner.now.store(ms, Ordering::SeqCst);
        self.inner.moved.notify_waiters();
    }

    /// Moves the clock forward by `ms` as time passing while the process was stopped (a laptop
    /// asleep, SIGSTOP, a VM stall): sleepers wake late, and see it.
    pub fn pause(&self, ms: u64) {
        self.inner.paused.store(true, Ordering::SeqCst);
        self.inner.now.fetch_add(ms, Ordering::SeqCst);
        self.inner.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.inner.now.load(Ordering::SeqCst)
    }

    fn lateness(&self, planned_ms: u64, now_ms: u64) -> u64 {
        if self.inner.paused.load(Ordering::SeqCst) {
            now_ms.saturating_sub(planned_ms)
        } else {
            0
        }
    }

    fn sleep_until(&self, at_ms: u64) -> Sleep {
        let inner = self.inner.clone();
        Box::pin(async move {
            loop {
                let moved = inner.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if inner.now.load(Ordering::SeqCst) >= at_ms {
                    return;
                }
                moved.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_wakes_only_when_time_passes() {
        let clock = ManualClock::new(0);
        let mut sleep = clock.sleep_until(100);
        let waker = futures_noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(99);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(1);
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn system_clock_is_near_the_wall_clock() {
        let clock = SystemClock::default();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(clock.now_ms().abs_diff(wall) < 1_000);
    }

    #[test]
    fn only_a_pause_makes_sleepers_late() {
        let clock = ManualClock::new(1_000);
        clock.advance(10_000);
        assert_eq!(
            clock.lateness(2_000, clock.now_ms()),
            0,
            "advancing is time running"
        );
        clock.pause(30_000);
        assert_eq!(clock.lateness(2_000, clock.now_ms()), 39_000);
        clock.advance(1);
        assert_eq!(clock.lateness(2_000, clock.now_ms()), 0);
        assert_eq!(SystemClock::default().lateness(5, 12), 7);
    }

    fn futures_noop_waker() -> std::task::Waker {
        std::task::Waker::noop().clone()
    }
}
