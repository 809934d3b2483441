//! The course's jobs in `examples/`, run as a user runs them: each example's binary (built by
//! `cargo test` with the other targets) against a TCP server of the test's own, bounded with
//! its `batches` argument, and its printed batches checked.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// An example's binary, beside this test's (`target/<profile>/examples/<name>`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole suite (`cargo test --workspace` builds the examples) or `cargo build --examples`",
        path.display()
    );
    path
}

/// Runs example `name` with `args` (the port first), serving `lines` every 100 ms to its
/// connection until it exits; returns what it printed.
fn run_against_lines(name: &str, args: &[&str], lines: &[&str]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let payload: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::thread::spawn(move || {
        while let Ok((mut conn, _)) = listener.accept() {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if conn.write_all(payload.as_bytes()).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let out = Command::new(example(name))
        .arg(&port)
        .args(args)
        .output()
        .expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `(word,count)` lines of the last printed batch.
fn last_batch(printed: &str) -> Vec<String> {
    let batch = printed.rsplit("Time: ").next().unwrap_or_default();
    let mut lines: Vec<String> = batch
        .lines()
        .filter(|l| l.starts_with('('))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_network_word_count_counts_each_batch() {
    let printed = run_against_lines("network_wordcount", &["4"], &["to be or", "not to be"]);
    // A whole batch of input holds as many of each line, so `to` and `be` count alike.
    let last = last_batch(&printed);
    let count = |w: &str| {
        last.iter().find_map(|l| {
            l.strip_prefix(&format!("({w},"))?
                .strip_suffix(')')?
                .parse::<u64>()
                .ok()
        })
    };
    assert!(count("to").is_some_and(|n| n > 0), "{printed}");
    assert_eq!(count("to"), count("be"), "{printed}");
    assert_eq!(count("to"), count("or").map(|n| 2 * n), "{printed}");
}

#[test]
fn the_stateful_word_count_goes_on_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let checkpoint = checkpoint.to_str().unwrap();
    let total = |printed: &str| -> u64 {
        last_batch(printed)
            .iter()
            .find_map(|l| l.strip_prefix("(hello,")?.strip_suffix(')')?.parse().ok())
            .unwrap_or_else(|| panic!("no (hello,n) in the last batch:\n{printed}"))
    };
    let first = total(&run_against_lines(
        "stateful_wordcount",
        &[checkpoint, "3"],
        &["hello"],
    ));
    let second = total(&run_against_lines(
        "stateful_wordcount",
        &[checkpoint, "3"],
        &["hello"],
    ));
    assert!(
        second > first,
        "the restarted job's total {second} goes on from {first}"
    );
}

#[test]
fn the_windowed_word_count_sums_its_window() {
    let printed = run_against_lines("windowed_wordcount", &["5"], &["a a b"]);
    let last = last_batch(&printed);
    let count = |w: &str| {
        last.iter().find_map(|l| {
            l.strip_prefix(&format!("({w},"))?
                .strip_suffix(')')?
                .parse::<u64>()
                .ok()
        })
    };
    assert!(count("b").is_some_and(|n| n > 0), "{printed}");
    assert_eq!(count("a"), count("b").map(|n| 2 * n), "{printed}");
}

#[test]
fn the_blacklist_transform_drops_listed_ips() {
    let printed = run_against_lines(
        "blacklist_transform",
        &["3"],
        &[
            "27.19.74.143##GET /a",
            "8.8.8.8##GET /b",
            "110.52.250.126##GET /c",
        ],
    );
    assert!(printed.contains("8.8.8.8##GET /b"), "{printed}");
    assert!(!printed.contains("27.19.74.143"), "{printed}");
    assert!(!printed.contains("110.52.250.126"), "{printed}");
}
