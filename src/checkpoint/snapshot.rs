//! State snapshots: every stateful operator's state after a checkpoint batch, one part per
//! operator and worker, kept by the operator's stable name (never as code).
//!
//! ```text
//! state-<t>/<operator>.part-<w>-of-<n>   worker w's share of an operator's state after batch t
//! state-<t>/MANIFEST                     the snapshot is complete: written last, after every part
//! ```
//!
//! A part is full or a delta on a full part of an earlier snapshot (its base, see
//! [`delta`](super::delta)); the manifest names the bases its deltas need, so that pruning
//! keeps them.
//!
//! Operators reach their parts through a [`StateStore`]: `save` after a checkpoint batch,
//! `restore` once at the first batch of a resumed run.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::delta::{self, Changelog, FullEntry, StateCodec};
use super::file::{CheckpointError, Kind, peek_framed, read_framed, read_framed_of};
use super::parts::Body;
use super::{Checkpoint, codec, lock};
use crate::error::{Result, SluiceError};

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Manifest {
    pub(super) batch_ms: u64,
    pub(super) t: u64,
    pub(super) peers: usize,
    pub(super) operators: Vec<String>,
    /// The snapshots whose full parts this one's delta parts build on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) bases: Vec<u64>,
}

/// One worker's part as read: a full part, or a delta with the full part it builds on.
pub(super) struct StoredPart {
    full: Arc<Vec<u8>>,
    /// A delta's base and encoded changes.
    delta: Option<(u64, Vec<u8>)>,
}

impl StoredPart {
    /// The payload bytes of the part itself (not of a delta's base).
    pub(super) fn len(&self) -> usize {
        self.delta
            .as_ref()
            .map_or(self.full.len(), |(_, changes)| 8 + changes.len())
    }

    /// The full part a delta builds on.
    pub(super) fn base(&self) -> Option<u64> {
        self.delta.as_ref().map(|(base, _)| *base)
    }
}

/// A delta part's base and changes, or why its payload is not one.
fn split_part_delta<'p>(
    path: &Path,
    payload: &'p [u8],
) -> std::result::Result<(u64, &'p [u8]), CheckpointError> {
    delta::split_delta(payload).ok_or_else(|| CheckpointError::Corrupt {
        path: path.to_owned(),
        why: "a delta part too short to name its base".into(),
    })
}

/// A snapshot that verified.
pub(crate) struct Snapshot {
    pub(crate) t: u64,
    pub(crate) peers: usize,
    /// Per operator name, per worker of the run that wrote it, the part.
    parts: Mutex<BTreeMap<String, Vec<Option<StoredPart>>>>,
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
    let mut bases = HashMap::new();
    for t in names {
        match load_snapshot(dir, t, batch_ms, &mut bases) {
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

/// The base a part at `path` builds on: `None` for a full part.
pub(super) fn part_base(path: &Path) -> std::result::Result<Option<u64>, CheckpointError> {
    let (kind, head) = peek_framed(path, 8)?;
    if kind != Kind::StateDelta as u8 {
        return Ok(None);
    }
    split_part_delta(path, &head).map(|(base, _)| Some(base))
}

/// Reads the part at `path`, and for a delta the full part it builds on (each base read once
/// across the snapshots loaded, newest first: `bases`).
pub(super) fn load_part(
    path: &Path,
    bases: &mut HashMap<PathBuf, Arc<Vec<u8>>>,
) -> std::result::Result<StoredPart, CheckpointError> {
    // A full part read already as the base of a newer snapshot's delta: one copy for both.
    if let Some(full) = bases.get(path) {
        return Ok(StoredPart {
            full: Arc::clone(full),
            delta: None,
        });
    }
    let (kind, payload) = read_framed_of(path, &[Kind::StatePart, Kind::StateDelta])?;
    if kind == Kind::StatePart {
        return Ok(StoredPart {
            full: Arc::new(payload),
            delta: None,
        });
    }
    let (base, _) = split_part_delta(path, &payload)?;
    let mut changes = payload;
    changes.drain(..8);
    let base_path = super::parts::same_part_at(path, base);
    let full = match bases.get(&base_path) {
        Some(full) => Arc::clone(full),
        None => {
            let full = Arc::new(read_framed(&base_path, Kind::StatePart)?);
            bases.insert(base_path, Arc::clone(&full));
            full
        }
    };
    Ok(StoredPart {
        full,
        delta: Some((base, changes)),
    })
}

fn load_snapshot(
    dir: &Path,
    t: u64,
    batch_ms: u64,
    bases: &mut HashMap<PathBuf, Arc<Vec<u8>>>,
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
            list.push(Some(load_part(&path, bases)?));
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
    /// routes its keys to their new owners), with `j`; and the restored snapshot.
    fn take_parts(
        &self,
        name: &str,
        worker: usize,
        peers: usize,
    ) -> Option<(Arc<Snapshot>, Vec<(usize, StoredPart)>)> {
        let s = self.chosen()?;
        let taken = lock(&s.parts)
            .get_mut(name)?
            .iter_mut()
            .enumerate()
            .filter(|(j, _)| j % peers == worker)
            .filter_map(|(j, p)| p.take().map(|p| (j, p)))
            .collect();
        Some((s, taken))
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
///
/// Saves are incremental (see [`delta`](super::delta)): the operator logs its changes as it
/// makes them ([`log`](StateStore::log)) and a save hands the log over, unless a write of its
/// chain failed or incremental snapshots are off (then every entry is encoded).
pub(crate) struct StateStore {
    checkpoint: Arc<Checkpoint>,
    name: String,
    worker: usize,
    peers: usize,
    /// The batch of this worker's previous part of this run (what its log follows; `None`:
    /// the log holds every change since the run began).
    last: Option<u64>,
    log: Changelog,
}

/// A worker's share of restored state.
pub(crate) struct Restored<K, S> {
    /// `(key, state, aux)`.
    pub(crate) entries: Vec<(K, S, u64)>,
    /// How this worker's chain of parts can go on, when the share is its own part of the
    /// snapshot (see [`StateStore::resume`]).
    pub(crate) resumable: Option<Resumable>,
}

/// Where a restored part leaves its worker's chain.
pub(crate) struct Resumable {
    /// The restored snapshot.
    t: u64,
    /// The full part the chain builds on (`t` itself for a full part).
    base: u64,
    /// A delta's changes since `base`, encoded, and their number.
    changes: Option<(Vec<u8>, usize)>,
}

/// What one [`StateStore::save`] handed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Saved {
    /// Bytes handed over.
    pub(crate) bytes: usize,
    /// Entries: every key of a full part (encoded on the batch's path), or the changes logged
    /// since the previous save (encoded by the batches that made them; a key changed in several
    /// batches counts each time).
    pub(crate) entries: usize,
    /// Whether it was a full part.
    pub(crate) full: bool,
    /// Parts of this worker's chain whose background write failed since the previous save.
    pub(crate) failed: u64,
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
            last: None,
            log: Changelog::default(),
        }
    }

    /// Where the operator logs every change it makes to its state, from its first batch of the
    /// run on (initial and restored state included, except restored entries that a resumed
    /// chain already holds as they are); `None` when snapshots are full.
    pub(crate) fn log(&mut self) -> Option<&mut Changelog> {
        self.checkpoint.incremental.then_some(&mut self.log)
    }

    /// Whether the snapshot this run restores holds this operator's state.
    pub(crate) fn restoring(&self) -> bool {
        self.checkpoint.restored_batch().is_some() && self.checkpoint.has_operator(&self.name)
    }

    /// This worker's share of the restored state, `(key, state, aux)` (empty when nothing is
    /// restored): each full part, with its delta's changes applied. Each part is handed out
    /// once.
    ///
    /// When the share is exactly this worker's own part of the snapshot (same number of
    /// workers, incremental snapshots on), it also says how this worker's chain of parts can
    /// go on from it ([`Restored::resumable`]).
    pub(crate) fn restore<K, S>(&self) -> Result<Restored<K, S>>
    where
        K: DeserializeOwned + Hash + Eq,
        S: DeserializeOwned,
    {
        let unreadable = |e: codec::CodecError| {
            SluiceError::InvalidConfig {
            problem: format!(
                "the checkpointed state of operator `{}` cannot be read with this job's key and state types ({e})",
                self.name
            ),
            fix: "restore it with the types it was written with, or give the operator a new name to start it empty".into(),
        }
        };
        let mut restored = Restored {
            entries: Vec::new(),
            resumable: None,
        };
        let Some((snapshot, parts)) =
            self.checkpoint
                .take_parts(&self.name, self.worker, self.peers)
        else {
            return Ok(restored);
        };
        let own = self.checkpoint.incremental
            && snapshot.peers == self.peers
            && parts.len() == 1
            && parts.iter().all(|(j, _)| *j == self.worker);
        for (_, part) in parts {
            let mut full: Vec<(K, S, u64)> = codec::decode(&part.full).map_err(unreadable)?;
            let mut chain = Resumable {
                t: snapshot.t,
                base: snapshot.t,
                changes: None,
            };
            if let Some((base, changes)) = part.delta {
                let decoded: Vec<_> = codec::decode(&changes).map_err(unreadable)?;
                chain.base = base;
                chain.changes = Some((changes, decoded.len()));
                full = delta::apply(full, decoded);
            }
            restored.entries.append(&mut full);
            if own {
                restored.resumable = Some(chain);
            }
        }
        Ok(restored)
    }

    /// Goes on with the chain of parts the restored snapshot left for this worker: its next
    /// save hands over only the changes since that snapshot, which the writer folds into the
    /// restored part's changes since its base. Only for a worker that holds exactly the keys
    /// of that part, and logs only what changes after the restore.
    pub(crate) fn resume(&self, chain: Resumable) {
        let restored = part_path(
            &self.checkpoint.dir,
            chain.t,
            &self.name,
            self.worker,
            self.peers,
        );
        self.checkpoint
            .parts
            .resume(&restored, chain.t, chain.base, chain.changes);
        lock(&self.checkpoint.resumed).insert((self.name.clone(), self.worker), chain.t);
    }

    /// Saves this worker's share of the state after batch `t` (`keys` keys) and hands it to
    /// the process's background writer (the batch does not wait for the disk): the changes
    /// logged since the previous save, or every entry (`full`, called only then) when
    /// incremental snapshots are off or the log no longer follows a written part (a failed
    /// write, an unencodable change). A snapshot missing a part is never used: recovery falls
    /// back to an older one.
    pub(crate) fn save<'a, K, S>(
        &mut self,
        t: u64,
        keys: usize,
        full: impl FnOnce() -> Vec<FullEntry<'a, K, S>>,
    ) -> Result<Saved>
    where
        K: Serialize + DeserializeOwned + Hash + Eq + 'a,
        S: Serialize + DeserializeOwned + 'a,
    {
        let path = part_path(&self.checkpoint.dir, t, &self.name, self.worker, self.peers);
        let failed = self.checkpoint.parts.take_failed(&path);
        let cannot_encode = |e: codec::CodecError| SluiceError::Checkpoint {
            problem: format!("cannot encode the state of `{}`: {e}", self.name),
            fix: "report this as a bug".into(),
        };
        let logged = self.checkpoint.incremental && failed == 0 && self.log.whole();
        // The run's first save follows the restored snapshot when this worker's chain resumed.
        let last = self
            .last
            .take()
            .or_else(|| lock(&self.checkpoint.resumed).remove(&(self.name.clone(), self.worker)));
        let (bytes, entries, body) = if logged {
            let (bytes, n) = self.log.take().map_err(cannot_encode)?;
            let body = Body::Changes {
                prev: last,
                keys,
                changed: n,
                codec: StateCodec::of::<K, S>(),
            };
            (bytes, n, body)
        } else {
            self.log.clear();
            let entries = full();
            let bytes = codec::encode(&entries).map_err(cannot_encode)?;
            (bytes, entries.len(), Body::Full)
        };
        let saved = Saved {
            bytes: bytes.len(),
            entries,
            full: matches!(body, Body::Full),
            failed,
        };
        self.checkpoint
            .parts
            .write(path, t, &self.name, bytes, body);
        self.last = Some(t);
        Ok(saved)
    }
}
