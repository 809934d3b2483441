//! `sluice run category-top3` on real socket input: the last table it shows is the top three
//! brands per category of everything sent (a naive model), printed as Spark's `show()` does;
//! malformed lines are counted and kept in the dead-letter file.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::{Proc, sluice, wait_until};

/// The tables `show()` printed: each a list of rows of cells.
fn tables(stdout: &str) -> Vec<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<Vec<String>>> = None;
    let mut borders = 0;
    for line in stdout.lines() {
        if line.starts_with("+-") {
            borders += 1;
            if borders == 1 {
                current = Some(Vec::new());
            } else if borders == 3 {
                out.extend(current.take());
                borders = 0;
            }
        } else if let (Some(t), Some(inner)) = (current.as_mut(), line.strip_prefix('|')) {
            if borders == 2 {
                t.push(
                    inner
                        .trim_end_matches('|')
                        .split('|')
                        .map(|c| c.trim().to_owned())
                        .collect(),
                );
            }
        }
    }
    out
}

/// Serves `text` (in chunks of `chunk` bytes, `pause` apart) to the first connection on a
/// free port and keeps it open for `open`; runs `category-top3` on it with `extra` flags.
fn top3_on(
    text: String,
    chunk: usize,
    pause: Duration,
    open: Duration,
    extra: &[&str],
) -> (Proc, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        for piece in text.as_bytes().chunks(chunk) {
            s.write_all(piece).unwrap();
            std::thread::sleep(pause);
        }
        std::thread::sleep(open);
    });
    let mut cmd = sluice();
    cmd.args([
        "run",
        "category-top3",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ])
    .args(["--batch", "200ms", "--ui", "off"])
    .args(extra);
    (Proc::spawn(cmd), server)
}

#[test]
fn category_top3_shows_the_top_three_brands_of_each_category() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.txt");
    // 600 sales of 12 brands in 3 categories, and 3 malformed lines.
    let mut lines = Vec::new();
    let mut model: BTreeMap<(String, String), u64> = BTreeMap::new();
    for i in 0..600u64 {
        let brand = format!("brand{}", (i * 7 + i / 5) % 12);
        let category = format!("cat{}", (i * 7 + i / 5) % 12 % 3);
        *model.entry((category.clone(), brand.clone())).or_default() += 1;
        lines.push(format!("{i} {brand} {category}"));
    }
    lines.insert(10, "only two".into());
    lines.insert(300, "one two three four".into());
    lines.push("".into());
    let text = lines.join("\n") + "\n";
    let (mut job, server) = top3_on(
        text,
        2000,
        Duration::from_millis(50),
        Duration::from_secs(30),
        &["--dead-letter", dead.to_str().unwrap()],
    );
    // The model's top three per category, ties by brand.
    let mut by: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for ((c, b), n) in &model {
        by.entry(c.clone()).or_default().push((*n, b.clone()));
    }
    let mut want = Vec::new();
    for (c, mut v) in by {
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (rank, (n, b)) in v.into_iter().take(3).enumerate() {
            want.push(vec![c.clone(), b, n.to_string(), (rank + 1).to_string()]);
        }
    }
    let done = wait_until(Duration::from_secs(40), || {
        tables(&job.out.lock().unwrap()).last() == Some(&want)
    });
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    let out = job.out.lock().unwrap().clone();
    assert!(
        done,
        "last table: {:?}\nwant {want:?}\n{}",
        tables(&out).last(),
        job.err()
    );
    let header = "|category| brand|sales|rank|";
    assert!(out.contains(header), "{out}");
    let dead = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(dead.lines().count(), 3, "{dead}");
    assert!(
        dead.contains("only two") && dead.contains("one two three four"),
        "{dead}"
    );
    drop(server);
}

/// The course keys sales by the string `category_brand` and splits it at the first `_`, so
/// `c_d` of brand `b` and `c` of brand `d_b` would print as one row `c | d_b | 5`; keyed by the
/// pair, each keeps its own row.
#[test]
fn an_underscore_in_a_category_or_brand_keeps_rows_apart() {
    let text = "20 b c_d\n20 b c_d\n20 b c_d\n20 b c_d\n21 d_b c\n".to_owned();
    let (mut job, server) = top3_on(text, 1 << 20, Duration::ZERO, Duration::from_secs(30), &[]);
    let want = vec![
        vec!["c".to_owned(), "d_b".into(), "1".into(), "1".into()],
        vec!["c_d".to_owned(), "b".into(), "4".into(), "1".into()],
    ];
    let done = wait_until(Duration::from_secs(30), || {
        tables(&job.out.lock().unwrap()).last() == Some(&want)
    });
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    let out = job.out.lock().unwrap().clone();
    assert!(done, "last table: {:?}\n{}", tables(&out).last(), job.err());
    // Spark's `show()` is `println(showString(..))`: every table is followed by an empty line.
    assert!(out.contains("+\n\n"), "{out}");
    drop(server);
}

/// Dead letters on a disk that is full: the batch waits, retrying, instead of going on without
/// them; once there is room again every one of them is in the file, once. (Needs root, to
/// mount a small tmpfs: CI runs as root.)
#[test]
fn dead_letters_on_a_full_disk_wait_for_room_and_none_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "mount a 64 KiB tmpfs (as root) for the full-disk test"
    );
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status();
        }
    }
    let _unmount = Unmount(dir.path());
    // Fill it.
    let filler = dir.path().join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[b'x'; 4096]).is_ok() {}
    }
    let dead = dir.path().join("dead.txt");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!("malformed {i}\n"));
    }
    text.push_str("1 b c\n");
    let (mut job, server) = top3_on(
        text,
        1 << 20,
        Duration::ZERO,
        Duration::from_secs(40),
        &["--dead-letter", dead.to_str().unwrap()],
    );
    // The disk refuses the entries: retried (said once), no table while the batch waits.
    assert!(
        wait_until(Duration::from_secs(20), || job
            .err()
            .contains("dead-letter file")),
        "{}",
        job.err()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        tables(&job.out.lock().unwrap())
            .iter()
            .all(|t| t.is_empty()),
        "the batch went on without its dead letters: {}",
        job.out.lock().unwrap()
    );
    std::fs::remove_file(&filler).unwrap();
    let want = vec![vec!["c".to_owned(), "b".into(), "1".into(), "1".into()]];
    let done = wait_until(Duration::from_secs(30), || {
        tables(&job.out.lock().unwrap()).last() == Some(&want)
    });
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    assert!(done, "{}\n{}", job.out.lock().unwrap(), job.err());
    let written = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(written.lines().count(), 100, "{written}");
    for i in 0..100 {
        let suffix = format!("\tmalformed {i}");
        assert_eq!(
            written.lines().filter(|l| l.ends_with(&suffix)).count(),
            1,
            "entry {i} once: {written}"
        );
    }
    drop(server);
}
