//! The receiver's limits: the memory its buffer may hold and the rate at which it takes lines
//! (Spark's `spark.streaming.receiver.maxRate`, or the rate backpressure sets).
//!
//! Invariants:
//! - The buffer holds at most `max_buffered_bytes` of lines (their text plus a `String` each),
//!   except that one hand-over (the lines of one read) always fits into an empty buffer, so a
//!   single long line never stalls the receiver.
//! - A receiver that finds no room, or is ahead of its rate, **waits** and stops reading: the
//!   kernel's receive buffer fills, TCP's window closes, and the sender is held back. Nothing
//!   is dropped; the time it waited is counted and reported with the next batch
//!   ([`ReceiverInput::held_back_ms`](crate::listener::ReceiverInput)).
//! - A stopping job never waits: the last lines read go into the last batch.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use crate::retry::sleep_unless;

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
    while buffer.bytes > 0 && buffer.bytes + bytes > shared.max_buffered_bytes && !stop() {
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
