//! Offsets in Kafka itself: the consumer group's committed offsets (Spark's `commitAsync`).
//!
//! A commit runs on a helper thread and the store waits for its answer: at most 10 s, and no
//! longer once the job is stopping, so a broker that is away delays the commit but never the
//! job's stop. Offsets whose commit was not confirmed stay pending; the next finished batch
//! commits them again, and a restart replays from the last confirmed ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{OffsetStore, TopicPartition, store_error};
use crate::error::Result;

/// How long a commit waits for the broker's answer.
const CONFIRM_WITHIN: Duration = Duration::from_secs(10);

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
    /// Shared with a commit still waiting for the broker, which then closes it.
    consumer: Arc<BaseConsumer>,
    stopping: Option<Box<dyn Fn() -> bool + Send>>,
    /// The answer of a commit that was not confirmed in time.
    pending: Option<Receiver<KafkaResult<()>>>,
}

impl KafkaGroupStore {
    /// A store for `group` with these librdkafka settings (`bootstrap.servers`, security, …).
    pub fn new(group: &str, settings: &[(String, String)]) -> Result<Self> {
        let mut cc = ClientConfig::new();
        for (k, v) in settings {
            cc.set(k, v);
        }
        cc.set("group.id", group).set("enable.auto.commit", "false");
        let consumer: BaseConsumer =
            cc.create()
                .map_err(|e| crate::error::SluiceError::InvalidConfig {
                    problem: format!("cannot create a Kafka client for group `{group}`: {e}"),
                    fix: "check the brokers and the Kafka settings".into(),
                })?;
        Ok(KafkaGroupStore {
            group: group.to_owned(),
            consumer: Arc::new(consumer),
            stopping: None,
            pending: None,
        })
    }

    /// Stops waiting for a commit's answer as soon as `stopping()` holds.
    pub(crate) fn stop_waiting_when(
        mut self,
        stopping: impl Fn() -> bool + Send + 'static,
    ) -> Self {
        self.stopping = Some(Box::new(stopping));
        self
    }

    fn unconfirmed(&self) -> crate::error::SluiceError {
        store_error(
            &self.describe(),
            "cannot commit offsets",
            "the broker did not confirm the commit in time".to_owned(),
        )
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
        if let Some(earlier) = &self.pending {
            // One commit at a time: a later one would race the one still waiting.
            match earlier.try_recv() {
                Err(TryRecvError::Empty) => return Err(self.unconfirmed()),
                Ok(_) | Err(TryRecvError::Disconnected) => self.pending = None,
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, o) in offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o))
                .map_err(|e| store_error(&self.describe(), "cannot commit offsets", e))?;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = Arc::clone(&self.consumer);
        std::thread::Builder::new()
            .name("sluice-kafka-commit".into())
            .spawn(move || {
                let _ = tx.send(consumer.commit(&tpl, CommitMode::Sync));
            })
            .map_err(|e| store_error(&self.describe(), "cannot commit offsets", e))?;
        let deadline = Instant::now() + CONFIRM_WITHIN;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    return Err(store_error(&self.describe(), "cannot commit offsets", e));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.unconfirmed()),
                Err(RecvTimeoutError::Timeout) => {
                    let stopping = self.stopping.as_ref().is_some_and(|s| s());
                    if stopping || Instant::now() >= deadline {
                        self.pending = Some(rx);
                        return Err(self.unconfirmed());
                    }
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!("kafka group {}", self.group)
    }
}
