//! Word count benchmark (issue: engine core): `flat_map` split + `reduce_by_key` on the
//! generator source.
//!
//! Measures, in one run, side by side:
//! 1. the smallest batch interval at which 100 000 words/s is stable (1 worker), the resident
//!    memory of that job, and the time from `start` to the first finished batch;
//! 2. per worker count (1, 2): throughput when batches are cut as fast as they finish, then the
//!    largest rate at which every 1-second batch finishes within its interval on the real clock;
//! 3. the same lines counted by a single-threaded `HashMap<String, u64>` loop (the ratio).
//!
//! Run with `cargo bench --bench wordcount`. `SLUICE_BENCH_QUICK=1` shortens every phase.

/// mimalloc, as in the `sluice` binary (glibc's malloc is the bottleneck of word counts).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::{BatchOut, BatchReader, BatchSlot, Generator, GeneratorConfig};
use sluice::{Cluster, StreamingConfig, StreamingContext, Time};

const VOCABULARY: usize = 10_000;
const WORDS_PER_LINE: usize = 10;

#[derive(Clone, Default)]
struct Timeline {
    batches: Arc<Mutex<Vec<(BatchInfo, Instant, u64)>>>,
}

impl StreamingListener for Timeline {
    fn on_batch_completed(&self, b: &BatchInfo) {
        let rss = rss_kib();
        self.batches
            .lock()
            .unwrap()
            .push((b.clone(), Instant::now(), rss));
    }
}

impl Timeline {
    fn take(&self) -> Vec<(BatchInfo, Instant, u64)> {
        std::mem::take(&mut *self.batches.lock().unwrap())
    }
}

fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn generator(rate: u64) -> GeneratorConfig {
    GeneratorConfig {
        rate_per_sec: rate,
        vocabulary: VOCABULARY,
        words_per_line: WORDS_PER_LINE,
        seed: 7,
    }
}

/// Runs the word count; returns the per-batch timeline and the wall time from start to end.
fn run_wordcount(config: StreamingConfig, rate: u64) -> (Vec<(BatchInfo, Instant, u64)>, Instant) {
    let timeline = Timeline::default();
    let config = config.listener(timeline.clone());
    let started = Instant::now();
    StreamingContext::new(config)
        .run(move |job| {
            job.generator(generator(rate))
                .flat_map(|line| {
                    line.split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .map(|w| (w, 1u64))
                .reduce_by_key(|a, b| a + b)
                .foreach_batch(|_t, counts| {
                    std::hint::black_box(counts.len());
                })
        })
        .expect("the benchmark job runs");
    (timeline.take(), started)
}

fn cluster(threads: usize) -> Cluster {
    Cluster {
        threads,
        ..Cluster::default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Words/s when batches of `rate` words are cut one after the other, each as soon as the
/// previous one finished (one batch in flight, so batches never overlap).
fn throughput(threads: usize, rate: u64, batches: u64) -> f64 {
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .cluster(cluster(threads))
        .as_fast_as_possible(1)
        .max_batches(batches);
    let (timeline, _) = run_wordcount(config, rate);
    // Skip the first batch (warm-up): words of batches 2..n over the time they took.
    let first_done = timeline[0].1;
    let last_done = timeline[timeline.len() - 1].1;
    let words = rate * (timeline.len() as u64 - 1);
    words as f64 / (last_done - first_done).as_secs_f64()
}

/// Runs `batches` real 1-second batches at `rate`; the slowest processing time.
fn one_second_batches(threads: usize, rate: u64, batches: u64) -> (bool, Duration, Duration, u64) {
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .cluster(cluster(threads))
        .max_batches(batches);
    let (timeline, _) = run_wordcount(config, rate);
    let worst = timeline
        .iter()
        .map(|(b, _, _)| b.processing_time)
        .max()
        .unwrap_or_default();
    let last_delay = timeline
        .last()
        .map(|(b, _, _)| b.scheduling_delay)
        .unwrap_or_default();
    let rss = timeline.iter().map(|(_, _, r)| *r).max().unwrap_or(0);
    (
        worst < Duration::from_secs(1) && last_delay < Duration::from_millis(100),
        worst,
        last_delay,
        rss,
    )
}

fn hashmap_baseline(words: u64) -> (f64, u64) {
    let mut g = Generator::new(generator(words), 1);
    let slot = BatchSlot {
        time: Time::from_millis(1000),
        interval_ms: 1000,
        index: 0,
        worker: 0,
        peers: 1,
        last: false,
    };
    let mut out = BatchOut::new(0);
    g.read_batch(&slot, &mut out);
    let lines: Vec<String> = out
        .into_parts()
        .into_iter()
        .flat_map(|p| p.records)
        .collect();
    let started = Instant::now();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for line in &lines {
        for w in line.split_whitespace() {
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let total: u64 = counts.values().sum();
    (total as f64 / secs, total)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok();
    let verify_batches = if quick { 3 } else { 6 };
    println!(
        "# sluice word count benchmark ({} cores, vocabulary {VOCABULARY}, {WORDS_PER_LINE} words/line)\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. Small intervals at 100 000 words/s, first batch latency, memory.
    println!("## 100 000 words/s, 1 worker: processing time per batch by interval\n");
    println!("| interval | batches | p50 | p99 | max | last scheduling delay | stable | RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut smallest_stable = None;
    for interval in [100u64, 50, 20, 10, 5, 2, 1] {
        let run_ms = if quick { 500 } else { 2000 };
        let batches = run_ms / interval;
        let config = StreamingConfig::new(Duration::from_millis(interval))
            .unwrap()
            .max_batches(batches);
        let (timeline, _) = run_wordcount(config, 100_000);
        let times: Vec<Duration> = timeline.iter().map(|(b, _, _)| b.processing_time).collect();
        let late = times
            .iter()
            .filter(|t| **t >= Duration::from_millis(interval))
            .count();
        let last_delay = timeline
            .last()
            .map(|(b, _, _)| b.scheduling_delay)
            .unwrap_or_default();
        let stable = (late as f64) <= 0.01 * times.len() as f64
            && last_delay < Duration::from_millis(interval);
        if stable {
            smallest_stable = Some(interval);
        }
        let rss = timeline.iter().map(|(_, _, r)| *r).max().unwrap_or(0);
        println!(
            "| {interval} ms | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} | {:.1} MiB |",
            times.len(),
            ms(percentile(times.clone(), 0.5)),
            ms(percentile(times.clone(), 0.99)),
            ms(percentile(times, 1.0)),
            ms(last_delay),
            if stable { "yes" } else { "no" },
            rss as f64 / 1024.0
        );
    }
    println!(
        "\nsmallest stable interval at 100 000 words/s: {}",
        smallest_stable.map_or("none".into(), |i| format!("{i} ms"))
    );

    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .as_fast_as_possible(1)
        .max_batches(1);
    let (timeline, started) = run_wordcount(config, 100_000);
    println!(
        "time from start() to the first finished batch (100 000 words): {:.1} ms",
        ms(timeline[0].1 - started)
    );

    // 2. Throughput and the largest rate stable at 1-second batches, per worker count.
    println!("\n## 1-second batches\n");
    println!(
        "| workers | throughput (batches back to back) | largest stable rate at 1 s batches | slowest batch there | peak RSS |"
    );
    println!("|---|---|---|---|---|");
    let mut best_one_worker = 0.0;
    for threads in [1usize, 2] {
        let estimate = throughput(threads, 4_000_000, if quick { 3 } else { 5 });
        let mut rate = (estimate * 0.9) as u64 / 100_000 * 100_000;
        let mut best = None;
        for _ in 0..4 {
            let (ok, worst, _delay, rss) = one_second_batches(threads, rate, verify_batches);
            if ok {
                best = Some((rate, worst, rss));
                if best.is_some() && rate as f64 > estimate * 1.05 {
                    break;
                }
                rate = (rate as f64 * 1.1) as u64 / 100_000 * 100_000;
            } else if best.is_some() {
                break;
            } else {
                rate = (rate as f64 * 0.8) as u64 / 100_000 * 100_000;
            }
        }
        let (rate, worst, rss) = best.unwrap_or((0, Duration::ZERO, 0));
        if threads == 1 {
            best_one_worker = rate as f64;
        }
        println!(
            "| {threads} | {:.2} M words/s | {:.2} M words/s | {:.0} ms | {:.1} MiB |",
            estimate / 1e6,
            rate as f64 / 1e6,
            ms(worst),
            rss as f64 / 1024.0
        );
    }

    // 3. The same lines through a single-threaded HashMap loop.
    let (loop_rate, words) = hashmap_baseline(4_000_000);
    println!(
        "\nsingle-threaded HashMap<String, u64> loop over the same generated lines ({words} words): {:.2} M words/s",
        loop_rate / 1e6
    );
    println!(
        "ratio sluice (1 worker, stable at 1 s batches) / HashMap loop: {:.2}",
        best_one_worker / loop_rate
    );
    println!(
        "peak RSS of the whole benchmark process: {:.1} MiB",
        status_field("VmHWM:") as f64 / 1024.0
    );
}
