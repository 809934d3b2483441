//! Socket word count under load and overload (issue 9): a paced TCP sender on loopback feeds
//! `socket_text_stream → flat_map(split) → (w, 1) → reduce_by_key`, 1 s batches, 10 words a
//! line from a 10 000-word vocabulary.
//!
//! Prints, in one run, with the machine's load first:
//! 1. per worker count (1, 2): the largest sender rate the job keeps up with (every batch done
//!    within its interval, the sender never held back), p50/p99 processing there, peak RSS;
//! 2. the same lines through the roofline ([`roofline`]: the fastest single-threaded count we
//!    could write, owned keys and FxHash), timed before and after the runs, the faster counting;
//!    and sluice's words per CPU-second of the job (its receiver and workers) against it;
//! 3. a stateless job whose work per line outweighs receiving it, on 1 and 2 workers: how much
//!    the second worker adds when the receiver's blocks are spread over both;
//! 4. fed 4× the 1-worker stable rate: with the receiver bounded (by default following the job), and
//!    bounded with backpressure: peak RSS, p50/p99 processing, how long the receiver held its
//!    sender back per batch, and the sender's lag (seconds of input it could not send) at the
//!    end. (Unbounded, as before, is not run: each batch then holds everything that arrived
//!    while the one before ran, so batches grow ~3× each; on this 24 GB machine the kernel
//!    killed it after a few batches.)
//!
//! Run with `cargo bench --bench socket_overload` (`SLUICE_BENCH_QUICK=1` shortens the runs;
//! `SLUICE_BENCH_RATE=<lines/s>` measures only that rate, three times, see `one_rate`;
//! `SLUICE_BENCH_SECTION=costly` runs only section 3).
//! The sender shares the machine's cores with the job, as `nc` would.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::SocketOptions;

#[path = "common/paced.rs"]
mod paced;
use paced::{Sender, VOCABULARY, WORDS_PER_LINE};

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

/// What one run measured.
struct Run {
    batches: Vec<(BatchInfo, u64)>,
    /// Lines the sender was due to send and could not, at the end.
    sender_lag_lines: u64,
    /// CPU seconds the job used (the process's, less the sender thread's).
    job_cpu_secs: f64,
}

/// Runs the word count for `secs` one-second batches against a sender at `rate` lines/s.
fn run(threads: usize, rate: u64, secs: u64, options: SocketOptions, text: &Arc<Vec<u8>>) -> Run {
    run_job(Job::WordCount, threads, rate, secs, options, text)
}

/// Which job reads the sender's lines.
#[derive(Clone, Copy)]
enum Job {
    /// The course's word count.
    WordCount,
    /// A stateless job whose work per line outweighs receiving it: `COSTLY_ROUNDS` rounds of
    /// hashing per word (standing for a parse or an enrichment), then `count()`.
    Costly,
}

/// Rounds of hashing per word in [`Job::Costly`]: about 10 µs of work per line, so that at the
/// rates one worker keeps up with the sender and the receiver take a tenth of a core or less.
const COSTLY_ROUNDS: u64 = 200;

fn run_job(
    job: Job,
    threads: usize,
    rate: u64,
    secs: u64,
    options: SocketOptions,
    text: &Arc<Vec<u8>>,
) -> Run {
    let cpu_before = paced::cpu_ticks("self");
    let sender = Sender::start(rate, text);
    let port = sender.port;
    let timeline = Timeline::default();
    match job {
        Job::WordCount => paced::run_wordcount(threads, port, secs, options, timeline.clone()),
        Job::Costly => run_costly(threads, port, secs, options, timeline.clone()),
    }
    let (sender_lag_lines, sender_ticks) = sender.stop();
    let job_ticks = paced::cpu_ticks("self").saturating_sub(cpu_before + sender_ticks);
    Run {
        batches: std::mem::take(&mut *timeline.0.lock().unwrap()),
        sender_lag_lines,
        job_cpu_secs: job_ticks as f64 / paced::TICKS_PER_SEC,
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
    /// The first three batches that had input (the latency spike of a job's start), each as
    /// `processing/total delay ms (lines)`: total delay from the batch being due to its
    /// outputs finishing, so that time a batch waits behind the one before shows too.
    fn first_with_input(&self) -> String {
        self.batches
            .iter()
            .filter(|(b, _)| b.num_records() > 0)
            .take(3)
            .map(|(b, _)| {
                format!(
                    "{:.0}/{:.0} ({:.2} M)",
                    b.processing_time.as_secs_f64() * 1e3,
                    b.total_delay.as_secs_f64() * 1e3,
                    b.num_records() as f64 / 1e6
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// Words the job counted per CPU-second it used (all its threads: receiver and workers).
    fn words_per_cpu_sec(&self) -> f64 {
        let lines: u64 = self.batches.iter().map(|(b, _)| b.num_records()).sum();
        (lines * WORDS_PER_LINE as u64) as f64 / self.job_cpu_secs.max(0.01)
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

/// [`Job::Costly`] on `threads` workers.
fn run_costly(threads: usize, port: u16, batches: u64, options: SocketOptions, listener: Timeline) {
    use std::hash::BuildHasher;
    sluice::StreamingContext::new(paced::one_second_batches(threads, batches, listener))
        .run(move |job| {
            let hasher = foldhash::fast::FixedState::with_seed(7);
            job.socket_text_stream_with("127.0.0.1", port, options.clone())
                .map(move |line| {
                    let mut h = 0u64;
                    for word in line.split_whitespace() {
                        for round in 0..COSTLY_ROUNDS {
                            h = hasher.hash_one((h, round, word));
                        }
                    }
                    h
                })
                .filter(|h| h % 2 == 0)
                .count()
                .foreach_batch(|_t, n| {
                    std::hint::black_box(n);
                })
        })
        .expect("the sluice job runs");
}

/// Section 3: [`Job::Costly`]'s largest stable rate on 1 and 2 workers.
fn costly_section(secs: u64, text: &Arc<Vec<u8>>) {
    println!(
        "\n## A stateless job whose work per line outweighs receiving it ({COSTLY_ROUNDS} rounds of hashing per word, then `filter` and `count`; 100 ms blocks): the largest rate kept up with\n"
    );
    println!("| workers | stable rate | p50 processing | p99 processing |");
    println!("|---|---|---|---|");
    let mut costly = Vec::new();
    // Ten blocks a batch (100 ms block interval), so that two workers get five each (the
    // default's five blocks split 3:2; Spark's tuning advice is the same: tasks a multiple of
    // the cores).
    let ten_blocks = SocketOptions {
        block_interval: Duration::from_millis(100),
        ..SocketOptions::default()
    };
    for threads in [1usize, 2] {
        let best = paced::largest_stable(20_000, 2_000_000, |rate| {
            let r = run_job(Job::Costly, threads, rate, secs, ten_blocks.clone(), text);
            Some((r.stable(rate), r))
        })
        .flatten();
        let Some((rate, r)) = best else {
            println!("| {threads} | below 20 000 lines/s | | |");
            continue;
        };
        println!(
            "| {threads} | {:.0} k lines/s | {:.0} ms | {:.0} ms |",
            rate as f64 / 1e3,
            r.processing(0.5).as_secs_f64() * 1e3,
            r.processing(0.99).as_secs_f64() * 1e3
        );
        costly.push(rate);
    }
    if let [one, two] = costly[..] {
        println!(
            "\n-w 2 stable / -w 1 stable: {:.2} (the receiver's blocks are spread over both workers)",
            two as f64 / one as f64
        );
    }
}

/// `SLUICE_BENCH_RATE=<lines/s>`: only `-w 1` (or `SLUICE_BENCH_WORKERS`) at that rate, three
/// runs between roofline loops: the words per CPU-second of the job, for comparing two builds
/// or settings at the same load without the search for the stable rate.
fn one_rate(rate: u64, secs: u64, lines: &[String], text: &Arc<Vec<u8>>) {
    let threads = std::env::var("SLUICE_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    println!(
        "| run | workers | rate | kept up | first batches with input: processing/total delay ms (lines) | p50 processing | peak RSS | words per CPU-second of the job | / roofline |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let job = match std::env::var("SLUICE_BENCH_SECTION").as_deref() {
        Ok("costly") => Job::Costly,
        _ => Job::WordCount,
    };
    for round in 1..=3 {
        let roof = roofline(lines);
        let r = run_job(job, threads, rate, secs, SocketOptions::default(), text);
        println!(
            "| {round} | {threads} | {:.2} M lines/s | {} | {} | {:.0} ms | {:.0} MiB | {:.1} M | {:.2} |",
            rate as f64 / 1e6,
            if r.stable(rate) { "yes" } else { "no" },
            r.first_with_input(),
            r.processing(0.5).as_secs_f64() * 1e3,
            r.peak_rss_mib(),
            r.words_per_cpu_sec() / 1e6,
            r.words_per_cpu_sec() / roof
        );
    }
}

/// The roofline: words/s of the fastest single-threaded word count over the sender's lines
/// that we could write, best of three runs. Owned `String` keys, allocated only for a word not
/// seen before (`get_mut`, then `insert`); FxHash (`rustc-hash`, the compiler's own); the faster
/// of `split_whitespace` (what the job splits with) and `split_ascii_whitespace` (the lines
/// are ASCII):
///
/// ```text
/// let mut counts: HashMap<String, u64, FxBuildHasher> = HashMap::default();
/// for line in lines {
///     for w in line.split_ascii_whitespace() {
///         match counts.get_mut(w) {
///             Some(n) => *n += 1,
///             None => { counts.insert(w.to_owned(), 1); }
///         }
///     }
/// }
/// ```
fn roofline(lines: &[String]) -> f64 {
    fn count<'a, I: Iterator<Item = &'a str>>(
        lines: &'a [String],
        split: impl Fn(&'a str) -> I,
    ) -> f64 {
        let mut best = 0.0f64;
        for _ in 0..3 {
            let started = Instant::now();
            let mut counts: HashMap<String, u64, rustc_hash::FxBuildHasher> = HashMap::default();
            for line in lines {
                for w in split(line) {
                    match counts.get_mut(w) {
                        Some(n) => *n += 1,
                        None => {
                            counts.insert(w.to_owned(), 1);
                        }
                    }
                }
            }
            let words: u64 = std::hint::black_box(counts.values().sum());
            best = best.max(words as f64 / started.elapsed().as_secs_f64());
        }
        best
    }
    count(lines, str::split_whitespace).max(count(lines, str::split_ascii_whitespace))
}

fn main() {
    paced::tune_allocator_for_batches();
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok();
    let secs = if quick { 5 } else { 10 };
    let (cores, load) = paced::machine();
    println!(
        "# socket word count under load ({} cores, load average {}, {WORDS_PER_LINE} words/line, vocabulary {VOCABULARY}, 1 s batches)\n",
        cores, load
    );
    let lines = paced::lines();
    let text = paced::wire(&lines);
    let bounded = SocketOptions::default();
    if let Ok(rate) = std::env::var("SLUICE_BENCH_RATE") {
        // (With SLUICE_BENCH_SECTION=costly, of the costly job.)
        let rate = rate
            .parse()
            .expect("SLUICE_BENCH_RATE is a rate in lines/s, e.g. 800000");
        return one_rate(rate, secs, &lines, &text);
    }
    if std::env::var("SLUICE_BENCH_SECTION").as_deref() == Ok("costly") {
        return costly_section(secs, &text);
    }
    // The loops are timed before and after the sluice runs (this machine's speed drifts by a
    // third between minutes), and the faster of each counts: the ratios below are the lower.
    let roof_before = roofline(&lines);

    println!("## The largest rate each worker count keeps up with\n");
    println!(
        "| workers | stable rate | words/s | p50 processing | p99 processing | peak RSS | words per CPU-second of the job |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut stable_rates = Vec::new();
    let mut first_batches = Vec::new();
    for threads in [1usize, 2] {
        let best = paced::largest_stable(200_000, 8_000_000, |rate| {
            let r = run(threads, rate, secs, bounded.clone(), &text);
            Some((r.stable(rate), r))
        })
        .flatten();
        let Some((rate, r)) = best else {
            println!("| {threads} | below 200 000 lines/s | | | | | |");
            stable_rates.push((0, 0.0));
            continue;
        };
        println!(
            "| {threads} | {:.2} M lines/s | {:.1} M | {:.0} ms | {:.0} ms | {:.0} MiB | {:.1} M |",
            rate as f64 / 1e6,
            (rate * WORDS_PER_LINE as u64) as f64 / 1e6,
            r.processing(0.5).as_secs_f64() * 1e3,
            r.processing(0.99).as_secs_f64() * 1e3,
            r.peak_rss_mib(),
            r.words_per_cpu_sec() / 1e6
        );
        stable_rates.push((rate, r.words_per_cpu_sec()));
        first_batches.push((threads, r.first_with_input(), r.processing(0.5)));
    }
    for (threads, firsts, p50) in &first_batches {
        println!(
            "\n-w {threads}, at its stable rate: the first batches with input, processing/total delay in ms (lines): {firsts} (the run's p50 processing: {:.0} ms)",
            p50.as_secs_f64() * 1e3
        );
    }
    let roof_after = roofline(&lines);
    println!(
        "\nthe roofline (`roofline` in this file: owned keys, FxHash, one thread) over the same lines, before / after the runs above: {:.1} / {:.1} M words/s",
        roof_before / 1e6,
        roof_after / 1e6,
    );
    let roof = roof_before.max(roof_after);
    let (one, per_cpu) = (
        stable_rates[0].0 as f64 * WORDS_PER_LINE as f64,
        stable_rates[0].1,
    );
    println!(
        "sluice -w 1: stable rate / roofline {:.2}; words per CPU-second of the job (receiver and worker threads, not the sender) / roofline {:.2}",
        one / roof,
        per_cpu / roof
    );
    if stable_rates.len() > 1 && stable_rates[0].0 > 0 {
        println!(
            "-w 2 stable / -w 1 stable: {:.2}",
            stable_rates[1].0 as f64 / stable_rates[0].0 as f64
        );
    }

    costly_section(secs, &text);

    let over = (stable_rates[0].0.max(200_000)) * 4;
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
        ("bounded, following the job (default)", bounded),
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
