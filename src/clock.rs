//! Clocks that drive batches.
//!
//! A batch `t` is cut when the clock reads at least `t`. Production jobs use the
//! [`SystemClock`]; tests use a [`ManualClock`] so that a hundred batches take milliseconds (as
//! Spark's own suites do with `ManualClock`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now", in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds.
    fn now_ms(&self) -> u64;
    /// How long a worker with nothing to do may sleep before looking at the clock again.
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(1)
    }
}

/// The wall clock.
///
/// # Examples
///
/// ```
/// use sluice::clock::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// It starts at 0, so with a 1 s batch interval the batches are 1000, 2000, … ms, as in
/// Spark's `ManualClock` suites.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::clock::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(clock.now_ms(), 3000);
/// clock.set_ms(10_000);
/// assert_eq!(clock.now_ms(), 10_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
    /// Sets the clock (never backwards).
    pub fn set_ms(&self, ms: u64) {
        self.now.fetch_max(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn poll_interval(&self) -> Duration {
        Duration::from_micros(200)
    }
}
