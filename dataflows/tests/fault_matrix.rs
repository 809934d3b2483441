//! The fault matrix: three checkpointed jobs × every fault of the checkpoint, the disk and the
//! clock. Each case runs the job on a first part of the input and stops it (gracefully, or
//! with SIGKILL), applies the fault, restarts the job on the second part, and classifies what
//! it did: **exact** (every record counted once), **refused** (the job stopped by itself with
//! a message and the output is not wrong), or **wrong** (anything else: a record counted twice
//! or lost, a silent stall). Every case states the outcome it must have; none may be wrong.
//! `benches/fault-matrix.sh` prints the table (`fault-matrix` lines of this test).
//!
//! Jobs: `stateful-wordcount` over a socket with its write-ahead log; `kafka-wordcount`
//! (Kafka → state → Kafka, exactly once); `kafka-to-postgres` (Kafka → PostgreSQL, rows and
//! offsets in one transaction) with a checkpoint.

/// The test broker, shared with the library's tests.
#[path = "../../tests/common/kafka.rs"]
mod broker;
mod common;
#[path = "fault_matrix/damage.rs"]
mod damage;
#[path = "fault_matrix/report.rs"]
mod report;

use std::io::Write;

use common::{Proc, fresh_postgres, wait_until};
use damage::{Fault, mount_tmpfs};
use report::{progress, shorten};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FIRST: usize = 300;
const SECOND: usize = 200;
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobKind {
    Socket,
    KafkaState,
    KafkaPostgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Exact,
    Refused,
    Wrong,
}

/// What each case must end in (one outcome, or either where it depends on timing), and why.
fn expected(job: JobKind, fault: Fault) -> &'static [Outcome] {
    use Fault::*;
    const EXACT: &[Outcome] = &[Outcome::Exact];
    const REFUSED: &[Outcome] = &[Outcome::Refused];
    const EITHER: &[Outcome] = &[Outcome::Exact, Outcome::Refused];
    match (job, fault) {
        // The plans say which input the restored state counted: without the snapshot batch's
        // plan a socket job cannot tell which of its log's lines that state holds (refused);
        // Kafka resumes from the offsets the last finished batch committed, which is exact.
        (JobKind::Socket, PlansDeleted | PlanTruncated | PlanBitFlip) => REFUSED,
        // Another job's checkpoint is refused by name; a directory that cannot be written
        // cannot take this run's plans; damaged metadata (identity, time line) is refused.
        (_, OtherJobsCheckpoint | ReadOnlyDirectory | MetadataBitFlip) => REFUSED,
        // Every snapshot gone, and the plans start after the job's first batch (older ones
        // are pruned): the state cannot be rebuilt, refused — also for a job without state,
        // which could have gone on (noted in the README).
        (_, SnapshotsDeleted) => REFUSED,
        // Which write meets the full disk first (a plan, a snapshot, the completed mark)
        // depends on timing: the job refuses, or goes on and says it cannot checkpoint.
        (_, DiskFull) => EITHER,
        _ => EXACT,
    }
}

/// What a job has output so far, compared with what it must: `counts[i]` against `want[i]`.
struct Observed {
    counts: Vec<u64>,
    want: Vec<u64>,
}

impl Observed {
    fn exact(&self) -> bool {
        self.counts == self.want
    }
    fn over(&self) -> bool {
        self.counts.iter().zip(&self.want).any(|(c, w)| c > w)
    }
}

/// One case's world: the job's input and output, and its checkpoint directory.
struct Case<'b> {
    job: JobKind,
    fault: Fault,
    dir: tempfile::TempDir,
    checkpoint: PathBuf,
    broker: &'b broker::Broker,
    brokers: String,
    tag: String,
    listener: Option<TcpListener>,
    url: String,
    mounted: bool,
}

fn words(i: usize) -> String {
    format!("w{}", i % 10)
}

impl<'b> Case<'b> {
    fn new(job: JobKind, fault: Fault, broker: &'b broker::Broker, n: usize) -> Case<'b> {
        let brokers = broker.brokers();
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("ck");
        std::fs::create_dir_all(&checkpoint).unwrap();
        let mounted = matches!(fault, Fault::ReadOnlyDirectory | Fault::DiskFull)
            && mount_tmpfs(&checkpoint, "4m");
        let tag = format!("fm{n}p{}", std::process::id());
        let listener = (job == JobKind::Socket).then(|| TcpListener::bind("127.0.0.1:0").unwrap());
        let url = if job == JobKind::KafkaPostgres {
            fresh_postgres(&tag)
        } else {
            String::new()
        };
        if job != JobKind::Socket {
            broker.create_topic(&format!("{tag}-in"), 2);
            broker.create_topic(&format!("{tag}-out"), 2);
        }
        Case {
            job,
            fault,
            dir,
            checkpoint,
            broker,
            brokers,
            tag,
            listener,
            url,
            mounted,
        }
    }

    fn command(&self, other_job: bool, clock: Option<&str>, restart: bool) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        if let Some(shift) = clock {
            // The wall clock only, as a clock set back or stepped by NTP; the monotonic clock
            // runs on.
            cmd.env("LD_PRELOAD", FAKETIME)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            if shift == "file" {
                cmd.env("FAKETIME_TIMESTAMP_FILE", self.dir.path().join("faketime"))
                    .env("FAKETIME_NO_CACHE", "1");
            } else {
                cmd.env("FAKETIME", shift);
            }
        }
        let port = self
            .listener
            .as_ref()
            .map(|l| l.local_addr().unwrap().port().to_string())
            .unwrap_or_default();
        if other_job {
            // A socket job of another name writes the checkpoint.
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let other = l.local_addr().unwrap().port().to_string();
            cmd.args(["run", "driver-ha-wordcount", "--port", &other]);
            std::mem::forget(l);
        } else {
            match self.job {
                JobKind::Socket => {
                    // The same server by another name: one source.
                    let host = if restart && self.fault == Fault::SourceNamedAnotherWay {
                        "localhost"
                    } else {
                        "127.0.0.1"
                    };
                    cmd.args(["run", "stateful-wordcount", "--host", host, "--port", &port]);
                }
                JobKind::KafkaState => {
                    cmd.args(["run", "kafka-wordcount", "--brokers", &self.brokers])
                        .args([
                            "--topics",
                            &format!("{}-in", self.tag),
                            "--group",
                            &self.tag,
                        ])
                        .args([
                            "--offset-reset",
                            "earliest",
                            "--to",
                            &format!("{}-out", self.tag),
                        ]);
                }
                JobKind::KafkaPostgres => {
                    cmd.args(["run", "kafka-to-postgres", "--brokers", &self.brokers])
                        .args([
                            "--topics",
                            &format!("{}-in", self.tag),
                            "--group",
                            &self.tag,
                        ])
                        .args(["--offset-reset", "earliest", "--mode", "transactional"])
                        .args(["--url", &self.url]);
                }
            }
        }
        cmd.args(["--batch", "200ms", "--checkpoint-interval", "200ms"])
            .arg("--checkpoint")
            .arg(&self.checkpoint);
        cmd
    }

    /// Sends records `from..to` (socket: accepts the job's connection first).
    fn feed(&self, from: usize, to: usize) {
        match self.job {
            JobKind::Socket => {
                // The receiver connects once it runs; at most 20 s.
                let l = self.listener.as_ref().unwrap();
                l.set_nonblocking(true).unwrap();
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if let Ok((mut conn, _)) = l.accept() {
                        conn.set_nonblocking(false).unwrap();
                        for i in from..to {
                            conn.write_all(format!("{}\n", words(i)).as_bytes())
                                .unwrap();
                        }
                        // Kept open: the receiver must not see the end of its stream.
                        std::mem::forget(conn);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            JobKind::KafkaState => {
                let broker = broker::Broker::attach(&self.brokers);
                for p in 0..2 {
                    let values: Vec<String> =
                        (from..to).filter(|i| i % 2 == p).map(words).collect();
                    broker.produce(&format!("{}-in", self.tag), p as i32, &values);
                }
            }
            JobKind::KafkaPostgres => {
                let broker = broker::Broker::attach(&self.brokers);
                for p in 0..2 {
                    let values: Vec<String> = (from..to)
                        .filter(|i| i % 2 == p)
                        .map(|i| format!("name{i},{i}"))
                        .collect();
                    broker.produce(&format!("{}-in", self.tag), p as i32, &values);
                }
            }
        }
    }

    /// What the job output, against records `0..n`.
    fn observe(&self, job: &Proc, n: usize) -> Observed {
        match self.job {
            JobKind::Socket | JobKind::KafkaState => {
                let mut want = vec![0u64; 10];
                for i in 0..n {
                    want[i % 10] += 1;
                }
                let mut counts = vec![0u64; 10];
                let mut note = |w: &str, c: &str| {
                    if let (Some(i), Ok(c)) = (
                        w.strip_prefix('w').and_then(|d| d.parse::<usize>().ok()),
                        c.parse::<u64>(),
                    ) {
                        if i < 10 {
                            counts[i] = counts[i].max(c);
                        }
                    }
                };
                if self.job == JobKind::Socket {
                    for line in job.out.lock().unwrap().lines() {
                        if let Some((w, c)) = line
                            .strip_prefix('(')
                            .and_then(|l| l.strip_suffix(')'))
                            .and_then(|l| l.split_once(','))
                        {
                            note(w, c);
                        }
                    }
                } else {
                    for (r, _) in self
                        .broker
                        .read_all_with(&format!("{}-out", self.tag), "read_committed")
                    {
                        if let Some((w, c)) = r.split_once('\t') {
                            note(w, c);
                        }
                    }
                }
                Observed { counts, want }
            }
            JobKind::KafkaPostgres => {
                let mut counts = vec![0u64; n];
                if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
                    if let Ok(rows) = c.query("SELECT id, COUNT(*) FROM mydata GROUP BY id", &[]) {
                        for r in rows {
                            let (id, k): (i64, i64) = (r.get(0), r.get(1));
                            if (id as usize) < n {
                                counts[id as usize] = k as u64;
                            } else {
                                counts.push(k as u64); // an id that was never sent
                            }
                        }
                    }
                }
                let mut want = vec![1u64; n];
                want.resize(counts.len(), 0);
                Observed { counts, want }
            }
        }
    }

    /// Runs the case; its outcome and a note.
    fn run(&self) -> (Outcome, String) {
        // The first run: the first part, then a stop (or SIGKILL).
        let mut first =
            Proc::spawn(self.command(self.fault == Fault::OtherJobsCheckpoint, None, false));
        if self.fault == Fault::OtherJobsCheckpoint {
            // The other job runs a few batches (its checkpoint is then its own), then stops.
            first.expect_more_batches(3);
            first.signal("-TERM");
        } else {
            self.feed(0, FIRST);
            if !wait_until(Duration::from_secs(40), || {
                self.observe(&first, FIRST).exact()
            }) {
                return (
                    Outcome::Wrong,
                    format!(
                        "the first run never counted the first part: {}",
                        first.err()
                    ),
                );
            }
            if self.fault == Fault::SecondCopyWhileRunning {
                // Refused at once (exit 2, naming the holder), before it reads or writes the
                // checkpoint or counts anything; the first run goes on.
                let mut copy = Proc::spawn(self.command(false, None, false));
                let refused = copy.wait_exit(Duration::from_secs(20));
                let said = copy.err();
                if refused.map(|(code, _)| code) != Some(2) || !said.contains("is in use by") {
                    copy.signal("-KILL");
                    return (
                        Outcome::Wrong,
                        format!("the second copy was not refused: {}", shorten(&said)),
                    );
                }
                if copy.out.lock().unwrap().contains('(') {
                    return (Outcome::Wrong, "the second copy output counts".into());
                }
            }
            std::thread::sleep(Duration::from_millis(600));
            let sig = if matches!(self.fault, Fault::Sigkill | Fault::SourceNamedAnotherWay) {
                "-KILL"
            } else {
                "-TERM"
            };
            if first.signal(sig) == common::HUNG_CODE {
                return (
                    Outcome::Wrong,
                    format!(
                        "the first run did not stop on {sig}: {}",
                        shorten(&first.err())
                    ),
                );
            }
        }
        drop(first);
        if let Err(e) = damage::apply(self.fault, &self.checkpoint) {
            return (
                Outcome::Wrong,
                format!("the fault could not be applied: {e}"),
            );
        }
        let clock = match self.fault {
            Fault::ClockBackOneHour => Some("-1h"),
            Fault::ClockForwardTenMinutes => Some("+10m"),
            Fault::ClockJumpsBackWhileRunning => {
                let _ = std::fs::write(self.dir.path().join("faketime"), "+0\n");
                Some("file")
            }
            _ => None,
        };
        let mut second = Proc::spawn(self.command(false, clock, true));
        let total = FIRST + SECOND;
        if self.fault == Fault::OtherJobsCheckpoint {
            // The first part never went in: the second run would count everything.
            self.feed(0, FIRST);
        }
        if self.job == JobKind::Socket {
            // The receiver connects once it runs; a refused job never does.
            let l = self.listener.as_ref().unwrap();
            l.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok((mut conn, _)) = l.accept() {
                    conn.set_nonblocking(false).unwrap();
                    for i in FIRST..total {
                        conn.write_all(format!("{}\n", words(i)).as_bytes())
                            .unwrap();
                    }
                    std::mem::forget(conn);
                    break;
                }
                if second.exited().is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            self.feed(FIRST, total);
        }
        if self.fault == Fault::ClockJumpsBackWhileRunning {
            std::thread::sleep(Duration::from_millis(300));
            let _ = std::fs::write(self.dir.path().join("faketime"), "-1h\n");
        }
        let ended = wait_until(Duration::from_secs(40), || {
            second.exited().is_some() || self.observe(&second, total).exact()
        });
        let code = match second.exited() {
            Some(code) => Some(code),
            None => {
                std::thread::sleep(Duration::from_millis(500));
                None
            }
        };
        let seen = self.observe(&second, total);
        let err = second.err();
        let last_line = err
            .lines()
            .rev()
            .find(|l| l.contains("error"))
            .unwrap_or("")
            .to_owned();
        match code {
            Some(code) if code != 0 => {
                if seen.over() {
                    (
                        Outcome::Wrong,
                        format!("refused (exit {code}) after counting records twice"),
                    )
                } else if last_line.is_empty() {
                    (
                        Outcome::Wrong,
                        format!("exit {code} without a message: {err}"),
                    )
                } else {
                    (
                        Outcome::Refused,
                        format!("exit {code}: {}", shorten(&last_line)),
                    )
                }
            }
            Some(_) => (Outcome::Wrong, "stopped by itself with exit 0".into()),
            None => {
                let code = second.signal("-TERM");
                if code == common::HUNG_CODE {
                    return (
                        Outcome::Wrong,
                        format!("did not stop on SIGTERM: {}", shorten(&second.err())),
                    );
                }
                let seen = self.observe(&second, total);
                let said = second
                    .err()
                    .lines()
                    .rev()
                    .find(|l| l.contains("error"))
                    .map(shorten);
                if ended && seen.exact() && code == 0 {
                    (Outcome::Exact, "every record once".into())
                } else if ended && seen.exact() && said.is_some() {
                    // Every record once; the stop then said what it could not do.
                    (
                        Outcome::Exact,
                        format!(
                            "every record once; the stop: exit {code}, {}",
                            said.unwrap_or_default()
                        ),
                    )
                } else {
                    if std::env::var("FAULT_MATRIX_VERBOSE").is_ok() {
                        eprintln!("--- {:?} {:?}:\n{err}", self.job, self.fault);
                    }
                    (
                        Outcome::Wrong,
                        format!(
                            "counts {:?} of {:?}, exit {code}: {}",
                            seen.counts.iter().take(10).collect::<Vec<_>>(),
                            seen.want.iter().take(10).collect::<Vec<_>>(),
                            shorten(&err)
                        ),
                    )
                }
            }
        }
    }
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.checkpoint)
                .status();
        }
        let _ = &self.dir;
    }
}

#[test]
fn every_fault_ends_exact_or_refused() {
    use Fault::*;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let faketime = Path::new(FAKETIME).exists();
    let broker = broker::Broker::start();
    let mut cases = Vec::new();
    for job in [JobKind::Socket, JobKind::KafkaState, JobKind::KafkaPostgres] {
        for fault in Fault::ALL {
            if matches!(fault, WalTruncated | WalDeleted | SourceNamedAnotherWay)
                && job != JobKind::Socket
            {
                continue; // only a receiver has a write-ahead log, and a host name
            }
            let case = format!("fault-matrix\t{fault:?}\t{job:?}");
            if matches!(fault, ReadOnlyDirectory | DiskFull) && !root {
                common::skip_without("root", &format!("{case}\tneeds root to mount a tmpfs"));
                continue;
            }
            let clock = matches!(
                fault,
                ClockBackOneHour | ClockForwardTenMinutes | ClockJumpsBackWhileRunning
            );
            if clock && job != JobKind::Socket {
                // libfaketime also shifts librdkafka's own timed waits, which a real jump of
                // the wall clock does not (they wait on the monotonic clock): not simulated
                // faithfully. sluice's clock is the same code in every job.
                continue;
            }
            if clock && !faketime {
                let why = format!("{case}\tneeds libfaketime: apt-get install faketime");
                common::skip_without("faketime", &why);
                continue;
            }
            let only = std::env::var("FAULT_MATRIX_ONLY").unwrap_or_default();
            if !only.is_empty()
                && !only
                    .split(',')
                    .any(|o| format!("{fault:?}") == o || format!("{job:?}") == o)
            {
                continue;
            }
            cases.push((job, fault));
        }
    }
    // Six cases at a time (they mostly wait for the jobs).
    let results: Mutex<Vec<(JobKind, Fault, Outcome, String)>> = Mutex::new(Vec::new());
    let queue = Mutex::new(cases.into_iter().enumerate().collect::<Vec<_>>());
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                loop {
                    let Some((n, (job, fault))) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    progress(&format!("fault-matrix case {fault:?} × {job:?} starts"));
                    let case = Case::new(job, fault, &broker, n);
                    let (outcome, note) = case.run();
                    progress(&format!(
                        "fault-matrix\t{fault:?}\t{job:?}\t{outcome:?}\t(must be {:?})\t{note}",
                        expected(job, fault)
                    ));
                    results.lock().unwrap().push((job, fault, outcome, note));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let bad: Vec<String> = results
        .iter()
        .filter(|(job, fault, outcome, _)| !expected(*job, *fault).contains(outcome))
        .map(|(job, fault, outcome, note)| {
            format!(
                "{fault:?} × {job:?}: {outcome:?}, must be {:?} ({note})",
                expected(*job, *fault)
            )
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(results.iter().all(|(_, _, o, _)| *o != Outcome::Wrong));
}
