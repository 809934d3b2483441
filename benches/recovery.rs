//! Recovery benchmark (issue: exactly-once, checkpoints, recovery).
//!
//! A running count over 1 000 000 keys (all loaded at the first batch, then 10 000 keys updated
//! per batch; 200 ms batches, state snapshotted every 10 batches = 2 s) runs in a child process
//! with a checkpoint; after 25 batches it is killed with SIGKILL and started again. Measured:
//! the time from the kill to the restarted job's first *new* batch completed (the restart
//! restores the last snapshot, replays the batches after it from their plans without output,
//! then runs the next batch), split into the process start → restore → replay part and the
//! snapshot size. The source is a queue rebuilt identically by each child (the checkpoint's plans
//! say which of its batches were taken), so the numbers are the engine's, not a broker's.
//!
//! Run with `cargo bench --bench recovery`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice::dstream::state::UpdateState;
use sluice::source::BatchQueue;
use sluice::{StreamingConfig, StreamingContext};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: u64 = 1_000_000;
const UPDATED: u64 = 10_000;
const BATCH_MS: u64 = 200;

/// The child: runs the job until killed; prints `batch <t> <ms since start>` for every batch
/// whose output ran.
fn child(dir: &str) {
    let started = Instant::now();
    let batches = (0..400u64).map(|b| {
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
    let config = StreamingConfig::new(Duration::from_millis(BATCH_MS))
        .expect("valid")
        .checkpoint(dir);
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
                .foreach_batch(move |t, _| {
                    println!("batch {} {}", t.millis(), started.elapsed().as_millis());
                });
        })
        .expect("the job runs");
}

fn main() {
    if let Ok(dir) = std::env::var("SLUICE_RECOVERY_CHILD") {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("bench binary");
    let spawn = || {
        Command::new(&exe)
            .env("SLUICE_RECOVERY_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child")
    };
    // Run 1: until 25 batches have run, then SIGKILL.
    let mut first = spawn();
    let mut lines = BufReader::new(first.stdout.take().expect("stdout")).lines();
    let mut last_batch = 0u64;
    for _ in 0..25 {
        if let Some(Ok(l)) = lines.next() {
            last_batch = l
                .split(' ')
                .nth(1)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
        }
    }
    let killed_at = Instant::now();
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .expect("kill");
    let _ = first.wait();
    let snapshot_bytes: u64 = std::fs::read_dir(dir.path())
        .expect("checkpoint dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("state-"))
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .filter_map(|f| f.metadata().ok().map(|m| m.len()))
        .max()
        .unwrap_or(0);
    // Run 2: from the checkpoint.
    let restarted_at = Instant::now();
    let mut second = spawn();
    let mut lines = BufReader::new(second.stdout.take().expect("stdout")).lines();
    let first_line = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let recovered = killed_at.elapsed();
    let mut parts = first_line.split(' ');
    let batch: u64 = parts.nth(1).and_then(|t| t.parse().ok()).unwrap_or(0);
    let in_child: u64 = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    let _ = Command::new("kill")
        .args(["-KILL", &second.id().to_string()])
        .status();
    let _ = second.wait();
    println!(
        "recovery with {KEYS} keys of state, {BATCH_MS} ms batches, snapshot every 10 batches:"
    );
    println!("  killed after batch {last_batch} ms; first new batch after restart: {batch} ms");
    println!(
        "  SIGKILL -> first new batch completed: {:.0} ms (process start -> batch: {in_child} ms, spawn overhead {:.0} ms)",
        recovered.as_secs_f64() * 1e3,
        (restarted_at - killed_at).as_secs_f64() * 1e3
    );
    println!(
        "  largest state part: {:.1} MiB",
        snapshot_bytes as f64 / 1048576.0
    );
}
