//! State and window benchmark (issue: stateful and windowed DStreams).
//!
//! (a) 1 000 000 keys loaded at the first batch, then 10 000 keys updated per batch:
//!     processing time per batch and memory, for `update_state_by_key` with Spark's rule (every
//!     key, every batch), `update_state_by_key` with a pure function, and `map_with_state`;
//!     each consumed as a change stream, and Spark-style (the full state every batch).
//! (b) `reduce_by_key_and_window` with a 60-batch window and a 1-batch slide at 1 000 000
//!     words per batch: processing time per batch once the window is full, and memory; without
//!     and with an inverse function.
//!
//! Batches are cut back to back (one in flight), so processing time is the cost of a batch.
//! Run with `cargo bench --bench state_window`; `SLUICE_BENCH_QUICK=1` shortens it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::dstream::state::{StateSpec, UpdateState};
use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::{BatchReader, BatchSlot, GeneratorConfig};
use sluice::{DStream, StreamingConfig, StreamingContext};

/// mimalloc, as in the `sluice` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: u64 = 1_000_000;
const UPDATED: u64 = 10_000;

#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<(BatchInfo, u64)>>>);

impl StreamingListener for Timeline {
    fn on_batch_completed(&self, b: &BatchInfo) {
        self.0.lock().unwrap().push((b.clone(), rss_kib()));
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Batch 0: every one of its keys once; then `UPDATED` of them (or all, if fewer) per batch, a
/// different stretch each time. `KEYS` for the scenarios of (a), `SLUICE_BENCH_KEYS` for
/// `bytes-per-key`.
struct KeyUpdates(u64);

impl BatchReader<(u64, u64)> for KeyUpdates {
    fn name(&self) -> String {
        "key updates".into()
    }
    fn read_batch(
        &mut self,
        slot: &BatchSlot,
        out: &mut sluice::source::BatchOut<(u64, u64)>,
    ) -> u64 {
        let keys = self.0.max(1);
        let (from, n) = if slot.index == 0 {
            (0, keys)
        } else {
            ((slot.index * 7919 * UPDATED) % keys, UPDATED.min(keys))
        };
        for i in (slot.worker as u64..n).step_by(slot.peers) {
            out.push(((from + i) % keys, 1));
        }
        0
    }
}

/// The live memory of a run, KiB: the median RSS of the batches after the first (its load's
/// transients) and before the last (reported once the job has ended).
fn live_rss_kib(timeline: &[(BatchInfo, u64)]) -> u64 {
    let mut steady: Vec<u64> = timeline
        .iter()
        .skip(1)
        .take(timeline.len().saturating_sub(2))
        .map(|(_, r)| *r)
        .collect();
    steady.sort_unstable();
    steady.get(steady.len() / 2).copied().unwrap_or(0)
}

fn report(label: &str, timeline: &[(BatchInfo, u64)], skip: usize) {
    let steady: Vec<Duration> = timeline
        .iter()
        .skip(skip)
        .map(|(b, _)| b.processing_time)
        .collect();
    let mut sorted = steady.clone();
    sorted.sort();
    let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let max = sorted.last().copied().unwrap_or_default();
    let first = timeline
        .first()
        .map(|(b, _)| b.processing_time)
        .unwrap_or_default();
    let rss = timeline.iter().map(|(_, r)| *r).max().unwrap_or(0);
    let end_rss = timeline.last().map(|(_, r)| *r).unwrap_or(0);
    let keys = timeline
        .last()
        .map(|(b, _)| b.state.iter().map(|s| s.keys).sum::<u64>())
        .unwrap_or(0);
    println!(
        "| {label} | {:.0} ms | {:.2} ms | {:.2} ms | {} | {:.0} MiB | {:.0} MiB |",
        first.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        if keys > 0 {
            keys.to_string()
        } else {
            "–".into()
        },
        rss as f64 / 1024.0,
        end_rss as f64 / 1024.0
    );
}

/// 1 s batches run as fast as possible, `batches` of them, reported to `timeline`.
fn fast_batches(batches: u64, timeline: &Timeline) -> StreamingConfig {
    StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .as_fast_as_possible(1)
        .max_batches(batches)
        .listener(timeline.clone())
}

fn run(
    batches: u64,
    build: impl for<'s> Fn(DStream<'s, (u64, u64)>) + Send + Sync + 'static,
) -> Vec<(BatchInfo, u64)> {
    let timeline = Timeline::default();
    let config = fast_batches(batches, &timeline);
    StreamingContext::new(config)
        .run(move |job| build(job.source(KeyUpdates(KEYS))))
        .unwrap();

    timeline.0.lock().unwrap().clone()
}

fn sum(new: Vec<u64>, old: Option<u64>) -> Option<u64> {
    Some(new.iter().sum::<u64>() + old.unwrap_or(0))
}

/// Runs one scenario in this process and prints its table row.
fn scenario(name: &str, quick: bool) {
    let batches = if quick { 6 } else { 21 };
    match name {
        "ubk-spark" => {
            let t = run(batches, |d| {
                d.update_state_by_key(sum)
                    .changes()
                    .foreach_partition(|_, c| drop(std::hint::black_box(c)))
            });
            report(
                "update_state_by_key (Spark's rule: every key, every batch), changes",
                &t,
                1,
            );
        }
        "ubk-spark-snapshots" => {
            let t = run(batches, |d| {
                d.update_state_by_key(sum)
                    .foreach_partition(|_, c| drop(std::hint::black_box(c)))
            });
            report(
                "update_state_by_key (Spark's rule), full state every batch (what Spark computes)",
                &t,
                1,
            );
        }
        "words-2m" | "words-2m-full" => {
            // stateful-wordcount's shape: 2 M distinct words (two per key of the input), a pure
            // running total, printed: through `Stateful::print` (each partition's first 11),
            // or the full state every batch then printed (how `print` ran before).
            let full = name == "words-2m-full";
            let before = rss_kib();
            let t = run(batches, move |d| {
                let totals = d
                    .flat_map(|(k, v)| [(format!("a{k}"), v), (format!("b{k}"), v)])
                    .update_state_by_key_with(UpdateState::new(sum).pure());
                let sink = Arc::new(Mutex::new(std::io::sink()));
                if full {
                    totals.snapshots().print_to(10, sink);
                } else {
                    totals.print_to(10, sink);
                }
            });
            report(
                if full {
                    "2 M words, pure running totals, print(10) of the full state (before)"
                } else {
                    "2 M words, pure running totals, print(10) (Stateful::print)"
                },
                &t,
                2,
            );
            // The row runs with MIMALLOC_PURGE_DELAY=0 (see `in_own_process`), so freed memory
            // is not counted.
            let live = live_rss_kib(&t);
            println!(
                "|   ↳ resident memory per distinct word, live (median over the batches between the first and the last, freed memory returned at once): {:.0} bytes (RSS {} MiB over {} MiB before the job) | | | | | | |",
                (live.saturating_sub(before) * 1024) as f64 / 2e6,
                live / 1024,
                before / 1024
            );
        }
        "ubk-pure" => {
            let t = run(batches, |d| {
                d.update_state_by_key_with(UpdateState::new(sum).pure())
                    .changes()
                    .foreach_partition(|_, c| drop(std::hint::black_box(c)))
            });
            report("update_state_by_key, pure function, changes", &t, 2);
        }
        "ubk-pure-snapshots" => {
            let t = run(batches, |d| {
                d.update_state_by_key_with(UpdateState::new(sum).pure())
                    .foreach_partition(|_, c| drop(std::hint::black_box(c)))
            });
            report(
                "update_state_by_key, pure function, full state every batch (Spark's view)",
                &t,
                2,
            );
        }
        "mws" => {
            let t = run(batches, |d| {
                d.map_with_state(StateSpec::function(|_t, _k: &u64, v: Option<u64>, s| {
                    let n = s.get().copied().unwrap_or(0) + v.unwrap_or(0);
                    s.update(n);
                    Some(n)
                }))
                .foreach_partition(|_, c| drop(std::hint::black_box(c)))
            });
            report("map_with_state, mapped records", &t, 1);
        }
        "bytes-per-key" => bytes_per_key(batches),
        "window" | "window-inv" => window(name == "window-inv", quick),
        other => eprintln!("unknown scenario {other}"),
    }
}

/// `stateful-wordcount`'s state at `SLUICE_BENCH_KEYS` distinct words (words as the binary
/// keeps them, `CompactString`): the resident memory per word, live (the median RSS of the
/// batches between the first and the last, freed memory returned at once), over the RSS
/// before the job.
fn bytes_per_key(batches: u64) {
    let keys: u64 = std::env::var("SLUICE_BENCH_KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss_kib();
    let timeline = Timeline::default();
    let config = fast_batches(batches, &timeline);
    StreamingContext::new(config)
        .run(move |job| {
            let totals = job
                .source(KeyUpdates(keys))
                .map(|(k, v)| (sluice::CompactString::from(format!("w{k}")), v))
                .update_state_by_key_with(UpdateState::new(sum).pure());
            totals.print_to(10, Arc::new(Mutex::new(std::io::sink())));
        })
        .unwrap();
    let live = live_rss_kib(&timeline.0.lock().unwrap());
    println!(
        "| {keys} | {:.0} bytes | {} MiB | {} MiB |",
        (live.saturating_sub(before) * 1024) as f64 / keys as f64,
        live / 1024,
        before / 1024
    );
}

fn window(inverse: bool, quick: bool) {
    let window_batches = if quick { 10 } else { 60 };
    let total = window_batches + if quick { 3 } else { 15 };
    let timeline = Timeline::default();
    let config = fast_batches(total, &timeline);
    let generator = GeneratorConfig {
        rate_per_sec: 1_000_000,
        vocabulary: 10_000,
        words_per_line: 10,
        seed: 3,
    };
    let window = Duration::from_secs(window_batches);
    StreamingContext::new(config)
        .run(move |job| {
            let ones = job
                .generator(generator.clone())
                .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .map(|w| (w, 1u64));
            let counts = if inverse {
                ones.reduce_by_key_and_window_inv(
                    |a, b| a + b,
                    |a, b| a - b,
                    window,
                    Duration::from_secs(1),
                    Some(|(_, n): &(String, u64)| *n > 0),
                )
            } else {
                ones.reduce_by_key_and_window(|a, b| a + b, window, Duration::from_secs(1))
            };
            counts.foreach_partition(|_, c| drop(std::hint::black_box(c)));
        })
        .unwrap();
    let t = timeline.0.lock().unwrap().clone();
    let mut times: Vec<Duration> = t
        .iter()
        .skip(window_batches as usize)
        .map(|(b, _)| b.processing_time)
        .collect();
    times.sort();
    println!(
        "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MiB |",
        if inverse {
            "with inverse function"
        } else {
            "without inverse (differential reduce)"
        },
        t[0].0.processing_time.as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        t.iter().map(|(_, r)| *r).max().unwrap_or(0) as f64 / 1024.0
    );
}

/// Each scenario runs in a process of its own, so that its memory is its own.
fn in_own_process(name: &str) {
    in_own_process_with(name, &[]);
}

/// [`in_own_process`] with more variables set for the scenario.
fn in_own_process_with(name: &str, vars: &[(&str, &str)]) {
    let mut command = std::process::Command::new(std::env::current_exe().expect("this benchmark"));
    command.env("SLUICE_BENCH_SCENARIO", name);
    command.envs(vars.iter().copied());
    if name.starts_with("words-2m") || name == "bytes-per-key" {
        // Its bytes per word count what is live, not what the allocator keeps for reuse.
        command.env("MIMALLOC_PURGE_DELAY", "0");
    }
    let out = command.output().expect("run a scenario");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        eprintln!(
            "scenario {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn main() {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok();
    if let Ok(name) = std::env::var("SLUICE_BENCH_SCENARIO") {
        scenario(&name, quick);
        return;
    }
    println!(
        "# sluice state and window benchmark (1 worker, mimalloc, each row in its own process)\n"
    );
    println!("## (a) 1 000 000 keys loaded at the first batch, then 10 000 updated per batch\n");
    println!(
        "| operator, consumed as | first batch (loads 1 M keys) | p50 after | max after | keys | peak RSS | RSS at the end |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in [
        "ubk-spark",
        "ubk-spark-snapshots",
        "ubk-pure",
        "ubk-pure-snapshots",
        "mws",
        "words-2m",
        "words-2m-full",
    ] {
        in_own_process(name);
    }
    println!(
        "\n## (c) the running word count's resident memory per word, live (`SLUICE_BENCH_SCENARIO=bytes-per-key SLUICE_BENCH_KEYS=n` runs one)\n"
    );
    println!("| distinct words | bytes per word | RSS, live | RSS before the job |");
    println!("|---|---|---|---|");
    for keys in ["10000", "1000000", "10000000"] {
        in_own_process_with("bytes-per-key", &[("SLUICE_BENCH_KEYS", keys)]);
    }
    println!(
        "\n## (b) reduce_by_key_and_window, 60-batch window, 1-batch slide, 1 000 000 words per batch (vocabulary 10 000)\n"
    );
    println!("| form | first batch | p50 once the window is full | max then | peak RSS |");
    println!("|---|---|---|---|---|");
    for name in ["window", "window-inv"] {
        in_own_process(name);
    }
}
