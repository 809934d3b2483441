//! State snapshots: every stateful operator's state after a checkpoint batch, one part per
//! operator and worker, kept by the operator's stable name (never as code).
//!
//! ```text
//! state-<t>/<operator>.part-<w>-of-<n>   worker w's share of an operator's state after batch t
//! state-<t>/MANIFEST                     the snapshot is complete: written last, after every part
//! ```
//!
//! Operators reach their parts through a [`StateStore`]: `save` after a checkpoint batch,
//! `restore` once at the first batch of a resumed run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::file::{CheckpointError, Kind, read_framed};
use super::{Checkpoint, codec, lock};
use crate::error::{Result, SluiceError};

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Manifest {
    pub(super) batch_ms: u64,
    pub(super) t: u64,
    pub(super) peers: usize,
    pub(super) operators: Vec<String>,
}

/// A snapshot that verified.
pub(crate) struct Snapshot {
    pub(crate) t: u64,
    pub(crate) peers: usize,
    /// Per operator name, per worker of the run that wrote it, the part's bytes.
    parts: Mutex<BTreeMap<String, Vec<Option<Vec<u8>>>>>,
}

pub(super) fn parse_state_dir(name: &str) -> Option<u64> {
    name.strip_prefix("state-")?.parse().ok()
}

/// A name usable as one path component (an operator, a consumer group, a topic): ASCII
/// letters, digits, `-`, `_` and `.` are kept, anything else becomes `_`.
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

pub(super) fn part_path(
    dir: &Path,
    t: u64,
    operator: &str,
    worker: usize,
    peers: usize,
) -> PathBuf {
    dir.join(format!("state-{t}"))
        .join(format!("{}.part-{worker}-of-{peers}", file_name(operator)))
}

/// Every snapshot of `dir` that verifies, newest first; a corrupt or partial one is skipped with
/// a warning (recovery falls back to an older one); one of another format version is refused.
pub(super) fn load_snapshots(dir: &Path, batch_ms: u64) -> Result<Vec<Arc<Snapshot>>> {
    let mut snapshots = Vec::new();
    let mut names: Vec<u64> = std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter_map(|e| parse_state_dir(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut unusable: Vec<(u64, CheckpointError)> = Vec::new();
    for t in names {
        match load_snapshot(dir, t, batch_ms) {
            Ok(s) => snapshots.push(Arc::new(s)),
            Err(e @ CheckpointError::Version { .. }) => return Err(e.into()),
            Err(e) => unusable.push((t, e)),
        }
    }
    // One line for all of them (a full disk can leave many), naming the newest.
    if let Some((t, e)) = unusable.first() {
        tracing::warn!(
            "checkpoint: {} snapshot(s) cannot be used, the newest of batch {t} ms ({e}); trying older ones",
            unusable.len()
        );
    }
    Ok(snapshots)
}

fn load_snapshot(
    dir: &Path,
    t: u64,
    batch_ms: u64,
) -> std::result::Result<Snapshot, CheckpointError> {
    let state_dir = dir.join(format!("state-{t}"));
    let manifest_path = state_dir.join("MANIFEST");
    let corrupt = |why: String| CheckpointError::Corrupt {
        path: manifest_path.clone(),
        why,
    };
    let bytes = read_framed(&manifest_path, Kind::Manifest)?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if manifest.t != t || manifest.batch_ms != batch_ms {
        return Err(corrupt(format!(
            "it is for batch {} ms at a {} ms interval",
            manifest.t, manifest.batch_ms
        )));
    }
    let mut parts = BTreeMap::new();
    for op in &manifest.operators {
        let mut list = Vec::with_capacity(manifest.peers);
        for w in 0..manifest.peers {
            let path = part_path(dir, t, op, w, manifest.peers);
            list.push(Some(read_framed(&path, Kind::StatePart)?));
        }
        parts.insert(op.clone(), list);
    }
    Ok(Snapshot {
        t,
        peers: manifest.peers,
        parts: Mutex::new(parts),
    })
}

impl Snapshot {
    /// The names of the operators whose state it holds.
    pub(crate) fn operators(&self) -> Vec<String> {
        lock(&self.parts).keys().cloned().collect()
    }
}

impl Checkpoint {
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
}

/// Where one stateful operator on one worker saves and restores its state.
///
/// State is kept under the operator's stable name as data (encoded with
/// [`codec`](super::codec)), never as code, so a job whose code changed keeps the state of every
/// operator whose name did not. On restore a worker takes the parts of the old workers
/// `j % peers == worker`; the operator routes the keys it gets to their owners, so a change of
/// worker count re-shards by key.
#[derive(Clone)]
pub(crate) struct StateStore {
    checkpoint: Arc<Checkpoint>,
    name: String,
    worker: usize,
    peers: usize,
}

impl StateStore {
    pub(crate) fn new(
        checkpoint: Arc<Checkpoint>,
        name: &str,
        worker: usize,
        peers: usize,
    ) -> Self {
        StateStore {
            checkpoint,
            name: name.to_owned(),
            worker,
            peers,
        }
    }

    /// Whether the snapshot this run restores holds this operator's state.
    pub(crate) fn restoring(&self) -> bool {
        self.checkpoint.restored_batch().is_some() && self.checkpoint.has_operator(&self.name)
    }

    /// This worker's share of the restored state (empty when nothing is restored). Each part is
    /// handed out once.
    pub(crate) fn restore<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let mut entries = Vec::new();
        for part in self
            .checkpoint
            .take_parts(&self.name, self.worker, self.peers)
        {
            let mut decoded: Vec<T> =
                codec::decode(&part).map_err(|e| SluiceError::InvalidConfig {
                    problem: format!(
                        "the checkpointed state of operator `{}` cannot be read with this job's key and state types ({e})",
                        self.name
                    ),
                    fix: "restore it with the types it was written with, or give the operator a new name to start it empty".into(),
                })?;
            entries.append(&mut decoded);
        }
        Ok(entries)
    }

    /// Saves this worker's share of the state after batch `t`: encodes it here and hands the
    /// bytes to the process's background writer (the batch does not wait for the disk). A
    /// snapshot missing a part is never used: recovery falls back to an older one. Returns the
    /// bytes and the parts of this operator whose background write failed since the last save.
    pub(crate) fn save<T: Serialize>(&self, t: u64, entries: &[T]) -> Result<(usize, u64)> {
        let bytes = codec::encode(entries).map_err(|e| SluiceError::Checkpoint {
            problem: format!("cannot encode the state of `{}`: {e}", self.name),
            fix: "report this as a bug".into(),
        })?;
        let path = part_path(&self.checkpoint.dir, t, &self.name, self.worker, self.peers);
        let len = bytes.len();
        self.checkpoint.parts.write(path, t, &self.name, bytes);
        Ok((len, self.checkpoint.parts.take_failed(&self.name)))
    }
}
