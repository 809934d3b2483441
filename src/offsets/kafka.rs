//! Offsets in Kafka itself: the consumer group's committed offsets (Spark's `commitAsync`,
//! made synchronous here: the batch's offsets are stored before the next batch's are).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{store_error, OffsetStore, TopicPartition};
use crate::error::Result;

/// The consumer group's committed offsets.
///
/// # Examples
///
/// ```no_run
/// use sluice::offsets::{KafkaGroupStore, OffsetStore, TopicPartition};
/// let settings = [("bootstrap.servers".to_owned(), "127.0.0.1:9092".to_owned())];
/// let mut store = KafkaGroupStore::new("my-group", &settings)?;
/// let tp = TopicPartition::new("logs", 0);
/// store.commit("my-group", &[(tp.clone(), 42)])?;
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub struct KafkaGroupStore {
    group: String,
    consumer: BaseConsumer,
}

impl KafkaGroupStore {
    /// A store for `group` with these librdkafka settings (`bootstrap.servers`, security, …).
    pub fn new(group: &str, settings: &[(String, String)]) -> Result<Self> {
        let mut cc = ClientConfig::new();
        for (k, v) in settings {
            cc.set(k, v);
        }
        cc.set("group.id", group).set("enable.auto.commit", "false");
        let consumer = cc
            .create()
            .map_err(|e| crate::error::SluiceError::InvalidConfig {
                problem: format!("cannot create a Kafka client for group `{group}`: {e}"),
                fix: "check the brokers and the Kafka settings".into(),
            })?;
        Ok(KafkaGroupStore {
            group: group.to_owned(),
            consumer,
        })
    }
}

impl OffsetStore for KafkaGroupStore {
    fn load(
        &mut self,
        _group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let mut tpl = TopicPartitionList::new();
        for tp in partitions {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(|e| store_error(&self.describe(), "cannot read the committed offsets", e))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                _ => None,
            })
            .collect())
    }

    fn commit(&mut self, _group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (tp, o) in offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o))
                .map_err(|e| store_error(&self.describe(), "cannot commit offsets", e))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| store_error(&self.describe(), "cannot commit offsets", e))
    }

    fn describe(&self) -> String {
        format!("kafka group {}", self.group)
    }
}
