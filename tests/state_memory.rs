//! State stays bounded: keys that are removed or time out leave the state, its reported size
//! and the process's memory; bad window specs fail at build time with a clear error.

use std::time::Duration;

use sluice::dstream::state::{StateSpec, UpdateState};
use sluice::listener::BatchRecorder;
use sluice::source::{BatchReader, BatchSlot};
use sluice::{SluiceError, StreamingConfig, StreamingContext};

/// Batch `i` brings 2 000 fresh keys (`k{i}-{j}`), each seen once: a churn of keys that only
/// stays bounded if expired keys really go.
struct FreshKeys;

impl BatchReader<(String, u64)> for FreshKeys {
    fn name(&self) -> String {
        "fresh keys".into()
    }
    fn read_batch(
        &mut self,
        slot: &BatchSlot,
        out: &mut sluice::source::BatchOut<(String, u64)>,
    ) -> u64 {
        for j in (slot.worker..2000).step_by(slot.peers) {
            out.push((format!("k{}-{j}", slot.index), 1));
        }
        0
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

fn run_churn(
    threads: usize,
    build: impl for<'s> Fn(sluice::DStream<'s, (String, u64)>) + Send + Sync + 'static,
) -> Vec<(u64, u64)> {
    let recorder = BatchRecorder::new();
    let config = StreamingConfig::new(Duration::from_millis(100))
        .unwrap()
        .threads(threads)
        .as_fast_as_possible(1)
        .first_batch_ms(100)
        .max_batches(600)
        .listener(recorder.clone());
    StreamingContext::new(config)
        .run(move |job| build(job.source(FreshKeys)))
        .unwrap();
    recorder
        .batches()
        .iter()
        .map(|b| {
            (
                b.state.iter().map(|s| s.keys).sum::<u64>(),
                b.batch_time.millis(),
            )
        })
        .collect()
}

#[test]
fn map_with_state_timeouts_keep_state_flat() {
    for threads in [1, 2] {
        let before = rss_kib();
        let sizes = run_churn(threads, |d| {
            d.map_with_state(
                StateSpec::function(|_t, _k: &String, v: Option<u64>, state| {
                    if let Some(v) = v {
                        state.update(state.get().copied().unwrap_or(0) + v);
                    }
                    None::<u64>
                })
                .timeout(Duration::from_millis(300))
                .name("churn"),
            )
            .print(0)
        });
        assert_eq!(sizes.len(), 600);
        // Keys live 3–4 batches: at most 4 batches' worth of keys at any time, after warm-up too.
        let max_keys = sizes.iter().map(|(k, _)| *k).max().unwrap();
        assert!(max_keys <= 4 * 2000, "state grew to {max_keys} keys");
        assert!(
            sizes[599].0 >= 2000,
            "state is reported: {:?}",
            &sizes[590..]
        );
        let grown = rss_kib().saturating_sub(before);
        assert!(
            grown < 200 * 1024,
            "memory grew by {grown} KiB over 1.2 M keys"
        );
    }
}

#[test]
fn update_state_by_key_removal_keeps_state_flat() {
    let sizes = run_churn(2, |d| {
        // Keep a key for two batches after it was last seen, then drop it.
        d.update_state_by_key_with(
            UpdateState::new(
                |vs: Vec<u64>, s: Option<(u64, u8)>| match (vs.is_empty(), s) {
                    (false, s) => Some((s.map_or(0, |x| x.0) + vs.iter().sum::<u64>(), 0)),
                    (true, Some((n, age))) if age < 2 => Some((n, age + 1)),
                    (true, _) => None,
                },
            )
            .pure()
            .name("churn"),
        )
        .changes()
        .print(0)
    });
    let max_keys = sizes.iter().map(|(k, _)| *k).max().unwrap();
    assert!(max_keys <= 3 * 2000, "state grew to {max_keys} keys");
    assert_eq!(
        sizes[599].0,
        3 * 2000,
        "three batches of keys are alive at the end"
    );
}

#[test]
fn a_window_that_is_not_a_multiple_of_the_batch_fails_at_start() {
    let config = StreamingConfig::new(Duration::from_secs(2))
        .unwrap()
        .as_fast_as_possible(1)
        .max_batches(3);
    let err = StreamingContext::new(config)
        .start(|job| {
            job.generator(Default::default())
                .window(Duration::from_secs(5), Duration::from_secs(2))
                .print(1);
        })
        .err()
        .expect("start fails");
    assert!(
        matches!(err, SluiceError::NotAMultipleOfBatch { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "window length is 5000 ms, which is not a multiple of the batch interval (2000 ms); use a multiple such as 6000 ms"
    );
}

#[test]
fn windows_report_their_state_in_the_batch_metrics() {
    let recorder = BatchRecorder::new();
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .threads(2)
        .as_fast_as_possible(1)
        .first_batch_ms(1000)
        .max_batches(4)
        .listener(recorder.clone());
    let queue = sluice::source::BatchQueue::from_batches(
        (0..4).map(|i| vec![(format!("k{i}"), 1u64), ("x".to_owned(), 1)]),
    );
    StreamingContext::new(config)
        .run(move |job| {
            let d = job.queue_stream(&queue);
            d.window(Duration::from_secs(2), Duration::from_secs(1))
                .print(0);
            d.reduce_by_key_and_window_inv(
                |a, b| a + b,
                |a, b| a - b,
                Duration::from_secs(2),
                Duration::from_secs(1),
                Some(|(_, n): &(String, u64)| *n > 0),
            )
            .print(0);
        })
        .unwrap();
    let last = recorder.batches().pop().expect("batches ran");
    let keys = |prefix: &str| {
        last.state
            .iter()
            .filter(|s| s.operator.starts_with(prefix))
            .map(|s| s.keys)
            .sum::<u64>()
    };
    assert_eq!(
        keys("window"),
        4,
        "two batches of two records in the window: {:?}",
        last.state
    );
    assert_eq!(
        keys("reduce_by_key_and_window_inv"),
        3,
        "k2, k3 and x: {:?}",
        last.state
    );
}
