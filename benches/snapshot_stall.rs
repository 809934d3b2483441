//! Snapshot stall (issue 9): a running count over 1 000 000 keys (all loaded at the first batch,
//! then 10 000 updated per batch; 200 ms batches, snapshot every 10 batches) with a checkpoint.
//!
//! Runs the job with full snapshots (every key encoded at every snapshot: sluice before
//! incremental snapshots) and with incremental ones (the default), alternating, twice each,
//! and prints for each run: the snapshot batches after the first (which is still in the
//! backlog of the 1 M-key first batch) and the batches without one (p50, max: the incremental runs log every change as it is made, so
//! their cost shows here), the time the later snapshot batches spent on it on the batch's path
//! (full: gathering and encoding every key; incremental: handing the log over) and the keys
//! encoded or changes handed over, the largest part handed over, and the CPU time of the whole
//! run (the background writer's folds and compactions included).
//!
//! Run with `cargo bench --bench snapshot_stall`.

#[path = "common/paced.rs"]
#[allow(dead_code)] // (the CPU and machine readings only)
mod paced;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use sluice::dstream::state::UpdateState;
use sluice::listener::BatchRecorder;
use sluice::source::BatchQueue;
use sluice::{StreamingConfig, StreamingContext};

const KEYS: u64 = 1_000_000;
const UPDATED: u64 = 10_000;
const BATCH_MS: u64 = 200;
const BATCHES: u64 = 61;

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one run measured.
struct Row {
    /// Processing time of the later batches with a snapshot: p50, max.
    with: (Duration, Duration),
    /// ... and of the batches without one.
    without: (Duration, Duration),
    /// Time the later snapshot batches spent on the snapshot (p50), and the keys they encoded
    /// or the changes they handed over (p50).
    on_path: Duration,
    keys: u64,
    /// Bytes handed over at the largest snapshot, and CPU time of the whole run (background
    /// writes and compactions included).
    bytes: u64,
    cpu: Duration,
}

fn run(incremental: bool) -> Row {
    let dir = tempfile::tempdir().expect("temp dir");
    let batches = (0..BATCHES).map(|b| {
        if b == 0 {
            (0..KEYS)
                .map(|k| (format!("k{k}"), 1u64))
                .collect::<Vec<_>>()
        } else {
            (0..UPDATED)
                .map(|j| (format!("k{}", (b * 7919 + j * 97) % KEYS), 1u64))
                .collect()
        }
    });
    let queue = BatchQueue::from_batches(batches);
    let recorder = BatchRecorder::new();
    let config = StreamingConfig::new(Duration::from_millis(BATCH_MS))
        .expect("valid")
        .checkpoint(dir.path())
        .incremental_snapshots(incremental)
        .max_batches(BATCHES)
        .listener(recorder.clone());
    let cpu_before = paced::cpu_ticks("self");
    StreamingContext::new(config)
        .run(move |job| {
            job.queue_stream(&queue)
                .update_state_by_key_with(
                    UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                        Some(old.unwrap_or(0) + new.iter().sum::<u64>())
                    })
                    .pure()
                    .name("totals"),
                )
                .changes()
                .count()
                .foreach_batch(|_, n| {
                    std::hint::black_box(n);
                });
        })
        .expect("the job runs");
    let cpu = paced::cpu_ticks("self") - cpu_before;
    // The first batch loads every key; leave it out.
    let infos = recorder.batches();
    let (with, without): (Vec<_>, Vec<_>) =
        infos.iter().skip(1).partition(|b| !b.snapshots.is_empty());
    let processing = |v: &[&sluice::listener::BatchInfo]| {
        let times: Vec<Duration> = v.iter().map(|b| b.processing_time).collect();
        (percentile(times.clone(), 0.5), percentile(times, 1.0))
    };
    // The first snapshot batch is still in the backlog of the 1 M-key first batch: left out.
    let later = &with[1.min(with.len())..];
    Row {
        with: processing(later),
        without: processing(&without),
        on_path: percentile(
            later
                .iter()
                .map(|b| b.snapshots.iter().map(|s| s.duration).sum())
                .collect(),
            0.5,
        ),
        keys: {
            let mut keys: Vec<u64> = later
                .iter()
                .map(|b| b.snapshots.iter().map(|s| s.keys).sum())
                .collect();
            keys.sort_unstable();
            keys.get(keys.len() / 2).copied().unwrap_or(0)
        },
        bytes: with
            .iter()
            .flat_map(|b| b.snapshots.iter().map(|s| s.bytes))
            .max()
            .unwrap_or(0),
        cpu: Duration::from_secs_f64(cpu as f64 / 100.0),
    }
}

fn main() {
    let (cores, load) = paced::machine();
    println!(
        "# snapshot stall: {KEYS} keys of state, {UPDATED} updated per {BATCH_MS} ms batch, snapshot every 10 batches ({cores} cores, load average {load})\n"
    );
    // Alternating, twice each: the machine drifts between minutes.
    let mut rows = Vec::new();
    for round in 0..2 {
        for incremental in [false, true] {
            rows.push((round, incremental, run(incremental)));
        }
    }
    println!(
        "| snapshots | run | snapshot batches p50 / max | spent on the snapshot (p50) | keys encoded, or changes handed over (p50) | batches without p50 / max | largest part handed over | CPU of the run |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (round, incremental, r) in &rows {
        println!(
            "| {} | {} | {:.0} / {:.0} ms | {:.1} ms | {} | {:.0} / {:.0} ms | {:.1} MiB | {:.1} s |",
            if *incremental {
                "incremental (default)"
            } else {
                "full (`incremental_snapshots(false)`)"
            },
            round + 1,
            ms(r.with.0),
            ms(r.with.1),
            ms(r.on_path),
            r.keys,
            ms(r.without.0),
            ms(r.without.1),
            r.bytes as f64 / 1048576.0,
            r.cpu.as_secs_f64()
        );
    }
    let spent = |inc: bool| {
        percentile(
            rows.iter()
                .filter(|(_, i, _)| *i == inc)
                .map(|(_, _, r)| r.on_path)
                .collect(),
            0.5,
        )
    };
    println!(
        "\nspent on a later snapshot, incremental / full: {:.3} ({:.1} ms / {:.1} ms)",
        ms(spent(true)) / ms(spent(false)).max(1e-9),
        ms(spent(true)),
        ms(spent(false))
    );
}
