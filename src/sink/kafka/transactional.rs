//! Kafka transactions: a producer per worker with a stable `transactional.id`, so a restarted
//! job fences the zombie of a killed one, and a batch's share written in one transaction with
//! offsets (a source's, or a marker of the batch) committed to a consumer group inside it.
//!
//! [`DStream::write_kafka_transactional`] uses it for any stream: the marker is the batch time
//! plus one, as the offset of partition 0 of the share's first topic in the group
//! `sluice-<name>-w<worker>`. After a crash, a batch replayed from the checkpoint whose marker
//! shows it committed is not written again; readers with `isolation.level=read_committed` see
//! every record once.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};

use super::{Deliveries, Failed, KafkaSink, OutRecord, delivery_failures, produce_all, reset};
use crate::dstream::DStream;
use crate::dstream::partition::PartitionId;
use crate::retry::Failure;
use crate::sink::{BatchId, OutputError, Sink};
use crate::source::kafka::client::failure;

impl<'s> DStream<'s, OutRecord> {
    /// Produces every record to Kafka exactly once, wherever the records come from (after a
    /// shuffle, a stateful operator, …): each worker has one transactional producer
    /// (`transactional.id = sluice-<name>-<worker>`) and writes its share of a batch in one
    /// transaction with the batch's marker (see the module docs).
    ///
    /// Exact with the same worker count before and after a crash (each worker checks its own
    /// marker); after a change of worker count, only the batches in flight at the crash may be
    /// written twice (a graceful stop leaves none).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn build(totals: sluice::DStream<'_, (String, u64)>) {
    /// use sluice::sink::kafka::{KafkaSink, OutRecord};
    /// totals
    ///     .map(|(w, n)| OutRecord::new("totals", format!("{w}\t{n}").into_bytes()).key(w.into_bytes()))
    ///     .write_kafka_transactional(KafkaSink::new("127.0.0.1:9092"), "word-totals");
    /// # }
    /// ```
    pub fn write_kafka_transactional(&self, sink: KafkaSink, name: &str) {
        let worker = self.ctx.info.index;
        self.write_to(MarkedBatches {
            tx: Transactional::new(
                sink,
                format!("sluice-{name}-{worker}"),
                format!("sluice-{name}-w{worker}"),
            ),
            name: name.to_owned(),
            records: Vec::new(),
        });
    }
}

/// `write_kafka_transactional` as a [`Sink`]: a worker's records of a batch and the batch's
/// marker in one transaction at commit; a batch in doubt whose marker is committed is skipped.
struct MarkedBatches {
    tx: Transactional,
    name: String,
    records: Vec<OutRecord>,
}

impl Sink<OutRecord> for MarkedBatches {
    fn open(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        self.records.clear();
        Ok(())
    }

    fn write(
        &mut self,
        _: &BatchId,
        _: &PartitionId,
        records: &[OutRecord],
    ) -> Result<(), OutputError> {
        self.records.extend_from_slice(records);
        Ok(())
    }

    fn commit(&mut self, batch: &BatchId) -> Result<(), OutputError> {
        let Some(first) = self.records.first() else {
            return Ok(());
        };
        let t = batch.time.millis();
        let marker = (first.topic.clone(), 0, t as i64 + 1);
        if batch.in_doubt {
            let done = self
                .tx
                .committed(&[(marker.0.clone(), 0)])
                .map_err(|e| OutputError::from_failure(failure(e)))?;
            if done
                .first()
                .copied()
                .flatten()
                .is_some_and(|d| d > t as i64)
            {
                tracing::info!(
                    "Kafka sink {}: batch {} was committed before the restart; not written again",
                    self.name,
                    batch.time
                );
                return Ok(());
            }
        }
        self.tx
            .write(&self.records, std::slice::from_ref(&marker))
            .map_err(OutputError::from_failure)
    }

    fn name(&self) -> String {
        format!("kafka sink {}", self.name)
    }
}

/// Where a transactional producer stands.
pub(crate) struct Transactional {
    sink: KafkaSink,
    transactional_id: String,
    group: String,
    producer: Option<BaseProducer<Deliveries>>,
    metadata: Option<ConsumerGroupMetadata>,
    failed: Failed,
}

impl Transactional {
    pub(crate) fn new(sink: KafkaSink, transactional_id: String, group: String) -> Self {
        Transactional {
            sink,
            transactional_id,
            group,
            producer: None,
            metadata: None,
            failed: Failed::default(),
        }
    }

    fn group_consumer(&self) -> Result<BaseConsumer, KafkaError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.sink.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .create()
    }

    fn ready(&mut self) -> Result<(), Failure<KafkaError>> {
        if self.producer.is_none() {
            let sink = self
                .sink
                .clone()
                .param("transactional.id", self.transactional_id.clone());
            let producer = sink
                .producer(Arc::clone(&self.failed))
                .map_err(|e| Failure::Permanent(KafkaError::ClientCreation(e.to_string())))?;
            // Fences any earlier producer with the same id (a killed run's zombie).
            producer
                .init_transactions(Duration::from_secs(30))
                .map_err(failure)?;
            self.producer = Some(producer);
        }
        if self.metadata.is_none() {
            self.metadata = self.group_consumer().map_err(failure)?.group_metadata();
        }
        Ok(())
    }

    /// The offsets the group has committed for `partitions` (topic, partition); `None` for a
    /// partition without a committed offset.
    pub(crate) fn committed(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, KafkaError> {
        let consumer = self.group_consumer()?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                committed
                    .find_partition(topic, *partition)
                    .and_then(|e| match e.offset() {
                        rdkafka::Offset::Offset(o) => Some(o),
                        _ => None,
                    })
            })
            .collect())
    }

    /// Writes `records` and commits `offsets` (topic, partition, next offset) in one
    /// transaction; a failed attempt is aborted (and a fenced or broken producer replaced).
    pub(crate) fn write(
        &mut self,
        records: &[OutRecord],
        offsets: &[(String, i32, i64)],
    ) -> Result<(), Failure<KafkaError>> {
        self.ready()?;
        let (Some(producer), Some(metadata)) = (self.producer.as_ref(), self.metadata.as_ref())
        else {
            return Err(Failure::Transient(KafkaError::ClientCreation(
                "the producer or the group metadata is missing".into(),
            )));
        };
        let failed = &self.failed;
        let attempt = (|| -> Result<(), Failure<KafkaError>> {
            producer.begin_transaction().map_err(failure)?;
            reset(failed);
            produce_all(producer, records)?;
            delivery_failures(failed)?;
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (topic, partition, next) in offsets {
                tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*next))
                    .map_err(Failure::Permanent)?;
            }
            producer
                .send_offsets_to_transaction(&tpl, metadata, Duration::from_secs(30))
                .map_err(failure)?;
            producer
                .commit_transaction(Duration::from_secs(60))
                .map_err(failure)
        })();
        if let Err(e) = &attempt {
            let e = match e {
                Failure::Transient(e) | Failure::Permanent(e) => e,
            };
            if producer.abort_transaction(Duration::from_secs(30)).is_err() {
                // Fenced or fatal: start over with a new producer (init_transactions again).
                self.producer = None;
            }
            tracing::warn!(
                "Kafka transactional sink {}: {e}; the batch is retried",
                self.transactional_id
            );
        }
        // A fenced producer is replaced above: its failure is worth another attempt.
        attempt.map_err(|f| match f {
            Failure::Permanent(e) if is_fenced(&e) => Failure::Transient(e),
            other => other,
        })
    }
}

/// A zombie fenced this producer (or it was fenced by a newer run): a new producer recovers.
fn is_fenced(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::Fenced)
            | Some(rdkafka::types::RDKafkaErrorCode::ProducerFenced)
            | Some(rdkafka::types::RDKafkaErrorCode::InvalidProducerEpoch)
    ) || matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}
