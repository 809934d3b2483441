//! Malformed input: counted, logged with its source position, and kept aside.
//!
//! Sources never panic on data. A record they cannot use becomes a [`Malformed`] entry: it is
//! counted in the batch metrics, logged (at most once per second per source, with the total),
//! and appended to a dead-letter file when one is configured, so that nothing is lost silently.
//!
//! **At least once.** An entry is appended when the record is read; a batch replayed after a
//! crash reads it again and appends it again. Every entry carries its source position (Kafka:
//! topic, partition and offset; the socket receiver: connection and line of that run), so the
//! duplicates of a replay are the entries with the same source and position.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    file: Option<Arc<Mutex<std::fs::File>>>,
    path: Option<PathBuf>,
    last_log: Arc<Mutex<Option<Instant>>>,
}

impl DeadLetters {
    /// Counts and logs malformed records, keeping no copy.
    pub fn counting() -> Self {
        Self::default()
    }

    /// Also appends each malformed record to `path` as one tab-separated line:
    /// source, position, reason, bytes (escaped).
    pub fn to_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| SluiceError::Io {
                action: "cannot open the dead-letter file",
                path: path.clone(),
                source,
            })?;
        Ok(DeadLetters {
            file: Some(Arc::new(Mutex::new(file))),
            path: Some(path),
            ..Self::default()
        })
    }

    /// Keeps one malformed record.
    pub fn record(&self, m: Malformed) {
        let total = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|l| l.elapsed().as_secs() >= 1) {
                *last = Some(Instant::now());
                tracing::warn!(
                    source = %m.source, position = %m.position, total,
                    "malformed record set aside: {}", m.reason
                );
            }
        }
        if let (Some(file), Some(path)) = (&self.file, &self.path) {
            let line = format!(
                "{}\t{}\t{}\t{}\n",
                m.source,
                m.position,
                m.reason,
                m.bytes.escape_ascii()
            );
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = f.write_all(line.as_bytes()) {
                tracing::error!(
                    "cannot append to the dead-letter file {}: {e}",
                    path.display()
                );
            }
        }
    }

    /// Malformed records so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}
