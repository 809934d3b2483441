//! The Kafka dataflows of the `sluice` binary against a real broker.

mod common;

use std::process::{Command, Output};

use common::kafka::Broker;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn counts(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("count: ")?.parse().ok())
        .collect()
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn kafka_direct_prints_ranges_and_counts() {
    let broker = Broker::start();
    broker.create_topic("spark", 2);
    broker.produce("spark", 0, &values("a", 7));
    broker.produce("spark", 1, &values("b", 5));
    let out = sluice(&[
        "run",
        "kafka-direct",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "spark",
        "--group",
        "g1",
        "--offset-reset",
        "earliest",
        "--batch",
        "200ms",
        "--max-batches",
        "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("topic:spark\tpartition:0\tstart:0\tend:7\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("topic:spark\tpartition:1\tstart:0\tend:5\n"),
        "{stdout}"
    );
    assert_eq!(counts(&stdout), vec![12], "empty batches print nothing");
}

#[test]
fn kafka_offsets_resume_from_the_checkpoint_store() {
    let broker = Broker::start();
    broker.create_topic("orders", 1);
    broker.produce("orders", 0, &values("o", 10));
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().to_str().unwrap();
    let args = [
        "run",
        "kafka-offsets",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "orders",
        "--group",
        "g",
        "--offset-reset",
        "earliest",
        "--store",
        "checkpoint",
        "--checkpoint",
        chk,
        "--batch",
        "200ms",
        "--max-batches",
        "2",
    ];
    let first = sluice(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(counts(&text(&first.stdout)), vec![10]);
    broker.produce("orders", 0, &values("later", 4));
    let second = sluice(&args);
    let stdout = text(&second.stdout);
    assert!(
        stdout.contains("start:10\tend:14"),
        "resumed where the first run committed: {stdout}"
    );
    assert_eq!(counts(&stdout), vec![4]);
    let bad = sluice(&[
        "run",
        "kafka-offsets",
        "--topics",
        "orders",
        "--store",
        "etcd",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("not an offset store"));
}

#[test]
fn kafka_rate_limit_caps_every_batch() {
    let broker = Broker::start();
    broker.create_topic("rated", 3);
    for p in 0..3 {
        broker.produce("rated", p, &values(&format!("p{p}"), 100));
    }
    // 200 ms batches × 3 partitions × 100/s = 60 records per batch.
    let out = sluice(&[
        "run",
        "kafka-rate-limit",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "rated",
        "--offset-reset",
        "earliest",
        "--max-rate-per-partition",
        "100",
        "--batch",
        "200ms",
        "--max-batches",
        "4",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(counts(&text(&out.stdout)), vec![60, 60, 60, 60]);
}
