//! What the workers report of a batch while it runs — each output operation finished, each
//! snapshot part written, each operator's state size — gathered per batch until it completes
//! (`Coordinator::report` hands them to the listeners with the batch).

use std::time::Instant;

use super::{Coordinator, lock};
use crate::listener::{SnapshotWrite, StateSize};
use crate::time::Time;

impl Coordinator {
    /// Output operation `id` finished batch `t` on a local worker at `at`.
    pub(crate) fn report_output(&self, t: u64, id: usize, name: &str, at: Instant) {
        let mut p = lock(&self.progress);
        if p.completed_through.is_some_and(|done| t <= done) {
            return;
        }
        let entry = p
            .outputs_done
            .entry(t)
            .or_default()
            .entry(id)
            .or_insert_with(|| (name.to_owned(), at, 0));
        entry.1 = entry.1.max(at);
        entry.2 += 1;
        let done_here = entry.2 == self.local_workers;
        drop(p);
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
        let mut p = lock(&self.progress);
        if p.completed_through.is_some_and(|done| t <= done) {
            return;
        }
        let writes = p.snapshot_writes.entry(t).or_default();
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

    /// A worker's stateful operator reports its state size after batch `t`.
    pub(crate) fn report_state(&self, t: u64, size: StateSize) {
        let mut p = lock(&self.progress);
        if p.completed_through.is_some_and(|done| t <= done) {
            return;
        }
        let sizes = p.state_sizes.entry(t).or_default();
        match sizes.iter_mut().find(|s| s.operator == size.operator) {
            Some(s) => {
                s.keys += size.keys;
                s.approx_bytes += size.approx_bytes;
            }
            None => sizes.push(size),
        }
    }
}
