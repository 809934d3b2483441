//! Reading a batch: fix the plan (`[from, until)` per owned partition, `until` capped by the
//! rate limit or taken from the recorded plan of a replayed batch), then read exactly that,
//! keeping what was fetched past `until` for the next batch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset};

use super::client::{self, client_config_error, kafka_error};
use super::generate::{CutSoFar, RecordedSample, sample_at_batch_time};
use super::samples::SharedSamples;
use super::{ConsumerRecord, ConsumerStrategy, KafkaConfig, KafkaItem};
use crate::dstream::partition::PartitionId;
use crate::error::SluiceError;
use crate::offsets::{OffsetRange, OffsetStore, TopicPartition};
use crate::retry::{Backoff, GaveUp};
use crate::runtime::Runtime;
use crate::source::rate::PidRateEstimator;
use crate::source::{BatchOut, BatchReader, BatchSlot, BatchTimeHook, CompletedBatch};

/// The Spark partition of a Kafka topic-partition: `[hash(topic), hash(topic) + partition]`,
/// so a batch lists a topic's partitions together and in partition order, and partition `p`
/// runs on worker `(hash(topic) + p) % workers`, the worker that reads it.
pub(crate) fn partition_id(tp: &TopicPartition) -> PartitionId {
    let topic = crate::dstream::pair::route(&tp.topic);
    PartitionId::from_path(&[topic, topic.wrapping_add(tp.partition as u64)])
}

/// A partition this worker reads.
pub(super) struct Owned {
    pub(super) next: i64,
    pub(super) lookahead: VecDeque<ConsumerRecord>,
}

/// One worker's reader of a Kafka direct stream: the partitions it owns, where each stands,
/// and the offsets of batches whose outputs have not finished yet.
pub(crate) struct KafkaReader {
    pub(super) config: Arc<KafkaConfig>,
    pub(super) runtime: Runtime,
    pub(super) consumer: Option<BaseConsumer>,
    pub(super) store: Option<Box<dyn OffsetStore>>,
    pub(super) owned: BTreeMap<TopicPartition, Owned>,
    /// Planned `until` per partition of batches not yet committed.
    pub(super) uncommitted: BTreeMap<u64, Vec<(TopicPartition, i64)>>,
    pub(super) refreshed: Option<Instant>,
    pub(super) started: bool,
    pub(super) failure: Option<SluiceError>,
    pub(super) pattern: Option<regex::Regex>,
    pub(super) estimator: Option<PidRateEstimator>,
    /// The backpressure rate for this worker's partitions, records/s.
    pub(super) rate: Option<f64>,
    /// The ranges of the batch read last, for the checkpoint's plan log.
    pub(super) last_plan: Vec<(TopicPartition, i64, i64)>,
    /// Each partition's end when the batch read last was planned (its lag, for the web UI).
    pub(super) last_highs: BTreeMap<TopicPartition, i64>,
    /// After a restart from a checkpoint: where each partition resumes.
    pub(super) recovered: HashMap<TopicPartition, i64>,
    /// After a restart: the recorded ranges of the batches to replay.
    pub(super) replay: BTreeMap<u64, BTreeMap<TopicPartition, (i64, i64)>>,
    /// After a restart: batches up to this one were committed before; not again.
    pub(super) committed_before: Option<u64>,
    /// The last offsets request failed: the broker is away (a stopping job then asks no more).
    pub(super) broker_away: bool,
    /// Subscribed topics already reported missing.
    pub(super) missing_warned: std::collections::BTreeSet<String>,
    /// The log-end offsets of this worker's partitions read at each batch's time by the job
    /// generator (Spark's rule: batch `t` holds what the log had at `t`), for a batch cut late.
    pub(super) samples: SharedSamples<BTreeMap<TopicPartition, i64>>,
    /// What the generator needs of the batches cut so far.
    pub(super) sampled: Arc<std::sync::Mutex<CutSoFar>>,
    /// The generator's hook, until the job takes it.
    pub(super) hook: Option<BatchTimeHook>,
}

/// A consumer of the stream's settings that is never subscribed: the reader assigns its
/// partitions itself, and the generator's copy only asks for offsets.
pub(super) fn offsets_client(config: &KafkaConfig) -> Result<BaseConsumer, SluiceError> {
    let mut cc = ClientConfig::new();
    for (k, v) in config.client_settings() {
        cc.set(k, v);
    }
    cc.set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("receive.message.max.bytes", "1000000000");
    cc.create().map_err(|e| client_config_error("consumer", e))
}

impl KafkaReader {
    pub(crate) fn new(config: KafkaConfig, runtime: Runtime) -> Self {
        let peers = runtime.worker().peers;
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
        let config = Arc::new(config);
        let samples = SharedSamples::default();
        let sampled = Arc::new(std::sync::Mutex::new(CutSoFar::default()));
        let hook = sample_at_batch_time(
            Arc::clone(&config),
            runtime.batch_ms(),
            Arc::clone(&sampled),
            Arc::clone(&samples),
        );
        KafkaReader {
            config,
            runtime,
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
            last_highs: BTreeMap::new(),
            recovered: HashMap::new(),
            replay: BTreeMap::new(),
            committed_before: None,
            broker_away: false,
            missing_warned: Default::default(),
            samples,
            sampled,
            hook: Some(hook),
        }
    }

    pub(super) fn consumer(&mut self) -> Result<&BaseConsumer, SluiceError> {
        if self.consumer.is_none() {
            self.consumer = Some(offsets_client(&self.config)?);
        }
        self.consumer.as_ref().ok_or_else(|| SluiceError::Kafka {
            action: "create the consumer".into(),
            source: rdkafka::error::KafkaError::ClientCreation("not created".into()),
        })
    }

    /// The low and high watermarks of `tp`, waiting while the broker is unreachable; `None`
    /// when the job is asked to stop before the broker answers.
    pub(super) fn watermarks(
        &mut self,
        tp: &TopicPartition,
    ) -> Result<Option<(i64, i64)>, SluiceError> {
        let runtime = self.runtime.clone();
        if runtime.stopping() && self.broker_away {
            return Ok(None); // a stopping job does not wait for a broker that is away
        }
        let consumer = self.consumer()?;
        let what = format!("Kafka: the batch waits for the offsets of {tp}");
        let policy = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let mut away = false;
        let fetched = policy.retry(&what, &|| runtime.stopping(), || {
            let w = consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(1));
            away = w.is_err();
            w.map_err(client::failure)
        });
        self.broker_away = away;
        match fetched {
            Ok(w) => Ok(Some(w)),
            Err(GaveUp::Stopped(_)) => Ok(None),
            Err(GaveUp::Permanent(e)) => Err(kafka_error(&format!("read the offsets of {tp}"), e)),
        }
    }

    pub(super) fn read(
        &mut self,
        slot: &BatchSlot,
        out: &mut BatchOut<KafkaItem>,
    ) -> Result<(), SluiceError> {
        let due = self
            .refreshed
            .is_none_or(|r| r.elapsed() >= self.config.metadata_refresh);
        // A stopping job looks for no new partitions (the broker may be the reason it stops).
        if due && !self.runtime.stopping() {
            self.refresh()?;
        }
        self.started = true;
        let owned: Vec<TopicPartition> = self.owned.keys().cloned().collect();
        // The plan: [next, until) per partition, fixed before reading. The end is the log's
        // end at the batch's time, as the generator read it then (a batch cut late behind a
        // slow one holds what had arrived by its time, not the backlog), or, without that
        // sample, as it is now.
        let sampled = self.samples.take(slot.time.millis()).unwrap_or_default();
        let mut highs: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for tp in owned {
            let from = self.owned.get(&tp).map_or(0, |o| o.next);
            let high = match sampled.get(&tp) {
                Some(high) => *high,
                // Asked to stop while the broker is away: nothing more of this partition.
                None => self.watermarks(&tp)?.map_or(from, |(_, high)| high),
            };
            highs.insert(tp, high.max(from));
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
        self.last_highs.clone_from(&highs);
        for (tp, high) in highs {
            let from = self.owned.get(&tp).map_or(0, |o| o.next);
            let until = match recorded.as_ref() {
                // A replayed batch reads exactly what it read before the restart.
                Some(r) => match r.get(&tp) {
                    Some(&(f, u)) => {
                        if f != from {
                            tracing::warn!(
                                "Kafka: replaying batch {}: {tp} was planned from {f}, the reader stands at {from}",
                                slot.time
                            );
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
        if let Ok(mut cut) = self.sampled.lock() {
            cut.through = slot.time.millis();
            cut.ends = plan.iter().map(|(tp, (_, u))| (tp.clone(), *u)).collect();
        }
        // Read exactly that, look-ahead first, each partition into its Spark partition (all of
        // them announced, also those with nothing to read, as Spark's KafkaRDD has them).
        let ids: BTreeMap<TopicPartition, PartitionId> = plan
            .keys()
            .map(|tp| (tp.clone(), partition_id(tp)))
            .collect();
        let mut missing: usize = 0;
        for (tp, (from, until)) in &plan {
            if let Some(o) = self.owned.get_mut(tp) {
                let records = out.part(ids.get(tp).cloned().unwrap_or_else(|| partition_id(tp)));
                // Room for the whole range at once (offsets without records, such as
                // transaction markers, only leave some unused).
                records.reserve((until - from).clamp(0, 1 << 22) as usize);
                while o.lookahead.front().is_some_and(|r| r.offset < *until) {
                    if let Some(r) = o.lookahead.pop_front() {
                        o.next = r.offset + 1;
                        records.push(KafkaItem::Record(r));
                    }
                }
                if o.next < *until {
                    missing += 1;
                }
            }
        }
        let mut waiting_since = Instant::now();
        let reading_since = Instant::now();
        while missing > 0 {
            let patience = Duration::from_millis(500);
            if self.runtime.aborted()
                || (self.runtime.stopping() && reading_since.elapsed() >= patience)
            {
                // Asked to stop while records are missing (the broker is away): the batch ends
                // with what was read, and only that is committed; the rest is read next run.
                for (tp, (_, until)) in plan.iter_mut() {
                    if let Some(o) = self.owned.get_mut(tp)
                        && o.next < *until
                    {
                        tracing::warn!(
                            "Kafka: stopping; batch {} ends {tp} at offset {} instead of {until}",
                            slot.time,
                            o.next
                        );
                        *until = o.next;
                        o.lookahead.clear();
                    }
                }
                break;
            }
            let polled = match self.consumer.as_ref() {
                Some(c) => c.poll(Duration::from_millis(100)),
                None => break,
            };
            match polled {
                Some(Ok(m)) => {
                    // Found without allocating: a worker reads a handful of partitions.
                    let Some((tp, &(_, until))) = plan
                        .iter()
                        .find(|(tp, _)| tp.partition == m.partition() && tp.topic == m.topic())
                    else {
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
                    let Some(o) = self.owned.get_mut(tp) else {
                        continue;
                    };
                    if record.offset < o.next {
                        continue; // already read (a re-fetch after a reconnect)
                    }
                    if record.offset < until {
                        o.next = record.offset + 1;
                        if let Some(id) = ids.get(tp) {
                            out.part(id.clone()).push(KafkaItem::Record(record));
                        }
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
                                && o.next < *until
                                && pos >= *until
                                && o.lookahead.is_empty()
                            {
                                o.next = *until;
                                missing -= 1;
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
            let id = ids.get(&tp).cloned().unwrap_or_else(|| partition_id(&tp));
            out.part(id).push(KafkaItem::Range(OffsetRange {
                topic: tp.topic,
                partition: tp.partition,
                from,
                until,
            }));
        }
        self.uncommitted.insert(slot.time.millis(), ranges);
        Ok(())
    }
}

impl BatchReader<KafkaItem> for KafkaReader {
    fn name(&self) -> String {
        format!("kafka {}", self.config.group)
    }

    fn identity(&self) -> String {
        use super::ConsumerStrategy::*;
        match &self.config.strategy {
            Subscribe(topics) => {
                let mut topics = topics.clone();
                topics.sort();
                topics.dedup();
                format!("kafka topics {}", topics.join(","))
            }
            SubscribePattern(pattern) => format!("kafka topics matching {pattern}"),
            Assign(parts) => {
                let mut parts: Vec<String> = parts
                    .iter()
                    .map(|(tp, _)| format!("{}-{}", tp.topic, tp.partition))
                    .collect();
                parts.sort();
                format!("kafka partitions {}", parts.join(","))
            }
        }
    }

    fn planned_records(&self, plan: &[u8]) -> Option<u64> {
        let ranges = crate::checkpoint::codec::decode::<Vec<(String, i32, i64, i64)>>(plan).ok()?;
        Some(
            ranges
                .iter()
                .map(|(_, _, from, until)| until.saturating_sub(*from).max(0) as u64)
                .sum(),
        )
    }

    fn partitions_read(&self) -> Vec<crate::listener::PartitionInput> {
        self.last_plan
            .iter()
            .map(|(tp, from, until)| crate::listener::PartitionInput {
                partition: format!("{}-{}", tp.topic, tp.partition),
                from: *from,
                until: *until,
                lag: self.last_highs.get(tp).map_or(0, |h| (h - until).max(0)),
            })
            .collect()
    }

    fn records_in(&self, items: &[KafkaItem]) -> u64 {
        items
            .iter()
            .filter(|i| matches!(i, KafkaItem::Record(_)))
            .count() as u64
    }

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<KafkaItem>) -> u64 {
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
        if let Some(bp) = self.config.backpressure
            && let Some(rate) = bp.next_rate(&mut self.estimator, batch)
        {
            tracing::debug!(
                "backpressure: {} records/s for this worker's partitions",
                rate as u64
            );
            self.rate = Some(rate);
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
        crate::checkpoint::codec::encode(&ranges).ok()
    }

    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) -> crate::Result<()> {
        // (Without a plan of the restored batch a partition resumes from the offset store,
        // which holds what the last finished batch committed: exact, so no refusal here.)
        self.committed_before = recovery.completed;
        for (t, plans) in recovery.plans {
            for bytes in plans {
                let Ok(ranges) =
                    crate::checkpoint::codec::decode::<Vec<(String, i32, i64, i64)>>(&bytes)
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
        // Batches generated but not cut before the restart: cut with the log-end offsets
        // recorded at their batch times (every worker's, each takes its own partitions).
        let generated = recovery.generated.len();
        for (t, samples) in recovery.generated {
            let mut highs = BTreeMap::new();
            for bytes in samples {
                match crate::checkpoint::codec::decode::<RecordedSample>(&bytes) {
                    Ok(sample) => highs.extend(
                        sample
                            .into_iter()
                            .map(|(topic, p, high)| (TopicPartition::new(&topic, p), high)),
                    ),
                    Err(_) => tracing::warn!("Kafka: an unreadable generated batch {t} ms"),
                }
            }
            self.samples.put(t, highs);
        }
        if generated > 0 {
            tracing::info!(
                "Kafka: {generated} batches generated before the restart but not yet run are cut with the log-end offsets recorded at their batch times"
            );
        }
        Ok(())
    }

    fn at_batch_time(&mut self) -> Option<BatchTimeHook> {
        self.hook.take()
    }
}
