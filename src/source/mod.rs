//! Sources: what decides, per batch, which records belong to it (`ARCHITECTURE.md` §4).
//!
//! A source is a [`BatchReader`]: when a worker cuts batch `t`, it asks each of its readers for
//! their records of `t` (a socket receiver hands over what it buffered, a queue its next batch,
//! a generator `rate × interval` new lines) and sends them into the dataflow at time `t`.
//! Every worker runs every reader; a reader that owns nothing on a worker returns nothing.
//!
//! **Partitions.** A reader puts its records into Spark's partitions ([`BatchOut::partition`]):
//! a queue stream slices a batch into the job's default parallelism, as `sc.parallelize`; the
//! socket receiver makes one partition per block interval; a Kafka direct stream one per
//! topic-partition; the generator one per default-parallelism slot. Chunks go to the worker of
//! their partition (a receiver's blocks are spread over all workers this way).

use std::collections::VecDeque;

use timely::dataflow::InputHandleVec;

use crate::dstream::partition::{Part, PartitionId};
use crate::listener::SourceInput;
use crate::time::Time;

#[cfg(feature = "files")]
pub mod file;
pub mod generator;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod queue;
pub mod rate;
pub(crate) mod receiver;
pub mod socket;

pub use crate::dead_letter::{DeadLetters, Malformed};
pub use generator::{Generator, GeneratorConfig};
pub use queue::BatchQueue;
pub use rate::{Backpressure, PidRateEstimator, PidSettings};
pub use receiver::BufferBound;
pub use socket::{SocketOptions, WriteAheadLog};

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

/// What a reader hands over for one batch on one worker: its records, in Spark's partitions.
///
/// [`push`](BatchOut::push) and [`extend`](BatchOut::extend) put records into the reading
/// worker's own partition (partition `worker index`, as a receiver per worker would);
/// [`partition`](BatchOut::partition) names the partition. A partition named and left empty
/// still exists in the batch (`glom` shows it empty, as Spark's).
///
/// # Examples
///
/// ```
/// use sluice::source::BatchOut;
/// let mut out = BatchOut::new(0);
/// out.partition(1).push("b");
/// out.push("a");          // the reading worker's partition: 0 here
/// out.partition(2);       // an empty partition
/// assert_eq!(out.len(), 2);
/// assert_eq!(out.into_parts().len(), 3);
/// ```
#[derive(Debug)]
pub struct BatchOut<T> {
    own: u32,
    parts: Vec<Part<T>>,
}

impl<T> BatchOut<T> {
    /// An empty batch for the worker whose own partition is `own`.
    pub fn new(own: u32) -> Self {
        BatchOut {
            own,
            parts: Vec::new(),
        }
    }

    /// The records of partition `index` (created, empty, if it was not yet).
    pub fn partition(&mut self, index: u32) -> &mut Vec<T> {
        self.part(PartitionId::new(index))
    }

    /// The records of the partition `id` (created, empty, if it was not yet).
    pub fn part(&mut self, id: PartitionId) -> &mut Vec<T> {
        let at = match self.parts.iter().rposition(|p| p.id == id) {
            Some(at) => at,
            None => {
                self.parts.push(Part::new(id, Vec::new()));
                self.parts.len() - 1
            }
        };
        &mut self.parts[at].records
    }

    /// Adds a record to the reading worker's own partition.
    pub fn push(&mut self, record: T) {
        let own = self.own;
        self.partition(own).push(record);
    }

    /// Records in all partitions.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.records.len()).sum()
    }

    /// True when no partition holds a record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The partitions, in the order they were first named.
    pub fn into_parts(self) -> Vec<Part<T>> {
        self.parts
    }
}

impl<T> Extend<T> for BatchOut<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, records: I) {
        let own = self.own;
        self.partition(own).extend(records);
    }
}

/// Reads the records of each batch for one worker.
///
/// # Examples
///
/// A source of the batch numbers, on worker 0 only:
///
/// ```
/// use sluice::source::{BatchOut, BatchReader, BatchSlot};
/// struct Numbers;
/// impl BatchReader<u64> for Numbers {
///     fn name(&self) -> String { "numbers".into() }
///     fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<u64>) -> u64 {
///         if slot.worker == 0 { out.push(slot.index); }
///         0 // nothing malformed
///     }
/// }
/// ```
pub trait BatchReader<T>: 'static {
    /// A name for logs and metrics.
    fn name(&self) -> String;

    /// What this source reads, as the checkpoint records it: a socket's resolved address and
    /// port, a Kafka stream's topics, a directory. A restart whose source's identity differs
    /// from the checkpoint's is refused while the checkpoint holds input of the old source that
    /// no snapshot has counted yet (see `StreamingConfig::accept_source_change`). By default the
    /// name.
    fn identity(&self) -> String {
        self.name()
    }

    /// How many records a plan of this source's (see [`plan`](BatchReader::plan)) holds, for
    /// the refusal of a restart that would drop them; `None` when it cannot tell.
    fn planned_records(&self, _plan: &[u8]) -> Option<u64> {
        None
    }
    /// Adds this worker's records of batch `slot.time` to `out`, in their partitions; returns
    /// how many malformed records were set aside for this batch.
    fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<T>) -> u64;

    /// A batch has finished every output operation on every worker (the job's probe has passed
    /// it): a source can now commit what the batch consumed (Kafka offsets) and adapt its rate.
    fn batch_completed(&mut self, _batch: &CompletedBatch) {}

    /// What the batch read last read of each partition, for the batch metrics and the web UI
    /// (sources that read ranges: Kafka's offset ranges and lag). None by default.
    fn partitions_read(&self) -> Vec<crate::listener::PartitionInput> {
        Vec::new()
    }

    /// What a receiver did for the batch read last (lines and bytes it took, how long it held
    /// its sender back, its rate limit), for the batch metrics. None by default.
    fn receiver_input(&self) -> Option<crate::listener::ReceiverInput> {
        None
    }

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

    /// A hook the job generator calls at every batch time `t` (Spark's `JobGenerator`), on its
    /// own thread, whatever the workers are doing: a source whose input is fixed at the batch
    /// time (a Kafka direct stream's log-end offsets, a directory's new files) takes it there,
    /// for its reader to cut batch `t` with it even when the batch is cut late. The bytes it
    /// returns ([`Generated::record`]) are recorded in the checkpoint then and handed back by
    /// [`recover`](BatchReader::recover) (`SourceRecovery::generated`) when the job restarts
    /// before the batch was cut. Taken once, before the first batch; `None` (the default): the
    /// source decides its input when the batch is cut, as receivers do.
    fn at_batch_time(&mut self) -> Option<BatchTimeHook> {
        None
    }

    /// Called once before the first batch when the job resumes from a checkpoint: the plans
    /// this source recorded, for it to replay those batches with identical content and to go on
    /// from where the restored state stands.
    ///
    /// A source that cannot resume exactly (its plan of the restored batch is missing, say)
    /// returns the error, and the job refuses to start with it rather than count anything
    /// twice or not at all.
    fn recover(&mut self, _recovery: crate::checkpoint::SourceRecovery) -> crate::Result<()> {
        Ok(())
    }
}

/// See [`BatchReader::at_batch_time`]: called with a batch time; returns what the source fixed
/// for it (`None`: nothing).
pub type BatchTimeHook = Box<dyn Fn(u64) -> Option<Generated> + Send + Sync>;

/// What a source fixed for a batch at its batch time (see [`BatchReader::at_batch_time`]).
///
/// ```
/// let fixed = sluice::source::Generated { record: vec![1, 2], records: Some(200) };
/// assert_eq!(fixed.records, Some(200));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// Recorded in the checkpoint and handed back by [`BatchReader::recover`] after a restart.
    pub record: Vec<u8>,
    /// How many records the batch will hold, when the source can tell before it is cut (the
    /// listeners and the web UI show it for the queued batch).
    pub records: Option<u64>,
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
    /// See [`BatchReader::identity`].
    fn identity(&self) -> String;
    /// See [`BatchReader::planned_records`].
    fn planned_records(&self, plan: &[u8]) -> Option<u64>;
    /// See [`BatchReader::plan`].
    fn plan(&mut self, slot: &BatchSlot) -> Option<Vec<u8>>;
    /// See [`BatchReader::recover`].
    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) -> crate::Result<()>;
    /// See [`BatchReader::at_batch_time`].
    fn at_batch_time(&mut self) -> Option<BatchTimeHook>;
}

/// The two inputs of a source: chunks of partitions this worker runs go straight into the
/// dataflow; the others (a receiver's blocks) through an exchange to their workers. (An
/// exchange even to itself costs a worker memory and time, so local chunks skip it.)
pub(crate) struct SourceInputs<T: Clone + 'static> {
    pub(crate) local: InputHandleVec<u64, Part<T>>,
    pub(crate) shipped: InputHandleVec<u64, Part<T>>,
    /// This worker and all workers.
    pub(crate) worker: (usize, usize),
}

pub(crate) struct InputFeeder<T: Clone + 'static, R> {
    pub(crate) input: Option<SourceInputs<T>>,
    pub(crate) reader: R,
    /// The partitions read and not yet sent, in order: each with what is left of it, and
    /// whether a chunk of it went out yet (an empty partition is announced once).
    pub(crate) buffer: VecDeque<(PartitionId, std::vec::IntoIter<T>, bool)>,
    /// The reading worker's own partition.
    pub(crate) own: u32,
}

impl<T: Clone + 'static, R: BatchReader<T>> InputFeeder<T, R> {
    pub(crate) fn new(input: SourceInputs<T>, reader: R) -> Self {
        InputFeeder {
            own: input.worker.0 as u32,
            input: Some(input),
            reader,
            buffer: Default::default(),
        }
    }
}

impl<T: Clone + 'static, R: BatchReader<T>> Feeder for InputFeeder<T, R> {
    fn advance_to(&mut self, t: u64) {
        if let Some(input) = self.input.as_mut() {
            for handle in [&mut input.local, &mut input.shipped] {
                if *handle.time() < t {
                    handle.advance_to(t);
                }
            }
        }
    }

    fn read(&mut self, slot: &BatchSlot) -> SourceInput {
        self.advance_to(slot.time.millis());
        let mut out = BatchOut::new(self.own);
        let malformed = self.reader.read_batch(slot, &mut out);
        let parts = out.into_parts();
        let records = parts
            .iter()
            .map(|p| self.reader.records_in(&p.records))
            .sum();
        self.buffer.extend(
            parts
                .into_iter()
                .map(|p| (p.id, p.records.into_iter(), false)),
        );
        // Other workers' partitions first (a stable sort: each group keeps its order): they
        // leave at once, and those workers work on them while this one steps through its own.
        if let Some(input) = &self.input {
            let (index, peers) = input.worker;
            self.buffer
                .make_contiguous()
                .sort_by_key(|(id, _, _)| id.worker(peers) == index);
        }
        SourceInput {
            source: self.reader.name(),
            records,
            malformed,
            partitions: self.reader.partitions_read(),
            receiver: self.reader.receiver_input(),
        }
    }

    fn send_chunk(&mut self, max: usize) -> bool {
        let Some(input) = self.input.as_mut() else {
            self.buffer.clear();
            return false;
        };
        // Up to `max` records, in chunks cut from the front of each partition (each chunk a
        // vector of its own size, in order, so the partition keeps its order).
        let mut room = max.max(1);
        while room > 0 {
            let Some((id, rest, announced)) = self.buffer.front_mut() else {
                break;
            };
            let chunk: Vec<T> = rest.by_ref().take(room).collect();
            if !chunk.is_empty() || !*announced {
                // An empty chunk announces its partition and costs no room.
                room -= chunk.len();
                *announced = true;
                let (index, peers) = input.worker;
                let handle = if id.worker(peers) == index {
                    &mut input.local
                } else {
                    &mut input.shipped
                };
                handle.send(Part::new(id.clone(), chunk));
            }
            if rest.len() == 0 {
                self.buffer.pop_front();
            }
        }
        input.local.flush();
        input.shipped.flush();
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

    fn identity(&self) -> String {
        self.reader.identity()
    }

    fn planned_records(&self, plan: &[u8]) -> Option<u64> {
        self.reader.planned_records(plan)
    }

    fn plan(&mut self, slot: &BatchSlot) -> Option<Vec<u8>> {
        self.reader.plan(slot)
    }

    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) -> crate::Result<()> {
        self.reader.recover(recovery)
    }

    fn at_batch_time(&mut self) -> Option<BatchTimeHook> {
        self.reader.at_batch_time()
    }
}
