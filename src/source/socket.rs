//! `socket_text_stream`: a receiver reading `\n`-separated UTF-8 lines from a TCP server.
//!
//! As in Spark, the receiver runs on one worker (global worker 0) in a thread of its own and
//! buffers what it reads; cutting batch `t` takes the whole buffer at once, so every line read
//! lands in exactly one batch. Lines end at `\n` (a trailing `\r` is removed, like Java's
//! `readLine`); a last line without `\n` is kept when the server closes the connection cleanly.
//!
//! Faults: a refused or lost connection is retried with backoff (100 ms doubling to
//! [`SocketOptions::max_backoff`]) and logged; the job keeps running. A line that is not UTF-8,
//! is longer than [`SocketOptions::max_line_bytes`], or is cut by a connection reset goes to the
//! [`DeadLetters`] and is counted in the batch metrics; it is never silently dropped.

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dead_letter::{DeadLetters, Malformed};
use super::{BatchReader, BatchSlot};

/// Settings of the socket receiver.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// Longest accepted line in bytes (default 1 MiB); longer ones are set aside.
    pub max_line_bytes: usize,
    /// Longest wait between reconnection attempts (default 2 s).
    pub max_backoff: Duration,
    /// Where malformed lines go (default: counted and logged only).
    pub dead_letters: DeadLetters,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            max_line_bytes: 1 << 20,
            max_backoff: Duration::from_secs(2),
            dead_letters: DeadLetters::counting(),
        }
    }
}

struct Shared {
    lines: Mutex<Vec<String>>,
    malformed: AtomicU64,
    stop: AtomicBool,
}

pub(crate) struct SocketReader {
    name: String,
    shared: Option<Arc<Shared>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketReader {
    /// Starts the receiver thread when this worker is the receiving one (`receiver == true`).
    pub(crate) fn new(host: &str, port: u16, options: SocketOptions, receiver: bool) -> Self {
        let name = format!("socket {host}:{port}");
        if !receiver {
            return SocketReader {
                name,
                shared: None,
                thread: None,
            };
        }
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::new()),
            malformed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let address = format!("{host}:{port}");
        let thread_name = name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("receiver {address}"))
            .spawn(move || receive(&address, &thread_name, &options, &thread_shared));
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!("{name}: cannot start the receiver thread: {e}");
                None
            }
        };
        SocketReader {
            name,
            shared: Some(shared),
            thread,
        }
    }
}

impl Drop for SocketReader {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl BatchReader<String> for SocketReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut Vec<String>) -> u64 {
        let Some(shared) = &self.shared else { return 0 };
        if slot.last {
            // Stop receiving first, so that every line read so far is in this last batch.
            shared.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        let mut lines = shared.lines.lock().unwrap_or_else(|p| p.into_inner());
        if out.is_empty() {
            std::mem::swap(&mut *lines, out);
        } else {
            out.append(&mut lines);
        }
        drop(lines);
        shared.malformed.swap(0, Ordering::SeqCst)
    }
}

/// Splits bytes into lines, keeping a partial line between reads.
struct LineFramer {
    line: Vec<u8>,
    overlong: bool,
    max: usize,
    line_no: u64,
}

enum Framed {
    Line(String),
    Bad(Malformed),
}

impl LineFramer {
    fn new(max: usize) -> Self {
        LineFramer {
            line: Vec::new(),
            overlong: false,
            max,
            line_no: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8], source: &str, conn: u64, out: &mut Vec<Framed>) {
        while !bytes.is_empty() {
            let (chunk, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            if !self.overlong {
                if self.line.len() + chunk.len() > self.max {
                    self.overlong = true;
                    let room = 256usize.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&chunk[..room.min(chunk.len())]);
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            if ended {
                out.push(self.finish(source, conn, None));
            }
            bytes = rest;
        }
    }

    /// Ends the current line; `cut` gives the reason when the line did not end with `\n`.
    fn finish(&mut self, source: &str, conn: u64, cut: Option<&str>) -> Framed {
        self.line_no += 1;
        let mut bytes = std::mem::take(&mut self.line);
        let overlong = std::mem::replace(&mut self.overlong, false);
        let bad = |reason: String, bytes: Vec<u8>, line_no: u64| {
            Framed::Bad(Malformed {
                source: source.to_owned(),
                position: format!("connection {conn}, line {line_no}"),
                reason,
                bytes,
            })
        };
        if overlong {
            return bad(
                format!("line longer than {} bytes (first 256 kept)", self.max),
                bytes,
                self.line_no,
            );
        }
        if let Some(reason) = cut {
            return bad(reason.to_owned(), bytes, self.line_no);
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        match String::from_utf8(bytes) {
            Ok(s) => Framed::Line(s),
            Err(e) => bad(
                format!("not UTF-8 ({})", e.utf8_error()),
                e.into_bytes(),
                self.line_no,
            ),
        }
    }

    fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.overlong
    }
}

fn deliver(shared: &Shared, framed: &mut Vec<Framed>, dead: &DeadLetters) {
    let mut good = Vec::with_capacity(framed.len());
    for f in framed.drain(..) {
        match f {
            Framed::Line(s) => good.push(s),
            Framed::Bad(m) => {
                dead.record(m);
                shared.malformed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    if !good.is_empty() {
        shared
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&mut good);
    }
}

fn receive(address: &str, source: &str, options: &SocketOptions, shared: &Shared) {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u64;
    let mut connection = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut framed = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let stream = match connect(address) {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                let msg = format!(
                    "{source}: cannot connect ({e}); is a server listening there (for example `nc -lk {}`)? retrying in {backoff:?}",
                    address.rsplit(':').next().unwrap_or("PORT")
                );
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!("{msg}");
                } else {
                    tracing::debug!("{msg}");
                }
                sleep_unless_stopped(backoff, shared);
                backoff = (backoff * 2).min(options.max_backoff);
                continue;
            }
        };
        connection += 1;
        failures = 0;
        backoff = Duration::from_millis(100);
        tracing::info!("{source}: connected (connection {connection})");
        let mut stream = stream;
        let mut framer = LineFramer::new(options.max_line_bytes);
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            match stream.read(&mut buf) {
                Ok(0) => {
                    if framer.has_partial() {
                        framed.push(framer.finish(source, connection, None));
                    }
                    deliver(shared, &mut framed, &options.dead_letters);
                    tracing::info!("{source}: the server closed the connection; reconnecting");
                    break;
                }
                Ok(n) => {
                    framer.push(&buf[..n], source, connection, &mut framed);
                    deliver(shared, &mut framed, &options.dead_letters);
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
                    deliver(shared, &mut framed, &options.dead_letters);
                    tracing::warn!("{source}: connection lost ({e}); reconnecting");
                    break;
                }
            }
        }
        sleep_unless_stopped(Duration::from_millis(50), shared);
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

fn sleep_unless_stopped(d: Duration, shared: &Shared) {
    let step = Duration::from_millis(20);
    let mut left = d;
    while !left.is_zero() && !shared.stop.load(Ordering::SeqCst) {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(f: &mut LineFramer, input: &[&[u8]]) -> (Vec<String>, Vec<String>) {
        let mut out = Vec::new();
        for chunk in input {
            f.push(chunk, "s", 1, &mut out);
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for x in out {
            match x {
                Framed::Line(s) => good.push(s),
                Framed::Bad(m) => bad.push(m.reason),
            }
        }
        (good, bad)
    }

    #[test]
    fn lines_split_across_reads() {
        let mut f = LineFramer::new(100);
        let (good, bad) = lines(&mut f, &[b"hel", b"lo\r\nwor", b"ld\n\n"]);
        assert_eq!(good, vec!["hello", "world", ""]);
        assert!(bad.is_empty());
        assert!(!f.has_partial());
    }

    #[test]
    fn bad_lines_are_set_aside_and_the_next_line_survives() {
        let mut f = LineFramer::new(8);
        let (good, bad) = lines(
            &mut f,
            &[b"\xff\xfe\nok\n", b"0123456789abcdef", b"ghij\nafter\n"],
        );
        assert_eq!(good, vec!["ok", "after"]);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains("UTF-8"));
        assert!(bad[1].contains("longer than 8"));
    }
}
