//! Kafka producer sink, at-least-once (course §4.3.3, without its producer-per-record).
//!
//! One producer per worker, created on first use and reused across batches. A batch's output
//! finishes only when the producer has flushed every record of it and the broker acknowledged
//! them all; if any delivery fails, the whole share is sent again (duplicates are what
//! at-least-once allows) with backoff, so the batch's source offsets, committed after the
//! output, never run ahead of what Kafka holds.

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
