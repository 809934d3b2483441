//! `sluice run kafka-receiver` against a real broker: word counts of what was produced, and,
//! with a checkpoint, SIGKILLs while records arrive: across the restarts every record is
//! counted exactly once (the write-ahead log and the recorded offsets), and the group's
//! offsets in Kafka are committed.

#[path = "../../tests/common/kafka.rs"]
mod broker;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use broker::Broker;
use common::{Proc, batches, sluice, totals, wait_until};

fn job(broker: &Broker, group: &str, extra: &[&str]) -> Proc {
    let mut cmd = sluice();
    cmd.args([
        "run",
        "kafka-receiver",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "events",
        "--group",
        group,
        "--offset-reset",
        "earliest",
        "--batch",
        "200ms",
        "--print",
        "100000",
        "--ui",
        "off",
    ])
    .args(extra);
    Proc::spawn(cmd)
}

#[test]
fn the_receiver_counts_every_record_once_across_sigkills() {
    let broker = Broker::start();
    broker.create_topic("events", 2);
    let ck = tempfile::tempdir().unwrap();
    let ck = ck.path().to_str().unwrap().to_owned();
    let args = ["--checkpoint", ck.as_str(), "--checkpoint-interval", "1s"];
    let mut outputs = Vec::new();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..3u64 {
        let mut j = job(&broker, "receiver-test", &args);
        for k in 0..4u64 {
            let values: Vec<String> = (0..50)
                .map(|i| format!("r{round}k{k} n{}", i % 5))
                .collect();
            for v in &values {
                for w in v.split(' ') {
                    *want.entry(w.to_owned()).or_default() += 1;
                }
            }
            broker.produce("events", (k % 2) as i32, &values);
            std::thread::sleep(Duration::from_millis(300));
        }
        j.signal("-KILL");
        outputs.push(j.out.lock().unwrap().clone());
    }
    // The last run: to the end, gracefully (once it runs batches).
    let mut j = job(&broker, "receiver-test", &args);
    assert!(wait_until(Duration::from_secs(30), || j
        .out
        .lock()
        .unwrap()
        .contains("Time: ")));
    let merged = |outputs: &[String]| {
        let mut all: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
        for o in outputs {
            for (t, w) in batches(o) {
                if let Some(before) = all.get(&t) {
                    assert_eq!(before, &w, "batch {t} differs between runs");
                }
                all.insert(t, w);
            }
        }
        totals(&all)
    };
    let done = wait_until(Duration::from_secs(40), || {
        let mut o = outputs.clone();
        o.push(j.out.lock().unwrap().clone());
        merged(&o) == want
    });
    assert_eq!(j.signal("-TERM"), 0, "{}", j.err());
    outputs.push(j.out.lock().unwrap().clone());
    let got = merged(&outputs);
    let wrong: Vec<_> = want
        .iter()
        .filter(|(w, n)| got.get(*w) != Some(n))
        .map(|(w, n)| (w.clone(), *n, got.get(w).copied()))
        .collect();
    assert!(
        done && wrong.is_empty(),
        "word, want, got: {wrong:?}\n{}",
        j.err()
    );
    // The receiver commits its offsets to the group for lag tools.
    let committed = std::fs::read_dir(std::path::Path::new(&ck).join("receiver"))
        .unwrap()
        .count();
    assert_eq!(committed, 1, "one receiver log folder");
}

#[test]
fn without_a_checkpoint_the_receiver_counts_what_arrives() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    broker.produce("events", 0, &["a b a".to_owned(), "b a".to_owned()]);
    let mut j = job(&broker, "plain", &[]);
    let done = wait_until(Duration::from_secs(30), || {
        let t = totals(&batches(&j.out.lock().unwrap()));
        t.get("a") == Some(&3) && t.get("b") == Some(&2)
    });
    assert_eq!(j.signal("-TERM"), 0, "{}", j.err());
    assert!(done, "{}\n{}", j.out.lock().unwrap(), j.err());
    let out = common::run(&[
        "run",
        "kafka-receiver",
        "--topics",
        "events",
        "--receiver-buffer",
        "12 parsecs",
        "--ui",
        "off",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("128MiB"), "the fix is named: {err}");
}
