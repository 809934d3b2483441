//! Kafka producer sinks (course §4.3.3, without its producer-per-record).
//!
//! **At-least-once** ([`DStream::write_kafka`]):
//! One producer per worker, created when the job is built (a wrong setting fails it then)
//! and reused across batches; written through the [`Sink`] trait, as every built-in sink is.
//! A batch's output
//! finishes only when the producer has flushed every record of it and the broker acknowledged
//! them all; if any delivery fails, the whole share is sent again (duplicates are what
//! at-least-once allows) with backoff, so the batch's source offsets, committed after the
//! output, never run ahead of what Kafka holds.
//!
//! **Transactional** ([`DStream::write_kafka_transactional`], see [`transactional`]): any
//! stream, one transactional producer per worker, a marker per batch in the same transaction.
//!
//! **Exactly-once** ([`DirectStream::write_kafka_exactly_once`], Kafka → Kafka, see
//! [`exactly_once`]): the batch's records and its source offsets in one transaction.
//!
//! Failures go through sluice's one retry policy: a broker away is waited for; a
//! permanent refusal (an unknown topic, a record too large, missing rights) fails the job with
//! Kafka's message.
//!
//! [`DirectStream::write_kafka_exactly_once`]: crate::source::kafka::DirectStream::write_kafka_exactly_once

pub mod exactly_once;
pub mod transactional;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::dstream::DStream;
use crate::dstream::partition::PartitionId;
use crate::error::SluiceError;
use crate::retry::Failure;
use crate::sink::{BatchId, OutputError, Sink};
use crate::source::kafka::client::{client_config_error, failure};

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
    pub(crate) brokers: String,
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

    pub(crate) fn producer(&self, failed: Failed) -> Result<BaseProducer<Deliveries>, SluiceError> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        for (k, v) in &self.params {
            cc.set(k, v);
        }
        cc.create_with_context(Deliveries { failed })
            .map_err(|e| client_config_error("producer", e))
    }
}

/// The failed deliveries of the batch being produced: how many, and the last error.
pub(crate) type Failed = Arc<Mutex<(u64, Option<KafkaError>)>>;

/// Records failed deliveries.
pub(crate) struct Deliveries {
    failed: Failed,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::warn!("Kafka sink: a delivery failed: {e}");
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.0 += 1;
            failed.1 = Some(e.clone());
        }
    }
}

/// Forgets the failures of the previous attempt.
pub(crate) fn reset(failed: &Failed) {
    *failed.lock().unwrap_or_else(|p| p.into_inner()) = (0, None);
}

/// The failures of this attempt, as one error to retry or give up on.
pub(crate) fn delivery_failures(failed: &Failed) -> Result<(), Failure<KafkaError>> {
    let failed = failed.lock().unwrap_or_else(|p| p.into_inner());
    match &failed.1 {
        Some(e) if failed.0 > 0 => Err(failure(e.clone())),
        _ => Ok(()),
    }
}

/// Sends every record and waits until the broker acknowledged them all.
pub(crate) fn produce_all(
    producer: &BaseProducer<Deliveries>,
    records: &[OutRecord],
) -> Result<(), Failure<KafkaError>> {
    send_all(producer, records)?;
    producer.flush(Duration::from_secs(60)).map_err(failure)
}

/// Queues every record in the producer (waiting while its queue is full).
fn send_all(
    producer: &BaseProducer<Deliveries>,
    records: &[OutRecord],
) -> Result<(), Failure<KafkaError>> {
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
                Err((e, _)) => return Err(failure(e)),
            }
        }
    }
    Ok(())
}

impl<'s> DStream<'s, OutRecord> {
    /// Produces every record to Kafka, at least once (see the module docs).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn build(lines: sluice::DStream<'_, String>) {
    /// use sluice::sink::kafka::{KafkaSink, OutRecord};
    /// lines
    ///     .map(|line| OutRecord::new("clean", line.into_bytes()))
    ///     .write_kafka(KafkaSink::new("127.0.0.1:9092"));
    /// # }
    /// ```
    pub fn write_kafka(&self, sink: KafkaSink) {
        let failed = Failed::default();
        match sink.producer(Arc::clone(&failed)) {
            Ok(producer) => self.write_to(AtLeastOnce { producer, failed }),
            Err(e) => self.ctx.fail_build(e),
        }
    }
}

/// `write_kafka` as a [`Sink`]: a worker's records of a batch produced and flushed at commit;
/// an attempt with a failed delivery is sent again whole (at least once).
struct AtLeastOnce {
    producer: BaseProducer<Deliveries>,
    failed: Failed,
}

impl Sink<OutRecord> for AtLeastOnce {
    fn open(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        reset(&self.failed);
        Ok(())
    }

    fn write(
        &mut self,
        _: &BatchId,
        _: &PartitionId,
        records: &[OutRecord],
    ) -> Result<(), OutputError> {
        send_all(&self.producer, records).map_err(OutputError::from_failure)
    }

    fn commit(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(failure)
            .and_then(|()| delivery_failures(&self.failed))
            .map_err(OutputError::from_failure)
    }

    fn name(&self) -> String {
        "kafka sink".to_owned()
    }
}
