//! Kafka direct stream (Spark's `KafkaUtils.createDirectStream`, course §4.2.2, §4.3.2).
//!
//! No receiver: each Kafka partition is read by exactly one worker, chosen by a stable hash of
//! `(topic, partition)` over all workers of all processes (Spark's one task per partition), so
//! partitions added later do not move existing ones. For every batch `t`, each owning worker
//! first fixes the **batch plan** — the offset range `[from, until)` of each of its partitions,
//! `until` capped by the rate limit — and then reads exactly that range (records fetched past
//! `until` wait in a look-ahead buffer for the next batch). The ranges flow through the
//! dataflow as [`DirectStream::offset_ranges`] (Spark's `HasOffsetRanges`).
//!
//! Offsets of batch `t` go to the [`OffsetStore`](crate::offsets::OffsetStore) only after every
//! output of `t` has finished (the driver tells the reader when the job's probe passed `t`).
//! On start, offsets come from the store; partitions without one follow `auto.offset.reset`
//! (`earliest`, `latest`, or `none`: fail). A stored offset below the partition's earliest
//! (retention deleted the records) follows [`ExpiredOffsets`]. Partitions that appear while the
//! job runs are read from their earliest offset.
//!
//! Faults: when the broker is unreachable, the batch waits (reported every 5 s) and resumes
//! where it was; nothing is skipped or read twice.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::rate::{PidRateEstimator, PidSettings};
use super::{BatchReader, BatchSlot, CompletedBatch};
use crate::dstream::pair::route;
use crate::dstream::DStream;
use crate::error::SluiceError;
use crate::offsets::ZooKeeperStore;
use crate::offsets::{
    CheckpointStore, MySqlStore, OffsetRange, OffsetStore, OffsetStoreKind, PostgresStore,
    RedisStore, TopicPartition,
};

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
    brokers: String,
    group: String,
    strategy: ConsumerStrategy,
    params: Vec<(String, String)>,
    store: OffsetStoreKind,
    max_rate_per_partition: Option<u64>,
    min_rate_per_partition: u64,
    expired: ExpiredOffsets,
    metadata_refresh: Duration,
    backpressure: Option<Backpressure>,
}

/// Backpressure settings (Spark's `spark.streaming.backpressure.*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backpressure {
    /// Records/s over the stream before the first batch has finished (bounds the first batch).
    pub initial_rate: Option<u64>,
    /// The PID estimator's settings.
    pub pid: PidSettings,
}

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
    fn reset(&self) -> String {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == "auto.offset.reset")
            .map(|(_, v)| v.to_lowercase())
            .unwrap_or_else(|| "latest".into())
    }
    /// Records each partition may contribute to a batch of `batch_ms` (Spark's
    /// `maxMessagesPerPartition`): `rate` (records/s over this reader's partitions, from
    /// backpressure) is split in proportion to each partition's lag and capped by
    /// `max_rate_per_partition`; at least `min_rate_per_partition` per batch.
    fn per_batch_caps(
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

/// One Kafka record (Spark's `ConsumerRecord`).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The record's timestamp in ms, if it has one.
    pub timestamp: Option<i64>,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ConsumerRecord {
    /// The value as UTF-8 text, if it is.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
    /// The key as UTF-8 text, if it is.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl crate::SparkDisplay for ConsumerRecord {
    fn write_spark(&self, out: &mut String) {
        out.push_str(&format!(
            "ConsumerRecord(topic = {}, partition = {}, offset = {}, timestamp = {}, key = {}, value = {})",
            self.topic,
            self.partition,
            self.offset,
            self.timestamp.unwrap_or(-1),
            self.key.as_deref().map(String::from_utf8_lossy).unwrap_or_else(|| "null".into()),
            self.value.as_deref().map(String::from_utf8_lossy).unwrap_or_else(|| "null".into()),
        ));
    }
}

/// What a direct stream's source emits: records and the batch's offset ranges.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KafkaItem {
    /// A record.
    Record(ConsumerRecord),
    /// The offset range of one partition in this batch.
    Range(OffsetRange),
}

/// A Kafka direct stream: its records (through `Deref`) and its batches' offset ranges.
pub struct DirectStream<'s> {
    items: DStream<'s, KafkaItem>,
    records: DStream<'s, ConsumerRecord>,
    ranges: DStream<'s, OffsetRange>,
}

impl<'s> DirectStream<'s> {
    pub(crate) fn new(items: DStream<'s, KafkaItem>) -> Self {
        let records = items.flat_map(|i| match i {
            KafkaItem::Record(r) => Some(r),
            KafkaItem::Range(_) => None,
        });
        let ranges = items.flat_map(|i| match i {
            KafkaItem::Range(r) => Some(r),
            KafkaItem::Record(_) => None,
        });
        DirectStream {
            items,
            records,
            ranges,
        }
    }

    /// Exactly-once into Kafka (see [`crate::sink::kafka`]): on the worker that reads each
    /// partition, `to_records` of a batch's records are produced and the partitions' new
    /// offsets committed to `group` in one Kafka transaction; `job` names the transactional ids
    /// (`sluice-<job>-<worker>`), which must stay the same across restarts. Use the default
    /// (Kafka) offset store with the same group.
    pub fn write_kafka_exactly_once(
        &self,
        sink: crate::sink::kafka::KafkaSink,
        job: &str,
        group: &str,
        to_records: impl Fn(&ConsumerRecord) -> Vec<crate::sink::kafka::OutRecord> + 'static,
    ) {
        let worker = self.items.ctx.info.index;
        let mut tx = crate::sink::kafka::Transactional::new(
            sink,
            format!("sluice-{job}-{worker}"),
            group.to_owned(),
        );
        let coord = Arc::clone(&self.items.ctx.coord);
        let in_doubt_through = coord.checkpoint().and_then(|c| c.last_planned());
        self.items.foreach_partition(move |p, items| {
            let mut out = Vec::new();
            let mut offsets = Vec::new();
            for item in &items {
                match item {
                    KafkaItem::Record(r) => out.extend(to_records(r)),
                    KafkaItem::Range(r) if r.until > r.from => {
                        offsets.push((r.topic.clone(), r.partition, r.until))
                    }
                    KafkaItem::Range(_) => {}
                }
            }
            if out.is_empty() && offsets.is_empty() {
                return;
            }
            if in_doubt_through.is_some_and(|d| p.time.millis() <= d) {
                // Replayed after a crash: committed already if the group holds its offsets.
                let parts: Vec<(String, i32)> =
                    offsets.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
                if let Ok(committed) = tx.committed(&parts) {
                    let done = committed
                        .iter()
                        .zip(&offsets)
                        .all(|(c, (_, _, next))| c.is_some_and(|c| c >= *next));
                    if done && !offsets.is_empty() {
                        return;
                    }
                }
            }
            let mut wait = Duration::from_millis(100);
            while let Err(e) = tx.write(&out, &offsets) {
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
        });
    }

    /// Exactly-once into PostgreSQL or MySQL (course §4.3.1, "atomic"): on the worker that reads
    /// each partition, a batch's rows (`to_row` of its records, skipping `None`) and the new
    /// offsets of its partitions commit in one transaction, in the `sluice_kafka_offsets` table.
    /// Give the stream the same table as its offset store
    /// (`OffsetStoreKind::Postgres(url)` / `MySql(url)`) so that a restart resumes from what was
    /// committed with the rows.
    pub fn write_sql_with_offsets(
        &self,
        url: &str,
        group: &str,
        setup: Vec<String>,
        statement: &str,
        to_row: impl Fn(&ConsumerRecord) -> Option<Vec<crate::sink::SqlValue>> + 'static,
    ) {
        let mut sink = match crate::sink::SqlSink::new(url, setup, statement) {
            Ok(s) => s,
            Err(e) => {
                self.items.ctx.fail_build(e);
                return;
            }
        };
        let group = group.to_owned();
        let coord = Arc::clone(&self.items.ctx.coord);
        self.items.foreach_partition(move |p, items| {
            let mut rows = Vec::new();
            let mut ranges = Vec::new();
            for item in &items {
                match item {
                    KafkaItem::Record(r) => rows.extend(to_row(r)),
                    KafkaItem::Range(r) if r.until > r.from => ranges.push(r.clone()),
                    KafkaItem::Range(_) => {}
                }
            }
            if rows.is_empty() && ranges.is_empty() {
                return;
            }
            if let Err(e) = sink.write(&rows, Some((&group, &ranges)), || coord.aborted()) {
                coord.fail(crate::sink::sql::with_batch(e, p.time));
            }
        });
    }
    /// The offset range of every partition of the job in every batch (Spark's
    /// `rdd.asInstanceOf[HasOffsetRanges].offsetRanges`); `foreach_batch` sees them all.
    pub fn offset_ranges(&self) -> DStream<'s, OffsetRange> {
        self.ranges.clone()
    }
    /// The records.
    pub fn records(&self) -> DStream<'s, ConsumerRecord> {
        self.records.clone()
    }
}

impl<'s> std::ops::Deref for DirectStream<'s> {
    type Target = DStream<'s, ConsumerRecord>;
    fn deref(&self) -> &DStream<'s, ConsumerRecord> {
        &self.records
    }
}

/// A partition this worker reads.
struct Owned {
    next: i64,
    lookahead: VecDeque<ConsumerRecord>,
}

pub(crate) struct KafkaReader {
    config: Arc<KafkaConfig>,
    worker: usize,
    peers: usize,
    consumer: Option<BaseConsumer>,
    store: Option<Box<dyn OffsetStore>>,
    owned: BTreeMap<TopicPartition, Owned>,
    /// Planned `until` per partition of batches not yet committed.
    uncommitted: BTreeMap<u64, Vec<(TopicPartition, i64)>>,
    refreshed: Option<Instant>,
    started: bool,
    failure: Option<SluiceError>,
    pattern: Option<regex::Regex>,
    estimator: Option<PidRateEstimator>,
    /// The backpressure rate for this worker's partitions, records/s.
    rate: Option<f64>,
    /// The ranges of the batch read last, for the checkpoint's plan log.
    last_plan: Vec<(TopicPartition, i64, i64)>,
    /// After a restart from a checkpoint: where each partition resumes.
    recovered: HashMap<TopicPartition, i64>,
    /// After a restart: the recorded ranges of the batches to replay.
    replay: BTreeMap<u64, BTreeMap<TopicPartition, (i64, i64)>>,
    /// After a restart: batches up to this one were committed before; not again.
    committed_before: Option<u64>,
}

fn kafka_error(what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::InvalidConfig {
        problem: format!("Kafka: {what}: {e}"),
        fix: "check --brokers and that the broker is reachable; consumer settings are passed to librdkafka as given".into(),
    }
}

impl KafkaReader {
    pub(crate) fn new(config: KafkaConfig, worker: usize, peers: usize) -> Self {
        let mut failure = None;
        let pattern = match &config.strategy {
            ConsumerStrategy::SubscribePattern(p) => match regex::Regex::new(p) {
                Ok(r) => Some(r),
                Err(e) => {
                    failure = Some(SluiceError::InvalidConfig {
                        problem: format!(
                            "the topic pattern `{p}` is not a regular expression: {e}"
                        ),
                        fix: "give a valid regular expression, e.g. `^logs-.*`".into(),
                    });
                    None
                }
            },
            _ => None,
        };
        if !matches!(
            config.reset().as_str(),
            "earliest" | "latest" | "none" | "smallest" | "largest"
        ) {
            failure = Some(SluiceError::InvalidConfig {
                problem: format!("auto.offset.reset is `{}`", config.reset()),
                fix: "use earliest, latest or none".into(),
            });
        }
        let rate = config
            .backpressure
            .and_then(|b| b.initial_rate)
            .map(|r| r as f64 / peers.max(1) as f64);
        KafkaReader {
            config: Arc::new(config),
            worker,
            peers,
            consumer: None,
            store: None,
            owned: BTreeMap::new(),
            uncommitted: BTreeMap::new(),
            refreshed: None,
            started: false,
            failure,
            pattern,
            estimator: None,
            rate,
            last_plan: Vec::new(),
            recovered: HashMap::new(),
            replay: BTreeMap::new(),
            committed_before: None,
        }
    }

    fn owns(&self, tp: &TopicPartition) -> bool {
        (route(&tp.topic).wrapping_add(tp.partition as u64) % self.peers as u64) as usize
            == self.worker
    }

    fn consumer(&mut self) -> Result<&BaseConsumer, SluiceError> {
        if self.consumer.is_none() {
            let mut cc = ClientConfig::new();
            cc.set("bootstrap.servers", &self.config.brokers)
                .set("group.id", &self.config.group)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "false")
                .set("receive.message.max.bytes", "1000000000");
            for (k, v) in &self.config.params {
                if k != "auto.offset.reset" {
                    cc.set(k, v);
                }
            }
            let consumer: BaseConsumer = cc
                .create()
                .map_err(|e| kafka_error("cannot create the consumer", e))?;
            self.consumer = Some(consumer);
        }
        self.consumer
            .as_ref()
            .ok_or_else(|| kafka_error("no consumer", "not created"))
    }

    fn store(&mut self) -> Option<&mut Box<dyn OffsetStore>> {
        if self.store.is_none() {
            self.store = match &self.config.store {
                OffsetStoreKind::Kafka => None,
                OffsetStoreKind::Checkpoint(dir) => Some(Box::new(CheckpointStore::new(dir))),
                OffsetStoreKind::Redis(url) => Some(Box::new(RedisStore::new(url.clone()))),
                OffsetStoreKind::Postgres(url) => Some(Box::new(PostgresStore::new(url.clone()))),
                OffsetStoreKind::MySql(url) => Some(Box::new(MySqlStore::new(url.clone()))),
                OffsetStoreKind::ZooKeeper(connect) => {
                    Some(Box::new(ZooKeeperStore::new(connect.clone())))
                }
            };
        }
        self.store.as_mut()
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
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| kafka_error("cannot read the topics' metadata", e))?;
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

    fn watermarks(&mut self, tp: &TopicPartition) -> Result<(i64, i64), SluiceError> {
        let mut waited = Instant::now();
        loop {
            match self
                .consumer()?
                .fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(5))
            {
                Ok(w) => return Ok(w),
                Err(e) => {
                    if waited.elapsed() >= Duration::from_secs(5) {
                        tracing::warn!("Kafka: cannot read the offsets of {tp} ({e}); the batch waits for the broker");
                        waited = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
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
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Picks up partitions this worker owns and does not read yet, with their start offsets.
    fn refresh(&mut self) -> Result<(), SluiceError> {
        self.refreshed = Some(Instant::now());
        let Some(found) = self.discover_patiently()? else {
            return Ok(());
        };
        let mine: Vec<TopicPartition> = found
            .into_iter()
            .filter(|tp| self.owns(tp) && !self.owned.contains_key(tp))
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let group = self.config.group.clone();
        let stored: HashMap<TopicPartition, i64> = match self.store() {
            Some(store) => store.load(&group, &mine)?,
            None => {
                let mut tpl = TopicPartitionList::new();
                for tp in &mine {
                    tpl.add_partition(&tp.topic, tp.partition);
                }
                let committed = self
                    .consumer()?
                    .committed_offsets(tpl, Duration::from_secs(10))
                    .map_err(|e| kafka_error("cannot read the group's committed offsets", e))?;
                committed
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => {
                            Some((TopicPartition::new(e.topic(), e.partition()), o))
                        }
                        _ => None,
                    })
                    .collect()
            }
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
            let (low, high) = self.watermarks(&tp)?;
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
                .map_err(|e| kafka_error("cannot build the assignment", e))?;
        }
        self.consumer()?
            .assign(&tpl)
            .map_err(|e| kafka_error("cannot assign the partitions", e))?;
        Ok(())
    }

    fn read(&mut self, slot: &BatchSlot, out: &mut Vec<KafkaItem>) -> Result<(), SluiceError> {
        let due = self
            .refreshed
            .is_none_or(|r| r.elapsed() >= self.config.metadata_refresh);
        if due {
            self.refresh()?;
        }
        self.started = true;
        // The plan: [next, until) per partition, fixed before reading.
        let mut highs: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let owned: Vec<TopicPartition> = self.owned.keys().cloned().collect();
        for tp in owned {
            let (_, high) = self.watermarks(&tp)?;
            highs.insert(tp, high);
        }
        let lags: BTreeMap<TopicPartition, i64> = highs
            .iter()
            .map(|(tp, high)| {
                (
                    tp.clone(),
                    (high - self.owned.get(tp).map_or(0, |o| o.next)).max(0),
                )
            })
            .collect();
        let caps = self
            .config
            .per_batch_caps(slot.interval_ms, self.rate, &lags);
        let mut plan: BTreeMap<TopicPartition, (i64, i64)> = BTreeMap::new();
        let recorded = self.replay.remove(&slot.time.millis());
        for (tp, high) in highs {
            let from = self.owned.get(&tp).map_or(0, |o| o.next);
            let until = match recorded.as_ref() {
                // A replayed batch reads exactly what it read before the restart.
                Some(r) => match r.get(&tp) {
                    Some(&(f, u)) => {
                        if f != from {
                            tracing::warn!("Kafka: replaying batch {}: {tp} was planned from {f}, the reader stands at {from}", slot.time);
                        }
                        u.max(from)
                    }
                    None => from,
                },
                None => {
                    let cap = caps.get(&tp).copied().flatten();
                    cap.map_or(high, |c| high.min(from + c)).max(from)
                }
            };
            plan.insert(tp, (from, until));
        }
        self.last_plan = plan
            .iter()
            .map(|(tp, (f, u))| (tp.clone(), *f, *u))
            .collect();
        // Read exactly that, look-ahead first.
        let mut missing: usize = 0;
        for (tp, (_, until)) in &plan {
            if let Some(o) = self.owned.get_mut(tp) {
                while o.lookahead.front().is_some_and(|r| r.offset < *until) {
                    if let Some(r) = o.lookahead.pop_front() {
                        o.next = r.offset + 1;
                        out.push(KafkaItem::Record(r));
                    }
                }
                if o.next < *until {
                    missing += 1;
                }
            }
        }
        let mut waiting_since = Instant::now();
        while missing > 0 {
            let polled = match self.consumer.as_ref() {
                Some(c) => c.poll(Duration::from_millis(100)),
                None => break,
            };
            match polled {
                Some(Ok(m)) => {
                    let tp = TopicPartition::new(m.topic(), m.partition());
                    let Some((_, until)) = plan.get(&tp).copied() else {
                        continue;
                    };
                    let record = ConsumerRecord {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: m.offset(),
                        timestamp: m.timestamp().to_millis(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        headers: m
                            .headers()
                            .map(|hs| {
                                hs.iter()
                                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
                    let Some(o) = self.owned.get_mut(&tp) else {
                        continue;
                    };
                    if record.offset < o.next {
                        continue; // already read (a re-fetch after a reconnect)
                    }
                    if record.offset < until {
                        o.next = record.offset + 1;
                        out.push(KafkaItem::Record(record));
                        if o.next >= until {
                            missing -= 1;
                        }
                    } else {
                        o.lookahead.push_back(record);
                    }
                }
                Some(Err(e)) => {
                    if waiting_since.elapsed() >= Duration::from_secs(5) {
                        tracing::warn!(
                            "Kafka: {e}; batch {} waits for {missing} partitions",
                            slot.time
                        );
                        waiting_since = Instant::now();
                    }
                }
                None => {
                    // Offsets without records (transaction markers) leave gaps: the consumer's
                    // position tells when a partition is past its `until`.
                    if let Some(positions) = self.consumer.as_ref().and_then(|c| c.position().ok())
                    {
                        for e in positions.elements() {
                            let tp = TopicPartition::new(e.topic(), e.partition());
                            if let (Offset::Offset(pos), Some((_, until)), Some(o)) =
                                (e.offset(), plan.get(&tp), self.owned.get_mut(&tp))
                            {
                                if o.next < *until && pos >= *until && o.lookahead.is_empty() {
                                    o.next = *until;
                                    missing -= 1;
                                }
                            }
                        }
                    }
                    if waiting_since.elapsed() >= Duration::from_secs(5) {
                        tracing::warn!(
                            "Kafka: batch {} still waits for records of {missing} partitions",
                            slot.time
                        );
                        waiting_since = Instant::now();
                    }
                }
            }
        }
        let mut ranges = Vec::with_capacity(plan.len());
        for (tp, (from, until)) in plan {
            if let Some(o) = self.owned.get_mut(&tp) {
                o.next = until;
            }
            ranges.push((tp.clone(), until));
            out.push(KafkaItem::Range(OffsetRange {
                topic: tp.topic,
                partition: tp.partition,
                from,
                until,
            }));
        }
        self.uncommitted.insert(slot.time.millis(), ranges);
        Ok(())
    }

    fn commit_through(&mut self, t: u64) {
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
        let result = match self.store() {
            Some(store) => store.commit(&group, &offsets),
            None => {
                let mut tpl = TopicPartitionList::new();
                for (tp, o) in &offsets {
                    let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o));
                }
                match self.consumer.as_ref() {
                    Some(c) => c
                        .commit(&tpl, CommitMode::Sync)
                        .map_err(|e| kafka_error("cannot commit offsets to the group", e)),
                    None => Ok(()),
                }
            }
        };
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

impl BatchReader<KafkaItem> for KafkaReader {
    fn name(&self) -> String {
        format!("kafka {}", self.config.group)
    }

    fn records_in(&self, items: &[KafkaItem]) -> u64 {
        items
            .iter()
            .filter(|i| matches!(i, KafkaItem::Record(_)))
            .count() as u64
    }

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut Vec<KafkaItem>) -> u64 {
        if self.failure.is_some() {
            return 0;
        }
        if let Err(e) = self.read(slot, out) {
            self.failure = Some(e);
        }
        0
    }

    fn batch_completed(&mut self, batch: &CompletedBatch) {
        self.commit_through(batch.time.millis());
        if let Some(bp) = self.config.backpressure {
            let estimator = self
                .estimator
                .get_or_insert_with(|| PidRateEstimator::new(batch.interval_ms, bp.pid));
            // Batches in flight are processed concurrently in timely (Spark runs one job at a
            // time): a batch that waited for earlier ones was partly processed while waiting, so
            // its processing time lies between `processing` and `processing + scheduling`. The
            // upper bound gives a conservative rate, exact when batches do not overlap.
            let busy = batch.processing_delay + batch.scheduling_delay;
            if let Some(rate) = estimator.compute(
                batch.time.millis(),
                batch.records,
                busy,
                batch.scheduling_delay,
            ) {
                tracing::debug!(
                    "backpressure: {} records/s for this worker's partitions",
                    rate as u64
                );
                self.rate = Some(rate);
            }
        }
    }

    fn failure(&mut self) -> Option<SluiceError> {
        self.failure.take()
    }

    fn plan(&mut self, _slot: &BatchSlot) -> Option<Vec<u8>> {
        let ranges: Vec<(&str, i32, i64, i64)> = self
            .last_plan
            .iter()
            .map(|(tp, f, u)| (tp.topic.as_str(), tp.partition, *f, *u))
            .collect();
        bincode::serialize(&ranges).ok()
    }

    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) {
        self.committed_before = recovery.completed;
        for (t, plans) in recovery.plans {
            for bytes in plans {
                let Ok(ranges) = bincode::deserialize::<Vec<(String, i32, i64, i64)>>(&bytes)
                else {
                    tracing::warn!("Kafka: an unreadable recorded plan of batch {t} ms");
                    continue;
                };
                for (topic, partition, from, until) in ranges {
                    let tp = TopicPartition::new(&topic, partition);
                    if Some(t) == recovery.after {
                        // The restored state has read through the snapshot batch.
                        self.recovered.insert(tp, until);
                    } else {
                        self.recovered.entry(tp.clone()).or_insert(from);
                        self.replay.entry(t).or_default().insert(tp, (from, until));
                    }
                }
            }
        }
        if !self.replay.is_empty() {
            tracing::info!(
                "Kafka: {} batches to replay from their recorded offset ranges",
                self.replay.len()
            );
        }
    }
}
