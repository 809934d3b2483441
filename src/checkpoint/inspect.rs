//! What a checkpoint directory holds and what a restart will do with it, read without starting
//! a job (`sluice checkpoint show DIR`).
//!
//! The reading is the one a restart does (the same framed files, checksums and version checks),
//! so what it calls usable is what recovery will use. It never writes to the directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::file::{Kind, read_framed};
use super::snapshot::{Manifest, load_part, parse_state_dir};
use super::{Metadata, codec, plans};
use crate::error::{Result, SluiceError};

/// One `state-<t>` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The batch whose state it holds.
    pub batch_ms: u64,
    /// Workers of the run that wrote it (parts per operator).
    pub workers: usize,
    /// Stateful operators it holds, by name, with the bytes of their parts.
    pub operators: Vec<(String, u64)>,
    /// The snapshots whose full parts its delta parts build on (empty: every part is full).
    pub bases: Vec<u64>,
    /// `None` when every part verifies; otherwise why recovery will skip it.
    pub unusable: Option<String>,
}

/// One stored Kafka offset (`kafka-offsets/<group>/<topic>/<partition>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOffset {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset to read (`None`: the file does not hold a number).
    pub offset: Option<i64>,
}

/// Everything `sluice checkpoint show` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The directory read.
    pub dir: PathBuf,
    /// The job that wrote it (`None` for a checkpoint written before jobs were named).
    pub job: Option<String>,
    /// Batch interval, ms.
    pub batch_ms: u64,
    /// The job's first batch ever.
    pub zero_ms: u64,
    /// The latest batch whose outputs all finished.
    pub completed_ms: Option<u64>,
    /// Snapshots, newest first.
    pub snapshots: Vec<SnapshotEntry>,
    /// Batches with a recorded plan: first and last.
    pub plan_range: Option<(u64, u64)>,
    /// Batches with a recorded plan.
    pub plan_batches: usize,
    /// The sources those plans are of (their stable keys).
    pub plan_sources: Vec<String>,
    /// The sources the checkpoint records, by key: what each one is (its identity: a
    /// socket's resolved address, Kafka topics, a directory).
    pub sources: Vec<(String, String)>,
    /// Who holds or last held the checkpoint, per process: the holder and whether it holds
    /// it now (a local directory's lock; `None` where that cannot be told from here).
    pub owners: Vec<(String, Option<bool>)>,
    /// Receivers' write-ahead logs: source, segments, bytes.
    pub write_ahead_logs: Vec<(String, usize, u64)>,
    /// Offsets kept in the checkpoint.
    pub offsets: Vec<StoredOffset>,
}

impl Inspection {
    /// The snapshot a restart restores: the newest usable one (a job with windows may take an
    /// older one so that its windows refill before their first output).
    pub fn restores(&self) -> Option<&SnapshotEntry> {
        self.snapshots.iter().find(|s| s.unusable.is_none())
    }

    /// What a restart will do, in one sentence.
    pub fn restart_plan(&self) -> String {
        let i = self.batch_ms;
        match (self.restores(), self.completed_ms) {
            (None, None) if self.plan_batches == 0 => {
                "nothing to resume: a job started on it begins afresh".into()
            }
            (None, _) if !self.snapshots.is_empty() || self.completed_ms.is_some() => {
                "no usable snapshot: a stateful job refuses to start (restore a snapshot, or \
                 start afresh with a new directory); a job without state resumes after the \
                 completed batch"
                    .into()
            }
            (None, c) => format!(
                "no snapshot: the job replays its recorded batches from the first{}",
                c.map(|c| format!(", silently up to {c} ms"))
                    .unwrap_or_default()
            ),
            (Some(s), c) => {
                let from = s.batch_ms + i;
                match c {
                    Some(c) if c >= from => format!(
                        "restores the state of batch {} ms, replays batches {from} … {c} ms with \
                         outputs off (they already happened), then runs {} ms on with outputs on",
                        s.batch_ms,
                        c + i
                    ),
                    Some(c) => format!(
                        "restores the state of batch {} ms and runs {} ms on with outputs on",
                        s.batch_ms,
                        c.max(s.batch_ms) + i
                    ),
                    None => format!(
                        "restores the state of batch {} ms and runs {from} ms on with outputs on",
                        s.batch_ms
                    ),
                }
            }
        }
    }
}

/// Reads the checkpoint in `dir`.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// // An empty directory is not a checkpoint yet.
/// assert!(sluice::checkpoint::inspect(dir.path()).is_err());
/// ```
pub fn inspect(dir: &Path) -> Result<Inspection> {
    // A checkpoint on an object store is read from a fresh working copy of it, removed after.
    let (working, storage) = super::working_dir(dir)?;
    let inspection = inspect_copy(dir, &working);
    storage.close();
    inspection
}

/// Reads the checkpoint `given` (as the user named it) from its copy in `dir`.
fn inspect_copy(given: &Path, dir: &Path) -> Result<Inspection> {
    let meta_path = dir.join("metadata");
    if !meta_path.exists() {
        return Err(SluiceError::InvalidConfig {
            problem: format!(
                "{} is not a checkpoint (it has no metadata file)",
                given.display()
            ),
            fix: "name the directory given to the job with --checkpoint".into(),
        });
    }
    let bytes = read_framed(&meta_path, Kind::Metadata)?;
    let meta: Metadata = serde_json::from_slice(&bytes).map_err(|e| SluiceError::Checkpoint {
        problem: format!("{} is unreadable: {e}", meta_path.display()),
        fix: "this directory's metadata is damaged; a restart refuses it too".into(),
    })?;
    let completed_ms = read_framed(&dir.join("completed"), Kind::Completed)
        .ok()
        .and_then(|b| codec::decode::<u64>(&b).ok());
    let plans = plans::load_plans(dir)?;
    let mut plan_sources: Vec<String> = plans.values().flat_map(|by| by.keys().cloned()).collect();
    plan_sources.sort();
    plan_sources.dedup();
    Ok(Inspection {
        dir: given.to_owned(),
        job: meta.job,
        batch_ms: meta.batch_ms,
        zero_ms: meta.zero,
        completed_ms,
        snapshots: snapshots(dir, meta.batch_ms),
        plan_range: plans
            .keys()
            .next()
            .zip(plans.keys().next_back())
            .map(|(a, b)| (*a, *b)),
        plan_batches: plans.len(),
        plan_sources,
        sources: super::sources::load(dir)
            .into_iter()
            .map(|(k, s)| (k, s.identity))
            .collect(),
        owners: owners(dir),
        write_ahead_logs: write_ahead_logs(dir),
        offsets: offsets(dir),
    })
}

/// The holders named by the owner files (`owner-p<i>`) and whether each lock is held now.
fn owners(dir: &Path) -> Vec<(String, Option<bool>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| super::owner::is_owner_file(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| {
            let path = dir.join(&n);
            let holder = super::owner::read_holder(&std::fs::read(&path).ok()?)?;
            let held = std::fs::File::open(&path)
                .ok()
                .map(|f| match f.try_lock_shared() {
                    Ok(()) => false,
                    Err(std::fs::TryLockError::WouldBlock) => true,
                    Err(std::fs::TryLockError::Error(_)) => false,
                });
            Some((holder.describe(), held))
        })
        .collect()
}

fn snapshots(dir: &Path, batch_ms: u64) -> Vec<SnapshotEntry> {
    let mut times: Vec<u64> = std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter_map(|e| parse_state_dir(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    times.sort_unstable_by(|a, b| b.cmp(a));
    times
        .into_iter()
        .map(|t| {
            let state = dir.join(format!("state-{t}"));
            let manifest = read_framed(&state.join("MANIFEST"), Kind::Manifest)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()));
            let mut entry = SnapshotEntry {
                batch_ms: t,
                workers: 0,
                operators: Vec::new(),
                bases: Vec::new(),
                unusable: None,
            };
            match manifest {
                Err(e) => entry.unusable = Some(e),
                Ok(m) if m.t != t || m.batch_ms != batch_ms => {
                    entry.unusable = Some(format!(
                        "its manifest is for batch {} ms at a {} ms interval",
                        m.t, m.batch_ms
                    ))
                }
                Ok(m) => {
                    entry.workers = m.peers;
                    for op in &m.operators {
                        let mut bytes = 0;
                        for w in 0..m.peers {
                            let path = super::snapshot::part_path(dir, t, op, w, m.peers);
                            // Read as a restart reads it (a delta with its base).
                            match load_part(&path, &mut HashMap::new()) {
                                Ok(part) => {
                                    bytes += part.len() as u64;
                                    entry.bases.extend(part.base());
                                }
                                Err(e) => {
                                    entry.unusable.get_or_insert(e.to_string());
                                }
                            }
                        }
                        entry.operators.push((op.clone(), bytes));
                    }
                    entry.bases.sort_unstable();
                    entry.bases.dedup();
                }
            }
            entry
        })
        .collect()
}

fn write_ahead_logs(dir: &Path) -> Vec<(String, usize, u64)> {
    let mut out = Vec::new();
    let Ok(receivers) = std::fs::read_dir(dir.join("receiver")) else {
        return out;
    };
    for r in receivers.flatten() {
        let (mut segments, mut bytes) = (0, 0);
        for f in std::fs::read_dir(r.path()).into_iter().flatten().flatten() {
            segments += 1;
            bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
        }
        out.push((
            r.file_name().to_string_lossy().into_owned(),
            segments,
            bytes,
        ));
    }
    out.sort();
    out
}

fn offsets(dir: &Path) -> Vec<StoredOffset> {
    let mut out = Vec::new();
    let children = |p: &Path| -> BTreeMap<String, PathBuf> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect()
    };
    for (group, g) in children(&dir.join("kafka-offsets")) {
        for (topic, t) in children(&g) {
            for (partition, p) in children(&t) {
                let Ok(partition) = partition.parse::<i32>() else {
                    continue; // a temporary file of a write in progress
                };
                out.push(StoredOffset {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition,
                    offset: std::fs::read_to_string(&p)
                        .ok()
                        .and_then(|s| s.trim().parse().ok()),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    out
}
