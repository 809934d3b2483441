//! The background writer of state parts: a stateful operator encodes its share of a snapshot on
//! its worker (it must see the state as it stands after the batch) and hands the bytes here; a
//! thread of the process writes them (atomically, with fsync, mirrored to an object store when
//! the checkpoint is on one) while the worker goes on with the next batch.
//!
//! A worker hands over either a full part or its changes since its previous snapshot (since
//! the run began, for its first); the writer keeps each worker's chain (see
//! [`delta`](super::delta)): it folds the changes into the chain's changes since its base and
//! writes those as a delta part, or compacts them into a new full part, here, off the batch's
//! path.
//!
//! Invariants:
//! - A part is counted as outstanding from the moment it is handed over until its write ended
//!   (written or failed); [`PartWriter::wait`] returns once no part of a batch is outstanding.
//! - The snapshot's manifest is written only after every part exists (see `writer`), so a crash
//!   while parts are still being written leaves a snapshot without a manifest, which recovery
//!   never uses: it falls back to the snapshot before, whose plans are still kept.
//! - Writes are in hand-over order; at most one thread writes parts per process.
//! - Changes are only written on the snapshot they were taken after (`prev` is the chain's
//!   last part, written): anything else is a failed part, and a failure ends the chain, so the
//!   worker's next part is full.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::delta::{EMPTY_FULL, MAX_DELTAS, StateCodec, delta_payload};
use super::file::{Kind, read_framed, write_framed};

/// What a worker hands over.
pub(crate) enum Body {
    /// Every entry of its share.
    Full,
    /// The changes since its part of batch `prev` (`None`: since the run began, from empty
    /// state); the share holds `keys` keys.
    Changes {
        prev: Option<u64>,
        keys: usize,
        changed: usize,
        codec: StateCodec,
    },
}

/// One part to write: where, what, and for which batch and operator.
struct Job {
    path: PathBuf,
    t: u64,
    operator: String,
    bytes: Vec<u8>,
    body: Body,
}

/// One worker's chain of parts for one operator (keyed by the part's file name).
struct Chain {
    /// The full part the deltas build on.
    base: u64,
    /// The chain's last part written.
    last: u64,
    /// The changes since `base` (encoded), and how many.
    changes: Option<(Vec<u8>, usize)>,
    deltas: u32,
}

/// Outstanding parts per batch time, and failed writes per part name (an operator's share on
/// one worker: `<operator>.part-<w>-of-<n>`) not yet reported.
#[derive(Default)]
struct Outstanding {
    count: Mutex<BTreeMap<u64, usize>>,
    done: Condvar,
    failed: Mutex<BTreeMap<PathBuf, u64>>,
}

/// The process's part writer (started with the first part).
#[derive(Default)]
pub(crate) struct PartWriter {
    tx: Mutex<Option<Sender<Job>>>,
    outstanding: Arc<Outstanding>,
}

/// `path` (a part of `state-<t>/`) as the same part of `state-<base>/`.
pub(super) fn same_part_at(path: &Path, base: u64) -> PathBuf {
    let name = path.file_name().unwrap_or_default();
    let checkpoint = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    checkpoint.join(format!("state-{base}")).join(name)
}

/// The name shared by one worker's parts of one operator in every snapshot.
fn part_name(path: &Path) -> PathBuf {
    path.file_name().map(PathBuf::from).unwrap_or_default()
}

/// The writer thread's side: the chains, and what one job does to them.
#[derive(Default)]
struct Chains(HashMap<PathBuf, Chain>);

impl Chains {
    /// Writes `job`'s part; on failure the chain ends and the reason is returned.
    fn write(&mut self, job: Job) -> Result<(), String> {
        let id = part_name(&job.path);
        let written = self.write_part(&id, job);
        if written.is_err() {
            self.0.remove(&id);
        }
        written
    }

    fn write_part(&mut self, id: &Path, job: Job) -> Result<(), String> {
        let Job {
            path,
            t,
            bytes,
            body,
            ..
        } = job;
        let text = |e: &dyn std::fmt::Display| e.to_string();
        let (prev, keys, changed, codec) = match body {
            Body::Full => return self.write_base(id, &path, t, &bytes),
            Body::Changes {
                prev,
                keys,
                changed,
                codec,
            } => (prev, keys, changed, codec),
        };
        let Some(prev) = prev else {
            // The run's first part: its changes since empty state, compacted at once.
            let full = (codec.apply)(EMPTY_FULL, &bytes).map_err(|e| text(&e))?;
            return self.write_base(id, &path, t, &full);
        };
        let chain = self
            .0
            .get_mut(id)
            .filter(|c| c.last == prev)
            .ok_or_else(|| {
                format!("its changes follow the part of batch {prev} ms, which was not written")
            })?;
        let (changes, n) = match chain.changes.take() {
            None => (bytes, changed),
            Some((older, _)) => (codec.merge)(&older, &bytes).map_err(|e| text(&e))?,
        };
        let base_path = same_part_at(&path, chain.base);
        if n.saturating_mul(4) >= keys || chain.deltas + 1 >= MAX_DELTAS {
            // Compaction: the base with the changes applied is the next base.
            let base = read_framed(&base_path, Kind::StatePart).map_err(|e| text(&e))?;
            let full = (codec.apply)(&base, &changes).map_err(|e| text(&e))?;
            return self.write_base(id, &path, t, &full);
        }
        // The base may have been abandoned with its snapshot (another worker's part failed).
        if !base_path.exists() {
            return Err(format!("its base {} is gone", base_path.display()));
        }
        write_framed(
            &path,
            Kind::StateDelta,
            &delta_payload(chain.base, &changes),
        )
        .map_err(|e| text(&e))?;
        chain.last = t;
        chain.deltas += 1;
        chain.changes = Some((changes, n));
        Ok(())
    }

    /// Writes a full part, the base of the chain's next deltas.
    fn write_base(&mut self, id: &Path, path: &Path, t: u64, full: &[u8]) -> Result<(), String> {
        write_framed(path, Kind::StatePart, full).map_err(|e| e.to_string())?;
        let chain = Chain {
            base: t,
            last: t,
            changes: None,
            deltas: 0,
        };
        self.0.insert(id.to_owned(), chain);
        Ok(())
    }
}

impl PartWriter {
    /// Queues `bytes` to be written to `path` as batch `t`'s part of `operator`.
    pub(crate) fn write(&self, path: PathBuf, t: u64, operator: &str, bytes: Vec<u8>, body: Body) {
        *super::lock(&self.outstanding.count).entry(t).or_default() += 1;
        let job = Job {
            path,
            t,
            operator: operator.to_owned(),
            bytes,
            body,
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
                let mut chains = Chains::default();
                while let Ok(job) = rx.recv() {
                    let (t, operator, path) = (job.t, job.operator.clone(), job.path.clone());
                    if let Err(e) = chains.write(job) {
                        outstanding.fail(&operator, &path, t, &e);
                    }
                    outstanding.finish(t);
                }
            });
        match spawned {
            Ok(_) => {
                let _ = sender.send(job);
                *tx = Some(sender);
            }
            Err(e) => {
                // No thread: a full part is written here, on the batch's path, rather than not
                // at all; changes cannot be (the chain lives on the thread), so they fail and
                // the worker's next part is full.
                tracing::warn!("checkpoint: no background writer ({e}); writing state inline");
                let (t, operator, path) = (job.t, job.operator.clone(), job.path.clone());
                if let Err(e) = Chains::default().write(job) {
                    self.outstanding.fail(&operator, &path, t, &e);
                }
                self.outstanding.finish(t);
            }
        }
    }

    /// Writes of the part at `path` (in any snapshot: one worker's share of one operator)
    /// that failed since the last call (a full disk, say).
    pub(crate) fn take_failed(&self, path: &Path) -> u64 {
        super::lock(&self.outstanding.failed)
            .remove(&part_name(path))
            .unwrap_or(0)
    }

    /// What a manifest writer waits on.
    pub(crate) fn waiter(&self) -> PartsDone {
        PartsDone(Arc::clone(&self.outstanding))
    }
}

impl Outstanding {
    fn fail(&self, operator: &str, path: &Path, t: u64, why: &str) {
        tracing::warn!("checkpoint: state of `{operator}` after batch {t} ms not written: {why}");
        *super::lock(&self.failed)
            .entry(part_name(path))
            .or_default() += 1;
    }

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
            writer.write(path, 100 + i % 2, "op", vec![i as u8; 100_000], Body::Full);
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
        writer.write(path.clone(), 7, "op", vec![1; 10], Body::Full);
        assert!(writer.waiter().wait(7, Duration::from_secs(30)));
        assert!(!path.exists());
        assert_eq!(writer.take_failed(&path), 1);
        assert_eq!(writer.take_failed(&path), 0);
    }

    #[test]
    fn nothing_outstanding_returns_at_once() {
        assert!(PartsDone::default().wait(5, Duration::ZERO));
    }
}
