//! The narrow handle operators, sources and sinks see of the running job.
//!
//! Operators are built inside timely's dataflow on every worker; they must not reach into the
//! driver's bookkeeping. What they may do is listed here and nothing else:
//!
//! - **fail** the job with an error (the first one wins; the job stops at once);
//! - ask whether the job is **aborted** (stop now) or **stopping** (a stop was asked: a loop that
//!   waits for the world gives up waiting, so a job stops within a second even when its broker
//!   or database is down);
//! - ask whether a **snapshot is due** after a batch and get the operator's [`StateStore`];
//! - **report** the size of its state for the batch metrics;
//! - learn about **replay**: batches up to [`silent_through`](Runtime::silent_through) ran their
//!   outputs before a restart (outputs stay off), and batches up to
//!   [`in_doubt_through`](Runtime::in_doubt_through) may have run them in part (sinks check
//!   their own markers).

//!
//! The handle reaches the job's coordinator through [`Control`], which the coordinator
//! implements: `runtime` stays below `context` in the module layers (operators, sources and
//! sinks import it; it imports none of them).

use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::{Checkpoint, StateStore};
use crate::error::SluiceError;
use crate::listener::{SnapshotWrite, StateSize};

/// Where this worker sits in the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Global worker index: `process * threads + thread`.
    pub index: usize,
    /// All workers of all processes.
    pub peers: usize,
    /// Worker threads per process.
    pub threads: usize,
    /// This worker's process.
    pub process: usize,
    /// The batch interval in ms.
    pub batch_ms: u64,
    /// The job's default number of partitions (Spark's `spark.default.parallelism`): queue
    /// streams are sliced into this many, and shuffles use it unless told otherwise.
    pub parallelism: usize,
    /// How shuffles place keys in partitions (`StreamingConfig::partitioner`).
    pub partitioner: crate::spark_hash::Partitioner,
}

/// What the job's coordinator answers and is told on behalf of the operators (implemented by
/// `context::coordinator::Coordinator`).
pub(crate) trait Control: Send + Sync {
    /// The batch interval, ms.
    fn batch_ms(&self) -> u64;
    /// The job's first batch ever.
    fn zero(&self) -> u64;
    /// Fails the job (the first error wins) and stops it at once.
    fn fail(&self, error: SluiceError);
    /// The job is stopping at once.
    fn aborted(&self) -> bool;
    /// A stop was asked.
    fn stopping(&self) -> bool;
    /// Whether stateful operators save their state after batch `t`.
    fn snapshot_due(&self, t: u64) -> bool;
    /// Output operation `id` (`name`) finished batch `t` on a worker at `at`.
    fn report_output(&self, t: u64, id: usize, name: &str, at: Instant);
    /// An operator's snapshot write after batch `t`.
    fn report_snapshot(&self, t: u64, write: SnapshotWrite);
    /// An operator's state size after batch `t`.
    fn report_state(&self, t: u64, size: StateSize);
    /// Outputs are off up to this batch.
    fn silent_through(&self) -> Option<u64>;
    /// The job's checkpoint, if it has one.
    fn checkpoint(&self) -> Option<&Arc<Checkpoint>>;
}

/// What an operator may ask of and tell the running job (see the module docs).
#[derive(Clone)]
pub(crate) struct Runtime {
    coord: Arc<dyn Control>,
    info: WorkerInfo,
}

impl Runtime {
    pub(crate) fn new(coord: Arc<dyn Control>, info: WorkerInfo) -> Self {
        Runtime { coord, info }
    }

    /// The batch interval, ms.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))] // used by the Kafka source
    pub(crate) fn batch_ms(&self) -> u64 {
        self.coord.batch_ms()
    }

    /// Where this worker sits in the job.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))] // used by the Kafka source and sinks
    pub(crate) fn worker(&self) -> WorkerInfo {
        self.info
    }

    /// Fails the job with `error` (the first error wins) and stops it at once.
    pub(crate) fn fail(&self, error: SluiceError) {
        self.coord.fail(error);
    }

    /// The job is stopping at once (failed, or stopped without grace): drop what is in hand.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))] // used by the Kafka source and sinks
    pub(crate) fn aborted(&self) -> bool {
        self.coord.aborted()
    }

    /// A stop was asked (signal, `stop`, failure): loops waiting for a server give up waiting.
    pub(crate) fn stopping(&self) -> bool {
        self.coord.stopping()
    }

    /// Whether stateful operators save their state after batch `t`.
    pub(crate) fn snapshot_due(&self, t: u64) -> bool {
        self.coord.snapshot_due(t)
    }

    /// Output operation `id` (`name`) finished batch `t` on this worker, now.
    pub(crate) fn report_output(&self, t: u64, id: usize, name: &str) {
        self.coord.report_output(t, id, name, Instant::now());
    }

    /// Reports an operator's snapshot write after batch `t`, for the batch metrics.
    pub(crate) fn report_snapshot(&self, t: u64, write: SnapshotWrite) {
        self.coord.report_snapshot(t, write);
    }

    /// Reports an operator's state size after batch `t`, for the batch metrics.
    pub(crate) fn report_state(&self, t: u64, size: StateSize) {
        self.coord.report_state(t, size);
    }

    /// Outputs are off up to this batch: it finished every output before a restart.
    pub(crate) fn silent_through(&self) -> Option<u64> {
        self.coord.silent_through()
    }

    /// Whether batch `t`'s input can be left out without changing any answer: a batch
    /// replayed with its outputs off (they happened before the restart) in a job that keeps no
    /// state and no window (nothing is rebuilt from it).
    #[cfg_attr(not(feature = "files"), allow(dead_code))]
    pub(crate) fn input_unneeded(&self, t: u64) -> bool {
        self.silent_through().is_some_and(|c| t <= c)
            && self.coord.checkpoint().is_some_and(|c| !c.keeps_state())
    }

    /// Batches up to this one were planned by a run that may have crashed in their outputs.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))] // used by the Kafka source and sinks
    pub(crate) fn in_doubt_through(&self) -> Option<u64> {
        self.coord.checkpoint().and_then(|c| c.last_planned())
    }

    /// The job's first batch ever (window slides are aligned to it).
    pub(crate) fn zero(&self) -> u64 {
        self.coord.zero()
    }

    /// The state store of the stateful operator `name` on this worker; `None` without a
    /// checkpoint.
    pub(crate) fn state_store(&self, name: &str) -> Option<StateStore> {
        self.coord
            .checkpoint()
            .map(|c| StateStore::new(Arc::clone(c), name, self.info.index, self.info.peers))
    }

    /// Registers a stateful operator's name with the checkpoint (its state is kept by it).
    pub(crate) fn register_operator(&self, name: &str) {
        if let Some(c) = self.coord.checkpoint() {
            c.register_operator(name);
        }
    }

    /// Whether the job keeps a checkpoint.
    pub(crate) fn checkpointed(&self) -> bool {
        self.coord.checkpoint().is_some()
    }

    /// A stream's own checkpoint interval: state is snapshotted at its multiples too (no-op
    /// without a checkpoint directory).
    pub(crate) fn register_checkpoint_interval(&self, interval_ms: u64) {
        if let Some(c) = self.coord.checkpoint() {
            c.register_interval(interval_ms);
        }
    }

    /// Registers a window of `length_ms`: recovery replays enough batches to refill it.
    pub(crate) fn register_window(&self, length_ms: u64) {
        if let Some(c) = self.coord.checkpoint() {
            c.register_window(length_ms);
        }
    }

    /// A folder of the checkpoint for a source's own files (`receiver/<name>`); `None`
    /// without a checkpoint.
    pub(crate) fn checkpoint_folder(
        &self,
        folder: &str,
        name: &str,
    ) -> Option<crate::checkpoint::storage::Folder> {
        self.coord
            .checkpoint()
            .map(|c| crate::checkpoint::storage::Folder {
                dir: c.dir.join(folder).join(crate::checkpoint::file_name(name)),
                storage: c.storage.clone(),
            })
    }
}
