//! Directory streams: files/s and MB/s that a `file_stream` job picks up and reads, from a local
//! directory and from an S3-protocol server (moto, `scripts/s3-server.sh install`), next to
//! `cat` of the same files and a bare `object_store` listing plus reads, in the same run.
//!
//! `cargo bench --bench files [-- SMALL LARGE LARGE_MB]` (default 10 000 small files of 1 KiB,
//! 10 large ones of 20 MiB). Each figure is the best of 2 runs; the load is printed first.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sluice::source::file::{FileCompletion, FileStreamOptions};
use sluice::{StreamingConfig, StreamingContext};

fn line() -> &'static str {
    "the quick brown fox jumps over the lazy dog again and again\n"
}

/// `n` files of `bytes` each (whole lines), named `prefix-<i>.txt`: path, lines in all.
fn contents(bytes: usize) -> (String, u64) {
    let per = bytes / line().len();
    (line().repeat(per.max(1)), per.max(1) as u64)
}

/// Reads `dir` with a file stream on 2 workers until `lines` lines arrived: the time taken.
fn sluice_read(dir: &str, lines: u64, env: &[(String, String)]) -> Duration {
    for (k, v) in env {
        // SAFETY: set before the job starts its threads; the bench's only thread then.
        unsafe { std::env::set_var(k, v) };
    }
    let counted = Arc::new(AtomicU64::new(0));
    let c = counted.clone();
    let config = StreamingConfig::new(Duration::from_millis(100))
        .unwrap()
        .threads(2);
    // Every file already there is read: the remember window (60 s by default, Spark's rule
    // for old files) is widened so that files written before the reference runs count.
    let options = FileStreamOptions {
        remember: Duration::from_secs(24 * 3600),
        ..FileStreamOptions::default()
    }
    .new_files_only(false)
    .completion(FileCompletion::Visible);
    let dir = dir.to_owned();
    let started = Instant::now();
    let mut handle = StreamingContext::new(config)
        .start(move |job| {
            let c = c.clone();
            job.file_stream(&dir, options.clone())
                .count()
                .foreach_batch(move |_, n| {
                    c.fetch_add(n.iter().sum::<u64>(), Ordering::SeqCst);
                });
        })
        .expect("start the job");
    while counted.load(Ordering::SeqCst) < lines && started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    assert_eq!(counted.load(Ordering::SeqCst), lines, "every line once");
    handle.stop(false);
    let _ = handle.await_termination();
    took
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A bare object_store pass: list, then read every object (16 at a time).
fn bare_read(store: &dyn ObjectStore) -> (Duration, u64) {
    let started = Instant::now();
    let bytes = block_on(async {
        let metas: Vec<_> = store
            .list(None)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|m| m.expect("list"))
            .collect();
        futures::stream::iter(metas)
            .map(|m| async move {
                store
                    .get(&m.location)
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("read")
                    .len() as u64
            })
            .buffer_unordered(16)
            .fold(0u64, |a, b| async move { a + b })
            .await
    });
    (started.elapsed(), bytes)
}

fn cat(dir: &Path) -> Duration {
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -type f -print0 | xargs -0 cat > /dev/null")
        .current_dir(dir)
        .status()
        .expect("cat");
    assert!(status.success());
    started.elapsed()
}

fn best(f: impl Fn() -> Duration) -> Duration {
    (0..2).map(|_| f()).min().unwrap_or_default()
}

fn row(what: &str, files: usize, bytes: u64, took: Duration, reference: Duration) {
    let s = took.as_secs_f64();
    println!(
        "| {what} | {:.0} files/s | {:.1} MB/s | {:.2} s | {:.2}× |",
        files as f64 / s,
        bytes as f64 / 1e6 / s,
        s,
        reference.as_secs_f64() / s
    );
}

struct Moto(std::process::Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Option<Moto> {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/moto/bin/moto_server");
    if !server.exists() {
        eprintln!(
            "no S3 server ({}): run scripts/s3-server.sh install",
            server.display()
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let m = Moto(child, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(m)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let small: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let large: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let large_mb: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| what | files/s | MB/s | time | vs reference |");
    println!("|---|---|---|---|---|");
    for (label, n, size) in [("small", small, 1024), ("large", large, large_mb << 20)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (body, per) = contents(size);
        for i in 0..n {
            std::fs::write(dir.path().join(format!("f-{i:06}.txt")), &body).expect("write");
        }
        let bytes = body.len() as u64 * n as u64;
        let lines = per * n as u64;
        let reference = best(|| cat(dir.path()));
        row(
            &format!("local {n} {label}: cat (reference)"),
            n,
            bytes,
            reference,
            reference,
        );
        let local =
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("local store");
        let bare = best(|| bare_read(&local).0);
        row(
            &format!("local {n} {label}: bare object_store"),
            n,
            bytes,
            bare,
            reference,
        );
        let path = dir.path().to_str().expect("utf-8 path").to_owned();
        let took = best(|| sluice_read(&path, lines, &[]));
        row(
            &format!("local {n} {label}: sluice file_stream -w 2"),
            n,
            bytes,
            took,
            reference,
        );

        let Some(m) = moto() else { continue };
        let vars = vec![
            (
                "AWS_ENDPOINT_URL".to_owned(),
                format!("http://127.0.0.1:{}", m.1),
            ),
            ("AWS_ALLOW_HTTP".to_owned(), "true".to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "bench".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "bench".to_owned()),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ];
        let mut b = object_store::aws::AmazonS3Builder::new().with_bucket_name("bench");
        for (k, v) in &vars {
            b = b.with_config(k.to_lowercase().parse().expect("key"), v);
        }
        let s3 = b.build().expect("s3 store");
        // The bucket, by a plain path-style PUT (moto accepts it unsigned).
        {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", m.1)).expect("moto");
            let _ = write!(
                s,
                "PUT /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.read_to_string(&mut String::new());
        }
        block_on(
            futures::stream::iter(0..n)
                .map(|i| {
                    let s3 = &s3;
                    let body = body.clone();
                    async move {
                        s3.put(
                            &format!("f-{i:06}.txt").into(),
                            PutPayload::from(body.into_bytes()),
                        )
                        .await
                        .expect("put")
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>(),
        );
        let (bare, got) = bare_read(&s3);
        assert_eq!(got, bytes);
        row(
            &format!("S3 (moto) {n} {label}: bare object_store (reference)"),
            n,
            bytes,
            bare,
            bare,
        );
        let took = sluice_read("s3://bench", lines, &vars);
        row(
            &format!("S3 (moto) {n} {label}: sluice file_stream -w 2"),
            n,
            bytes,
            took,
            bare,
        );
    }
}
