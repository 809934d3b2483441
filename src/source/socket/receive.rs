//! The receiving thread of the socket receiver: connect (retried), read, frame, and hand the
//! lines over ([`deliver`](crate::source::receiver::deliver)).

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::SocketOptions;
use crate::retry::{Backoff, Failure, sleep_unless};
use crate::source::receiver::framing::{Framed, LineFramer};
use crate::source::receiver::wal::Wal;
use crate::source::receiver::{Shared, deliver, limits};

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
