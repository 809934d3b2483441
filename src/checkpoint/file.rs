//! The checkpoint's on-disk formats: whole files written atomically, and append-only logs.
//!
//! **Framed file** (metadata, manifests, state parts, the completed-batch marker):
//!
//! ```text
//! b"SLUICE" | version: u16 LE | kind: u8 | payload length: u64 LE | crc32(payload): u32 LE | payload
//! ```
//!
//! written to a temporary file, fsynced, renamed over `<name>`, and the directory fsynced: a crash
//! leaves the old file or the new one. A reader checks magic, version, kind, length and checksum,
//! so a torn or corrupted file is detected and reported as [`CheckpointError::Corrupt`].
//!
//! **Log** (batch plans, the receiver's write-ahead log): a header `b"SLUICELG" | version: u16`,
//! then records `length: u32 LE | crc32: u32 LE | payload`, each appended and made durable with
//! `fdatasync`. A reader stops at the first torn or corrupt record (the tail a crash cut short)
//! and keeps the records before it.
//!
//! Everything here writes to the local disk only. A checkpoint's own writers go through its
//! [`Storage`](super::storage::Storage), which also puts each durable write to an object store
//! when the checkpoint is on one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The format version written; readers accept this one only.
///
/// Version 2: records encoded with postcard (version 1 used bincode 1).
pub const VERSION: u16 = 2;
const MAGIC: &[u8; 6] = b"SLUICE";
const LOG_MAGIC: &[u8; 8] = b"SLUICELG";
const HEADER: usize = 6 + 2 + 1 + 8 + 4;

/// What a framed file holds (checked when it is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The checkpoint's metadata (batch interval, first batch).
    Metadata = 1,
    /// A snapshot's manifest.
    Manifest = 2,
    /// One worker's share of one operator's state.
    StatePart = 3,
    /// The latest batch whose outputs all finished.
    Completed = 4,
    /// One worker's share of one operator's state as the keys changed since a full part (its
    /// base): see `checkpoint::delta`.
    StateDelta = 5,
}

pub use crate::error::CheckpointError;

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Writes `payload` as a framed file of `kind` at `path`, atomically (see the module docs).
pub fn write_framed(path: &Path, kind: Kind, payload: &[u8]) -> Result<(), CheckpointError> {
    write_atomic(path, &[&frame_header(kind, payload), payload])
}

/// The frame before `payload`: magic, format version, kind, length, checksum.
fn frame_header(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.push(kind as u8);
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header
}

/// [`write_framed`] only if nothing is at `path` yet: whether this call created it. Of two
/// processes creating one file at once, exactly one wins (a hard link of the finished
/// temporary file, which fails where a file exists); on an object store the put is
/// conditional too.
pub(crate) fn write_framed_new(
    path: &Path,
    kind: Kind,
    payload: &[u8],
) -> Result<bool, CheckpointError> {
    let header = frame_header(kind, payload);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.new", std::process::id()));
    let linked = (|| {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&header).map_err(io("write", &tmp))?;
        f.write_all(payload).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io("create", path)(e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    if !linked? {
        return Ok(false);
    }
    sync_dir(dir)?;
    Ok(true)
}

/// Writes the concatenation of `pieces` to `path` atomically: a temporary file in the same
/// directory (unique to this process), fsync, rename over `path`, fsync of the directory. A
/// crash leaves the old file or the new one, never a torn one. Every file sluice writes whole
/// (checkpoint files, offsets, text outputs) goes through here.
pub fn write_atomic(path: &Path, pieces: &[&[u8]]) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        for piece in pieces {
            f.write_all(piece).map_err(io("write", &tmp))?;
        }
        f.sync_all().map_err(io("fsync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("rename into", path))
    })();
    if written.is_err() {
        // A failed write (a full disk) leaves nothing behind to fill the disk further.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

/// Reads a framed file written by [`write_framed`], checking everything the frame records.
pub fn read_framed(path: &Path, kind: Kind) -> Result<Vec<u8>, CheckpointError> {
    read_framed_of(path, &[kind]).map(|(_, payload)| payload)
}

/// [`read_framed`] of a file that may be any of `kinds`: which one it is, and its payload.
pub fn read_framed_of(path: &Path, kinds: &[Kind]) -> Result<(Kind, Vec<u8>), CheckpointError> {
    let corrupt = |why: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        why,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| corrupt(format!("cannot read it ({e})")))?;
    parse_framed_of(path, kinds, bytes)
}

/// The kind of the framed file at `path`, and the first `n` bytes of its payload (fewer when
/// it is shorter), read without the rest of the file and so without checking its checksum.
pub(crate) fn peek_framed(path: &Path, n: usize) -> Result<(u8, Vec<u8>), CheckpointError> {
    let mut head = Vec::with_capacity(HEADER + n);
    File::open(path)
        .and_then(|f| f.take((HEADER + n) as u64).read_to_end(&mut head))
        .map_err(io("read", path))?;
    if head.len() < HEADER || &head[..6] != MAGIC {
        return Err(CheckpointError::Corrupt {
            path: path.to_owned(),
            why: "not a sluice checkpoint file (bad header)".into(),
        });
    }
    Ok((head[8], head.split_off(HEADER)))
}

/// Checks the bytes of a framed file read from `path` (named in errors) and returns its
/// payload: [`read_framed`] without the reading.
pub fn parse_framed(path: &Path, kind: Kind, bytes: Vec<u8>) -> Result<Vec<u8>, CheckpointError> {
    parse_framed_of(path, &[kind], bytes).map(|(_, payload)| payload)
}

/// [`parse_framed`] of a file that may be any of `kinds`.
pub fn parse_framed_of(
    path: &Path,
    kinds: &[Kind],
    mut bytes: Vec<u8>,
) -> Result<(Kind, Vec<u8>), CheckpointError> {
    let corrupt = |why: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        why,
    };
    if bytes.len() < HEADER || &bytes[..6] != MAGIC {
        return Err(corrupt("not a sluice checkpoint file (bad header)".into()));
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version != VERSION {
        return Err(CheckpointError::Version {
            reads: VERSION,
            path: path.to_owned(),
            found: version,
        });
    }
    let Some(&kind) = kinds.iter().find(|k| **k as u8 == bytes[8]) else {
        return Err(corrupt(format!(
            "holds kind {} where {} was expected",
            bytes[8],
            kinds
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[9..17]);
    let len = u64::from_le_bytes(len) as usize;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[17..21]);
    let crc = u32::from_le_bytes(crc);
    let payload = bytes.split_off(HEADER);
    if payload.len() != len {
        return Err(corrupt(format!(
            "truncated: {} of {len} payload bytes",
            payload.len()
        )));
    }
    if crc32fast::hash(&payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    Ok((kind, payload))
}

/// An append-only log of checksummed records, made durable record by record.
pub struct LogWriter {
    file: File,
    path: PathBuf,
    /// Bytes in the log.
    len: u64,
    /// In a checkpoint on an object store: its mirror, and the bytes appended since the last
    /// mirrored piece (see [`Storage::create_log`](super::storage::Storage::create_log)).
    #[cfg(feature = "files")]
    mirror: Option<(std::sync::Arc<super::mirror::Mirror>, Vec<u8>)>,
}

/// A log's first bytes: magic and format version.
pub(crate) fn log_header() -> Vec<u8> {
    let mut header = LOG_MAGIC.to_vec();
    header.extend_from_slice(&VERSION.to_le_bytes());
    header
}

impl LogWriter {
    /// Creates (or truncates) the log at `path`.
    pub fn create(path: &Path) -> Result<Self, CheckpointError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let mut file = File::create(path).map_err(io("create", path))?;
        let header = log_header();
        file.write_all(&header).map_err(io("write", path))?;
        file.sync_all().map_err(io("fsync", path))?;
        sync_dir(dir)?;
        Ok(LogWriter {
            file,
            path: path.to_owned(),
            len: header.len() as u64,
            #[cfg(feature = "files")]
            mirror: None,
        })
    }

    /// From now on, every durable append is put to `mirror`'s store as a piece.
    #[cfg(feature = "files")]
    pub(crate) fn mirrored_by(mut self, mirror: std::sync::Arc<super::mirror::Mirror>) -> Self {
        self.mirror = Some((mirror, Vec::new()));
        self
    }

    /// Opens an existing log to append to it; creates it when missing.
    pub fn append_to(path: &Path) -> Result<Self, CheckpointError> {
        if !path.exists() {
            return Self::create(path);
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io("open", path))?;
        let len = file.metadata().map_err(io("open", path))?.len();
        Ok(LogWriter {
            file,
            path: path.to_owned(),
            len,
            #[cfg(feature = "files")]
            mirror: None,
        })
    }

    /// Appends one record; with `durable`, returns only once it is on disk (`fdatasync`).
    pub fn append(&mut self, payload: &[u8], durable: bool) -> Result<(), CheckpointError> {
        let mut record = Vec::with_capacity(8 + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        self.file
            .write_all(&record)
            .map_err(io("append to", &self.path))?;
        self.len += record.len() as u64;
        #[cfg(feature = "files")]
        if let Some((_, pending)) = self.mirror.as_mut() {
            pending.extend_from_slice(&record);
        }
        if durable {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes every record appended so far durable (and, in a checkpoint on an object store,
    /// puts them there as one piece).
    pub fn sync(&mut self) -> Result<(), CheckpointError> {
        self.file.sync_data().map_err(io("fsync", &self.path))?;
        #[cfg(feature = "files")]
        if let Some((mirror, pending)) = self.mirror.as_mut().filter(|(_, p)| !p.is_empty()) {
            let offset = self.len - pending.len() as u64;
            mirror.appended(&self.path, offset, pending)?;
            pending.clear();
        }
        Ok(())
    }
}

/// Every intact record of a log, oldest first; a torn or corrupt tail is dropped with a
/// warning (it is what a crash in the middle of an append leaves).
pub fn read_log(path: &Path) -> Result<Vec<Vec<u8>>, CheckpointError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io("read", path))?;
    parse_log(path, &bytes)
}

/// The intact records of a log's bytes read from `path` (named in errors and warnings):
/// [`read_log`] without the reading.
pub fn parse_log(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CheckpointError> {
    if bytes.len() < 10 || &bytes[..8] != LOG_MAGIC {
        return Err(CheckpointError::Corrupt {
            path: path.to_owned(),
            why: "not a sluice log (bad header)".into(),
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(CheckpointError::Version {
            reads: VERSION,
            path: path.to_owned(),
            found: version,
        });
    }
    let mut records = Vec::new();
    let mut at = 10;
    while at < bytes.len() {
        let ok = at + 8 <= bytes.len() && {
            let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
                as usize;
            let crc =
                u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
            let end = at + 8 + len;
            if end <= bytes.len() && crc32fast::hash(&bytes[at + 8..end]) == crc {
                records.push(bytes[at + 8..end].to_vec());
                at = end;
                true
            } else {
                false
            }
        };
        if !ok {
            tracing::warn!(
                "{}: dropping a torn or corrupt tail of {} bytes after {} records (a crash during an append)",
                path.display(),
                bytes.len() - at,
                records.len()
            );
            break;
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_files_detect_truncation_corruption_and_wrong_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        write_framed(&path, Kind::StatePart, &[7u8; 1000]).unwrap();
        assert_eq!(
            read_framed(&path, Kind::StatePart).unwrap(),
            vec![7u8; 1000]
        );
        assert!(
            read_framed(&path, Kind::Manifest)
                .unwrap_err()
                .to_string()
                .contains("kind")
        );
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[500] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            read_framed(&path, Kind::StatePart)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        bytes.truncate(300);
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            read_framed(&path, Kind::StatePart)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        assert!(read_framed(&dir.path().join("missing"), Kind::StatePart).is_err());
    }

    #[test]
    fn a_log_keeps_its_records_before_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = LogWriter::create(&path).unwrap();
        log.append(b"one", true).unwrap();
        log.append(b"two", false).unwrap();
        drop(log);
        let mut log = LogWriter::append_to(&path).unwrap();
        log.append(b"three", true).unwrap();
        drop(log);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 2]).unwrap();
        assert_eq!(
            read_log(&path).unwrap(),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
    }
}

#[cfg(test)]
mod examples {
    //! What the items' examples showed before they became crate-private, kept as tests.

    #[test]
    fn write_framed_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::checkpoint::file::{Kind, read_framed, write_framed};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        write_framed(&path, Kind::Metadata, b"hello")?;
        assert_eq!(read_framed(&path, Kind::Metadata)?, b"hello");
        Ok(())
    }

    #[test]
    fn write_atomic_example() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out").join("part-00000");
        crate::checkpoint::file::write_atomic(&path, &[b"a\n", b"b\n"])?;
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\n");
        Ok(())
    }

    #[test]
    fn read_framed_of_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::checkpoint::file::{Kind, read_framed_of, write_framed};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        write_framed(&path, Kind::StateDelta, b"changes")?;
        let (kind, payload) = read_framed_of(&path, &[Kind::StatePart, Kind::StateDelta])?;
        assert_eq!(
            (kind, payload.as_slice()),
            (Kind::StateDelta, &b"changes"[..])
        );
        Ok(())
    }

    #[test]
    fn logwriter_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::checkpoint::file::{LogWriter, read_log};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.log");
        let mut log = LogWriter::create(&path)?;
        log.append(b"batch 1", true)?;
        log.append(b"batch 2", true)?;
        assert_eq!(
            read_log(&path)?,
            vec![b"batch 1".to_vec(), b"batch 2".to_vec()]
        );
        Ok(())
    }
}
