//! The handle every checkpoint writer is given: where a write becomes durable.
//!
//! A checkpoint in a local directory is durable once the file is (`file`'s atomic writes and
//! logs). A checkpoint on an object store works in a local working copy whose every write is
//! also put to the store before it returns ([`mirror`](super::mirror)). A [`Storage`] says
//! which: writers call its methods instead of `file`'s, and it mirrors when it holds a mirror.
//!
//! Each opened checkpoint has its own handle (and its own working copy), passed from the
//! [`Checkpoint`](super::Checkpoint) to its plan logs, snapshot parts, markers and to the
//! receivers' write-ahead logs: there is no process-wide registry, so two jobs of one process
//! share nothing.

use std::path::Path;
#[cfg(feature = "files")]
use std::sync::Arc;

use super::file::{self, Kind, LogWriter};
use crate::error::CheckpointError;

/// A folder of a checkpoint (a receiver's write-ahead log, say), with the storage its writes
/// go through.
#[derive(Clone, Debug)]
pub(crate) struct Folder {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) storage: Storage,
}

/// Where a checkpoint's writes are durable: a local directory, or an object store behind a
/// local working copy.
#[derive(Clone, Default)]
pub(crate) struct Storage {
    #[cfg(feature = "files")]
    mirror: Option<Arc<super::mirror::Mirror>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "files")]
        if let Some(m) = &self.mirror {
            return write!(f, "Storage(mirrored from {})", m.local().display());
        }
        f.write_str("Storage(local)")
    }
}

impl Storage {
    /// Files that are durable once on the local disk.
    pub(crate) fn local() -> Self {
        Storage::default()
    }

    /// Files in `mirror`'s working copy, put to its store as they are written.
    #[cfg(feature = "files")]
    pub(crate) fn mirrored(mirror: Arc<super::mirror::Mirror>) -> Self {
        Storage {
            mirror: Some(mirror),
        }
    }

    /// [`file::write_atomic`], then put to the store.
    pub(crate) fn write_atomic(
        &self,
        path: &Path,
        pieces: &[&[u8]],
    ) -> Result<(), CheckpointError> {
        file::write_atomic(path, pieces)?;
        self.wrote(path)
    }

    /// [`file::write_framed`], then put to the store.
    pub(crate) fn write_framed(
        &self,
        path: &Path,
        kind: Kind,
        payload: &[u8],
    ) -> Result<(), CheckpointError> {
        file::write_framed(path, kind, payload)?;
        self.wrote(path)
    }

    /// [`file::write_framed_new`], then put to the store only if absent there too: whether
    /// this call created the file.
    pub(crate) fn write_framed_new(
        &self,
        path: &Path,
        kind: Kind,
        payload: &[u8],
    ) -> Result<bool, CheckpointError> {
        let created = file::write_framed_new(path, kind, payload)?;
        #[cfg(feature = "files")]
        if let (true, Some(m)) = (created, &self.mirror) {
            m.created(path)?;
        }
        Ok(created)
    }

    /// Creates (or truncates) the log at `path`; each durable append is put as a piece.
    pub(crate) fn create_log(&self, path: &Path) -> Result<LogWriter, CheckpointError> {
        let log = LogWriter::create(path)?;
        #[cfg(feature = "files")]
        if let Some(m) = self.mirror.as_ref().filter(|m| m.covers(path)) {
            m.appended(path, 0, &file::log_header())?;
            return Ok(log.mirrored_by(Arc::clone(m)));
        }
        Ok(log)
    }

    /// Opens the log at `path` to append to it (created when missing).
    pub(crate) fn append_log(&self, path: &Path) -> Result<LogWriter, CheckpointError> {
        if !path.exists() {
            return self.create_log(path);
        }
        let log = LogWriter::append_to(path)?;
        #[cfg(feature = "files")]
        if let Some(m) = self.mirror.as_ref().filter(|m| m.covers(path)) {
            return Ok(log.mirrored_by(Arc::clone(m)));
        }
        Ok(log)
    }

    /// `path` (a file, a log or a directory) was removed locally: remove it from the store.
    pub(crate) fn removed(&self, path: &Path) {
        #[cfg(feature = "files")]
        if let Some(m) = &self.mirror {
            m.removed(path);
        }
        let _ = path;
    }

    /// The checkpoint is closed: a working copy is removed (the store has it all).
    pub(crate) fn close(&self) {
        #[cfg(feature = "files")]
        if let Some(m) = &self.mirror {
            m.close();
        }
    }

    fn wrote(&self, path: &Path) -> Result<(), CheckpointError> {
        #[cfg(feature = "files")]
        if let Some(m) = &self.mirror {
            return m.wrote(path);
        }
        let _ = path;
        Ok(())
    }
}
