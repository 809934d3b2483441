//! Starting the job generator (`context::generator`) for a clock-paced job.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Coordinator, lock};
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
                let mut next = first;
                loop {
                    let over = || {
                        coord.aborted()
                            || coord.ended.load(Ordering::SeqCst)
                            || lock(&coord.cut).final_batch.is_some_and(|f| next > f)
                    };
                    if !crate::context::generator::wait_for(&|| coord.now_ms() >= next, &over) {
                        return;
                    }
                    coord.generator.generate(next);
                    for l in &coord.listeners {
                        l.on_batch_submitted(Time::from_millis(next));
                    }
                    next += coord.batch_ms;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the job generator ({e}): batches are generated when cut");
        }
    }
}
