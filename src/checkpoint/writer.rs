//! The checkpoint's background writer: the completed-batch marker, snapshot manifests, and
//! pruning of what recovery can no longer need. Process 0 runs it on a thread of its own so that
//! no batch waits for these writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use super::file::{Kind, read_framed};
use super::parts::same_part_at;
use super::snapshot::{Manifest, parse_state_dir, part_base, part_path};
use super::{Checkpoint, codec, lock};

pub(super) enum Msg {
    Completed(u64),
    /// Batch `t`'s snapshot is complete on every worker; `remote`: some workers are in other
    /// processes (their parts may still be on their way).
    Manifest {
        t: u64,
        peers: usize,
        remote: bool,
    },
    Flush(Sender<()>),
}

impl Checkpoint {
    /// Batch `t` finished every output (process 0 records it, in the background); `local` of
    /// the `peers` workers are in this process.
    pub(crate) fn batch_completed(&self, t: u64, peers: usize, local: usize, snapshot: bool) {
        let tx = self.writer();
        let _ = tx.send(Msg::Completed(t));
        if snapshot {
            let remote = local < peers;
            let _ = tx.send(Msg::Manifest { t, peers, remote });
        }
    }

    /// Waits until everything sent to the background writer is on disk.
    pub(crate) fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.writer().send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(60));
        }
    }

    fn writer(&self) -> Sender<Msg> {
        let mut w = lock(&self.writer);
        if let Some(tx) = w.as_ref() {
            return tx.clone();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let job = WriterJob {
            parts: self.parts.waiter(),
            dir: self.dir.clone(),
            storage: self.storage.clone(),
            batch_ms: self.batch_ms,
            operators: lock(&self.operators).iter().cloned().collect(),
            window_ms: self.max_window_ms.load(Ordering::SeqCst),
        };
        let spawned = std::thread::Builder::new()
            .name("sluice-checkpoint".into())
            .spawn(move || job.run(rx));
        if let Err(e) = spawned {
            tracing::error!("checkpoint: cannot start the writer thread: {e}");
        }
        *w = Some(tx.clone());
        tx
    }
}

/// The background writer: the completed marker, manifests, pruning.
struct WriterJob {
    /// This process's state parts still being written.
    parts: super::parts::PartsDone,
    dir: PathBuf,
    storage: super::storage::Storage,
    batch_ms: u64,
    operators: Vec<String>,
    window_ms: u64,
}

impl WriterJob {
    fn run(self, rx: Receiver<Msg>) {
        let mut pending_completed: Option<u64> = None;
        while let Ok(msg) = rx.recv() {
            // Coalesce a run of completed markers: only the latest matters.
            let mut msgs = vec![msg];
            while let Ok(m) = rx.try_recv() {
                msgs.push(m);
            }
            for msg in msgs {
                match msg {
                    Msg::Completed(t) => pending_completed = Some(t),
                    Msg::Manifest { t, peers, remote } => {
                        self.write_completed(&mut pending_completed);
                        self.write_manifest(t, peers, remote);
                    }
                    Msg::Flush(done) => {
                        self.write_completed(&mut pending_completed);
                        let _ = done.send(());
                    }
                }
            }
            self.write_completed(&mut pending_completed);
        }
    }

    fn write_completed(&self, pending: &mut Option<u64>) {
        if let Some(t) = pending.take() {
            let bytes = codec::encode(&t).unwrap_or_default();
            if let Err(e) =
                self.storage
                    .write_framed(&self.dir.join("completed"), Kind::Completed, &bytes)
            {
                tracing::warn!("checkpoint: cannot record batch {t} ms as completed: {e}");
            }
        }
    }

    fn write_manifest(&self, t: u64, peers: usize, remote: bool) {
        let state_dir = self.dir.join(format!("state-{t}"));
        // This process's parts are written in the background: wait for them. Other processes'
        // parts (a job of several) are theirs to write; give them a while to appear.
        if !self.parts.wait(t, Duration::from_secs(120)) {
            tracing::warn!("checkpoint: state parts of batch {t} ms still not written after 120 s");
        }
        let missing_parts = || {
            self.operators
                .iter()
                .flat_map(|op| (0..peers).map(move |w| part_path(&self.dir, t, op, w, peers)))
                .filter(|p| !p.exists())
                .count()
        };
        let mut missing = missing_parts();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while missing > 0 && remote && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            missing = missing_parts();
        }
        // Every worker's part must be there (a full disk fails a part): a snapshot without
        // one is never used, so it is removed now rather than left to pile up.
        if missing > 0 {
            tracing::warn!(
                "checkpoint: the snapshot of batch {t} ms misses {missing} of its parts (a full disk?) and is abandoned; recovery uses an older one"
            );
            return self.abandon(&state_dir);
        }
        // A delta part needs its base: name the bases in the manifest (pruning keeps them),
        // and abandon the snapshot if one is gone (its own snapshot was abandoned).
        let mut bases = std::collections::BTreeSet::new();
        for op in &self.operators {
            for w in 0..peers {
                let path = part_path(&self.dir, t, op, w, peers);
                match part_base(&path) {
                    Ok(None) => {}
                    Ok(Some(base)) if same_part_at(&path, base).exists() => {
                        bases.insert(base);
                    }
                    Ok(Some(base)) => {
                        tracing::warn!(
                            "checkpoint: the snapshot of batch {t} ms builds on the state of batch {base} ms, which is gone; abandoned (recovery uses an older one)"
                        );
                        return self.abandon(&state_dir);
                    }
                    Err(e) => {
                        tracing::warn!(
                            "checkpoint: the snapshot of batch {t} ms has an unreadable part ({e}); abandoned"
                        );
                        return self.abandon(&state_dir);
                    }
                }
            }
        }
        let manifest = Manifest {
            batch_ms: self.batch_ms,
            t,
            peers,
            operators: self.operators.clone(),
            bases: bases.into_iter().collect(),
        };
        let path = self.dir.join(format!("state-{t}")).join("MANIFEST");
        let written = serde_json::to_vec(&manifest)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                self.storage
                    .write_framed(&path, Kind::Manifest, &b)
                    .map_err(|e| e.to_string())
            });
        match written {
            Ok(()) => {
                tracing::debug!("checkpoint: snapshot of batch {t} ms complete");
                self.prune(t);
            }
            Err(e) => {
                tracing::warn!("checkpoint: snapshot of batch {t} ms not written ({e}); abandoned");
                self.abandon(&state_dir);
            }
        }
    }

    /// Removes a snapshot that is never to be used.
    fn abandon(&self, state_dir: &Path) {
        let _ = std::fs::remove_dir_all(state_dir);
        self.storage.removed(state_dir);
    }

    /// Keeps the snapshots recovery may need (the two newest, and every one a window replay
    /// could start from), the bases their delta parts build on, and the plans from the oldest
    /// of all these on; removes the rest.
    fn prune(&self, newest: u64) {
        let mut complete: Vec<u64> = Vec::new();
        let mut partial: Vec<u64> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if let Some(t) = parse_state_dir(&e.file_name().to_string_lossy()) {
                    if e.path().join("MANIFEST").exists() {
                        complete.push(t);
                    } else {
                        partial.push(t);
                    }
                }
            }
        }
        complete.sort_unstable_by(|a, b| b.cmp(a));
        // A restore needs a snapshot at or before `newest + i - L`; keep the newest such one.
        let limit = (newest + self.batch_ms).saturating_sub(self.window_ms);
        let mut keep: Vec<u64> = complete.iter().copied().take(2).collect();
        if let Some(&old) = complete.iter().find(|&&t| t <= limit) {
            keep.push(old);
        }
        keep.extend(complete.iter().copied().filter(|&t| t > limit));
        let bases: Vec<u64> = keep.iter().flat_map(|&t| self.bases_of(t)).collect();
        keep.extend(bases);
        let Some(&oldest) = keep.iter().min() else {
            return;
        };
        for t in complete.iter().chain(&partial) {
            if *t < oldest && !keep.contains(t) {
                let _ = std::fs::remove_dir_all(self.dir.join(format!("state-{t}")));
                self.storage.removed(&self.dir.join(format!("state-{t}")));
            }
        }
        // Plan segments (`<start>-w<worker>-<run>.log`) and the receivers' write-ahead log
        // segments (`receiver/<source>/<start>.wal`): a segment started at batch `s` holds what
        // belongs to batches from `s` on, so per series the newest segment starting at or
        // before `oldest` and every later one are kept.
        prune_segments(&self.storage, &self.dir.join("plans"), oldest);
        prune_segments(&self.storage, &self.dir.join("generated"), oldest);
        if let Ok(receivers) = std::fs::read_dir(self.dir.join("receiver")) {
            for r in receivers.flatten() {
                prune_segments(&self.storage, &r.path(), oldest);
            }
        }
    }
}

impl WriterJob {
    /// The bases snapshot `t`'s manifest names (none when it cannot be read: such a snapshot
    /// is not used by recovery either).
    fn bases_of(&self, t: u64) -> Vec<u64> {
        let path = self.dir.join(format!("state-{t}")).join("MANIFEST");
        read_framed(&path, Kind::Manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
            .map(|m| m.bases)
            .unwrap_or_default()
    }
}

/// Removes the segments of `dir` that only hold batches before `oldest` (see `prune`).
/// Segment names start with their first batch time, then `-series` or `.extension`.
fn prune_segments(storage: &super::storage::Storage, dir: &Path, oldest: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut series: BTreeMap<String, Vec<(u64, PathBuf)>> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(split) = name.find(['-', '.']) else {
            continue;
        };
        let Ok(start) = name[..split].parse::<u64>() else {
            continue;
        };
        series
            .entry(name[split..].to_owned())
            .or_default()
            .push((start, e.path()));
    }
    for (_, mut list) in series {
        list.sort();
        let covering = list.iter().rposition(|(s, _)| *s <= oldest);
        for (i, (_, path)) in list.iter().enumerate() {
            if covering.is_some_and(|c| i < c) {
                let _ = std::fs::remove_file(path);
                storage.removed(path);
            }
        }
    }
}
