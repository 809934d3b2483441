//! Checkpoints in one process: state restored by name, silent replay of finished batches,
//! corrupt snapshots skipped, re-sharding to more workers, code changes, windows refilled.
//!
//! Each case runs a job over a replayable queue for 7 batches (graceful stop, or a "crash" made
//! by removing what a crash would not have written), restarts it from the checkpoint for 5
//! more, and compares the restarted run's outputs with batches 8–12 of one uninterrupted run.

mod common;

use std::path::Path;
use std::time::Duration;

use sluice::dstream::state::{StateSpec, UpdateState};
use sluice::source::BatchQueue;
use sluice::{CollectedBatches, Job, StreamingConfig, StreamingContext};

type Out = CollectedBatches<String>;

/// 12 batches of words; word `w<j>` appears in batches where `(b + j) % 3 != 0`.
fn input() -> Vec<Vec<String>> {
    (1..=12u64)
        .map(|b| {
            (0..20u64)
                .filter(|j| (b + j) % 3 != 0)
                .map(|j| format!("w{} w{}", j % 7, j % 5))
                .collect()
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// `update_state_by_key` running totals (Spark's view) + `map_with_state` with a timeout.
    State,
    /// As `State`, plus a new stateful operator and an extra map (a code change).
    StateChanged,
    /// Running totals joined with a 3-batch window.
    StateAndWindow,
}

fn build(job: &mut Job<'_>, queue: &BatchQueue<String>, out: &Out, shape: Shape) {
    let words = job
        .queue_stream(queue)
        .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64));
    let totals = words.update_state_by_key_with(
        UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
            Some(old.unwrap_or(0) + new.iter().sum::<u64>())
        })
        .name("totals"),
    );
    let o = out.clone();
    let totals = totals.map(|(w, n)| format!("total {w}={n}"));
    let seen = words.map_with_state(
        StateSpec::function(|_t, w: &String, one: Option<u64>, state| {
            let n = state.get().copied().unwrap_or(0) + one.unwrap_or(0);
            if state.is_timing_out() {
                return Some(format!("gone {w}={n}"));
            }
            state.update(n);
            Some(format!("seen {w}={n}"))
        })
        .timeout(Duration::from_secs(2))
        .name("seen"),
    );
    let mut all = totals.union(&seen);
    match shape {
        Shape::State => {}
        Shape::StateChanged => {
            let extra = words
                .update_state_by_key_with(
                    UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                        Some(old.unwrap_or(0) + new.len() as u64)
                    })
                    .name("new-operator"),
                )
                .map(|(w, n)| format!("new {w}={n}"));
            all = all.union(&extra);
        }
        Shape::StateAndWindow => {
            let window = words
                .reduce_by_key_and_window(
                    |a, b| a + b,
                    Duration::from_secs(3),
                    Duration::from_secs(1),
                )
                .map(|(w, n)| format!("window {w}={n}"));
            all = all.union(&window);
        }
    }
    all.collect_into(&o);
}

fn config(threads: usize, batches: u64, dir: Option<&Path>) -> StreamingConfig {
    common::checkpointed(threads, batches, dir)
}

fn run(threads: usize, batches: u64, dir: Option<&Path>, shape: Shape) -> Vec<(u64, Vec<String>)> {
    let queue = BatchQueue::from_batches(input());
    let out = Out::new();
    let (q, o) = (queue.clone(), out.clone());
    StreamingContext::new(config(threads, batches, dir))
        .run(move |job| build(job, &q, &o, shape))
        .expect("the job runs");
    out.batches()
        .into_iter()
        .map(|(t, mut v)| {
            v.sort();
            (t.millis(), v)
        })
        .collect()
}

fn reference(shape: Shape) -> Vec<(u64, Vec<String>)> {
    run(1, 12, None, shape)
        .into_iter()
        .filter(|(t, _)| *t >= 8000)
        .collect()
}

fn state_dirs(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("state-")
                .and_then(|t| t.parse().ok())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn state_is_restored_after_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(1, 7, Some(dir.path()), Shape::State);
    assert_eq!(first.len(), 7);
    // Every 2 batches (2, 4, 6 s) and the final batch; the two newest and older ones pruned.
    assert_eq!(state_dirs(dir.path()), vec![6000, 7000]);
    let second = run(1, 5, Some(dir.path()), Shape::State);
    assert_eq!(second, reference(Shape::State));
}

#[test]
fn finished_batches_after_the_snapshot_are_replayed_without_output() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 7, Some(dir.path()), Shape::State);
    // What a crash after batch 7's outputs but before its snapshot leaves.
    std::fs::remove_dir_all(dir.path().join("state-7000")).unwrap();
    let second = run(1, 5, Some(dir.path()), Shape::State);
    // Batch 7 was replayed to rebuild the state, but its output had already run.
    assert_eq!(second.first().map(|(t, _)| *t), Some(8000));
    assert_eq!(second, reference(Shape::State));
}

#[test]
fn a_corrupt_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 7, Some(dir.path()), Shape::State);
    let part = dir.path().join("state-7000").join("totals.part-0-of-1");
    let mut bytes = std::fs::read(&part).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    // And a torn manifest of a newer, unfinished snapshot.
    std::fs::create_dir_all(dir.path().join("state-8000")).unwrap();
    std::fs::write(
        dir.path().join("state-8000").join("MANIFEST"),
        b"SLUICE\x01",
    )
    .unwrap();
    let second = run(1, 5, Some(dir.path()), Shape::State);
    assert_eq!(second, reference(Shape::State));
}

#[test]
fn a_checkpoint_of_one_worker_restores_into_two() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 7, Some(dir.path()), Shape::State);
    let second = run(2, 5, Some(dir.path()), Shape::State);
    assert_eq!(second, reference(Shape::State));
    // And back to one, from the snapshot the two workers wrote.
    let dir = tempfile::tempdir().unwrap();
    run(2, 7, Some(dir.path()), Shape::State);
    assert!(
        dir.path()
            .join("state-7000")
            .join("totals.part-1-of-2")
            .exists()
    );
    let second = run(1, 5, Some(dir.path()), Shape::State);
    assert_eq!(second, reference(Shape::State));
}

#[test]
fn a_changed_job_keeps_the_state_of_operators_whose_name_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 7, Some(dir.path()), Shape::State);
    let second = run(1, 5, Some(dir.path()), Shape::StateChanged);
    let expected = reference(Shape::State);
    // The old operators' outputs are the uninterrupted run's; the new one counted from batch 8.
    for ((t, got), (te, want)) in second.iter().zip(&expected) {
        assert_eq!(t, te);
        let old: Vec<&String> = got.iter().filter(|s| !s.starts_with("new ")).collect();
        assert_eq!(old, want.iter().collect::<Vec<_>>(), "batch {t}");
    }
    // The new operator starts empty: at batch 8 it holds batch 8's counts only.
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for line in &input()[7] {
        for w in line.split(' ') {
            *counts.entry(w.to_owned()).or_default() += 1;
        }
    }
    let mut want: Vec<String> = counts.iter().map(|(w, n)| format!("new {w}={n}")).collect();
    want.sort();
    let got: Vec<String> = second[0]
        .1
        .iter()
        .filter(|s| s.starts_with("new "))
        .cloned()
        .collect();
    assert_eq!(got, want);
}

#[test]
fn windows_are_refilled_by_replaying_from_an_older_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 7, Some(dir.path()), Shape::StateAndWindow);
    // A 3 s window needs batches 6 and 7 again at batch 8: the snapshot of batch 7 is too new,
    // so 4 s is kept and used.
    assert!(state_dirs(dir.path()).contains(&4000));
    let second = run(1, 5, Some(dir.path()), Shape::StateAndWindow);
    assert_eq!(second, reference(Shape::StateAndWindow));
}

#[test]
fn a_checkpoint_with_another_batch_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 3, Some(dir.path()), Shape::State);
    let err = restart_refused(dir.path(), Duration::from_secs(2)).to_string();
    assert!(err.contains("batch interval of 1000 ms"), "{err}");
}

/// Restarts the `State` job from `dir` with batches of `interval`; the error it is refused with.
fn restart_refused(dir: &Path, interval: Duration) -> sluice::SluiceError {
    let config = StreamingConfig::new(interval)
        .unwrap()
        .as_fast_as_possible(1)
        .max_batches(1)
        .checkpoint(dir);
    let queue = BatchQueue::from_batches(input());
    let out = Out::new();
    StreamingContext::new(config)
        .run(move |job| build(job, &queue, &out, Shape::State))
        .expect_err("the restart is refused")
}

/// A checkpoint written by another format version (version 1 used bincode) is refused with the
/// file's name and the choices, never read as garbage and never silently started afresh.
#[test]
fn a_checkpoint_of_another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 3, Some(dir.path()), Shape::State);
    // Every framed file starts with b"SLUICE" and a little-endian u16 version.
    let metadata = dir.path().join("metadata");
    let mut bytes = std::fs::read(&metadata).unwrap();
    assert_eq!(&bytes[..6], b"SLUICE");
    bytes[6..8].copy_from_slice(&1u16.to_le_bytes());
    std::fs::write(&metadata, bytes).unwrap();
    let err = restart_refused(dir.path(), Duration::from_secs(1));
    let text = err.to_string();
    assert!(text.contains("format version 1"), "{text}");
    assert!(text.contains("metadata"), "{text}");
    assert!(text.contains("new checkpoint directory"), "{text}");
    assert_eq!(err.exit_code(), 1);
}

/// The warnings every test of this binary logs, captured once for the whole process.
fn warnings() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&l)))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        log
    })
    .clone()
}

fn logged() -> String {
    String::from_utf8_lossy(&warnings().lock().unwrap()).into_owned()
}

/// A running total under `name` (or a positional name), checkpointed in `dir`.
fn run_named(dir: &Path, name: Option<&'static str>, batches: u64) {
    let queue = BatchQueue::from_batches(input());
    StreamingContext::new(config(1, batches, Some(dir)))
        .run(move |job| {
            let spec = UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                Some(old.unwrap_or(0) + new.iter().sum::<u64>())
            });
            let spec = match name {
                Some(n) => spec.name(n),
                None => spec,
            };
            job.queue_stream(&queue)
                .map(|l: String| (l, 1u64))
                .update_state_by_key_with(spec)
                .changes()
                .print(1);
        })
        .expect("the job runs");
}

#[test]
fn unnamed_operators_and_state_that_finds_no_operator_are_named_in_warnings() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    run_named(dir.path(), None, 2);
    assert!(
        logged().contains("`update_state_by_key#") && logged().contains("has no name of its own"),
        "{}",
        logged()
    );
    let dir = tempfile::tempdir().unwrap();
    run_named(dir.path(), Some("alpha-totals"), 3);
    run_named(dir.path(), Some("beta-totals"), 2);
    assert!(
        logged().contains("operator `alpha-totals` (batch 3000 ms) found no operator of that name"),
        "{}",
        logged()
    );
}

fn plan_logs(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("plans"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect()
}

#[test]
fn damaged_or_missing_plan_logs_are_refused_never_replayed_twice() {
    // Each damage a disk or a person can do to the plan logs after a graceful stop; the
    // snapshot's own batch plan is then gone, and the job must refuse to start, naming the
    // plans and the choices (it used to feed the input again on top of the restored state).
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("deleted", |p| std::fs::remove_file(p).unwrap()),
        ("emptied", |p| std::fs::write(p, b"").unwrap()),
        ("truncated by 3 bytes", |p| {
            let len = std::fs::metadata(p).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(len - 3).unwrap();
        }),
        ("bit-flipped near the end", |p| {
            let mut bytes = std::fs::read(p).unwrap();
            let at = bytes.len() - 5;
            bytes[at] ^= 0x40;
            std::fs::write(p, bytes).unwrap();
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        run(1, 7, Some(dir.path()), Shape::State);
        for log in plan_logs(dir.path()) {
            damage(&log);
        }
        let err = restart_refused(dir.path(), Duration::from_secs(1));
        let text = err.to_string();
        assert!(
            text.contains("no readable record of batch 7000 ms") && text.contains("plans"),
            "{what}: {text}"
        );
        assert!(text.contains("start afresh"), "{what}: {text}");
    }
}

/// A running total over `source` (`generated`: random lines, which cannot be replayed; else a
/// queue of many distinct keys), checkpointed in `dir` every batch; the last batch's totals.
fn totals_job(dir: &Path, generated: bool, batches: u64) -> sluice::Result<Vec<String>> {
    let queue = BatchQueue::from_batches((0..6).map(|b| {
        (0..4000)
            .map(|k| format!("key-{:06}-{}", k, b % 2))
            .collect::<Vec<_>>()
    }));
    let out = Out::new();
    let o = out.clone();
    let config = config(1, batches, Some(dir)).checkpoint_interval(Duration::from_secs(1));
    StreamingContext::new(config).run(move |job| {
        let lines = if generated {
            job.generator(sluice::source::GeneratorConfig::default())
        } else {
            job.queue_stream(&queue)
        };
        lines
            .map(|k| (k, 1u64))
            .update_state_by_key_with(
                UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                    Some(old.unwrap_or(0) + new.iter().sum::<u64>())
                })
                .name("totals"),
            )
            .map(|(k, n)| format!("{k}={n}"))
            .collect_into(&o);
    })?;
    let mut last = out.batches().pop().map(|(_, v)| v).unwrap_or_default();
    last.sort();
    Ok(last)
}

#[test]
fn without_a_usable_snapshot_a_source_that_cannot_replay_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    totals_job(dir.path(), true, 3).unwrap();
    // What a disk that filled up at every snapshot leaves: finished batches, no snapshot.
    for t in state_dirs(dir.path()) {
        std::fs::remove_dir_all(dir.path().join(format!("state-{t}"))).unwrap();
    }
    let err = totals_job(dir.path(), true, 1).expect_err("the restart is refused");
    let text = err.to_string();
    assert!(
        text.contains("no usable snapshot")
            && text.contains("generator")
            && text.contains("start afresh"),
        "{text}"
    );
}

/// A tmpfs of `kib` KiB mounted at a new temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount (the fault tests need to mount a small tmpfs: run them as root)");
        assert!(
            status.success(),
            "mount a {kib} KiB tmpfs (as root) for the full-disk test"
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_abandons_its_snapshots_and_the_restart_replays_exactly() {
    let disk = SmallDisk::mount(96);
    let dir = disk.dir.path().join("checkpoint");
    // Snapshots (4000 keys, ~100 KiB each) soon fail on the full disk; the plans fit.
    totals_job(&dir, false, 3).unwrap();
    // Snapshots that did not fit are removed, not left to fill the disk (complete ones stay).
    let partial: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("state-"))
        .filter(|e| !e.path().join("MANIFEST").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        partial.is_empty(),
        "abandoned snapshots are removed: {partial:?}"
    );
    let reference = totals_job(&tempfile::tempdir().unwrap().path().join("c"), false, 5).unwrap();
    // Still full: the restart ends in the exact totals or refuses, saying why.
    match totals_job(&dir, false, 2) {
        Ok(resumed) => assert_eq!(resumed, reference),
        Err(e) => assert!(e.to_string().contains("No space left"), "{e}"),
    }
    // With room again (the checkpoint moved to a larger disk): the restart restores what it
    // can and replays the rest from the plans, and the totals are exact.
    let roomy = tempfile::tempdir().unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dir)
        .arg(roomy.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let resumed = totals_job(&roomy.path().join("checkpoint"), false, 2).unwrap();
    assert_eq!(resumed, reference);
}
