//! What a user sets on a Kafka direct stream: the strategy (which partitions), librdkafka
//! settings, the offset store, rate limits and backpressure.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::offsets::{OffsetStoreKind, TopicPartition};
use crate::source::rate::PidSettings;

/// Which partitions a direct stream reads (Spark's `ConsumerStrategies`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerStrategy {
    /// Every partition of these topics, including partitions added later.
    Subscribe(Vec<String>),
    /// Every partition of every topic whose name matches this regular expression.
    SubscribePattern(String),
    /// Exactly these partitions, optionally from given offsets (else from the store).
    Assign(Vec<(TopicPartition, Option<i64>)>),
}

/// What to do with a stored offset that retention has already deleted (course §4.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiredOffsets {
    /// Fail with an error naming topic, partition, stored and earliest offsets (default).
    Fail,
    /// Start from the earliest offset, logging and counting the skipped records.
    ResetToEarliest,
}

/// Settings of a Kafka direct stream.
///
/// # Examples
///
/// ```
/// use sluice::source::kafka::{KafkaConfig, ConsumerStrategy};
/// use sluice::offsets::OffsetStoreKind;
/// let config = KafkaConfig::new("127.0.0.1:9092", "my-group", ConsumerStrategy::Subscribe(vec!["logs".into()]))
///     .param("auto.offset.reset", "earliest")
///     .offset_store(OffsetStoreKind::Redis("redis://127.0.0.1/".into()))
///     .max_rate_per_partition(100);
/// ```
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub(super) brokers: String,
    pub(super) group: String,
    pub(super) strategy: ConsumerStrategy,
    pub(super) params: Vec<(String, String)>,
    pub(super) store: OffsetStoreKind,
    pub(super) max_rate_per_partition: Option<u64>,
    pub(super) min_rate_per_partition: u64,
    pub(super) expired: ExpiredOffsets,
    pub(super) metadata_refresh: Duration,
    pub(super) backpressure: Option<Backpressure>,
}

pub use crate::source::rate::Backpressure;

impl KafkaConfig {
    /// Brokers (`host:port,…`), consumer group, and which partitions to read.
    pub fn new(
        brokers: impl Into<String>,
        group: impl Into<String>,
        strategy: ConsumerStrategy,
    ) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            group: group.into(),
            strategy,
            params: Vec::new(),
            store: OffsetStoreKind::Kafka,
            max_rate_per_partition: None,
            min_rate_per_partition: 1,
            expired: ExpiredOffsets::Fail,
            metadata_refresh: Duration::from_secs(5),
            backpressure: None,
        }
    }
    /// Adapts the rate to what the job processes (Spark's backpressure): the PID estimator's
    /// rate, split over the partitions in proportion to their lag, within
    /// `max_rate_per_partition`; `initial_rate` (records/s) bounds the first batch.
    pub fn backpressure(mut self, initial_rate: Option<u64>, pid: PidSettings) -> Self {
        self.backpressure = Some(Backpressure { initial_rate, pid });
        self
    }
    /// A consumer setting passed to librdkafka as it is (`auto.offset.reset`,
    /// `security.protocol`, `sasl.*`, …). `auto.offset.reset` is `latest` unless set.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }
    /// Where offsets are kept (default: the consumer group in Kafka).
    pub fn offset_store(mut self, store: OffsetStoreKind) -> Self {
        self.store = store;
        self
    }
    /// At most `records` per second per partition (Spark's `maxRatePerPartition`): a batch holds
    /// at most `records × batch seconds` per partition (at least `min_rate_per_partition` × s).
    pub fn max_rate_per_partition(mut self, records: u64) -> Self {
        self.max_rate_per_partition = Some(records);
        self
    }
    /// The lowest per-partition rate a limit may impose (Spark's `minRatePerPartition`, 1).
    pub fn min_rate_per_partition(mut self, records: u64) -> Self {
        self.min_rate_per_partition = records.max(1);
        self
    }
    /// What to do with stored offsets that retention deleted.
    pub fn expired_offsets(mut self, policy: ExpiredOffsets) -> Self {
        self.expired = policy;
        self
    }
    /// How often partitions are looked up again to pick up new ones (default 5 s).
    pub fn metadata_refresh(mut self, every: Duration) -> Self {
        self.metadata_refresh = every;
        self
    }
    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }
    pub(super) fn reset(&self) -> String {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == "auto.offset.reset")
            .map(|(_, v)| v.to_lowercase())
            .unwrap_or_else(|| "latest".into())
    }
    /// The librdkafka settings of every client of this stream (consumer, offset store): the
    /// brokers and the user's parameters, without `auto.offset.reset` (sluice applies it).
    pub(super) fn client_settings(&self) -> Vec<(String, String)> {
        std::iter::once(("bootstrap.servers".to_owned(), self.brokers.clone()))
            .chain(
                self.params
                    .iter()
                    .filter(|(k, _)| k != "auto.offset.reset")
                    .cloned(),
            )
            .collect()
    }
    /// Records each partition may contribute to a batch of `batch_ms` (Spark's
    /// `maxMessagesPerPartition`): `rate` (records/s over this reader's partitions, from
    /// backpressure) is split in proportion to each partition's lag and capped by
    /// `max_rate_per_partition`; at least `min_rate_per_partition` per batch.
    pub(super) fn per_batch_caps(
        &self,
        batch_ms: u64,
        rate: Option<f64>,
        lags: &BTreeMap<TopicPartition, i64>,
    ) -> BTreeMap<TopicPartition, Option<i64>> {
        let secs = batch_ms as f64 / 1000.0;
        let total: i64 = lags.values().sum();
        lags.iter()
            .map(|(tp, lag)| {
                let pressured = rate.map(|r| {
                    if total > 0 {
                        *lag as f64 / total as f64 * r
                    } else {
                        r / lags.len().max(1) as f64
                    }
                });
                let limit = match (pressured, self.max_rate_per_partition) {
                    (Some(p), Some(m)) => Some(p.min(m as f64)),
                    (Some(p), None) => Some(p),
                    (None, Some(m)) => Some(m as f64),
                    (None, None) => None,
                };
                (
                    tp.clone(),
                    limit.map(|l| ((secs * l) as i64).max(self.min_rate_per_partition as i64)),
                )
            })
            .collect()
    }
}

/// Checks that `brokers` (`host:port[,host:port…]`, with an optional `PLAINTEXT://`-style
/// prefix) names at least one broker whose host resolves: a name that resolves nowhere is a
/// configuration mistake, refused at once, while librdkafka would retry it forever. Hosts that
/// do not resolve beside ones that do are only warned about (a broker of a cluster may be away).
///
/// ```
/// use sluice::source::kafka::config::check_brokers;
/// assert!(check_brokers("127.0.0.1:9092").is_ok());
/// assert!(check_brokers("localhost").is_err(), "no port");
/// assert!(check_brokers("no-such-host.invalid:9092").is_err());
/// ```
pub fn check_brokers(brokers: &str) -> Result<(), crate::SluiceError> {
    use std::net::ToSocketAddrs;
    let fix = "give --brokers as host:port[,host:port…] with hosts this machine can resolve (check the name, or give an IP address)";
    let entries: Vec<&str> = brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    if entries.is_empty() {
        return Err(crate::SluiceError::InvalidConfig {
            problem: "no Kafka broker given".into(),
            fix: fix.into(),
        });
    }
    let mut unresolved = Vec::new();
    for entry in &entries {
        let address = entry.rsplit_once("://").map_or(*entry, |(_, a)| a);
        let Some((_, port)) = address.rsplit_once(':') else {
            return Err(crate::SluiceError::InvalidConfig {
                problem: format!("the Kafka broker `{entry}` has no port"),
                fix: fix.into(),
            });
        };
        if port.parse::<u16>().is_err() {
            return Err(crate::SluiceError::InvalidConfig {
                problem: format!("the Kafka broker `{entry}` has no valid port"),
                fix: fix.into(),
            });
        }
        if address
            .to_socket_addrs()
            .map_or(true, |mut a| a.next().is_none())
        {
            unresolved.push(*entry);
        }
    }
    if unresolved.len() == entries.len() {
        return Err(crate::SluiceError::InvalidConfig {
            problem: format!("no Kafka broker host resolves: {}", unresolved.join(", ")),
            fix: fix.into(),
        });
    }
    for entry in unresolved {
        tracing::warn!("Kafka: the broker `{entry}` does not resolve; using the others");
    }
    Ok(())
}
