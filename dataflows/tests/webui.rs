//! The web UI of a running job: every REST route (Spark's shapes, 404s as JSON), `/metrics`
//! parsed as Prometheus text and checked against the batches the job ran, and the page in a
//! real headless Chromium (DOM checked, screenshot saved under `target/`).

/// The test broker, shared with the library's tests.
#[path = "../../tests/common/kafka.rs"]
mod broker;
mod common;

#[path = "webui/support.rs"]
mod support;

#[path = "webui/queued.rs"]
mod queued;

#[path = "webui/redaction.rs"]
mod redaction;

#[path = "webui/history.rs"]
mod history;

#[path = "webui/kafka.rs"]
mod kafka;

#[path = "webui/receivers.rs"]
mod receivers;

use std::time::Duration;

use common::{Proc, sluice, wait_until};
use support::{LINES, chromium, get, json, running_job};

#[test]
fn every_rest_route_answers_in_sparks_shape() {
    let (_feed, _job, addr) = running_job(&[]);
    let apps = json(&addr, "/api/v1/applications");
    assert_eq!(apps[0]["id"], "stateful-wordcount");
    assert_eq!(apps[0]["job"]["batchMs"], 200);
    let base = "/api/v1/applications/stateful-wordcount/streaming";
    let stats = json(&addr, &format!("{base}/statistics"));
    for field in [
        "startTime",
        "batchDuration",
        "numReceivers",
        "numActiveReceivers",
        "numInactiveReceivers",
        "numTotalCompletedBatches",
        "numRetainedCompletedBatches",
        "numActiveBatches",
        "numProcessedRecords",
        "numReceivedRecords",
        "avgInputRate",
        "avgSchedulingDelay",
        "avgProcessingTime",
        "avgTotalDelay",
    ] {
        assert!(
            stats.get(field).is_some(),
            "statistics lack {field}: {stats}"
        );
    }
    assert_eq!(stats["batchDuration"], 200);
    assert!(stats["startTime"].as_str().unwrap().ends_with("GMT"));
    let batches = json(&addr, &format!("{base}/batches"));
    let list = batches.as_array().unwrap();
    assert!(!list.is_empty());
    let ids: Vec<u64> = list
        .iter()
        .map(|b| b["batchId"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(ids.iter().all(|t| t % 200 == 0));
    let records: u64 = list.iter().map(|b| b["inputSize"].as_u64().unwrap()).sum();
    assert_eq!(records, LINES, "every retained batch, every line once");
    // `?status=` keeps one status, as Spark's API; an unknown one is a 400 that names them.
    let completed = json(&addr, &format!("{base}/batches?status=completed"));
    assert!(
        completed
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "COMPLETED"),
        "{completed}"
    );
    let (code, body) = support::get(&addr, &format!("{base}/batches?status=soon")).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("QUEUED, PROCESSING, COMPLETED or FAILED"),
        "{body}"
    );
    let busy = list
        .iter()
        .find(|b| b["inputSize"].as_u64() > Some(0))
        .unwrap();
    let one = json(&addr, &format!("{base}/batches/{}", busy["batchId"]));
    assert_eq!(one["batchId"], busy["batchId"]);
    assert_eq!(one["status"], "COMPLETED");
    assert!(
        one["inputs"][0]["source"]
            .as_str()
            .unwrap()
            .starts_with("socket 127.0.0.1:")
    );
    assert_eq!(one["state"][0]["operator"], "word-totals");
    // The receiver's share: the lines it took, within its bound, and how long it held back.
    let receiver = &one["inputs"][0]["receiver"];
    assert_eq!(receiver["maxBufferedBytes"], 128u64 << 20, "{one}");
    assert_eq!(receiver["lines"], busy["inputSize"], "{one}");
    assert!(receiver["heldBackMs"].is_u64(), "{one}");
    // stateful-wordcount has one output, its print.
    assert_eq!(one["numTotalOutputOps"], 1);
    assert_eq!(one["numCompletedOutputOps"], 1);
    let ops = json(
        &addr,
        &format!("{base}/batches/{}/operations", busy["batchId"]),
    );
    assert_eq!(ops[0]["outputOpId"], 0);
    assert_eq!(ops[0]["name"], "print");
    assert!(
        ops[0]["durationExact"].as_f64() <= one["processingTimeExact"].as_f64(),
        "an output finishes within the batch's processing time: {ops} {one}"
    );
    assert!(one["state"][0]["keys"].as_u64() > Some(0));
    let op = json(
        &addr,
        &format!("{base}/batches/{}/operations/0", busy["batchId"]),
    );
    assert_eq!(op, ops[0]);
    // Spark's application, version and receiver routes and fields.
    let app = json(&addr, "/api/v1/applications/stateful-wordcount");
    assert_eq!(app["attempts"][0]["completed"], false, "{app}");
    assert!(app["attempts"][0]["startTimeEpoch"].is_u64(), "{app}");
    assert!(json(&addr, "/api/v1/version")["spark"].is_string());
    let receivers = json(&addr, &format!("{base}/receivers"));
    assert_eq!(receivers[0]["streamId"], 0, "{receivers}");
    assert!(
        receivers[0]["streamName"]
            .as_str()
            .unwrap()
            .starts_with("socket ")
    );
    assert!(
        receivers[0]["avgEventRate"].as_f64() > Some(0.0),
        "{receivers}"
    );
    assert_eq!(json(&addr, &format!("{base}/receivers/0")), receivers[0]);
    assert_eq!(stats["numReceivers"], 1, "a socket is a receiver: {stats}");
    let exact = stats["avgProcessingTimeExact"].as_f64().unwrap();
    assert!(
        (exact - stats["avgProcessingTime"].as_f64().unwrap()).abs() <= 0.5 + 1e-9,
        "Spark's rounded mean beside the exact one: {stats}"
    );

    for (path, says) in [
        (format!("{base}/batches/1"), "no batch 1"),
        (format!("{base}/batches/soon"), "not a batch id"),
        (format!("{base}/batches/1/operations"), "no batch 1"),
        (
            "/api/v1/applications/other/streaming/statistics".into(),
            "no application `other`",
        ),
        ("/api/v2/nothing".into(), "no such route"),
    ] {
        let (code, body) = get(&addr, &path).unwrap();
        assert_eq!(code, 404, "{path}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_the_batches() {
    let (_feed, _job, addr) = running_job(&[]);
    let base = "/api/v1/applications/stateful-wordcount/streaming";
    // Read metrics, statistics, metrics: when no batch completed in between, all three agree.
    let mut checked = false;
    for _ in 0..20 {
        let (code, before) = get(&addr, "/metrics").unwrap();
        assert_eq!(code, 200);
        let stats = json(&addr, &format!("{base}/statistics"));
        let (_, after) = get(&addr, "/metrics").unwrap();
        let scrape = prometheus_parse::Scrape::parse(after.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text format");
        let value = |name: &str| -> f64 {
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == name)
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => 0.0,
                })
                .sum()
        };
        let batches = value("sluice_batches_completed_total");
        if before
            .lines()
            .find(|l| l.starts_with("sluice_batches_completed_total"))
            != after
                .lines()
                .find(|l| l.starts_with("sluice_batches_completed_total"))
            || batches != stats["numTotalCompletedBatches"].as_f64().unwrap()
        {
            continue; // a batch completed between the reads
        }
        assert_eq!(value("sluice_records_total"), LINES as f64);
        assert_eq!(value("sluice_malformed_records_total"), 0.0);
        assert_eq!(value("sluice_batch_interval_seconds"), 0.2);
        assert!(value("sluice_state_keys") > 0.0);
        let count = scrape
            .samples
            .iter()
            .find(|s| s.metric == "sluice_processing_time_seconds_count")
            .map(|s| match s.value {
                prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
                _ => -1.0,
            });
        let histogram = scrape
            .samples
            .iter()
            .find(|s| s.metric == "sluice_processing_time_seconds")
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(h) => h.last().map(|b| b.count).unwrap_or(-1.0),
                _ => -1.0,
            });
        assert!(
            count == Some(batches) || histogram == Some(batches),
            "the processing-time histogram counts every batch: {count:?} {histogram:?} {batches}"
        );
        let print_count = after
            .lines()
            .find_map(|l| {
                l.strip_prefix("sluice_output_operation_seconds_count{operation=\"print\"} ")
            })
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(
            print_count,
            Some(batches),
            "the print output, every batch: {after}"
        );
        assert_eq!(value("sluice_retries_total"), 0.0);
        let last = value("sluice_last_completed_batch_timestamp_seconds");
        let newest = json(&addr, &format!("{base}/batches"))[0]["batchId"]
            .as_f64()
            .unwrap();
        assert!(
            last * 1000.0 <= newest + 0.5 && last > 1.6e9,
            "{last} {newest}"
        );
        checked = true;
        break;
    }
    assert!(checked, "metrics and statistics never agreed");
}

#[test]
fn the_page_shows_live_batches_in_chromium() {
    let (_feed, _job, addr) = running_job(&[]);
    let busy = json(
        &addr,
        "/api/v1/applications/stateful-wordcount/streaming/batches",
    )
    .as_array()
    .unwrap()
    .iter()
    .find(|b| b["inputSize"].as_u64() > Some(0))
    .map(|b| b["batchId"].as_u64().unwrap())
    .unwrap();
    let url = format!("http://{addr}/#batch={busy}");
    let dom = chromium(&url, &["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    // Live data: batch rows, the four timelines with a line each, the batch page.
    assert!(
        html.contains("<h1 id=\"job-name\">stateful-wordcount</h1>"),
        "{html}"
    );
    assert!(html.matches("class=\"batch\"").count() >= 2, "{html}");
    assert_eq!(
        html.matches("class=\"chart timeline\"").count(),
        4,
        "{html}"
    );
    assert_eq!(
        html.matches("class=\"chart histogram\"").count(),
        4,
        "{html}"
    );
    assert!(
        html.matches("class=\"line\"").count() >= 4,
        "timelines drawn: {html}"
    );
    assert!(html.contains("class=\"bar\""), "histograms drawn: {html}");
    // Spark's Streaming tab: a time axis and a mean line on every timeline, a point per batch
    // with its value as a tooltip (a click opens the batch), histograms with a count axis.
    assert_eq!(
        html.matches("batch time (UTC)</text>").count(),
        4,
        "time axes: {html}"
    );
    assert!(html.matches("class=\"tick x-tick\"").count() >= 8, "{html}");
    assert_eq!(
        html.matches("class=\"mean\"").count(),
        4,
        "mean lines: {html}"
    );
    assert!(
        html.contains("class=\"point\" cx=") && html.contains(&format!("data-batch=\"{busy}\"")),
        "points per batch: {html}"
    );
    assert!(
        html.contains(" ms</title></circle>"),
        "a point's tooltip: {html}"
    );
    assert!(
        html.contains(" batches</title></rect>"),
        "a bar's tooltip: {html}"
    );
    assert_eq!(
        html.matches("batches per range</text>").count(),
        4,
        "count axes: {html}"
    );
    assert!(
        html.contains("<tr class=\"receiver\"><td>socket 127.0.0.1:"),
        "the receivers section: {html}"
    );
    assert!(
        html.contains("Output ops: succeeded/total") && html.contains("<td class=\"num\">1/1</td>"),
        "the output-operations column: {html}"
    );
    assert!(html.contains("<table id=\"active-batches\">"), "{html}");
    assert!(
        html.contains("id=\"batch-detail\" class=\"open\""),
        "{html}"
    );
    assert!(html.contains(&format!("({busy} ms)")), "{html}");
    assert!(
        html.contains("<td>socket 127.0.0.1:"),
        "input per source: {html}"
    );
    assert!(html.contains(" of 128 MiB</td>"), "receiver memory: {html}");
    assert!(
        html.contains("<td>word-totals</td>"),
        "state per operator: {html}"
    );
    assert!(
        html.contains("<tr class=\"output\"><td>0</td><td>print</td>"),
        "output operations: {html}"
    );
    assert!(
        html.contains("<span id=\"job-uptime\">updated "),
        "the page refreshed: {html}"
    );

    let shot =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/webui-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(&url, &[&format!("--screenshot={}", shot.display())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

/// A job of two processes: each serves its own page; process 0's shows the whole job's input
/// (every process's records) and state, process 1's its own share.
#[test]
fn process_0_shows_the_whole_jobs_input() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = common::local_hostfile(dir.path(), 2);
    let spawn = |p: &str| {
        let mut cmd = sluice();
        cmd.args([
            "run",
            "stateful-wordcount",
            "--batch",
            "200ms",
            "--rate",
            "1000",
        ])
        .args(["--ui", "127.0.0.1:0", "-n", "2", "-p", p, "-h"])
        .arg(&hosts);
        Proc::spawn(cmd)
    };
    let procs = [spawn("0"), spawn("1")];
    let addrs: Vec<String> = procs
        .iter()
        .map(|p| {
            p.ui_addr()
                .unwrap_or_else(|| panic!("no web UI address: {}", p.err()))
        })
        .collect();
    let base = "/api/v1/applications/stateful-wordcount/streaming";
    // Completed batches only: a batch in progress has no whole-job input on process 0 yet.
    let per_batch = |addr: &str| -> std::collections::BTreeMap<u64, u64> {
        json(addr, &format!("{base}/batches"))
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["status"] == "COMPLETED")
            .map(|b| {
                (
                    b["batchId"].as_u64().unwrap(),
                    b["inputSize"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert!(wait_until(Duration::from_secs(30), || per_batch(&addrs[0])
        .len()
        >= 8));
    let (whole, own) = (per_batch(&addrs[0]), per_batch(&addrs[1]));
    let both: Vec<(u64, u64, u64)> = whole
        .iter()
        .filter_map(|(t, w)| own.get(t).map(|o| (*t, *w, *o)))
        .skip(1)
        .collect();
    assert!(both.len() >= 4, "{whole:?} {own:?}");
    // 1 000 words/s over the job in lines of 10 (--words-per-line's default): 20 lines a
    // batch in all, process 1 generating half of them.
    for (t, w, o) in &both {
        assert_eq!((*w, *o), (20, 10), "batch {t}: whole {whole:?} own {own:?}");
    }
    // The state of the generator's 20 words: all of them on process 0's page (a batch or so
    // after each batch), process 1's share on its own.
    let keys = |addr: &str| -> Vec<u64> {
        json(addr, &format!("{base}/batches"))
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| {
                b["state"]
                    .as_array()?
                    .iter()
                    .find(|s| s["operator"] == "word-totals")?["keys"]
                    .as_u64()
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(10), || keys(&addrs[0]).contains(&20)),
        "{:?}",
        keys(&addrs[0])
    );
    let theirs = keys(&addrs[1]);
    assert!(
        theirs.iter().all(|k| *k > 0 && *k < 20),
        "process 1 holds part of the keys: {theirs:?}"
    );
    let (_, metrics) = get(&addrs[0], "/metrics").unwrap();
    assert!(
        metrics.contains("sluice_state_keys{operator=\"word-totals\"} 20"),
        "{metrics}"
    );
}

/// A checkpointed job: the batches after which a snapshot was due show what it wrote, and
/// the snapshot metrics count it.
#[test]
fn checkpoint_writes_show_on_the_batch_and_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let chk = chk.to_str().unwrap();
    let (_feed, _job, addr) = running_job(&["--checkpoint", chk, "--checkpoint-interval", "400ms"]);
    let path = "/api/v1/applications/stateful-wordcount/streaming/batches";
    assert!(wait_until(Duration::from_secs(20), || {
        json(&addr, path).as_array().is_some_and(|b| b.len() >= 6)
    }));
    let batches = json(&addr, path);
    let with: Vec<&serde_json::Value> = batches
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| !b["snapshots"].as_array().unwrap().is_empty())
        .collect();
    let without = batches.as_array().unwrap().len() - with.len();
    assert!(
        !with.is_empty() && without > 0,
        "every other batch: {batches}"
    );
    // The run's first snapshot hands over every key set since the run began (logged by the
    // batches that set them: nothing is encoded on the snapshot batch's path).
    let first = with.iter().min_by_key(|b| b["batchId"].as_u64()).unwrap();
    let w = &first["snapshots"][0];
    assert_eq!(w["operator"], "word-totals");
    assert!(w["bytes"].as_u64() > Some(1000), "{w}");
    assert_eq!(w["fullParts"], 0, "{w}");
    assert!(w["keys"].as_u64() > Some(100), "{w}");
    assert_eq!(w["failed"], 0);
    for b in &with {
        assert!(b["snapshots"][0]["keys"].as_u64().is_some(), "{b}");
    }
    let (_, metrics) = get(&addr, "/metrics").unwrap();
    let writes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_snapshot_writes_total{operator=\"word-totals\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(writes >= with.len() as f64, "{metrics}");
    assert!(metrics.contains("sluice_snapshot_write_failures_total{operator=\"word-totals\"} 0"));
}

/// No number of idle connections to the UI can make the job fail: with 256 descriptors in all,
/// 2 000 connections are opened and held while batches and snapshots (one a batch) go on; the
/// UI keeps at most its cap of them and closes idle ones, and answers a request again.
#[test]
fn two_thousand_idle_connections_cannot_stop_the_job() {
    raise_own_descriptor_limit(4096);
    let ck = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -n 256 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "stateful-wordcount", "--batch", "100ms"])
        .args(["--ui", "127.0.0.1:0", "--checkpoint-interval", "100ms"])
        .arg("--checkpoint")
        .arg(ck.path());
    let mut job = Proc::spawn(cmd);
    let addr = job
        .ui_addr()
        .unwrap_or_else(|| panic!("no web UI address: {}", job.err()));
    let printed = |job: &Proc| job.out.lock().unwrap().matches("Time: ").count();
    let before = printed(&job);
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let held: Vec<std::net::TcpStream> = (0..2000)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&target, Duration::from_millis(10)).ok()
        })
        .collect();
    assert!(held.len() > 64, "only {} connections opened", held.len());
    // Each sends nothing (they are idle); what the UI accepted beyond its cap it closed.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(job.exited(), None, "the job stopped: {}", job.err());
    assert!(
        printed(&job) >= before + 10,
        "batches went on while the connections were held: {} -> {}",
        before,
        printed(&job)
    );
    assert!(!job.err().contains("Too many open files"), "{}", job.err());
    // Idle connections are closed after `FIRST_BYTE`; a request is answered again.
    let answered = wait_until(Duration::from_secs(30), || {
        support::get(&addr, "/api/v1/applications").is_ok_and(|(code, _)| code == 200)
    });
    assert!(answered, "the UI answers within its cap: {}", job.err());
    drop(held);
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
}

/// The test's own descriptors: up to `n` (or the hard limit), to hold its connections.
fn raise_own_descriptor_limit(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: one struct, owned here, read and written by the two calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < n {
            limit.rlim_cur = n.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
