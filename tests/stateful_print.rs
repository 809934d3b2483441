//! `Stateful::print(n)` hands on only each partition's first `n + 1` records of a keyed state or
//! window: an oracle test that it prints exactly what `print(n)` of the full view
//! (`snapshots()`) prints, for every batch, on 1 and 3 workers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::dstream::state::{StateSpec, UpdateState};
use sluice::source::BatchQueue;
use sluice::{DStream, StreamingContext};

/// 12 batches of words from a vocabulary of 40 (a fixed pseudo-random sequence), some empty.
fn batches() -> Vec<Vec<(String, u64)>> {
    let mut x = 11u64;
    (0..12)
        .map(|b| {
            let n = if b % 5 == 4 { 0 } else { 5 + (b * 7) % 30 };
            (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (format!("w{}", (x >> 33) % 40), 1 + (x >> 60))
                })
                .collect()
        })
        .collect()
}

type Out = Arc<Mutex<Vec<u8>>>;

fn sum(new: Vec<u64>, old: Option<u64>) -> Option<u64> {
    Some(old.unwrap_or(0) + new.iter().sum::<u64>())
}

/// Runs `build` over the batches; returns what its two writers got.
fn run(
    workers: usize,
    build: impl for<'s> Fn(&DStream<'s, (String, u64)>, usize, &Out, &Out) + Send + Sync + 'static,
    n: usize,
) -> (String, String) {
    let input = batches();
    let queue = BatchQueue::from_batches(input.clone());
    let (bounded, full): (Out, Out) = Default::default();
    let (b, f) = (Arc::clone(&bounded), Arc::clone(&full));
    let config = common::on_workers(input.len(), workers);
    StreamingContext::new(config)
        .run(move |job| build(&job.queue_stream(&queue), n, &b, &f))
        .expect("the job runs");
    let text = |o: &Out| String::from_utf8(o.lock().unwrap().clone()).unwrap();
    (text(&bounded), text(&full))
}

fn check(
    build: impl for<'s> Fn(&DStream<'s, (String, u64)>, usize, &Out, &Out)
    + Send
    + Sync
    + Clone
    + 'static,
) {
    for workers in [1, 3] {
        for n in [0, 1, 3, 1000] {
            let (bounded, full) = run(workers, build.clone(), n);
            assert!(full.contains("Time: "), "nothing printed");
            assert_eq!(bounded, full, "{workers} workers, print({n})");
        }
    }
}

#[test]
fn printing_update_state_by_key_prints_what_the_full_state_prints() {
    check(|s, n, bounded, full| {
        // The same operator twice (two names): one printed bounded, one from its full view.
        s.update_state_by_key_with(UpdateState::new(sum).name("a"))
            .print_to(n, Arc::clone(bounded));
        s.update_state_by_key_with(UpdateState::new(sum).name("b"))
            .snapshots()
            .print_to(n, Arc::clone(full));
    });
}

#[test]
fn printing_map_with_state_s_state_prints_what_its_snapshots_print() {
    check(|s, n, bounded, full| {
        let spec = |name: &str| {
            StateSpec::function(|_t, _k: &String, v: Option<u64>, state| {
                let total = state.get().copied().unwrap_or(0) + v.unwrap_or(0);
                state.update(total);
                None::<()>
            })
            .name(name)
        };
        s.map_with_state(spec("a"))
            .state()
            .print_to(n, Arc::clone(bounded));
        s.map_with_state(spec("b"))
            .state_snapshots()
            .print_to(n, Arc::clone(full));
    });
}

#[test]
fn printing_a_window_prints_what_the_full_window_prints() {
    let (l, slide) = (Duration::from_secs(3), Duration::from_secs(2));
    check(move |s, n, bounded, full| {
        s.reduce_by_key_and_window(|a, b| a + b, l, slide)
            .print_to(n, Arc::clone(bounded));
        s.reduce_by_key_and_window(|a, b| a + b, l, slide)
            .snapshots()
            .print_to(n, Arc::clone(full));
    });
}

#[test]
fn printing_an_incremental_window_prints_what_the_full_window_prints() {
    let (l, slide) = (Duration::from_secs(4), Duration::from_secs(1));
    check(move |s, n, bounded, full| {
        let keep = Some(|(_, v): &(String, u64)| *v > 0);
        s.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, l, slide, keep)
            .print_to(n, Arc::clone(bounded));
        s.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, l, slide, keep)
            .snapshots()
            .print_to(n, Arc::clone(full));
    });
}
