//! Recovery benchmark (issue: exactly-once, checkpoints, recovery; issue 9: incremental
//! snapshots).
//!
//! A running count over 1 000 000 keys (all loaded at the first batch, then 10 000 keys updated
//! per batch; 200 ms batches, state snapshotted every 10 batches = 2 s) runs in a child process
//! with a checkpoint, with full or incremental snapshots; after 25, 35 or 45 batches it is
//! killed with SIGKILL and started again. Measured: the time from the kill to the restarted
//! job's first *new* batch completed (the restart restores the last snapshot — for a delta,
//! its base with the changes applied — replays the batches after it from their plans without
//! output, then runs the next batch), the part of it inside the restarted process, and the
//! sizes of the snapshot part and its base; and the restarted run's first snapshot: how many
//! changes it handed over (a worker that resumed its part's chain logs only what changed since
//! the restore), the part it became on disk, and the time its batch spent on it. The source is a
//! queue rebuilt identically by each child (the checkpoint's plans say which of its batches
//! were taken), so the numbers are the engine's, not a broker's.
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

/// Prints `snapshot <t> <changes or keys handed over> <full parts> <µs on the batch's path>`
/// for every batch that took a snapshot.
struct ShowSnapshots;

impl sluice::listener::StreamingListener for ShowSnapshots {
    fn on_batch_completed(&self, b: &sluice::listener::BatchInfo) {
        if b.snapshots.is_empty() {
            return;
        }
        println!(
            "snapshot {} {} {} {}",
            b.batch_time.millis(),
            b.snapshots.iter().map(|w| w.keys).sum::<u64>(),
            b.snapshots.iter().map(|w| w.full_parts).sum::<u64>(),
            b.snapshots
                .iter()
                .map(|w| w.duration.as_micros())
                .sum::<u128>()
        );
    }
}

/// The child: runs the job until killed; prints `batch <t> <ms since start>` for every batch
/// whose output ran, and what each snapshot handed over.
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
        .checkpoint(dir)
        .incremental_snapshots(std::env::var_os("SLUICE_RECOVERY_FULL").is_none())
        .listener(ShowSnapshots);
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

/// What one kill and restart measured.
struct Recovery {
    killed_after: u64,
    first_new: u64,
    /// SIGKILL → the restarted job's first new batch completed, and the part of it inside the
    /// restarted process.
    total: Duration,
    in_child: Duration,
    /// Bytes of the newest complete snapshot's part and of its base (a delta's), on disk.
    part: u64,
    base: u64,
    /// The restarted run's first snapshot: changes (or keys) handed over, whether they were a
    /// full part, the time its batch spent on it, and the kind of part it became on disk.
    next: Option<NextSnapshot>,
}

struct NextSnapshot {
    handed_over: u64,
    full: bool,
    on_path: Duration,
    on_disk: &'static str,
}

/// A `batch` line's batch time and milliseconds since its process started.
fn batch_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.strip_prefix("batch ")?.split(' ');
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// Runs the job with `incremental` snapshots until `batches` batches ran, kills it with
/// SIGKILL, restarts it, and times the restart.
fn measure(incremental: bool, batches: usize) -> Recovery {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("bench binary");
    let spawn = || {
        let mut c = Command::new(&exe);
        c.env("SLUICE_RECOVERY_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if !incremental {
            c.env("SLUICE_RECOVERY_FULL", "1");
        }
        c.spawn().expect("child")
    };
    let mut first = spawn();
    let mut lines = BufReader::new(first.stdout.take().expect("stdout")).lines();
    let mut killed_after = 0u64;
    let mut seen = 0;
    while seen < batches {
        let Some(Ok(l)) = lines.next() else { break };
        if let Some((t, _)) = batch_line(&l) {
            killed_after = t;
            seen += 1;
        }
    }
    let killed_at = Instant::now();
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .expect("kill");
    let _ = first.wait();
    // The newest snapshot with a manifest, its part, and a delta's base.
    let newest = sluice::checkpoint::inspect(dir.path())
        .ok()
        .and_then(|i| i.snapshots.into_iter().find(|s| s.unusable.is_none()));
    let part_bytes = |t: u64| {
        std::fs::metadata(
            dir.path()
                .join(format!("state-{t}"))
                .join("totals.part-0-of-1"),
        )
        .map(|m| m.len())
        .unwrap_or(0)
    };
    let (part, base) = newest.map_or((0, 0), |s| {
        (
            part_bytes(s.batch_ms),
            s.bases.first().map_or(0, |&b| part_bytes(b)),
        )
    });
    let mut second = spawn();
    let mut lines = BufReader::new(second.stdout.take().expect("stdout")).lines();
    let (first_new, in_child) = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| batch_line(&l))
        .unwrap_or((0, 0));
    let total = killed_at.elapsed();
    // The restarted run's first snapshot, and what its part became once written.
    let next = lines.map_while(Result::ok).find_map(|l| {
        let f: Vec<u64> = l
            .strip_prefix("snapshot ")?
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect();
        let &[t, handed_over, full, micros] = f.as_slice() else {
            return None;
        };
        let manifest = dir.path().join(format!("state-{t}")).join("MANIFEST");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !manifest.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let part = dir
            .path()
            .join(format!("state-{t}"))
            .join("totals.part-0-of-1");
        let on_disk = match std::fs::read(&part).ok().and_then(|b| b.get(8).copied()) {
            Some(3) => "full part",
            Some(5) => "delta",
            _ => "not written",
        };
        Some(NextSnapshot {
            handed_over,
            full: full > 0,
            on_path: Duration::from_micros(micros),
            on_disk,
        })
    });
    let _ = Command::new("kill")
        .args(["-KILL", &second.id().to_string()])
        .status();
    let _ = second.wait();
    Recovery {
        killed_after,
        first_new,
        total,
        in_child: Duration::from_millis(in_child),
        part,
        base,
        next,
    }
}

fn main() {
    if let Ok(dir) = std::env::var("SLUICE_RECOVERY_CHILD") {
        child(&dir);
        return;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# recovery with {KEYS} keys of state, {BATCH_MS} ms batches, snapshot every 10 batches (load average {})\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| snapshots | killed after | first batch printed after the restart, from the last before the kill | SIGKILL → first new batch done | of it in the restarted process | newest part | its base | the restarted run's first snapshot: handed over, on disk, time on its batch's path |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mib = |b: u64| b as f64 / 1048576.0;
    // Killed after 25 batches, the newest snapshot is the second: incremental, a delta of
    // ~100 000 changed keys on the first; after 35, a delta of ~200 000; after 45, the fourth,
    // which the writer compacted into a full part (the changes reached a quarter of the keys).
    for (incremental, batches) in [(false, 25), (true, 25), (true, 35), (false, 45), (true, 45)] {
        let r = measure(incremental, batches);
        let next = r.next.map_or("–".to_owned(), |n| {
            format!(
                "{} {}, {}, {:.1} ms",
                n.handed_over,
                if n.full { "keys encoded" } else { "changes" },
                n.on_disk,
                n.on_path.as_secs_f64() * 1e3
            )
        });
        println!(
            "| {} | {batches} batches | +{} ms | {:.0} ms | {:.0} ms | {:.1} MiB | {} | {next} |",
            if incremental { "incremental" } else { "full" },
            r.first_new.saturating_sub(r.killed_after),
            r.total.as_secs_f64() * 1e3,
            r.in_child.as_secs_f64() * 1e3,
            mib(r.part),
            if r.base > 0 {
                format!("{:.1} MiB", mib(r.base))
            } else {
                "(full part)".into()
            }
        );
    }
}
