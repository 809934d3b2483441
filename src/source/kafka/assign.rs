//! Which worker reads which partition, and from which offset: the partitions the strategy
//! names, each owned by one worker (Spark's one task per Kafka partition), starting from the
//! recovered plan, an explicit offset, the offset store or `auto.offset.reset`, in that order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::client::kafka_error;
use super::read::{KafkaReader, Owned};
use super::{ConsumerStrategy, ExpiredOffsets};
use crate::error::SluiceError;
use crate::offsets::TopicPartition;
use crate::retry::sleep_unless;

impl KafkaReader {
    /// Whether this worker reads `tp`: a stable hash of (topic, partition) over all workers,
    /// so partitions added later do not move existing ones.
    pub(super) fn owns(&self, tp: &TopicPartition) -> bool {
        let info = self.runtime.worker();
        super::read::partition_id(tp).worker(info.peers) == info.index
    }

    /// Every partition the strategy names right now.
    fn discover(&mut self) -> Result<Vec<TopicPartition>, SluiceError> {
        let strategy = self.config.strategy.clone();
        if let ConsumerStrategy::Assign(list) = &strategy {
            return Ok(list.iter().map(|(tp, _)| tp.clone()).collect());
        }
        let pattern = self.pattern.clone();
        let consumer = self.consumer()?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(2))
            .map_err(|e| kafka_error("read the topics' metadata", e))?;
        let mut found = Vec::new();
        for topic in metadata.topics() {
            let wanted = match &strategy {
                ConsumerStrategy::Subscribe(topics) => topics.iter().any(|t| t == topic.name()),
                ConsumerStrategy::SubscribePattern(_) => {
                    !topic.name().starts_with("__")
                        && pattern.as_ref().is_some_and(|p| p.is_match(topic.name()))
                }
                ConsumerStrategy::Assign(_) => false,
            };
            if wanted {
                found.extend(
                    topic
                        .partitions()
                        .iter()
                        .map(|p| TopicPartition::new(topic.name(), p.id())),
                );
            }
        }
        Ok(found)
    }

    /// The partitions, retried while the broker is unreachable: up to 30 s at start (then the
    /// job fails with the broker's error), and without failing once the job runs (the known
    /// partitions go on being read; new ones are picked up when the broker is back).
    fn discover_patiently(&mut self) -> Result<Option<Vec<TopicPartition>>, SluiceError> {
        let first = Instant::now();
        loop {
            match self.discover() {
                Ok(found) => return Ok(Some(found)),
                Err(e) if self.started => {
                    tracing::warn!("{e}; keeping the partitions known so far");
                    return Ok(None);
                }
                Err(e) if first.elapsed() >= Duration::from_secs(30) => return Err(e),
                Err(e) => {
                    tracing::warn!("{e}; retrying");
                    let runtime = self.runtime.clone();
                    if sleep_unless(Duration::from_secs(1), &|| runtime.stopping()) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The stored offsets of `partitions`, waiting out a store that is down (at the job's
    /// start as in the middle of a run) with the retry policy; `None` when the job stops
    /// meanwhile. A permanent failure (bad credentials, a missing database) ends at once.
    fn load_patiently(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Option<HashMap<TopicPartition, i64>>, SluiceError> {
        use crate::retry::{Backoff, GaveUp};
        let runtime = self.runtime.clone();
        let what = format!("Kafka {group}: the offset store");
        let loaded = Backoff::default().retry(&what, &|| runtime.stopping(), || {
            let store = self.store().map_err(classify)?;
            store.load(group, partitions).map_err(classify)
        });
        match loaded {
            Ok(found) => Ok(Some(found)),
            Err(GaveUp::Stopped(_)) => Ok(None),
            Err(GaveUp::Permanent(e)) => Err(e),
        }
    }

    /// Says once per topic (on worker 0) when a subscribed topic does not exist: its batches
    /// stay empty until it is created, which looks like a quiet topic otherwise.
    fn warn_missing_topics(&mut self, found: &[TopicPartition]) {
        let ConsumerStrategy::Subscribe(topics) = &self.config.strategy else {
            return;
        };
        if self.runtime.worker().index != 0 {
            return;
        }
        for topic in topics {
            if !found.iter().any(|tp| &tp.topic == topic)
                && self.missing_warned.insert(topic.clone())
            {
                tracing::warn!(
                    "Kafka: the topic `{topic}` does not exist on {}: its batches stay empty until it is created (check --topics)",
                    self.config.brokers
                );
            }
        }
    }

    /// Picks up partitions this worker owns and does not read yet, with their start offsets.
    pub(super) fn refresh(&mut self) -> Result<(), SluiceError> {
        self.refreshed = Some(Instant::now());
        let Some(found) = self.discover_patiently()? else {
            return Ok(());
        };
        self.warn_missing_topics(&found);
        let mine: Vec<TopicPartition> = found
            .into_iter()
            .filter(|tp| self.owns(tp) && !self.owned.contains_key(tp))
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let group = self.config.group.clone();
        let Some(stored) = self.load_patiently(&group, &mine)? else {
            return Ok(()); // stopping while the store was down
        };
        let explicit: HashMap<TopicPartition, i64> = match &self.config.strategy {
            ConsumerStrategy::Assign(list) => list
                .iter()
                .filter_map(|(tp, o)| Some((tp.clone(), (*o)?)))
                .collect(),
            _ => HashMap::new(),
        };
        let reset = self.config.reset();
        for tp in mine {
            let Some((low, high)) = self.watermarks(&tp)? else {
                return Ok(()); // stopping: new partitions wait for the next run
            };
            let start = match self
                .recovered
                .get(&tp)
                .or(explicit.get(&tp))
                .or(stored.get(&tp))
            {
                Some(&o) if o < low => match self.config.expired {
                    ExpiredOffsets::Fail => {
                        return Err(SluiceError::InvalidConfig {
                            problem: format!(
                                "the stored offset {o} of {tp} has expired: the earliest offset still in Kafka is {low} (retention deleted {} records)",
                                low - o
                            ),
                            fix: "reset the group's offset, or use the expired-offsets policy `reset-to-earliest` to skip the lost records".into(),
                        })
                    }
                    ExpiredOffsets::ResetToEarliest => {
                        tracing::warn!("Kafka: the stored offset {o} of {tp} has expired; starting from {low}, skipping {} records", low - o);
                        low
                    }
                },
                Some(&o) => o.min(high),
                None if self.started => low,
                None => match reset.as_str() {
                    "earliest" | "smallest" => low,
                    "latest" | "largest" => high,
                    _ => {
                        return Err(SluiceError::InvalidConfig {
                            problem: format!("{tp} has no stored offset for group `{group}` and auto.offset.reset is none"),
                            fix: "set auto.offset.reset to earliest or latest, or store a start offset".into(),
                        })
                    }
                },
            };
            tracing::info!(
                "Kafka: reading {tp} from offset {start} (earliest {low}, latest {high})"
            );
            self.owned.insert(
                tp,
                Owned {
                    next: start,
                    lookahead: VecDeque::new(),
                },
            );
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, o) in &self.owned {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(o.next))
                .map_err(|e| kafka_error("build the assignment", e))?;
        }
        self.consumer()?
            .assign(&tpl)
            .map_err(|e| kafka_error("assign the partitions", e))?;
        Ok(())
    }
}

/// Whether an offset store's failure may pass by waiting (a server down or unreachable).
fn classify(e: SluiceError) -> crate::retry::Failure<SluiceError> {
    if crate::offsets::is_transient(&e) {
        crate::retry::Failure::Transient(e)
    } else {
        crate::retry::Failure::Permanent(e)
    }
}
