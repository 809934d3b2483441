//! The Kafka dataflows of the `sluice` binary against a real broker.

/// The test broker, shared with the library's tests.
#[path = "../../tests/common/kafka.rs"]
mod broker;

use std::process::{Command, Output};
use std::time::Duration;

use broker::Broker;

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

/// A job whose broker is down stops on SIGTERM within 2 s, with exit code 0: the batch in
/// progress ends with what was read, and nothing it did not read is committed.
#[test]
fn sigterm_during_a_broker_outage_exits_0_promptly() {
    use std::process::Stdio;
    let mut broker = Broker::start();
    broker.create_topic("down", 1);
    broker.produce("down", 0, &values("a", 5));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "run",
            "kafka-direct",
            "--brokers",
            &broker.brokers(),
            "--topics",
            "down",
            "--group",
            "outage",
            "--offset-reset",
            "earliest",
            "--batch",
            "200ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice");
    std::thread::sleep(Duration::from_secs(2));
    broker.stop();
    std::thread::sleep(Duration::from_secs(2)); // batches now wait for the broker
    let asked = std::time::Instant::now();
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let deadline = asked + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for sluice") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = asked.elapsed();
    let out = child.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} to stop: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("topic:down\tpartition:0\tstart:0\tend:5\n"),
        "{}",
        text(&out.stdout)
    );
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
    let stderr = text(&bad.stderr);
    assert!(
        stderr.contains("invalid value 'etcd'") && stderr.contains("redis"),
        "names the value and the stores there are: {stderr}"
    );
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

fn etl_record(id: usize) -> String {
    let f = |s: &str| format!("<<<!>>>{s}<<<!>>>");
    [
        f(&id.to_string()),
        f(&format!("u{id}")),
        f("20181111132902"),
        f("58.223.1.112"),
        f("202.102.92.18"),
        f("59947"),
        f("80"),
        f("www.sumecjob.com"),
        f(""),
        f(""),
        f(""),
        f(""),
        f(""),
        f(&format!("http://www.sumecjob.com/{id}")),
        f("2556928066"),
    ]
    .join(",")
}

#[test]
fn kafka_etl_cleans_records_and_sends_malformed_ones_to_the_dead_letter_topic() {
    let broker = Broker::start();
    broker.create_topic("source", 2);
    broker.produce("source", 0, &(0..50).map(etl_record).collect::<Vec<_>>());
    broker.produce(
        "source",
        1,
        &[
            "not,a,record".to_owned(),
            etl_record(50).replace("20181111132902", "yesterday"),
        ],
    );
    let out = sluice(&[
        "run",
        "kafka-etl",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "source",
        "--offset-reset",
        "earliest",
        "--batch",
        "200ms",
        "--max-batches",
        "4",
        "-w",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut cleaned: Vec<String> = broker
        .read_all("target")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    cleaned.sort();
    let mut want: Vec<String> = (0..50).map(|id| format!("u{id}|1541914142000|58.223.1.112:59947|202.102.92.18:80|http://www.sumecjob.com/{id}")).collect();
    want.sort();
    assert_eq!(cleaned, want);
    let dead = broker.read_all("target-dead-letter");
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reasons: Vec<&str> = dead
        .iter()
        .flat_map(|(_, h)| {
            h.iter()
                .filter(|(k, _)| k == "sluice-error")
                .map(|(_, v)| v.as_str())
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("3 fields"))
            && reasons.iter().any(|r| r.contains("yyyyMMddHHmmss")),
        "{reasons:?}"
    );
}

/// A broker with a 2-partition topic `source` holding ETL records 0..1000.
fn etl_source() -> Broker {
    let broker = Broker::start();
    broker.create_topic("source", 2);
    for p in 0..2 {
        broker.produce(
            "source",
            p,
            &(p as usize * 500..(p as usize + 1) * 500)
                .map(etl_record)
                .collect::<Vec<_>>(),
        );
    }
    broker
}

/// Runs `sluice run kafka-etl` with `killed` flags `kills` times, each SIGKILLed after
/// `first_ms + step_ms × i` ms, then once to its end with `last` flags; that run's output.
fn etl_killed_then_finished(
    broker: &Broker,
    killed: &[&str],
    kills: u64,
    first_ms: u64,
    step_ms: u64,
    last: &[&str],
) -> Output {
    let etl = |flags: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.args(["run", "kafka-etl", "--brokers", &broker.brokers()])
            .args(flags);
        c
    };
    for i in 0..kills {
        let child = etl(killed)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(first_ms + step_ms * i));
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let _ = child.wait_with_output();
    }
    etl(last).output().unwrap()
}

#[test]
fn kafka_etl_loses_nothing_when_killed() {
    let broker = etl_source();
    let common = [
        "--topics",
        "source",
        "--group",
        "etl",
        "--offset-reset",
        "earliest",
        "--batch",
        "100ms",
    ];
    let killed: Vec<&str> = common
        .iter()
        .copied()
        .chain(["--kafka-param", "max.partition.fetch.bytes=20000"])
        .collect();
    let last: Vec<&str> = common
        .iter()
        .copied()
        .chain(["--max-batches", "10"])
        .collect();
    let out = etl_killed_then_finished(&broker, &killed, 5, 200, 97, &last);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cleaned: std::collections::BTreeSet<String> = broker
        .read_all("target")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert_eq!(
        cleaned.len(),
        1000,
        "every record reached the target at least once"
    );
}

#[test]
fn kafka_etl_exactly_once_survives_sigkill() {
    let broker = etl_source();
    let killed = [
        "--exactly-once",
        "--topics",
        "source",
        "--group",
        "etl-eos",
        "--offset-reset",
        "earliest",
        "--batch",
        "100ms",
        "--kafka-param",
        "max.partition.fetch.bytes=20000",
    ];
    let last: Vec<&str> = killed
        .iter()
        .copied()
        .chain(["--max-batches", "15"])
        .collect();
    let out = etl_killed_then_finished(&broker, &killed, 10, 150, 61, &last);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed: Vec<String> = broker
        .read_all_with("target", "read_committed")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    let distinct: std::collections::BTreeSet<&String> = committed.iter().collect();
    assert_eq!(distinct.len(), 1000, "every record reached the target");
    assert_eq!(committed.len(), 1000, "and none twice (read_committed)");
}

#[test]
fn a_topic_that_does_not_exist_is_reported_once() {
    let broker = Broker::start();
    broker.create_topic("present", 1);
    let out = sluice(&[
        "run",
        "kafka-direct",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "present,absent",
        "--group",
        "g-missing",
        "--batch",
        "200ms",
        "--max-batches",
        "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("the topic `absent` does not exist").count(),
        1,
        "warned once: {err}"
    );
    assert!(!err.contains("`present` does not exist"), "{err}");
}

/// `--backpressure --initial-rate` on a Kafka dataflow: the first batch holds what the initial
/// rate allows (50 records/s × 200 ms = 10), later ones adapt to what the job processes, and
/// every record is read once.
#[test]
fn backpressure_flags_bound_the_first_batch() {
    let broker = Broker::start();
    broker.create_topic("pressed", 1);
    broker.produce("pressed", 0, &values("p", 500));
    let out = sluice(&[
        "run",
        "kafka-direct",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "pressed",
        "--group",
        "bp",
        "--offset-reset",
        "earliest",
        "--backpressure",
        "--initial-rate",
        "50",
        "--batch",
        "200ms",
        "--max-batches",
        "40",
        "--ui",
        "off",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let counts = counts(&text(&out.stdout));
    assert_eq!(counts.first(), Some(&10), "{counts:?}");
    assert!(
        counts.iter().skip(1).any(|c| *c > 10),
        "the rate adapts: {counts:?}"
    );
    assert!(counts.iter().sum::<u64>() <= 500, "{counts:?}");
}

/// A job started while its offset store is down waits for it with the retry policy (saying
/// why, the connection's cause included), as an outage in the middle of a run is waited out,
/// and goes on once the store is there: the port of the "store" is a forwarder to the
/// machine's PostgreSQL that starts listening only after 3 s.
#[test]
fn a_job_whose_offset_store_is_down_at_start_waits_for_it() {
    let broker = Broker::start();
    broker.create_topic("late-store", 1);
    broker.produce("late-store", 0, &values("v", 7));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let forwarder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        for client in listener.incoming().take(8) {
            let Ok(client) = client else { continue };
            let Ok(server) = std::net::TcpStream::connect("127.0.0.1:5432") else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    // A group of its own: the offsets table outlives the test.
    let group = format!(
        "late-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let started = std::time::Instant::now();
    let out = sluice(&[
        "run",
        "kafka-offsets",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "late-store",
        "--group",
        &group,
        "--offset-reset",
        "earliest",
        "--store",
        "postgres",
        "--store-url",
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        "--batch",
        "200ms",
        "--max-batches",
        "2",
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(3), "{err}");
    assert!(
        err.contains("the offset store") && err.contains("retrying"),
        "the wait is said: {err}"
    );
    assert!(
        err.contains("Connection refused") || err.contains("connection refused"),
        "with the connection's cause: {err}"
    );
    assert_eq!(counts(&text(&out.stdout)).iter().sum::<u64>(), 7);
    drop(forwarder);
}
