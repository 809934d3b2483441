//! Kafka direct stream against a real broker (noida-db, one per test): consumer strategies,
//! exact per-batch counts under a rate limit, offset ranges, every offset store resuming a
//! stopped job with nothing lost or read twice, several workers and processes, a broker outage.

mod common;

#[cfg(feature = "postgres")]
#[path = "kafka/example.rs"]
mod example;
#[path = "kafka/generation.rs"]
mod generation;

use std::time::Duration;

use common::kafka::Broker;
use sluice::offsets::{OffsetRange, OffsetStoreKind, TopicPartition};
use sluice::source::kafka::{ConsumerRecord, ConsumerStrategy, ExpiredOffsets, KafkaConfig};
use sluice::{Cluster, CollectedBatches, StreamingConfig, StreamingContext};

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn fast(batches: u64, threads: usize, batch: Duration) -> StreamingConfig {
    StreamingConfig::new(batch)
        .unwrap()
        .threads(threads)
        .as_fast_as_possible(1)
        .first_batch_ms(batch.as_millis() as u64)
        .max_batches(batches)
}

/// Runs a direct stream; returns the records and the offset ranges of each batch.
fn run(
    config: StreamingConfig,
    kafka: KafkaConfig,
) -> (Vec<Vec<ConsumerRecord>>, Vec<Vec<OffsetRange>>) {
    let (records, ranges) = (CollectedBatches::new(), CollectedBatches::new());
    let (r, o) = (records.clone(), ranges.clone());
    StreamingContext::new(config)
        .run(move |job| {
            let stream = job.kafka_direct_stream(kafka.clone());
            stream.collect_into(&r);
            stream.offset_ranges().collect_into(&o);
        })
        .expect("the job runs");
    (records.values(), ranges.values())
}

fn sorted_values(batches: &[Vec<ConsumerRecord>]) -> Vec<String> {
    let mut v: Vec<String> = batches
        .iter()
        .flatten()
        .map(|r| r.value_str().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

/// The timed test (backpressure) runs alone: on 2 cores, sixteen Kafka jobs beside it change
/// what its rate estimator sees. The others share their turn.
static TURN: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum Turn {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

fn turn(alone: bool) -> Turn {
    if alone {
        Turn::Alone(TURN.write().unwrap_or_else(|p| p.into_inner()))
    } else {
        Turn::Shared(TURN.read().unwrap_or_else(|p| p.into_inner()))
    }
}

#[test]
fn subscribe_reads_every_record_exactly_once_with_two_workers() {
    let _turn = turn(false);
    let broker = Broker::start();
    broker.create_topic("events", 4);
    let mut all = Vec::new();
    for p in 0..4 {
        let v = values(&format!("p{p}"), 250);
        broker.produce("events", p, &v);
        all.extend(v);
    }
    all.sort();
    let kafka = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Subscribe(vec!["events".into()]),
    )
    .param("auto.offset.reset", "earliest");
    let (records, ranges) = run(fast(3, 2, Duration::from_secs(1)), kafka);
    assert_eq!(sorted_values(&records), all);
    // Every record carries its coordinates; the ranges cover exactly what was read.
    let first: Vec<&OffsetRange> = ranges[0].iter().collect();
    assert_eq!(first.len(), 4, "one range per partition: {first:?}");
    assert!(first.iter().all(|r| r.from == 0 && r.until == 250));
    assert!(
        records
            .iter()
            .flatten()
            .all(|r| r.key.as_deref() == r.value.as_deref()
                && r.offset < 250
                && r.timestamp.is_some())
    );
}

#[test]
fn assign_starts_at_the_given_offsets_and_pattern_picks_matching_topics() {
    let _turn = turn(false);
    let broker = Broker::start();
    for t in ["logs-a", "logs-b", "other"] {
        broker.create_topic(t, 1);
        broker.produce(t, 0, &values(t, 20));
    }
    let assign = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Assign(vec![
            (TopicPartition::new("logs-a", 0), Some(15)),
            (TopicPartition::new("other", 0), Some(18)),
        ]),
    );
    let (records, _) = run(fast(2, 1, Duration::from_secs(1)), assign);
    assert_eq!(
        sorted_values(&records),
        vec![
            "logs-a-15",
            "logs-a-16",
            "logs-a-17",
            "logs-a-18",
            "logs-a-19",
            "other-18",
            "other-19"
        ]
    );

    let pattern = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::SubscribePattern("^logs-.*".into()),
    )
    .param("auto.offset.reset", "earliest");
    let (records, _) = run(fast(2, 2, Duration::from_secs(1)), pattern);
    let mut want: Vec<String> = values("logs-a", 20)
        .into_iter()
        .chain(values("logs-b", 20))
        .collect();
    want.sort();
    assert_eq!(sorted_values(&records), want);
}

#[test]
fn max_rate_per_partition_gives_exact_batch_counts() {
    let _turn = turn(false);
    // The course's example: 2 s batches × 3 partitions × 100 records/s = 600 records per batch.
    let broker = Broker::start();
    broker.create_topic("rated", 3);
    for p in 0..3 {
        broker.produce("rated", p, &values(&format!("p{p}"), 1000));
    }
    let kafka = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Subscribe(vec!["rated".into()]),
    )
    .param("auto.offset.reset", "earliest")
    .max_rate_per_partition(100);
    let (records, ranges) = run(fast(6, 2, Duration::from_secs(2)), kafka);
    let counts: Vec<usize> = records.iter().map(Vec::len).collect();
    assert_eq!(counts, vec![600, 600, 600, 600, 600, 0]);
    assert!(
        ranges[1].iter().all(|r| r.count() == 200),
        "{:?}",
        ranges[1]
    );
}

#[test]
fn auto_offset_reset_latest_skips_the_backlog_and_none_fails() {
    let _turn = turn(false);
    let broker = Broker::start();
    broker.create_topic("t", 1);
    broker.produce("t", 0, &values("old", 10));
    let latest = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Subscribe(vec!["t".into()]),
    );
    let (records, ranges) = run(fast(2, 1, Duration::from_secs(1)), latest);
    assert!(records.iter().all(Vec::is_empty));
    assert_eq!(ranges[0][0].from, 10);
    let none = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Subscribe(vec!["t".into()]),
    )
    .param("auto.offset.reset", "none");
    let err = StreamingContext::new(fast(2, 1, Duration::from_secs(1)))
        .run(move |job| job.kafka_direct_stream(none.clone()).print(1))
        .unwrap_err();
    assert!(
        err.to_string().contains("no stored offset")
            && err.to_string().contains("auto.offset.reset"),
        "{err}"
    );
}

/// Two runs of one group on one store: the second resumes where the first committed.
fn resumes(store: OffsetStoreKind) {
    let broker = Broker::start();
    broker.create_topic("orders", 2);
    for p in 0..2 {
        broker.produce("orders", p, &values(&format!("p{p}"), 300));
    }
    let group = unique("resume");
    let kafka = KafkaConfig::new(
        broker.brokers(),
        group.clone(),
        ConsumerStrategy::Subscribe(vec!["orders".into()]),
    )
    .param("auto.offset.reset", "earliest")
    .offset_store(store.clone())
    .max_rate_per_partition(50);
    // Run 1: 3 batches × 50 per partition.
    let (first, _) = run(fast(3, 2, Duration::from_secs(1)), kafka.clone());
    assert_eq!(first.iter().map(Vec::len).sum::<usize>(), 300, "{store:?}");
    // Run 2: the rest, not one record again.
    let (second, ranges) = run(fast(4, 1, Duration::from_secs(1)), kafka);
    assert!(
        ranges[0].iter().all(|r| r.from == 150),
        "{store:?}: {:?}",
        ranges[0]
    );
    let mut all = sorted_values(&first);
    all.extend(sorted_values(&second));
    all.sort();
    let mut want: Vec<String> = values("p0", 300)
        .into_iter()
        .chain(values("p1", 300))
        .collect();
    want.sort();
    assert_eq!(
        all, want,
        "{store:?}: every record exactly once across the restart"
    );
}

#[test]
fn kafka_group_store_resumes() {
    let _turn = turn(false);
    resumes(OffsetStoreKind::Kafka);
}

#[test]
fn checkpoint_store_resumes() {
    let _turn = turn(false);
    let dir = tempfile::tempdir().unwrap();
    resumes(OffsetStoreKind::Checkpoint(dir.path().to_path_buf()));
}

#[test]
fn redis_store_resumes() {
    let _turn = turn(false);
    resumes(OffsetStoreKind::Redis("redis://127.0.0.1:6379/".into()));
}

#[test]
fn postgres_store_resumes() {
    let _turn = turn(false);
    resumes(OffsetStoreKind::Postgres(
        "postgres://postgres@127.0.0.1:5432/test".into(),
    ));
}

#[test]
fn mysql_store_resumes() {
    let _turn = turn(false);
    resumes(OffsetStoreKind::MySql(
        "mysql://root@127.0.0.1:3306/test".into(),
    ));
}

#[test]
fn expired_offsets_fail_or_reset_to_earliest() {
    let _turn = turn(false);
    let broker = Broker::start();
    broker.create_topic("short", 1);
    broker.produce("short", 0, &values("v", 10));
    // A stored offset below the earliest offset Kafka still has: what retention leaves behind.
    let dir = tempfile::tempdir().unwrap();
    let group = unique("expired");
    let mut store = sluice::offsets::CheckpointStore::new(dir.path());
    sluice::offsets::OffsetStore::commit(
        &mut store,
        &group,
        &[(TopicPartition::new("short", 0), -5)],
    )
    .unwrap();
    let base = KafkaConfig::new(
        broker.brokers(),
        group,
        ConsumerStrategy::Subscribe(vec!["short".into()]),
    )
    .offset_store(OffsetStoreKind::Checkpoint(dir.path().to_path_buf()));
    let failing = base.clone();
    let err = StreamingContext::new(fast(2, 1, Duration::from_secs(1)))
        .run(move |job| job.kafka_direct_stream(failing.clone()).print(1))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("short-0")
            && msg.contains("-5")
            && msg.contains("earliest offset still in Kafka is 0"),
        "{msg}"
    );
    let (records, _) = run(
        fast(2, 1, Duration::from_secs(1)),
        base.expired_offsets(ExpiredOffsets::ResetToEarliest),
    );
    assert_eq!(sorted_values(&records).len(), 10);
}

#[test]
fn a_broker_outage_is_waited_out_with_nothing_lost() {
    let _turn = turn(false);
    let mut broker = Broker::start();
    broker.create_topic("outage", 2);
    broker.produce("outage", 0, &values("before", 100));
    let kafka = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Subscribe(vec!["outage".into()]),
    )
    .param("auto.offset.reset", "earliest")
    .metadata_refresh(Duration::from_millis(200));
    let out = CollectedBatches::new();
    let o = out.clone();
    let config = StreamingConfig::new(Duration::from_millis(200))
        .unwrap()
        .threads(2);
    let mut job = StreamingContext::new(config)
        .start(move |job| job.kafka_direct_stream(kafka.clone()).collect_into(&o))
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    broker.stop();
    std::thread::sleep(Duration::from_secs(15));
    broker.restart();
    broker.produce("outage", 1, &values("after", 100));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.values().iter().map(Vec::len).sum::<usize>() < 200
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    job.stop(true);
    job.await_termination().unwrap();
    let mut want: Vec<String> = values("before", 100)
        .into_iter()
        .chain(values("after", 100))
        .collect();
    want.sort();
    let got: Vec<ConsumerRecord> = out.values().into_iter().flatten().collect();
    let mut got_values: Vec<String> = got
        .iter()
        .map(|r| r.value_str().unwrap_or("").to_owned())
        .collect();
    got_values.sort();
    assert_eq!(got_values, want);
}

fn case(name: &str, cluster: Cluster) -> common::Batches {
    let brokers = std::env::var("SLUICE_TEST_BROKERS").expect("the parent passes the broker");
    match name {
        "four_partitions" => {
            let kafka = KafkaConfig::new(
                brokers,
                std::env::var("SLUICE_TEST_GROUP").unwrap_or_default(),
                ConsumerStrategy::Subscribe(vec!["spread".into()]),
            )
            .param("auto.offset.reset", "earliest")
            .max_rate_per_partition(100);
            common::run_source(common::config(4, cluster), move |job| {
                let s = job.kafka_direct_stream(kafka.clone());
                s.map(|r| r.value_str().unwrap_or("").to_owned())
            })
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn child_process_entry() {
    let _turn = turn(false);
    common::child_entry(case);
}

#[test]
fn two_processes_read_every_record_exactly_once() {
    let _turn = turn(false);
    let broker = Broker::start();
    broker.create_topic("spread", 4);
    let mut want: Vec<String> = Vec::new();
    for p in 0..4 {
        let v = values(&format!("p{p}"), 300);
        broker.produce("spread", p, &v);
        want.extend(v);
    }
    let dir = tempfile::tempdir().unwrap();
    let got = common::run_two_processes_with(
        "four_partitions",
        dir.path(),
        &[
            ("SLUICE_TEST_BROKERS", broker.brokers()),
            ("SLUICE_TEST_GROUP", unique("two")),
        ],
    );
    // 4 batches × 4 partitions × 100 (1 s batches at 100/s): 1 200 records, each once.
    let mut all: Vec<String> = got
        .into_iter()
        .flatten()
        .map(|s| s.trim_matches('"').to_owned())
        .collect();
    all.sort();
    want.sort();
    assert_eq!(all, want);
}

/// The rate starts at the initial rate, adapts upward, never lets one batch swallow the
/// backlog, and every record is read once. (How fast it converges is timing: the Kafka bench
/// measures it, not this test.)
#[test]
fn backpressure_bounds_the_first_batch_and_adapts_under_overload() {
    let _turn = turn(true);
    let broker = Broker::start();
    broker.create_topic("flood", 2);
    for p in 0..2 {
        broker.produce("flood", p, &values(&format!("p{p}"), 20_000));
    }
    let kafka = KafkaConfig::new(
        broker.brokers(),
        unique("bp"),
        ConsumerStrategy::Subscribe(vec!["flood".into()]),
    )
    .param("auto.offset.reset", "earliest")
    .backpressure(Some(1000), sluice::source::PidSettings::default());
    let recorder = sluice::listener::BatchRecorder::new();
    let config = StreamingConfig::new(Duration::from_millis(200))
        .unwrap()
        .max_batches(90)
        .listener(recorder.clone());
    StreamingContext::new(config)
        .run(move |job| {
            // About 50 µs of work per record: ~4 000 records fit in a 200 ms batch.
            job.kafka_direct_stream(kafka.clone())
                .map(|r| {
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_micros(50) {}
                    r.offset
                })
                .count()
                .print(0)
        })
        .unwrap();
    let batches = recorder.batches();
    let sizes: Vec<u64> = batches.iter().map(|b| b.num_records()).collect();
    assert_eq!(
        sizes[0], 200,
        "the first batch holds initial rate × interval: {sizes:?}"
    );
    assert!(
        sizes.iter().any(|n| *n > 1000),
        "the rate adapts upward: {sizes:?}"
    );
    assert!(
        sizes.iter().all(|n| *n < 8_000),
        "no batch swallowed the backlog: {sizes:?}"
    );
    assert_eq!(
        sizes.iter().sum::<u64>(),
        40_000,
        "and every record was read once: {sizes:?}"
    );
}

#[test]
fn partitions_added_while_the_job_runs_are_picked_up() {
    let _turn = turn(false);
    let broker = Broker::start();
    broker.create_topic("growing", 1);
    broker.produce("growing", 0, &values("p0", 10));
    let kafka = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Subscribe(vec!["growing".into()]),
    )
    .param("auto.offset.reset", "earliest")
    .metadata_refresh(Duration::from_millis(100));
    let out = CollectedBatches::new();
    let o = out.clone();
    let config = StreamingConfig::new(Duration::from_millis(100))
        .unwrap()
        .threads(2);
    let mut job = StreamingContext::new(config)
        .start(move |job| job.kafka_direct_stream(kafka.clone()).collect_into(&o))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    broker.add_partitions("growing", 3);
    broker.produce("growing", 1, &values("p1", 10));
    broker.produce("growing", 2, &values("p2", 10));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.values().iter().map(Vec::len).sum::<usize>() < 30
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    job.stop(true);
    job.await_termination().unwrap();
    let mut want: Vec<String> = ["p0", "p1", "p2"]
        .iter()
        .flat_map(|p| values(p, 10))
        .collect();
    want.sort();
    assert_eq!(sorted_values(&out.values()), want);
}

#[test]
fn zookeeper_store_resumes() {
    let _turn = turn(false);
    resumes(OffsetStoreKind::ZooKeeper("127.0.0.1:2181".into()));
}

#[test]
fn assigning_a_topic_that_does_not_exist_fails_at_start_naming_it() {
    let _turn = turn(false);
    let broker = Broker::start();
    let kafka = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Assign(vec![(TopicPartition::new("no-such-topic", 0), Some(0))]),
    );
    let started = std::time::Instant::now();
    let out = CollectedBatches::<ConsumerRecord>::new();
    let o = out.clone();
    let err = StreamingContext::new(fast(2, 1, Duration::from_secs(1)))
        .run(move |job| job.kafka_direct_stream(kafka.clone()).collect_into(&o))
        .expect_err("an assigned partition that does not exist fails the job");
    assert!(err.to_string().contains("no-such-topic"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "promptly, not after retries"
    );
    assert!(out.values().concat().is_empty());
}
