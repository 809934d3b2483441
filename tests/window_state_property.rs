//! Property: windows and state against a naive in-memory model of Spark's semantics (the
//! approach of differential's `reduce_oracle` test): random batches, random window lengths and
//! slides (multiples of the batch), 1 to 3 workers, exact outputs at every slide time.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use sluice::source::BatchQueue;
use sluice::{CollectedBatches, DStream, StreamingContext};

/// What is computed over the keyed input.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `window(L, S)`, the records.
    Window,
    /// `reduce_by_key_and_window(+, L, S)`.
    ReduceByKeyAndWindow,
    /// `reduce_by_key_and_window_inv(+, -, L, S)` dropping zero sums.
    ReduceByKeyAndWindowInv,
    /// `update_state_by_key` running sums (L and S unused).
    RunningSum,
}

/// Batch `i` (0-based) is at `(i + 1) * 1000` ms; the output at each batch where it ran, each
/// batch's records sorted.
fn run(
    input: &[Vec<(u8, i64)>],
    op: Op,
    l: u64,
    s: u64,
    workers: usize,
) -> BTreeMap<u64, Vec<String>> {
    let queue = BatchQueue::from_batches(input.to_vec());
    let out = CollectedBatches::new();
    let (q, o) = (queue.clone(), out.clone());
    let config = common::on_workers(input.len(), workers);
    let (len, slide) = (Duration::from_secs(l), Duration::from_secs(s));
    StreamingContext::new(config)
        .run(move |job| {
            let d: DStream<'_, (u8, i64)> = job.queue_stream(&q);
            let shown = match op {
                Op::Window => d.window(len, slide).map(|kv| format!("{kv:?}")),
                Op::ReduceByKeyAndWindow => d
                    .reduce_by_key_and_window(|a, b| a + b, len, slide)
                    .map(|kv| format!("{kv:?}")),
                Op::ReduceByKeyAndWindowInv => d
                    .reduce_by_key_and_window_inv(
                        |a, b| a + b,
                        |a, b| a - b,
                        len,
                        slide,
                        Some(|(_, v): &(u8, i64)| *v != 0),
                    )
                    .map(|kv| format!("{kv:?}")),
                Op::RunningSum => d
                    .update_state_by_key(|new: Vec<i64>, old: Option<i64>| {
                        Some(old.unwrap_or(0) + new.iter().sum::<i64>())
                    })
                    .map(|kv| format!("{kv:?}")),
            };
            shown.collect_into(&o);
        })
        .expect("the job runs");
    out.batches()
        .into_iter()
        .map(|(t, mut v)| {
            v.sort();
            (t.millis(), v)
        })
        .collect()
}

/// Spark's semantics over plain vectors: windows at slide times `k·S` cover `(t − L, t]`.
fn model(input: &[Vec<(u8, i64)>], op: Op, l: u64, s: u64) -> BTreeMap<u64, Vec<String>> {
    let n = input.len() as u64;
    let mut out = BTreeMap::new();
    for t in (1..=n).map(|i| i * 1000) {
        let windowed = !matches!(op, Op::RunningSum);
        if windowed && t % (s * 1000) != 0 {
            continue;
        }
        // Batches in the window (or all so far, for the running sums).
        let from = if windowed {
            t.saturating_sub(l * 1000)
        } else {
            0
        };
        let records: Vec<(u8, i64)> = (1..=n)
            .filter(|i| i * 1000 > from && i * 1000 <= t)
            .flat_map(|i| input[(i - 1) as usize].clone())
            .collect();
        let mut shown: Vec<String> = match op {
            Op::Window => records.iter().map(|kv| format!("{kv:?}")).collect(),
            _ => {
                let mut sums: BTreeMap<u8, i64> = BTreeMap::new();
                for (k, v) in &records {
                    *sums.entry(*k).or_default() += v;
                }
                sums.into_iter()
                    .filter(|(_, v)| !matches!(op, Op::ReduceByKeyAndWindowInv) || *v != 0)
                    .map(|kv| format!("{kv:?}"))
                    .collect()
            }
        };
        shown.sort();
        out.insert(t, shown);
    }
    out
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Window),
        Just(Op::ReduceByKeyAndWindow),
        Just(Op::ReduceByKeyAndWindowInv),
        Just(Op::RunningSum),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn windows_and_state_match_the_model_on_any_number_of_workers(
        input in prop::collection::vec(prop::collection::vec((0u8..5, 1i64..4), 0..6), 1..9),
        op in op(),
        l in 1u64..4,
        s in 1u64..4,
        workers in 1usize..4,
    ) {
        let got = run(&input, op, l, s, workers);
        let want = model(&input, op, l, s);
        // Every slide time the model has is there, exactly (batches without output aside).
        for (t, records) in &want {
            let empty = Vec::new();
            prop_assert_eq!(got.get(t).unwrap_or(&empty), records, "{:?} L={} S={} at {} ms, {} workers", op, l, s, t, workers);
        }
        // And nothing at other times.
        for t in got.keys() {
            prop_assert!(want.contains_key(t), "{:?} output at {} ms, not a slide time", op, t);
        }
    }
}
