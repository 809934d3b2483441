//! Jobs of two processes (`-n 2`) under faults: one process killed with SIGKILL (the other
//! must stop within seconds with a message naming it, and a restart of both resumes exactly
//! once), and the two processes in two network namespaces joined by a veth link, as two
//! machines would be, with the link cut for 10 s (shorter than the peer timeout: the job rides
//! it out exactly; longer: both stop with the message, and a restart resumes exactly once).
//!
//! The namespace tests need root and `ip` (iproute2); without them they say so and pass.

/// The test broker, shared with the library's tests.
#[path = "../../tests/common/kafka.rs"]
mod broker;
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker::Broker;
use common::{Proc, free_port, wait_until};

/// A job of several processes stops when all are asked to (a graceful stop finishes the batches
/// due, which needs every process).
/// The tests here run one at a time: each starts two processes whose timing (peer timeouts,
/// link cuts, kills) is the point; on 2 cores, four such pairs at once starve each other.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|p| p.into_inner())
}

fn stop_both(a: &mut Proc, b: &mut Proc) -> [i32; 2] {
    a.send("-TERM");
    b.send("-TERM");
    [a.wait(), b.wait()]
}

/// Kafka → state → Kafka (`kafka-wordcount` with a checkpoint, exactly-once output) on two
/// processes of one worker each, killing each process once: the other stops within 5 s with
/// an error naming the lost process, and the restarted pair ends with exact totals.
#[test]
fn a_killed_process_stops_the_other_and_a_restart_resumes_exactly_once() {
    let _alone = alone();
    let broker = Broker::start();
    broker.create_topic("words", 4);
    broker.create_topic("totals", 4);
    let checkpoint = tempfile::tempdir().unwrap();
    let hosts = checkpoint.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let brokers = broker.brokers();
    let word = |i: usize| format!("w{}", (i * 7919) % 40);
    let records = 2000;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..records {
        *expected.entry(word(i)).or_default() += 1;
    }
    let producer = {
        let b = broker.brokers();
        std::thread::spawn(move || {
            let broker = broker::Broker::attach(&b);
            for chunk in 0..20 {
                for p in 0..4 {
                    let values: Vec<String> = (chunk * 100..(chunk + 1) * 100)
                        .filter(|i| i % 4 == p)
                        .map(word)
                        .collect();
                    broker.produce("words", p as i32, &values);
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let start = |process: usize| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["run", "kafka-wordcount", "--brokers", &brokers])
            .args([
                "--topics",
                "words",
                "--group",
                "wc2",
                "--offset-reset",
                "earliest",
            ])
            .args(["--to", "totals", "--batch", "100ms", "-n", "2"])
            .args(["-p", &process.to_string()])
            .arg("-h")
            .arg(&hosts)
            .arg("--checkpoint")
            .arg(checkpoint.path())
            .args(["--checkpoint-interval", "300ms"]);
        Proc::spawn(cmd)
    };
    for victim in [1usize, 0] {
        // Killed once the pair is running: it has committed totals since it started.
        let committed = broker.read_all_with("totals", "read_committed").len();
        let mut procs = [start(0), start(1)];
        assert!(
            wait_until(Duration::from_secs(60), || broker
                .read_all_with("totals", "read_committed")
                .len()
                > committed),
            "no totals committed: {}\n{}",
            procs[0].err(),
            procs[1].err()
        );
        procs[victim].signal("-KILL");
        let other = 1 - victim;
        let ended = procs[other].wait_exit(Duration::from_secs(5));
        let err = procs[other].err();
        let (code, took) = ended.unwrap_or_else(|| {
            panic!("process {other} still runs 5 s after process {victim} was killed: {err}")
        });
        eprintln!(
            "cluster\tkill process {victim}\tprocess {other} stopped after {took:?} with exit code {code}"
        );
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!("lost its connection to process {victim}"))
                && err.contains("restart every process"),
            "{err}"
        );
        assert!(
            !err.contains("panicked"),
            "timely's panics are not shown: {err}"
        );
    }
    producer.join().unwrap();
    let (mut p0, mut p1) = (start(0), start(1));
    let finals = |records: &[(String, Vec<(String, String)>)]| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for (r, _) in records {
            if let Some((w, n)) = r.split_once('\t') {
                let e = m.entry(w.to_owned()).or_default();
                *e = (*e).max(n.parse().unwrap_or(0));
            }
        }
        m
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = broker.read_all_with("totals", "read_committed");
    while finals(&seen) != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        seen = broker.read_all_with("totals", "read_committed");
    }
    eprintln!(
        "cluster\tafter the restart\t{} totals of {} words read",
        seen.len(),
        expected.len()
    );
    if finals(&seen) != expected {
        eprintln!("{}\n{}", p0.err(), p1.err());
    }
    let codes = stop_both(&mut p0, &mut p1);
    assert_eq!(finals(&seen), expected, "final totals after the restart");
    assert_eq!(codes, [0, 0], "{} / {}", p0.err(), p1.err());
    // Per word the totals only grow: no batch was counted twice.
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (r, _) in &seen {
        if let Some((w, n)) = r.split_once('\t') {
            let n: u64 = n.parse().unwrap();
            let before = last.insert(w.to_owned(), n).unwrap_or(0);
            assert!(n > before, "{w}: {n} after {before}");
        }
    }
}

/// Two processes of another job, or started with another -n, refuse each other by name.
#[test]
fn processes_of_different_jobs_refuse_each_other() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let start = |job: &str, process: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args([
            "run",
            job,
            "-n",
            "2",
            "-p",
            process,
            "--connect-timeout",
            "10s",
        ])
        .arg("-h")
        .arg(&hosts);
        Proc::spawn(cmd)
    };
    let mut p0 = start("network-wordcount", "0");
    let mut p1 = start("windowed-wordcount", "1");
    let a = p0.wait_exit(Duration::from_secs(15));
    let b = p1.wait_exit(Duration::from_secs(15));
    let (e0, e1) = (p0.err(), p1.err());
    assert!(a.is_some() && b.is_some(), "{e0}\n{e1}");
    assert!(
        e0.contains("runs the job `windowed-wordcount`, process 0 runs `network-wordcount`"),
        "{e0}"
    );
    assert!(e1.contains("refused process 1"), "{e1}");
}

/// Two network namespaces' worth of hosts: this one (`a`) and a namespace (`b`) joined by a
/// veth pair, made by the test and removed when it ends.
struct Link {
    ns: String,
    dev: String,
    a: String,
    b: String,
}

impl Link {
    /// `None` (with a note) where namespaces cannot be made: not root, or no `ip`.
    fn make() -> Option<Link> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = (std::process::id() % 1000) * 10 + n % 10;
        let subnet = 10 + (id % 240);
        let link = Link {
            ns: format!("sluice-t{id}"),
            dev: format!("vsl{id}a"),
            a: format!("10.231.{subnet}.1"),
            b: format!("10.231.{subnet}.2"),
        };
        let peer = format!("vsl{id}b");
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &link.ns],
            vec![
                "link", "add", &link.dev, "type", "veth", "peer", "name", &peer,
            ],
            vec!["link", "set", &peer, "netns", &link.ns],
        ];
        for step in &steps {
            if !ip(step) {
                common::skip_without(
                    "netns",
                    "cluster: network namespaces are not available here (root and iproute2 needed)",
                );
                return None;
            }
        }
        let a_cidr = format!("{}/24", link.a);
        let b_cidr = format!("{}/24", link.b);
        assert!(ip(&["addr", "add", &a_cidr, "dev", &link.dev]));
        assert!(ip(&["link", "set", &link.dev, "up"]));
        for step in [
            vec!["addr", "add", b_cidr.as_str(), "dev", peer.as_str()],
            vec!["link", "set", peer.as_str(), "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut args = vec!["netns", "exec", link.ns.as_str(), "ip"];
            args.extend(step);
            assert!(ip(&args), "{args:?}");
        }
        Some(link)
    }

    fn set(&self, up: bool) {
        assert!(ip(&[
            "link",
            "set",
            &self.dev,
            if up { "up" } else { "down" }
        ]));
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        ip(&["link", "del", &self.dev]);
        ip(&["netns", "del", &self.ns]);
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The largest totals of `a` and `b` that process 0 printed.
fn word_totals(printed: &str) -> (u64, u64) {
    let last = |w: &str| {
        printed
            .lines()
            .filter_map(|l| {
                l.strip_prefix(&format!("({w},"))?
                    .strip_suffix(')')?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    };
    (last("a"), last("b"))
}

/// `stateful-wordcount` over a socket with its write-ahead log and a checkpoint, process 0
/// here and process 1 in the namespace; the test is the line server.
struct NsJob {
    link: Link,
    hosts: std::path::PathBuf,
    checkpoint: tempfile::TempDir,
    port: u16,
}

impl NsJob {
    fn start(&self, process: usize, peer_timeout: &str) -> Proc {
        let bin = env!("CARGO_BIN_EXE_sluice");
        let mut cmd = if process == 0 {
            Command::new(bin)
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.link.ns, bin]);
            c
        };
        cmd.args(["run", "stateful-wordcount", "--host", "127.0.0.1"])
            .args(["--port", &self.port.to_string(), "--batch", "200ms"])
            .args([
                "-n",
                "2",
                "-p",
                &process.to_string(),
                "--peer-timeout",
                peer_timeout,
            ])
            .arg("-h")
            .arg(&self.hosts)
            .arg("--checkpoint")
            .arg(self.checkpoint.path());
        Proc::spawn(cmd)
    }
}

fn ns_job() -> Option<(NsJob, TcpListener)> {
    let link = Link::make()?;
    let checkpoint = tempfile::tempdir().unwrap();
    let hosts = checkpoint.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("{}:{}\n{}:{}\n", link.a, free_port(), link.b, free_port()),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    Some((
        NsJob {
            link,
            hosts,
            checkpoint,
            port,
        },
        listener,
    ))
}

fn send_lines(conn: &mut std::net::TcpStream, n: usize) {
    for _ in 0..n {
        conn.write_all(b"a b\n").unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_totals(p: &Proc, want: u64, within: Duration) -> (u64, u64) {
    let deadline = Instant::now() + within;
    loop {
        let totals = word_totals(&p.out.lock().unwrap());
        if totals == (want, want) || Instant::now() >= deadline {
            return totals;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The link cut for 10 s, shorter than the peer timeout (30 s): the batches wait, the job goes
/// on when the link is back, and every line is counted once.
#[test]
fn two_hosts_ride_out_a_ten_second_link_cut() {
    let _alone = alone();
    let Some((job, listener)) = ns_job() else {
        return;
    };
    let mut p0 = job.start(0, "30s");
    let mut p1 = job.start(1, "30s");
    let (mut conn, _) = listener.accept().unwrap();
    send_lines(&mut conn, 300);
    assert_eq!(
        wait_totals(&p0, 300, Duration::from_secs(30)),
        (300, 300),
        "{}",
        p0.err()
    );
    job.link.set(false);
    send_lines(&mut conn, 200);
    std::thread::sleep(Duration::from_secs(10));
    job.link.set(true);
    let totals = wait_totals(&p0, 500, Duration::from_secs(30));
    eprintln!(
        "cluster\tlink cut 10 s, peer timeout 30 s\ttotals {totals:?} of (500, 500), both processes running"
    );
    assert_eq!(totals, (500, 500), "{}\n{}", p0.err(), p1.err());
    assert!(p0.wait_exit(Duration::ZERO).is_none() && p1.wait_exit(Duration::ZERO).is_none());
    assert_eq!(
        stop_both(&mut p0, &mut p1),
        [0, 0],
        "{}\n{}",
        p0.err(),
        p1.err()
    );
}

/// The link cut for 10 s with a peer timeout of 3 s: both processes stop within seconds with
/// the message; with the link back, a restart of both resumes from the checkpoint and the
/// write-ahead log and counts every line once. Then process 1 is killed (SIGKILL) across the
/// link: process 0 stops at once, and a restart counts every line once.
#[test]
fn two_hosts_stop_on_a_cut_longer_than_the_peer_timeout_and_resume_exactly_once() {
    let _alone = alone();
    let Some((job, listener)) = ns_job() else {
        return;
    };
    let mut p0 = job.start(0, "3s");
    let mut p1 = job.start(1, "3s");
    let (mut conn, _) = listener.accept().unwrap();
    send_lines(&mut conn, 300);
    assert_eq!(
        wait_totals(&p0, 300, Duration::from_secs(30)),
        (300, 300),
        "{}",
        p0.err()
    );
    job.link.set(false);
    let cut = Instant::now();
    let a = p0.wait_exit(Duration::from_secs(20));
    let b = p1.wait_exit(Duration::from_secs(20));
    eprintln!(
        "cluster\tlink cut, peer timeout 3 s\t(exit code, time to stop) of process 0: {a:?}, of process 1: {b:?}"
    );
    let (e0, e1) = (p0.err(), p1.err());
    assert!(
        a.is_some_and(|(c, _)| c == 1),
        "process 0 still runs or exit 0: {e0}"
    );
    assert!(
        b.is_some_and(|(c, _)| c == 1),
        "process 1 still runs or exit 0: {e1}"
    );
    assert!(e0.contains("lost its connection to process 1"), "{e0}");
    assert!(e1.contains("lost its connection to process 0"), "{e1}");
    // Lines sent while the job is down wait in the socket; the link comes back.
    std::thread::sleep(Duration::from_secs(
        10u64.saturating_sub(cut.elapsed().as_secs()),
    ));
    job.link.set(true);
    drop(conn);
    let mut p0 = job.start(0, "3s");
    let mut p1 = job.start(1, "3s");
    let (mut conn, _) = listener.accept().unwrap();
    send_lines(&mut conn, 200);
    let totals = wait_totals(&p0, 500, Duration::from_secs(30));
    eprintln!("cluster\trestart after the cut\ttotals {totals:?} of (500, 500)");
    assert_eq!(totals, (500, 500), "{}\n{}", p0.err(), p1.err());
    // SIGKILL across the link.
    p1.signal("-KILL");
    let ended = p0.wait_exit(Duration::from_secs(5));
    eprintln!("cluster\tSIGKILL of process 1 across the link\tprocess 0 stopped after {ended:?}");
    assert!(ended.is_some_and(|(c, _)| c == 1), "{}", p0.err());
    drop(conn);
    let mut p0 = job.start(0, "3s");
    let mut p1 = job.start(1, "3s");
    let (mut conn, _) = listener.accept().unwrap();
    send_lines(&mut conn, 100);
    let totals = wait_totals(&p0, 600, Duration::from_secs(30));
    eprintln!("cluster\trestart after the kill\ttotals {totals:?} of (600, 600)");
    assert_eq!(totals, (600, 600), "{}\n{}", p0.err(), p1.err());
    assert_eq!(
        stop_both(&mut p0, &mut p1),
        [0, 0],
        "{}\n{}",
        p0.err(),
        p1.err()
    );
}
