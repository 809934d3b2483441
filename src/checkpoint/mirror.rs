//! Checkpoints on an object store (`--checkpoint s3://bucket/prefix`, `hdfs://…`), so that a
//! job of several machines, or one moved to another machine, needs no shared file system.
//!
//! The checkpoint keeps working in a local directory (its working copy, under the system's
//! temporary directory), and every write to it is mirrored to the store **before the write
//! returns**, so the store always holds what the local copy would after a crash:
//!
//! - a whole file (metadata, a snapshot part, a manifest, the completed marker, an offset) is
//!   put as one object once it is durable locally; a snapshot's manifest is written after its
//!   parts, so a manifest in the store means its parts are there (the manifest written last);
//! - an append-only log (batch plans, a receiver's write-ahead log and positions) is mirrored
//!   as one object per durable append, `<log>.at<byte offset>` (object stores cannot append;
//!   this is Spark's `closeFileAfterWrite` for its WAL on S3), each put only if absent
//!   (conditional `PutMode::Create` where the store has it), so two writers never overwrite
//!   each other's records;
//! - what pruning removes locally is deleted from the store.
//!
//! At start the working copy is emptied and rebuilt from the store: whole objects as they are,
//! each log from its pieces in offset order up to the first gap (a gap is a crash in the middle
//! of mirroring a log: the tail after it was never acknowledged, exactly like a torn local log).
//! Checksums and format versions are the files' own, checked as for a local checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::CheckpointError;
use crate::error::SluiceError;
use crate::storage::Location;

/// A checkpoint's object store and its local working copy: every durable write to the copy is
/// put to the store before the write returns (see the module docs). One per opened
/// checkpoint, held by its [`Storage`](super::storage::Storage) handle: nothing is shared
/// between two jobs of one process, not even the working copy's directory.
pub(crate) struct Mirror {
    local: PathBuf,
    location: Mutex<Location>,
    /// Set when this process lost the checkpoint's lease (see `owner`): nothing more is
    /// written to the store.
    fenced: Option<Arc<AtomicBool>>,
}

/// Whether `dir` names an object store rather than a local directory.
pub(crate) fn is_remote(dir: &Path) -> bool {
    dir.to_str().is_some_and(|s| {
        ["s3://", "s3a://", "hdfs://", "viewfs://"]
            .iter()
            .any(|p| s.starts_with(p))
    })
}

fn mirror_error(path: &Path, e: SluiceError) -> CheckpointError {
    CheckpointError::Mirror {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// Opens the checkpoint at `url`: its local working copy, rebuilt from the store, whose writes
/// through the returned mirror are put to the store from now on.
pub(crate) fn open(url: &str) -> Result<Arc<Mirror>, SluiceError> {
    open_fenced(url, None)
}

/// [`open`] for the checkpoint's owner: once `fenced` is set (the lease was lost), every write
/// to the store fails.
pub(crate) fn open_fenced(
    url: &str,
    fenced: Option<Arc<AtomicBool>>,
) -> Result<Arc<Mirror>, SluiceError> {
    /// Working copies opened by this process so far: each gets a directory of its own.
    static OPENED: AtomicU64 = AtomicU64::new(0);
    let location = Location::open(url)?;
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let local = std::env::temp_dir().join(format!(
        "sluice-checkpoint-{hash:016x}-{}-{}",
        std::process::id(),
        OPENED.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).map_err(|e| SluiceError::Io {
        action: "cannot create the checkpoint's working copy",
        path: local.clone(),
        source: e,
    })?;
    download(&location, &local)?;
    tracing::info!(
        "checkpoint {url}: working copy in {} (every write is mirrored to the store first)",
        local.display()
    );
    Ok(Arc::new(Mirror {
        local,
        location: Mutex::new(location),
        fenced,
    }))
}

/// The piece offset of a log object's name `<log>.at<20 digits>`.
fn piece(name: &str) -> Option<(&str, u64)> {
    let (base, offset) = name.rsplit_once(".at")?;
    (offset.len() == 20 && offset.bytes().all(|b| b.is_ascii_digit()))
        .then(|| offset.parse().ok().map(|o| (base, o)))
        .flatten()
}

fn download(location: &Location, local: &Path) -> Result<(), SluiceError> {
    let mut logs: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for e in location.list(true)? {
        if super::owner::is_owner_file(&e.path) {
            continue;
        }
        match piece(&e.path) {
            Some((base, offset)) => logs
                .entry(base.to_owned())
                .or_default()
                .push((offset, e.path.clone())),
            None => {
                let bytes = location.read_all(&e.path)?;
                write_local(&local.join(&e.path), &bytes)?;
            }
        }
    }
    for (base, mut pieces) in logs {
        pieces.sort();
        let mut bytes = Vec::new();
        for (offset, name) in pieces {
            if offset != bytes.len() as u64 {
                tracing::warn!(
                    "checkpoint: {base} has a gap at byte {} in the store (a crash while it was mirrored); what follows is ignored",
                    bytes.len()
                );
                break;
            }
            bytes.extend(location.read_all(&name)?);
        }
        write_local(&local.join(&base), &bytes)?;
    }
    Ok(())
}

fn write_local(path: &Path, bytes: &[u8]) -> Result<(), SluiceError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SluiceError::Io {
            action: "cannot create",
            path: dir.to_owned(),
            source: e,
        })?;
    }
    std::fs::write(path, bytes).map_err(|e| SluiceError::Io {
        action: "cannot write",
        path: path.to_owned(),
        source: e,
    })
}

impl Mirror {
    /// The working copy's directory.
    pub(crate) fn local(&self) -> &Path {
        &self.local
    }

    /// `path`'s name in the store, when it is in the working copy.
    fn name_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.local).ok()?;
        Some(rel.to_string_lossy().replace('\\', "/"))
    }

    /// Whether writes to `path` are mirrored (it is in the working copy).
    pub(crate) fn covers(&self, path: &Path) -> bool {
        self.name_of(path).is_some()
    }

    /// The store, unless this process was fenced off it.
    fn store(&self, path: &Path) -> Result<std::sync::MutexGuard<'_, Location>, CheckpointError> {
        if self
            .fenced
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            return Err(mirror_error(
                path,
                SluiceError::Checkpoint {
                    problem: "this process lost the checkpoint's lease to another process".into(),
                    fix: "stop the other copy of the job, then restart this one".into(),
                },
            ));
        }
        Ok(self.location.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `path`'s name in the store and its bytes, read back from the working copy (`None`: not
    /// in the working copy).
    fn read_back(&self, path: &Path) -> Result<Option<(String, Vec<u8>)>, CheckpointError> {
        let Some(rel) = self.name_of(path) else {
            return Ok(None);
        };
        let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io {
            action: "read back",
            path: path.to_owned(),
            source: e,
        })?;
        Ok(Some((rel, bytes)))
    }

    /// A whole file was written durably at `path`: put it.
    pub(crate) fn wrote(&self, path: &Path) -> Result<(), CheckpointError> {
        let Some((rel, bytes)) = self.read_back(path)? else {
            return Ok(());
        };
        self.store(path)?
            .write(&rel, &bytes)
            .map_err(|e| mirror_error(path, e))
    }

    /// A whole file was created durably at `path` and must be the only one there: put it only
    /// if the store has none (or the same bytes, a retried put); other bytes are another
    /// writer's.
    pub(crate) fn created(&self, path: &Path) -> Result<(), CheckpointError> {
        let Some((rel, bytes)) = self.read_back(path)? else {
            return Ok(());
        };
        self.store(path)?
            .write_new(&rel, &bytes)
            .map_err(|e| mirror_error(path, e))
    }

    /// Bytes `[offset, offset + bytes.len())` of the log at `path` are durable: put them as a
    /// piece.
    pub(crate) fn appended(
        &self,
        path: &Path,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), CheckpointError> {
        let Some(rel) = self.name_of(path) else {
            return Ok(());
        };
        self.store(path)?
            .write_new(&format!("{rel}.at{offset:020}"), bytes)
            .map_err(|e| mirror_error(path, e))
    }

    /// `path` (a file, a log or a directory) was removed locally: remove it from the store.
    pub(crate) fn removed(&self, path: &Path) {
        let Some(rel) = self.name_of(path) else {
            return;
        };
        let Ok(location) = self.store(path) else {
            return;
        };
        let parent = rel.rsplit_once('/').map_or("", |(p, _)| p);
        let entries = match location.list_under(parent) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("checkpoint: cannot prune {rel} from the store: {e}");
                return;
            }
        };
        for e in entries {
            let gone = e.path == rel
                || e.path.starts_with(&format!("{rel}/"))
                || piece(&e.path).is_some_and(|(base, _)| base == rel);
            if gone && let Err(err) = location.delete(&e.path) {
                tracing::warn!("checkpoint: cannot prune {} from the store: {err}", e.path);
            }
        }
    }

    /// The job (or the inspection) is over: the working copy is removed (everything in it is
    /// in the store already).
    pub(crate) fn close(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.local)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "checkpoint: cannot remove the working copy {}: {e}",
                self.local.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::file::read_log;
    use crate::checkpoint::storage::Storage;

    /// A fresh working copy of the store at `url`, and the storage that writes through it.
    fn open_copy(url: &str) -> (PathBuf, Storage) {
        let mirror = open(url).unwrap();
        (mirror.local().to_owned(), Storage::mirrored(mirror))
    }

    /// A local directory stands in for the store (the same `Location` code as S3's).
    #[test]
    fn logs_come_back_from_their_pieces_up_to_the_first_gap_and_files_whole() {
        let store = tempfile::tempdir().unwrap();
        let url = store.path().to_str().unwrap().to_owned();
        let (local, storage) = open_copy(&url);
        let mut log = storage.create_log(&local.join("plans/a.log")).unwrap();
        log.append(b"one", true).unwrap();
        log.append(b"two", false).unwrap();
        log.append(b"three", true).unwrap();
        storage
            .write_atomic(&local.join("state-1/MANIFEST"), &[b"m"])
            .unwrap();
        // A working copy made afresh from the store holds the same.
        let (again, _) = open_copy(&url);
        assert_eq!(
            read_log(&again.join("plans/a.log")).unwrap(),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(std::fs::read(again.join("state-1/MANIFEST")).unwrap(), b"m");
        // Pieces: the header, "one", then "two" and "three" together (one durable append).
        let mut pieces: Vec<String> = std::fs::read_dir(store.path().join("plans"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pieces.sort();
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        // A lost middle piece is a gap: what follows it was never acknowledged.
        std::fs::remove_file(store.path().join("plans").join(&pieces[1])).unwrap();
        let (torn, torn_storage) = open_copy(&url);
        assert!(read_log(&torn.join("plans/a.log")).unwrap().is_empty());
        // Pruning removes a log's pieces and a directory's objects from the store.
        torn_storage.removed(&torn.join("plans/a.log"));
        torn_storage.removed(&torn.join("state-1"));
        assert_eq!(
            std::fs::read_dir(store.path().join("plans"))
                .unwrap()
                .count(),
            0
        );
        assert!(!store.path().join("state-1/MANIFEST").exists());
    }

    /// Two checkpoints open in one process (two jobs), even on one store: each has its own
    /// working copy and writes only through its own handle; closing one leaves the other.
    #[test]
    fn two_checkpoints_in_one_process_share_nothing() {
        let (a_store, b_store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a_url, b_url) = (
            a_store.path().to_str().unwrap().to_owned(),
            b_store.path().to_str().unwrap().to_owned(),
        );
        let (a_local, a) = open_copy(&a_url);
        let (b_local, b) = open_copy(&b_url);
        let (b2_local, b2) = open_copy(&b_url);
        assert!(
            a_local != b_local && b_local != b2_local,
            "one working copy each"
        );
        a.write_atomic(&a_local.join("completed"), &[b"a"]).unwrap();
        b.write_atomic(&b_local.join("completed"), &[b"b"]).unwrap();
        // A handle writes nothing of another's working copy to its store.
        a.write_atomic(&b_local.join("stray"), &[b"x"]).unwrap();
        assert_eq!(
            std::fs::read(a_store.path().join("completed")).unwrap(),
            b"a"
        );
        assert_eq!(
            std::fs::read(b_store.path().join("completed")).unwrap(),
            b"b"
        );
        assert!(!a_store.path().join("stray").exists() && !b_store.path().join("stray").exists());
        // Closing one job's copy leaves the other job's copy and mirroring as they were.
        b2.close();
        assert!(!b2_local.exists() && b_local.exists());
        let mut log = b.create_log(&b_local.join("plans/p.log")).unwrap();
        log.append(b"still mirrored", true).unwrap();
        let (fresh, _) = open_copy(&b_url);
        assert_eq!(
            read_log(&fresh.join("plans/p.log")).unwrap(),
            vec![b"still mirrored".to_vec()]
        );
        a.close();
        b.close();
    }
}
