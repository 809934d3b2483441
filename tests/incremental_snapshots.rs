//! Incremental snapshots: after the first full snapshot of a run, each stateful operator saves
//! only the keys changed since its previous snapshot, kept on disk as a delta on the last full
//! part and compacted into a new full part in the background.
//!
//! No batch encodes its state for a snapshot: operators log their changes as they make them.
//!
//! The oracle is one uninterrupted run: a job of three stateful operators (a pure running
//! total, a Spark-rule update that removes keys, `map_with_state` with a timeout) over 300
//! keys, 8 of them updated a batch, stopped after `k` batches and restarted from its checkpoint
//! for the rest, must give the batches after `k` exactly as the uninterrupted run, for many
//! `k`, from delta snapshots and from compacted ones, on 1 and 2 workers, and with a corrupt
//! delta (an older snapshot is used) — or refuse, saying why, when the base under every
//! snapshot is corrupt.

mod common;

use std::path::Path;
use std::time::Duration;

use sluice::dstream::state::{StateSpec, UpdateState};
use sluice::listener::BatchRecorder;
use sluice::source::BatchQueue;
use sluice::{CollectedBatches, StreamingConfig, StreamingContext};

type Out = CollectedBatches<String>;

const KEYS: u64 = 300;
const BATCHES: u64 = 24;

/// Batch 1 sets every key; each later batch updates 8 of the first 40 keys (each key in runs
/// of 2–3 batches, 10 apart: it times out between runs).
fn input() -> Vec<Vec<String>> {
    (1..=BATCHES)
        .map(|b| {
            if b == 1 {
                (0..KEYS).map(|k| format!("k{k}")).collect()
            } else {
                (0..8).map(|j| format!("k{}", (b * 3 + j) % 40)).collect()
            }
        })
        .collect()
}

fn config(threads: usize, batches: u64, dir: Option<&Path>) -> StreamingConfig {
    common::checkpointed(threads, batches, dir)
}

/// Runs `batches` batches; each batch's outputs, sorted.
fn run(config: StreamingConfig) -> sluice::Result<Vec<(u64, Vec<String>)>> {
    let queue = BatchQueue::from_batches(input());
    let out = Out::new();
    let (q, o) = (queue.clone(), out.clone());
    StreamingContext::new(config).run(move |job| {
        let keys = job.queue_stream(&q).map(|k| (k, 1u64));
        let totals = keys
            .update_state_by_key_with(
                UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                    Some(old.unwrap_or(0) + new.iter().sum::<u64>())
                })
                .pure()
                .name("totals"),
            )
            .map(|(k, n)| format!("total {k}={n}"));
        // Pure, but not at a fixpoint without values: a key's heat halves until it is 0, so a
        // key changed at a snapshot's batch must be visited at the batch after a restore.
        let decay = keys
            .update_state_by_key_with(
                UpdateState::new(|new: Vec<u64>, old: Option<(u64, u64)>| {
                    let (total, heat) = old.unwrap_or((0, 0));
                    let sum = new.iter().sum::<u64>();
                    Some((total + sum, heat / 2 + 8 * sum))
                })
                .pure()
                .name("decay"),
            )
            .map(|(k, (total, heat))| format!("decay {k}={total}/{heat}"));
        // Spark's rule (every key, every batch); a key whose count reaches 3 is removed.
        let capped = keys
            .update_state_by_key_with(
                UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                    let n = old.unwrap_or(0) + new.iter().sum::<u64>();
                    (n < 3).then_some(n)
                })
                .name("capped"),
            )
            .map(|(k, n)| format!("capped {k}={n}"));
        let seen = keys
            .map_with_state(
                StateSpec::function(|_t, k: &String, one: Option<u64>, state| {
                    let n = state.get().copied().unwrap_or(0) + one.unwrap_or(0);
                    if state.is_timing_out() {
                        return Some(format!("gone {k}={n}"));
                    }
                    // Capped: touching a key at 2 keeps its state but not its last-seen batch.
                    state.update(n.min(2));
                    Some(format!("seen {k}={n}"))
                })
                .timeout(Duration::from_secs(5))
                .name("seen"),
            )
            .map(|s| s.clone());
        totals
            .union(&decay)
            .union(&capped)
            .union(&seen)
            .collect_into(&o);
    })?;
    Ok(out
        .batches()
        .into_iter()
        .map(|(t, mut v)| {
            v.sort();
            (t.millis(), v)
        })
        .collect())
}

/// The uninterrupted run's batches after batch `k` (1-based).
fn reference_after(k: u64) -> Vec<(u64, Vec<String>)> {
    run(config(1, BATCHES, None))
        .expect("the reference runs")
        .into_iter()
        .filter(|(t, _)| *t > k * 1000)
        .collect()
}

/// Kind byte of a framed checkpoint file (5: a delta part).
fn kind(path: &Path) -> u8 {
    std::fs::read(path).expect("part")[8]
}

#[test]
fn restarts_from_incremental_snapshots_match_one_uninterrupted_run() {
    // Stopped after batch `k` and after `k + m`: the second restart reads the snapshots the
    // resumed run wrote (on the same number of workers, its chains went on from the restored
    // parts; on another, it started them again).
    for (k, m, threads) in [
        (3, 2, [1, 1, 1]),
        (4, 5, [1, 1, 1]),
        (5, 3, [1, 1, 2]),
        (8, 4, [1, 1, 1]),
        (11, 6, [1, 2, 2]),
        (14, 3, [2, 1, 1]),
        (17, 4, [2, 2, 2]),
        (20, 2, [1, 1, 1]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let at = |w: usize, batches| config(threads[w], batches, Some(dir.path()));
        run(at(0, k)).expect("the first run");
        let resumed = run(at(1, m)).expect("the restart runs");
        assert_eq!(
            resumed,
            reference_after(k)[..m as usize].to_vec(),
            "stopped after batch {k} on {threads:?} worker(s)"
        );
        let again = run(at(2, BATCHES - k - m)).expect("the second restart runs");
        assert_eq!(
            again,
            reference_after(k + m),
            "stopped after batch {k} and {} on {threads:?} worker(s)",
            k + m
        );
    }
}

#[test]
fn snapshots_are_deltas_on_a_full_base_and_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = BatchRecorder::new();
    run(config(1, BATCHES, Some(dir.path())).listener(recorder.clone())).unwrap();
    let writes: Vec<(u64, &'static str, u64, u64)> = recorder
        .batches()
        .iter()
        .flat_map(|b| {
            b.snapshots.iter().map(move |w| {
                let op = match w.operator.as_str() {
                    "totals" => "totals",
                    "decay" => "decay",
                    "capped" => "capped",
                    _ => "seen",
                };
                (b.batch_time.millis(), op, w.keys, w.full_parts)
            })
        })
        .collect();
    // No snapshot batch encodes the state: each hands over the changes its operators logged
    // since the previous snapshot (the run's first, every key set since the run began: 300,
    // plus batch 2's 8), which the background writer turns into parts. For `totals` and
    // `capped` that is 2 batches of 8 updates (and for `totals` the 8 keys marked changed at
    // the previous snapshot going back to unmarked).
    for &(t, op, keys, full) in &writes {
        assert_eq!(full, 0, "{op} at {t}: {writes:?}");
        match (t, op) {
            (2000, _) => assert!(keys >= KEYS, "{op} at {t}: {writes:?}"),
            (_, "totals" | "capped") => {
                assert!(keys <= 32, "{op} at {t} logged {keys} changes: {writes:?}")
            }
            _ => {}
        }
    }
    // On disk: the newest snapshot's `totals` part is a delta on a base the writer compacted
    // after the first snapshot (changes pile up to a quarter of the keys, then compact).
    let inspection = sluice::checkpoint::inspect(dir.path()).unwrap();
    let newest = &inspection.snapshots[0];
    assert_eq!(newest.unusable, None);
    assert_eq!(newest.batch_ms, BATCHES * 1000);
    let part = dir
        .path()
        .join(format!("state-{}", newest.batch_ms))
        .join("totals.part-0-of-1");
    assert_eq!(kind(&part), 5, "a delta part");
    assert!(
        newest.bases.iter().any(|&b| b > 2000),
        "a compacted base: {:?}",
        newest.bases
    );
    // Its base (the first 8 bytes of the payload, after the 21-byte frame) was kept by
    // pruning, and is a full part.
    let bytes = std::fs::read(&part).unwrap();
    let base = u64::from_le_bytes(bytes[21..29].try_into().unwrap());
    assert!(newest.bases.contains(&base), "{base} in {:?}", newest.bases);
    let base_part = dir
        .path()
        .join(format!("state-{base}"))
        .join("totals.part-0-of-1");
    assert_eq!(kind(&base_part), 3, "the base {base} is a full part");
}

/// The first snapshot of `recorder`'s run: its batch, and per operator what it handed over
/// (`(keys, full_parts)`, summed over the workers).
fn first_snapshot(recorder: &BatchRecorder) -> (u64, Vec<(String, u64, u64)>) {
    let batch = recorder
        .batches()
        .into_iter()
        .find(|b| !b.snapshots.is_empty())
        .expect("a snapshot in the run");
    let mut writes: Vec<(String, u64, u64)> = Vec::new();
    for w in &batch.snapshots {
        match writes.iter_mut().find(|(op, _, _)| *op == w.operator) {
            Some((_, keys, full)) => {
                *keys += w.keys;
                *full += w.full_parts;
            }
            None => writes.push((w.operator.clone(), w.keys, w.full_parts)),
        }
    }
    (batch.batch_time.millis(), writes)
}

#[test]
fn a_restarted_run_goes_on_with_its_chain_and_stays_exact_over_several_restarts() {
    let dir = tempfile::tempdir().unwrap();
    run(config(1, 7, Some(dir.path()))).unwrap();
    // On as many workers as before, each worker holds exactly the keys of its restored part:
    // it goes on with that part's chain. Its first snapshot hands over only what changed since
    // the restore (not the 300 keys it restored), written as a delta on the first run's base.
    let recorder = BatchRecorder::new();
    let second = run(config(1, 6, Some(dir.path())).listener(recorder.clone())).unwrap();
    assert_eq!(second, reference_after(7)[..6].to_vec());
    let (t, writes) = first_snapshot(&recorder);
    assert_eq!(t, 8000, "{writes:?}");
    for (op, keys, full) in &writes {
        assert_eq!(*full, 0, "{op}: {writes:?}");
        if op == "totals" || op == "capped" {
            // Batches 7 and 8 (restored at 6): 2 × 8 updates, and for `totals` the keys marked
            // changed at batch 6 going back to unmarked.
            assert!(*keys <= 32, "{op} logged {keys} changes: {writes:?}");
        }
    }
    let part = dir.path().join("state-8000").join("totals.part-0-of-1");
    assert_eq!(kind(&part), 5, "a delta part");
    let bytes = std::fs::read(&part).unwrap();
    let base = u64::from_le_bytes(bytes[21..29].try_into().unwrap());
    assert!(base <= 6000, "its base {base} is the first run's");
    // On 2 workers the old part's keys are spread over both: the restored state is logged as
    // changes since empty state and compacted into new full parts, off the batch's path.
    let recorder = BatchRecorder::new();
    run(config(2, 5, Some(dir.path())).listener(recorder.clone())).unwrap();
    let (t, writes) = first_snapshot(&recorder);
    let totals = writes.iter().find(|(op, _, _)| op == "totals").unwrap();
    assert!(totals.1 >= KEYS, "{writes:?}");
    for w in 0..2 {
        let part = dir
            .path()
            .join(format!("state-{t}"))
            .join(format!("totals.part-{w}-of-2"));
        assert_eq!(kind(&part), 3, "compacted into a full part");
    }
    // And back to 1 worker: the answer stays exact.
    let last = run(config(1, BATCHES - 18, Some(dir.path()))).unwrap();
    assert_eq!(last, reference_after(18));
}

#[test]
fn full_snapshots_when_asked_give_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let full = |batches| config(1, batches, Some(dir.path())).incremental_snapshots(false);
    run(full(9)).unwrap();
    let inspection = sluice::checkpoint::inspect(dir.path()).unwrap();
    assert!(inspection.snapshots.iter().all(|s| s.bases.is_empty()));
    assert_eq!(run(full(BATCHES - 9)).unwrap(), reference_after(9));
}

#[test]
fn a_corrupt_delta_falls_back_to_an_older_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    run(config(1, 13, Some(dir.path()))).unwrap();
    let part = dir.path().join("state-13000").join("totals.part-0-of-1");
    assert_eq!(kind(&part), 5, "a delta part");
    let mut bytes = std::fs::read(&part).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    let resumed = run(config(1, BATCHES - 13, Some(dir.path()))).unwrap();
    assert_eq!(resumed, reference_after(13));
}

#[test]
fn a_corrupt_base_is_refused_or_recovered_exactly_never_wrong() {
    let dir = tempfile::tempdir().unwrap();
    run(config(1, 13, Some(dir.path()))).unwrap();
    let inspection = sluice::checkpoint::inspect(dir.path()).unwrap();
    let base = inspection.snapshots[0].bases[0];
    let part = dir
        .path()
        .join(format!("state-{base}"))
        .join("totals.part-0-of-1");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[30] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    // Every kept snapshot builds on that base (or is it): none is usable, and the plans
    // before it are pruned, so the job cannot be rebuilt and says so.
    let after = sluice::checkpoint::inspect(dir.path()).unwrap();
    assert!(after.snapshots.iter().all(|s| s.unusable.is_some()));
    match run(config(1, BATCHES - 13, Some(dir.path()))) {
        Ok(resumed) => assert_eq!(resumed, reference_after(13)),
        Err(e) => assert!(e.to_string().contains("no usable snapshot"), "{e}"),
    }
}
