//! Starting the job generator (`context::generator`) for a clock-paced job: at each batch time
//! the sources' hooks fix the batch's input, the checkpoint records it, the listeners hear the
//! batch was submitted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Coordinator, lock};
use crate::listener::SubmittedBatch;
use crate::time::Time;

impl Coordinator {
    /// Starts the job generator (once per process; with a clock-paced job only): from batch
    /// `first` on, at each batch time, the sources' hooks sample what belongs to the batch and
    /// the listeners hear it was submitted, whatever the workers are doing.
    pub(crate) fn start_generator(self: &Arc<Self>, first: u64) {
        if !self.generator.start_once() {
            return;
        }
        let coord = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("sluice-generator".into())
            .spawn(move || {
                // Every local worker has registered its sources' hooks once built.
                coord.wait_built(std::time::Duration::from_secs(600));
                let mut log = crate::checkpoint::generated::GeneratedLog::default();
                let mut next = first;
                loop {
                    let over = || {
                        coord.aborted()
                            || coord.ended.load(Ordering::SeqCst)
                            || lock(&coord.cut).final_batch().is_some_and(|f| next > f)
                    };
                    if !crate::context::generator::wait_for(&|| coord.now_ms() >= next, &over) {
                        return;
                    }
                    // A batch an earlier run planned is replayed from its plan: its sources
                    // fix nothing new for it.
                    let replayed = coord
                        .checkpoint()
                        .and_then(|c| c.last_planned())
                        .is_some_and(|p| next <= p);
                    let fixed = if replayed {
                        Vec::new()
                    } else {
                        coord.generator.generate(next)
                    };
                    // One process of several sees only its own sources' share.
                    let records = (coord.peers == coord.local_workers)
                        .then(|| coord.generator.records(&fixed))
                        .flatten();
                    if let Some(c) = coord.checkpoint() {
                        // Durable before the batch is reported submitted (Spark checkpoints a
                        // batch when it is generated).
                        let process = coord.process;
                        let fixed = fixed.into_iter().map(|(k, g)| (k, g.record)).collect();
                        if let Err(e) = c.record_generated(&mut log, process, next, fixed) {
                            coord.fail(e);
                            return;
                        }
                    }
                    let batch = SubmittedBatch {
                        batch_time: Time::from_millis(next),
                        num_records: records,
                    };
                    for l in &coord.listeners {
                        l.on_batch_submitted(&batch);
                    }
                    next += coord.batch_ms;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the job generator ({e}): batches are generated when cut");
        }
    }
}
