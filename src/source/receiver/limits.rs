//! The receiver's limits: the memory its buffer may hold ([`BufferBound`]) and the rate at
//! which it takes lines (Spark's `spark.streaming.receiver.maxRate`, or the rate backpressure
//! sets).
//!
//! Invariants:
//! - The buffer holds at most the bound in force of lines (their text plus a `String` each),
//!   except that one hand-over (the lines of one read) always fits into an empty buffer, so a
//!   single long line never stalls the receiver.
//! - The bound in force is fixed, or follows the job: twice what the job has shown it processes
//!   in one batch interval, within a floor and a ceiling ([`BufferBound::FollowJob`]). Either
//!   way it is finite, so memory stays bounded under any overload.
//! - A receiver that finds no room, or is ahead of its rate, **waits** and stops reading: the
//!   kernel's receive buffer fills, TCP's window closes, and the sender is held back. Nothing
//!   is dropped; the time it waited is counted and reported with the next batch
//!   ([`ReceiverInput::held_back_ms`](crate::listener::ReceiverInput)).
//! - A stopping job never waits: the last lines read go into the last batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Shared;
use crate::retry::sleep_unless;

/// How much memory a receiver's lines may hold before a batch takes them.
///
/// When the buffer is full the receiver stops reading and TCP holds the sender back: a job fed
/// faster than it processes stays within the bound and loses nothing, and each batch holds at
/// most the bound in force.
///
/// # Examples
///
/// ```
/// use sluice::source::{BufferBound, SocketOptions};
/// assert!(matches!(SocketOptions::default().buffer, BufferBound::FollowJob { .. }));
/// let fixed = SocketOptions::default().max_buffered_bytes(16 << 20);
/// assert_eq!(fixed.buffer, BufferBound::Fixed(16 << 20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferBound {
    /// At most this many bytes, whatever the job does (`--receiver-buffer SIZE`).
    Fixed(usize),
    /// Twice what the job has shown it processes in one batch interval (the lines' bytes of a
    /// batch over its processing time, times the interval), never below `floor` (the bound
    /// until a batch has been measured) nor above `ceiling`. A job that keeps up is never held
    /// back: its batches take at most one interval, so the bound is at least twice a batch.
    /// A job that does not is held to about two intervals of its own speed per batch, which
    /// does not grow with the overload. (The default, `--receiver-buffer auto`.)
    FollowJob {
        /// The bound before the first measured batch, and the least it becomes.
        floor: usize,
        /// The most it becomes.
        ceiling: usize,
    },
}

impl Default for BufferBound {
    /// Follows the job from 128 MiB up to an eighth of the machine's memory (at most 4 GiB).
    fn default() -> Self {
        let floor = 128 << 20;
        let ceiling = physical_memory().map_or(1 << 30, |m| (m / 8).min(4 << 30));
        BufferBound::FollowJob {
            floor,
            ceiling: ceiling.max(floor),
        }
    }
}

/// The machine's memory in bytes, from `/proc/meminfo` (`None` elsewhere).
fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: usize = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// A batch says little about the job's speed below these: too few bytes (1 MiB, or a quarter
/// of the floor if that is less) or too short a time.
const MEASURED_BYTES: u64 = 1 << 20;
const MEASURED_TIME: Duration = Duration::from_millis(2);

/// The bound in force (see [`BufferBound`]), shared by the receiving thread and the batches.
#[derive(Debug)]
pub(crate) struct Bound {
    rule: BufferBound,
    current: AtomicUsize,
}

impl Bound {
    pub(crate) fn new(rule: BufferBound) -> Self {
        let current = match rule {
            BufferBound::Fixed(bytes) => bytes,
            BufferBound::FollowJob { floor, .. } => floor,
        };
        Bound {
            rule,
            current: AtomicUsize::new(current),
        }
    }

    /// The bound in force, bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// After a batch that took `bytes` of lines and `processing` to process, at `interval`:
    /// the bound following the job moves to twice its speed times the interval.
    pub(crate) fn observe(&self, bytes: u64, processing: Duration, interval: Duration) {
        let BufferBound::FollowJob { floor, ceiling } = self.rule else {
            return;
        };
        if bytes < MEASURED_BYTES.min(floor as u64 / 4) || processing < MEASURED_TIME {
            return;
        }
        let per_second = bytes as f64 / processing.as_secs_f64();
        let bound = (2.0 * per_second * interval.as_secs_f64()) as usize;
        self.current
            .store(bound.clamp(floor, ceiling), Ordering::Relaxed);
    }
}

/// Memory a line holds in the buffer: its text and its `String`.
pub(crate) fn line_bytes(line: &String) -> usize {
    line.capacity() + std::mem::size_of::<String>()
}

/// Paces the receiver at a rate in records/s: `None` takes lines as they come.
///
/// The rate in force is the lower of the configured maximum and the backpressure estimate.
/// Pacing is strict: over any stretch, lines taken ≤ rate × time + one hand-over.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    /// The configured maximum (`SocketOptions::max_rate`).
    pub(crate) max: Option<u64>,
    /// The backpressure estimate (or its initial rate), once there is one.
    pub(crate) pressure: Option<f64>,
    /// When the next line may be taken.
    next: Option<Instant>,
}

impl RateLimit {
    /// A limit of `max` records/s and, until backpressure has an estimate, `initial`.
    pub(crate) fn new(max: Option<u64>, initial: Option<u64>) -> Self {
        RateLimit {
            max,
            pressure: initial.map(|r| r as f64),
            next: None,
        }
    }

    /// The rate in force, records/s.
    pub(crate) fn rate(&self) -> Option<f64> {
        match (self.max.map(|m| m as f64), self.pressure) {
            (Some(m), Some(p)) => Some(m.min(p)),
            (m, p) => m.or(p),
        }
        .map(|r| r.max(1.0))
    }

    /// Books `lines` taken at `now`: how long to wait before taking them.
    pub(crate) fn reserve(&mut self, lines: usize, now: Instant) -> Duration {
        let Some(rate) = self.rate() else {
            self.next = None;
            return Duration::ZERO;
        };
        let start = self.next.map_or(now, |n| n.max(now));
        self.next = Some(start + Duration::from_secs_f64(lines as f64 / rate));
        start - now
    }
}

/// With a rate in force, the most lines one hand-over should hold: 50 ms worth, so that
/// pacing is smooth (a hand-over is taken whole, and waits only delay the next one).
pub(crate) fn hand_over_lines(shared: &Shared) -> Option<usize> {
    let rate = shared
        .rate
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .rate()?;
    Some(((rate / 20.0) as usize).max(1))
}

/// Waits until `bytes` more fit into the buffer and the rate allows `lines` more; adds the
/// time waited to the batch's held-back time. Returns at once when the job stops.
pub(crate) fn wait_for_room(shared: &Shared, lines: usize, bytes: usize) {
    let stop = || shared.stop.load(Ordering::SeqCst);
    let started = Instant::now();
    let pace = shared
        .rate
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .reserve(lines, started);
    if !pace.is_zero() {
        sleep_unless(pace, &stop);
    }
    let mut buffer = shared.lines.lock().unwrap_or_else(|p| p.into_inner());
    while buffer.bytes > 0 && buffer.bytes + bytes > shared.bound.bytes() && !stop() {
        buffer = shared
            .room
            .wait_timeout(buffer, Duration::from_millis(50))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    drop(buffer);
    let waited = started.elapsed();
    if waited >= Duration::from_millis(1) {
        shared
            .held_back_ns
            .fetch_add(waited.as_nanos() as u64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_fixed_bound_stays_put() {
        let bound = Bound::new(BufferBound::Fixed(16 * MIB));
        bound.observe(1 << 30, Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(bound.bytes(), 16 * MIB);
    }

    #[test]
    fn a_following_bound_is_twice_what_the_job_processes_per_interval() {
        let (floor, ceiling) = (128 * MIB, 4096 * MIB);
        let bound = Bound::new(BufferBound::FollowJob { floor, ceiling });
        assert_eq!(bound.bytes(), floor);
        // 150 MiB processed in 0.5 s at 1 s batches: 300 MiB/s, so 600 MiB.
        bound.observe(
            150 * MIB as u64,
            Duration::from_millis(500),
            Duration::from_secs(1),
        );
        assert_eq!(bound.bytes(), 600 * MIB);
        // A job that keeps up (a batch within its interval) is never held back: the bound is
        // at least twice its batch.
        bound.observe(
            500 * MIB as u64,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(bound.bytes(), 1000 * MIB);
        // Overloaded (a batch takes 4 intervals): about two intervals of its speed, not more.
        bound.observe(
            1000 * MIB as u64,
            Duration::from_secs(4),
            Duration::from_secs(1),
        );
        assert_eq!(bound.bytes(), 500 * MIB);
        // Within the floor and the ceiling; tiny batches say nothing.
        bound.observe(
            10 * MIB as u64,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(bound.bytes(), floor);
        bound.observe(1 << 40, Duration::from_millis(20), Duration::from_secs(10));
        assert_eq!(bound.bytes(), ceiling);
        bound.observe(1000, Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(bound.bytes(), ceiling);
    }

    #[test]
    fn the_default_follows_the_job_within_the_machine() {
        let BufferBound::FollowJob { floor, ceiling } = BufferBound::default() else {
            panic!("the default follows the job");
        };
        assert_eq!(floor, 128 * MIB);
        assert!((floor..=4096 * MIB).contains(&ceiling));
    }

    #[test]
    fn no_rate_never_waits() {
        let mut r = RateLimit::default();
        assert_eq!(r.reserve(1_000_000, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn the_lower_of_max_and_pressure_paces() {
        let mut r = RateLimit::new(Some(1000), Some(500));
        assert_eq!(r.rate(), Some(500.0));
        let now = Instant::now();
        assert_eq!(r.reserve(250, now), Duration::ZERO);
        // 250 lines at 500/s booked half a second.
        assert_eq!(r.reserve(10, now), Duration::from_millis(500));
        r.pressure = Some(5000.0);
        assert_eq!(r.rate(), Some(1000.0));
    }

    #[test]
    fn pacing_is_strict_over_any_stretch() {
        // Lines taken by t ≤ rate × t + one hand-over, whatever the sizes.
        let mut r = RateLimit::new(Some(2000), None);
        let t0 = Instant::now();
        let mut clock = t0;
        let mut taken = 0u64;
        for i in 0..500 {
            let lines = 1 + (i * 37) % 300;
            clock += r.reserve(lines, clock);
            taken += lines as u64;
            let allowed = 2000.0 * (clock - t0).as_secs_f64() + lines as f64;
            assert!(taken as f64 <= allowed + 1e-6, "{taken} > {allowed}");
        }
    }
}
