//! The progress half of the coordinator: what the local workers report of each batch (the
//! batch itself, its outputs, state sizes and snapshot writes), merged per batch until every
//! local worker has finished it. Plain data, no locks and no listeners:
//! [`Coordinator`](super::Coordinator) holds the lock and tells the listeners.
//!
//! Invariants (each has a unit test below):
//! - a batch is finished once every local worker has reported it, and batches finish in
//!   order: a batch waits for every earlier one;
//! - `completed_through` only grows, and `completed_batches` counts each batch once;
//! - a report for a batch already finished is dropped, never held for ever.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::listener::{OutputOp, SnapshotWrite, SourceInput, StateSize};

/// One worker's view of a finished batch.
pub(crate) struct WorkerBatch {
    pub(crate) batch_ms: u64,
    pub(crate) inputs: Vec<SourceInput>,
    pub(crate) cut_at: Instant,
    pub(crate) started_at: Instant,
    pub(crate) done_at: Instant,
}

/// A batch every local worker has finished, with what they reported of it.
pub(super) struct Finished {
    /// The workers' views merged: the earliest cut and start, the latest end, inputs summed.
    pub(super) batch: WorkerBatch,
    pub(super) state: Vec<StateSize>,
    pub(super) snapshots: Vec<SnapshotWrite>,
    pub(super) outputs: Vec<OutputOp>,
}

/// The batches in progress on this process's workers.
#[derive(Default)]
pub(super) struct Progress {
    partial: BTreeMap<u64, (usize, WorkerBatch)>,
    state_sizes: BTreeMap<u64, Vec<StateSize>>,
    snapshot_writes: BTreeMap<u64, Vec<SnapshotWrite>>,
    /// Per batch, per output operation: its name, when the last local worker finished it, and
    /// how many local workers have.
    outputs_done: BTreeMap<u64, BTreeMap<usize, (String, Instant, usize)>>,
    pub(super) completed_through: Option<u64>,
    pub(super) completed_batches: u64,
    /// The latest batch a local worker cut (listeners hear of each batch once).
    pub(super) started_through: Option<u64>,
    /// A job of several processes: this process's state of the batches it finished, to be
    /// sent to process 0 (see [`Coordinator::take_finished_state`](super::Coordinator::take_finished_state)).
    pub(super) finished_state: Vec<(u64, Vec<StateSize>)>,
}

impl Progress {
    fn finished(&self, t: u64) -> bool {
        self.completed_through.is_some_and(|done| t <= done)
    }

    /// Output `id` (`name`) of batch `t` finished on a local worker at `at`; true when this
    /// was the last of `local_workers` to finish it.
    pub(super) fn output_done(
        &mut self,
        t: u64,
        id: usize,
        name: &str,
        at: Instant,
        local_workers: usize,
    ) -> bool {
        if self.finished(t) {
            return false;
        }
        let entry = self
            .outputs_done
            .entry(t)
            .or_default()
            .entry(id)
            .or_insert_with(|| (name.to_owned(), at, 0));
        entry.1 = entry.1.max(at);
        entry.2 += 1;
        entry.2 == local_workers
    }

    /// A worker's part of an operator's snapshot after batch `t`, summed per operator.
    pub(super) fn snapshot_written(&mut self, t: u64, write: SnapshotWrite) {
        if self.finished(t) {
            return;
        }
        let writes = self.snapshot_writes.entry(t).or_default();
        match writes.iter_mut().find(|w| w.operator == write.operator) {
            Some(w) => {
                w.bytes += write.bytes;
                w.keys += write.keys;
                w.full_parts += write.full_parts;
                w.duration += write.duration;
                w.failed += write.failed;
            }
            None => writes.push(write),
        }
    }

    /// A worker's share of an operator's state after batch `t`, summed per operator.
    pub(super) fn state_size(&mut self, t: u64, size: StateSize) {
        if self.finished(t) {
            return;
        }
        let sizes = self.state_sizes.entry(t).or_default();
        match sizes.iter_mut().find(|s| s.operator == size.operator) {
            Some(s) => {
                s.keys += size.keys;
                s.approx_bytes += size.approx_bytes;
            }
            None => sizes.push(size),
        }
    }

    /// A local worker finished `b`: returns the batches now finished by all `local_workers`,
    /// in order, with what was reported of them.
    pub(super) fn worker_finished(
        &mut self,
        b: WorkerBatch,
        local_workers: usize,
    ) -> Vec<Finished> {
        let t = b.batch_ms;
        let entry = self.partial.entry(t).or_insert_with(|| {
            (
                0,
                WorkerBatch {
                    batch_ms: t,
                    inputs: Vec::new(),
                    cut_at: b.cut_at,
                    started_at: b.started_at,
                    done_at: b.done_at,
                },
            )
        });
        entry.0 += 1;
        let merged = &mut entry.1;
        merged.cut_at = merged.cut_at.min(b.cut_at);
        merged.started_at = merged.started_at.min(b.started_at);
        merged.done_at = merged.done_at.max(b.done_at);
        for input in b.inputs {
            match merged.inputs.iter_mut().find(|i| i.source == input.source) {
                Some(i) => i.merge(input),
                None => merged.inputs.push(input),
            }
        }
        let mut finished = Vec::new();
        while let Some(entry) = self.partial.first_entry() {
            if entry.get().0 < local_workers {
                break;
            }
            let batch = entry.remove().1;
            let t = batch.batch_ms;
            self.completed_through = Some(t);
            self.completed_batches += 1;
            let outputs = self
                .outputs_done
                .remove(&t)
                .unwrap_or_default()
                .into_iter()
                .map(|(id, (name, at, _))| OutputOp {
                    id,
                    name,
                    duration: at.saturating_duration_since(batch.started_at),
                })
                .collect();
            finished.push(Finished {
                state: self.state_sizes.remove(&t).unwrap_or_default(),
                snapshots: self.snapshot_writes.remove(&t).unwrap_or_default(),
                outputs,
                batch,
            });
        }
        if let Some(done) = self.completed_through {
            // Reports of operators no output depends on may come late: drop them.
            self.state_sizes = self.state_sizes.split_off(&(done + 1));
            self.snapshot_writes = self.snapshot_writes.split_off(&(done + 1));
            self.outputs_done = self.outputs_done.split_off(&(done + 1));
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(t: u64) -> WorkerBatch {
        let now = Instant::now();
        WorkerBatch {
            batch_ms: t,
            inputs: Vec::new(),
            cut_at: now,
            started_at: now,
            done_at: now,
        }
    }

    fn times(finished: &[Finished]) -> Vec<u64> {
        finished.iter().map(|f| f.batch.batch_ms).collect()
    }

    #[test]
    fn a_batch_finishes_when_every_local_worker_has_reported_it() {
        let mut p = Progress::default();
        assert!(p.worker_finished(batch(1000), 2).is_empty());
        assert_eq!(times(&p.worker_finished(batch(1000), 2)), vec![1000]);
        assert_eq!(p.completed_through, Some(1000));
        assert_eq!(p.completed_batches, 1);
    }

    #[test]
    fn batches_finish_in_order_and_completed_through_only_grows() {
        let mut p = Progress::default();
        // Worker 0 runs ahead: batches 2 and 3 wait for batch 1 on worker 1.
        for t in [1000, 2000, 3000] {
            assert!(p.worker_finished(batch(t), 2).is_empty());
        }
        assert!(p.worker_finished(batch(2000), 2).is_empty());
        assert_eq!(p.completed_through, None);
        assert_eq!(times(&p.worker_finished(batch(1000), 2)), vec![1000, 2000]);
        assert_eq!(times(&p.worker_finished(batch(3000), 2)), vec![3000]);
        assert_eq!((p.completed_through, p.completed_batches), (Some(3000), 3));
    }

    #[test]
    fn reports_are_summed_per_batch_and_late_ones_are_dropped() {
        let mut p = Progress::default();
        let size = |keys| StateSize {
            operator: "totals".into(),
            keys,
            approx_bytes: 10 * keys,
        };
        p.state_size(1000, size(3));
        p.state_size(1000, size(4));
        let at = Instant::now();
        assert!(!p.output_done(1000, 0, "print", at, 2));
        assert!(p.output_done(1000, 0, "print", at, 2));
        p.worker_finished(batch(1000), 2);
        let finished = p.worker_finished(batch(1000), 2);
        assert_eq!(finished[0].state[0].keys, 7);
        assert_eq!(finished[0].outputs.len(), 1);
        // A report for a finished batch is not kept (nothing would ever take it).
        p.state_size(1000, size(1));
        assert!(!p.output_done(1000, 1, "late", at, 1));
        p.snapshot_written(1000, SnapshotWrite::default());
        assert!(p.state_sizes.is_empty() && p.outputs_done.is_empty());
        assert!(p.snapshot_writes.is_empty());
    }
}
