//! `sluice topic`, `sluice consume` and `sluice feed kafka` against a real broker, and what
//! each says when the broker is away or misnamed: one line, exit 1 (the world) or 2 (a flag).

use std::time::{Duration, Instant};

use crate::broker;
use crate::common::{free_port, sluice, text};

fn tool(args: &[&str], stdin: &str) -> (i32, String, String, Duration) {
    use std::io::Write;
    let started = Instant::now();
    let mut child = sluice()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
        started.elapsed(),
    )
}

#[test]
fn topics_are_created_listed_fed_round_robin_and_consumed() {
    let broker = broker::Broker::start();
    let b = broker.brokers();
    let (code, _, err, _) = tool(
        &[
            "topic",
            "create",
            "t3",
            "--partitions",
            "3",
            "--brokers",
            &b,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err, _) = tool(&["topic", "create", "t3", "--brokers", &b], "");
    assert_eq!(code, 2, "a topic that exists: {err}");
    assert!(err.contains("exists already, with 3 partitions"), "{err}");
    let (code, _, _, _) = tool(
        &["topic", "create", "t3", "--if-not-exists", "--brokers", &b],
        "",
    );
    assert_eq!(code, 0);
    let (code, out, _, _) = tool(&["topic", "list", "--brokers", &b], "");
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l == "t3\t3 partitions"), "{out}");

    let lines: String = (0..9).map(|i| format!("line {i}\n")).collect();
    let (code, _, err, _) = tool(&["feed", "kafka", "--topic", "t3", "--brokers", &b], &lines);
    assert_eq!(code, 0, "{err}");
    let (code, _, err, _) = tool(
        &[
            "feed",
            "kafka",
            "--topic",
            "t3",
            "--partition",
            "3",
            "--brokers",
            &b,
        ],
        "x\n",
    );
    assert_eq!(code, 2, "a partition the topic lacks: {err}");
    assert!(
        err.contains("sluice topic create t3 --partitions 4"),
        "{err}"
    );

    // Round-robin: 3 records per partition; consume prints them all as `key<TAB>value`.
    let (code, out, err, _) = tool(
        &[
            "consume",
            "--topic",
            "t3",
            "--from-beginning",
            "--max",
            "9",
            "--brokers",
            &b,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let want: Vec<String> = (0..9).map(|i| format!("\tline {i}")).collect();
    assert_eq!(got, want);
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "kafka-tools-test")
        .create()
        .unwrap();
    for p in 0..3 {
        let (low, high) = rdkafka::consumer::Consumer::fetch_watermarks(
            &consumer,
            "t3",
            p,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(high - low, 3, "partition {p} holds its third");
    }
    let (code, _, err, _) = tool(&["consume", "--topic", "nope", "--brokers", &b], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sluice topic create"), "{err}");
}

#[test]
fn a_broker_that_is_away_or_misnamed_is_one_line_and_a_prompt_exit() {
    let dead = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["feed", "kafka", "--topic", "t", "--brokers", &dead],
        vec!["topic", "create", "t", "--brokers", &dead],
        vec!["consume", "--topic", "t", "--brokers", &dead],
    ] {
        let (code, _, err, took) = tool(&args, "x\n");
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains("no Kafka broker answers"), "{err}");
    }
    for args in [
        vec![
            "feed",
            "kafka",
            "--topic",
            "t",
            "--brokers",
            "no-such-broker.invalid:9092",
        ],
        vec![
            "run",
            "kafka-direct",
            "--topics",
            "t",
            "--ui",
            "off",
            "--brokers",
            "no-such-broker.invalid:9092",
        ],
    ] {
        let (code, _, err, took) = tool(&args, "x\n");
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
        assert!(
            err.contains("no Kafka broker host resolves: no-such-broker.invalid:9092"),
            "{err}"
        );
    }
}
