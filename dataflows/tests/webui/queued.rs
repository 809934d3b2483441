//! Batches queued behind a blocked sink, as an operator sees them: `kafka-to-postgres` with its
//! table locked keeps generating a batch per interval, each with the records its time fixed;
//! REST lists them with `?status=queued` and the page shows them, records and wait included.

use std::time::Duration;

use crate::broker::{AttachedBroker, Broker};
use crate::common::{Proc, fresh_postgres, sluice, wait_until};
use crate::support::{chromium, get, json};

#[test]
fn batches_queued_behind_a_locked_table_show_in_rest_and_on_the_page() {
    let broker = Broker::start();
    broker.create_topic("queued", 1);
    let url = fresh_postgres("sluice_ui_queued");
    let mut cmd = sluice();
    cmd.args(["run", "kafka-to-postgres", "--brokers", &broker.brokers()])
        .args(["--topics", "queued", "--group", "ui-queued"])
        .args(["--offset-reset", "earliest", "--mode", "idempotent"])
        .args(["--url", &url, "--batch", "200ms", "--ui", "127.0.0.1:0"]);
    let job = Proc::spawn(cmd);
    let addr = job
        .ui_addr()
        .unwrap_or_else(|| panic!("no web UI address: {}", job.err()));
    // Orders arrive steadily: 5 every 100 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (brokers, stop) = (broker.brokers(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let b: AttachedBroker = Broker::attach(&brokers);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let orders: Vec<String> = (i..i + 5).map(|n| format!("ann,o{n}")).collect();
                b.produce("queued", 0, &orders);
                i += 5;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            db.query_one("SELECT count(*) FROM myorders", &[])
                .is_ok_and(|r| r.get::<_, i64>(0) > 0)
        }),
        "no order reached the table: {}",
        job.err()
    );
    // Lock the table for a while: the sink blocks, batches queue up.
    let mut lock = db.transaction().unwrap();
    lock.batch_execute("LOCK TABLE myorders IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let base = "/api/v1/applications/kafka-to-postgres/streaming";
    let queued = |addr: &str| -> Vec<serde_json::Value> {
        get(addr, &format!("{base}/batches?status=queued"))
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(20), || queued(&addr).len() >= 5),
        "no batches queued behind the lock: {}",
        job.err()
    );
    let rest = queued(&addr);
    assert!(
        rest.iter().all(|b| b["status"] == "QUEUED"
            && b["inputSizeKnown"] == true
            && b["schedulingDelay"].as_u64().is_some()),
        "{rest:?}"
    );
    let records: u64 = rest.iter().map(|b| b["inputSize"].as_u64().unwrap()).sum();
    assert!(
        records > 0,
        "queued batches hold what arrived at their times: {rest:?}"
    );
    // The batch blocked in the sink is processing, its one output not done yet.
    let processing = json(&addr, &format!("{base}/batches?status=processing"));
    let running = &processing.as_array().unwrap()[0];
    assert_eq!(running["numTotalOutputOps"], 1, "{running}");
    assert_eq!(running["numCompletedOutputOps"], 0, "{running}");
    assert!(
        running["processingTime"].as_u64() > Some(0),
        "running so far: {running}"
    );
    let dom = chromium(&format!("http://{addr}/"), &["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    let rows = html.matches("<td>queued</td><td class=\"num\">").count();
    assert!(rows >= 5, "queued rows with their records: {html}");
    assert!(
        html.contains("<td>processing</td>") && html.contains("<td class=\"num\">0/1</td>"),
        "the running batch with its outputs done so far: {html}"
    );
    lock.commit().unwrap();
    // Unlocked, the queue drains.
    assert!(
        wait_until(Duration::from_secs(30), || queued(&addr).is_empty()),
        "the queue never drained: {}",
        job.err()
    );
    let stats = json(&addr, &format!("{base}/statistics"));
    assert!(stats["numProcessedRecords"].as_u64() > Some(0), "{stats}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    producer.join().unwrap();
}
