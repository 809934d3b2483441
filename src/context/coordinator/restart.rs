//! A restarted job's clock against its checkpoint: batches missed while it was down are run,
//! and a clock that reads earlier than the checkpoint is put forward.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Coordinator;
use crate::time::batch_at_or_after;

impl Coordinator {
    /// A clock that reads earlier than the batches a checkpoint holds (set back, or another
    /// machine's) would leave every batch of this run waiting for it, silently: the job's clock
    /// is put forward by the difference instead, with a warning, so batch times go on from the
    /// checkpoint's, one per interval.
    pub(super) fn behind_the_checkpoint(&self, first: u64) {
        let Some(c) = &self.checkpoint else {
            return;
        };
        let planned = [c.last_planned(), c.completed(), c.restored_batch()]
            .into_iter()
            .flatten()
            .max();
        if let Some(generated) = c
            .last_generated()
            .filter(|g| planned.is_none_or(|p| *g > p))
        {
            let from = planned.map_or(first, |p| p + self.batch_ms);
            tracing::info!(
                "{} batches ({from} ms … {generated} ms) were generated before the restart but not yet run (queued): they run first, each with the input its sources fixed at its batch time",
                (generated.saturating_sub(from)) / self.batch_ms + 1
            );
        }
        let recorded = [planned, c.last_generated()].into_iter().flatten().max();
        let Some(last) = recorded else {
            return;
        };
        let next = (last + self.batch_ms).max(first);
        let now = self.clock.now_ms();
        // Spark's "Batches during down time": every batch time between the checkpoint's last
        // and now runs, one after another, before the job is on time again.
        let due = batch_at_or_after(now, self.batch_ms);
        if due > next + self.batch_ms {
            let missed = (due - next) / self.batch_ms;
            tracing::warn!(
                "batches during down time: {missed} batch times passed while the job was not running ({next} ms … {} ms); they run now, one after another, each with what its sources fix for it (receivers: nothing; Kafka: up to the offsets at hand, within the rate limits; directories: the files found), then the job is on time again",
                due - self.batch_ms
            );
        }
        if now + self.batch_ms < next {
            let behind = next - now;
            self.clock_offset.store(behind, Ordering::SeqCst);
            tracing::warn!(
                "the clock reads {now} ms, {} before the batches this checkpoint holds (up to {last} ms): was it set back? Batch times go on from {next} ms, one per interval, {} ahead of the clock",
                humantime::format_duration(Duration::from_millis(behind)),
                humantime::format_duration(Duration::from_millis(behind))
            );
        }
    }
}
