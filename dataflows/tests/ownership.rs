//! Who may write a checkpoint, and which source it belongs to: a second process on one
//! checkpoint is refused with the holder's PID, a lock left by a killed process is taken over,
//! a restart that names the same server another way goes on exactly, and a restart on another
//! server is refused while the checkpoint holds input of the old one (or, accepted, says what
//! it drops).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, Run, sluice, text, wait_until};

/// `dataflow` on generated input with `--checkpoint dir`, until it is stopped.
fn generated(dataflow: &str, dir: &std::path::Path) -> Command {
    Run::job(dataflow)
        .batch("100ms")
        .ui_off()
        .checkpoint(dir)
        .command()
}

/// Waits until `job` has printed a batch (it holds its checkpoint then).
fn running(job: &Proc) -> bool {
    wait_until(Duration::from_secs(30), || {
        job.out.lock().unwrap().contains("Time: ")
    })
}

#[test]
fn a_second_process_on_one_checkpoint_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let first = Proc::spawn(generated("stateful-wordcount", dir.path()));
    assert!(running(&first), "{}", first.err());
    let pid = first.id();
    // The same job, and another job, on the same directory.
    for dataflow in ["stateful-wordcount", "windowed-wordcount"] {
        let out = generated(dataflow, dir.path())
            .arg("--max-batches")
            .arg("3")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dataflow}: {err}");
        assert!(
            err.contains("is in use by") && err.contains(&format!("PID {pid} on host")),
            "{dataflow}: {err}"
        );
        assert!(
            err.contains("job `stateful-wordcount`"),
            "the holder's job is named: {err}"
        );
        assert!(!text(&out.stdout).contains("Time: "), "it ran no batch");
    }
    // `checkpoint show` names the holder.
    let show = sluice()
        .args(["checkpoint", "show"])
        .arg(dir.path())
        .output()
        .unwrap();
    let shown = text(&show.stdout);
    assert!(
        shown.contains(&format!("owner            held by PID {pid}")),
        "{shown}"
    );
    assert!(shown.contains("source           source#0: "), "{shown}");
}

#[test]
fn two_jobs_started_together_on_an_empty_directory_leave_one_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Proc::spawn(generated("stateful-wordcount", dir.path()));
    let mut b = Proc::spawn(generated("windowed-wordcount", dir.path()));
    let one_refused = wait_until(Duration::from_secs(30), || {
        a.exited().is_some() || b.exited().is_some()
    });
    assert!(one_refused, "both run: {} / {}", a.err(), b.err());
    // The other one goes on: it prints batches (and has not stopped since, checked below).
    let still = if a.exited().is_some() { &b } else { &a };
    assert!(running(still), "{}", still.err());
    let (refused, other) = match (a.exited(), b.exited()) {
        (Some(code), None) => ((code, a.err()), &b),
        (None, Some(code)) => ((code, b.err()), &a),
        codes => panic!("exactly one must stop: {codes:?}\n{}\n{}", a.err(), b.err()),
    };
    assert_eq!(refused.0, 2, "{}", refused.1);
    assert!(refused.1.contains("is in use by"), "{}", refused.1);
    assert!(running(other), "{}", other.err());
}

#[test]
fn the_lock_of_a_killed_process_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    // (A snapshot every batch: generated input cannot be replayed, so the restart needs one.)
    let mut cmd = generated("stateful-wordcount", dir.path());
    cmd.args(["--checkpoint-interval", "100ms"]);
    let mut first = Proc::spawn(cmd);
    assert!(running(&first), "{}", first.err());
    assert!(
        wait_until(Duration::from_secs(30), || common::has_snapshot(dir.path())),
        "no snapshot: {}",
        first.err()
    );
    first.signal("-KILL");
    // The dead process's lock file is still there, naming it; the restart takes it over.
    let lock = std::fs::read_to_string(dir.path().join("owner-p0")).unwrap();
    assert!(lock.contains(&format!("\"pid\":{}", first.id())), "{lock}");
    let out = generated("stateful-wordcount", dir.path())
        .args(["--checkpoint-interval", "100ms", "--max-batches", "2", "-v"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("took over the lock of PID"), "{err}");
}

/// A server that sends `counts[i]` lines of `spark` on its i-th connection and keeps each
/// connection open until the test ends.
fn server(counts: Vec<usize>) -> (u16, std::sync::mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (next, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for n in counts {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            for _ in 0..n {
                if s.write_all(b"spark\n").is_err() {
                    break;
                }
            }
            open.push(s);
            if wait.recv().is_err() {
                return;
            }
        }
    });
    (port, next)
}

/// `stateful-wordcount` on `host:port` with the checkpoint `dir` and a snapshot every 10 s (so
/// that what the first run counts is in no snapshot yet when it is killed).
fn on_socket(host: &str, port: u16, dir: &std::path::Path, extra: &[&str]) -> Command {
    let mut c = sluice();
    c.args(["run", "stateful-wordcount", "--host", host])
        .args(["--port", &port.to_string()])
        .args([
            "--batch",
            "200ms",
            "--checkpoint-interval",
            "10s",
            "--ui",
            "off",
        ])
        .arg("--checkpoint")
        .arg(dir)
        .args(extra);
    c
}

/// Runs `cmd` until its output contains `want` (true) or 30 s pass, then stops it.
fn until_printed(cmd: &mut Command, want: &str, signal: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let (mut seen, mut buf) = (String::new(), [0u8; 4096]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(want) && std::time::Instant::now() < deadline {
        let n = out.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let found = seen.contains(want);
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    seen.push_str(&rest);
    (found, seen, errors.join().unwrap_or_default())
}

#[test]
fn a_restart_naming_the_same_server_another_way_goes_on_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (port, next) = server(vec![300, 200]);
    let (found, seen, err) = until_printed(
        &mut on_socket("127.0.0.1", port, dir.path(), &[]),
        "(spark,300)",
        "-KILL",
    );
    assert!(found, "{seen}\n{err}");
    next.send(()).unwrap();
    // `localhost` is 127.0.0.1: the same source, whose counted lines replay from its log.
    let (found, seen, err) = until_printed(
        &mut on_socket("localhost", port, dir.path(), &[]),
        "(spark,500)",
        "-TERM",
    );
    assert!(
        found,
        "the totals went on from the checkpoint: {seen}\n{err}"
    );
    assert!(!seen.contains("(spark,200)"), "{seen}");
}

#[test]
fn a_restart_on_another_server_is_refused_while_the_checkpoint_holds_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _keep) = server(vec![300]);
    let (found, seen, err) = until_printed(
        &mut on_socket("127.0.0.1", port, dir.path(), &[]),
        "(spark,300)",
        "-KILL",
    );
    assert!(found, "{seen}\n{err}");
    let (other, _keep_other) = server(vec![5]);
    let refused = on_socket("127.0.0.1", other, dir.path(), &["--max-batches", "3"])
        .output()
        .unwrap();
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("`socket 127.0.0.1:{port}`"))
            && err.contains(&format!("`socket 127.0.0.1:{other}`"))
            && err.contains("300 records")
            && err.contains("--accept-source-change"),
        "{err}"
    );
    assert!(!text(&refused.stdout).contains("(spark,"));
    // Accepted: it runs on the new server, and says what it dropped.
    let (found, seen, err) = until_printed(
        &mut on_socket("127.0.0.1", other, dir.path(), &["--accept-source-change"]),
        "(spark,5)",
        "-TERM",
    );
    assert!(found, "{seen}\n{err}");
    assert!(
        err.contains("accepted a changed source") && err.contains("300 records"),
        "{err}"
    );
}
