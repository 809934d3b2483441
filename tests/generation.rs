//! Batch `t` is generated at `t` for directory streams too: while the job's output is blocked
//! for 10 batch intervals, files keep arriving, and each batch picks the files found complete
//! at its own time (one file per interval), not the whole backlog when the output is free.

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
