//! Spark's clock on a Kafka direct stream (a real broker, noida-db): batch `t` holds the
//! records the log had at `t` even when the batch is cut late behind a blocked sink, and what
//! the generator fixed at `t` is durable, so a crash while batches are queued changes nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{turn, unique, values};
use crate::common::kafka::Broker;
use sluice::source::kafka::{ConsumerStrategy, KafkaConfig};
use sluice::{CollectedBatches, StreamingConfig, StreamingContext};

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Produces 10 records to `topic` every 100 ms, `chunks` times; the wall time at which the
/// broker had each chunk, in order.
fn produce_steadily(
    brokers: String,
    topic: &'static str,
    chunks: usize,
) -> (std::thread::JoinHandle<()>, Arc<Mutex<Vec<u64>>>) {
    let produced: Arc<Mutex<Vec<u64>>> = Arc::default();
    let p = Arc::clone(&produced);
    let handle = std::thread::spawn(move || {
        let b = Broker::attach(&brokers);
        for chunk in 0..chunks {
            b.produce(topic, 0, &values(&format!("c{chunk}-"), 10));
            p.lock().unwrap().push(wall_ms());
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (handle, produced)
}

/// Spark's rule for 200 ms batches: batch `t` holds the records produced by `t` and not by
/// `t - 200`.
fn sparks_rule(produced: &[u64], t: u64) -> i64 {
    let by = |t: u64| produced.iter().filter(|p| **p <= t).count() as i64 * 10;
    by(t) - by(t - 200)
}

/// What the generator and the workers did, by batch time.
#[derive(Default)]
struct Seen {
    submitted: Vec<(u64, std::time::Instant)>,
    started: Vec<(u64, std::time::Instant)>,
    /// The records each batch holds, as its generation counted them.
    records: Vec<(u64, Option<u64>)>,
}

struct Recorder(Arc<Mutex<Seen>>);

impl sluice::listener::StreamingListener for Recorder {
    fn on_batch_completed(&self, _: &sluice::listener::BatchInfo) {}
    fn on_batch_submitted(&self, b: &sluice::listener::SubmittedBatch) {
        let now = std::time::Instant::now();
        let mut seen = self.0.lock().unwrap();
        seen.submitted.push((b.batch_time.millis(), now));
        seen.records.push((b.batch_time.millis(), b.num_records));
    }
    fn on_batch_started(&self, t: sluice::Time) {
        let now = std::time::Instant::now();
        self.0.lock().unwrap().started.push((t.millis(), now));
    }
}

/// Spark's clock: batch `t` is generated at `t`. While the job's sink is blocked by a table
/// lock for 2 s (10 batch intervals), each batch time still fixes its own range (the log's end
/// at `t`): the batches are queued, each with what arrived in its interval, instead of one
/// batch taking the whole backlog when the lock goes. Counts are held against Spark's rule
/// (the records produced by `t`, one 100 ms chunk of tolerance for when the offsets were read).
#[test]
fn a_batch_holds_what_arrived_by_its_time_even_while_the_sink_is_blocked() {
    let _turn = turn(false);
    let broker = Broker::start();
    broker.create_topic("stall", 1);
    let table = unique("stall_sink").replace('-', "_");
    let url = "postgres://postgres@127.0.0.1:5432/postgres";
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("PostgreSQL on 5432");
    admin
        .batch_execute(&format!("CREATE TABLE {table} (batch BIGINT, n BIGINT)"))
        .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let kafka = KafkaConfig::new(
        broker.brokers(),
        unique("g"),
        ConsumerStrategy::Subscribe(vec!["stall".into()]),
    )
    .param("auto.offset.reset", "earliest");
    let counts = CollectedBatches::new();
    let c = counts.clone();
    let config = StreamingConfig::new(Duration::from_millis(200))
        .unwrap()
        .listener(Recorder(Arc::clone(&seen)));
    let sink_table = table.clone();
    let mut job = StreamingContext::new(config)
        .start(move |job| {
            let stream = job.kafka_direct_stream(kafka.clone()).map(|r| r.offset);
            stream.count().collect_into(&c);
            // The sink: one row per batch, into a table the test locks for a while.
            let table = sink_table.clone();
            let mut client: Option<postgres::Client> = None;
            stream.count().foreach_batch(move |t, n| {
                let client = client.get_or_insert_with(|| {
                    postgres::Client::connect(url, postgres::NoTls).unwrap()
                });
                client
                    .execute(
                        &format!("INSERT INTO {table} VALUES ($1, $2)"),
                        &[
                            &(t.millis() as i64),
                            &(n.first().copied().unwrap_or(0) as i64),
                        ],
                    )
                    .unwrap();
            });
        })
        .unwrap();
    // 10 records every 100 ms for 5 s, each chunk's time noted when the broker has it.
    let (producer, produced) = produce_steadily(broker.brokers(), "stall", 50);
    std::thread::sleep(Duration::from_millis(1000));
    let mut lock = admin.transaction().unwrap();
    lock.batch_execute(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    lock.commit().unwrap();
    producer.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    job.stop(true);
    job.await_termination().unwrap();

    let by_batch: Vec<(u64, u64)> = counts
        .batches()
        .into_iter()
        .map(|(t, n)| (t.millis(), n.first().copied().unwrap_or(0)))
        .collect();
    let total: u64 = by_batch.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 500, "every record once: {by_batch:?}");
    // Spark's rule: batch t holds the records produced by t and not by the batch before.
    let produced = produced.lock().unwrap().clone();
    for (t, n) in &by_batch {
        let want = sparks_rule(&produced, *t);
        assert!(
            (*n as i64 - want).abs() <= 10,
            "batch {t}: {n} records, Spark's rule {want} (±10): {by_batch:?}"
        );
    }
    // The stall shows as queued batches: generated at their time, started well after it.
    let seen = seen.lock().unwrap();
    let queued = seen
        .submitted
        .iter()
        .filter(|(t, at)| {
            seen.started
                .iter()
                .find(|(s, _)| s == t)
                .is_some_and(|(_, started)| {
                    started.duration_since(*at) > Duration::from_millis(500)
                })
        })
        .count();
    assert!(queued >= 3, "batches queued behind the lock: {queued}");
    // Each queued batch's records were known at its generation, and are what it held.
    let counted: std::collections::BTreeMap<u64, u64> = by_batch.iter().copied().collect();
    let known: Vec<(u64, u64, u64)> = seen
        .records
        .iter()
        .filter_map(|(t, n)| Some((*t, (*n)?, *counted.get(t)?)))
        .collect();
    assert!(known.len() >= 10, "records known at generation: {known:?}");
    for (t, generated, held) in &known {
        assert_eq!(generated, held, "batch {t}: {known:?}");
    }
}

/// Spark checkpoints a batch when it is generated: a job that dies while batches are queued
/// behind a blocked sink cuts them, after the restart, with the log-end offsets read at their
/// times — each holds what arrived in its interval, not the backlog found at the restart.
#[test]
fn queued_batches_keep_their_ranges_across_a_crash() {
    let _turn = turn(false);
    use std::sync::atomic::{AtomicBool, Ordering};
    let broker = Broker::start();
    broker.create_topic("queued", 1);
    let checkpoint = tempfile::tempdir().unwrap();
    let group = unique("g");
    let run = |blocked: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>, counts: CollectedBatches<u64>| {
        let kafka = KafkaConfig::new(
            broker.brokers(),
            group.clone(),
            ConsumerStrategy::Subscribe(vec!["queued".into()]),
        )
        .param("auto.offset.reset", "earliest");
        let config = StreamingConfig::new(Duration::from_millis(200))
            .unwrap()
            .checkpoint(checkpoint.path())
            .listener(Recorder(seen));
        StreamingContext::new(config)
            .start(move |job| {
                let stream = job.kafka_direct_stream(kafka.clone()).map(|r| r.offset);
                let blocked = Arc::clone(&blocked);
                // A sink that blocks its worker while `blocked` holds.
                stream.count().foreach_batch(move |_t, _n| {
                    while blocked.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                });
                stream.count().collect_into(&counts);
            })
            .unwrap()
    };
    // Run 1: the sink blocks after 1 s; 2 s later (10 batch intervals queued) the job is
    // stopped at once, as a crash would stop it. The producer goes on meanwhile.
    let (producer, produced) = produce_steadily(broker.brokers(), "queued", 50);
    let blocked = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let first = CollectedBatches::new();
    let mut job = run(Arc::clone(&blocked), Arc::clone(&seen), first.clone());
    std::thread::sleep(Duration::from_millis(1000));
    blocked.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    job.stop(false);
    blocked.store(false, Ordering::SeqCst);
    let _ = job.await_termination();
    let (submitted, started): (Vec<u64>, Vec<u64>) = {
        let seen = seen.lock().unwrap();
        (
            seen.submitted.iter().map(|(t, _)| *t).collect(),
            seen.started.iter().map(|(t, _)| *t).collect(),
        )
    };
    // Run 2 after a second of down time.
    std::thread::sleep(Duration::from_secs(1));
    let second = CollectedBatches::new();
    let mut job = run(
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Seen::default())),
        second.clone(),
    );
    producer.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    job.stop(true);
    job.await_termination().unwrap();

    let count = |c: &CollectedBatches<u64>| -> Vec<(u64, u64)> {
        c.batches()
            .into_iter()
            .map(|(t, n)| (t.millis(), n.into_iter().sum()))
            .collect()
    };
    let rerun = count(&second);
    let mut by_batch: std::collections::BTreeMap<u64, u64> = count(&first).into_iter().collect();
    by_batch.extend(rerun.iter().copied());
    assert_eq!(
        by_batch.values().sum::<u64>(),
        500,
        "every record once: run 1 {:?}, run 2 {rerun:?}",
        count(&first)
    );
    // The batches queued when run 1 died: generated there, never started.
    let queued: Vec<u64> = submitted
        .iter()
        .copied()
        .filter(|t| !started.contains(t))
        .collect();
    assert!(queued.len() >= 5, "batches queued at the crash: {queued:?}");
    let produced = produced.lock().unwrap().clone();
    for (t, n) in rerun.iter().filter(|(t, _)| queued.contains(t)) {
        let want = sparks_rule(&produced, *t);
        assert!(
            (*n as i64 - want).abs() <= 10,
            "queued batch {t}: {n} records after the restart, Spark's rule {want} (±10): {rerun:?}"
        );
    }
}
