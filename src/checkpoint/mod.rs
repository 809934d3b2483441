//! Checkpoints: batch plans, the completed-batch marker and state snapshots in one directory
//! (`shared/DESIGN.md` §6), and what a restarted job recovers from them.
//!
//! Layout of a checkpoint directory:
//!
//! ```text
//! metadata                          batch interval, the job's first batch ("zero")
//! plans/<start>-w<worker>-<run>.log  each batch's plan per source, appended before the batch runs
//! completed                         the latest batch whose outputs all finished (process 0)
//! state-<t>/<operator>.part-<w>-of-<n>  worker w's share of an operator's state after batch t
//! state-<t>/MANIFEST                the snapshot is complete: written last, after every part
//! ```
//!
//! Every file is framed (version, kind, checksum) and written atomically, see [`file`].
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

pub mod file;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use file::{read_framed, read_log, write_framed, Kind};

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
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Metadata {
    batch_ms: u64,
    zero: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    batch_ms: u64,
    t: u64,
    peers: usize,
    operators: Vec<String>,
}

/// One batch's plan on one worker: per source (by its stable key), the source's plan bytes.
#[derive(serde::Serialize, serde::Deserialize)]
struct PlanRecord {
    t: u64,
    sources: Vec<(String, Vec<u8>)>,
}

/// A snapshot that verified.
pub(crate) struct Snapshot {
    pub(crate) t: u64,
    pub(crate) peers: usize,
    /// Per operator name, per worker of the run that wrote it, the part's bytes.
    parts: Mutex<BTreeMap<String, Vec<Option<Vec<u8>>>>>,
}

/// What a source needs to resume: its recorded plans, and which batches to replay silently.
#[derive(Debug, Default)]
pub struct SourceRecovery {
    /// The snapshot batch the job restarts after (`None`: from the job's first batch).
    pub after: Option<u64>,
    /// Recorded plans of this source, per batch, from every worker that recorded one.
    pub plans: BTreeMap<u64, Vec<Vec<u8>>>,
    /// Batches up to this one finished all their outputs before the restart.
    pub completed: Option<u64>,
}

enum Msg {
    Completed(u64),
    Manifest { t: u64, peers: usize },
    Flush(Sender<()>),
}

/// A job's checkpoint, shared by the workers of a process.
pub(crate) struct Checkpoint {
    pub(crate) dir: PathBuf,
    pub(crate) batch_ms: u64,
    pub(crate) every_ms: u64,
    /// The job's first batch ever.
    pub(crate) zero: u64,
    run: u64,
    /// Recorded plans: batch → source key → plans from every worker.
    plans: Mutex<BTreeMap<u64, BTreeMap<String, Vec<Vec<u8>>>>>,
    completed: Option<u64>,
    snapshots: Vec<Arc<Snapshot>>,
    /// Decided once the dataflow is built (it depends on the windows).
    chosen: Mutex<Option<Option<Arc<Snapshot>>>>,
    operators: Mutex<BTreeSet<String>>,
    max_window_ms: AtomicU64,
    writer: Mutex<Option<Sender<Msg>>>,
    /// Whether there was anything to recover.
    pub(crate) resuming: bool,
}

fn ck_err(problem: String) -> SluiceError {
    SluiceError::InvalidConfig {
        problem,
        fix: "check the checkpoint directory (a new, empty directory starts the job afresh)".into(),
    }
}

fn parse_state_dir(name: &str) -> Option<u64> {
    name.strip_prefix("state-")?.parse().ok()
}

/// A file-name-safe form of an operator name.
pub(crate) fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn part_path(dir: &Path, t: u64, operator: &str, worker: usize, peers: usize) -> PathBuf {
    dir.join(format!("state-{t}"))
        .join(format!("{}.part-{worker}-of-{peers}", file_name(operator)))
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint at `config.dir` and loads what it holds.
    pub(crate) fn open(
        config: &CheckpointConfig,
        batch_ms: u64,
        proposed_first: u64,
    ) -> Result<Arc<Self>> {
        let dir = config.dir.clone();
        let every_ms = config.interval_ms.unwrap_or(10 * batch_ms);
        if every_ms == 0 || !every_ms.is_multiple_of(batch_ms) {
            return Err(SluiceError::NotAMultipleOfBatch {
                what: "checkpoint interval",
                given_ms: every_ms,
                batch_ms,
                suggestion: every_ms.div_ceil(batch_ms).max(1) * batch_ms,
            });
        }
        std::fs::create_dir_all(&dir).map_err(|e| SluiceError::Io {
            action: "cannot create the checkpoint directory",
            path: dir.clone(),
            source: e,
        })?;
        // Plans: every record of every log.
        let mut plans: BTreeMap<u64, BTreeMap<String, Vec<Vec<u8>>>> = BTreeMap::new();
        let plan_dir = dir.join("plans");
        if let Ok(entries) = std::fs::read_dir(&plan_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "log") {
                    continue;
                }
                let records = match read_log(&path) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("checkpoint: skipping plan log: {e}");
                        continue;
                    }
                };
                for bytes in records {
                    match bincode::deserialize::<PlanRecord>(&bytes) {
                        Ok(r) => {
                            let batch = plans.entry(r.t).or_default();
                            for (key, plan) in r.sources {
                                batch.entry(key).or_default().push(plan);
                            }
                        }
                        Err(e) => tracing::warn!(
                            "checkpoint: an unreadable plan in {}: {e}",
                            path.display()
                        ),
                    }
                }
            }
        }
        let completed = read_framed(&dir.join("completed"), Kind::Completed)
            .ok()
            .and_then(|b| bincode::deserialize::<u64>(&b).ok());
        let mut snapshots = Vec::new();
        let mut names: Vec<u64> = std::fs::read_dir(&dir)
            .map(|es| {
                es.flatten()
                    .filter_map(|e| parse_state_dir(&e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_unstable_by(|a, b| b.cmp(a));
        for t in names {
            match load_snapshot(&dir, t, batch_ms) {
                Ok(s) => snapshots.push(Arc::new(s)),
                Err(e) => tracing::warn!(
                    "checkpoint: the snapshot of batch {t} ms cannot be used ({e}); trying an older one"
                ),
            }
        }
        let meta_path = dir.join("metadata");
        let resuming = !plans.is_empty() || !snapshots.is_empty();
        let zero = match read_framed(&meta_path, Kind::Metadata) {
            Ok(bytes) if resuming => {
                let meta: Metadata = serde_json::from_slice(&bytes)
                    .map_err(|e| ck_err(format!("{} is unreadable: {e}", meta_path.display())))?;
                if meta.batch_ms != batch_ms {
                    return Err(SluiceError::InvalidConfig {
                        problem: format!(
                            "the checkpoint in {} was written with a batch interval of {} ms, this job has {batch_ms} ms",
                            dir.display(),
                            meta.batch_ms
                        ),
                        fix: format!("restart with a batch interval of {} ms, or use a new checkpoint directory", meta.batch_ms),
                    });
                }
                meta.zero
            }
            Err(e) if resuming => return Err(ck_err(format!("{e}"))),
            _ => {
                let meta = Metadata {
                    batch_ms,
                    zero: proposed_first,
                };
                let bytes = serde_json::to_vec(&meta).map_err(|e| ck_err(e.to_string()))?;
                write_framed(&meta_path, Kind::Metadata, &bytes)
                    .map_err(|e| ck_err(e.to_string()))?;
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
            batch_ms,
            every_ms,
            zero,
            run,
            plans: Mutex::new(plans),
            completed,
            snapshots,
            chosen: Mutex::new(None),
            operators: Mutex::new(BTreeSet::new()),
            max_window_ms: AtomicU64::new(0),
            writer: Mutex::new(None),
            resuming,
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

    /// The snapshot recovery restores, decided on first use (after the dataflow is built).
    fn chosen(&self) -> Option<Arc<Snapshot>> {
        let mut chosen = lock(&self.chosen);
        if let Some(c) = chosen.as_ref() {
            return c.clone();
        }
        let i = self.batch_ms;
        let window = self.max_window_ms.load(Ordering::SeqCst);
        let newest = self.snapshots.first().map(|s| s.t);
        let completed = match (self.completed, newest) {
            (Some(c), Some(n)) => Some(c.max(n)),
            (c, n) => c.or(n),
        };
        let pick = completed.and_then(|c| {
            self.snapshots
                .iter()
                .find(|s| s.t + window <= c + i)
                .cloned()
        });
        *chosen = Some(pick.clone());
        pick
    }

    /// The first batch of this run.
    pub(crate) fn first_batch(&self) -> Result<u64> {
        if !self.resuming {
            return Ok(self.zero);
        }
        let plans = lock(&self.plans);
        match self.chosen() {
            Some(s) => {
                tracing::info!(
                    "checkpoint: restoring the state of batch {} ms (written by {} workers); replaying from {} ms",
                    s.t,
                    s.peers,
                    s.t + self.batch_ms
                );
                Ok(s.t + self.batch_ms)
            }
            None => match plans.keys().next() {
                Some(&first) if first > self.zero => Err(ck_err(format!(
                    "{} has no usable snapshot and its batch plans start at {first} ms, after the job's first batch {} ms",
                    self.dir.display(),
                    self.zero
                ))),
                _ => {
                    tracing::info!(
                        "checkpoint: no snapshot to restore; replaying from the job's first batch {} ms",
                        self.zero
                    );
                    Ok(self.zero)
                }
            },
        }
    }

    /// The latest batch recorded by an earlier run: batches up to it may have run their
    /// outputs (in part) before a crash.
    pub(crate) fn last_planned(&self) -> Option<u64> {
        if !self.resuming {
            return None;
        }
        lock(&self.plans).keys().next_back().copied()
    }

    /// The latest batch whose outputs finished before this run (outputs stay off up to it).
    pub(crate) fn completed(&self) -> Option<u64> {
        self.completed
    }

    /// The restored batch, if a snapshot is restored.
    pub(crate) fn restored_batch(&self) -> Option<u64> {
        self.chosen().map(|s| s.t)
    }

    /// What the source with stable key `key` needs to resume.
    pub(crate) fn source_recovery(&self, key: &str) -> SourceRecovery {
        let after = self.restored_batch();
        let plans = lock(&self.plans);
        let from = after.unwrap_or(0);
        SourceRecovery {
            after,
            plans: plans
                .range(from..)
                .filter_map(|(t, by)| by.get(key).map(|p| (*t, p.clone())))
                .collect(),
            completed: self.completed,
        }
    }

    /// Whether batch `t` ends a checkpoint interval.
    pub(crate) fn on_schedule(&self, t: u64) -> bool {
        t >= self.zero && (t - self.zero + self.batch_ms).is_multiple_of(self.every_ms)
    }

    /// Takes this worker's share of operator `name`'s restored state: the parts of the old
    /// workers `j` with `j % peers == worker` (each old part is taken by one new worker, which
    /// routes its keys to their new owners).
    pub(crate) fn take_parts(&self, name: &str, worker: usize, peers: usize) -> Vec<Vec<u8>> {
        let Some(s) = self.chosen() else {
            return Vec::new();
        };
        let mut parts = lock(&s.parts);
        let Some(list) = parts.get_mut(name) else {
            return Vec::new();
        };
        list.iter_mut()
            .enumerate()
            .filter(|(j, _)| j % peers == worker)
            .filter_map(|(_, p)| p.take())
            .collect()
    }

    /// Whether the restored snapshot holds operator `name`.
    pub(crate) fn has_operator(&self, name: &str) -> bool {
        self.chosen()
            .is_some_and(|s| lock(&s.parts).contains_key(name))
    }

    /// Writes worker `worker`'s share of operator `name` after batch `t`.
    pub(crate) fn write_part(
        &self,
        name: &str,
        t: u64,
        worker: usize,
        peers: usize,
        bytes: &[u8],
    ) -> Result<()> {
        let path = part_path(&self.dir, t, name, worker, peers);
        write_framed(&path, Kind::StatePart, bytes).map_err(|e| SluiceError::Io {
            action: "cannot write the state snapshot",
            path,
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Opens this worker's plan log for a segment starting at batch `start`.
    pub(crate) fn plan_log(&self, start: u64, worker: usize) -> Result<file::LogWriter> {
        let path = self
            .dir
            .join("plans")
            .join(format!("{start:020}-w{worker:04}-{}.log", self.run));
        file::LogWriter::create(&path).map_err(|e| ck_err(e.to_string()))
    }

    /// Appends batch `t`'s plans (source key → bytes) to `log`, durably.
    pub(crate) fn record_plan(
        &self,
        log: &mut file::LogWriter,
        t: u64,
        sources: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        let record = PlanRecord { t, sources };
        let bytes = bincode::serialize(&record).map_err(|e| ck_err(e.to_string()))?;
        log.append(&bytes, true).map_err(|e| ck_err(e.to_string()))
    }

    /// Batch `t` finished every output (process 0 records it, in the background).
    pub(crate) fn batch_completed(&self, t: u64, peers: usize, snapshot: bool) {
        let tx = self.writer();
        let _ = tx.send(Msg::Completed(t));
        if snapshot {
            let _ = tx.send(Msg::Manifest { t, peers });
        }
    }

    /// Waits until everything sent to the background writer is on disk.
    pub(crate) fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.writer().send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(60));
        }
    }

    fn writer(&self) -> Sender<Msg> {
        let mut w = lock(&self.writer);
        if let Some(tx) = w.as_ref() {
            return tx.clone();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let job = WriterJob {
            dir: self.dir.clone(),
            batch_ms: self.batch_ms,
            operators: lock(&self.operators).iter().cloned().collect(),
            window_ms: self.max_window_ms.load(Ordering::SeqCst),
        };
        let spawned = std::thread::Builder::new()
            .name("sluice-checkpoint".into())
            .spawn(move || job.run(rx));
        if let Err(e) = spawned {
            tracing::error!("checkpoint: cannot start the writer thread: {e}");
        }
        *w = Some(tx.clone());
        tx
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn load_snapshot(dir: &Path, t: u64, batch_ms: u64) -> std::result::Result<Snapshot, String> {
    let state_dir = dir.join(format!("state-{t}"));
    let bytes =
        read_framed(&state_dir.join("MANIFEST"), Kind::Manifest).map_err(|e| e.to_string())?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if manifest.t != t || manifest.batch_ms != batch_ms {
        return Err(format!(
            "its manifest is for batch {} ms at a {} ms interval",
            manifest.t, manifest.batch_ms
        ));
    }
    let mut parts = BTreeMap::new();
    for op in &manifest.operators {
        let mut list = Vec::with_capacity(manifest.peers);
        for w in 0..manifest.peers {
            let path = part_path(dir, t, op, w, manifest.peers);
            list.push(Some(
                read_framed(&path, Kind::StatePart).map_err(|e| e.to_string())?,
            ));
        }
        parts.insert(op.clone(), list);
    }
    Ok(Snapshot {
        t,
        peers: manifest.peers,
        parts: Mutex::new(parts),
    })
}

/// The background writer: the completed marker, manifests, pruning.
struct WriterJob {
    dir: PathBuf,
    batch_ms: u64,
    operators: Vec<String>,
    window_ms: u64,
}

impl WriterJob {
    fn run(self, rx: Receiver<Msg>) {
        let mut pending_completed: Option<u64> = None;
        while let Ok(msg) = rx.recv() {
            // Coalesce a run of completed markers: only the latest matters.
            let mut msgs = vec![msg];
            while let Ok(m) = rx.try_recv() {
                msgs.push(m);
            }
            for msg in msgs {
                match msg {
                    Msg::Completed(t) => pending_completed = Some(t),
                    Msg::Manifest { t, peers } => {
                        self.write_completed(&mut pending_completed);
                        self.write_manifest(t, peers);
                    }
                    Msg::Flush(done) => {
                        self.write_completed(&mut pending_completed);
                        let _ = done.send(());
                    }
                }
            }
            self.write_completed(&mut pending_completed);
        }
    }

    fn write_completed(&self, pending: &mut Option<u64>) {
        if let Some(t) = pending.take() {
            let bytes = bincode::serialize(&t).unwrap_or_default();
            if let Err(e) = write_framed(&self.dir.join("completed"), Kind::Completed, &bytes) {
                tracing::warn!("checkpoint: cannot record batch {t} ms as completed: {e}");
            }
        }
    }

    fn write_manifest(&self, t: u64, peers: usize) {
        let manifest = Manifest {
            batch_ms: self.batch_ms,
            t,
            peers,
            operators: self.operators.clone(),
        };
        let path = self.dir.join(format!("state-{t}")).join("MANIFEST");
        let written = serde_json::to_vec(&manifest)
            .map_err(|e| e.to_string())
            .and_then(|b| write_framed(&path, Kind::Manifest, &b).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                tracing::debug!("checkpoint: snapshot of batch {t} ms complete");
                self.prune(t);
            }
            Err(e) => tracing::warn!("checkpoint: snapshot of batch {t} ms not written: {e}"),
        }
    }

    /// Keeps the snapshots recovery may need (the two newest, and every one a window replay
    /// could start from) and the plans from the oldest kept snapshot on; removes the rest.
    fn prune(&self, newest: u64) {
        let mut complete: Vec<u64> = Vec::new();
        let mut partial: Vec<u64> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if let Some(t) = parse_state_dir(&e.file_name().to_string_lossy()) {
                    if e.path().join("MANIFEST").exists() {
                        complete.push(t);
                    } else {
                        partial.push(t);
                    }
                }
            }
        }
        complete.sort_unstable_by(|a, b| b.cmp(a));
        // A restore needs a snapshot at or before `newest + i - L`; keep the newest such one.
        let limit = (newest + self.batch_ms).saturating_sub(self.window_ms);
        let mut keep: Vec<u64> = complete.iter().copied().take(2).collect();
        if let Some(&old) = complete.iter().find(|&&t| t <= limit) {
            keep.push(old);
        }
        keep.extend(complete.iter().copied().filter(|&t| t > limit));
        let Some(&oldest) = keep.iter().min() else {
            return;
        };
        for t in complete.iter().chain(&partial) {
            if *t < oldest && !keep.contains(t) {
                let _ = std::fs::remove_dir_all(self.dir.join(format!("state-{t}")));
            }
        }
        // Plan segments (`<start>-w<worker>-<run>.log`) and the receivers' write-ahead log
        // segments (`receiver/<source>/<start>.wal`): a segment started at batch `s` holds what
        // belongs to batches from `s` on, so per series the newest segment starting at or
        // before `oldest` and every later one are kept.
        prune_segments(&self.dir.join("plans"), oldest);
        if let Ok(receivers) = std::fs::read_dir(self.dir.join("receiver")) {
            for r in receivers.flatten() {
                prune_segments(&r.path(), oldest);
            }
        }
    }
}

/// Removes the segments of `dir` that only hold batches before `oldest` (see `prune`).
/// Segment names start with their first batch time, then `-series` or `.extension`.
fn prune_segments(dir: &Path, oldest: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut series: BTreeMap<String, Vec<(u64, PathBuf)>> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(split) = name.find(['-', '.']) else {
            continue;
        };
        let Ok(start) = name[..split].parse::<u64>() else {
            continue;
        };
        series
            .entry(name[split..].to_owned())
            .or_default()
            .push((start, e.path()));
    }
    for (_, mut list) in series {
        list.sort();
        let covering = list.iter().rposition(|(s, _)| *s <= oldest);
        for (i, (_, path)) in list.iter().enumerate() {
            if covering.is_some_and(|c| i < c) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
