//! Kafka producer sinks (course §4.3.3, without its producer-per-record).
//!
//! **At-least-once** ([`DStream::write_kafka`]):
//! One producer per worker, created on first use and reused across batches. A batch's output
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
use crate::error::SluiceError;
use crate::retry::{Backoff, Failure, GaveUp};
use crate::runtime::Runtime;
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
    producer.flush(Duration::from_secs(60)).map_err(failure)
}

/// Fails the job for an output that gave up on batch `batch`.
pub(crate) fn fail_output(
    runtime: &Runtime,
    output: String,
    batch: crate::Time,
    gave_up: GaveUp<KafkaError>,
) {
    let stopped = matches!(gave_up, GaveUp::Stopped(_));
    let e = gave_up.into_inner();
    runtime.fail(SluiceError::OutputFailed {
        output,
        batch_ms: batch.millis(),
        source: if stopped {
            format!("{e} (gave up: the job is stopping; the batch is replayed on restart)").into()
        } else {
            Box::new(e)
        },
    });
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
        let mut producer: Option<BaseProducer<Deliveries>> = None;
        let runtime = self.ctx.runtime.clone();
        self.foreach_worker(move |p, records| {
            if records.is_empty() {
                return;
            }
            if producer.is_none() {
                match sink.producer(Arc::clone(&failed)) {
                    Ok(pr) => producer = Some(pr),
                    Err(e) => return runtime.fail(e),
                }
            }
            let Some(pr) = producer.as_ref() else { return };
            let what = format!(
                "Kafka sink: batch {} not delivered; sending it again",
                p.time
            );
            let sent = Backoff::default().retry(&what, &|| runtime.stopping(), || {
                reset(&failed);
                produce_all(pr, &records)?;
                delivery_failures(&failed)
            });
            if let Err(gave_up) = sent {
                fail_output(&runtime, "kafka sink".into(), p.time, gave_up);
            }
        });
    }
}
