//! The receiving thread of the socket receiver, and the hand-over every receiver shares:
//! framed lines to the dead letters, the write-ahead log and the buffer, within the limits.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::framing::{Framed, LineFramer};
use super::wal::Wal;
use super::{Shared, SocketOptions, limits};
use crate::retry::{Backoff, Failure, sleep_unless};
use crate::source::dead_letter::DeadLetters;

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

pub(super) fn receive_socket(
    address: &str,
    source: &str,
    options: &SocketOptions,
    shared: &Shared,
    mut wal: Option<Wal>,
) {
    let stop = || shared.stop.load(Ordering::SeqCst);
    let policy = Backoff::new(Duration::from_millis(100), options.max_backoff);
    let what = format!(
        "{source}: cannot connect; is a server listening there (for example `nc -lk {}`)?",
        address.rsplit(':').next().unwrap_or("PORT")
    );
    let mut connection = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut framed = Vec::new();
    // Bytes and lines received, for the average line length.
    let mut received = (0u64, 0u64);
    // What was framed goes to the buffer (and the write-ahead log), bad lines aside.
    let mut hand_over = |framed: &mut Vec<Framed>| {
        deliver(
            shared,
            framed,
            &options.dead_letters,
            &mut wal,
            options.block_interval,
            &mut |_| true,
        );
    };
    while !stop() {
        let Ok(stream) = policy.retry(&what, &stop, || {
            connect(address).map_err(|e| {
                shared.error(&format!("cannot connect to {address}: {e}"));
                Failure::Transient(e)
            })
        }) else {
            return; // stopped while the server was away
        };
        connection += 1;
        tracing::info!("{source}: connected (connection {connection})");
        let mut stream = stream;
        let mut framer = LineFramer::new(options.max_line_bytes);
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            // With a rate in force, read about one hand-over's worth of lines at a time.
            let want = limits::hand_over_lines(shared).map_or(buf.len(), |lines| {
                let per_line = received.0.checked_div(received.1).unwrap_or(64).max(1);
                (lines as u64 * per_line).clamp(64, buf.len() as u64) as usize
            });
            match stream.read(&mut buf[..want]) {
                Ok(0) => {
                    if framer.has_partial() {
                        framed.push(framer.finish(source, connection, None));
                    }
                    hand_over(&mut framed);
                    tracing::info!("{source}: the server closed the connection; reconnecting");
                    break;
                }
                Ok(n) => {
                    framer.push(&buf[..n], source, connection, &mut framed);
                    received.0 += n as u64;
                    received.1 += framed.len() as u64;
                    hand_over(&mut framed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    if framer.has_partial() {
                        framed.push(framer.finish(
                            source,
                            connection,
                            Some("connection lost in the middle of the line"),
                        ));
                    }
                    hand_over(&mut framed);
                    shared.error(&format!("connection lost: {e}"));
                    tracing::warn!("{source}: connection lost ({e}); reconnecting");
                    break;
                }
            }
        }
        sleep_unless(Duration::from_millis(50), &stop);
    }
}

fn connect(address: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, "the address resolved to nothing");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_millis(100)))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
