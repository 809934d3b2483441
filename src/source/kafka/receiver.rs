//! The receiver-based Kafka stream (the course's §4.2.1, Spark's `KafkaUtils.createStream`):
//! a consumer in a receiver thread on worker 0 reads the topics' records as they come, and the
//! batches take what it has buffered, as the socket receiver's do.
//!
//! With a checkpoint (`--checkpoint`), every record's value is appended to the receiver's
//! **write-ahead log** and the offsets after it are recorded (`positions-*.log` beside the log)
//! **before** the record can enter a batch, and only then are the offsets committed to the
//! consumer group in Kafka: the course's "enable the WAL for zero data loss". A restarted job
//! replays its batches from the log, feeds the logged records no batch took yet into the next
//! one, and resumes reading at the recorded offsets, so nothing is lost and nothing is read
//! twice; records logged but whose offsets were not recorded (a crash between the two) are
//! dropped from the log and read again from Kafka. Offsets in Kafka are there for lag tools;
//! the log is what the job trusts.
//!
//! Without a checkpoint the receiver commits offsets to Kafka once records are buffered, and
//! what was buffered but not yet processed is lost in a crash (Spark's receiver without WAL).
//!
//! Spark removed this receiver in 3.0: the direct stream ([`DirectStream`](super::DirectStream))
//! reads exact offset ranges per batch, in parallel on every worker, and needs no log. Prefer
//! it; this one is for jobs that want the course's receiver model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::client::{failure, kafka_error};
use super::{ConsumerStrategy, KafkaConfig};
use crate::checkpoint::{codec, file};
use crate::retry::{Backoff, Failure, sleep_unless};
use crate::source::receiver::framing::Framed;
use crate::source::receiver::limits::hand_over_lines;
use crate::source::receiver::wal::Wal;
use crate::source::receiver::{ReceiveFn, ReceiverReader, Shared, deliver};
use crate::source::{DeadLetters, Malformed, SocketOptions};

/// Offsets after the last logged record of each partition, and the log's sequence number
/// after it.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Positions {
    seq: u64,
    next: BTreeMap<(String, i32), i64>,
}

/// Positions are rewritten into a new log after this many records.
const ROTATE_EVERY: usize = 1000;

fn position_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("positions-") && n.ends_with(".log"))
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs
}

/// The last recorded positions in `dir` (empty when none).
fn load_positions(dir: &Path) -> Positions {
    for log in position_logs(dir).iter().rev() {
        if let Ok(records) = file::read_log(log)
            && let Some(p) = records
                .iter()
                .rev()
                .find_map(|r| codec::decode::<Positions>(r).ok())
        {
            return p;
        }
    }
    Positions::default()
}

/// The log's first sequence number the positions do not cover.
fn confirmed(dir: &Path) -> u64 {
    load_positions(dir).seq
}

/// Where positions are recorded, durably.
struct PositionLog {
    dir: PathBuf,
    storage: crate::checkpoint::storage::Storage,
    log: Option<file::LogWriter>,
    records: usize,
    generation: u64,
}

impl PositionLog {
    fn record(&mut self, p: &Positions) -> Result<(), crate::error::CheckpointError> {
        let encode = |path: &std::path::Path| {
            codec::encode(p).map_err(|source| crate::error::CheckpointError::Codec {
                path: path.to_owned(),
                source,
            })
        };
        if self.log.is_none() || self.records >= ROTATE_EVERY {
            self.generation += 1;
            let path = self
                .dir
                .join(format!("positions-{:020}.log", self.generation));
            let mut log = self.storage.create_log(&path)?;
            log.append(&encode(&path)?, true)?;
            for old in position_logs(&self.dir) {
                if old != path {
                    let _ = std::fs::remove_file(&old);
                    self.storage.removed(&old);
                }
            }
            self.log = Some(log);
            self.records = 1;
            return Ok(());
        }
        let bytes = encode(&self.dir)?;
        if let Some(log) = self.log.as_mut() {
            log.append(&bytes, true)?;
        }
        self.records += 1;
        Ok(())
    }
}

/// The receiver's reader (see the module docs); `Err` for a configuration it cannot run.
pub(crate) fn reader(
    config: KafkaConfig,
    receiver: bool,
    wal_dir: Option<crate::checkpoint::storage::Folder>,
    options: &SocketOptions,
) -> Result<ReceiverReader, crate::SluiceError> {
    let dead = options.dead_letters.clone();
    let block_interval = options.block_interval;
    let ConsumerStrategy::Subscribe(topics) = config.strategy.clone() else {
        return Err(crate::SluiceError::InvalidConfig {
            problem: "the Kafka receiver reads whole topics".into(),
            fix: "give it ConsumerStrategy::Subscribe(topics); for patterns or chosen partitions use the direct stream".into(),
        });
    };
    let name = format!("kafka receiver {}", topics.join(","));
    let source = name.clone();
    let receive: ReceiveFn = Box::new(move |shared: Arc<Shared>, wal: Option<Wal>| {
        receive(
            &config,
            &topics,
            &source,
            &shared,
            wal,
            &dead,
            block_interval,
        )
    });
    Ok(ReceiverReader::new(
        name,
        receive,
        receiver,
        wal_dir,
        Some(confirmed),
        options.limits(),
    ))
}

fn consumer(config: &KafkaConfig) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
    let mut c = ClientConfig::new();
    for (k, v) in config.client_settings() {
        c.set(k, v);
    }
    c.set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
}

/// Every partition of `topics`, with where the receiver starts in it: the recorded position,
/// else the group's committed offset, else `auto.offset.reset`.
fn assignment(
    consumer: &BaseConsumer,
    topics: &[String],
    recorded: &Positions,
    reset: &str,
) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        for t in meta.topics() {
            if let Some(e) = t.error() {
                return Err(rdkafka::error::KafkaError::MetadataFetch(e.into()));
            }
            for p in t.partitions() {
                all.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(all.clone(), Duration::from_secs(5))?;
    let mut out = TopicPartitionList::new();
    for e in all.elements() {
        let key = (e.topic().to_owned(), e.partition());
        let offset = match recorded.next.get(&key) {
            Some(o) => Offset::Offset(*o),
            None => match committed
                .find_partition(e.topic(), e.partition())
                .map(|c| c.offset())
            {
                Some(Offset::Offset(o)) => Offset::Offset(o),
                _ if reset == "earliest" || reset == "smallest" => Offset::Beginning,
                _ => Offset::End,
            },
        };
        out.add_partition_offset(e.topic(), e.partition(), offset)?;
    }
    Ok(out)
}

fn receive(
    config: &KafkaConfig,
    topics: &[String],
    source: &str,
    shared: &Shared,
    mut wal: Option<Wal>,
    dead: &DeadLetters,
    block_interval: Duration,
) {
    let stop = || shared.stop.load(Ordering::SeqCst);
    let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut positions = wal
        .as_ref()
        .map(|w| load_positions(&w.dir))
        .unwrap_or_default();
    let mut log = wal.as_ref().map(|w| PositionLog {
        dir: w.dir.clone(),
        storage: w.storage.clone(),
        log: None,
        records: 0,
        // Names that sort after every earlier run's logs.
        generation: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    });
    let what = format!("{source}: cannot start reading");
    let started = policy.retry(&what, &stop, || {
        let c = consumer(config).map_err(failure)?;
        let tpl = assignment(&c, topics, &positions, &config.reset()).map_err(failure)?;
        c.assign(&tpl).map_err(failure)?;
        Ok(c)
    });
    let consumer = match started {
        Ok(c) => c,
        Err(e) => {
            let e = e.into_inner();
            if !stop() {
                tracing::error!("{}", kafka_error(&what, e));
            }
            return;
        }
    };
    tracing::info!("{source}: receiving (group {})", config.group);
    let mut framed = Vec::new();
    while !stop() {
        // Up to 100 ms or 10 000 records (with a rate, 50 ms of it), then hand them over in
        // one go.
        let until = Instant::now() + Duration::from_millis(100);
        let cap = hand_over_lines(shared).map_or(10_000, |n| n.min(10_000));
        let mut any = false;
        while Instant::now() < until && framed.len() < cap {
            match consumer.poll(Duration::from_millis(20)) {
                None => {
                    if any {
                        break;
                    }
                }
                Some(Ok(m)) => {
                    any = true;
                    positions
                        .next
                        .insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
                    match std::str::from_utf8(m.payload().unwrap_or_default()) {
                        Ok(v) => framed.push(Framed::Line(v.to_owned())),
                        Err(e) => framed.push(Framed::Bad(Box::new(Malformed {
                            source: source.to_owned(),
                            position: format!(
                                "{}-{} offset {}",
                                m.topic(),
                                m.partition(),
                                m.offset()
                            ),
                            reason: format!("value is not UTF-8: {e}"),
                            bytes: m
                                .payload()
                                .unwrap_or_default()
                                .iter()
                                .copied()
                                .take(256)
                                .collect(),
                        }))),
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("{source}: {e}; polling again");
                    sleep_unless(Duration::from_millis(100), &stop);
                    break;
                }
            }
        }
        if !any {
            continue;
        }
        let mut record = |seq: Option<u64>| -> bool {
            let (Some(seq), Some(log)) = (seq, log.as_mut()) else {
                return true;
            };
            positions.seq = seq;
            let p = positions.clone();
            policy
                .retry(&"kafka receiver positions", &stop, || {
                    log.record(&p).map_err(Failure::Transient)
                })
                .is_ok()
        };
        if !deliver(
            shared,
            &mut framed,
            dead,
            &mut wal,
            block_interval,
            &mut record,
        ) {
            return;
        }
        // For lag tools; the log is what a restart trusts.
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &positions.next {
            let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!("{source}: committing offsets to the group: {e}");
        }
    }
    // The last offsets, synchronously, on the way out.
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in &positions.next {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    if !positions.next.is_empty() {
        let _ = consumer.commit(&tpl, CommitMode::Sync);
    }
}
