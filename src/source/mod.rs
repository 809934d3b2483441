//! Sources: what decides, per batch, which records belong to it (`shared/DESIGN.md` §4).
//!
//! A source is a [`BatchReader`]: when a worker cuts batch `t`, it asks each of its readers for
//! their records of `t` (a socket receiver hands over what it buffered, a queue its next batch,
//! a generator `rate × interval` new lines) and sends them into the dataflow at time `t`.
//! Every worker runs every reader; a reader that owns nothing on a worker returns nothing.

use timely::dataflow::InputHandleVec;

use crate::listener::SourceInput;
use crate::time::Time;

pub mod dead_letter;
pub mod generator;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod queue;
pub mod rate;
pub mod socket;

pub use dead_letter::{DeadLetters, Malformed};
pub use generator::{Generator, GeneratorConfig};
pub use queue::BatchQueue;
pub use rate::{PidRateEstimator, PidSettings};
pub use socket::SocketOptions;

/// The batch a reader is asked for, and where the asking worker sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSlot {
    /// The batch time.
    pub time: Time,
    /// The batch interval in ms.
    pub interval_ms: u64,
    /// How many batches this worker has cut before this one.
    pub index: u64,
    /// The asking worker.
    pub worker: usize,
    /// All workers of all processes.
    pub peers: usize,
    /// No batch follows this one (the job is stopping): a receiver should stop receiving and
    /// hand over everything it has read.
    pub last: bool,
}

/// A finished batch, as one source on one worker saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedBatch {
    /// The batch.
    pub time: Time,
    /// The batch interval in ms.
    pub interval_ms: u64,
    /// Records this source read for the batch on this worker.
    pub records: u64,
    /// From the batch's processing starting to all its outputs finishing.
    pub processing_delay: std::time::Duration,
    /// From the batch being cut to its processing starting.
    pub scheduling_delay: std::time::Duration,
}

/// Reads the records of each batch for one worker.
///
/// # Examples
///
/// A source of the batch numbers, on worker 0 only:
///
/// ```
/// use sluice::source::{BatchReader, BatchSlot};
/// struct Numbers;
/// impl BatchReader<u64> for Numbers {
///     fn name(&self) -> String { "numbers".into() }
///     fn read_batch(&mut self, slot: &BatchSlot, out: &mut Vec<u64>) -> u64 {
///         if slot.worker == 0 { out.push(slot.index); }
///         0 // nothing malformed
///     }
/// }
/// ```
pub trait BatchReader<T>: 'static {
    /// A name for logs and metrics.
    fn name(&self) -> String;
    /// Appends this worker's records of batch `slot.time` to `out`; returns how many malformed
    /// records were set aside for this batch.
    fn read_batch(&mut self, slot: &BatchSlot, out: &mut Vec<T>) -> u64;

    /// A batch has finished every output operation on every worker (the job's probe has passed
    /// it): a source can now commit what the batch consumed (Kafka offsets) and adapt its rate.
    fn batch_completed(&mut self, _batch: &CompletedBatch) {}

    /// How many of the items read are records, for the batch metrics (a source may send
    /// bookkeeping items along, such as Kafka's offset ranges).
    fn records_in(&self, items: &[T]) -> u64 {
        items.len() as u64
    }

    /// A fault the job cannot go on with (checked after every read); the job fails with it.
    fn failure(&mut self) -> Option<crate::error::SluiceError> {
        None
    }

    /// The plan of the batch just read (what it contains: Kafka offset ranges, the write-ahead
    /// log's line numbers), recorded in the checkpoint before the batch runs; `None` for a source
    /// that cannot replay a batch.
    fn plan(&mut self, _slot: &BatchSlot) -> Option<Vec<u8>> {
        None
    }

    /// Called once before the first batch when the job resumes from a checkpoint: the plans
    /// this source recorded, for it to replay those batches with identical content and to go on
    /// from where the restored state stands.
    fn recover(&mut self, _recovery: crate::checkpoint::SourceRecovery) {}
}

/// A reader bound to the timely input it feeds.
///
/// A batch is fed in chunks ([`Feeder::send_chunk`]) with the worker stepping in between, so
/// that the dataflow consumes a large batch while it enters and memory holds about one chunk of
/// intermediate records, not the whole batch.
pub(crate) trait Feeder {
    fn advance_to(&mut self, t: u64);
    /// Reads this worker's records of the batch; they are sent by `send_chunk`.
    fn read(&mut self, slot: &BatchSlot) -> SourceInput;
    /// Sends up to `max` of the records read; true while records remain.
    fn send_chunk(&mut self, max: usize) -> bool;
    /// No batch follows: closes the input (the reader stays, to commit).
    fn close(&mut self);
    /// See [`BatchReader::batch_completed`].
    fn completed(&mut self, batch: &CompletedBatch);
    /// See [`BatchReader::failure`].
    fn failure(&mut self) -> Option<crate::error::SluiceError>;
    /// See [`BatchReader::name`].
    fn name(&self) -> String;
    /// See [`BatchReader::plan`].
    fn plan(&mut self, slot: &BatchSlot) -> Option<Vec<u8>>;
    /// See [`BatchReader::recover`].
    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery);
}

pub(crate) struct InputFeeder<T: Clone + 'static, R> {
    pub(crate) input: Option<InputHandleVec<u64, T>>,
    pub(crate) reader: R,
    pub(crate) buffer: std::collections::VecDeque<T>,
    pub(crate) scratch: Vec<T>,
}

impl<T: Clone + 'static, R: BatchReader<T>> InputFeeder<T, R> {
    pub(crate) fn new(input: InputHandleVec<u64, T>, reader: R) -> Self {
        InputFeeder {
            input: Some(input),
            reader,
            buffer: Default::default(),
            scratch: Vec::new(),
        }
    }
}

impl<T: Clone + 'static, R: BatchReader<T>> Feeder for InputFeeder<T, R> {
    fn advance_to(&mut self, t: u64) {
        if let Some(input) = self.input.as_mut() {
            if *input.time() < t {
                input.advance_to(t);
            }
        }
    }

    fn read(&mut self, slot: &BatchSlot) -> SourceInput {
        self.advance_to(slot.time.millis());
        let malformed = self.reader.read_batch(slot, &mut self.scratch);
        let records = self.reader.records_in(&self.scratch);
        self.buffer.extend(self.scratch.drain(..));
        SourceInput {
            source: self.reader.name(),
            records,
            malformed,
        }
    }

    fn send_chunk(&mut self, max: usize) -> bool {
        let n = max.min(self.buffer.len());
        match self.input.as_mut() {
            Some(input) => {
                for record in self.buffer.drain(..n) {
                    input.send(record);
                }
                input.flush();
            }
            None => self.buffer.clear(),
        }
        !self.buffer.is_empty()
    }

    fn close(&mut self) {
        self.input = None;
    }

    fn completed(&mut self, batch: &CompletedBatch) {
        self.reader.batch_completed(batch);
    }

    fn failure(&mut self) -> Option<crate::error::SluiceError> {
        self.reader.failure()
    }

    fn name(&self) -> String {
        self.reader.name()
    }

    fn plan(&mut self, slot: &BatchSlot) -> Option<Vec<u8>> {
        self.reader.plan(slot)
    }

    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) {
        self.reader.recover(recovery)
    }
}
