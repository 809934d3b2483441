//! Lifecycle and outputs: manual and system clocks, graceful and immediate stop, failures, and
//! the exact output formats of `print`, `foreach_batch` and `save_as_text_files`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::clock::{Clock, ManualClock, SystemClock};
use sluice::listener::BatchRecorder;
use sluice::source::BatchQueue;
use sluice::{Cluster, CollectedBatches, SluiceError, StreamingConfig, StreamingContext, Time};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn manual_clock_cuts_a_batch_only_when_its_time_comes() {
    let clock = ManualClock::new();
    let queue = BatchQueue::from_batches(vec![vec![1u64], vec![2], vec![3]]);
    let out = CollectedBatches::new();
    let config = StreamingConfig::new(secs(1)).unwrap().clock(clock.clone());
    let (q, o) = (queue.clone(), out.clone());
    let mut running = StreamingContext::new(config)
        .start(move |job| job.queue_stream(&q).collect_into(&o))
        .unwrap();
    assert_eq!(running.first_batch(), Time::from_millis(1000));
    assert!(
        !running.await_batch(Time::from_millis(1000), Duration::from_millis(200)),
        "no batch before the clock moves"
    );
    clock.advance(secs(1));
    assert!(running.await_batch(Time::from_millis(1000), secs(10)));
    assert_eq!(out.values(), vec![vec![1]]);
    clock.advance(secs(2));
    assert!(running.await_batch(Time::from_millis(3000), secs(10)));
    running.stop(true);
    running.await_termination().unwrap();
    assert_eq!(out.values(), vec![vec![1], vec![2], vec![3]]);
}

#[test]
fn graceful_stop_processes_every_batch_whose_time_has_come() {
    for threads in [1, 2] {
        let clock = ManualClock::new();
        let queue = BatchQueue::from_batches((1..=5u64).map(|i| vec![i]));
        let out = CollectedBatches::new();
        let config = StreamingConfig::new(secs(1))
            .unwrap()
            .threads(threads)
            .clock(clock.clone());
        let (q, o) = (queue.clone(), out.clone());
        let mut running = StreamingContext::new(config)
            .start(move |job| job.queue_stream(&q).collect_into(&o))
            .unwrap();
        clock.advance(secs(4));
        running.stop(true); // batches 1000..=4000 are due: all of them must be processed
        running.await_termination().unwrap();
        assert_eq!(
            out.values(),
            vec![vec![1], vec![2], vec![3], vec![4]],
            "with {threads} workers"
        );
    }
}

#[test]
fn max_batches_follows_the_system_clock() {
    let recorder = BatchRecorder::new();
    let start = Instant::now();
    let config = StreamingConfig::new(Duration::from_millis(100))
        .unwrap()
        .max_batches(3)
        .listener(recorder.clone());
    let queue = BatchQueue::<u64>::new();
    StreamingContext::new(config)
        .run(move |job| job.queue_stream(&queue).count().foreach_batch(|_, _| {}))
        .unwrap();
    let batches = recorder.batches();
    assert_eq!(batches.len(), 3);
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "3 batches of 100 ms took {:?}",
        start.elapsed()
    );
    for b in &batches {
        assert_eq!(
            b.batch_time.millis() % 100,
            0,
            "batch times are multiples of the interval"
        );
    }
    // Each batch finished no earlier than its own time on the wall clock.
    let now = SystemClock.now_ms();
    assert!(batches.iter().all(|b| b.batch_time.millis() <= now));
}

#[test]
fn immediate_stop_returns_quickly() {
    let config = StreamingConfig::new(secs(1)).unwrap().threads(2);
    let mut running = StreamingContext::new(config)
        .start(|job| job.generator(Default::default()).print(1))
        .unwrap();
    let start = Instant::now();
    running.stop(false);
    running.await_termination().unwrap();
    assert!(start.elapsed() < secs(5));
}

#[test]
fn a_job_without_outputs_is_an_error() {
    let config = StreamingConfig::new(secs(1))
        .unwrap()
        .as_fast_as_possible(1)
        .max_batches(1);
    let err = StreamingContext::new(config)
        .run(|job| {
            let _ = job.generator(Default::default()).map(|l| l.len());
        })
        .unwrap_err();
    assert!(matches!(err, SluiceError::NoOutputOperations), "{err}");
    assert!(err.to_string().contains("print(10)"));
}

#[test]
fn a_panicking_user_function_fails_the_job_without_hanging() {
    let config = StreamingConfig::new(secs(1))
        .unwrap()
        .threads(2)
        .as_fast_as_possible(1)
        .max_batches(100);
    let queue = BatchQueue::from_batches(vec![vec![1u64, 2, 3, 4]]);
    let err = StreamingContext::new(config)
        .run(move |job| {
            job.queue_stream(&queue)
                .map(|x| {
                    if x == 3 {
                        panic!("user code failed on {x}")
                    } else {
                        x
                    }
                })
                .print(1)
        })
        .unwrap_err();
    assert!(err.to_string().contains("user code failed on 3"), "{err}");
}

#[test]
fn await_termination_or_timeout_reports_a_running_job() {
    let config = StreamingConfig::new(secs(1))
        .unwrap()
        .clock(ManualClock::new());
    let mut running = StreamingContext::new(config)
        .start(|job| job.generator(Default::default()).print(1))
        .unwrap();
    assert!(
        !running
            .await_termination_or_timeout(Duration::from_millis(100))
            .unwrap()
    );
    running.stop(true);
    assert!(running.await_termination_or_timeout(secs(10)).unwrap());
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);
impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn print_has_sparks_exact_format_once_per_batch() {
    for threads in [1, 2] {
        let buf = SharedBuf::default();
        let queue = BatchQueue::from_batches(vec![
            vec![("hello".to_owned(), 1u64)],
            vec![],
            (0..12).map(|i| (format!("w{i:02}"), i)).collect(),
        ]);
        let config = common::config(
            3,
            Cluster {
                threads,
                ..Cluster::default()
            },
        );
        let b = buf.clone();
        StreamingContext::new(config)
            .run(move |job| {
                job.queue_stream(&queue)
                    .print_to(10, Arc::new(Mutex::new(b.clone())))
            })
            .unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let dashes = "-".repeat(43);
        let expected_head = format!(
            "{dashes}\nTime: 1000 ms\n{dashes}\n(hello,1)\n\n{dashes}\nTime: 2000 ms\n{dashes}\n\n{dashes}\nTime: 3000 ms\n{dashes}\n"
        );
        assert!(
            text.starts_with(&expected_head),
            "with {threads} workers:\n{text}"
        );
        let third: Vec<&str> = text[expected_head.len()..].lines().collect();
        assert_eq!(third.len(), 12, "10 records, `...`, empty line:\n{text}");
        assert_eq!(third[10], "...");
        assert_eq!(third[11], "");
        assert!(
            third[..10]
                .iter()
                .all(|l| l.starts_with("(w") && l.ends_with(')'))
        );
        if threads == 1 {
            assert_eq!(third[0], "(w00,0)", "one worker keeps the input order");
        }
    }
}

#[test]
fn foreach_batch_runs_for_every_batch_including_empty_ones() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let queue = BatchQueue::from_batches(vec![vec![1u64], vec![], vec![], vec![2, 3]]);
    StreamingContext::new(common::config(
        4,
        Cluster {
            threads: 2,
            ..Cluster::default()
        },
    ))
    .run(move |job| {
        let s = Arc::clone(&s);
        job.queue_stream(&queue)
            .foreach_batch(move |t, mut records| {
                records.sort();
                s.lock().unwrap().push((t.millis(), records));
            })
    })
    .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (1000, vec![1]),
            (2000, vec![]),
            (3000, vec![]),
            (4000, vec![2, 3])
        ]
    );
}

#[test]
fn save_as_text_files_writes_sparks_layout_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("out").to_string_lossy().into_owned();
    let queue = BatchQueue::from_batches(vec![
        vec![("a".to_owned(), 1u64), ("b".to_owned(), 2)],
        vec![],
    ]);
    let p = prefix.clone();
    StreamingContext::new(common::config(
        2,
        Cluster {
            threads: 2,
            ..Cluster::default()
        },
    ))
    .run(move |job| {
        job.queue_stream(&queue)
            .save_as_text_files(p.clone(), Some("txt"))
    })
    .unwrap();
    for t in [1000, 2000] {
        let batch_dir = std::path::PathBuf::from(format!("{prefix}-{t}.txt"));
        assert!(
            batch_dir.join("_SUCCESS").exists(),
            "{batch_dir:?} has _SUCCESS"
        );
        let mut lines: Vec<String> = (0..2)
            .flat_map(|w| {
                std::fs::read_to_string(batch_dir.join(format!("part-{w:05}")))
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        let expected: Vec<String> = if t == 1000 {
            vec!["(a,1)".into(), "(b,2)".into()]
        } else {
            vec![]
        };
        assert_eq!(lines, expected);
        let leftovers: Vec<_> = std::fs::read_dir(&batch_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left");
    }
}

#[test]
fn context_union_glom_and_map_partitions() {
    for threads in [1usize, 2] {
        let queue = BatchQueue::from_batches(vec![vec![1u64, 2, 3, 4]]);
        let (unioned, glommed, sums) = (
            CollectedBatches::new(),
            CollectedBatches::new(),
            CollectedBatches::new(),
        );
        let (u, g, s) = (unioned.clone(), glommed.clone(), sums.clone());
        StreamingContext::new(common::config(
            1,
            Cluster {
                threads,
                ..Cluster::default()
            },
        ))
        .run(move |job| {
            let d = job.queue_stream(&queue);
            job.union(&[d.clone(), d.map(|x| x * 10), d.map(|x| x * 100)])
                .collect_into(&u);
            d.glom().collect_into(&g);
            d.map_partitions(|xs| Some(xs.iter().sum::<u64>()))
                .collect_into(&s);
        })
        .unwrap();
        // Spark's partitions whatever the number of workers: two slices per batch (the
        // default parallelism the tests set), the union's branches one after the other.
        assert_eq!(
            unioned.batch_ms(1000),
            vec![1, 2, 3, 4, 10, 20, 30, 40, 100, 200, 300, 400]
        );
        assert_eq!(glommed.batch_ms(1000), vec![vec![1, 2], vec![3, 4]]);
        assert_eq!(sums.batch_ms(1000), vec![3, 7]);
    }
}

#[test]
fn listeners_see_every_batch_with_its_input() {
    let recorder = BatchRecorder::new();
    let queue = BatchQueue::from_batches(vec![vec![1u64, 2, 3], vec![], vec![4]]);
    let config = common::config(
        3,
        Cluster {
            threads: 2,
            ..Cluster::default()
        },
    )
    .listener(recorder.clone());
    StreamingContext::new(config)
        .run(move |job| job.queue_stream(&queue).count().print(1))
        .unwrap();
    let counts: Vec<(u64, u64)> = recorder
        .batches()
        .iter()
        .map(|b| (b.batch_time.millis(), b.num_records()))
        .collect();
    assert_eq!(counts, vec![(1000, 3), (2000, 0), (3000, 1)]);
}

#[test]
fn batches_cut_late_report_how_late_they_are() {
    // The clock jumps 5 s at once (a restart catching up, a stall): batch 1000 ms is cut about
    // 4 s after it was due, and its delays say so, as Spark's count from the batch time.
    let recorder = BatchRecorder::new();
    let clock = sluice::clock::ManualClock::new();
    let config = StreamingConfig::new(secs(1))
        .unwrap()
        .clock(clock.clone())
        .max_batches(5)
        .listener(recorder.clone());
    let queue = BatchQueue::from_batches(vec![vec![1u64]]);
    let mut job = StreamingContext::new(config)
        .start(move |job| job.queue_stream(&queue).count().print(1))
        .unwrap();
    clock.advance(secs(5));
    job.await_termination().unwrap();
    let first = recorder.batches().into_iter().next().expect("a batch");
    assert_eq!(first.batch_time.millis(), 1000);
    assert!(
        first.scheduling_delay >= Duration::from_millis(3900),
        "{:?}",
        first.scheduling_delay
    );
    assert!(first.total_delay >= first.scheduling_delay);
}

/// Worker 0's source: batch 1 is one record in worker 1's partition; batch 2 many feed chunks
/// in worker 0's own.
struct SlowSecondBatch;

/// Records the driver feeds between two steps of a worker.
const FEED_CHUNK: u64 = 16_384;
/// Records in batch 2: many feed chunks.
const SECOND_BATCH: u64 = 64 * FEED_CHUNK;

impl sluice::source::BatchReader<u64> for SlowSecondBatch {
    fn name(&self) -> String {
        "slow-second-batch".into()
    }
    fn read_batch(
        &mut self,
        slot: &sluice::source::BatchSlot,
        out: &mut sluice::source::BatchOut<u64>,
    ) -> u64 {
        match (slot.worker, slot.index) {
            (0, 0) => out.partition(1).push(0),
            (0, 1) => out.partition(0).extend(1..=SECOND_BATCH),
            _ => {}
        }
        0
    }
}

/// Sets a flag when batch 1000 ms completes.
struct FirstDone(Arc<std::sync::atomic::AtomicBool>);

impl sluice::listener::StreamingListener for FirstDone {
    fn on_batch_completed(&self, batch: &sluice::listener::BatchInfo) {
        if batch.batch_time.millis() == 1000 {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn a_batch_is_reported_done_while_the_next_one_still_enters() {
    // Batch 1's record holds worker 1 until batch 2 has begun to enter on worker 0, so batch 1
    // is still running when batch 2 is cut. Once worker 1 lets go, batch 1 finishes while
    // worker 0 is still feeding batch 2, and must be reported then: not after batch 2 has
    // entered (which counted batch 2's intake in batch 1's processing time, and held back
    // what a source commits when a batch completes).
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let first_done = Arc::new(AtomicBool::new(false));
    let second_entering = Arc::new(AtomicBool::new(false));
    let seen_done_while_entering = Arc::new(AtomicBool::new(false));
    let clock = ManualClock::new();
    let config = StreamingConfig::new(secs(1))
        .unwrap()
        .threads(2)
        .clock(clock.clone())
        .max_batches(2)
        .listener(FirstDone(first_done.clone()));
    let flags = (
        first_done.clone(),
        second_entering.clone(),
        seen_done_while_entering.clone(),
    );
    let mut job = StreamingContext::new(config)
        .start(move |job| {
            let worker = job.worker().index;
            let (done, entering, seen) = flags.clone();
            job.source(SlowSecondBatch)
                .map(move |x| {
                    if x == 0 {
                        // Batch 1, on worker 1: wait for batch 2 to enter (at most 20 s).
                        let since = Instant::now();
                        while !entering.load(SeqCst) && since.elapsed() < secs(20) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    } else if worker == 0 {
                        entering.store(true, SeqCst);
                        if done.load(SeqCst) {
                            seen.store(true, SeqCst);
                        } else if x % FEED_CHUNK == 1 {
                            // Give worker 1 time to finish batch 1 between chunks.
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                    x
                })
                .count()
                .foreach_batch(|_, _| {})
        })
        .unwrap();
    clock.advance(secs(2));
    job.await_termination().unwrap();
    assert!(first_done.load(SeqCst), "batch 1 completed");
    assert!(
        seen_done_while_entering.load(SeqCst),
        "batch 1 was reported only after all of batch 2 had entered"
    );
}

#[test]
fn configuration_errors_name_the_fix() {
    let e = StreamingConfig::new(Duration::from_micros(1500)).unwrap_err();
    assert!(
        e.to_string().contains("whole number of milliseconds"),
        "{e}"
    );
    let e = StreamingConfig::new(secs(1))
        .unwrap()
        .cluster_from_args(["-n", "2", "-p", "5"])
        .unwrap_err();
    assert!(e.to_string().contains("process index from 0 to 1"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1:2101\n").unwrap();
    let e = StreamingConfig::new(secs(1))
        .unwrap()
        .cluster_from_args(["-n", "2", "-h", hosts.to_str().unwrap()])
        .unwrap_err();
    assert!(e.to_string().contains("one line per process"), "{e}");
    let e = sluice::time::multiple_of_batch("window length", secs(3), 2000).unwrap_err();
    assert!(e.to_string().contains("4000 ms"), "{e}");
}
