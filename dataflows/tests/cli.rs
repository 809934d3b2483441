//! The `sluice` binary as a user runs it: help, bad flags, the course's jobs against real TCP
//! servers on loopback, SIGTERM, and a two-process run.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

#[path = "cli/paths.rs"]
mod paths;

use common::{run, sluice, text};

/// Sums the `(word,count)` lines of every printed batch.
fn totals(stdout: &str) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in stdout.lines() {
        if let Some(inner) = line.strip_prefix('(').and_then(|l| l.strip_suffix(')')) {
            if let Some((w, n)) = inner.rsplit_once(',') {
                if let Ok(n) = n.parse::<u64>() {
                    *totals.entry(w.to_owned()).or_default() += n;
                }
            }
        }
    }
    totals
}

/// A one-connection TCP server on a free loopback port: writes each chunk, then sleeps its
/// pause (the last pause keeps the connection open while the job runs). Returns the port.
fn serve(script: Vec<(&'static [u8], Duration)>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        for (bytes, pause) in script {
            s.write_all(bytes).unwrap();
            std::thread::sleep(pause);
        }
    });
    (port, server)
}

#[test]
fn help_lists_the_dataflows_and_flags() {
    let out = run(&["run", "--help"]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(
        s.contains("network-wordcount") && s.contains("blacklist-filter"),
        "{s}"
    );
    let out = run(&["run", "network-wordcount", "--help"]);
    let s = text(&out.stdout);
    for flag in [
        "--batch",
        "--print",
        "--threads",
        "--processes",
        "--process",
        "--hostfile",
        "--host",
        "--port",
    ] {
        assert!(s.contains(flag), "{flag} missing from:\n{s}");
    }
}

#[test]
fn bad_flags_name_the_problem() {
    let out = run(&["run", "network-wordcount", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unexpected argument '--bogus'"));
    let out = run(&["run", "network-wordcount", "--batch", "two seconds"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`two seconds` is not a duration"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["run", "network-wordcount", "-n", "2", "-p", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("process index from 0 to 1"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["run", "no-such-job"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Each nonsense value is refused before the job starts, with exit code 2 and a message that
/// names the flag and what it takes.
#[test]
fn nonsense_values_are_refused_with_the_fix() {
    let cases: &[(&[&str], &str)] = &[
        (&["--max-batches", "0"], "--max-batches"),
        (&["--max-line-bytes", "0"], "--max-line-bytes"),
        (&["--vocabulary", "0"], "--vocabulary"),
        (&["--batch", "-1s"], "`-1s` is negative"),
        (&["--checkpoint-interval", "1s"], "--checkpoint"),
        (&["--full-snapshots"], "--checkpoint"),
        (&["--port", "9999"], "--host"),
        (&["-h", "hosts.txt"], "--processes"),
        (&["-w", "0"], "--threads"),
        (
            &["--host", "127.0.0.1", "--receiver-buffer", "12 parsecs"],
            "128MiB",
        ),
        (
            &["--host", "127.0.0.1", "--receiver-buffer", "1KiB"],
            "at least 64KiB",
        ),
        (&["--receiver-max-rate", "0"], "--receiver-max-rate"),
        (&["--initial-rate", "100"], "--backpressure"),
        (&["--backpressure"], "--host"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run", "network-wordcount"];
        args.extend_from_slice(flags);
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{flags:?} should mention {expected}: {stderr}"
        );
    }
    for (dataflow, flag, value) in [
        ("kafka-offsets", "--store", "etcd"),
        ("kafka-to-postgres", "--mode", "sometimes"),
        ("kafka-direct", "--offset-reset", "middle"),
    ] {
        let out = run(&["run", dataflow, "--topics", "t", flag, value]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{dataflow} {flag} {value}: {stderr}"
        );
        assert!(
            stderr.contains("invalid value") && stderr.contains("possible values"),
            "{dataflow} {flag} {value}: {stderr}"
        );
    }
}

#[test]
fn network_wordcount_counts_a_servers_words_with_two_workers() {
    let (port, server) = serve(vec![
        (
            b"hello world hello\nhello  spark\tstreaming\n",
            Duration::from_millis(300),
        ),
        (b"world\n", Duration::from_secs(2)),
    ]);
    let out = run(&[
        "run",
        "network-wordcount",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--batch",
        "200ms",
        "--max-batches",
        "8",
        "-w",
        "2",
    ]);
    server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let t = totals(&stdout);
    assert_eq!(t.get("hello"), Some(&3), "{stdout}");
    assert_eq!(t.get("world"), Some(&2));
    assert_eq!(t.get("spark"), Some(&1));
    assert_eq!(t.get("streaming"), Some(&1));
    assert_eq!(
        stdout.matches("Time: ").count(),
        8,
        "one block per batch, also empty ones:\n{stdout}"
    );
}

#[test]
fn the_same_job_prints_the_same_records_in_the_same_order_on_any_number_of_workers() {
    // Partitions, not workers, decide the order: with the default parallelism set, 1, 2 and 4
    // workers print every batch identically (batch times aside, they follow the clock).
    let printed = |workers: &str| {
        let out = run(&[
            "run",
            "network-wordcount",
            "--batch",
            "200ms",
            "--max-batches",
            "3",
            "--rate",
            "20000",
            "--vocabulary",
            "40",
            "--print",
            "1000",
            "--default-parallelism",
            "3",
            "-w",
            workers,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("Time:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let one = printed("1");
    assert!(one.matches('(').count() >= 40, "every word printed: {one}");
    assert_eq!(printed("2"), one, "2 workers");
    assert_eq!(printed("4"), one, "4 workers");
}

#[test]
fn sigterm_stops_gracefully_with_exit_code_0() {
    let child = sluice()
        .args([
            "run",
            "network-wordcount",
            "--batch",
            "200ms",
            "--rate",
            "1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(900));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Time: "), "{stdout}");
    assert!(stdout.ends_with("\n\n"), "the last batch is printed whole");
}

#[test]
fn a_refused_port_is_reported_and_the_job_keeps_running() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let out = run(&[
        "run",
        "network-wordcount",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--batch",
        "100ms",
        "--max-batches",
        "5",
    ]);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot connect") && stderr.contains("nc -lk"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout).matches("Time: ").count(), 5);
}

#[test]
fn blacklist_filter_drops_listed_ips_and_sets_malformed_lines_aside() {
    let dir = tempfile::tempdir().unwrap();
    let blacklist = dir.path().join("blacklist.txt");
    std::fs::write(
        &blacklist,
        "27.19.74.143\n# course example\n110.52.250.126\n",
    )
    .unwrap();
    let dead = dir.path().join("dead.tsv");
    let (port, server) = serve(vec![(
        b"27.19.74.143##2016-05-30 17:38:20##GET /a HTTP/1.1##200##1127\n\
          8.35.201.144##2016-05-30 17:38:20##GET /b HTTP/1.1##200##680\n\
          no separator here\n\
          110.52.250.126##2016-05-30 17:38:20##GET /c HTTP/1.1##200##1292\n",
        Duration::from_secs(1),
    )]);
    let out = run(&[
        "run",
        "blacklist-filter",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--batch",
        "200ms",
        "--max-batches",
        "5",
        "--blacklist",
        blacklist.to_str().unwrap(),
        "--dead-letter",
        dead.to_str().unwrap(),
        "-w",
        "2",
    ]);
    server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("(8.35.201.144,2016-05-30 17:38:20##GET /b HTTP/1.1##200##680)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("27.19.74.143") && !stdout.contains("110.52.250.126"),
        "{stdout}"
    );
    let dead = std::fs::read_to_string(&dead).unwrap();
    assert!(dead.contains("no separator here"), "{dead}");
}

#[test]
fn two_processes_print_once() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = common::local_hostfile(dir.path(), 2);
    let spawn = |p: &str| {
        sluice()
            .args([
                "run",
                "network-wordcount",
                "--batch",
                "200ms",
                "--max-batches",
                "4",
                "--rate",
                "500",
                "--print",
                "1000",
                "-n",
                "2",
                "-p",
                p,
                "-h",
            ])
            .arg(&hosts)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let p0 = spawn("0");
    std::thread::sleep(Duration::from_millis(30));
    let p1 = spawn("1");
    let (o0, o1) = (
        p0.wait_with_output().unwrap(),
        p1.wait_with_output().unwrap(),
    );
    assert!(
        o0.status.success() && o1.status.success(),
        "{}\n{}",
        text(&o0.stderr),
        text(&o1.stderr)
    );
    let s0 = text(&o0.stdout);
    assert_eq!(s0.matches("Time: ").count(), 4, "{s0}");
    assert_eq!(
        text(&o1.stdout).matches("Time: ").count(),
        0,
        "only worker 0 prints"
    );
    // 500 words/s × 0.2 s = 100 words per batch over both processes, all counted on process 0.
    let words: u64 = totals(&s0).values().sum();
    assert_eq!(words, 100 * 4, "every generated word is counted once: {s0}");
}

/// The records of the last printed batch.
fn last_batch(stdout: &str) -> BTreeMap<String, u64> {
    let last = stdout.rsplit("Time: ").next().unwrap_or("");
    totals(last)
}

#[test]
fn stateful_wordcount_prints_running_totals() {
    let (port, server) = serve(vec![
        (b"a b a\n", Duration::from_millis(500)),
        (b"a c\n", Duration::from_secs(2)),
    ]);
    let out = run(&[
        "run",
        "stateful-wordcount",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--batch",
        "200ms",
        "--max-batches",
        "8",
        "-w",
        "2",
    ]);
    server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = last_batch(&stdout);
    assert_eq!(last.get("a"), Some(&3), "{stdout}");
    assert_eq!(last.get("b"), Some(&1));
    assert_eq!(last.get("c"), Some(&1));
}

#[test]
fn windowed_wordcount_prints_at_slide_times_only() {
    let out = run(&[
        "run",
        "windowed-wordcount",
        "--batch",
        "100ms",
        "--max-batches",
        "6",
        "--rate",
        "100",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Window 300 ms, slide 200 ms: slides at every other batch.
    assert_eq!(
        text(&out.stdout).matches("Time: ").count(),
        3,
        "{}",
        text(&out.stdout)
    );
    let out = run(&[
        "run",
        "windowed-wordcount",
        "--batch",
        "2s",
        "--window",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("use a multiple such as 6000 ms"),
        "{}",
        text(&out.stderr)
    );
}
