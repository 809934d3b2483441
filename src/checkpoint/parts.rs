//! The background writer of state parts: a stateful operator encodes its share of a snapshot on
//! its worker (it must see the state as it stands after the batch) and hands the bytes here; a
//! thread of the process writes them (atomically, with fsync, mirrored to an object store when
//! the checkpoint is on one) while the worker goes on with the next batch.
//!
//! Invariants:
//! - A part is counted as outstanding from the moment it is handed over until its write ended
//!   (written or failed); [`PartWriter::wait`] returns once no part of a batch is outstanding.
//! - The snapshot's manifest is written only after every part exists (see `writer`), so a crash
//!   while parts are still being written leaves a snapshot without a manifest, which recovery
//!   never uses: it falls back to the snapshot before, whose plans are still kept.
//! - Writes are in hand-over order; at most one thread writes parts per process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::file::{Kind, write_framed};

/// One part to write: where, what, and for which batch and operator.
struct Job {
    path: PathBuf,
    t: u64,
    operator: String,
    bytes: Vec<u8>,
}

/// Outstanding parts per batch time, and failed writes per operator not yet reported.
#[derive(Default)]
struct Outstanding {
    count: Mutex<BTreeMap<u64, usize>>,
    done: Condvar,
    failed: Mutex<BTreeMap<String, u64>>,
}

/// The process's part writer (started with the first part).
#[derive(Default)]
pub(crate) struct PartWriter {
    tx: Mutex<Option<Sender<Job>>>,
    outstanding: Arc<Outstanding>,
}

impl PartWriter {
    /// Queues `bytes` to be written to `path` as batch `t`'s part of `operator`.
    pub(crate) fn write(&self, path: PathBuf, t: u64, operator: &str, bytes: Vec<u8>) {
        *super::lock(&self.outstanding.count).entry(t).or_default() += 1;
        let job = Job {
            path,
            t,
            operator: operator.to_owned(),
            bytes,
        };
        let mut tx = super::lock(&self.tx);
        let job = match tx.as_ref() {
            Some(sender) => match sender.send(job) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => job,
        };
        // First part, or the thread is gone: (re)start it.
        let (sender, rx) = std::sync::mpsc::channel::<Job>();
        let outstanding = Arc::clone(&self.outstanding);
        let spawned = std::thread::Builder::new()
            .name("sluice-state-parts".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    if let Err(e) = write_framed(&job.path, Kind::StatePart, &job.bytes) {
                        tracing::warn!(
                            "checkpoint: state of `{}` after batch {} ms not written: {e}",
                            job.operator,
                            job.t
                        );
                        *super::lock(&outstanding.failed)
                            .entry(job.operator.clone())
                            .or_default() += 1;
                    }
                    outstanding.finish(job.t);
                }
            });
        match spawned {
            Ok(_) => {
                let _ = sender.send(job);
                *tx = Some(sender);
            }
            Err(e) => {
                // No thread: write here, on the batch's path, rather than not at all.
                tracing::warn!("checkpoint: no background writer ({e}); writing state inline");
                if let Err(e) = write_framed(&job.path, Kind::StatePart, &job.bytes) {
                    tracing::warn!("checkpoint: state part not written: {e}");
                }
                self.outstanding.finish(job.t);
            }
        }
    }

    /// Parts of `operator` whose write failed since the last call (a full disk, say).
    pub(crate) fn take_failed(&self, operator: &str) -> u64 {
        super::lock(&self.outstanding.failed)
            .remove(operator)
            .unwrap_or(0)
    }

    /// What a manifest writer waits on.
    pub(crate) fn waiter(&self) -> PartsDone {
        PartsDone(Arc::clone(&self.outstanding))
    }
}

impl Outstanding {
    fn finish(&self, t: u64) {
        let mut count = super::lock(&self.count);
        if let Some(n) = count.get_mut(&t) {
            *n -= 1;
            if *n == 0 {
                count.remove(&t);
            }
        }
        self.done.notify_all();
    }
}

/// Waits for the parts of a batch, from the checkpoint's manifest writer.
#[derive(Clone, Default)]
pub(crate) struct PartsDone(Arc<Outstanding>);

impl PartsDone {
    /// Waits (at most `limit`) until no part of batch `t` or before is outstanding in this
    /// process; whether none is.
    pub(crate) fn wait(&self, t: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut count = super::lock(&self.0.count);
        loop {
            if count.range(..=t).next().is_none() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            count = self
                .0
                .done
                .wait_timeout(count, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_written_in_the_background_and_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let writer = PartWriter::default();
        let done = writer.waiter();
        for i in 0..20u64 {
            let path = dir
                .path()
                .join(format!("state-{}", 100 + i % 2))
                .join(format!("p{i}"));
            writer.write(path, 100 + i % 2, "op", vec![i as u8; 100_000]);
        }
        assert!(done.wait(101, Duration::from_secs(30)));
        for i in 0..20u64 {
            let path = dir
                .path()
                .join(format!("state-{}", 100 + i % 2))
                .join(format!("p{i}"));
            let bytes = super::super::file::read_framed(&path, Kind::StatePart).unwrap();
            assert_eq!(bytes, vec![i as u8; 100_000]);
        }
    }

    #[test]
    fn a_failed_write_ends_the_wait_and_leaves_no_part() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the state directory should be: the part cannot be created.
        std::fs::write(dir.path().join("state-7"), b"x").unwrap();
        let writer = PartWriter::default();
        let path = dir.path().join("state-7").join("op.part-0-of-1");
        writer.write(path.clone(), 7, "op", vec![1; 10]);
        assert!(writer.waiter().wait(7, Duration::from_secs(30)));
        assert!(!path.exists());
        assert_eq!(writer.take_failed("op"), 1);
        assert_eq!(writer.take_failed("op"), 0);
    }

    #[test]
    fn nothing_outstanding_returns_at_once() {
        assert!(PartsDone::default().wait(5, Duration::ZERO));
    }
}
