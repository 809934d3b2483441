//! Per-batch events: what Spark's `StreamingListener` and Streaming tab show.
//!
//! A listener is called once per process for every completed batch: input records per source
//! (on process 0 of a job of several processes, every process's input: the whole job's; on the
//! others, their own workers'), scheduling delay (waiting for earlier batches), processing time
//! and total delay (a batch completes when every worker of every process finished it), and the
//! state of this process's workers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::time::{Millis, Time};

/// Input seen by one source in one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceInput {
    /// The source's name (`socket 127.0.0.1:9999`, `queue`, `generator`).
    pub source: String,
    /// Records the batch holds.
    pub records: u64,
    /// Malformed records set aside in this batch (counted, never silently dropped).
    pub malformed: u64,
    /// What the batch read of each partition, for sources that read ranges (Kafka).
    pub partitions: Vec<PartitionInput>,
    /// For a receiver (socket, Kafka receiver): what it took for the batch and whether it held
    /// its sender back.
    #[serde(default)]
    pub receiver: Option<ReceiverInput>,
}

impl SourceInput {
    /// Adds another worker's or process's input of the same source and batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::listener::SourceInput;
    /// let mut a = SourceInput { source: "s".into(), records: 2, ..Default::default() };
    /// a.merge(SourceInput { source: "s".into(), records: 3, malformed: 1, ..Default::default() });
    /// assert_eq!((a.records, a.malformed), (5, 1));
    /// ```
    pub fn merge(&mut self, other: SourceInput) {
        self.records += other.records;
        self.malformed += other.malformed;
        self.partitions.extend(other.partitions);
        // A source has one receiver, on one worker.
        if self.receiver.is_none() {
            self.receiver = other.receiver;
        }
    }
}

/// What a receiver did for one batch.
///
/// Memory is bounded by `max_buffered_bytes`; when the input comes faster than the job takes
/// it, the receiver stops reading (TCP holds the sender back) and `held_back_ms` says for how
/// long: the job's lag behind its input, which a socket cannot otherwise show.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceiverInput {
    /// Lines (records) the batch took from the receiver's buffer.
    pub lines: u64,
    /// Memory they held (text plus a `String` each).
    pub bytes: u64,
    /// The receiver's buffer bound.
    pub max_buffered_bytes: u64,
    /// How long the receiver waited, since the batch before, for room in its buffer or for its
    /// rate: the time its sender was held back (0 when the job keeps up).
    pub held_back_ms: u64,
    /// The rate limit in force, lines/s (`max_rate` or backpressure's), if any.
    pub rate_limit: Option<u64>,
    /// The receiver's latest error (a refused connection, a connection lost) and when it
    /// happened, ms since the epoch (Spark's `ReceiverInfo.lastError`); `None` when it has had
    /// none.
    #[serde(default)]
    pub last_error: Option<(u64, String)>,
}

/// What one batch read of one partition of a source: Spark's offset range of a Kafka
/// partition (`topic-partition`, `[from, until)`), with how far the partition's end was ahead
/// of `until` when the batch was planned (the consumer lag the batch left).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionInput {
    /// The partition (`topic-partition` for Kafka).
    pub partition: String,
    /// The first offset read.
    pub from: i64,
    /// One past the last offset read.
    pub until: i64,
    /// Records in the partition after `until` when the batch was planned.
    pub lag: i64,
}

/// The size of one stateful operator's state after a batch (summed over this process's
/// workers). `approx_bytes` counts the keys' and values' own sizes plus a word per entry, not
/// the heap data they point to (string contents).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateSize {
    /// The operator's name (set with `.name(..)` on its spec).
    pub operator: String,
    /// Keys with state.
    pub keys: u64,
    /// Approximate bytes of state.
    pub approx_bytes: u64,
}

impl StateSize {
    /// The size of `keys` entries of `K` and `V` held by `operator`.
    pub fn of<K, V>(operator: &str, keys: usize) -> Self {
        StateSize {
            operator: operator.to_owned(),
            keys: keys as u64,
            approx_bytes: (keys * (std::mem::size_of::<K>() + std::mem::size_of::<V>() + 8)) as u64,
        }
    }
}

/// One stateful operator's snapshot after a batch (a checkpoint write), summed over this
/// process's workers.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotWrite {
    /// The operator's name.
    pub operator: String,
    /// Bytes encoded on the batch's path (summed over the workers).
    pub bytes: u64,
    /// Entries: every key of a worker that encoded a full part; for an incremental one, the
    /// changes its batches logged since its previous snapshot (a key changed in several batches
    /// counts each time; see
    /// [`StreamingConfig::incremental_snapshots`](crate::StreamingConfig::incremental_snapshots)).
    pub keys: u64,
    /// Workers that encoded a full part.
    pub full_parts: u64,
    /// Time the batch spent on it, summed over the workers: encoding every key for a full part,
    /// handing the logged changes over for an incremental one. The parts are written to disk,
    /// and changes folded and compacted, by a background thread while the next batches run.
    pub duration: Duration,
    /// Parts of this operator whose background write failed since the operator's previous
    /// snapshot (a full disk…): that snapshot is incomplete, and recovery uses an older one.
    pub failed: u64,
}

/// One output operation of a batch (Spark's `OutputOperationInfo`): finished, after
/// `duration` from the batch's processing start (outputs run concurrently in timely, so the
/// last one's duration is the batch's processing time).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputOp {
    /// Its number, in the order the job declared its outputs (Spark's `outputOpId`).
    pub id: usize,
    /// `print`, `foreachRDD`, `foreachPartition`, `saveAsTextFiles`.
    pub name: String,
    /// From the batch's processing start until this output finished it on every worker of this
    /// process.
    pub duration: Duration,
}

/// What happened to one batch in this process.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchInfo {
    /// The batch time.
    pub batch_time: Time,
    /// Input per source.
    pub inputs: Vec<SourceInput>,
    /// From the batch being due (its time on the job's clock, as Spark counts from the batch
    /// time; with as-fast-as-possible pacing, its cut) to its processing starting: a batch cut
    /// late — catching up after a restart, or behind a slow one — shows how late.
    pub scheduling_delay: Duration,
    /// From processing starting to every output of the batch having finished.
    pub processing_time: Duration,
    /// From the batch being due to every output having finished.
    pub total_delay: Duration,
    /// State size of every stateful operator after this batch, on this process's workers.
    /// Empty on process 0 of a job of several processes: the whole job's state of the batch
    /// follows in [`StreamingListener::on_batch_state`] once every process has reported it.
    pub state: Vec<StateSize>,
    /// The snapshots written after this batch (none unless a checkpoint was due).
    pub snapshots: Vec<SnapshotWrite>,
    /// The job's output operations, each finished (a failed output fails the job).
    pub outputs: Vec<OutputOp>,
}

impl BatchInfo {
    /// All input records of the batch.
    pub fn num_records(&self) -> u64 {
        self.inputs.iter().map(|s| s.records).sum()
    }
}

/// A batch the job generator generated at its time (see
/// [`StreamingListener::on_batch_submitted`]).
///
/// ```
/// let b = sluice::listener::SubmittedBatch { batch_time: sluice::Time::from_millis(2000), num_records: Some(200) };
/// assert_eq!(b.num_records, Some(200));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmittedBatch {
    /// The batch's time.
    pub batch_time: Time,
    /// The records it holds, when its sources fixed them at generation (Kafka direct streams:
    /// the offsets up to the log's end at the batch time, within a static rate limit; with
    /// backpressure the batch may hold fewer). `None` when a source decides its input only when
    /// the batch is cut (receivers) or cannot count it ahead (directories).
    pub num_records: Option<u64>,
}

/// Receives per-batch events. Called from a worker thread: keep it quick.
///
/// # Examples
///
/// ```
/// use sluice::listener::{BatchInfo, StreamingListener};
/// struct Log;
/// impl StreamingListener for Log {
///     fn on_batch_completed(&self, batch: &BatchInfo) {
///         eprintln!("{}: {} records in {:?}", batch.batch_time, batch.num_records(), batch.processing_time);
///     }
/// }
/// ```
pub trait StreamingListener: Send + Sync + 'static {
    /// A batch's outputs have all finished.
    fn on_batch_completed(&self, batch: &BatchInfo);

    /// A batch was generated at its time (Spark's `onBatchSubmitted`): its sources fixed what
    /// belongs to it; it is *queued* until a worker cuts it
    /// ([`on_batch_started`](StreamingListener::on_batch_started)), which is at once unless the
    /// workers are busy with earlier batches.
    fn on_batch_submitted(&self, _batch: &SubmittedBatch) {}

    /// Batch `batch_time` was cut and entered the dataflow on this process (Spark's
    /// `onBatchStarted`; batches run concurrently in timely, so it is processing from here on).
    fn on_batch_started(&self, _batch_time: Time) {}

    /// Process 0 of a job of several processes: the whole job's state after batch
    /// `batch_time` (summed over every process), which arrives a batch or so after the batch
    /// completed (each process sends its share with the next batch it starts).
    fn on_batch_state(&self, _batch_time: Time, _state: &[StateSize]) {}

    /// Output operation `id` (`name`) finished batch `batch_time` on every worker of this
    /// process (Spark's `onOutputOperationCompleted`), while the batch may still be running.
    fn on_output_operation_completed(&self, _batch_time: Time, _id: usize, _name: &str) {}

    /// Output operation `output` failed batch `batch_time` for good (`reason`); the job stops
    /// with this error (Spark's `onOutputOperationCompleted` with a failure reason).
    fn on_batch_failed(&self, _batch_time: Time, _output: &str, _reason: &str) {}
}

/// A shared listener listens too, so that its owner can read what it kept (the web UI's
/// [`Status`](crate::webui::Status), a test's recorder).
impl<T: StreamingListener + ?Sized> StreamingListener for Arc<T> {
    fn on_batch_completed(&self, batch: &BatchInfo) {
        (**self).on_batch_completed(batch);
    }

    fn on_batch_submitted(&self, batch: &SubmittedBatch) {
        (**self).on_batch_submitted(batch);
    }

    fn on_batch_started(&self, batch_time: Time) {
        (**self).on_batch_started(batch_time);
    }

    fn on_output_operation_completed(&self, batch_time: Time, id: usize, name: &str) {
        (**self).on_output_operation_completed(batch_time, id, name);
    }

    fn on_batch_state(&self, batch_time: Time, state: &[StateSize]) {
        (**self).on_batch_state(batch_time, state);
    }

    fn on_batch_failed(&self, batch_time: Time, output: &str, reason: &str) {
        (**self).on_batch_failed(batch_time, output, reason);
    }
}

/// A listener that keeps every [`BatchInfo`], for tests and benchmarks.
///
/// # Examples
///
/// ```
/// let recorder = sluice::listener::BatchRecorder::new();
/// assert!(recorder.batches().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct BatchRecorder {
    batches: Arc<Mutex<Vec<BatchInfo>>>,
}

impl BatchRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }
    /// The batches completed so far, in completion order.
    pub fn batches(&self) -> Vec<BatchInfo> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl StreamingListener for BatchRecorder {
    fn on_batch_completed(&self, batch: &BatchInfo) {
        if let Ok(mut b) = self.batches.lock() {
            b.push(batch.clone());
        }
    }
}

/// Logs every batch through `tracing` at debug level (`-v` on the command line).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogListener;

impl StreamingListener for LogListener {
    fn on_batch_completed(&self, b: &BatchInfo) {
        tracing::debug!(
            batch = %b.batch_time,
            records = b.num_records(),
            scheduling_delay_ms = %Millis(b.scheduling_delay),
            processing_ms = %Millis(b.processing_time),
            total_delay_ms = %Millis(b.total_delay),
            "batch completed"
        );
    }
}
