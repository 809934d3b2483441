//! Committing a batch's offsets once every output of it has finished everywhere (the job's
//! probe passed it): to the configured [`OffsetStore`], the only one the reader opens.

use std::collections::BTreeMap;

use super::read::KafkaReader;
use crate::error::SluiceError;
use crate::offsets::{OffsetStore, TopicPartition};

impl KafkaReader {
    /// The offset store, opened on first use.
    pub(super) fn store(&mut self) -> Result<&mut Box<dyn OffsetStore>, SluiceError> {
        let store = match self.store.take() {
            Some(store) => store,
            None => {
                let settings = self.config.client_settings();
                let runtime = self.runtime.clone();
                self.config
                    .store
                    .open_with_stop(&self.config.group, &settings, move || runtime.stopping())?
            }
        };
        Ok(self.store.insert(store))
    }

    /// Commits the offsets of every batch up to `t` (their outputs all finished) to the
    /// offset store; on failure they stay pending and the next finished batch commits them.
    pub(super) fn commit_through(&mut self, t: u64) {
        if self.committed_before.is_some_and(|c| t <= c) {
            // Replayed to rebuild state; committed before the restart (a second commit could
            // move a transactional sink's offsets back).
            self.uncommitted.retain(|k, _| *k > t);
            return;
        }
        let mut latest: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let done: Vec<u64> = self.uncommitted.range(..=t).map(|(k, _)| *k).collect();
        for k in &done {
            if let Some(ranges) = self.uncommitted.get(k) {
                for (tp, until) in ranges {
                    latest.insert(tp.clone(), *until);
                }
            }
        }
        if latest.is_empty() {
            for k in done {
                self.uncommitted.remove(&k);
            }
            return;
        }
        let offsets: Vec<(TopicPartition, i64)> = latest.into_iter().collect();
        let group = self.config.group.clone();
        let result = self
            .store()
            .and_then(|store| store.commit(&group, &offsets));
        match result {
            Ok(()) => {
                for k in done {
                    self.uncommitted.remove(&k);
                }
            }
            // Kept: the next finished batch commits these offsets too (a later commit covers).
            Err(e) => tracing::warn!("offsets of batch {t} ms not committed yet: {e}"),
        }
    }
}
