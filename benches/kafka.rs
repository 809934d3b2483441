//! Kafka benchmark (issue: Kafka direct stream), against a real broker (noida-db from
//! `scripts/kafka-broker.sh install`) started by the benchmark on a free port.
//!
//! 1. Throughput: a direct stream doing `count()` per batch over a topic of N records
//!    (10 000 000 of 100 bytes by default, 4 partitions), against a bare rdkafka consumer reading
//!    the same partitions in the same run; the ratio. Each reader runs twice, alternating, each
//!    time once the broker is idle, and the better run counts. The job keeps its offsets in
//!    files: noida-db, the test broker, rewrites all of its data to a JSON file every second
//!    after any change, an offset commit included (with millions of records that takes most of
//!    a core, which a real broker does not); one row commits to the broker to show it.
//! 2. End-to-end latency at 100 ms batches: a producer stamps each record with its send time;
//!    the job's output measures produce → output per record (p50, p99, max).
//!
//! `cargo bench --bench kafka`; `SLUICE_BENCH_RECORDS=1000000` for a shorter run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sluice::listener::BatchRecorder;
use sluice::offsets::OffsetStoreKind;
use sluice::source::kafka::{ConsumerStrategy, KafkaConfig};
use sluice::{StreamingConfig, StreamingContext};

/// mimalloc, as in the `sluice` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 4;

struct Broker {
    child: std::process::Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker() -> Broker {
    let bin =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/noida/bin/noida-db");
    assert!(bin.exists(), "run scripts/kafka-broker.sh install first");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(bin)
        .args(["start", "--data-dir"])
        .arg(data.path())
        .args([
            "--host",
            "127.0.0.1",
            "--only",
            "kafka",
            "--kafka-port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker {
        child,
        port,
        _data: data,
    }
}

/// Waits until the broker has had nothing to do for a second (noida-db rewrites all its data
/// to a JSON file every second after a change: after producing, and after every offset commit).
fn wait_until_idle(broker: &Broker) {
    let ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", broker.child.id()))
            .unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // utime and stime: fields 14 and 15, the 12th and 13th after the state letter.
        f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
    };
    let started = Instant::now();
    let mut last = ticks();
    while started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(1));
        let now = ticks();
        if now - last <= 2 {
            return;
        }
        last = now;
    }
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap()
}

fn send(p: &BaseProducer, topic: &str, partition: i32, payload: &[u8]) {
    let mut record = BaseRecord::<[u8], [u8]>::to(topic)
        .partition(partition)
        .payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                p.poll(Duration::from_millis(1));
                record = r;
            }
        }
    }
}

fn bare_consumer(brokers: &str, topic: &str, total: u64) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bare")
        .set("enable.auto.commit", "false")
        .set("receive.message.max.bytes", "1000000000")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    while n < total {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            bytes += m.payload().map_or(0, <[u8]>::len);
            n += 1;
        }
    }
    std::hint::black_box(bytes);
    n as f64 / started.elapsed().as_secs_f64()
}

/// Where the count job keeps its offsets: files (a checkpoint directory), or the broker's
/// consumer group, Spark's `commitAsync`.
#[derive(Clone, Copy, PartialEq)]
enum Offsets {
    Files,
    Broker,
}

fn sluice_count(
    brokers: &str,
    topic: &str,
    total: u64,
    threads: usize,
    offsets: Offsets,
    run: usize,
) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = BatchRecorder::new();
    // 1 s batches cut back to back; each partition contributes up to 1 M records per batch.
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .threads(threads)
        .as_fast_as_possible(1)
        .listener(recorder.clone());
    let mut kafka = KafkaConfig::new(
        brokers,
        format!("sluice-{threads}-{run}"),
        ConsumerStrategy::Subscribe(vec![topic.to_owned()]),
    )
    .param("auto.offset.reset", "earliest")
    .max_rate_per_partition(1_000_000);
    if offsets == Offsets::Files {
        kafka = kafka.offset_store(OffsetStoreKind::Checkpoint(dir.path().to_owned()));
    }
    let counted = Arc::new(Mutex::new(0u64));
    let c = Arc::clone(&counted);
    let started = Instant::now();
    let mut running = StreamingContext::new(config)
        .start(move |job| {
            let c = Arc::clone(&c);
            job.kafka_direct_stream(kafka.clone())
                .count()
                .foreach_batch(move |_, n| *c.lock().unwrap() += n.iter().sum::<u64>())
        })
        .unwrap();
    while *counted.lock().unwrap() < total {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    running.stop(false);
    let _ = running.await_termination();
    (total as f64 / secs, recorder.batches().len() as u64)
}

fn latency(brokers: &str) -> (Duration, Duration, Duration, usize) {
    let topic = "latency";
    let epoch = Instant::now();
    let config = StreamingConfig::new(Duration::from_millis(100)).unwrap();
    let kafka = KafkaConfig::new(
        brokers,
        "latency",
        ConsumerStrategy::Subscribe(vec![topic.to_owned()]),
    )
    .metadata_refresh(Duration::from_millis(100));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&samples);
    let mut running = StreamingContext::new(config)
        .start(move |job| {
            let s = Arc::clone(&s);
            job.kafka_direct_stream(kafka.clone())
                .map(|r| {
                    r.value_str()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                })
                .foreach_batch(move |_, sent| {
                    let now = epoch.elapsed().as_nanos() as u64;
                    s.lock().unwrap().extend(
                        sent.into_iter()
                            .map(|t| Duration::from_nanos(now.saturating_sub(t))),
                    );
                })
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // the job reads from the latest offsets
    let p = producer(brokers);
    // 2 000 records/s for 5 s.
    for i in 0..10_000u64 {
        let stamp = epoch.elapsed().as_nanos().to_string();
        send(&p, topic, (i % PARTITIONS as u64) as i32, stamp.as_bytes());
        p.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_micros(500));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    running.stop(true);
    let _ = running.await_termination();
    let mut v = samples.lock().unwrap().clone();
    v.sort();
    let n = v.len();
    (v[n / 2], v[(n * 99) / 100], v[n - 1], n)
}

/// Kafka → Kafka pass-through of `total` records from `source`: records/s, at-least-once or
/// exactly-once (transactional), batches cut back to back.
fn kafka_to_kafka(brokers: &str, source: &str, total: u64, exactly_once: bool) -> f64 {
    use sluice::sink::kafka::{KafkaSink, OutRecord};
    let recorder = BatchRecorder::new();
    // A group of its own per run: each run reads the topic from its start.
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let group = format!("k2k-{exactly_once}-{run}");
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .threads(2)
        .as_fast_as_possible(1)
        .listener(recorder.clone());
    let kafka = KafkaConfig::new(
        brokers,
        group.clone(),
        ConsumerStrategy::Subscribe(vec![source.to_owned()]),
    )
    .param("auto.offset.reset", "earliest")
    .max_rate_per_partition(100_000);
    let target = format!("out-{exactly_once}");
    let b = brokers.to_owned();
    let started = Instant::now();
    let mut running = StreamingContext::new(config)
        .start(move |job| {
            let stream = job.kafka_direct_stream(kafka.clone());
            let target = target.clone();
            if exactly_once {
                stream.write_kafka_exactly_once(
                    KafkaSink::new(b.clone()),
                    "bench",
                    &group,
                    move |r| vec![OutRecord::new(&target, r.value.clone().unwrap_or_default())],
                );
            } else {
                stream
                    .map(move |r| OutRecord::new(&target, r.value.unwrap_or_default()))
                    .write_kafka(KafkaSink::new(b.clone()));
            }
        })
        .unwrap();
    while recorder
        .batches()
        .iter()
        .map(|b| b.num_records())
        .sum::<u64>()
        < total
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    running.stop(false);
    let _ = running.await_termination();
    total as f64 / secs
}

fn create_topic(brokers: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let t = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    for r in futures::executor::block_on(admin.create_topics([&t], &AdminOptions::new())).unwrap() {
        r.unwrap();
    }
}

fn main() {
    let total: u64 = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let broker = start_broker();
    let brokers = format!("127.0.0.1:{}", broker.port);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# sluice Kafka benchmark (noida-db 0.2.3 on loopback, {PARTITIONS} partitions, 100-byte records; load average {})\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    create_topic(&brokers, "bench");
    create_topic(&brokers, "latency");
    let started = Instant::now();
    let p = producer(&brokers);
    let payload = [b'x'; 100];
    for i in 0..total {
        send(&p, "bench", (i % PARTITIONS as u64) as i32, &payload);
        if i % 10_000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(600)).unwrap();
    println!(
        "produced {total} records in {:.1} s\n",
        started.elapsed().as_secs_f64()
    );

    println!("| reader | records/s | ratio to the bare consumer |");
    println!("|---|---|---|");
    // Each reader twice, alternating, each time once the broker is idle; the better of each.
    let mut bare = 0.0f64;
    let mut best = [0.0f64; 3];
    for run in 0..2 {
        wait_until_idle(&broker);
        bare = bare.max(bare_consumer(&brokers, "bench", total));
        for (i, (threads, offsets)) in [
            (1, Offsets::Files),
            (2, Offsets::Files),
            (1, Offsets::Broker),
        ]
        .into_iter()
        .enumerate()
        {
            wait_until_idle(&broker);
            let rate = sluice_count(&brokers, "bench", total, threads, offsets, run).0;
            best[i] = best[i].max(rate);
        }
    }
    println!(
        "| bare rdkafka BaseConsumer, 1 thread | {:.2} M | 1.00 |",
        bare / 1e6
    );
    for (i, label) in [
        "sluice direct stream + count(), -w 1",
        "sluice direct stream + count(), -w 2",
        "sluice direct stream + count(), -w 1, offsets committed to the broker (its autosave then rewrites every record each second)",
    ]
    .iter()
    .enumerate()
    {
        println!("| {label} | {:.2} M | {:.2} |", best[i] / 1e6, best[i] / bare);
    }
    let k2k = (total / 4).min(500_000);
    let (mut alos, mut eos) = (0.0f64, 0.0f64);
    for _ in 0..2 {
        wait_until_idle(&broker);
        alos = alos.max(kafka_to_kafka(&brokers, "bench", k2k, false));
        wait_until_idle(&broker);
        eos = eos.max(kafka_to_kafka(&brokers, "bench", k2k, true));
    }
    println!(
        "\nKafka → Kafka pass-through of {k2k} records, -w 2 (each twice, the better): at-least-once {:.2} M/s, exactly-once (transactional) {:.2} M/s, ratio {:.2}",
        alos / 1e6,
        eos / 1e6,
        eos / alos
    );
    let (p50, p99, max, n) = latency(&brokers);
    println!(
        "\nproduce → output latency at 100 ms batches, 2 000 records/s ({n} records): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}
