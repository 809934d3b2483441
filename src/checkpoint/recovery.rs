//! What a restarted job recovers: which snapshot it restores, where its first batch is, and
//! which batches it replays silently (see the [module docs](super) for the whole procedure).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::snapshot::Snapshot;
use super::{Checkpoint, ck_err, lock};
use crate::error::Result;

impl Checkpoint {
    /// The snapshot recovery restores, decided on first use (after the dataflow is built).
    pub(super) fn chosen(&self) -> Option<Arc<Snapshot>> {
        let mut chosen = lock(&self.chosen);
        if let Some(c) = chosen.as_ref() {
            return c.clone();
        }
        let i = self.batch_ms;
        let window = self.max_window_ms.load(Ordering::SeqCst);
        let newest = self.snapshots.first().map(|s| s.t);
        let completed = match (self.completed, newest) {
            (Some(c), Some(n)) => Some(c.max(n)),
            (c, n) => c.or(n),
        };
        let pick = completed.and_then(|c| {
            self.snapshots
                .iter()
                .find(|s| s.t + window <= c + i)
                .cloned()
        });
        *chosen = Some(pick.clone());
        pick
    }

    /// The first batch of this run.
    pub(crate) fn first_batch(&self) -> Result<u64> {
        if !self.resuming {
            return Ok(self.zero);
        }
        let plans = lock(&self.plans);
        match self.chosen() {
            Some(s) => {
                self.report_orphans(&s);
                tracing::info!(
                    "checkpoint: restoring the state of batch {} ms (written by {} workers); replaying from {} ms",
                    s.t,
                    s.peers,
                    s.t + self.batch_ms
                );
                Ok(s.t + self.batch_ms)
            }
            None => match plans.keys().next() {
                Some(&first) if first > self.zero => Err(ck_err(format!(
                    "{} has no usable snapshot and its batch plans start at {first} ms, after the job's first batch {} ms",
                    self.dir.display(),
                    self.zero
                ))),
                _ => {
                    tracing::info!(
                        "checkpoint: no snapshot to restore; replaying from the job's first batch {} ms",
                        self.zero
                    );
                    Ok(self.zero)
                }
            },
        }
    }

    /// Says which operators of the restored snapshot this job has none of: their state is
    /// dropped (ARCHITECTURE.md §6: a changed job keeps what still matches and says what it dropped).
    fn report_orphans(&self, snapshot: &Snapshot) {
        let operators = lock(&self.operators);
        for name in snapshot.operators() {
            if !operators.contains(&name) {
                tracing::warn!(
                    "checkpoint {}: the state of operator `{name}` (batch {} ms) found no operator of that name in this job and is dropped; give the operator that should keep it that `.name(..)`",
                    self.dir.display(),
                    snapshot.t
                );
            }
        }
    }

    /// With no usable snapshot, a resumed run rebuilds its state by replaying from the job's
    /// first batch: source `key` must be able to (its plans go back to that batch), or the
    /// rebuilt state would quietly miss what the finished batches counted. Refused otherwise,
    /// with the choices.
    pub(crate) fn check_replay_from_start(&self, key: &str, name: &str) -> Result<()> {
        let stateful = !lock(&self.operators).is_empty();
        if !self.resuming || !stateful || self.completed.is_none() || self.chosen().is_some() {
            return Ok(());
        }
        let replayable = lock(&self.plans)
            .get(&self.zero)
            .is_some_and(|by| by.contains_key(key));
        if replayable {
            return Ok(());
        }
        Err(crate::SluiceError::Checkpoint {
            problem: format!(
                "{} holds batches finished up to {} ms but no usable snapshot of their state, and source `{name}` cannot replay them from the job's first batch {} ms (it records no plans from there): starting would begin from empty state",
                self.dir.display(),
                self.completed.unwrap_or(0),
                self.zero
            ),
            fix: format!(
                "restore a snapshot (`state-*` with its MANIFEST) into {} from a backup; or start afresh with a new, empty checkpoint directory (the state is lost); keep the write-ahead log on for socket sources so that they can replay",
                self.dir.display()
            ),
        })
    }

    /// The latest batch recorded by an earlier run: batches up to it may have run their
    /// outputs (in part) before a crash.
    pub(crate) fn last_planned(&self) -> Option<u64> {
        if !self.resuming {
            return None;
        }
        lock(&self.plans).keys().next_back().copied()
    }

    /// The latest batch whose outputs finished before this run (outputs stay off up to it).
    pub(crate) fn completed(&self) -> Option<u64> {
        self.completed
    }

    /// The operators of the snapshot this run restores (for the fuzz targets).
    pub(crate) fn snapshot_operators(&self) -> Vec<String> {
        self.chosen().map(|s| s.operators()).unwrap_or_default()
    }

    /// The keys of the sources with recorded plans (for the fuzz targets).
    pub(crate) fn plan_keys(&self) -> Vec<String> {
        let plans = lock(&self.plans);
        let keys: std::collections::BTreeSet<&String> =
            plans.values().flat_map(|sources| sources.keys()).collect();
        keys.into_iter().cloned().collect()
    }

    /// The restored batch, if a snapshot is restored.
    pub(crate) fn restored_batch(&self) -> Option<u64> {
        self.chosen().map(|s| s.t)
    }
}
