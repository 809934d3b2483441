//! A Kafka direct stream's batches in the web UI: offset ranges and lag per partition, in
//! REST, `/metrics` and the page; no receivers (as Spark counts them).

use std::time::Duration;

use crate::broker;
use crate::common::{Proc, sluice, wait_until};
use crate::support::{chromium, get, json};

#[test]
fn a_kafka_batch_shows_its_offset_ranges_and_lag() {
    let broker = broker::Broker::start();
    broker.create_topic("ui", 2);
    broker.produce(
        "ui",
        0,
        &(0..200).map(|i| format!("a{i}")).collect::<Vec<_>>(),
    );
    broker.produce(
        "ui",
        1,
        &(0..100).map(|i| format!("b{i}")).collect::<Vec<_>>(),
    );
    let mut cmd = sluice();
    cmd.args([
        "run",
        "kafka-direct",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "ui",
    ])
    .args([
        "--group",
        "ui",
        "--offset-reset",
        "earliest",
        "--batch",
        "200ms",
    ])
    .args(["--ui", "127.0.0.1:0"]);
    let job = Proc::spawn(cmd);
    let addr = job
        .ui_addr()
        .unwrap_or_else(|| panic!("no web UI address: {}", job.err()));
    let base = "/api/v1/applications/kafka-direct/streaming";
    assert!(
        wait_until(Duration::from_secs(30), || {
            get(&addr, &format!("{base}/statistics"))
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|s| s["numProcessedRecords"] == 300)
        }),
        "{}",
        job.err()
    );
    let batches = json(&addr, &format!("{base}/batches"));
    let mut read = std::collections::BTreeMap::new();
    for b in batches.as_array().unwrap() {
        for p in b["inputs"][0]["partitions"].as_array().unwrap() {
            let (from, until) = (p["from"].as_i64().unwrap(), p["until"].as_i64().unwrap());
            *read
                .entry(p["partition"].as_str().unwrap().to_owned())
                .or_insert(0) += until - from;
        }
    }
    let want: std::collections::BTreeMap<String, i64> =
        [("ui-0".to_owned(), 200), ("ui-1".to_owned(), 100)].into();
    assert_eq!(read, want, "the ranges cover every offset once");
    let stats = json(&addr, &format!("{base}/statistics"));
    assert_eq!(
        stats["numReceivers"], 0,
        "a direct stream has no receiver: {stats}"
    );
    let newest = &batches[0]["inputs"][0]["partitions"];
    assert!(
        newest.as_array().unwrap().iter().all(|p| p["lag"] == 0),
        "{newest}"
    );
    let (_, metrics) = get(&addr, "/metrics").unwrap();
    assert!(
        metrics
            .contains("sluice_partition_records_total{source=\"kafka ui\",partition=\"ui-0\"} 200"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_partition_lag_records{source=\"kafka ui\",partition=\"ui-1\"} 0")
    );

    let busy = batches
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["inputSize"].as_u64() > Some(0))
        .unwrap()["batchId"]
        .clone();
    let dom = chromium(&format!("http://{addr}/#batch={busy}"), &["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains(
            "<tr class=\"partition\"><td>kafka ui</td><td>ui-0</td><td class=\"num\">0</td>"
        ),
        "{html}"
    );
}
