//! Socket word count under load and overload (issue 9): a paced TCP sender on loopback feeds
//! `socket_text_stream → flat_map(split) → (w, 1) → reduce_by_key`, 1 s batches, 10 words a
//! line from a 10 000-word vocabulary.
//!
//! Prints, in one run, with the machine's load first:
//! 1. per worker count (1, 2): the largest sender rate the job keeps up with (every batch done
//!    within its interval, the sender never held back), p50/p99 processing there, peak RSS;
//! 2. the same lines through a single-threaded `HashMap<String, u64>` loop (the roofline) and
//!    sluice's words per core against it;
//! 3. fed 4× the 1-worker stable rate: with the receiver bounded (the default 128 MiB), and
//!    bounded with backpressure: peak RSS, p50/p99 processing, how long the receiver held its
//!    sender back per batch, and the sender's lag (seconds of input it could not send) at the
//!    end. (Unbounded, as before, is not run: each batch then holds everything that arrived
//!    while the one before ran, so batches grow ~3× each; on this 24 GB machine the kernel
//!    killed it after a few batches.)
//!
//! Run with `cargo bench --bench socket_overload` (`SLUICE_BENCH_QUICK=1` shortens the runs).
//! The sender shares the machine's cores with the job, as `nc` would.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::SocketOptions;
use sluice::{Cluster, StreamingConfig, StreamingContext};

const VOCABULARY: u64 = 10_000;
const WORDS_PER_LINE: usize = 10;

#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<(BatchInfo, u64)>>>);

impl StreamingListener for Timeline {
    fn on_batch_completed(&self, b: &BatchInfo) {
        let rss = status_field("VmRSS:");
        self.0.lock().unwrap().push((b.clone(), rss));
    }
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

/// 100 000 lines of 10 words (a fixed pseudo-random sequence), the sender's cycle.
fn lines() -> Vec<String> {
    let mut x = 7u64;
    (0..100_000)
        .map(|_| {
            (0..WORDS_PER_LINE)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!("w{}", (x >> 33) % VOCABULARY)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// What one run measured.
struct Run {
    batches: Vec<(BatchInfo, u64)>,
    /// Lines the sender was due to send and could not, at the end.
    sender_lag_lines: u64,
}

/// Runs the word count for `secs` one-second batches against a sender at `rate` lines/s.
fn run(threads: usize, rate: u64, secs: u64, options: SocketOptions, text: &Arc<Vec<u8>>) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("port").port();
    let line_len = (text.len() / 100_000) as u64;
    let done = Arc::new(AtomicBool::new(false));
    let lag = Arc::new(AtomicU64::new(0));
    let sender = {
        let (done, lag, text) = (done.clone(), lag.clone(), text.clone());
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let started = Instant::now();
            let mut sent = 0u64;
            let mut at = 0usize;
            while !done.load(Ordering::SeqCst) {
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                // At most 50 ms of input per write, so that lag is seen as it builds.
                let n = due.saturating_sub(sent).min(rate / 20 + 1);
                if n == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                let mut bytes = (n * line_len) as usize;
                while bytes > 0 {
                    let end = (at + bytes).min(text.len());
                    if conn.write_all(&text[at..end]).is_err() {
                        return;
                    }
                    bytes -= end - at;
                    at = if end == text.len() { 0 } else { end };
                }
                sent += n;
                lag.store(due.saturating_sub(sent), Ordering::SeqCst);
            }
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            lag.store(due.saturating_sub(sent), Ordering::SeqCst);
        })
    };
    let timeline = Timeline::default();
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .cluster(Cluster {
            threads,
            ..Cluster::default()
        })
        .max_batches(secs)
        .listener(timeline.clone());
    StreamingContext::new(config)
        .run(move |job| {
            job.socket_text_stream_with("127.0.0.1", port, options.clone())
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
    let sender_lag_lines = lag.load(Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    let _ = sender.join();
    Run {
        batches: std::mem::take(&mut *timeline.0.lock().unwrap()),
        sender_lag_lines,
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

impl Run {
    /// The batches after the first two (the receiver connects during the first).
    fn steady(&self) -> &[(BatchInfo, u64)] {
        &self.batches[self.batches.len().min(2)..]
    }
    fn processing(&self, p: f64) -> Duration {
        percentile(
            self.steady()
                .iter()
                .map(|(b, _)| b.processing_time)
                .collect(),
            p,
        )
    }
    fn peak_rss_mib(&self) -> f64 {
        self.batches.iter().map(|(_, r)| *r).max().unwrap_or(0) as f64 / 1024.0
    }
    fn held_back_ms(&self) -> Vec<u64> {
        self.steady()
            .iter()
            .map(|(b, _)| {
                b.inputs
                    .iter()
                    .filter_map(|i| i.receiver.as_ref())
                    .map(|r| r.held_back_ms)
                    .sum()
            })
            .collect()
    }
    fn stable(&self, rate: u64) -> bool {
        self.processing(0.99) < Duration::from_millis(950)
            && self.held_back_ms().iter().sum::<u64>() < 100
            && self.sender_lag_lines < rate / 5
    }
}

/// Words/s of a single-threaded `HashMap<String, u64>` count over the sender's lines.
fn roofline(lines: &[String]) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..3 {
        let started = Instant::now();
        let mut counts: HashMap<String, u64> = HashMap::new();
        for line in lines {
            for w in line.split_whitespace() {
                *counts.entry(w.to_owned()).or_insert(0) += 1;
            }
        }
        let words: u64 = std::hint::black_box(counts.values().sum());
        best = best.max(words as f64 / started.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok();
    let secs = if quick { 5 } else { 10 };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# socket word count under load ({} cores, load average {}, {WORDS_PER_LINE} words/line, vocabulary {VOCABULARY}, 1 s batches)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let lines = lines();
    let text: Arc<Vec<u8>> = Arc::new(
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect(),
    );
    let bounded = SocketOptions::default();

    println!("## The largest rate each worker count keeps up with\n");
    println!("| workers | stable rate | words/s | p50 processing | p99 processing | peak RSS |");
    println!("|---|---|---|---|---|---|");
    let mut stable_rates = Vec::new();
    for threads in [1usize, 2] {
        let mut rate = 200_000u64;
        let mut best: Option<(u64, Run)> = None;
        loop {
            let r = run(threads, rate, secs, bounded.clone(), &text);
            if !r.stable(rate) {
                break;
            }
            best = Some((rate, r));
            rate = rate * 3 / 2;
            if rate > 8_000_000 {
                break;
            }
        }
        let Some((rate, r)) = best else {
            println!("| {threads} | below 200 000 lines/s | | | | |");
            stable_rates.push(0);
            continue;
        };
        println!(
            "| {threads} | {:.2} M lines/s | {:.1} M | {:.0} ms | {:.0} ms | {:.0} MiB |",
            rate as f64 / 1e6,
            (rate * WORDS_PER_LINE as u64) as f64 / 1e6,
            r.processing(0.5).as_secs_f64() * 1e3,
            r.processing(0.99).as_secs_f64() * 1e3,
            r.peak_rss_mib()
        );
        stable_rates.push(rate);
    }
    let roof = roofline(&lines);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "\nsingle-threaded HashMap<String, u64> loop over the same lines: {:.1} M words/s",
        roof / 1e6
    );
    let one = stable_rates[0] as f64 * WORDS_PER_LINE as f64;
    println!(
        "sluice -w 1 stable / roofline: {:.2} (the sender takes part of the machine's {cores} cores)",
        one / roof
    );
    if stable_rates.len() > 1 && stable_rates[0] > 0 {
        println!(
            "-w 2 stable / -w 1 stable: {:.2}",
            stable_rates[1] as f64 / stable_rates[0] as f64
        );
    }

    let over = (stable_rates[0].max(200_000)) * 4;
    println!(
        "\n## Fed 4× the 1-worker stable rate: {:.2} M lines/s, 1 worker\n",
        over as f64 / 1e6
    );
    println!(
        "| receiver | batches | p50 processing | p99 processing | peak RSS | held back per batch (p50) | sender lag at the end |"
    );
    println!("|---|---|---|---|---|---|---|");
    let pressured = bounded
        .clone()
        .backpressure(None, sluice::source::PidSettings::default());
    for (label, options) in [
        ("bounded, 128 MiB (default)", bounded),
        ("bounded, with --backpressure", pressured),
    ] {
        let r = run(1, over, secs * 2, options, &text);
        let mut held = r.held_back_ms();
        held.sort_unstable();
        println!(
            "| {label} | {} | {:.0} ms | {:.0} ms | {:.0} MiB | {} ms | {:.1} s of input |",
            r.batches.len(),
            r.processing(0.5).as_secs_f64() * 1e3,
            r.processing(0.99).as_secs_f64() * 1e3,
            r.peak_rss_mib(),
            held.get(held.len() / 2).copied().unwrap_or(0),
            r.sender_lag_lines as f64 / over as f64
        );
    }
}
