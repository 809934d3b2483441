//! sluice beside Spark Streaming 4.3 and Flink 2.3 on the course's socket jobs, on this machine,
//! in one run, fed by the same paced sender (`benches/common/paced.rs`), under one protocol:
//!
//! - **Every engine is a child process** reading the sender's port: sluice is this bench run
//!   again (`SLUICE_COMPARE_CHILD`), Spark `benches/spark/SluiceCompare.java` (`local[2]`),
//!   Flink `benches/flink/FlinkWordCount.java` (parallelism 2). sluice and Spark print one line
//!   per finished batch in the same form; CPU time and memory are each child's own, read from
//!   `/proc/<pid>` at every batch (the sender runs in this process and is not counted).
//! - **A quiet machine**: before every trial the bench waits until the other processes of the
//!   machine use at most 0.3 cores (measured over 3 s, `/proc/stat`), and it measures their load
//!   over the trial too (all busy CPU less this process and the child). A trial with more than
//!   0.3 cores of foreign load is run again, at most twice, and left out if still noisy.
//! - **Alternated runs**: `SLUICE_BENCH_RUNS` runs (default 3), each trying every engine on
//!   every workload, the engines' order reversed every other run; the table gives the median
//!   with min–max, and ratios of medians.
//! - **Stable** (micro-batch engines), as Spark's tuning guide puts it (batches processed as
//!   fast as they are generated): the steady batches (after the empty ones at the start and
//!   three more, for the JVM's warm-up) all had input, 90 % of them were processed within the
//!   1 s interval, the last one waited less than an interval (no queue builds up), and the
//!   sender delivered at least 98 % of the lines it offered over the trial (the receiver holds
//!   a sender back rather than fall behind, so delivery, not only delay, says whether a rate
//!   was kept up with). Flink has no batches: stable is the 98 % delivery alone. A trial is
//!   20 batches (12 with `SLUICE_BENCH_QUICK=1`, which leaves the JVMs too little warm-up to
//!   compare with).
//!
//! Workloads:
//! 1. `socket`: `flatMap(split).map((_, 1)).reduceByKey(_ + _)`, 1 s batches: the largest
//!    stable rate (searched up by half, then narrowed twice, from 100 000 lines/s for Spark and
//!    Flink and 400 000 for sluice, which keeps up with that in every run), and words per
//!    CPU-second at a fixed 200 000 lines/s (2 M words/s) — sluice `-w 1` and `-w 2`, Spark,
//!    Flink.
//! 2. `state`: the running word count (`updateStateByKey`, sluice's declared pure, each
//!    engine's full state counted every batch) at 100 000 lines/s (1 M words/s), 10 000 words:
//!    p50 and p90 processing, peak memory — sluice `-w 1`, Spark.
//! 3. `window`: `reduceByKeyAndWindow(_ + _, 3 s, 2 s)` at 100 000 lines/s: processing per 2 s
//!    of input (all steady batches' processing over their span, per 2 s), peak memory —
//!    sluice `-w 1`, Spark.
//!
//! Lines are 10 words from a 10 000-word vocabulary. `cargo bench --bench compare` (Spark and
//! Flink need `SPARK_HOME`, `SLUICE_SPARK_JAR`, `SLUICE_FLINK_CLASSPATH`; `benches/compare/run.sh`
//! sets them up, and an engine without them is skipped); `SLUICE_BENCH_QUICK=1` shortens every
//! trial. Prints the table and `RESULT <measure> <engine> <median>` lines.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/paced.rs"]
mod paced;
use paced::{Sender, WORDS_PER_LINE};

#[path = "compare/child.rs"]
mod child;
#[path = "compare/table.rs"]
mod table;

/// Foreign load above which a trial does not count, cores.
const MAX_FOREIGN: f64 = 0.3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Sluice(usize),
    Spark,
    Flink,
}

impl Engine {
    fn label(self) -> String {
        match self {
            Engine::Sluice(w) => format!("sluice -w {w}"),
            Engine::Spark => "Spark 4.3 local[2]".into(),
            Engine::Flink => "Flink 2.3 p=2".into(),
        }
    }
    fn key(self) -> String {
        match self {
            Engine::Sluice(w) => format!("sluice-w{w}"),
            Engine::Spark => "spark".into(),
            Engine::Flink => "flink".into(),
        }
    }
    fn installed(self) -> bool {
        match self {
            Engine::Sluice(_) => true,
            Engine::Spark => {
                std::env::var("SPARK_HOME").is_ok() && std::env::var("SLUICE_SPARK_JAR").is_ok()
            }
            Engine::Flink => std::env::var("SLUICE_FLINK_CLASSPATH").is_ok(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Socket,
    State,
    Window,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Socket => "socket",
            Workload::State => "state",
            Workload::Window => "window",
        }
    }
}

/// One batch as a child reported it, with the child's CPU ticks and RSS at that moment.
#[derive(Clone, Copy, Debug)]
struct Batch {
    records: u64,
    processing: Duration,
    scheduling: Duration,
    ticks: u64,
    rss_kib: u64,
}

/// What one trial measured.
#[derive(Clone, Debug)]
struct Trial {
    stable: bool,
    /// The steady batches' processing times, sorted.
    processing: Vec<Duration>,
    /// The same, in batch order.
    in_order: Vec<Duration>,
    /// Processing per 2 s of input over the steady batches.
    per_two_seconds: Option<Duration>,
    words_per_cpu_sec: Option<f64>,
    peak_rss_mib: f64,
    delivered: f64,
    /// Other processes' load over the trial, cores.
    foreign: f64,
}

impl Trial {
    fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.processing.len();
        (n > 0).then(|| self.processing[((n - 1) as f64 * p).round() as usize])
    }
}

/// Starts `engine` on `workload`, reading from `port`, for `batches` batches (or seconds).
fn spawn(engine: Engine, workload: Workload, port: u16, batches: u64) -> Option<Child> {
    let mut command = match engine {
        Engine::Sluice(threads) => {
            let mut c = Command::new(std::env::current_exe().ok()?);
            c.env(
                child::CHILD,
                format!("{} {threads} {port} {batches}", workload.name()),
            );
            c
        }
        Engine::Spark => {
            let home = std::env::var("SPARK_HOME").ok()?;
            let jar = std::env::var("SLUICE_SPARK_JAR").ok()?;
            let mode = match workload {
                Workload::Socket => "socket",
                Workload::State => "socket-state",
                Workload::Window => "socket-window",
            };
            let mut c = Command::new(format!("{home}/bin/spark-submit"));
            c.args([
                "--class",
                "SluiceCompare",
                "--driver-memory",
                "4g",
                &jar,
                mode,
            ])
            .arg(batches.to_string())
            .arg(port.to_string());
            c
        }
        Engine::Flink => {
            let classpath = std::env::var("SLUICE_FLINK_CLASSPATH").ok()?;
            let mut c = Command::new("java");
            c.args(["-Xmx4g", "-cp", &classpath, "FlinkWordCount"])
                .arg(port.to_string());
            c
        }
    };
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// One trial: `engine` on `workload` at `rate` lines/s for `secs` (batches of 1 s).
fn trial(
    engine: Engine,
    workload: Workload,
    rate: u64,
    secs: u64,
    text: &paced::Wire,
) -> Option<Trial> {
    let sender = Sender::start(rate, text);
    let machine_before = paced::busy_ticks();
    let own_before = paced::cpu_ticks("self");
    let started = Instant::now();
    let mut child = spawn(engine, workload, sender.port, secs)?;
    let pid = child.id().to_string();
    let mut batches = Vec::new();
    let mut child_ticks = 0;
    if engine == Engine::Flink {
        // No batches: the sender's delivery over the run is the verdict; CPU after 3 s.
        let deadline = Instant::now() + Duration::from_secs(60);
        while sender.sent_lines() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let warm = Duration::from_secs(3.min(secs));
        std::thread::sleep(warm);
        let (sent0, ticks0) = (sender.sent_lines(), paced::cpu_ticks(&pid));
        let mut peak = 0;
        let end = Instant::now() + Duration::from_secs(secs) - warm;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(500));
            peak = peak.max(paced::rss_kib(&pid));
        }
        child_ticks = paced::cpu_ticks(&pid);
        let words = (sender.sent_lines() - sent0) * WORDS_PER_LINE as u64;
        let _ = child.kill();
        let _ = child.wait();
        let (delivered, _) = sender.stop_delivered();
        let foreign = paced::foreign_load(machine_before, own_before, child_ticks, started);
        return Some(Trial {
            stable: delivered >= 0.98,
            processing: Vec::new(),
            in_order: Vec::new(),
            per_two_seconds: None,
            words_per_cpu_sec: paced::per_cpu_sec(words, child_ticks.saturating_sub(ticks0)),
            peak_rss_mib: peak as f64 / 1024.0,
            delivered,
            foreign,
        });
    }
    let stdout = child.stdout.take()?;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some((records, processing, scheduling)) = child::parse_batch(&line) {
            child_ticks = paced::cpu_ticks(&pid);
            batches.push(Batch {
                records,
                processing,
                scheduling,
                ticks: child_ticks,
                rss_kib: paced::rss_kib(&pid),
            });
        }
    }
    let _ = child.wait();
    let (delivered, _) = sender.stop_delivered();
    let foreign = paced::foreign_load(machine_before, own_before, child_ticks, started);
    Some(verdict(&batches, delivered, foreign))
}

/// The verdict on a micro-batch trial (see the module docs).
fn verdict(batches: &[Batch], delivered: f64, foreign: f64) -> Trial {
    let steady: Vec<Batch> = batches
        .iter()
        .skip_while(|b| b.records == 0)
        .skip(3)
        .copied()
        .collect();
    let in_order: Vec<Duration> = steady.iter().map(|b| b.processing).collect();
    let mut processing = in_order.clone();
    processing.sort();
    let p90 = processing
        .get(((processing.len().max(1) - 1) as f64 * 0.9).round() as usize)
        .copied()
        .unwrap_or_default();
    let last_delay = steady.last().map(|b| b.scheduling).unwrap_or_default();
    let stable = !steady.is_empty()
        && steady.iter().all(|b| b.records > 0)
        && p90 < Duration::from_secs(1)
        && last_delay < Duration::from_secs(1)
        && delivered >= 0.98;
    // CPU from the first steady batch's report to the last's, for the batches after the first.
    let (words_per_cpu_sec, per_two_seconds) = match (steady.first(), steady.last()) {
        (Some(first), Some(last)) if steady.len() > 1 => {
            let lines: u64 = steady.iter().skip(1).map(|b| b.records).sum();
            let busy: Duration = steady.iter().skip(1).map(|b| b.processing).sum();
            let per_two = busy.mul_f64(2.0 / (steady.len() - 1) as f64);
            (
                paced::per_cpu_sec(
                    lines * WORDS_PER_LINE as u64,
                    last.ticks.saturating_sub(first.ticks),
                ),
                Some(per_two),
            )
        }
        _ => (None, None),
    };
    let peak = batches.iter().map(|b| b.rss_kib).max().unwrap_or(0);
    Trial {
        stable,
        processing,
        in_order,
        per_two_seconds,
        words_per_cpu_sec,
        peak_rss_mib: peak as f64 / 1024.0,
        delivered,
        foreign,
    }
}

/// A trial on a quiet machine: waits for one, and runs the trial again (at most twice) when
/// other processes loaded the machine during it. `None`: not installed, or never quiet.
fn quiet_trial(
    engine: Engine,
    workload: Workload,
    rate: u64,
    secs: u64,
    text: &paced::Wire,
) -> Option<Trial> {
    for _ in 0..3 {
        let before = paced::wait_quiet(MAX_FOREIGN, Duration::from_secs(180));
        let t = trial(engine, workload, rate, secs, text)?;
        eprintln!(
            "  {} {} at {rate} lines/s: {} (delivered {:.1} %, p50/p90 {} ms, foreign load {:.2} before, {:.2} during)",
            engine.label(),
            workload.name(),
            if t.stable { "stable" } else { "not stable" },
            t.delivered * 100.0,
            [0.5, 0.9]
                .map(|p| t
                    .percentile(p)
                    .map_or("–".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3)))
                .join("/"),
            before,
            t.foreign
        );
        if t.foreign <= MAX_FOREIGN && before <= MAX_FOREIGN {
            return Some(t);
        }
    }
    eprintln!(
        "  {} {}: left out, the machine was never quiet",
        engine.label(),
        workload.name()
    );
    None
}

/// `SLUICE_BENCH_TRIAL="<engine> <workload> <lines/s>"` (`sluice-w1 state 100000`): one trial
/// on a quiet machine, every batch's processing time printed, for comparing two builds or
/// settings without the whole protocol.
fn one_trial(spec: &str, secs: u64) {
    let f: Vec<&str> = spec.split_whitespace().collect();
    let engine = match f.first().copied() {
        Some("sluice-w1") => Engine::Sluice(1),
        Some("sluice-w2") => Engine::Sluice(2),
        Some("spark") => Engine::Spark,
        Some("flink") => Engine::Flink,
        _ => {
            return eprintln!(
                "SLUICE_BENCH_TRIAL: the engine is sluice-w1, sluice-w2, spark or flink"
            );
        }
    };
    let workload = match f.get(1).copied() {
        Some("state") => Workload::State,
        Some("window") => Workload::Window,
        _ => Workload::Socket,
    };
    let rate = f.get(2).and_then(|r| r.parse().ok()).unwrap_or(100_000);
    let text = paced::wire(&paced::lines());
    if let Some(t) = quiet_trial(engine, workload, rate, secs, &text) {
        let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
        println!(
            "{} {} at {rate} lines/s: stable {}, delivered {:.1} %, p50/p90/max {}/{}/{} ms, per 2 s {} ms, {:.2} M words per CPU-second, peak {:.0} MiB, foreign load {:.2}",
            engine.label(),
            workload.name(),
            t.stable,
            t.delivered * 100.0,
            t.percentile(0.5).map_or("–".into(), ms),
            t.percentile(0.9).map_or("–".into(), ms),
            t.percentile(1.0).map_or("–".into(), ms),
            t.per_two_seconds.map_or("–".into(), ms),
            t.words_per_cpu_sec.unwrap_or(0.0) / 1e6,
            t.peak_rss_mib,
            t.foreign
        );
        println!(
            "steady batches' processing, in order: {:?} ms",
            t.in_order.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
        );
    }
}

fn main() {
    if let Some(spec) = child::spec() {
        child::run(&spec);
        return;
    }
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok();
    if let Ok(spec) = std::env::var("SLUICE_BENCH_TRIAL") {
        return one_trial(&spec, if quick { 12 } else { 20 });
    }
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let secs = if quick { 12 } else { 20 };
    let (cores, load) = paced::machine();
    println!(
        "# sluice, Spark Streaming, Flink: {cores} cores, load average {load} at the start; {runs} runs, engines alternated, foreign load ≤ {MAX_FOREIGN} cores; {WORDS_PER_LINE} words a line; 1 s batches; the sender shares the cores\n"
    );
    let text = paced::wire(&paced::lines());
    let mut results = table::Results::default();
    let engines: Vec<Engine> = [
        Engine::Sluice(1),
        Engine::Sluice(2),
        Engine::Spark,
        Engine::Flink,
    ]
    .into_iter()
    .filter(|e| {
        let ok = e.installed();
        if !ok {
            eprintln!("{}: not installed, skipped", e.label());
        }
        ok
    })
    .collect();
    for run in 0..runs {
        let mut order = engines.clone();
        if run % 2 == 1 {
            order.reverse();
        }
        eprintln!(
            "== run {} of {runs}: {}",
            run + 1,
            order
                .iter()
                .map(|e| e.label())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for &engine in &order {
            // The largest stable rate of the word count.
            let start = if matches!(engine, Engine::Sluice(_)) {
                400_000
            } else {
                100_000
            };
            let found = paced::largest_stable(start, 8_000_000, |rate| {
                let t = quiet_trial(engine, Workload::Socket, rate, secs, &text)?;
                Some((t.stable, t))
            });
            if let Some(found) = found {
                let rate = found.map_or(0, |(rate, _)| rate);
                results.add("stable-rate", engine, rate as f64 * WORDS_PER_LINE as f64);
            }
            // Words per CPU-second at 2 M words/s.
            if let Some(t) = quiet_trial(engine, Workload::Socket, 200_000, secs, &text)
                && let Some(w) = t.words_per_cpu_sec
            {
                results.add("cpu", engine, w);
                results.add("socket-rss", engine, t.peak_rss_mib);
            }
            if matches!(engine, Engine::Sluice(1) | Engine::Spark) {
                if let Some(t) = quiet_trial(engine, Workload::State, 100_000, secs, &text) {
                    results.add_trial("state", engine, &t);
                }
                if let Some(t) = quiet_trial(engine, Workload::Window, 100_000, secs, &text) {
                    results.add_trial("window", engine, &t);
                }
            }
        }
    }
    results.print();
    let _ = std::io::stdout().flush();
}
