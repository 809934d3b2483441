//! `sluice feed`: each feeds a real job end to end (`checkpoint show` is in `checkpoint_show.rs`).

/// The test broker, shared with the library's tests.
#[path = "../../tests/common/kafka.rs"]
mod broker;
mod common;

#[path = "tools/kafka.rs"]
mod kafka;
#[path = "tools/readme_kafka.rs"]
mod readme_kafka;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Proc, feed_socket, run, sluice, text, wait_until};

/// The latest `(word,total)` of every word a `stateful-wordcount` printed.
fn totals(out: &str) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for line in out.lines() {
        if let Some((w, c)) = line
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .and_then(|l| l.split_once(','))
        {
            if let Ok(c) = c.parse() {
                t.insert(w.to_owned(), c);
            }
        }
    }
    t
}

#[test]
fn feed_socket_sends_a_file_to_a_stateful_job_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines.txt");
    let lines: String = (0..3000)
        .map(|i| format!("a{} b{}\n", i % 7, i % 3))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let (mut feed, port) = feed_socket(&[
        "--file",
        file.to_str().unwrap(),
        "--rate",
        "20000",
        "--keep-open",
    ]);
    let mut cmd = sluice();
    cmd.args([
        "run",
        "stateful-wordcount",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ])
    .args(["--batch", "200ms", "--print", "100"]);
    let mut job = Proc::spawn(cmd);
    let mut want = BTreeMap::new();
    for i in 0..3000 {
        *want.entry(format!("a{}", i % 7)).or_insert(0u64) += 1;
        *want.entry(format!("b{}", i % 3)).or_insert(0u64) += 1;
    }
    let exact = wait_until(Duration::from_secs(30), || {
        totals(&job.out.lock().unwrap()) == want
    });
    assert!(
        exact,
        "{:?} != {want:?}\nfeed: {}\njob: {}",
        totals(&job.out.lock().unwrap()),
        feed.err(),
        job.err()
    );
    assert!(feed.err().contains("sent 3000 lines"), "{}", feed.err());
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    feed.signal("-KILL");
}

#[test]
fn feed_socket_paces_generated_records_and_stops_at_count() {
    let (mut feed, port) = feed_socket(&[
        "--generate",
        "access-log",
        "--rate",
        "200",
        "--count",
        "100",
    ]);
    let started = Instant::now();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut conn, &mut got).unwrap();
    let took = started.elapsed();
    assert_eq!(feed.wait(), 0, "{}", feed.err());
    assert_eq!(got.lines().count(), 100);
    assert!(got.lines().all(|l| l.split("##").count() == 5), "{got}");
    // 100 lines at 200/s take half a second (the first goes at once).
    assert!(took >= Duration::from_millis(450), "{took:?}");
}

#[test]
fn feed_socket_sends_the_lines_due_together_not_one_write_each() {
    // 10 000 lines at 20 000/s: the lines due within a millisecond go out in one write, so
    // the receiver wakes about 500 times, not once a line (which cost a job fed at
    // 500 000 lines/s a third of its CPU in the kernel). Never before their time: ½ s.
    let (mut feed, port) = feed_socket(&[
        "--generate",
        "wordcount",
        "--rate",
        "20000",
        "--count",
        "10000",
    ]);
    let started = Instant::now();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut bytes, mut reads, mut buf) = (Vec::new(), 0, vec![0u8; 1 << 16]);
    loop {
        match std::io::Read::read(&mut conn, &mut buf).unwrap() {
            0 => break,
            n => {
                bytes.extend_from_slice(&buf[..n]);
                reads += 1;
            }
        }
    }
    let took = started.elapsed();
    assert_eq!(feed.wait(), 0, "{}", feed.err());
    assert_eq!(String::from_utf8(bytes).unwrap().lines().count(), 10_000);
    assert!(took >= Duration::from_millis(490), "early: {took:?}");
    assert!(reads <= 2_000, "{reads} reads for 10 000 lines");
}

#[test]
fn feed_refuses_a_port_in_use_and_a_missing_file_with_exit_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(&["feed", "socket", "--port", &port, "--generate", "wordcount"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "feed",
        "socket",
        "--port",
        "1",
        "--file",
        "/nonexistent/lines",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("/nonexistent/lines"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["feed", "socket", "--port", "1", "--generate", "nonsense"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn feed_kafka_orders_land_in_postgres_once_each() {
    let broker = broker::Broker::start();
    broker.create_topic("orders", 2);
    let out = run(&[
        "feed",
        "kafka",
        "--brokers",
        &broker.brokers(),
        "--topic",
        "orders",
        "--generate",
        "orders",
        "--count",
        "500",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("sent 500 records to orders"),
        "{}",
        text(&out.stderr)
    );
    let url = common::fresh_postgres("sluice_feed_orders");
    let out = run(&[
        "run",
        "kafka-to-postgres",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "orders",
        "--group",
        "feed",
        "--offset-reset",
        "earliest",
        "--mode",
        "idempotent",
        "--url",
        &url,
        "--batch",
        "200ms",
        "--max-batches",
        "10",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT orderid) FROM myorders",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (500, 500));
}

#[test]
fn feed_kafka_etl_records_are_cleaned_and_the_malformed_set_aside() {
    let broker = broker::Broker::start();
    broker.create_topic("raw", 1);
    broker.create_topic("clean", 1);
    broker.create_topic("bad", 1);
    let out = run(&[
        "feed",
        "kafka",
        "--brokers",
        &broker.brokers(),
        "--topic",
        "raw",
        "--generate",
        "etl",
        "--count",
        "200",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&[
        "run",
        "kafka-etl",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "raw",
        "--group",
        "etl",
        "--offset-reset",
        "earliest",
        "--target",
        "clean",
        "--dead-letter-topic",
        "bad",
        "--batch",
        "200ms",
        "--max-batches",
        "10",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let clean = broker.read_all("clean");
    let bad = broker.read_all("bad");
    assert_eq!((clean.len(), bad.len()), (196, 4));
    assert!(
        clean.iter().all(|(v, _)| v.split('|').count() == 5),
        "{clean:?}"
    );
}

#[test]
fn feed_socket_access_log_through_the_blacklist_filter() {
    let dir = tempfile::tempdir().unwrap();
    let blacklist = dir.path().join("blacklist.txt");
    // The generator's IPs are 10.0.{0..3}.{1..19}: one subnet's worth listed.
    let listed: String = (1..20).map(|i| format!("10.0.0.{i}\n")).collect();
    std::fs::write(&blacklist, listed).unwrap();
    let (mut feed, port) =
        feed_socket(&["--generate", "access-log", "--count", "400", "--keep-open"]);
    let mut cmd = sluice();
    cmd.args([
        "run",
        "blacklist-filter",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ])
    .args([
        "--batch",
        "200ms",
        "--print",
        "1000",
        "--ui",
        "off",
        "--blacklist",
    ])
    .arg(&blacklist);
    let mut job = Proc::spawn(cmd);
    assert!(wait_until(Duration::from_secs(30), || feed
        .err()
        .contains("sent 400 lines")));
    // The job has counted lines it kept (the stop then processes the rest received).
    job.expect_out("(10.0.", Duration::from_secs(30));
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    feed.signal("-KILL");
    let out = job.out.lock().unwrap().clone();
    let kept: Vec<&str> = out.lines().filter(|l| l.starts_with("(10.0.")).collect();
    assert!(!kept.is_empty() && kept.len() < 400, "{out}");
    assert!(kept.iter().all(|l| !l.starts_with("(10.0.0.")), "{out}");
}

#[test]
fn feed_socket_sales_through_category_top3() {
    let (mut feed, port) = feed_socket(&["--generate", "sales", "--count", "2000", "--keep-open"]);
    let mut cmd = sluice();
    cmd.args([
        "run",
        "category-top3",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--batch",
        "200ms",
        "--ui",
        "off",
        "--show",
        "100",
    ]);
    let mut job = Proc::spawn(cmd);
    assert!(wait_until(Duration::from_secs(30), || feed
        .err()
        .contains("sent 2000 lines")));
    // The last table: three brands for each of the 20 categories, ranks 1 to 3 — once the
    // job has shown one, it is stopped, and the table of its last batch is checked.
    let last_table = |out: &str| -> Vec<String> {
        let lines: Vec<&str> = out.lines().collect();
        let Some(header) = lines.iter().rposition(|l| l.ends_with("|rank|")) else {
            return Vec::new(); // no table shown yet
        };
        lines[header + 1..]
            .iter()
            .filter(|l| l.starts_with('|'))
            .map(|l| (*l).to_owned())
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || last_table(&job.stdout()).len()
            == 60),
        "{}",
        job.stdout()
    );
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    feed.signal("-KILL");
    let out = job.out.lock().unwrap().clone();
    let rows = last_table(&out);
    assert_eq!(rows.len(), 60, "{out}");
    assert!(
        rows.iter()
            .all(|r| r.ends_with("|   1|") || r.ends_with("|   2|") || r.ends_with("|   3|")),
        "{out}"
    );
}

#[test]
fn feed_kafka_words_give_the_kafka_wordcount_totals() {
    let broker = broker::Broker::start();
    broker.create_topic("words", 2);
    broker.create_topic("totals", 2);
    let out = run(&[
        "feed",
        "kafka",
        "--brokers",
        &broker.brokers(),
        "--topic",
        "words",
        "--generate",
        "wordcount",
        "--count",
        "300",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "run",
        "kafka-wordcount",
        "--brokers",
        &broker.brokers(),
        "--topics",
        "words",
        "--group",
        "wc",
        "--offset-reset",
        "earliest",
        "--to",
        "totals",
        "--checkpoint",
        dir.path().join("chk").to_str().unwrap(),
        "--batch",
        "200ms",
        "--max-batches",
        "10",
        "--ui",
        "off",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The latest total of each word: 300 lines of 10 words.
    let mut totals = BTreeMap::new();
    for (record, _) in broker.read_all_with("totals", "read_committed") {
        if let Some((w, c)) = record.split_once('\t') {
            totals.insert(w.to_owned(), c.parse::<u64>().unwrap());
        }
    }
    assert_eq!(totals.values().sum::<u64>(), 3000, "{totals:?}");
}

/// The word counts a job printed as `(word,count)`, per printed batch.
fn printed_counts(out: &str) -> Vec<u64> {
    let mut batches = Vec::new();
    for line in out.lines() {
        if line.starts_with("Time: ") {
            batches.push(0);
        } else if let Some(c) = line
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .and_then(|l| l.rsplit_once(','))
            .and_then(|(_, c)| c.parse::<u64>().ok())
        {
            if let Some(last) = batches.last_mut() {
                *last += c;
            }
        }
    }
    batches
}

/// Feeds 200 generated lines (2 000 words) to a socket job with `args`; what it printed by
/// the time it was stopped.
fn fed_socket_job(args: &[&str]) -> String {
    let (mut feed, port) =
        feed_socket(&["--generate", "wordcount", "--count", "200", "--keep-open"]);
    let mut cmd = sluice();
    cmd.args(["run"])
        .args(args)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--batch", "200ms", "--print", "5000", "--ui", "off"]);
    let mut job = Proc::spawn(cmd);
    assert!(wait_until(Duration::from_secs(30), || feed
        .err()
        .contains("sent 200 lines")));
    // A few printed batches after the last line was sent (the receiver has them by then;
    // a windowed job prints at its slides).
    job.expect_more_batches(3);
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    feed.signal("-KILL");
    let out = job.out.lock().unwrap().clone();
    out
}

#[test]
fn feed_socket_through_every_socket_dataflow() {
    // Per batch: the batch's words.
    let counts = printed_counts(&fed_socket_job(&["network-wordcount"]));
    assert_eq!(counts.iter().sum::<u64>(), 2000, "{counts:?}");
    // Sliding windows: the window holding every batch with words counts all of them once.
    let counts = printed_counts(&fed_socket_job(&["windowed-wordcount"]));
    assert!(counts.contains(&2000), "{counts:?}");
    // Running totals since the start, with a checkpoint: the last batch holds them all.
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let out = fed_socket_job(&["driver-ha-wordcount", "--checkpoint", chk.to_str().unwrap()]);
    assert_eq!(printed_counts(&out).last(), Some(&2000), "{out}");
}

#[test]
fn feed_kafka_through_every_kafka_dataflow() {
    let broker = broker::Broker::start();
    broker.create_topic("lines", 1);
    broker.create_topic("orders", 1);
    let feed = |topic: &str, kind: &str, count: &str| {
        let out = run(&[
            "feed",
            "kafka",
            "--brokers",
            &broker.brokers(),
            "--topic",
            topic,
            "--generate",
            kind,
            "--count",
            count,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    feed("lines", "wordcount", "300");
    feed("orders", "orders", "100");
    let job = |args: &[&str]| -> String {
        let out = sluice()
            .arg("run")
            .args(args)
            .args(["--brokers", &broker.brokers(), "--offset-reset", "earliest"])
            .args(["--batch", "200ms", "--max-batches", "8", "--ui", "off"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let counts = |out: &str| -> Vec<u64> {
        out.lines()
            .filter_map(|l| l.strip_prefix("count: ")?.parse().ok())
            .collect()
    };
    let direct = job(&["kafka-direct", "--topics", "lines", "--group", "d"]);
    assert_eq!(counts(&direct).iter().sum::<u64>(), 300, "{direct}");
    let dir = tempfile::tempdir().unwrap();
    let offsets = job(&[
        "kafka-offsets",
        "--topics",
        "lines",
        "--group",
        "o",
        "--store",
        "checkpoint",
        "--checkpoint",
        dir.path().join("chk").to_str().unwrap(),
    ]);
    assert_eq!(counts(&offsets).iter().sum::<u64>(), 300, "{offsets}");
    // 100 records/s per partition at 200 ms batches: 20 a batch.
    let limited = job(&[
        "kafka-rate-limit",
        "--topics",
        "lines",
        "--group",
        "r",
        "--max-rate-per-partition",
        "100",
    ]);
    assert!(counts(&limited).iter().all(|c| *c == 20), "{limited}");
    assert_eq!(counts(&limited).len(), 8, "{limited}");

    use mysql::prelude::Queryable;
    let mut admin =
        mysql::Conn::new(mysql::Opts::from_url("mysql://root@127.0.0.1:3306/test").unwrap())
            .unwrap();
    admin
        .query_drop("DROP DATABASE IF EXISTS sluice_feed_orders")
        .unwrap();
    admin
        .query_drop("CREATE DATABASE sluice_feed_orders")
        .unwrap();
    let url = "mysql://root@127.0.0.1:3306/sluice_feed_orders";
    let mut c = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap();
    job(&[
        "kafka-to-mysql",
        "--topics",
        "orders",
        "--group",
        "m",
        "--mode",
        "idempotent",
        "--url",
        url,
    ]);
    let n: Option<u64> = c
        .query_first("SELECT COUNT(DISTINCT orderid) FROM myorders")
        .unwrap();
    assert_eq!(n, Some(100));
}
