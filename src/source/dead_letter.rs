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
//! carry their batch time in milliseconds and partition. A record that is read again after a
//! crash (a batch replayed from its checkpointed plan, or Kafka records re-read from the
//! committed offsets in whatever batch) is set aside again; [`DeadLetters::to_file`] reads the
//! file first, and an entry whose `(source, position)` is already there is not written again.
//! So `position` must name the record in its source — Kafka's partition and offset, or, when
//! the operator is given none, the batch, partition and index `try_map` fills in (the same in a
//! replay of a checkpointed batch). A line cut short by a crash is removed. Every entry is in
//! the file once.
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
use crate::dstream::partition::PartitionId;
use crate::error::{Result, SluiceError};

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
        Ok(DeadLetters {
            file: Some(Arc::new(Mutex::new(DeadLetterFile {
                path,
                file,
                written: scan.written,
            }))),
            ..Self::default()
        })
    }

    /// Keeps one malformed record a receiver read outside any batch (written at once).
    pub fn record(&self, m: Malformed) {
        self.count_and_log(&m, 1);
        let line = entry_line(None, &m);
        self.append(&line);
    }

    /// Keeps the malformed records of one partition of batch `batch_ms`, written together; an
    /// entry whose `(source, position)` was in the file before this run (its record was read
    /// again after a crash) is not written again. An empty `position` becomes
    /// `batch <ms> partition <p> record <i>` (`i` counts the partition's entries from 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::partition::PartitionId;
    /// use sluice::source::{DeadLetters, Malformed};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("bad.tsv");
    /// let bad = || vec![Malformed { source: "kafka t".into(), position: "partition 0 offset 7".into(), reason: "no comma".into(), bytes: b"x".to_vec() }];
    /// DeadLetters::to_file(&path)?.record_batch(1000, &PartitionId::new(0), bad());
    /// DeadLetters::to_file(&path)?.record_batch(3000, &PartitionId::new(1), bad()); // read again
    /// assert_eq!(std::fs::read_to_string(&path)?.lines().count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_batch(&self, batch_ms: u64, partition: &PartitionId, entries: Vec<Malformed>) {
        let Some(first) = entries.first() else {
            return;
        };
        self.count_and_log(first, entries.len() as u64);
        let Some(file) = &self.file else {
            return;
        };
        let partition = partition.to_string();
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines = String::new();
        for (i, mut m) in entries.into_iter().enumerate() {
            if m.position.is_empty() {
                m.position = format!("batch {batch_ms} partition {partition} record {}", i + 1);
            }
            let (source, position) = (clean(&m.source), clean(&m.position));
            if f.written.contains(&(source, position)) {
                continue;
            }
            lines.push_str(&entry_line(Some((batch_ms, &partition)), &m));
        }
        if !lines.is_empty() {
            f.append(lines.as_bytes());
        }
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

    fn append(&self, line: &str) {
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.append(line.as_bytes());
        }
    }

    /// Malformed records so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl DeadLetterFile {
    fn append(&mut self, bytes: &[u8]) {
        if let Err(e) = self.file.write_all(bytes) {
            tracing::error!(
                "cannot append to the dead-letter file {}: {e}",
                self.path.display()
            );
        }
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
        dl.record_batch(1000, &p0, vec![bad("offset 1"), bad("offset 2")]);
        dl.record(bad("line 3"));
        dl.record_batch(2000, &p0, vec![bad("offset 5"), bad("offset 6")]);
        drop(dl);
        // A crash in the middle of the last write: half of its last line is gone.
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 10]).unwrap();
        let dl = DeadLetters::to_file(&path).unwrap();
        // Read again after the restart, in other batches.
        dl.record_batch(5000, &p1, vec![bad("offset 2"), bad("offset 5")]);
        dl.record_batch(6000, &p1, vec![bad("offset 6"), bad("offset 7")]);
        dl.record(bad("line 3")); // a new run's line 3: another record
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(lines[0], "1000\t0\tkafka orders\toffset 1\tno comma\tx\\ty");
        assert!(lines[2].starts_with("-\t-\tkafka orders\tline 3"));
        assert!(
            lines[3].starts_with("2000\t0\tkafka orders\toffset 5\t"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("6000\t1\tkafka orders\toffset 6\t"),
            "{text}"
        );
        assert!(
            lines[5].starts_with("6000\t1\tkafka orders\toffset 7\t"),
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
            .record_batch(1000, &p, vec![bad(""), bad("")]);
        // The replay of the checkpointed batch 1000.
        DeadLetters::to_file(&path)
            .unwrap()
            .record_batch(1000, &p, vec![bad(""), bad("")]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("batch 1000 partition 2 record 2"), "{text}");
    }

    #[test]
    fn lines_of_an_older_format_are_kept() {
        let old = b"socket\tline 1\tnot UTF-8\t\\xff\n1000\t0\ts\tp\tr\tb\n";
        let scan = scan(old);
        assert_eq!(scan.kept, old.to_vec());
        assert!(scan.written.contains(&("s".to_owned(), "p".to_owned())));
    }
}
