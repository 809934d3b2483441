//! Malformed input: counted, logged with its source position, and kept aside.
//!
//! Sources and operators never panic on data. A record they cannot use becomes a
//! [`Malformed`] entry: it is counted in the batch metrics, logged (at most once per second per
//! source, with the total), and appended to a dead-letter file when one is configured, so that
//! nothing is lost silently.
//!
//! # The file, and exactly once
//!
//! One tab-separated line per entry: `batch  partition  source  position  reason  bytes`
//! (bytes escaped as Rust's `escape_ascii`; tabs and newlines in the other columns become
//! spaces). Entries set aside by an operator ([`DStream::try_map`](crate::DStream::try_map))
//! carry their batch time in milliseconds, and their partition when they have no position of
//! their own (`-` otherwise: Kafka's entries say `partition 2 offset 17`). A record that is read again after a
//! crash (a batch replayed from its checkpointed plan, or Kafka records re-read from the
//! committed offsets in whatever batch) is set aside again; [`DeadLetters::to_file`] reads the
//! file first, and an entry whose `(source, position)` is already there is not written again.
//! So `position` must name the record in its source — Kafka's partition and offset, or, when
//! the operator is given none, the batch, partition and index `try_map` fills in (the same in a
//! replay of a checkpointed batch). A line cut short by a crash is removed. Every entry is in
//! the file once.
//!
//! Writes are as durable as outputs: a batch's entries are appended and synced to disk before
//! the batch goes on; a write that fails (a full disk) is retried with the one retry policy
//! (`retry`), the half-written tail cut off before each attempt, and when it still fails the
//! batch fails (`record_batch` returns the error, the operator fails the job) and is replayed
//! on restart, where each entry is written once. Nothing is dropped with a log line.
//!
//! Entries a receiver sets aside as it reads (an over-long line, bytes that are not UTF-8,
//! before there is a batch) have `-` in the first two columns and are written when read. A
//! receiver does not read its data twice (its write-ahead log replays the lines it kept, not
//! the ones it set aside), so they are once too; they are not compared with older entries, as
//! their positions (`connection 2, line 17`) count from the start of each run.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::checkpoint::file::write_atomic;
use crate::error::{Result, SluiceError};
use crate::partition_id::PartitionId;

/// One record a source could not use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// The source (`socket 127.0.0.1:9999`).
    pub source: String,
    /// Where in the source (`connection 2, line 17`).
    pub position: String,
    /// Why it is malformed.
    pub reason: String,
    /// The raw bytes (possibly cut short for over-long records).
    pub bytes: Vec<u8>,
}

/// Where a source puts malformed records; clones share the counter and the file.
///
/// # Examples
///
/// ```
/// use sluice::source::{DeadLetters, Malformed};
/// let dir = tempfile::tempdir().unwrap();
/// let dl = DeadLetters::to_file(dir.path().join("bad.tsv")).unwrap();
/// dl.record(Malformed { source: "s".into(), position: "line 1".into(), reason: "not UTF-8".into(), bytes: vec![0xff] });
/// assert_eq!(dl.count(), 1);
/// assert!(std::fs::read_to_string(dir.path().join("bad.tsv")).unwrap().contains("not UTF-8"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct DeadLetters {
    count: Arc<AtomicU64>,
    file: Option<Arc<Mutex<DeadLetterFile>>>,
    last_log: Arc<Mutex<Option<Instant>>>,
}

/// The open file and the entries it held when opened.
#[derive(Debug)]
struct DeadLetterFile {
    path: PathBuf,
    file: std::fs::File,
    /// The file's length after the last complete write: a failed write is cut back to it.
    len: u64,
    /// A receiver's entries not yet written (the disk refused them); written before the next.
    pending: String,
    /// Why the receiver's entries could not be written for longer than [`GIVE_UP`].
    failed: Option<String>,
    /// `(source, position)` of the operators' entries in the file before this run.
    written: HashSet<(String, String)>,
}

impl DeadLetters {
    /// Counts and logs malformed records, keeping no copy.
    pub fn counting() -> Self {
        Self::default()
    }

    /// Also appends each malformed record to `path` (the format is in the
    /// [module docs](self)). An existing file is read first, so that a record read again after
    /// a crash is not written twice; a line cut short by a crash is removed.
    pub fn to_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io_error = |action, source| SluiceError::Io {
            action,
            path: path.clone(),
            source,
        };
        let existing = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error("cannot read the dead-letter file", e)),
        };
        let scan = scan(&existing);
        if scan.kept.len() != existing.len() {
            tracing::warn!(
                "dead-letter file {}: removed the {} bytes of a line an interrupted run left half \
                 written; its record is read again and written whole",
                path.display(),
                existing.len() - scan.kept.len()
            );
            write_atomic(&path, &[&scan.kept]).map_err(|e| SluiceError::Io {
                action: "cannot rewrite the dead-letter file",
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("cannot open the dead-letter file", e))?;
        let len = file
            .metadata()
            .map_err(|e| io_error("cannot read the dead-letter file", e))?
            .len();
        Ok(DeadLetters {
            file: Some(Arc::new(Mutex::new(DeadLetterFile {
                path,
                file,
                len,
                pending: String::new(),
                failed: None,
                written: scan.written,
            }))),
            ..Self::default()
        })
    }

    /// Keeps one malformed record a receiver read outside any batch (written at once). When
    /// the file cannot be written, the entry is kept in memory and written before the next
    /// one; after [`GIVE_UP`] of failures [`failure`](DeadLetters::failure) says so, and the
    /// receiver fails the job with it.
    pub fn record(&self, m: Malformed) {
        self.count_and_log(&m, 1);
        let line = entry_line(None, &m);
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.pending.push_str(&line);
            let pending = std::mem::take(&mut f.pending);
            let give_up = Instant::now() + GIVE_UP;
            if let Err(e) = f.append_retrying(pending.as_bytes(), &|| Instant::now() >= give_up) {
                f.pending = pending;
                f.failed = Some(e.to_string());
            } else {
                f.failed = None;
            }
        }
    }

    /// Why entries set aside by a receiver could not be written (the job must not go on
    /// losing them), if they could not.
    pub fn failure(&self) -> Option<SluiceError> {
        let file = self.file.as_ref()?;
        let f = file.lock().unwrap_or_else(|p| p.into_inner());
        let why = f.failed.clone()?;
        let entries = f.pending.lines().count();
        Some(SluiceError::Io {
            action: "cannot write the malformed records a receiver set aside to the dead-letter file",
            path: f.path.clone(),
            source: std::io::Error::other(format!(
                "{why}; {entries} entries are held in memory and are lost if the job stops now"
            )),
        })
    }

    /// Keeps the malformed records of one partition of batch `batch_ms`, written together and
    /// synced to disk; an entry whose `(source, position)` was in the file before this run
    /// (its record was read again after a crash) is not written again. An empty `position`
    /// becomes `batch <ms> partition <p> record <i>` (`i` counts the partition's entries from
    /// 1). A write that fails is retried for up to [`GIVE_UP`]; then the error is returned
    /// and the batch must fail (it is replayed on restart; nothing is written twice).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::partition::PartitionId;
    /// use sluice::source::{DeadLetters, Malformed};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("bad.tsv");
    /// let bad = || vec![Malformed { source: "kafka t".into(), position: "partition 0 offset 7".into(), reason: "no comma".into(), bytes: b"x".to_vec() }];
    /// DeadLetters::to_file(&path)?.record_batch(1000, &PartitionId::new(0), bad())?;
    /// DeadLetters::to_file(&path)?.record_batch(3000, &PartitionId::new(1), bad())?; // read again
    /// assert_eq!(std::fs::read_to_string(&path)?.lines().count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_batch(
        &self,
        batch_ms: u64,
        partition: &PartitionId,
        entries: Vec<Malformed>,
    ) -> Result<()> {
        let give_up = Instant::now() + GIVE_UP;
        self.write_batch(batch_ms, partition, entries, &|| Instant::now() >= give_up)
    }

    /// [`record_batch`](DeadLetters::record_batch), retrying until `stop()` holds (the job
    /// stops) rather than for a fixed time.
    pub(crate) fn write_batch(
        &self,
        batch_ms: u64,
        partition: &PartitionId,
        entries: Vec<Malformed>,
        stop: &dyn Fn() -> bool,
    ) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        self.count_and_log(first, entries.len() as u64);
        let Some(file) = &self.file else {
            return Ok(());
        };
        let partition = partition.to_string();
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines = String::new();
        for (i, mut m) in entries.into_iter().enumerate() {
            // The partition column names the batch's partition only when the entry has no
            // position of its own: a source's position (Kafka's partition and offset) says
            // where the record is, and the internal partition path would only puzzle.
            let column = if m.position.is_empty() {
                m.position = format!("batch {batch_ms} partition {partition} record {}", i + 1);
                partition.as_str()
            } else {
                "-"
            };
            let (source, position) = (clean(&m.source), clean(&m.position));
            if f.written.contains(&(source, position)) {
                continue;
            }
            lines.push_str(&entry_line(Some((batch_ms, column)), &m));
        }
        if lines.is_empty() {
            return Ok(());
        }
        let path = f.path.clone();
        f.append_retrying(lines.as_bytes(), stop)
            .map_err(|source| SluiceError::Io {
                action: "cannot write the malformed records of the batch to the dead-letter file (the batch fails and is replayed on restart)",
                path,
                source,
            })
    }

    fn count_and_log(&self, m: &Malformed, n: u64) {
        let total = self.count.fetch_add(n, Ordering::Relaxed) + n;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|l| l.elapsed().as_secs() >= 1) {
            *last = Some(Instant::now());
            tracing::warn!(
                source = %m.source, position = %m.position, total,
                "malformed record set aside: {}", m.reason
            );
        }
    }

    /// Malformed records so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// How long a dead-letter write is retried before the batch (or a receiver) fails.
pub const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(60);

impl DeadLetterFile {
    /// Appends `bytes` whole and syncs them, retrying a failure with the retry policy until
    /// `stop()`; each attempt first cuts off what a failed one left half written.
    fn append_retrying(&mut self, bytes: &[u8], stop: &dyn Fn() -> bool) -> std::io::Result<()> {
        use crate::retry::{Backoff, Failure};
        let what = format!("dead-letter file {}", self.path.display());
        Backoff::default()
            .retry(&what, stop, || {
                self.append_once(bytes).map_err(|e| match e.kind() {
                    // The file cannot be written at all: waiting does not help.
                    std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem => Failure::Permanent(e),
                    _ => Failure::Transient(e),
                })
            })
            .map_err(crate::retry::GaveUp::into_inner)
    }

    fn append_once(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.metadata()?.len() != self.len {
            self.file.set_len(self.len)?;
        }
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// A column without the tabs and newlines that would break the line.
fn clean(s: &str) -> String {
    s.replace(['\t', '\n'], " ")
}

/// One line of the file; `batch` is `(batch ms, partition)` for an operator's entries.
fn entry_line(batch: Option<(u64, &str)>, m: &Malformed) -> String {
    let head = match batch {
        Some((batch, partition)) => format!("{batch}\t{partition}"),
        None => "-\t-".to_owned(),
    };
    format!(
        "{head}\t{}\t{}\t{}\t{}\n",
        clean(&m.source),
        clean(&m.position),
        clean(&m.reason),
        m.bytes.escape_ascii()
    )
}

/// What [`scan`] found in an existing file.
struct Scan {
    /// The file without a last line cut short.
    kept: Vec<u8>,
    /// `(source, position)` of the operators' entries (a number in the batch column).
    written: HashSet<(String, String)>,
}

/// Reads an existing dead-letter file. Lines it does not recognise (receivers' entries, an
/// older format) are kept as they are and not compared.
fn scan(bytes: &[u8]) -> Scan {
    // A last line without its newline was cut by a crash.
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let kept = bytes[..end].to_vec();
    let written = kept
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let text = std::str::from_utf8(line).ok()?;
            let mut cols = text.splitn(5, '\t');
            cols.next()?.parse::<u64>().ok()?;
            let _partition = cols.next()?;
            Some((cols.next()?.to_owned(), cols.next()?.to_owned()))
        })
        .collect();
    Scan { kept, written }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(position: &str) -> Malformed {
        Malformed {
            source: "kafka orders".into(),
            position: position.into(),
            reason: "no comma".into(),
            bytes: b"x\ty".to_vec(),
        }
    }

    #[test]
    fn a_record_read_again_is_written_once_and_a_cut_line_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.tsv");
        let (p0, p1) = (PartitionId::new(0), PartitionId::new(1));
        let dl = DeadLetters::to_file(&path).unwrap();
        dl.record_batch(1000, &p0, vec![bad("offset 1"), bad("offset 2")])
            .unwrap();
        dl.record(bad("line 3"));
        dl.record_batch(2000, &p0, vec![bad("offset 5"), bad("offset 6")])
            .unwrap();
        drop(dl);
        // A crash in the middle of the last write: half of its last line is gone.
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 10]).unwrap();
        let dl = DeadLetters::to_file(&path).unwrap();
        // Read again after the restart, in other batches.
        dl.record_batch(5000, &p1, vec![bad("offset 2"), bad("offset 5")])
            .unwrap();
        dl.record_batch(6000, &p1, vec![bad("offset 6"), bad("offset 7")])
            .unwrap();
        dl.record(bad("line 3")); // a new run's line 3: another record
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(
            lines[0], "1000\t-\tkafka orders\toffset 1\tno comma\tx\\ty",
            "a source's own position: no internal partition path"
        );
        assert!(lines[2].starts_with("-\t-\tkafka orders\tline 3"));
        assert!(
            lines[3].starts_with("2000\t-\tkafka orders\toffset 5\t"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("6000\t-\tkafka orders\toffset 6\t"),
            "{text}"
        );
        assert!(
            lines[5].starts_with("6000\t-\tkafka orders\toffset 7\t"),
            "{text}"
        );
        assert!(lines[6].starts_with("-\t-\tkafka orders\tline 3"));
    }

    #[test]
    fn entries_without_a_position_are_named_by_batch_partition_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.tsv");
        let p = PartitionId::new(2);
        DeadLetters::to_file(&path)
            .unwrap()
            .record_batch(1000, &p, vec![bad(""), bad("")])
            .unwrap();
        // The replay of the checkpointed batch 1000.
        DeadLetters::to_file(&path)
            .unwrap()
            .record_batch(1000, &p, vec![bad(""), bad("")])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("batch 1000 partition 2 record 2"), "{text}");
    }

    /// `/dev/full` fails every write with "no space left on device", as a full disk does.
    #[test]
    fn a_write_the_disk_refuses_is_retried_then_fails_the_batch_and_a_receivers_entries_wait() {
        // (Built by hand: `to_file` would read the device's endless zeros first.)
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap();
        let dl = DeadLetters {
            file: Some(Arc::new(Mutex::new(DeadLetterFile {
                path: "/dev/full".into(),
                file,
                len: 0,
                pending: String::new(),
                failed: None,
                written: HashSet::new(),
            }))),
            ..DeadLetters::default()
        };
        let started = Instant::now();
        let give_up = started + std::time::Duration::from_millis(400);
        let err = dl
            .write_batch(1000, &PartitionId::new(0), vec![bad("offset 1")], &|| {
                Instant::now() >= give_up
            })
            .unwrap_err();
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        let text = err.to_string();
        assert!(
            text.contains("/dev/full") && text.contains("the batch fails"),
            "{text}"
        );
        assert!(!err.is_user_error(), "a full disk is the world's failure");
        assert!(dl.failure().is_none());
        // Entries already in the file are not a failure: nothing to write.
        assert!(
            dl.write_batch(1000, &PartitionId::new(0), Vec::new(), &|| true)
                .is_ok()
        );
    }

    #[test]
    fn a_half_written_entry_is_cut_off_before_the_next_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.tsv");
        let dl = DeadLetters::to_file(&path).unwrap();
        dl.record_batch(1000, &PartitionId::new(0), vec![bad("offset 1")])
            .unwrap();
        // A write that failed half way left bytes after the last whole entry.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"2000\t0\tkafka or")
            .unwrap();
        dl.record_batch(2000, &PartitionId::new(0), vec![bad("offset 2")])
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().all(|l| l.ends_with("x\\ty")), "{text}");
    }

    #[test]
    fn lines_of_an_older_format_are_kept() {
        let old = b"socket\tline 1\tnot UTF-8\t\\xff\n1000\t0\ts\tp\tr\tb\n";
        let scan = scan(old);
        assert_eq!(scan.kept, old.to_vec());
        assert!(scan.written.contains(&("s".to_owned(), "p".to_owned())));
    }
}
