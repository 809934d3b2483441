//! Checkpoints: batch plans, the completed-batch marker and state snapshots in one directory
//! (`ARCHITECTURE.md` §6), and what a restarted job recovers from them.
//!
//! Layout of a checkpoint directory:
//!
//! ```text
//! metadata                          batch interval, the job's first batch ("zero")
//! plans/<start>-w<worker>-<run>.log  each batch's plan per source, appended before the batch runs
//! generated/<start>-p<process>-<run>.log  what the job generator fixed for each batch at its
//!                                   batch time (Kafka's log-end offsets, a directory's new files)
//! completed                         the latest batch whose outputs all finished (process 0)
//! state-<t>/<operator>.part-<w>-of-<n>  worker w's share of an operator's state after batch t:
//!                                   full, or the keys changed since a full part of an earlier
//!                                   snapshot (a delta on its base)
//! state-<t>/MANIFEST                the snapshot is complete: written last, after every part
//! ```
//!
//! Every file is framed (version, kind, checksum) and written atomically, see `checkpoint/file.rs`.
//! State parts are encoded on their workers and written by a background thread (`parts`), so a
//! snapshot never holds a batch up for the disk; the manifest follows once every part is there.
//! Snapshots are incremental (`delta`): operators log their changes as they make them, a
//! snapshot hands the log over, and the background thread turns it into a delta on the last full
//! part, or compacts it into a new full part, so a restore reads at most two parts per worker.
//!
//! **Recovery.** A restarted job is always built from code. Then:
//! 1. the newest complete snapshot `t*` whose parts all verify is chosen (a corrupt one is
//!    skipped with a warning); when the job has windows of length `L`, `t*` must be old enough
//!    that replaying from it refills the windows before the first output (`t* ≤ c + i - L`);
//! 2. every stateful operator restores its state of `t*` by its stable name (operators whose
//!    name is not in the snapshot start empty; keys are re-sharded when the worker count changed);
//! 3. batches `t* + i …` are replayed from their recorded plans with identical content: up to
//!    the completed batch `c` with outputs switched off (their outputs already happened), and
//!    from `c + i` on with outputs on (a sink sees each of these batches again: idempotent and
//!    transactional sinks make that exactly-once);
//! 4. new batches follow.

pub(crate) mod codec;
mod delta;
pub(crate) mod file;
pub(crate) mod generated;
pub mod inspect;
#[cfg(feature = "files")]
pub(crate) mod mirror;
pub(crate) mod owner;
mod parts;
pub(crate) mod plans;
mod recovery;
mod snapshot;
pub(crate) mod sources;
pub(crate) mod storage;
mod writer;

pub use codec::CodecError;
pub(crate) use delta::{Changelog, FullEntry};
pub use file::CheckpointError;
pub use inspect::{Inspection, SnapshotEntry, StoredOffset, inspect};
pub use plans::SourceRecovery;
pub(crate) use snapshot::{StateStore, file_name};

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use file::{Kind, read_framed};
use snapshot::Snapshot;
use storage::Storage;
use writer::Msg;

use crate::error::{Result, SluiceError};

/// Where checkpoints go and how often state is snapshotted.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let config = sluice::StreamingConfig::new(Duration::from_secs(2))?
///     .checkpoint("/tmp/sluice-chk")
///     .checkpoint_interval(Duration::from_secs(20));
/// # Ok::<(), sluice::SluiceError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// The directory (shared storage when the job runs as several processes).
    pub dir: PathBuf,
    /// Snapshot state every this many ms (a multiple of the batch interval); `None`: every 10
    /// batch intervals, as Spark.
    pub interval_ms: Option<u64>,
    /// Snapshots are built from the changes operators log as they make them, as deltas on the
    /// last full snapshot (the default); `false`: every snapshot batch encodes the whole state.
    pub incremental: bool,
    /// A restart whose sources differ from the checkpoint's drops the input the old ones
    /// planned and no snapshot counted (logged with how much), instead of being refused.
    pub accept_source_change: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Metadata {
    batch_ms: u64,
    zero: u64,
    /// The job's name (`StreamingConfig::app_name`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<String>,
}

/// A job's checkpoint, shared by the workers of a process.
pub(crate) struct Checkpoint {
    pub(crate) dir: PathBuf,
    /// Where its writes are durable (see [`storage`]).
    pub(crate) storage: Storage,
    pub(crate) batch_ms: u64,
    pub(crate) every_ms: u64,
    /// Whether state parts may be deltas (`CheckpointConfig::incremental`).
    pub(crate) incremental: bool,
    /// The job's first batch ever.
    pub(crate) zero: u64,
    run: u64,
    /// Recorded plans: batch → source key → plans from every worker.
    plans: Mutex<plans::Plans>,
    /// Generated batches (`generated`): batch → source key → samples from every worker.
    generated: Mutex<plans::Plans>,
    completed: Option<u64>,
    snapshots: Vec<Arc<Snapshot>>,
    /// Decided once the dataflow is built (it depends on the windows).
    chosen: Mutex<Option<Option<Arc<Snapshot>>>>,
    operators: Mutex<BTreeSet<String>>,
    /// Streams' own checkpoint intervals (`Stateful::checkpoint`): snapshots are taken at their
    /// multiples too.
    stream_intervals: Mutex<BTreeSet<u64>>,
    max_window_ms: AtomicU64,
    writer: Mutex<Option<Sender<Msg>>>,
    /// Writes state parts in the background.
    parts: parts::PartWriter,
    /// Per operator and worker whose chain of parts resumed from the restored snapshot, that
    /// snapshot's batch (taken by the run's first save).
    resumed: Mutex<std::collections::HashMap<(String, usize), u64>>,
    /// Whether there was anything to recover.
    pub(crate) resuming: bool,
    /// See [`CheckpointConfig::accept_source_change`].
    accept_source_change: bool,
    /// This process's exclusive hold on the checkpoint, until the job ends ([`release`]).
    ///
    /// [`release`]: Checkpoint::release
    owner: Mutex<Option<owner::Owner>>,
}

/// Takes `dir` for this process (see [`owner`]) and returns the directory it works in, and
/// the storage that makes its writes durable, before anything there is read: a local
/// directory is locked, an object store's lease is taken before its working copy is made.
fn own(
    dir: &std::path::Path,
    process: usize,
    job: Option<&str>,
) -> Result<(owner::Owner, std::path::PathBuf, Storage)> {
    #[cfg(feature = "files")]
    if mirror::is_remote(dir) {
        let url = dir.to_string_lossy();
        let owner = owner::lease(&url, process, job)?;
        let mirror = mirror::open_fenced(&url, Some(Arc::clone(&owner.fenced)))?;
        let local = mirror.local().to_owned();
        return Ok((owner, local, Storage::mirrored(mirror)));
    }
    let (local, storage) = working_dir(dir)?;
    std::fs::create_dir_all(&local).map_err(|e| SluiceError::Io {
        action: "cannot create the checkpoint directory",
        path: local.clone(),
        source: e,
    })?;
    let owner = owner::lock_local(&local, process, job)?;
    Ok((owner, local, storage))
}

/// The directory the checkpoint works in — `dir` itself, or for a checkpoint on an object
/// store a fresh local working copy of it (see `mirror`) — and its storage (close it when
/// done, which removes a working copy).
pub(crate) fn working_dir(dir: &std::path::Path) -> Result<(std::path::PathBuf, Storage)> {
    #[cfg(feature = "files")]
    if mirror::is_remote(dir) {
        let mirror = mirror::open(&dir.to_string_lossy())?;
        return Ok((mirror.local().to_owned(), Storage::mirrored(mirror)));
    }
    let text = dir.to_string_lossy();
    if text.contains("://") && !text.starts_with("file://") {
        return Err(SluiceError::InvalidConfig {
            problem: format!(
                "the checkpoint `{text}` is on an object store, which this build of sluice cannot reach"
            ),
            fix: "rebuild with `--features s3` (or `hdfs`), or give a local directory".into(),
        });
    }
    Ok((dir.to_owned(), Storage::local()))
}

fn ck_err(problem: String) -> SluiceError {
    SluiceError::Checkpoint {
        problem,
        fix: "check the checkpoint directory (a new, empty directory starts the job afresh)".into(),
    }
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint at `config.dir` and loads what it holds.
    pub(crate) fn open(
        config: &CheckpointConfig,
        batch_ms: u64,
        proposed_first: u64,
        job: Option<&str>,
        process: usize,
    ) -> Result<Arc<Self>> {
        let every_ms = config.interval_ms.unwrap_or(10 * batch_ms);
        if every_ms == 0 || !every_ms.is_multiple_of(batch_ms) {
            return Err(SluiceError::NotAMultipleOfBatch {
                what: "checkpoint interval",
                given_ms: every_ms,
                batch_ms,
                suggestion: every_ms.div_ceil(batch_ms).max(1) * batch_ms,
            });
        }
        let (owner, dir, storage) = own(&config.dir, process, job)?;
        // A checkpoint of another format version is refused before anything else is read.
        let meta_path = dir.join("metadata");
        let meta = match read_framed(&meta_path, Kind::Metadata) {
            Err(e @ CheckpointError::Version { .. }) => return Err(e.into()),
            other => other,
        };
        let plans = plans::load_plans(&dir)?;
        let generated = plans::load_records(&dir.join("generated"))?;
        let completed = match read_framed(&dir.join("completed"), Kind::Completed) {
            Err(e @ CheckpointError::Version { .. }) => return Err(e.into()),
            read => read.ok().and_then(|b| codec::decode::<u64>(&b).ok()),
        };
        let snapshots = snapshot::load_snapshots(&dir, batch_ms)?;
        // Finished batches alone (every snapshot lost, a source without plans) are a job to
        // resume too: recovery then decides whether it can.
        let resuming = !plans.is_empty()
            || !snapshots.is_empty()
            || completed.is_some()
            || !generated.is_empty();
        let zero = match meta {
            Ok(bytes) if resuming => {
                let meta: Metadata = serde_json::from_slice(&bytes)
                    .map_err(|e| ck_err(format!("{} is unreadable: {e}", meta_path.display())))?;
                if let (Some(theirs), Some(ours)) = (meta.job.as_deref(), job)
                    && theirs != ours
                {
                    return Err(SluiceError::InvalidConfig {
                        problem: format!(
                            "the checkpoint in {} belongs to the job `{theirs}`; this job is `{ours}`",
                            dir.display()
                        ),
                        fix: format!(
                            "give this job a checkpoint directory of its own, or run `{theirs}` on this one"
                        ),
                    });
                }
                if meta.batch_ms != batch_ms {
                    return Err(SluiceError::InvalidConfig {
                        problem: format!(
                            "the checkpoint in {} was written with a batch interval of {} ms, this job has {batch_ms} ms",
                            dir.display(),
                            meta.batch_ms
                        ),
                        fix: format!(
                            "restart with a batch interval of {} ms, or use a new checkpoint directory",
                            meta.batch_ms
                        ),
                    });
                }
                meta.zero
            }
            Err(e) if resuming => return Err(ck_err(format!("{e}"))),
            Err(_) if !meta_path.exists() => {
                let meta = Metadata {
                    batch_ms,
                    zero: proposed_first,
                    job: job.map(str::to_owned),
                };
                let bytes = serde_json::to_vec(&meta).map_err(|e| ck_err(e.to_string()))?;
                // Created exclusively: of two first starts at once, one writes it and the other
                // takes what it wrote (the other processes of one job), or is refused.
                if storage.write_framed_new(&meta_path, Kind::Metadata, &bytes)? {
                    proposed_first
                } else {
                    let theirs = read_framed(&meta_path, Kind::Metadata)?;
                    let theirs: Metadata = serde_json::from_slice(&theirs).map_err(|e| {
                        ck_err(format!("{} is unreadable: {e}", meta_path.display()))
                    })?;
                    if theirs.job.as_deref() != job || theirs.batch_ms != batch_ms {
                        return Err(SluiceError::CheckpointInUse {
                            dir: config.dir.clone(),
                            holder: format!(
                                "a job that started at the same moment (`{}`, batch interval {} ms)",
                                theirs.job.as_deref().unwrap_or("unnamed"),
                                theirs.batch_ms
                            ),
                        });
                    }
                    theirs.zero
                }
            }
            _ => {
                // A checkpoint that recorded nothing: started afresh.
                let meta = Metadata {
                    batch_ms,
                    zero: proposed_first,
                    job: job.map(str::to_owned),
                };
                let bytes = serde_json::to_vec(&meta).map_err(|e| ck_err(e.to_string()))?;
                storage.write_framed(&meta_path, Kind::Metadata, &bytes)?;
                proposed_first
            }
        };
        if resuming {
            tracing::info!(
                "checkpoint {}: {} recorded batch plans, last completed batch {:?}, {} usable snapshots",
                dir.display(),
                plans.len(),
                completed,
                snapshots.len()
            );
        }
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(Arc::new(Checkpoint {
            dir,
            parts: parts::PartWriter::new(storage.clone()),
            storage,
            batch_ms,
            every_ms,
            incremental: config.incremental,
            zero,
            run,
            plans: Mutex::new(plans),
            generated: Mutex::new(generated),
            completed,
            snapshots,
            chosen: Mutex::new(None),
            operators: Mutex::new(BTreeSet::new()),
            stream_intervals: Mutex::new(BTreeSet::new()),
            max_window_ms: AtomicU64::new(0),
            writer: Mutex::new(None),
            resumed: Mutex::new(Default::default()),
            resuming,
            accept_source_change: config.accept_source_change,
            owner: Mutex::new(Some(owner)),
        }))
    }

    /// A window of `length_ms` exists: recovery must replay enough batches to refill it.
    pub(crate) fn register_window(&self, length_ms: u64) {
        self.max_window_ms.fetch_max(length_ms, Ordering::SeqCst);
    }

    /// A stateful operator named `name` exists (every worker registers the same names).
    pub(crate) fn register_operator(&self, name: &str) {
        lock(&self.operators).insert(name.to_owned());
    }

    /// Gives up this process's hold on the checkpoint (the job has ended and flushed).
    pub(crate) fn release(&self) {
        drop(lock(&self.owner).take());
        // A checkpoint on an object store leaves no working copy behind.
        self.storage.close();
    }

    /// Whether the job keeps anything across batches that a replay rebuilds (a stateful
    /// operator or a window).
    pub(crate) fn keeps_state(&self) -> bool {
        !lock(&self.operators).is_empty() || self.max_window_ms.load(Ordering::SeqCst) > 0
    }

    /// A stream asks for snapshots every `interval_ms` (a multiple of the batch interval).
    pub(crate) fn register_interval(&self, interval_ms: u64) {
        lock(&self.stream_intervals).insert(interval_ms);
    }

    /// Whether batch `t` ends a checkpoint interval: the job's, or a stream's own.
    pub(crate) fn on_schedule(&self, t: u64) -> bool {
        if t < self.zero {
            return false;
        }
        let since = t - self.zero + self.batch_ms;
        since.is_multiple_of(self.every_ms)
            || lock(&self.stream_intervals)
                .iter()
                .any(|i| since.is_multiple_of(*i))
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
