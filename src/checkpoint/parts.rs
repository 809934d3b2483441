//! The background writer of state parts: a stateful operator encodes its share of a snapshot on
//! its worker (it must see the state as it stands after the batch) and hands the bytes here; a
//! thread of the process writes them (atomically, with fsync, mirrored to an object store when
//! the checkpoint is on one) while the worker goes on with the next batch.
//!
//! A worker hands over either a full part or its changes since its previous snapshot (for its
//! first: since the snapshot it restored, when it resumed that part's chain, else since the
//! run began); the writer keeps each worker's chain (see
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
//! - A resumed run continues a worker's chain from the part it restored
//!   ([`PartWriter::resume`]) only when that worker holds exactly the keys of that part: its
//!   changes then follow the restored snapshot, and the restored state is not written again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::delta::{EMPTY_FULL, MAX_DELTAS, StateCodec, delta_payload};
use super::file::{CheckpointError, Kind, read_framed};
use super::storage::Storage;

/// What a worker hands over.
pub(crate) enum Body {
    /// Every entry of its share.
    Full,
    /// The changes since its part of batch `prev` (for a resumed chain's first, the restored
    /// snapshot's; `None`: since the run began, from empty state); the share holds `keys` keys.
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

/// What the writer thread is asked to do.
enum Order {
    /// Write a part.
    Write(Job),
    /// Take up a chain where a restored snapshot left it (before any part of the run).
    Resume { id: PathBuf, chain: Chain },
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

/// The process's part writer (started with the first part), writing through the
/// checkpoint's storage.
#[derive(Default)]
pub(crate) struct PartWriter {
    tx: Mutex<Option<Sender<Order>>>,
    outstanding: Arc<Outstanding>,
    storage: Storage,
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
struct Chains {
    chains: HashMap<PathBuf, Chain>,
    storage: Storage,
}

impl Chains {
    fn new(storage: Storage) -> Self {
        Chains {
            chains: HashMap::new(),
            storage,
        }
    }

    /// Carries out one order, reporting how a write ended.
    fn take(&mut self, order: Order, outstanding: &Outstanding) {
        match order {
            Order::Resume { id, chain } => {
                self.chains.insert(id, chain);
            }
            Order::Write(job) => {
                let (t, operator, path) = (job.t, job.operator.clone(), job.path.clone());
                if let Err(e) = self.write(job) {
                    outstanding.fail(&operator, &path, t, &e);
                }
                outstanding.finish(t);
            }
        }
    }

    /// Writes `job`'s part; on failure the chain ends and the reason is returned.
    fn write(&mut self, job: Job) -> Result<(), CheckpointError> {
        let id = part_name(&job.path);
        let written = self.write_part(&id, job);
        if written.is_err() {
            self.chains.remove(&id);
        }
        written
    }

    fn write_part(&mut self, id: &Path, job: Job) -> Result<(), CheckpointError> {
        let Job {
            path,
            t,
            bytes,
            body,
            ..
        } = job;
        let codec_error = |source| CheckpointError::Codec {
            path: path.clone(),
            source,
        };
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
            let full = (codec.apply)(EMPTY_FULL, &bytes).map_err(codec_error)?;
            return self.write_base(id, &path, t, &full);
        };
        let chain = self
            .chains
            .get_mut(id)
            .filter(|c| c.last == prev)
            .ok_or_else(|| CheckpointError::OutOfOrder {
                path: path.clone(),
                why: format!(
                    "its changes follow the part of batch {prev} ms, which was not written"
                ),
            })?;
        let (changes, n) = match chain.changes.take() {
            None => (bytes, changed),
            Some((older, _)) => (codec.merge)(&older, &bytes).map_err(codec_error)?,
        };
        let base_path = same_part_at(&path, chain.base);
        if n.saturating_mul(4) >= keys || chain.deltas + 1 >= MAX_DELTAS {
            // Compaction: the base with the changes applied is the next base.
            let base = read_framed(&base_path, Kind::StatePart)?;
            let full = (codec.apply)(&base, &changes).map_err(codec_error)?;
            return self.write_base(id, &path, t, &full);
        }
        // The base may have been abandoned with its snapshot (another worker's part failed).
        if !base_path.exists() {
            return Err(CheckpointError::OutOfOrder {
                path,
                why: format!("its base {} is gone", base_path.display()),
            });
        }
        self.storage.write_framed(
            &path,
            Kind::StateDelta,
            &delta_payload(chain.base, &changes),
        )?;
        chain.last = t;
        chain.deltas += 1;
        chain.changes = Some((changes, n));
        Ok(())
    }

    /// Writes a full part, the base of the chain's next deltas.
    fn write_base(
        &mut self,
        id: &Path,
        path: &Path,
        t: u64,
        full: &[u8],
    ) -> Result<(), CheckpointError> {
        self.storage.write_framed(path, Kind::StatePart, full)?;
        let chain = Chain {
            base: t,
            last: t,
            changes: None,
            deltas: 0,
        };
        self.chains.insert(id.to_owned(), chain);
        Ok(())
    }
}

impl PartWriter {
    /// A writer of parts through `storage`.
    pub(crate) fn new(storage: Storage) -> Self {
        PartWriter {
            storage,
            ..PartWriter::default()
        }
    }

    /// Queues `bytes` to be written to `path` as batch `t`'s part of `operator`.
    pub(crate) fn write(&self, path: PathBuf, t: u64, operator: &str, bytes: Vec<u8>, body: Body) {
        *super::lock(&self.outstanding.count).entry(t).or_default() += 1;
        self.send(Order::Write(Job {
            path,
            t,
            operator: operator.to_owned(),
            bytes,
            body,
        }));
    }

    /// Takes up the chain of the part at `restored` (a worker's part of a restored snapshot):
    /// the worker's changes since that snapshot are then written as deltas on the part's base
    /// (`changes`: the restored delta's changes since it and their number; `None` for a full
    /// part, its own base). To be called before the worker's first part of the run.
    pub(crate) fn resume(
        &self,
        restored: &Path,
        t: u64,
        base: u64,
        changes: Option<(Vec<u8>, usize)>,
    ) {
        let chain = Chain {
            base,
            last: t,
            deltas: u32::from(changes.is_some()),
            changes,
        };
        self.send(Order::Resume {
            id: part_name(restored),
            chain,
        });
    }

    fn send(&self, order: Order) {
        let mut tx = super::lock(&self.tx);
        let order = match tx.as_ref() {
            Some(sender) => match sender.send(order) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => order,
        };
        // First order, or the thread is gone: (re)start it.
        let (sender, rx) = std::sync::mpsc::channel::<Order>();
        let outstanding = Arc::clone(&self.outstanding);
        let storage = self.storage.clone();
        let spawned = std::thread::Builder::new()
            .name("sluice-state-parts".into())
            .spawn(move || {
                let mut chains = Chains::new(storage);
                while let Ok(order) = rx.recv() {
                    chains.take(order, &outstanding);
                }
            });
        match spawned {
            Ok(_) => {
                let _ = sender.send(order);
                *tx = Some(sender);
            }
            Err(e) => {
                // No thread: a full part is written here, on the batch's path, rather than not
                // at all; changes cannot be (the chain lives on the thread), so they fail and
                // the worker's next part is full.
                tracing::warn!("checkpoint: no background writer ({e}); writing state inline");
                Chains::new(self.storage.clone()).take(order, &self.outstanding);
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
    fn fail(&self, operator: &str, path: &Path, t: u64, why: &CheckpointError) {
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
    fn a_resumed_chain_writes_its_changes_as_a_delta_on_the_restored_base() {
        use super::super::codec;
        use super::super::delta::Changelog;
        let dir = tempfile::tempdir().unwrap();
        let at = |t: u64, w: usize| {
            dir.path()
                .join(format!("state-{t}"))
                .join(format!("op.part-{w}-of-2"))
        };
        let base = codec::encode(&vec![(1u8, 5u16, 0u64)]).unwrap();
        for w in 0..2 {
            super::super::file::write_framed(&at(10, w), Kind::StatePart, &base).unwrap();
        }
        let writer = PartWriter::default();
        // Worker 0 resumes the chain of its restored part; worker 1 does not.
        writer.resume(&at(10, 0), 10, 10, None);
        for w in 0..2 {
            let mut log = Changelog::default();
            log.push(&2u8, Some((&7u16, 0)));
            let (bytes, changed) = log.take().unwrap();
            let body = Body::Changes {
                prev: Some(10),
                keys: 100,
                changed,
                codec: StateCodec::of::<u8, u16>(),
            };
            writer.write(at(12, w), 12, "op", bytes, body);
        }
        assert!(writer.waiter().wait(12, Duration::from_secs(30)));
        let (kind, payload) =
            super::super::file::read_framed_of(&at(12, 0), &[Kind::StateDelta]).unwrap();
        assert_eq!(kind, Kind::StateDelta);
        assert_eq!(super::super::delta::split_delta(&payload).unwrap().0, 10);
        assert_eq!(writer.take_failed(&at(12, 0)), 0);
        // Changes that follow a part this writer never had are refused: the next part is full.
        assert!(!at(12, 1).exists());
        assert_eq!(writer.take_failed(&at(12, 1)), 1);
    }

    #[test]
    fn nothing_outstanding_returns_at_once() {
        assert!(PartsDone::default().wait(5, Duration::ZERO));
    }
}
