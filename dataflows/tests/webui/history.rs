//! `sluice history`: the web UI of a job that failed, served from its event log after the
//! process is gone (Spark's history server) — the failed batch and its reason in REST and on
//! the page, the batches before it as they were.

use std::time::Duration;

use crate::broker::Broker;
use crate::common::{Proc, fresh_postgres, sluice, wait_until};
use crate::support::{chromium, json};

#[test]
fn the_batch_that_failed_is_read_after_the_job_is_gone() {
    let broker = Broker::start();
    broker.create_topic("hist", 1);
    // Ids from 1 to 200 into a table that refuses ids of 150 and more: a batch fails for good.
    let url = fresh_postgres("sluice_history");
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    db.batch_execute("CREATE TABLE mydata (name VARCHAR(200), id BIGINT CHECK (id < 150))")
        .unwrap();
    broker.produce(
        "hist",
        0,
        &(1..150).map(|i| format!("ann,{i}")).collect::<Vec<_>>(),
    );
    let checkpoint = tempfile::tempdir().unwrap();
    let chk = checkpoint.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = sluice();
        cmd.args(["run", "kafka-to-postgres", "--brokers", &broker.brokers()])
            .args(["--topics", "hist", "--offset-reset", "earliest"])
            .args([
                "--url",
                &url,
                "--mode",
                "transactional",
                "--checkpoint",
                chk,
            ])
            .args(["--batch", "300ms", "--ui", "off"])
            .args(args);
        Proc::spawn(cmd)
    };
    let mut job = run(&["--max-batches", "3"]);
    assert_eq!(job.wait(), 0, "{}", job.err());
    broker.produce(
        "hist",
        0,
        &(150..=200).map(|i| format!("ann,{i}")).collect::<Vec<_>>(),
    );
    let mut job = run(&[]);
    assert_eq!(
        job.wait(),
        1,
        "the check constraint fails the job: {}",
        job.err()
    );
    drop(job);

    let mut cmd = sluice();
    cmd.args(["history", chk, "--list"]);
    let out = cmd.output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 2, "one log per run: {listed}");

    let mut cmd = sluice();
    cmd.args(["history", chk, "--ui", "127.0.0.1:0"]);
    let history = Proc::spawn(cmd);
    let mut addr = None;
    assert!(wait_until(Duration::from_secs(10), || {
        addr = history
            .err()
            .lines()
            .find_map(|l| l.split_once(" at http://").map(|(_, a)| a.to_owned()))
            .map(|a| a.split('/').next().unwrap_or_default().to_owned());
        addr.is_some()
    }));
    let addr = addr.unwrap();
    let base = "/api/v1/applications/kafka-to-postgres/streaming";
    let failed = json(&addr, &format!("{base}/batches?status=failed"));
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let reason = failed[0]["firstFailureReason"].as_str().unwrap();
    assert!(reason.contains("mydata_id_check"), "{reason}");
    // The second run's batches before the failure are there as they completed.
    let done = json(&addr, &format!("{base}/batches?status=completed"));
    let records: u64 = done
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["inputSize"].as_u64().unwrap())
        .sum();
    assert_eq!(
        records, 0,
        "the second run read only the failing records: {done}"
    );
    let dom = chromium(&format!("http://{addr}/"), &["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("mydata_id_check"),
        "the page shows the failure: {html}"
    );
}
