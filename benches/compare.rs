//! The course's socket word count (§2.2) on sluice, Spark Streaming and Flink, on the same
//! machine in the same run, fed by the same paced sender (`benches/common/paced.rs`): the largest
//! rate each keeps up with.
//!
//! - sluice `-w 1` and `-w 2`, in this process: 1 s batches; stable when p99 processing stays
//!   under 950 ms, the receiver never holds the sender back, and the sender ends less than
//!   0.2 s of input behind.
//! - Spark Streaming 4.3, `local[2]` (`benches/spark/SluiceCompare.java`, mode `socket`): 1 s
//!   batches; stable on the same rule (p99 processing, last scheduling delay under 1 s, sender
//!   lag). Needs `SPARK_HOME` (the pyspark wheel's folder) and the compiled class in
//!   `SLUICE_SPARK_JAR`; `benches/compare/run.sh` sets both up.
//! - Flink 2.3 (`benches/flink/FlinkWordCount.java`, parallelism 2, 1 s tumbling
//!   processing-time windows): it has no batches, so stable means the sender ends less than
//!   0.2 s of input behind. Needs `SLUICE_FLINK_CLASSPATH`; skipped without it.
//!
//! At the rate found, each engine's words per CPU-second: the CPU time of all its threads (the
//! JVM's for Spark and Flink, this process's less the sender thread's for sluice) over the
//! steady part of the trial (Spark: from its first steady batch's report to its last; Flink:
//! after a 3 s warm-up; sluice: the whole run, which has no warm-up to speak of).
//!
//! Each engine's search starts at 50 000 lines/s, grows by half until a rate is not kept up
//! with, then narrows the last step twice (`paced::largest_stable`). Prints a table and `RESULT socket <engine> <lines/s>` lines for `benches/compare/run.sh`.
//! `cargo bench --bench compare`; `SLUICE_BENCH_QUICK=1` shortens every trial.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::SocketOptions;

#[path = "common/paced.rs"]
mod paced;
use paced::{Sender, WORDS_PER_LINE};

/// What one trial at one rate measured.
struct Trial {
    stable: bool,
    /// p50 and p99 processing time of the steady batches (micro-batch engines).
    p50_p99: Option<(Duration, Duration)>,
    lag_lines: u64,
    /// Words counted per CPU-second of the engine (all its threads, not the sender's), over the
    /// steady part of the trial.
    words_per_cpu_sec: Option<f64>,
}

/// Words of `lines` per CPU-second of `ticks`.
fn per_cpu_sec(lines: u64, ticks: u64) -> Option<f64> {
    (ticks > 0)
        .then(|| (lines * WORDS_PER_LINE as u64) as f64 / (ticks as f64 / paced::TICKS_PER_SEC))
}

#[derive(Clone, Copy, Debug)]
enum Engine {
    Sluice(usize),
    Spark,
    Flink,
}

impl Engine {
    fn label(self) -> String {
        match self {
            Engine::Sluice(w) => format!("sluice -w {w}"),
            Engine::Spark => "Spark Streaming 4.3 local[2]".into(),
            Engine::Flink => "Flink 2.3, parallelism 2".into(),
        }
    }
    fn key(self) -> String {
        match self {
            Engine::Sluice(w) => format!("sluice-w{w}"),
            Engine::Spark => "spark".into(),
            Engine::Flink => "flink".into(),
        }
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<BatchInfo>>>);

impl StreamingListener for Timeline {
    fn on_batch_completed(&self, b: &BatchInfo) {
        self.0.lock().unwrap().push(b.clone());
    }
}

/// The verdict on micro-batches: `(processing, scheduling delay)` of the steady batches.
fn micro_batch_trial(steady: &[(Duration, Duration)], lag_lines: u64, rate: u64) -> Trial {
    let processing: Vec<Duration> = steady.iter().map(|(p, _)| *p).collect();
    let (p50, p99) = (
        percentile(processing.clone(), 0.5),
        percentile(processing, 0.99),
    );
    let last_delay = steady.last().map(|(_, d)| *d).unwrap_or_default();
    Trial {
        stable: !steady.is_empty()
            && p99 < Duration::from_millis(950)
            && last_delay < Duration::from_secs(1)
            && lag_lines < rate / 5,
        p50_p99: Some((p50, p99)),
        lag_lines,
        words_per_cpu_sec: None,
    }
}

fn sluice_trial(threads: usize, rate: u64, secs: u64, text: &Arc<Vec<u8>>) -> Trial {
    let cpu_before = paced::cpu_ticks("self");
    let sender = Sender::start(rate, text);
    let port = sender.port;
    let timeline = Timeline::default();
    paced::run_wordcount(
        threads,
        port,
        secs,
        SocketOptions::default(),
        timeline.clone(),
    );
    let (lag, sender_ticks) = sender.stop();
    let job_ticks = paced::cpu_ticks("self").saturating_sub(cpu_before + sender_ticks);
    let batches = std::mem::take(&mut *timeline.0.lock().unwrap());
    let held_back: u64 = batches
        .iter()
        .flat_map(|b| b.inputs.iter().filter_map(|i| i.receiver.as_ref()))
        .map(|r| r.held_back_ms)
        .sum();
    // The first two batches are left out: the receiver connects during the first.
    let steady: Vec<(Duration, Duration)> = batches
        .iter()
        .skip(2)
        .map(|b| (b.processing_time, b.scheduling_delay))
        .collect();
    let mut t = micro_batch_trial(&steady, lag, rate);
    t.stable &= held_back < 100;
    // sluice's whole run: it starts in milliseconds, so there is no warm-up to leave out.
    let lines: u64 = batches.iter().map(|b| b.num_records()).sum();
    t.words_per_cpu_sec = per_cpu_sec(lines, job_ticks);
    t
}

fn spark_trial(rate: u64, batches: u64, text: &Arc<Vec<u8>>) -> Option<Trial> {
    let home = std::env::var("SPARK_HOME").ok()?;
    let jar = std::env::var("SLUICE_SPARK_JAR").ok()?;
    let sender = Sender::start(rate, text);
    let mut child = Command::new(format!("{home}/bin/spark-submit"))
        .args([
            "--class",
            "SluiceCompare",
            "--driver-memory",
            "4g",
            &jar,
            "socket",
        ])
        .arg(batches.to_string())
        .arg(sender.port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    // spark-submit execs the JVM: its CPU time, read as each batch is reported.
    let pid = child.id().to_string();
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        // batch <ms> records <n> processing_ms <p> scheduling_ms <s> since_start_ms <x>
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"batch") && f.len() >= 8 {
            let ms = |i: usize| Duration::from_millis(f[i].parse().unwrap_or(0));
            let ticks = paced::cpu_ticks(&pid);
            seen.push((f[3].parse::<u64>().unwrap_or(0), ms(5), ms(7), ticks));
        }
    }
    let (lag, _) = sender.stop();
    let _ = child.wait();
    // Spark's receiver starts during its first batches, and its first batches with input run
    // while the JIT warms up: the empty ones before the first input and three more are left out.
    let steady: Vec<(u64, Duration, Duration, u64)> = seen
        .into_iter()
        .skip_while(|(records, ..)| *records == 0)
        .skip(3)
        .collect();
    let times: Vec<(Duration, Duration)> = steady.iter().map(|(_, p, d, _)| (*p, *d)).collect();
    let mut t = micro_batch_trial(&times, lag, rate);
    // CPU from the first steady batch's report to the last's, for the batches after the first.
    if let (Some(first), Some(last)) = (steady.first(), steady.last()) {
        let lines = steady.iter().skip(1).map(|(r, ..)| r).sum();
        t.words_per_cpu_sec = per_cpu_sec(lines, last.3.saturating_sub(first.3));
    }
    Some(t)
}

fn flink_trial(rate: u64, secs: u64, text: &Arc<Vec<u8>>) -> Option<Trial> {
    let classpath = std::env::var("SLUICE_FLINK_CLASSPATH").ok()?;
    let sender = Sender::start(rate, text);
    let mut child = Command::new("java")
        .args(["-Xmx4g", "-cp", &classpath, "FlinkWordCount"])
        .arg(sender.port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // The sender's clock starts when Flink's source connects.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sender.sent_lines() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // CPU per word over the run after a 3 s warm-up (the JVM's, not the sender's).
    let pid = child.id().to_string();
    let warm_up = Duration::from_secs(3.min(secs));
    std::thread::sleep(warm_up);
    let (sent0, ticks0) = (sender.sent_lines(), paced::cpu_ticks(&pid));
    std::thread::sleep(Duration::from_secs(secs) - warm_up);
    let (sent1, ticks1) = (sender.sent_lines(), paced::cpu_ticks(&pid));
    let lag = sender.lag_lines();
    let _ = child.kill();
    let _ = child.wait();
    let _ = sender.stop();
    Some(Trial {
        stable: lag < rate / 5,
        p50_p99: None,
        lag_lines: lag,
        words_per_cpu_sec: per_cpu_sec(sent1.saturating_sub(sent0), ticks1.saturating_sub(ticks0)),
    })
}

/// The largest stable rate of `engine`, searching from 50 000 lines/s up by half.
/// The largest stable rate of `engine` (see [`paced::largest_stable`]); `None` when it is not
/// installed, a rate of 0 when not even 50 000 lines/s is kept up with.
fn search(engine: Engine, quick: bool, text: &Arc<Vec<u8>>) -> Option<(u64, Option<Trial>)> {
    let found = paced::largest_stable(50_000, 8_000_000, |rate| {
        let trial = match engine {
            Engine::Sluice(w) => Some(sluice_trial(w, rate, if quick { 6 } else { 12 }, text)),
            Engine::Spark => spark_trial(rate, if quick { 12 } else { 20 }, text),
            Engine::Flink => flink_trial(rate, if quick { 8 } else { 15 }, text),
        }?;
        eprintln!(
            "{}: {rate} lines/s {} (lag {} lines{})",
            engine.label(),
            if trial.stable { "stable" } else { "not stable" },
            trial.lag_lines,
            trial.p50_p99.map_or(String::new(), |(p50, p99)| format!(
                ", p50/p99 {:.0}/{:.0} ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            ))
        );
        Some((trial.stable, trial))
    })?;
    Some(match found {
        Some((rate, trial)) => (rate, Some(trial)),
        None => (0, None),
    })
}

fn main() {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok();
    let (cores, load) = paced::machine();
    println!(
        "# socket word count: sluice, Spark Streaming, Flink ({} cores, load average {}; {WORDS_PER_LINE} words a line; 1 s batches or windows; the sender shares the cores)\n",
        cores, load
    );
    let text = paced::wire(&paced::lines());
    let mut results = Vec::new();
    for engine in [
        Engine::Sluice(1),
        Engine::Sluice(2),
        Engine::Spark,
        Engine::Flink,
    ] {
        match search(engine, quick, &text) {
            Some((rate, trial)) => results.push((engine, rate, trial)),
            None => eprintln!("{}: not installed, skipped", engine.label()),
        }
    }
    println!(
        "| engine | stable rate | words/s | p50 / p99 processing there | words per CPU-second there |"
    );
    println!("|---|---|---|---|---|");
    for (engine, rate, trial) in &results {
        println!(
            "| {} | {} | {:.2} M | {} | {} |",
            engine.label(),
            if *rate == 0 {
                "below 50 000 lines/s".to_owned()
            } else {
                format!("{rate} lines/s")
            },
            (*rate * WORDS_PER_LINE as u64) as f64 / 1e6,
            match trial.as_ref().map(|t| t.p50_p99) {
                Some(Some((p50, p99))) => format!(
                    "{:.0} / {:.0} ms",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                ),
                Some(None) => "– (no batches)".into(),
                None => "–".into(),
            },
            match trial.as_ref().and_then(|t| t.words_per_cpu_sec) {
                Some(w) => format!("{:.2} M", w / 1e6),
                None => "–".into(),
            }
        );
    }
    println!();
    for (engine, rate, trial) in &results {
        println!("RESULT socket {} {rate}", engine.key());
        if let Some(w) = trial.as_ref().and_then(|t| t.words_per_cpu_sec) {
            println!("RESULT cpu {} {w:.0}", engine.key());
        }
    }
}
