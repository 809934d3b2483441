//! Batch `t` is generated at `t` for directory streams too: while the job's output is blocked
//! for 10 batch intervals, files keep arriving, and each batch picks the files found complete
//! at its own time (one file per interval), not the whole backlog when the output is free; and
//! what a batch picked at its time is durable, so a crash while it is queued changes nothing.

mod common;

use std::time::Duration;

use sluice::source::file::{FileCompletion, FileStreamOptions};
use sluice::{CollectedBatches, StreamingConfig, StreamingContext};

#[test]
fn each_batch_picks_the_files_found_at_its_time_while_the_output_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let counts = CollectedBatches::new();
    let c = counts.clone();
    let config = StreamingConfig::new(Duration::from_millis(200)).unwrap();
    let options = FileStreamOptions::default().completion(FileCompletion::Visible);
    let blocked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b = std::sync::Arc::clone(&blocked);
    let mut job = StreamingContext::new(config)
        .start(move |job| {
            let lines = job.file_stream(&path, options.clone());
            lines.count().collect_into(&c);
            // An output that blocks its worker for 2 s once, as a sink behind a lock would.
            let b = std::sync::Arc::clone(&b);
            lines.count().foreach_batch(move |_t, _n| {
                if b.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_secs(2));
                }
            });
        })
        .unwrap();
    // One file of 1 line every 200 ms for 4 s (new names, written whole by a rename).
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..20 {
        if i == 4 {
            blocked.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let tmp = dir.path().join(format!(".f{i}"));
        std::fs::write(&tmp, format!("line {i}\n")).unwrap();
        std::fs::rename(&tmp, dir.path().join(format!("f{i:02}.txt"))).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    job.stop(true);
    job.await_termination().unwrap();
    let per_batch: Vec<u64> = counts.values().into_iter().flatten().collect();
    assert_eq!(
        per_batch.iter().sum::<u64>(),
        20,
        "every file once: {per_batch:?}"
    );
    // A file per interval, give or take one for when the listing ran: never the backlog of the
    // 2 s stall (10 files).
    assert!(
        per_batch.iter().all(|n| *n <= 3),
        "each batch holds what it found at its time: {per_batch:?}"
    );
}

/// Spark checkpoints a batch when it is generated: a job that dies while batches are queued
/// behind a blocked output cuts them, after the restart, with the files each one picked at its
/// own time — not with the backlog found when it comes back.
#[test]
fn queued_batches_keep_their_files_across_a_crash() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let options = FileStreamOptions::default().completion(FileCompletion::Visible);
    let run = |blocked: Arc<AtomicBool>, counts: CollectedBatches<u64>| {
        let config = StreamingConfig::new(Duration::from_millis(200))
            .unwrap()
            .checkpoint(checkpoint.path());
        let (path, options) = (path.clone(), options.clone());
        StreamingContext::new(config)
            .start(move |job| {
                let lines = job.file_stream(&path, options.clone());
                let blocked = Arc::clone(&blocked);
                // An output that blocks its worker while `blocked` holds, as a sink behind a
                // lock would.
                lines.count().foreach_batch(move |_t, _n| {
                    while blocked.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                });
                lines.count().collect_into(&counts);
            })
            .unwrap()
    };
    let write = |i: usize| {
        let tmp = dir.path().join(format!(".f{i}"));
        std::fs::write(&tmp, format!("line {i}\n")).unwrap();
        std::fs::rename(&tmp, dir.path().join(format!("f{i:02}.txt"))).unwrap();
    };
    // Run 1: a file every 200 ms; from the 4th on the output is blocked, and after 10 more
    // batch intervals the job is stopped at once, as a crash would, with those batches queued.
    let blocked = Arc::new(AtomicBool::new(false));
    let first = CollectedBatches::new();
    let mut job = run(Arc::clone(&blocked), first.clone());
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..14 {
        if i == 4 {
            blocked.store(true, Ordering::SeqCst);
        }
        write(i);
        std::thread::sleep(Duration::from_millis(200));
    }
    job.stop(false);
    blocked.store(false, Ordering::SeqCst);
    let _ = job.await_termination();
    // Ten more files while the job is down: the batches generated before the crash must not
    // take them.
    for i in 14..24 {
        write(i);
    }
    let second = CollectedBatches::new();
    let mut job = run(Arc::new(AtomicBool::new(false)), second.clone());
    std::thread::sleep(Duration::from_secs(4));
    job.stop(true);
    job.await_termination().unwrap();
    let mut by_batch: std::collections::BTreeMap<u64, u64> = first
        .batches()
        .into_iter()
        .map(|(t, n)| (t.millis(), n.into_iter().sum()))
        .collect();
    let rerun: Vec<(u64, u64)> = second
        .batches()
        .into_iter()
        .map(|(t, n)| (t.millis(), n.into_iter().sum()))
        .collect();
    by_batch.extend(rerun.iter().copied());
    assert_eq!(
        by_batch.values().sum::<u64>(),
        24,
        "every file once: run 1 {:?}, run 2 {rerun:?}",
        first.batches()
    );
    // After the restart: the batch that was running (f04) and the queued ones (f05…f13) come
    // back each with the file or two found at its time; the ten files of the down time go to
    // the first batch generated after the restart, as in Spark, not to the first queued one.
    let down_time = rerun.iter().position(|(_, n)| *n >= 10);
    let Some(k) = down_time else {
        panic!("no batch holds the down time's files: {rerun:?}");
    };
    assert_eq!(rerun[k].1, 10, "the down time's files: {rerun:?}");
    assert!(
        k >= 6 && rerun[..k].iter().all(|(_, n)| *n <= 2),
        "queued batches hold what each found at its time: {rerun:?}"
    );
    assert_eq!(
        rerun[..k].iter().map(|(_, n)| n).sum::<u64>(),
        10,
        "f04…f13 before the down time's files: {rerun:?}"
    );
}
