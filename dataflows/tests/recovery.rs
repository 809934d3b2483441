//! The `sluice` binary after faults: crashes and restarts, damaged or foreign checkpoints,
//! configured paths and addresses that cannot be used — each ends in the exact answer or in a
//! refusal that says why.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{run, sluice, text};

#[test]
fn paths_that_cannot_be_used_are_configuration_mistakes() {
    // A path under a file is never usable (root ignores permissions, so no chmod here).
    for args in [
        &[
            "run",
            "stateful-wordcount",
            "--checkpoint",
            "/etc/hostname/ck",
        ][..],
        &[
            "run",
            "blacklist-filter",
            "--blacklist",
            "/nonexistent/ips.txt",
        ][..],
        &[
            "run",
            "network-wordcount",
            "--dead-letter",
            "/etc/hostname/dead",
        ][..],
    ] {
        let mut args = args.to_vec();
        args.extend(["--max-batches", "1", "--batch", "100ms"]);
        let out = run(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(args[3]) && err.contains("give a path that exists"),
            "{args:?}: {err}"
        );
    }
}

/// `driver-ha-wordcount` (course §7.3): killed with SIGKILL after its receiver logged the lines,
/// restarted with the same flags, it goes on from its checkpoint: every line counted once.
#[test]
fn driver_ha_wordcount_resumes_after_sigkill() {
    resumes_after_sigkill("driver-ha-wordcount", &[]);
}

#[test]
fn stateful_wordcount_with_a_checkpoint_keeps_a_write_ahead_log_and_resumes_after_sigkill() {
    // Spark loses the lines of batches after its last checkpoint when the receiver has no
    // write-ahead log; a checkpointed sluice job keeps one by default.
    resumes_after_sigkill("stateful-wordcount", &["--host", "127.0.0.1"]);
}

/// Runs `dataflow` over a socket with a checkpoint, SIGKILLs it once a batch has counted 300
/// lines, restarts it with 200 more lines: the totals must go on to exactly 500.
fn resumes_after_sigkill(dataflow: &str, source: &[&str]) {
    use std::io::Read;
    let checkpoint = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // The server sends 300 lines of "spark streaming" on the first connection and, once the
    // first run is killed, 200 on the next.
    let (killed, wait_kill) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut open = Vec::new();
        for n in [300, 200] {
            let (mut s, _) = listener.accept().unwrap();
            for _ in 0..n {
                s.write_all(b"spark streaming\n").unwrap();
            }
            open.push(s);
            let _ = wait_kill.recv();
        }
    });
    let start = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", dataflow, "--port", &port, "--batch", "200ms"])
            .args(source)
            .arg("--checkpoint")
            .arg(checkpoint.path())
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = start(&[]);
    // Wait until a batch has counted all 300, then kill.
    let mut out = first.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("(spark,300)") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the first run ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    std::thread::sleep(Duration::from_millis(300));
    std::process::Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    let _ = first.wait();
    killed.send(()).unwrap();
    let mut second = start(&[]);
    let mut out = second.stdout.take().unwrap();
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains("(spark,500)") && std::time::Instant::now() < deadline {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());
    assert!(
        seen.contains("(spark,500)") && seen.contains("(streaming,500)"),
        "the totals went on from the checkpoint: {seen}"
    );
    assert!(!seen.contains("(spark,600)") && !seen.contains("(spark,800)"));
    drop(killed);
    server.join().unwrap();
}

#[test]
fn a_restart_whose_plan_logs_are_gone_is_refused_instead_of_counting_twice() {
    use std::io::Read;
    let checkpoint = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        for _ in 0..300 {
            s.write_all(b"spark\n").unwrap();
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    let command = || {
        let mut c = sluice();
        c.args([
            "run",
            "driver-ha-wordcount",
            "--port",
            &port,
            "--batch",
            "200ms",
        ])
        .arg("--checkpoint")
        .arg(checkpoint.path());
        c
    };
    let mut first = command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = first.stdout.take().unwrap();
    let (mut seen, mut buf) = (String::new(), [0u8; 4096]);
    while !seen.contains("(spark,300)") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the first run ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(first.wait().unwrap().success());
    server.join().unwrap();
    for log in std::fs::read_dir(checkpoint.path().join("plans")).unwrap() {
        std::fs::remove_file(log.unwrap().path()).unwrap();
    }
    // No server now: the restart must refuse before reading anything.
    let second = command().output().unwrap();
    let err = text(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no readable record of batch") && err.contains("plans"),
        "{err}"
    );
    assert!(
        !text(&second.stdout).contains("(spark,"),
        "{}",
        text(&second.stdout)
    );
}

/// Runs `dataflow` for `batches` batches of 100 ms on the checkpoint `dir`.
fn on_checkpoint(dataflow: &str, dir: &str, batches: &str) -> std::process::Output {
    run(&[
        "run",
        dataflow,
        "--checkpoint",
        dir,
        "--max-batches",
        batches,
        "--batch",
        "100ms",
    ])
}

#[test]
fn another_jobs_checkpoint_is_refused_by_name() {
    let checkpoint = tempfile::tempdir().unwrap();
    let dir = checkpoint.path().to_str().unwrap();
    let first = on_checkpoint("stateful-wordcount", dir, "2");
    assert!(first.status.success(), "{}", text(&first.stderr));
    for other in ["driver-ha-wordcount", "windowed-wordcount"] {
        let out = on_checkpoint(other, dir, "1");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{other}: {err}");
        assert!(
            err.contains("belongs to the job `stateful-wordcount`")
                && err.contains(&format!("this job is `{other}`")),
            "{other}: {err}"
        );
    }
    // The job itself resumes from it.
    let again = on_checkpoint("stateful-wordcount", dir, "1");
    assert!(again.status.success(), "{}", text(&again.stderr));
}

#[test]
fn a_process_whose_port_is_taken_says_which_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, format!("127.0.0.1:{port}\n127.0.0.1:1\n")).unwrap();
    let started = std::time::Instant::now();
    let out = sluice()
        .args([
            "run",
            "network-wordcount",
            "--max-batches",
            "1",
            "-n",
            "2",
            "-p",
            "0",
            "-h",
        ])
        .arg(&hosts)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("line 1 of the hostfile"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "at once, not after retries"
    );
    drop(taken);
}
