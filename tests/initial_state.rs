//! Initial state as Spark applies it, for every state operator: initial state × a key the
//! function removes at the first batch × records of the first batch × a windowed upstream whose
//! slide is longer than the batch. Each case on 1 worker, 2 workers and 2 processes.
//!
//! Spark's rule: the initial state is the state *before* the state stream's first batch (its
//! first slide time after a window); the first batch's function sees it, and what the
//! function returns is the state from then on.

mod common;

use std::time::Duration;

use common::{Batches, expect, run1};
use sluice::Cluster;
use sluice::dstream::state::{StateSpec, UpdateState};

fn pairs(batches: &[&[&str]]) -> Vec<Vec<(String, i64)>> {
    batches
        .iter()
        .map(|b| b.iter().map(|w| (w.to_string(), 1)).collect())
        .collect()
}

fn initial() -> Vec<(String, i64)> {
    vec![("a".into(), 10), ("b".into(), 20), ("c".into(), 30)]
}

/// `a` is removed whenever the function sees it; the others keep a running sum.
fn update(spec_pure: bool) -> UpdateState<String, i64, i64> {
    let spec =
        UpdateState::with_time_and_key(|_t, k: &String, values: Vec<i64>, old: Option<i64>| {
            if k == "a" {
                None
            } else {
                Some(old.unwrap_or(0) + values.iter().sum::<i64>())
            }
        })
        .initial_state(initial());
    if spec_pure { spec.pure() } else { spec }
}

/// `a` removes its state on its first record; the others count their records.
fn mapping() -> StateSpec<String, i64, i64, (String, i64)> {
    StateSpec::function(|_t, k: &String, v: Option<i64>, state| {
        if k == "a" {
            state.remove();
            return Some((k.clone(), -1));
        }
        let n = state.get().copied().unwrap_or(0) + v.unwrap_or(0);
        state.update(n);
        Some((k.clone(), n))
    })
    .initial_state(initial())
}

const PLAIN: &[&[&str]] = &[&["a", "b", "b"], &["b"], &[]];
const WINDOWED: &[&[&str]] = &[&["b"], &["a"], &["b"], &[]];

fn window<'s>(d: &sluice::DStream<'s, (String, i64)>) -> sluice::DStream<'s, (String, i64)> {
    d.window(Duration::from_secs(2), Duration::from_secs(2))
        .snapshots()
}

fn run_case(name: &str, cluster: Cluster) -> Batches {
    match name {
        "update_plain" | "update_plain_pure" => {
            let pure = name.ends_with("pure");
            run1(pairs(PLAIN), cluster, move |d| {
                d.update_state_by_key_with(update(pure)).snapshots()
            })
        }
        "update_windowed" | "update_windowed_pure" => {
            let pure = name.ends_with("pure");
            run1(pairs(WINDOWED), cluster, move |d| {
                window(&d)
                    .update_state_by_key_with(update(pure))
                    .snapshots()
            })
        }
        "map_plain" => run1(pairs(PLAIN), cluster, |d| {
            (*d.map_with_state(mapping())).clone()
        }),
        "map_plain_state" => run1(pairs(PLAIN), cluster, |d| {
            d.map_with_state(mapping()).state_snapshots()
        }),
        "map_windowed" => run1(pairs(WINDOWED), cluster, |d| {
            (*window(&d).map_with_state(mapping())).clone()
        }),
        "map_windowed_state" => run1(pairs(WINDOWED), cluster, |d| {
            window(&d).map_with_state(mapping()).state_snapshots()
        }),
        other => panic!("unknown case {other}"),
    }
}

fn check(name: &str, expected: Batches) {
    common::check(name, expected, run_case);
}

/// Entry point of the child processes of multi-process runs; does nothing in a normal run.
#[test]
fn child_process_entry() {
    common::child_entry(run_case);
}

fn s(k: &str, v: i64) -> (String, i64) {
    (k.to_owned(), v)
}

#[test]
fn update_state_by_key_removes_an_initial_key_at_the_first_batch() {
    let expected = expect(vec![
        vec![s("b", 22), s("c", 30)],
        vec![s("b", 23), s("c", 30)],
        vec![s("b", 23), s("c", 30)],
    ]);
    check("update_plain", expected.clone());
    check("update_plain_pure", expected);
}

#[test]
fn update_state_by_key_after_a_window_starts_at_the_first_slide() {
    // Slides at 2 s and 4 s: the state stream's first batch is 2 s, which sees (b, a).
    let expected = expect(vec![
        vec![s("b", 21), s("c", 30)],
        vec![s("b", 22), s("c", 30)],
    ]);
    check("update_windowed", expected.clone());
    check("update_windowed_pure", expected);
}

#[test]
fn map_with_state_records_of_the_first_batch_see_the_initial_state() {
    check(
        "map_plain",
        expect(vec![
            vec![s("a", -1), s("b", 21), s("b", 22)],
            vec![s("b", 23)],
            vec![],
        ]),
    );
    check(
        "map_plain_state",
        expect(vec![
            vec![s("b", 22), s("c", 30)],
            vec![s("b", 23), s("c", 30)],
            vec![s("b", 23), s("c", 30)],
        ]),
    );
}

#[test]
fn map_with_state_after_a_window_starts_at_the_first_slide() {
    check(
        "map_windowed",
        expect(vec![vec![s("a", -1), s("b", 21)], vec![s("b", 22)]]),
    );
    check(
        "map_windowed_state",
        expect(vec![
            vec![s("b", 21), s("c", 30)],
            vec![s("b", 22), s("c", 30)],
        ]),
    );
}
