//! Snapshot stall (issue 9): a running count over 1 000 000 keys (all loaded at the first batch,
//! then 10 000 updated per batch; 200 ms batches, snapshot every 10 batches) with a checkpoint.
//!
//! Prints, in one run: processing time of the batches with a snapshot next to those without
//! (p50, max), the time the snapshot batches spent on it (encoding, on the batch's path), and,
//! for reference, what the same bytes take to write and fsync in the foreground — the stall
//! each snapshot batch had when parts were written inline.
//!
//! Run with `cargo bench --bench snapshot_stall`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

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

fn main() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# snapshot stall: {KEYS} keys of state, {UPDATED} updated per {BATCH_MS} ms batch, snapshot every 10 batches (load average {})\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
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
        .max_batches(BATCHES)
        .listener(recorder.clone());
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
    // The first batch loads every key; leave it out.
    let infos = recorder.batches();
    let (with, without): (Vec<_>, Vec<_>) =
        infos.iter().skip(1).partition(|b| !b.snapshots.is_empty());
    let on_path: Vec<Duration> = with
        .iter()
        .map(|b| b.snapshots.iter().map(|s| s.duration).sum())
        .collect();
    let bytes = with
        .iter()
        .flat_map(|b| b.snapshots.iter().map(|s| s.bytes))
        .max()
        .unwrap_or(0);
    println!("| batches | count | p50 processing | max processing | spent on the snapshot (p50) |");
    println!("|---|---|---|---|---|");
    let processing = |v: &[&sluice::listener::BatchInfo], p| {
        ms(percentile(v.iter().map(|b| b.processing_time).collect(), p))
    };
    println!(
        "| with a snapshot | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
        with.len(),
        processing(&with, 0.5),
        processing(&with, 1.0),
        ms(percentile(on_path, 0.5))
    );
    println!(
        "| without | {} | {:.0} ms | {:.0} ms | |",
        without.len(),
        processing(&without, 0.5),
        processing(&without, 1.0)
    );
    // What a foreground write of the same bytes takes (the old stall's disk part).
    let payload = vec![7u8; bytes as usize];
    let mut writes = Vec::new();
    for i in 0..5 {
        let path = dir.path().join(format!("reference-{i}"));
        let started = Instant::now();
        sluice::checkpoint::file::write_atomic(&path, &[&payload]).expect("write");
        writes.push(started.elapsed());
    }
    println!(
        "\nstate part: {:.1} MiB; writing and fsyncing it in the foreground (as before): p50 {:.0} ms, max {:.0} ms",
        bytes as f64 / 1048576.0,
        ms(percentile(writes.clone(), 0.5)),
        ms(percentile(writes, 1.0))
    );
}
