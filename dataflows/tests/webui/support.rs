//! What the web UI's tests share: a job fed by `sluice feed`, HTTP GETs, headless Chromium.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{Proc, free_port, sluice, wait_until};

pub const LINES: u64 = 3000;

/// A `stateful-wordcount` fed `LINES` generated lines by `sluice feed socket`, with its web UI
/// on a free port; the feed, the job and the UI's address once every line is counted.
pub fn running_job(extra: &[&str]) -> (Proc, Proc, String) {
    let port = free_port().to_string();
    let mut feed = sluice();
    feed.args(["feed", "socket", "--port", &port, "--generate", "wordcount"])
        .args([
            "--count",
            &LINES.to_string(),
            "--rate",
            "10000",
            "--keep-open",
        ]);
    let feed = Proc::spawn(feed);
    assert!(wait_until(Duration::from_secs(10), || feed
        .err()
        .contains("listening")));
    let mut job = sluice();
    job.args([
        "run",
        "stateful-wordcount",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ])
    .args(["--batch", "200ms", "--ui", "127.0.0.1:0", "--print", "0"])
    .args(extra);
    let job = Proc::spawn(job);
    let addr = job
        .ui_addr()
        .unwrap_or_else(|| panic!("no web UI address: {}", job.err()));
    let app = "stateful-wordcount";
    assert!(
        wait_until(Duration::from_secs(30), || {
            get(
                &addr,
                &format!("/api/v1/applications/{app}/streaming/statistics"),
            )
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|s| s["numProcessedRecords"] == LINES)
        }),
        "the job never counted {LINES} lines: {}",
        job.err()
    );
    (feed, job, addr)
}

/// `GET path` over HTTP/1.1: status code and body.
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

pub fn json(addr: &str, path: &str) -> serde_json::Value {
    let (code, body) = get(addr, path).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Headless Chromium loads `url`, runs its script for 4 s of virtual time, and prints the DOM
/// (`--dump-dom`) or saves a screenshot (`--screenshot=PATH`).
pub fn chromium(url: &str, extra: &[&str]) -> std::process::Output {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("Chromium is missing: scripts/build-deps.sh installs Debian's `chromium`");
    let profile = tempfile::tempdir().unwrap();
    std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,1500",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}
