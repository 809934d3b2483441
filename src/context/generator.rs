//! The job generator (Spark's `JobGenerator`): one thread per process that wakes at every batch
//! time `t` on the job's clock, whatever the workers are doing, and *generates* batch `t`:
//!
//! 1. each source that fixes its input at generation (a Kafka direct stream: the log-end
//!    offsets read at `t`; a directory: the new files found at `t`) samples what belongs to `t`
//!    through its hook ([`BatchReader::at_batch_time`](crate::source::BatchReader::at_batch_time));
//! 2. with a checkpoint, what they fixed is made durable (`checkpoint::generated`): a crash
//!    while the batch is queued replays it with the same input;
//! 3. the listeners hear that batch `t` was submitted (Spark's `onBatchSubmitted`): until a
//!    worker cuts it, it is *queued* (the web UI and REST show it so).
//!
//! A worker that is busy or blocked in a sink cuts batch `t` later, with what was sampled at
//! `t`: a stall shows as many queued batches, each with its own input, as in Spark, instead of
//! one batch that takes the whole backlog. A batch cut on time finds no sample older than it
//! and reads as before.
//!
//! Invariants: hooks are called in batch order, once per batch time, never for a batch before
//! the run's first or after its last; the thread ends when the job stops.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::source::{BatchTimeHook, Generated};

/// The generator's shared part: the sources' hooks, registered by their workers (by the
/// source's stable checkpoint key) before the generator starts.
#[derive(Default)]
pub(crate) struct Generator {
    hooks: Mutex<Vec<(String, BatchTimeHook)>>,
    /// Every source of the job by key, and whether any worker's copy fixes its input at
    /// generation (a queued batch's record count is known only when every source does).
    sources: Mutex<std::collections::BTreeMap<String, bool>>,
    started: AtomicBool,
}

impl Generator {
    /// Adds one worker's copy of the source with checkpoint key `key`, with its hook if it has
    /// one (before the generator starts).
    pub(crate) fn register(&self, key: String, hook: Option<BatchTimeHook>) {
        *lock(&self.sources).entry(key.clone()).or_default() |= hook.is_some();
        if let Some(hook) = hook {
            lock(&self.hooks).push((key, hook));
        }
    }

    /// How many records a batch holds, from what its sources fixed at generation: known when
    /// every source of the job fixes its input then and every one that fixed something could
    /// count it.
    pub(crate) fn records(&self, fixed: &[(String, Generated)]) -> Option<u64> {
        if fixed.is_empty() || lock(&self.sources).values().any(|hooked| !hooked) {
            return None;
        }
        fixed.iter().map(|(_, g)| g.records).sum()
    }

    /// Whether the thread was started (it is started once, by the first worker to ask).
    pub(crate) fn start_once(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }

    /// Generates batch `t`: every hook, in order of registration; what each fixed, by the
    /// source's key.
    pub(crate) fn generate(&self, t: u64) -> Vec<(String, Generated)> {
        lock(&self.hooks)
            .iter()
            .filter_map(|(key, hook)| hook(t).map(|fixed| (key.clone(), fixed)))
            .collect()
    }
}

/// Sleeps in slices of 5 ms until `due()` or `stop()`; whether it is due.
pub(crate) fn wait_for(due: &dyn Fn() -> bool, stop: &dyn Fn() -> bool) -> bool {
    loop {
        if stop() {
            return false;
        }
        if due() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn hooks_run_in_order_for_each_batch() {
        let g = Generator::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for name in ["a", "b"] {
            let seen = Arc::clone(&seen);
            g.register(
                format!("source#{name}"),
                Some(Box::new(move |t| {
                    seen.lock().unwrap().push((name, t));
                    (name == "b").then(|| Generated {
                        record: vec![1],
                        records: Some(3),
                    })
                })),
            );
        }
        assert!(g.start_once());
        assert!(!g.start_once());
        let fixed = g.generate(1000);
        assert_eq!(fixed.len(), 1);
        assert_eq!(fixed[0].0, "source#b");
        assert_eq!(fixed[0].1.records, Some(3));
        assert_eq!(g.records(&fixed), Some(3));
        g.register("receiver#0".into(), None);
        assert_eq!(
            g.records(&fixed),
            None,
            "a receiver's batch is not counted ahead"
        );
        g.generate(2000);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![("a", 1000), ("b", 1000), ("a", 2000), ("b", 2000)]
        );
    }
}
