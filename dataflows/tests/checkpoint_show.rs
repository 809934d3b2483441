//! `sluice checkpoint show`: inspects the checkpoint of a real job, fed by `sluice feed`.

mod common;

use std::time::Duration;

use common::{Run, feed_socket, run, text, wait_until};

#[test]
fn checkpoint_show_tells_what_a_restart_will_do() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let (mut feed, port) =
        feed_socket(&["--generate", "wordcount", "--count", "2000", "--keep-open"]);
    let mut job = Run::job("stateful-wordcount")
        .flag("host", "127.0.0.1")
        .flag("port", port.to_string())
        .batch("200ms")
        .checkpoint_interval("200ms")
        .checkpoint(&chk)
        .spawn();
    assert!(
        wait_until(Duration::from_secs(30), || feed.err().contains("sent 2000")),
        "{}",
        feed.err()
    );
    // Received, counted and snapshotted.
    job.expect_out("Time: ", Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(30), || common::has_snapshot(&chk)),
        "no snapshot: {}",
        job.err()
    );
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    feed.signal("-KILL");

    let out = run(&["checkpoint", "show", chk.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    for want in [
        "job              stateful-wordcount",
        "batch interval   200 ms",
        "snapshot         ",
        "write-ahead log  ",
        "a restart        restores the state of batch",
    ] {
        assert!(report.contains(want), "`{want}` missing in:\n{report}");
    }
    assert!(!report.contains("UNUSABLE"), "{report}");
    // A damaged newest snapshot is named, and the restart takes an older one.
    let newest = report
        .lines()
        .find_map(|l| l.strip_prefix("snapshot         ")?.split(' ').next())
        .unwrap()
        .trim_end_matches(" ms")
        .to_owned();
    let state = chk.join(format!("state-{newest}"));
    let part = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains(".part-"))
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&part).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&part, bytes).unwrap();
    let report = text(&run(&["checkpoint", "show", chk.to_str().unwrap()]).stdout);
    assert!(report.contains("UNUSABLE"), "{report}");
    assert!(
        !report.contains(&format!("restores the state of batch {newest} ms")),
        "{report}"
    );

    let out = run(&["checkpoint", "show", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a checkpoint"),
        "{}",
        text(&out.stderr)
    );
}
