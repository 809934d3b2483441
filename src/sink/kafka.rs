//! Kafka producer sinks (course §4.3.3, without its producer-per-record).
//!
//! **At-least-once** ([`DStream::write_kafka`]):
//! One producer per worker, created on first use and reused across batches. A batch's output
//! finishes only when the producer has flushed every record of it and the broker acknowledged
//! them all; if any delivery fails, the whole share is sent again (duplicates are what
//! at-least-once allows) with backoff, so the batch's source offsets, committed after the
//! output, never run ahead of what Kafka holds.
//!
//! **Exactly-once** ([`DirectStream::write_kafka_exactly_once`], Kafka → Kafka): on the worker
//! that reads each partition, one transactional producer (`transactional.id` =
//! `sluice-<job>-<worker>`, stable across restarts, so a restarted job fences its zombie) writes
//! a batch's records and commits its partitions' offsets to the consumer group inside the same
//! transaction (`send_offsets_to_transaction`). Readers with `isolation.level=read_committed` see
//! every record once; an aborted or interrupted batch is replayed from the committed offsets.
//!
//! [`DirectStream::write_kafka_exactly_once`]: crate::source::kafka::DirectStream::write_kafka_exactly_once

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientConfig;

use crate::dstream::DStream;
use crate::error::SluiceError;

/// A record to produce.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutRecord {
    /// The topic.
    pub topic: String,
    /// The key, if any (the partition follows its hash).
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Vec<u8>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    /// A record for `topic` with `value`.
    pub fn new(topic: &str, value: Vec<u8>) -> Self {
        OutRecord {
            topic: topic.to_owned(),
            key: None,
            value,
            headers: Vec::new(),
        }
    }
    /// With a key.
    pub fn key(mut self, key: Vec<u8>) -> Self {
        self.key = Some(key);
        self
    }
    /// With a header.
    pub fn header(mut self, name: &str, value: Vec<u8>) -> Self {
        self.headers.push((name.to_owned(), value));
        self
    }
}

/// Where and how records are produced.
///
/// # Examples
///
/// ```
/// let sink = sluice::sink::kafka::KafkaSink::new("127.0.0.1:9092").param("compression.type", "lz4");
/// ```
#[derive(Clone, Debug)]
pub struct KafkaSink {
    brokers: String,
    params: Vec<(String, String)>,
}

impl KafkaSink {
    /// Produces to `brokers` with `acks=all` and idempotence on.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSink {
            brokers: brokers.into(),
            params: Vec::new(),
        }
    }
    /// A producer setting passed to librdkafka.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    fn producer(&self, failed: Arc<AtomicU64>) -> Result<BaseProducer<Deliveries>, SluiceError> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        for (k, v) in &self.params {
            cc.set(k, v);
        }
        cc.create_with_context(Deliveries { failed })
            .map_err(|e| SluiceError::InvalidConfig {
                problem: format!("cannot create the Kafka producer: {e}"),
                fix: "check the brokers and the producer settings".into(),
            })
    }
}

/// Counts failed deliveries.
struct Deliveries {
    failed: Arc<AtomicU64>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::warn!("Kafka sink: a delivery failed: {e}");
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn produce_all(producer: &BaseProducer<Deliveries>, records: &[OutRecord]) -> Result<(), String> {
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(&r.topic)
            .payload(&r.value)
            .headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back))
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) =>
                {
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| e.to_string())
}

impl<'s> DStream<'s, OutRecord> {
    /// Produces every record to Kafka, at least once (see the module docs).
    pub fn write_kafka(&self, sink: KafkaSink) {
        let failed = Arc::new(AtomicU64::new(0));
        let mut producer: Option<BaseProducer<Deliveries>> = None;
        let coord = Arc::clone(&self.ctx.coord);
        self.foreach_partition(move |p, records| {
            if records.is_empty() {
                return;
            }
            let mut wait = Duration::from_millis(100);
            loop {
                if producer.is_none() {
                    match sink.producer(Arc::clone(&failed)) {
                        Ok(pr) => producer = Some(pr),
                        Err(e) => {
                            coord.fail(e);
                            return;
                        }
                    }
                }
                let Some(pr) = producer.as_ref() else { return };
                failed.store(0, Ordering::SeqCst);
                let result = produce_all(pr, &records);
                let failures = failed.load(Ordering::SeqCst);
                match result {
                    Ok(()) if failures == 0 => return,
                    other => {
                        if coord.aborted() {
                            return;
                        }
                        let why = other.err().unwrap_or_else(|| format!("{failures} deliveries failed"));
                        tracing::warn!("Kafka sink: batch {} not delivered ({why}); sending it again in {wait:?}", p.time);
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}

impl<'s> DStream<'s, OutRecord> {
    /// Produces every record to Kafka exactly once, wherever the records come from (after a
    /// shuffle, a stateful operator, …): each worker has one transactional producer
    /// (`transactional.id = sluice-<name>-<worker>`, stable, so a restart fences a killed run's
    /// zombie) and writes its share of a batch in one transaction, which also commits a marker:
    /// the batch time + 1 as the offset of partition 0 of the share's first topic in the group
    /// `sluice-<name>-w<worker>`. After a crash, a batch replayed from the checkpoint whose
    /// marker shows it committed is not written again; readers with
    /// `isolation.level=read_committed` see every record once.
    ///
    /// Exact with the same worker count before and after a crash (each worker checks its own
    /// marker); after a change of worker count, only the batches in flight at the crash may be
    /// written twice (a graceful stop leaves none).
    pub fn write_kafka_transactional(&self, sink: KafkaSink, name: &str) {
        let worker = self.ctx.info.index;
        let mut tx = Transactional::new(
            sink,
            format!("sluice-{name}-{worker}"),
            format!("sluice-{name}-w{worker}"),
        );
        let coord = Arc::clone(&self.ctx.coord);
        let name = name.to_owned();
        // Batches up to this one may have been committed by a run that crashed.
        let in_doubt_through = coord.checkpoint().and_then(|c| c.last_planned());
        self.foreach_partition(move |p, records| {
            let Some(first) = records.first() else {
                return;
            };
            let t = p.time.millis();
            let marker = (first.topic.clone(), 0, t as i64 + 1);
            let mut wait = Duration::from_millis(100);
            loop {
                let attempt = if in_doubt_through.is_some_and(|d| t <= d) {
                    tx.committed(&[(marker.0.clone(), 0)]).map(|c| c[0])
                } else {
                    Ok(None)
                };
                let result = match attempt {
                    Ok(Some(done)) if done > t as i64 => {
                        tracing::info!(
                            "Kafka sink {name}: batch {} was committed before the restart; not written again",
                            p.time
                        );
                        return;
                    }
                    Ok(_) => tx.write(&records, std::slice::from_ref(&marker)),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => return,
                    Err(e) => {
                        if coord.aborted() {
                            return;
                        }
                        tracing::warn!(
                            "batch {} waits for the Kafka transaction ({e}); retrying in {wait:?}",
                            p.time
                        );
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}

/// Where a transactional producer stands.
pub(crate) struct Transactional {
    sink: KafkaSink,
    transactional_id: String,
    group: String,
    producer: Option<BaseProducer<Deliveries>>,
    metadata: Option<rdkafka::consumer::ConsumerGroupMetadata>,
    failed: Arc<AtomicU64>,
}

impl Transactional {
    pub(crate) fn new(sink: KafkaSink, transactional_id: String, group: String) -> Self {
        Transactional {
            sink,
            transactional_id,
            group,
            producer: None,
            metadata: None,
            failed: Arc::new(AtomicU64::new(0)),
        }
    }

    fn ready(&mut self) -> Result<(), String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        if self.producer.is_none() {
            let sink = self
                .sink
                .clone()
                .param("transactional.id", self.transactional_id.clone());
            let producer = sink
                .producer(Arc::clone(&self.failed))
                .map_err(|e| e.to_string())?;
            // Fences any earlier producer with the same id (a killed run's zombie).
            producer
                .init_transactions(Duration::from_secs(30))
                .map_err(|e| format!("init_transactions: {e}"))?;
            self.producer = Some(producer);
        }
        if self.metadata.is_none() {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &self.sink.brokers)
                .set("group.id", &self.group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(|e| e.to_string())?;
            self.metadata = consumer.group_metadata();
        }
        Ok(())
    }

    /// The offsets the group has committed for `partitions` (topic, partition); `None` for a
    /// partition without a committed offset.
    pub(crate) fn committed(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.sink.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| e.to_string())?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(30))
            .map_err(|e| format!("cannot read the committed offsets of {}: {e}", self.group))?;
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

    /// Writes `records` and commits `offsets` (topic, partition, next offset) in one transaction.
    pub(crate) fn write(
        &mut self,
        records: &[OutRecord],
        offsets: &[(String, i32, i64)],
    ) -> Result<(), String> {
        self.ready()?;
        let (Some(producer), Some(metadata)) = (self.producer.as_ref(), self.metadata.as_ref())
        else {
            return Err("the producer or the group metadata is missing".into());
        };
        let attempt = (|| -> Result<(), String> {
            producer
                .begin_transaction()
                .map_err(|e| format!("begin_transaction: {e}"))?;
            self.failed.store(0, Ordering::SeqCst);
            produce_all(producer, records)?;
            let failures = self.failed.load(Ordering::SeqCst);
            if failures > 0 {
                return Err(format!("{failures} deliveries failed"));
            }
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (topic, partition, next) in offsets {
                tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*next))
                    .map_err(|e| e.to_string())?;
            }
            producer
                .send_offsets_to_transaction(&tpl, metadata, Duration::from_secs(30))
                .map_err(|e| format!("send_offsets_to_transaction: {e}"))?;
            producer
                .commit_transaction(Duration::from_secs(60))
                .map_err(|e| format!("commit_transaction: {e}"))
        })();
        if let Err(e) = &attempt {
            if producer.abort_transaction(Duration::from_secs(30)).is_err() {
                // Fenced or fatal: start over with a new producer (init_transactions again).
                self.producer = None;
            }
            tracing::warn!(
                "Kafka exactly-once sink {}: {e}; the batch is retried",
                self.transactional_id
            );
        }
        attempt
    }
}
