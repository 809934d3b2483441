//! Crash harness: the course's Kafka → database jobs killed with SIGKILL at random points and
//! restarted, while records keep arriving; afterwards the table must hold every record exactly
//! once. `SLUICE_CRASH_KILLS` sets the kills per job (default 20; the soak script uses 200).

/// The test broker, shared with the library's tests.
#[path = "../../tests/common/kafka.rs"]
mod broker;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker::Broker;

const RECORDS: usize = 3000;

fn kills() -> usize {
    std::env::var("SLUICE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// A small deterministic generator for kill times; the seed is printed so a failure replays.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[derive(Clone, Copy, Debug)]
enum Db {
    Postgres,
    MySql,
}

fn fresh_database(db: Db, name: &str) -> String {
    match db {
        Db::Postgres => {
            let mut c = postgres::Client::connect(
                "postgres://postgres@127.0.0.1:5432/postgres",
                postgres::NoTls,
            )
            .expect("PostgreSQL on 5432");
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .expect("drop database");
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create database");
            format!("postgres://postgres@127.0.0.1:5432/{name}")
        }
        Db::MySql => {
            use mysql::prelude::Queryable;
            let mut c = mysql::Conn::new(
                mysql::Opts::from_url("mysql://root@127.0.0.1:3306/test").unwrap(),
            )
            .expect("MariaDB on 3306");
            c.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                .unwrap();
            c.query_drop(format!("CREATE DATABASE {name}")).unwrap();
            format!("mysql://root@127.0.0.1:3306/{name}")
        }
    }
}

/// (id, times present) of every row.
fn rows(db: Db, url: &str, transactional: bool) -> Vec<(i64, i64)> {
    let sql = if transactional {
        "SELECT id, COUNT(*) FROM mydata GROUP BY id ORDER BY id"
    } else {
        "SELECT CAST(orderid AS SIGNED), COUNT(*) FROM myorders GROUP BY orderid ORDER BY CAST(orderid AS SIGNED)"
    };
    match db {
        Db::Postgres => {
            let Ok(mut c) = postgres::Client::connect(url, postgres::NoTls) else {
                return Vec::new();
            };
            let sql = sql.replace("SIGNED", "BIGINT");
            c.query(sql.as_str(), &[])
                .map(|rs| {
                    rs.iter()
                        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
                        .collect()
                })
                .unwrap_or_default()
        }
        Db::MySql => {
            use mysql::prelude::Queryable;
            let Ok(mut c) = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()) else {
                return Vec::new();
            };
            c.query(sql).unwrap_or_default()
        }
    }
}

fn start_job(
    db: Db,
    broker: &str,
    url: &str,
    mode: &str,
    group: &str,
    dead: &std::path::Path,
) -> Child {
    let job = match db {
        Db::Postgres => "kafka-to-postgres",
        Db::MySql => "kafka-to-mysql",
    };
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "run",
            job,
            "--brokers",
            broker,
            "--topics",
            "orders",
            "--group",
            group,
            "--offset-reset",
            "earliest",
        ])
        .args(["--mode", mode, "--url", url, "--batch", "100ms", "-w", "2"])
        .arg("--dead-letter")
        .arg(dead)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sluice")
}

fn crash_test(db: Db, mode: &str) {
    let transactional = mode == "transactional";
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("{db:?} {mode}: seed {seed}");
    let mut rng = Lcg(seed);
    let broker = Broker::start();
    broker.create_topic("orders", 3);
    let name = format!(
        "sluice_crash_{}_{}_{}",
        format!("{db:?}").to_lowercase(),
        mode,
        std::process::id()
    );
    let url = fresh_database(db, &name);
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.tsv");
    // Records arrive while the job is killed and restarted.
    let brokers = broker.brokers();
    let producer = {
        let b = broker.brokers();
        std::thread::spawn(move || {
            let broker = Broker::attach(&b);
            // 30 chunks of 100 records, spread over the 3 partitions.
            for chunk in 0..30 {
                for p in 0..3 {
                    let values: Vec<String> = (chunk * 100..(chunk + 1) * 100)
                        .filter(|id| id % 3 == p)
                        .map(|id| format!("name{id},{id}"))
                        // One malformed record per chunk and partition, for the dead letters.
                        .chain(std::iter::once(format!("bad-{chunk}-{p}")))
                        .collect();
                    broker.produce("orders", p, &values);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    for _ in 0..kills() {
        let mut child = start_job(db, &brokers, &url, mode, "crash", &dead);
        std::thread::sleep(Duration::from_millis(150 + rng.next(500)));
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    producer.join().unwrap();
    // A last run without a crash drains the rest (it takes seconds; the deadline only bounds a
    // loaded machine's wait: 60 s once fell short beside a release build).
    let mut child = start_job(db, &brokers, &url, mode, "crash", &dead);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = rows(db, &url, transactional);
    while seen.len() < RECORDS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        seen = rows(db, &url, transactional);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    seen = rows(db, &url, transactional);
    let missing = RECORDS - seen.len().min(RECORDS);
    let duplicated: Vec<&(i64, i64)> = seen.iter().filter(|(_, n)| *n != 1).collect();
    assert_eq!(
        missing, 0,
        "{db:?} {mode} (seed {seed}): {missing} records lost"
    );
    assert!(
        duplicated.is_empty(),
        "{db:?} {mode} (seed {seed}): duplicated {:?}",
        &duplicated[..duplicated.len().min(10)]
    );
    assert_eq!(
        seen.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (0..RECORDS as i64).collect::<Vec<_>>()
    );
    // Every malformed record is in the dead-letter file exactly once, across all the kills.
    let text = std::fs::read_to_string(&dead).unwrap_or_default();
    let mut set_aside: Vec<&str> = text.lines().filter_map(|l| l.rsplit('\t').next()).collect();
    set_aside.sort_unstable();
    let mut expected: Vec<String> = (0..30)
        .flat_map(|c| (0..3).map(move |p| format!("bad-{c}-{p}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(
        set_aside, expected,
        "{db:?} {mode} (seed {seed}): dead letters not exactly once"
    );
}

#[test]
fn postgres_transactional_survives_sigkill() {
    crash_test(Db::Postgres, "transactional");
}

#[test]
fn postgres_idempotent_survives_sigkill() {
    crash_test(Db::Postgres, "idempotent");
}

#[test]
fn mysql_transactional_survives_sigkill() {
    crash_test(Db::MySql, "transactional");
}

#[test]
fn mysql_idempotent_survives_sigkill() {
    crash_test(Db::MySql, "idempotent");
}

/// The running word count (Kafka → `update_state_by_key` → Kafka, exactly once, checkpointed)
/// killed at random points while words keep arriving: the target topic, read committed, must
/// hold per word the totals a crash-free run reaches, each at most once and growing, and end at
/// the true count.
#[test]
fn kafka_wordcount_with_state_survives_sigkill() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kafka-wordcount: seed {seed}");
    let mut rng = Lcg(seed);
    let broker = Broker::start();
    broker.create_topic("words", 3);
    broker.create_topic("totals", 3);
    let checkpoint = tempfile::tempdir().unwrap();
    let brokers = broker.brokers();
    let word = |i: usize| format!("w{}", (i * 7919) % 50);
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    for i in 0..RECORDS {
        *expected.entry(word(i)).or_default() += 1;
        *expected.entry(word(i + 1)).or_default() += 1;
    }
    let producer = {
        let b = broker.brokers();
        std::thread::spawn(move || {
            let broker = Broker::attach(&b);
            for chunk in 0..30 {
                for p in 0..3 {
                    let values: Vec<String> = (chunk * 100..(chunk + 1) * 100)
                        .filter(|i| i % 3 == p)
                        .map(|i| format!("{} {}", word(i), word(i + 1)))
                        .collect();
                    broker.produce("words", p as i32, &values);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "kafka-wordcount", "--brokers", &brokers])
            .args([
                "--topics",
                "words",
                "--group",
                "wc",
                "--offset-reset",
                "earliest",
            ])
            .args(["--to", "totals", "--batch", "100ms", "-w", "2"])
            .arg("--checkpoint")
            .arg(checkpoint.path())
            .args(["--checkpoint-interval", "300ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sluice")
    };
    for _ in 0..kills() {
        let mut child = start();
        std::thread::sleep(Duration::from_millis(200 + rng.next(600)));
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    producer.join().unwrap();
    let mut child = start();
    let finals = |records: &[String]| -> std::collections::BTreeMap<String, u64> {
        let mut m: std::collections::BTreeMap<String, u64> = Default::default();
        for r in records {
            if let Some((w, n)) = r.split_once('\t') {
                let n: u64 = n.parse().unwrap_or(0);
                let e = m.entry(w.to_owned()).or_default();
                *e = (*e).max(n);
            }
        }
        m
    };
    let read = || -> Vec<String> {
        broker
            .read_all_with("totals", "read_committed")
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut records = read();
    while finals(&records) != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        records = read();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "the last run stops cleanly: {status:?}");
    assert_eq!(finals(&records), expected, "seed {seed}: final totals");
    // Per word, the totals appear once each and only grow (one partition per word, in order).
    let mut last: std::collections::BTreeMap<&str, u64> = Default::default();
    for r in &records {
        let (w, n) = r.split_once('\t').unwrap();
        let n: u64 = n.parse().unwrap();
        let prev = last.insert(w, n).unwrap_or(0);
        assert!(
            n > prev,
            "seed {seed}: {w} went from {prev} to {n}: a batch was produced twice or its state was wrong"
        );
    }
}

/// A TCP proxy in front of a database that the test can take down: while down, it drops every
/// connection and refuses new ones (what the job sees when the database is unavailable).
struct Proxy {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(target: &'static str) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let d = d.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        from.set_read_timeout(Some(Duration::from_millis(50))).ok();
                        let mut buf = [0u8; 16384];
                        loop {
                            if d.load(Ordering::SeqCst) {
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => {
                                    let _ = to.shutdown(std::net::Shutdown::Write);
                                    return;
                                }
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Proxy { port, down }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

/// PostgreSQL unavailable for 10 s while records arrive: the batches wait and retry, nothing
/// is lost or written twice, and the job goes on when the database is back.
#[test]
fn postgres_unavailable_for_ten_seconds() {
    let broker = Broker::start();
    broker.create_topic("orders", 3);
    let name = format!("sluice_outage_{}", std::process::id());
    let direct = fresh_database(Db::Postgres, &name);
    let proxy = Proxy::start("127.0.0.1:5432");
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let produce = |from: usize, to: usize| {
        for p in 0..3 {
            let values: Vec<String> = (from..to)
                .filter(|id| id % 3 == p)
                .map(|id| format!("name{id},{id}"))
                .collect();
            broker.produce("orders", p as i32, &values);
        }
    };
    let mut child = start_job(
        Db::Postgres,
        &broker.brokers(),
        &url,
        "transactional",
        "outage",
        &std::env::temp_dir().join(format!("sluice-outage-{}.tsv", std::process::id())),
    );
    produce(0, 1000);
    let wait_for = |n: usize, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while rows(Db::Postgres, &direct, true).len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        rows(Db::Postgres, &direct, true).len()
    };
    assert_eq!(wait_for(1000, 30), 1000);
    proxy.set_down(true);
    produce(1000, 2000);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        rows(Db::Postgres, &direct, true).len(),
        1000,
        "nothing is written while the database is down"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job waits, it does not fail"
    );
    proxy.set_down(false);
    assert_eq!(
        wait_for(2000, 60),
        2000,
        "the job goes on when the database is back"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    let seen = rows(Db::Postgres, &direct, true);
    assert_eq!(
        seen,
        (0..2000).map(|id| (id, 1)).collect::<Vec<_>>(),
        "every record once"
    );
}

/// A permanent database error (here a value too long for its column) fails the job at once
/// with the database's own message and exit code 1, instead of retrying forever.
#[test]
fn a_permanent_sql_error_fails_the_job_with_the_database_message() {
    let broker = Broker::start();
    broker.create_topic("orders", 1);
    let name = format!("sluice_permanent_{}", std::process::id());
    let url = fresh_database(Db::Postgres, &name);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("the fresh database");
    c.batch_execute("CREATE TABLE mydata (name VARCHAR(2), id BIGINT)")
        .expect("create a table too narrow for the names");
    broker.produce("orders", 0, &["a-long-name,1".to_owned()]);
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "kafka-to-postgres", "--brokers", &broker.brokers()])
        .args([
            "--topics",
            "orders",
            "--group",
            "permanent",
            "--offset-reset",
            "earliest",
        ])
        .args(["--mode", "transactional", "--url", &url, "--batch", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice");
    let started = Instant::now();
    let out = child.wait_with_output().expect("sluice ends by itself");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    assert!(
        stderr.contains("22001") && stderr.contains("value too long"),
        "the database's message: {stderr}"
    );
    assert!(rows(Db::Postgres, &url, true).is_empty(), "nothing written");
}
