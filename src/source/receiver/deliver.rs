//! The hand-over every receiver shares: framed lines to the dead letters, the write-ahead log
//! and the buffer, within the limits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::framing::Framed;
use super::wal::Wal;
use super::{Shared, limits};
use crate::dead_letter::DeadLetters;
use crate::retry::{Backoff, Failure};

/// Hands framed lines over: bad ones to the dead letters, good ones to the write-ahead log
/// (durably, retried), then `confirm(next sequence number)` (a Kafka receiver records its
/// offsets there; false: it could not, and the lines stay out of the buffer), then the buffer.
/// True once everything is handed over; false when the job stopped first.
pub(crate) fn deliver(
    shared: &Shared,
    framed: &mut Vec<Framed>,
    dead: &DeadLetters,
    wal: &mut Option<Wal>,
    block_interval: Duration,
    confirm: &mut dyn FnMut(Option<u64>) -> bool,
) -> bool {
    let mut good = Vec::with_capacity(framed.len());
    for f in framed.drain(..) {
        match f {
            Framed::Line(s) => good.push(s),
            Framed::Bad(m) => {
                dead.record(*m);
                shared.malformed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    if good.is_empty() {
        return confirm(wal.as_ref().map(|w| w.next_seq));
    }
    // Bounded: wait (not reading, so TCP holds the sender back) until there is room.
    let bytes = good.iter().map(limits::line_bytes).sum();
    limits::wait_for_room(shared, good.len(), bytes);
    if let Some(w) = wal.as_mut() {
        let rotate = shared
            .rotate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(batch) = rotate
            && let Err(e) = w.open_segment(batch)
        {
            tracing::warn!("write-ahead log: cannot start a new segment: {e}");
        }
        // Durable before any batch can take the lines; retried, never skipped.
        let stop = || shared.stop.load(Ordering::SeqCst);
        let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let appended = policy.retry(&"write-ahead log", &stop, || {
            w.append(&good).map_err(Failure::Transient)
        });
        if let Err(e) = appended {
            // Not in the log, so not in any batch: say how many, rather than lose them quietly.
            tracing::error!(
                "write-ahead log in {}: the job stops while it cannot be written ({}): {} lines received since its last durable write are lost (they were never acknowledged as part of a batch; send them again)",
                w.dir.display(),
                e.into_inner(),
                good.len()
            );
            return false;
        }
    }
    if !confirm(wal.as_ref().map(|w| w.next_seq)) {
        return false;
    }
    shared
        .lines
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .append(&mut good, block_interval);
    true
}
