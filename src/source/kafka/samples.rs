//! What a Kafka direct stream samples at each batch's time (its partitions' latest offsets),
//! kept by batch until the batch is cut (see `generate` and `read`).

use std::sync::{Arc, Mutex};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Samples a source takes at generation, by batch time; the reader takes the sample of the
/// batch it cuts (and drops older ones). Kafka direct streams sample their partitions' latest
/// offsets at each batch's time (see `generate`).
///
/// # Invariant
///
/// A sample is used only for the batch it was taken for.
pub(crate) struct Samples<S> {
    by_batch: Mutex<std::collections::BTreeMap<u64, S>>,
}

impl<S> Default for Samples<S> {
    fn default() -> Self {
        Samples {
            by_batch: Mutex::new(Default::default()),
        }
    }
}

impl<S> Samples<S> {
    /// Keeps the sample of batch `t` (at most 10 000 kept: a job far behind keeps the newest);
    /// a sample already there (recovered from the checkpoint) stays.
    pub(crate) fn put(&self, t: u64, sample: S) {
        let mut by = lock(&self.by_batch);
        by.entry(t).or_insert(sample);
        while by.len() > 10_000 {
            by.pop_first();
        }
    }

    /// Whether batch `t` has its sample (a generator restarted over recovered batches does
    /// not sample them again).
    pub(crate) fn contains(&self, t: u64) -> bool {
        lock(&self.by_batch).contains_key(&t)
    }

    /// The sample of batch `t`, if one was taken; older ones are dropped.
    pub(crate) fn take(&self, t: u64) -> Option<S> {
        let mut by = lock(&self.by_batch);
        let later = by.split_off(&(t + 1));
        let mine = by.remove(&t);
        *by = later;
        mine
    }
}

/// Shared so that a source's hook and its reader see one set of samples.
pub(crate) type SharedSamples<S> = Arc<Samples<S>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_taken_only_for_its_batch_and_older_ones_go() {
        let s = Samples::default();
        s.put(1000, "a");
        s.put(2000, "b");
        s.put(3000, "c");
        assert_eq!(s.take(2000), Some("b"));
        assert_eq!(s.take(1000), None, "dropped with the take of a later batch");
        assert_eq!(s.take(2500), None);
        assert_eq!(s.take(3000), Some("c"));
        s.put(4000, "recovered");
        s.put(4000, "sampled again");
        assert!(s.contains(4000));
        assert_eq!(s.take(4000), Some("recovered"));
    }
}
