//! `socket_text_stream`: a receiver reading `\n`-separated UTF-8 lines from a TCP server.
//!
//! As in Spark, the receiver runs on one worker (global worker 0) in a thread of its own and
//! buffers what it reads; cutting batch `t` takes the whole buffer at once, so every line read
//! lands in exactly one batch. The buffer is cut into **blocks**, one per block interval
//! (Spark's `spark.streaming.blockInterval`, 200 ms by default) in which lines arrived; each
//! block is one partition of the batch (batch interval / block interval = tasks, as the course's
//! tuning chapter says), and blocks are spread over all workers. Lines end at `\n` (a trailing
//! `\r` is removed, like Java's `readLine`); a last line without `\n` is kept when the server
//! closes the connection cleanly.
//!
//! Faults: a refused or lost connection is retried with backoff (100 ms doubling to
//! [`SocketOptions::max_backoff`]) and logged; the job keeps running. A line that is not UTF-8,
//! is longer than [`SocketOptions::max_line_bytes`], or is cut by a connection reset goes to the
//! [`DeadLetters`] and is counted in the batch metrics; it is never silently dropped.
//!
//! The parts, one file each: this one (options, the reader a batch asks, the receiving
//! thread), `blocks` (the buffer cut into blocks), `wal` (the write-ahead log), `framing`
//! (bytes to lines, bad lines set aside).

pub(crate) mod blocks;
pub(crate) mod framing;
pub(crate) mod wal;

use std::io::{ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dead_letter::DeadLetters;
use super::{BatchOut, BatchReader, BatchSlot};
use crate::retry::{Backoff, Failure, sleep_unless};
use blocks::{Buffer, into_blocks};
use framing::{Framed, LineFramer};
use wal::Wal;

/// Settings of the socket receiver.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// Longest accepted line in bytes (default 1 MiB); longer ones are set aside.
    pub max_line_bytes: usize,
    /// Longest wait between reconnection attempts (default 2 s).
    pub max_backoff: Duration,
    /// Where malformed lines go (default: counted and logged only).
    pub dead_letters: DeadLetters,
    /// Whether received lines go to a write-ahead log in the job's checkpoint directory
    /// (Spark's `spark.streaming.receiver.writeAheadLog.enable`); by default whenever the job
    /// has a checkpoint directory.
    pub write_ahead_log: WriteAheadLog,
    /// Lines that arrive within one block interval form one block, one partition of the batch
    /// (Spark's `spark.streaming.blockInterval`; default 200 ms).
    pub block_interval: Duration,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            max_line_bytes: 1 << 20,
            max_backoff: Duration::from_secs(2),
            dead_letters: DeadLetters::counting(),
            write_ahead_log: WriteAheadLog::WhenCheckpointed,
            block_interval: Duration::from_millis(200),
        }
    }
}

impl SocketOptions {
    /// Turns the receiver's write-ahead log on: every line is durable in
    /// `<checkpoint>/receiver/` before it can enter a batch, and each batch's plan records
    /// which lines it holds, so a job restarted after a crash replays its batches with the same
    /// lines and loses no line it had received. Needs a checkpoint directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::{SocketOptions, WriteAheadLog};
    /// let options = SocketOptions::default().with_write_ahead_log();
    /// assert_eq!(options.write_ahead_log, WriteAheadLog::On);
    /// ```
    pub fn with_write_ahead_log(mut self) -> Self {
        self.write_ahead_log = WriteAheadLog::On;
        self
    }

    /// Turns the write-ahead log off, also in a checkpointed job: lines received but not yet in
    /// a finished batch are then lost in a crash (Spark's default; the job warns at start).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::{SocketOptions, WriteAheadLog};
    /// let options = SocketOptions::default().without_write_ahead_log();
    /// assert_eq!(options.write_ahead_log, WriteAheadLog::Off);
    /// ```
    pub fn without_write_ahead_log(mut self) -> Self {
        self.write_ahead_log = WriteAheadLog::Off;
        self
    }
}

/// When the socket receiver keeps a write-ahead log.
///
/// A checkpointed job restarted after a crash replays the batches after its snapshot from
/// their plans; a receiver's plan is the write-ahead log's lines, so without the log those
/// batches would replay empty and the state go back in time. sluice therefore keeps the log
/// whenever there is a checkpoint, unless told not to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteAheadLog {
    /// On when the job has a checkpoint directory, off otherwise.
    #[default]
    WhenCheckpointed,
    /// On; the job needs a checkpoint directory.
    On,
    /// Off, even with a checkpoint directory (warned at start: received lines can be lost).
    Off,
}

/// What the receiving thread and the batches share.
pub(crate) struct Shared {
    pub(crate) lines: Mutex<Buffer>,
    pub(crate) malformed: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Start a new write-ahead log segment, named by this batch time.
    pub(crate) rotate: Mutex<Option<u64>>,
}

/// The receiving thread's work: fill the shared buffer (through the write-ahead log, when
/// there is one) until asked to stop.
pub(crate) type ReceiveFn = Box<dyn FnOnce(Arc<Shared>, Option<Wal>) + Send>;

/// After a restart: the write-ahead log's first sequence number that the receiver had not
/// confirmed (a Kafka receiver confirms lines once it has recorded the offsets after them);
/// lines from there on are dropped, to be received again.
pub(crate) type ConfirmedFn = fn(&std::path::Path) -> u64;

/// A batch's plan: the write-ahead log's lines `[from, until)` and the sizes of its blocks.
type BatchLines = ((u64, u64), Vec<u64>);

/// Reads a plan; plans written before blocks were recorded are one block. A plan whose range
/// runs backwards or whose blocks do not add up to it is not one the receiver wrote: `None`.
pub(crate) fn decode_plan(bytes: &[u8]) -> Option<BatchLines> {
    let plan = match crate::checkpoint::codec::decode::<BatchLines>(bytes) {
        Ok(plan) => plan,
        Err(_) => {
            let (from, until) = crate::checkpoint::codec::decode::<(u64, u64)>(bytes).ok()?;
            ((from, until), vec![until.checked_sub(from)?])
        }
    };
    let ((from, until), blocks) = &plan;
    let total = blocks.iter().try_fold(0u64, |sum, b| sum.checked_add(*b))?;
    (until.checked_sub(*from)? == total).then_some(plan)
}

pub(crate) struct SocketReader {
    name: String,
    shared: Option<Arc<Shared>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// What the receiver thread needs, until it is started (at the first batch, after any
    /// recovery).
    pending: Option<(ReceiveFn, Option<Wal>)>,
    /// See [`ConfirmedFn`]; `None`: every logged line counts.
    confirmed: Option<ConfirmedFn>,
    /// With a write-ahead log: the lines of the batch read last, `[from, until)`, and its
    /// block sizes.
    last: Option<BatchLines>,
    /// After a restart: the lines of batches to replay (their plan and the lines), by batch
    /// time.
    replay: std::collections::BTreeMap<u64, (BatchLines, Vec<String>)>,
    /// The write-ahead log is on.
    wal_on: bool,
    /// Rotate the log every this many batches.
    index: u64,
}

impl SocketReader {
    /// A reader; on the receiving worker (`receiver == true`) its thread starts with the first
    /// batch. `wal_dir` is where the write-ahead log lives, when it is on.
    pub(crate) fn new(
        host: &str,
        port: u16,
        options: SocketOptions,
        receiver: bool,
        wal_dir: Option<std::path::PathBuf>,
    ) -> Self {
        let name = format!("socket {host}:{port}");
        let address = format!("{host}:{port}");
        let source = name.clone();
        let receive: ReceiveFn = Box::new(move |shared: Arc<Shared>, wal: Option<Wal>| {
            receive(&address, &source, &options, &shared, wal)
        });
        Self::receiver(name, receive, receiver, wal_dir, None)
    }

    /// A reader of any receiver: `receive` runs in a thread of its own on the receiving worker
    /// from the first batch on.
    pub(crate) fn receiver(
        name: String,
        receive: ReceiveFn,
        receiver: bool,
        wal_dir: Option<std::path::PathBuf>,
        confirmed: Option<ConfirmedFn>,
    ) -> Self {
        let mut reader = SocketReader {
            name,
            shared: None,
            thread: None,
            pending: None,
            confirmed,
            last: None,
            replay: Default::default(),
            index: 0,
            wal_on: receiver && wal_dir.is_some(),
        };
        if receiver {
            reader.shared = Some(Arc::new(Shared {
                lines: Mutex::new(Buffer::default()),
                malformed: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                rotate: Mutex::new(None),
            }));
            let wal = wal_dir.map(|dir| Wal {
                dir,
                log: None,
                next_seq: 0,
            });
            reader.pending = Some((receive, wal));
        }
        reader
    }

    fn start(&mut self, batch: u64) {
        let (Some((receive, mut wal)), Some(shared)) = (self.pending.take(), self.shared.clone())
        else {
            return;
        };
        if let Some(w) = wal.as_mut()
            && let Err(e) = w.open_segment(batch)
        {
            tracing::error!("{}: cannot open the write-ahead log: {e}", self.name);
        }
        let spawned = std::thread::Builder::new()
            .name(format!("receiver {}", self.name))
            .spawn(move || receive(shared, wal));
        match spawned {
            Ok(t) => self.thread = Some(t),
            Err(e) => tracing::error!("{}: cannot start the receiver thread: {e}", self.name),
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

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<String>) -> u64 {
        self.start(slot.time.millis());
        let Some(shared) = self.shared.clone() else {
            return 0;
        };
        if let Some((plan, lines)) = self.replay.remove(&slot.time.millis()) {
            // A batch replayed after a restart: the lines it had, from the write-ahead log, in
            // the blocks it had.
            into_blocks(lines, &plan.1, out);
            self.last = Some(plan);
            return 0;
        }
        self.index += 1;
        if self.index.is_multiple_of(100) {
            *shared.rotate.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot.time.millis());
        }
        if slot.last {
            // Stop receiving first, so that every line read so far is in this last batch.
            shared.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        let mut buffer = shared.lines.lock().unwrap_or_else(|p| p.into_inner());
        let from = buffer.first_seq;
        buffer.first_seq += buffer.lines.len() as u64;
        let until = buffer.first_seq;
        let (lines, sizes) = buffer.take();
        drop(buffer);
        into_blocks(lines, &sizes, out);
        self.last = Some(((from, until), sizes));
        shared.malformed.swap(0, Ordering::SeqCst)
    }

    fn plan(&mut self, _slot: &BatchSlot) -> Option<Vec<u8>> {
        // Only the receiving worker with a write-ahead log can replay its batches.
        if self.wal_on {
            self.last
                .as_ref()
                .and_then(|l| crate::checkpoint::codec::encode(l).ok())
        } else {
            None
        }
    }

    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) -> crate::Result<()> {
        let (Some(shared), Some((_, Some(wal)))) = (self.shared.clone(), self.pending.as_mut())
        else {
            return Ok(());
        };
        let mut lines = Wal::load(&wal.dir);
        if let Some(confirmed) = self.confirmed {
            let unconfirmed = lines.split_off(&confirmed(&wal.dir));
            if !unconfirmed.is_empty() {
                tracing::info!(
                    "{}: {} logged records whose position was not recorded are received again",
                    self.name,
                    unconfirmed.len()
                );
            }
        }
        let mut position: Option<u64> = None;
        let logged = lines.len();
        let mut restored_plan = false;
        for (t, plans) in &recovery.plans {
            let Some(((from, until), sizes)) = plans.first().and_then(|p| decode_plan(p)) else {
                continue;
            };
            if Some(*t) == recovery.after {
                position = Some(until);
                restored_plan = true;
                continue;
            }
            let held: Vec<u64> = lines.range(from..until).map(|(s, _)| *s).collect();
            let batch: Vec<String> = held.iter().filter_map(|s| lines.remove(s)).collect();
            if batch.len() as u64 != until - from {
                tracing::warn!(
                    "{}: the write-ahead log misses {} lines of batch {t} ms",
                    self.name,
                    until - from - batch.len() as u64
                );
            }
            position = Some(position.map_or(until, |p| p.max(until)));
            self.replay.insert(*t, (((from, until), sizes), batch));
        }
        if recovery.after.is_some() && !restored_plan && logged > 0 {
            // Without the restored batch's plan the lines its state counted are unknown:
            // feeding the log again would count them twice.
            let what = format!("of the {logged} lines in its write-ahead log");
            return Err(recovery.missing_plan(&self.name, &what));
        }
        let after = position.unwrap_or(0);
        // Lines received but in no batch yet go into the first new batch.
        let leftover: Vec<String> = lines.split_off(&after).into_values().collect();
        let next = lines
            .keys()
            .next_back()
            .map_or(after, |s| (s + 1).max(after))
            .max(after + leftover.len() as u64);
        if !leftover.is_empty() || !self.replay.is_empty() {
            tracing::info!(
                "{}: {} batches replayed from the write-ahead log, {} lines received before the restart go into the next batch",
                self.name,
                self.replay.len(),
                leftover.len()
            );
        }
        let mut buffer = shared.lines.lock().unwrap_or_else(|p| p.into_inner());
        buffer.first_seq = after;
        buffer.lines = leftover;
        wal.next_seq = next;
        Ok(())
    }
}

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
                dead.record(m);
                shared.malformed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    if good.is_empty() {
        return confirm(wal.as_ref().map(|w| w.next_seq));
    }
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
        if appended.is_err() {
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

fn receive(
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
            connect(address).map_err(Failure::Transient)
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
            match stream.read(&mut buf) {
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
