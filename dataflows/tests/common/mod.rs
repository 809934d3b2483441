//! What the command-line tests share: running the `sluice` binary and reading its output.

#![allow(dead_code)]

use std::process::{Command, Output};

/// The `sluice` binary of this build.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// Skips a test (or a case) that needs `capability` (`root`, `netns`, `faketime`) the machine
/// lacks, saying why — unless the environment claims it (`SLUICE_TEST_REQUIRE=root,netns,faketime`,
/// as `.ci/run` sets it), where a missing capability fails the test instead: a CI run cannot go
/// green by skipping.
pub fn skip_without(capability: &str, why: &str) {
    let claimed = std::env::var("SLUICE_TEST_REQUIRE")
        .is_ok_and(|list| list.split(',').any(|c| c.trim() == capability));
    assert!(
        !claimed,
        "SLUICE_TEST_REQUIRE says this machine has `{capability}`, but it does not: {why}"
    );
    eprintln!("{why}: skipped");
}

/// A `sluice run <job>` invocation built flag by flag, so that a test says what it changes
/// from the job's defaults and nothing else:
///
/// ```ignore
/// let job = Run::job("stateful-wordcount").batch("100ms").checkpoint(dir).ui_off().spawn();
/// ```
pub struct Run {
    cmd: Command,
}

impl Run {
    /// `sluice run <name>`.
    pub fn job(name: &str) -> Run {
        let mut cmd = sluice();
        cmd.args(["run", name]);
        Run { cmd }
    }

    /// One more argument, as given.
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.arg(arg);
        self
    }

    /// More arguments, as given.
    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Run {
        self.cmd.args(args);
        self
    }

    /// `--<name> <value>`.
    pub fn flag(self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Run {
        self.arg(format!("--{name}")).arg(value)
    }

    /// `--batch <interval>` (`100ms`, `1s`, `1m`).
    pub fn batch(self, interval: &str) -> Run {
        self.flag("batch", interval)
    }

    /// `--checkpoint <dir>`.
    pub fn checkpoint(self, dir: impl AsRef<std::path::Path>) -> Run {
        self.flag("checkpoint", dir.as_ref())
    }

    /// `--checkpoint-interval <interval>`.
    pub fn checkpoint_interval(self, interval: &str) -> Run {
        self.flag("checkpoint-interval", interval)
    }

    /// `--max-batches <n>`.
    pub fn max_batches(self, n: u64) -> Run {
        self.flag("max-batches", n.to_string())
    }

    /// `--ui off`: no web UI (its port is not needed).
    pub fn ui_off(self) -> Run {
        self.flag("ui", "off")
    }

    /// An environment variable for the job.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(key, value);
        self
    }

    /// The command, to run some other way.
    pub fn command(self) -> Command {
        self.cmd
    }

    /// Starts it, its outputs collected as it runs.
    pub fn spawn(self) -> Proc {
        Proc::spawn(self.cmd)
    }

    /// Runs it to its end.
    pub fn output(mut self) -> Output {
        self.cmd.output().expect("run sluice")
    }
}

/// Runs `sluice` with `args` to its end.
pub fn run(args: &[&str]) -> Output {
    sluice().args(args).output().expect("run sluice")
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A hostfile of `n` local processes on free ports, in `dir`; its path.
pub fn local_hostfile(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("hosts.txt");
    let lines: String = (0..n)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(&path, lines).expect("write the hostfile");
    path
}

/// Whether a snapshot of the checkpoint in `dir` is complete (a `state-<t>/MANIFEST`).
pub fn has_snapshot(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("state-")
                && e.path().join("MANIFEST").exists()
        })
    })
}

/// Polls `done` until it holds or `within` has passed; whether it held.
pub fn wait_until(within: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    done()
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// How long [`Proc::wait`] waits for a process to end before it kills it.
pub const HUNG: std::time::Duration = std::time::Duration::from_secs(60);

/// The exit code [`Proc::wait`] reports for a process that did not end within [`HUNG`].
pub const HUNG_CODE: i32 = -99;

/// A running `sluice` (or any command) whose standard output and error are collected as it
/// runs; killed when dropped.
pub struct Proc {
    child: std::process::Child,
    /// Standard output so far.
    pub out: std::sync::Arc<std::sync::Mutex<String>>,
    err: std::sync::Arc<std::sync::Mutex<String>>,
    /// The threads reading the two pipes: joined once the process has ended, so that what it
    /// wrote last is in `out` and `err` before its exit is reported.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Starts `cmd` with both outputs collected.
    pub fn spawn(mut cmd: Command) -> Proc {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        let collect = |pipe: Box<dyn std::io::Read + Send>| {
            let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let b = buf.clone();
            let reader = std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut b = b.lock().unwrap();
                    b.push_str(&line);
                    b.push('\n');
                }
            });
            (buf, reader)
        };
        let (out, r1) = collect(Box::new(child.stdout.take().unwrap()));
        let (err, r2) = collect(Box::new(child.stderr.take().unwrap()));
        Proc {
            child,
            out,
            err,
            readers: vec![r1, r2],
        }
    }

    /// Sends `sig` (`-KILL`, `-TERM`) without waiting.
    pub fn send(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// Waits for the end; the exit code (-1 for a signal). A process still running after
    /// [`HUNG`] is killed, and the code is [`HUNG_CODE`]: a test that waits for a stop never
    /// hangs the test run, it fails and says so.
    pub fn wait(&mut self) -> i32 {
        match self.wait_exit(HUNG) {
            Some((code, _)) => code,
            None => {
                eprintln!(
                    "process {} still running {} s after it was asked to stop: killed",
                    self.child.id(),
                    HUNG.as_secs()
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
                HUNG_CODE
            }
        }
    }

    /// Sends `sig` and waits for the end.
    pub fn signal(&mut self, sig: &str) -> i32 {
        self.send(sig);
        self.wait()
    }

    /// The exit code, if it has ended (and then everything it wrote has been read).
    pub fn exited(&mut self) -> Option<i32> {
        let code = self
            .child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.code().unwrap_or(-1))?;
        // The pipes end with the process (unless a child of its own still holds them: then at
        // most a second is spent waiting).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.readers.iter().any(|r| !r.is_finished()) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Some(code)
    }

    /// Waits at most `within` for the end: the exit code and how long it took.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<(i32, std::time::Duration)> {
        let start = std::time::Instant::now();
        loop {
            if let Some(code) = self.exited() {
                return Some((code, start.elapsed()));
            }
            if start.elapsed() >= within {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Its process ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Standard error so far.
    pub fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// How many batches `print` has printed so far (their `Time: ` headers).
    pub fn printed_batches(&self) -> usize {
        self.out.lock().unwrap().matches("Time: ").count()
    }

    /// Waits until `more` batches beyond those printed now are printed (at most 60 s): what
    /// a test means by "a few more batches", with no fixed sleep that a slow machine outruns.
    pub fn expect_more_batches(&self, more: usize) {
        let target = self.printed_batches() + more;
        assert!(
            wait_until(std::time::Duration::from_secs(60), || self
                .printed_batches()
                >= target),
            "{more} more batches were not printed within 60 s\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.err()
        );
    }

    /// Waits (at most `within`) until standard output holds `needle`; fails the test with
    /// both outputs otherwise.
    pub fn expect_out(&self, needle: &str, within: std::time::Duration) {
        assert!(
            wait_until(within, || self.out.lock().unwrap().contains(needle)),
            "`{needle}` not printed within {within:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.err()
        );
    }

    /// The web UI's `host:port`, once the job has printed it (within 30 s).
    pub fn ui_addr(&self) -> Option<String> {
        let mut addr = None;
        wait_until(std::time::Duration::from_secs(30), || {
            addr = self
                .err()
                .lines()
                .find_map(|l| l.strip_prefix("sluice: web UI at http://"))
                .map(|a| a.trim_end_matches('/').to_owned());
            addr.is_some()
        });
        addr
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new, empty PostgreSQL database `name` on the machine's server; its URL.
pub fn fresh_postgres(name: &str) -> String {
    let mut c = postgres::Client::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        postgres::NoTls,
    )
    .expect("PostgreSQL on 5432");
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .expect("drop database");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

/// Word counts per batch: batch time → (word → count).
pub type Batches = std::collections::BTreeMap<u64, std::collections::BTreeMap<String, u64>>;

/// The `(word,count)` pairs of every batch `print` printed in `stdout`: batch time → (word →
/// count); a batch printed empty is there too.
pub fn batches(stdout: &str) -> Batches {
    let mut out = Batches::new();
    let mut current = None;
    for line in stdout.lines() {
        if let Some(t) = line
            .strip_prefix("Time: ")
            .and_then(|l| l.strip_suffix(" ms"))
        {
            current = t.parse().ok();
            if let Some(t) = current {
                out.entry(t).or_default();
            }
        } else if let (Some(t), Some(inner)) = (
            current,
            line.strip_prefix('(').and_then(|l| l.strip_suffix(')')),
        ) {
            if let Some((w, n)) = inner.rsplit_once(',') {
                if let Ok(n) = n.parse::<u64>() {
                    out.entry(t).or_default().insert(w.to_owned(), n);
                }
            }
        }
    }
    out
}

/// The sum over all batches, per word.
pub fn totals(batches: &Batches) -> std::collections::BTreeMap<String, u64> {
    let mut t = std::collections::BTreeMap::new();
    for words in batches.values() {
        for (w, n) in words {
            *t.entry(w.clone()).or_default() += n;
        }
    }
    t
}

/// Starts `sluice feed socket` on a free port with `args`; waits until it listens.
pub fn feed_socket(args: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = sluice();
    cmd.args(["feed", "socket", "--port", &port.to_string()])
        .args(args);
    let feed = Proc::spawn(cmd);
    assert!(
        wait_until(std::time::Duration::from_secs(10), || feed
            .err()
            .contains("listening")),
        "feed did not listen: {}",
        feed.err()
    );
    (feed, port)
}
