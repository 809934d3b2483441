//! Clocks that drive batches.
//!
//! A batch `t` is cut when the clock reads at least `t`. Production jobs use the
//! [`SystemClock`]; tests use a [`ManualClock`] so that a hundred batches take milliseconds (as
//! Spark's own suites do with `ManualClock`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The wall clock, read once and then advanced by the monotonic clock.
///
/// Batches are cut on the monotonic clock, so a wall clock that jumps while the job runs (set
/// by hand, or stepped by NTP) neither stalls the batches (a jump back) nor makes them run one
/// after another to catch up (a jump forward); the batches keep their interval and their times
/// go on from where they were. A jump of more than a second is reported once, with its size.
/// (A restart reads the wall clock again; one behind its checkpoint's batches is handled
/// there.)
///
/// # Examples
///
/// ```
/// use sluice::clock::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The wall clock's reading when the process first asked, and the monotonic instant of it.
static ANCHOR: std::sync::OnceLock<(u64, std::time::Instant)> = std::sync::OnceLock::new();
/// The wall clock's last reported distance from the job's, in ms.
static REPORTED_DRIFT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let (wall0, mono0) = *ANCHOR.get_or_init(|| (wall_ms(), std::time::Instant::now()));
        let now = wall0 + mono0.elapsed().as_millis() as u64;
        let drift = wall_ms() as i64 - now as i64;
        let reported = REPORTED_DRIFT.load(Ordering::Relaxed);
        if (drift - reported).abs() > 1000
            && REPORTED_DRIFT
                .compare_exchange(reported, drift, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "the wall clock jumped {} by {}: batches keep their interval on the job's clock, whose times now differ from the wall clock's by that much",
                if drift > reported { "forward" } else { "back" },
                humantime::format_duration(Duration::from_millis(
                    (drift - reported).unsigned_abs()
                ))
            );
        }
        now
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
