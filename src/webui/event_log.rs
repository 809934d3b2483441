//! The event log (Spark's `spark.eventLog.dir`): what the web UI knows of a job, one JSON line
//! per event, so that `sluice history` can serve the same page and REST API after the process is
//! gone — the batch that failed included.
//!
//! A log is a file `<app>-<start ms>-p<process>.jsonl` in its directory (the checkpoint's
//! `events/`, or `--event-log DIR`): a `job` line first (the job's description, secrets
//! redacted), then one line per completed batch (its whole [`BatchInfo`]) and per failed batch;
//! the file is created with the first batch's line (a job refused at start leaves none). Lines
//! are written whole and flushed as they come; a line cut by a crash is skipped when the log is
//! read.
//!
//! ```
//! use sluice::webui::{EventLog, JobDescription};
//! let dir = tempfile::tempdir()?;
//! let job = JobDescription { name: "wc".into(), batch_ms: 1000, workers: 1, processes: 1, process: 0, settings: vec![] };
//! let log = EventLog::create(dir.path(), &job)?;
//! assert!(!log.path().exists(), "written once a batch ends");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{JobDescription, Status};
use crate::error::{Result, SluiceError};
use crate::listener::{BatchInfo, StreamingListener};

/// One line of the log.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
enum Event {
    /// The job, first.
    Job {
        job: JobDescription,
        started_ms: u64,
    },
    /// A batch completed.
    BatchCompleted { batch: BatchInfo },
    /// An output failed a batch for good.
    BatchFailed {
        batch_ms: u64,
        output: String,
        reason: String,
    },
}

/// A listener that appends the job's events to its log (see the module docs).
pub struct EventLog {
    path: PathBuf,
    /// Opened with the first batch's event (its first line the job's), so that a job refused
    /// at start (its checkpoint in use, say) leaves no log behind.
    file: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
    /// The `job` line.
    header: String,
}

impl EventLog {
    /// Starts the log of `job` in `dir` (created if missing).
    pub fn create(dir: &Path, job: &JobDescription) -> Result<EventLog> {
        std::fs::create_dir_all(dir).map_err(|source| SluiceError::Io {
            action: "cannot create the event log directory",
            path: dir.to_owned(),
            source,
        })?;
        let started_ms = now_ms();
        let name = format!(
            "{}-{started_ms}-p{}.jsonl",
            file_safe(&job.name),
            job.process
        );
        let mut job = job.clone();
        for (_, v) in &mut job.settings {
            *v = crate::redact::redact(v).into_owned();
        }
        let header = line(&Event::Job { job, started_ms }).unwrap_or_default();
        Ok(EventLog {
            path: dir.join(name),
            file: Mutex::new(None),
            header,
        })
    }

    /// The log's file (written once the job's first batch ends).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, event: &Event) {
        let Some(text) = line(event) else {
            return;
        };
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // The log is the UI's history, not the job's output: a full disk costs history only.
        let written = (|| -> std::io::Result<()> {
            if f.is_none() {
                let file = std::fs::OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(&self.path)?;
                let mut w = std::io::BufWriter::new(file);
                w.write_all(self.header.as_bytes())?;
                *f = Some(w);
            }
            if let Some(w) = f.as_mut() {
                w.write_all(text.as_bytes())?;
                w.flush()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            tracing::warn!("event log {}: cannot write: {e}", self.path.display());
        }
    }
}

/// An event as its line: JSON, redacted, with its newline.
fn line(event: &Event) -> Option<String> {
    let mut line = crate::redact::redact(&serde_json::to_string(event).ok()?).into_owned();
    line.push('\n');
    Some(line)
}

impl StreamingListener for EventLog {
    fn on_batch_completed(&self, batch: &BatchInfo) {
        self.append(&Event::BatchCompleted {
            batch: batch.clone(),
        });
    }

    fn on_batch_failed(&self, batch_time: crate::Time, output: &str, reason: &str) {
        self.append(&Event::BatchFailed {
            batch_ms: batch_time.millis(),
            output: output.to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// The web UI's status of the job whose log is `path`, as it was when the log ended: every
/// batch it completed, and the one that failed.
pub fn replay(path: &Path) -> Result<Status> {
    let text = std::fs::read_to_string(path).map_err(|source| SluiceError::Io {
        action: "cannot read the event log",
        path: path.to_owned(),
        source,
    })?;
    let mut status: Option<Status> = None;
    let mut started = 0;
    let mut last = 0;
    for (i, line) in text.lines().enumerate() {
        let event: Event = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("{}: line {} skipped: {e}", path.display(), i + 1);
                continue;
            }
        };
        match (event, &status) {
            (Event::Job { job, started_ms }, None) => {
                started = started_ms;
                last = started_ms;
                status = Some(Status::new(job, usize::MAX));
            }
            (Event::BatchCompleted { batch }, Some(s)) => {
                last = last.max(batch.batch_time.millis() + ms(batch.total_delay));
                s.on_batch_completed(&batch);
            }
            (
                Event::BatchFailed {
                    batch_ms,
                    output,
                    reason,
                },
                Some(s),
            ) => {
                last = last.max(batch_ms);
                s.on_batch_failed(crate::Time::from_millis(batch_ms), &output, &reason);
            }
            _ => {}
        }
    }
    if let Some(s) = status.as_mut() {
        s.set_history(started, last);
    }
    status.ok_or_else(|| SluiceError::InvalidConfig {
        problem: format!(
            "{} is not an event log (it has no job line)",
            path.display()
        ),
        fix: "give a file sluice wrote in the event log directory (`*.jsonl`)".into(),
    })
}

/// The logs in `dir`, newest last.
pub fn logs_in(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .filter_map(|p| {
                    let stem = p.file_stem()?.to_string_lossy().into_owned();
                    let started: u64 = stem.rsplit('-').nth(1)?.parse().ok()?;
                    Some((started, p))
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs.into_iter().map(|(_, p)| p).collect()
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::{SourceInput, StreamingListener};

    #[test]
    fn a_replayed_log_gives_the_status_the_job_had() {
        let dir = tempfile::tempdir().unwrap();
        let job = JobDescription {
            name: "wc".into(),
            batch_ms: 1000,
            workers: 1,
            processes: 1,
            process: 0,
            settings: vec![(
                "command line".into(),
                "--url postgres://u:pw1234@h/d".into(),
            )],
        };
        let log = EventLog::create(dir.path(), &job).unwrap();
        let live = Status::new(job, 100);
        let batch = |t: u64, n: u64| BatchInfo {
            batch_time: crate::Time::from_millis(t),
            inputs: vec![SourceInput {
                source: "socket".into(),
                records: n,
                ..Default::default()
            }],
            scheduling_delay: std::time::Duration::from_millis(3),
            processing_time: std::time::Duration::from_micros(6560),
            total_delay: std::time::Duration::from_millis(10),
            state: vec![],
            snapshots: vec![],
            outputs: vec![],
        };
        for (t, n) in [(1000, 5), (2000, 7)] {
            log.on_batch_completed(&batch(t, n));
            live.on_batch_completed(&batch(t, n));
        }
        log.on_batch_failed(crate::Time::from_millis(3000), "sql sink", "duplicate key");
        live.on_batch_failed(crate::Time::from_millis(3000), "sql sink", "duplicate key");
        // A line cut by a crash is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"event\":\"batchCompl")
            .unwrap();
        let replayed = replay(log.path()).unwrap();
        assert_eq!(replayed.batches(), live.batches());
        assert_eq!(replayed.statistics().num_total_completed_batches, 2);
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains("pw1234"), "{text}");
        assert_eq!(logs_in(dir.path()), vec![log.path().to_owned()]);
    }
}
