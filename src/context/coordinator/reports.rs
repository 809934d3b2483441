//! What the workers report of a batch while it runs — each output operation finished, each
//! snapshot part written, each operator's state size — and the batch itself when a worker has
//! finished it, merged in [`Progress`](super::progress::Progress); once every local worker has
//! finished a batch the listeners hear of it, with everything reported of it.

use std::time::Instant;

use super::progress::WorkerBatch;
use super::{Coordinator, lock};
use crate::listener::{BatchInfo, SnapshotWrite, StateSize};
use crate::time::Time;

impl Coordinator {
    /// Output operation `id` finished batch `t` on a local worker at `at`.
    pub(crate) fn report_output(&self, t: u64, id: usize, name: &str, at: Instant) {
        let done_here = lock(&self.progress).output_done(t, id, name, at, self.local_workers);
        if done_here {
            // Every local worker has finished this output of batch `t` (Spark's
            // `onOutputOperationCompleted`): the UI shows a running batch's progress.
            for l in &self.listeners {
                l.on_output_operation_completed(Time::from_millis(t), id, name);
            }
        }
    }

    /// A worker's stateful operator wrote its part of the snapshot after batch `t`.
    pub(crate) fn report_snapshot(&self, t: u64, write: SnapshotWrite) {
        lock(&self.progress).snapshot_written(t, write);
    }

    /// A worker's stateful operator reports its state size after batch `t`.
    pub(crate) fn report_state(&self, t: u64, size: StateSize) {
        lock(&self.progress).state_size(t, size);
    }

    /// A local worker finished batch `b.batch_ms`; when all have, listeners hear about it.
    pub(crate) fn report(&self, b: WorkerBatch) {
        let mut p = lock(&self.progress);
        let finished = p.worker_finished(b, self.local_workers);
        if let (Some(c), 0) = (&self.checkpoint, self.process) {
            // Process 0's probe passing a batch means every worker of every process finished
            // it. (Under the progress lock: batches complete in the checkpoint in order.)
            let before = c.completed();
            for f in &finished {
                let t = f.batch.batch_ms;
                if before.is_none_or(|b| t > b) {
                    c.batch_completed(t, self.peers, self.local_workers, self.snapshot_due(t));
                }
            }
        }
        drop(p);
        if !finished.is_empty() {
            self.progressed.notify_all();
        }
        let several = self.peers > self.local_workers;
        for f in finished {
            let t = f.batch.batch_ms;
            // Process 0 of several reports the whole job's state once every process sent it.
            let state = if several {
                lock(&self.progress)
                    .finished_state
                    .push((t, f.state.clone()));
                if self.process == 0 {
                    Vec::new()
                } else {
                    f.state
                }
            } else {
                f.state
            };
            let b = f.batch;
            let info = BatchInfo {
                batch_time: Time::from_millis(t),
                inputs: b.inputs,
                scheduling_delay: b.started_at.saturating_duration_since(b.cut_at),
                processing_time: b.done_at.saturating_duration_since(b.started_at),
                total_delay: b.done_at.saturating_duration_since(b.cut_at),
                state,
                snapshots: f.snapshots,
                outputs: f.outputs,
            };
            for l in &self.listeners {
                l.on_batch_completed(&info);
            }
        }
    }
}
