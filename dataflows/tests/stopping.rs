//! Stopping as an operator expects: the first SIGTERM or SIGINT stops gracefully without
//! waiting for the batch timer (a job with a 1 min or a 10 h batch interval exits 0 within
//! seconds, its last batch processed), saying that a second signal stops at once; the second
//! ends the process at once (exit 130): to the checkpoint that is a crash, which the SIGKILL
//! loops of `crash.rs` and the fault matrix show ends exact.

mod common;

use std::time::Duration;

use common::{Proc, sluice, wait_until};

/// `stateful-wordcount` on generated input with `--batch interval`, once it has started.
fn started(interval: &str, extra: &[&str]) -> Proc {
    let mut cmd = sluice();
    cmd.args([
        "run",
        "stateful-wordcount",
        "--batch",
        interval,
        "--ui",
        "off",
    ])
    .args(extra);
    let job = Proc::spawn(cmd);
    assert!(
        wait_until(Duration::from_secs(20), || job
            .err()
            .contains("generated words/s")),
        "{}",
        job.err()
    );
    job
}

#[test]
fn the_first_signal_stops_gracefully_without_waiting_for_the_batch_timer() {
    for (interval, sig) in [("1m", "-TERM"), ("10h", "-INT"), ("10h", "-TERM")] {
        // Signalled as soon as it has started: the stop cuts its batch at once, whatever the
        // interval.
        let mut job = started(interval, &[]);
        job.send(sig);
        let ended = job.wait_exit(Duration::from_secs(10));
        let err = job.err();
        let (code, took) = ended
            .unwrap_or_else(|| panic!("--batch {interval}: still running 10 s after {sig}: {err}"));
        assert_eq!(code, 0, "--batch {interval}, {sig}: {err}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(
            err.contains("stopping gracefully without waiting for the batch timer")
                && err.contains("a second signal stops it at once"),
            "the stop is said: {err}"
        );
        // The batch it cut at the stop ran: its words are printed.
        assert!(
            job.out.lock().unwrap().contains("Time: "),
            "--batch {interval}: the last batch was processed: {}",
            job.out.lock().unwrap()
        );
    }
}

#[test]
fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let ck = ck.to_str().unwrap();
    // Big batches of generated words (a debug build takes seconds for one), so that the
    // graceful stop is still processing when the second signal comes.
    let mut job = started(
        "1s",
        &[
            "--rate",
            "3000000",
            "--checkpoint",
            ck,
            "--checkpoint-interval",
            "1s",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(60), || job
            .out
            .lock()
            .unwrap()
            .contains("Time: ")),
        "{}",
        job.err()
    );
    job.send("-TERM");
    assert!(
        wait_until(Duration::from_secs(10), || job
            .err()
            .contains("stopping gracefully")),
        "{}",
        job.err()
    );
    let graceful_done = job.exited().is_some();
    job.send("-TERM");
    let ended = job.wait_exit(Duration::from_secs(3));
    let (code, _) =
        ended.unwrap_or_else(|| panic!("still running after the second signal: {}", job.err()));
    if !graceful_done {
        assert!(code == 130 || code == 0, "exit {code}: {}", job.err());
    }
}
