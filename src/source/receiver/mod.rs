//! The receiver machinery every receiver shares (the socket stream, the Kafka receiver): a
//! thread of its own fills a bounded buffer that each batch cut takes whole, cut into blocks
//! (one partition each); lines go through the write-ahead log first when it is on; a restart
//! replays each batch's lines from the log by its plan.
//!
//! The parts, one file each: this one (the reader a batch asks, [`ReceiverReader`], and what
//! it shares with the receiving thread), `deliver` (the hand-over of received lines), `blocks`
//! (the buffer cut into blocks), `limits` (its bound and rate), `wal` (the write-ahead log),
//! `framing` (bytes to lines, bad lines set aside). A receiver is a [`ReceiveFn`]: the socket's
//! is in `source::socket`, the Kafka receiver's in `source::kafka::receiver`.

pub(crate) mod blocks;
mod deliver;
pub(crate) mod framing;
pub(crate) mod limits;
pub(crate) mod wal;

pub(crate) use deliver::deliver;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::rate::{Backpressure, PidRateEstimator};
pub(crate) use super::socket::Limits;
use super::{BatchOut, BatchReader, BatchSlot, CompletedBatch};
use crate::dead_letter::DeadLetters;
use crate::listener::ReceiverInput;
use blocks::{Buffer, into_blocks};
pub use limits::BufferBound;
use limits::{Bound, RateLimit};
use wal::Wal;

/// What the receiving thread and the batches share.
pub(crate) struct Shared {
    pub(crate) lines: Mutex<Buffer>,
    /// Signalled when a batch takes the buffer: there is room again.
    pub(crate) room: Condvar,
    /// The bound in force (see [`SocketOptions::buffer`]).
    pub(crate) bound: Bound,
    /// The pace of the receiver.
    pub(crate) rate: Mutex<RateLimit>,
    /// Nanoseconds the receiver waited (for room or for its rate) since the last batch.
    pub(crate) held_back_ns: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Start a new write-ahead log segment, named by this batch time.
    pub(crate) rotate: Mutex<Option<u64>>,
    /// The receiver's latest error and when (ms since the epoch), for the web UI.
    pub(crate) last_error: Mutex<Option<(u64, String)>>,
}

impl Shared {
    /// Notes the receiver's latest error.
    pub(crate) fn error(&self, e: &dyn std::fmt::Display) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, e.to_string()));
    }
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

/// The source of a receiver stream: what a batch asks of the receiver.
pub(crate) struct ReceiverReader {
    name: String,
    /// What the checkpoint records as this source (see `BatchReader::identity`).
    pub(crate) identity: String,
    /// Where the receiver sets malformed lines aside (its failure to write them fails the job).
    pub(crate) dead_letters: DeadLetters,
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
    /// With backpressure: its settings and estimator.
    backpressure: Option<(Backpressure, Option<PidRateEstimator>)>,
    /// What the receiver did for the batch read last.
    last_input: Option<ReceiverInput>,
    /// The bytes of lines each batch took, by batch time, until it completes.
    taken: std::collections::VecDeque<(u64, u64)>,
    /// When the job was last warned that its input comes faster than it is processed.
    warned: Option<Instant>,
}

impl ReceiverReader {
    /// A reader of any receiver: `receive` runs in a thread of its own on the receiving worker
    /// from the first batch on.
    pub(crate) fn new(
        name: String,
        receive: ReceiveFn,
        receiver: bool,
        wal_dir: Option<crate::checkpoint::storage::Folder>,
        confirmed: Option<ConfirmedFn>,
        limits: Limits,
    ) -> Self {
        let mut reader = ReceiverReader {
            identity: name.clone(),
            dead_letters: DeadLetters::counting(),
            name,
            shared: None,
            thread: None,
            pending: None,
            confirmed,
            last: None,
            replay: Default::default(),
            index: 0,
            wal_on: receiver && wal_dir.is_some(),
            backpressure: limits.backpressure.map(|b| (b, None)),
            last_input: None,
            taken: Default::default(),
            warned: None,
        };
        if receiver {
            let initial = limits.backpressure.and_then(|b| b.initial_rate);
            let rate = RateLimit::new(limits.max_rate, initial);
            reader.shared = Some(Arc::new(Shared {
                lines: Mutex::new(Buffer::default()),
                room: Condvar::new(),
                bound: Bound::new(limits.buffer),
                rate: Mutex::new(rate),
                held_back_ns: AtomicU64::new(0),
                malformed: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                rotate: Mutex::new(None),
                last_error: Mutex::new(None),
            }));
            let wal = wal_dir.map(|folder| Wal {
                dir: folder.dir,
                storage: folder.storage,
                log: None,
                next_seq: 0,
            });
            reader.pending = Some((receive, wal));
        }
        reader
    }

    /// Records what the receiver did for the batch just cut; warns (at most every 10 s) when
    /// it had to hold its sender back.
    fn report(&mut self, shared: &Shared, lines: u64, bytes: u64) {
        let held_back = Duration::from_nanos(shared.held_back_ns.swap(0, Ordering::SeqCst));
        let rate = shared.rate.lock().unwrap_or_else(|p| p.into_inner()).rate();
        let input = ReceiverInput {
            lines,
            bytes,
            max_buffered_bytes: shared.bound.bytes() as u64,
            held_back_ms: held_back.as_millis() as u64,
            rate_limit: rate.map(|r| r as u64),
            last_error: shared
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        if input.held_back_ms >= 100 && self.warned.is_none_or(|w| w.elapsed().as_secs() >= 10) {
            self.warned = Some(Instant::now());
            let why = match input.rate_limit {
                Some(r) => format!("its rate limit ({r} lines/s) or its buffer bound"),
                None => "its buffer bound".to_owned(),
            };
            tracing::warn!(
                "{}: the input comes faster than the job takes it: the receiver held its sender back for {} ms before this batch ({why}, {} MiB); TCP flow control slows the sender, nothing is lost. Add workers, lengthen the batch interval or raise --receiver-buffer / --receiver-max-rate",
                self.name,
                input.held_back_ms,
                input.max_buffered_bytes >> 20
            );
        }
        self.last_input = Some(input);
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

impl Drop for ReceiverReader {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl BatchReader<String> for ReceiverReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn failure(&mut self) -> Option<crate::error::SluiceError> {
        self.dead_letters.failure()
    }

    fn planned_records(&self, plan: &[u8]) -> Option<u64> {
        decode_plan(plan).map(|((from, until), _)| until.saturating_sub(from))
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
        let taken_bytes = buffer.bytes as u64;
        let (lines, sizes) = buffer.take();
        drop(buffer);
        shared.room.notify_all();
        into_blocks(lines, &sizes, out);
        self.last = Some(((from, until), sizes));
        self.taken.push_back((slot.time.millis(), taken_bytes));
        self.report(&shared, until - from, taken_bytes);
        shared.malformed.swap(0, Ordering::SeqCst)
    }

    fn receiver_input(&self) -> Option<ReceiverInput> {
        self.last_input.clone()
    }

    fn batch_completed(&mut self, batch: &CompletedBatch) {
        let Some(shared) = self.shared.as_ref() else {
            return;
        };
        // The bound following the job learns from what this batch took and how long it ran.
        while let Some(&(t, bytes)) = self.taken.front() {
            if t > batch.time.millis() {
                break;
            }
            self.taken.pop_front();
            if t == batch.time.millis() {
                let interval = Duration::from_millis(batch.interval_ms);
                shared
                    .bound
                    .observe(bytes, batch.processing_delay, interval);
            }
        }
        let Some((settings, estimator)) = self.backpressure.as_mut() else {
            return;
        };
        if let Some(rate) = settings.next_rate(estimator, batch) {
            tracing::debug!("{}: backpressure: {} lines/s", self.name, rate as u64);
            shared
                .rate
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pressure = Some(rate);
        }
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
        buffer.restore(after, leftover);
        wal.next_seq = next;
        Ok(())
    }
}
