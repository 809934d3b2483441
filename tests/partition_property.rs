//! Property: a random pipeline of narrow and keyed operators gives identical, identically
//! ordered output on 1, 2 and 3 workers (partitions, not workers, decide the order), and the
//! same multiset of records as a naive model of Spark's per-batch semantics.

mod common;

use proptest::prelude::*;
use sluice::source::BatchQueue;
use sluice::{CollectedBatches, DStream, StreamingContext};

/// One step of a pipeline over `i64` records.
#[derive(Clone, Debug)]
enum Op {
    Map(i64),
    Filter(i64),
    FlatMap,
    UnionWithMapped(i64),
    Repartition(usize),
    Glom,
    ReduceByKey {
        keys: i64,
        partitions: Option<usize>,
    },
    GroupByKey(i64),
    PartitionBy(usize),
    MapPartitions,
    Transform,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..5).prop_map(Op::Map),
        (2i64..4).prop_map(Op::Filter),
        Just(Op::FlatMap),
        (1i64..9).prop_map(Op::UnionWithMapped),
        (1usize..6).prop_map(Op::Repartition),
        Just(Op::Glom),
        ((1i64..6), prop::option::of(1usize..5))
            .prop_map(|(keys, partitions)| Op::ReduceByKey { keys, partitions }),
        (1i64..6).prop_map(Op::GroupByKey),
        (1usize..5).prop_map(Op::PartitionBy),
        Just(Op::MapPartitions),
        Just(Op::Transform),
    ]
}

/// Applies `op` to a stream (every result is again a stream of `i64`).
fn apply<'s>(s: DStream<'s, i64>, op: &Op) -> DStream<'s, i64> {
    match op.clone() {
        Op::Map(k) => s.map(move |x| x * k + 1),
        Op::Filter(m) => s.filter(move |x| x.rem_euclid(m) != 0),
        Op::FlatMap => s.flat_map(|x| vec![x, x + 100]),
        Op::UnionWithMapped(k) => s.union(&s.map(move |x| x + k)),
        Op::Repartition(n) => s.repartition(n),
        // Each partition's records as one number per record: sum of the partition + record.
        Op::Glom => s.glom().flat_map(|p| {
            let sum: i64 = p.iter().sum();
            p.into_iter().map(move |x| x * 1000 + sum % 1000)
        }),
        Op::ReduceByKey { keys, partitions } => {
            let pairs = s.map(move |x| (x.rem_euclid(keys), x));
            match partitions {
                Some(n) => pairs.partitioned(n).reduce_by_key(|a, b| a + b),
                None => pairs.reduce_by_key(|a, b| a + b),
            }
            .map(|(k, v)| k * 1_000_000 + v)
        }
        Op::GroupByKey(keys) => s
            .map(move |x| (x.rem_euclid(keys), x))
            .group_by_key()
            .flat_map(|(k, vs)| vs.into_iter().map(move |v| k * 1_000_000 + v)),
        Op::PartitionBy(n) => s.map(|x| (x % 7, x)).partition_by(n).map(|(_, x)| x),
        Op::MapPartitions => s.map_partitions(|xs| {
            let mut running = 0;
            xs.into_iter()
                .map(|x| {
                    running += x;
                    running
                })
                .collect::<Vec<_>>()
        }),
        Op::Transform => s.transform(|t, xs| {
            let t = t.millis() as i64;
            xs.into_iter().rev().map(move |x| x + t)
        }),
    }
}

/// Runs the pipeline on `workers` workers; every batch's records in the order collected.
fn run(input: &[Vec<i64>], ops: &[Op], workers: usize) -> Vec<Vec<i64>> {
    let queue = BatchQueue::from_batches(input.to_vec());
    let out = CollectedBatches::new();
    let (q, o, ops) = (queue.clone(), out.clone(), ops.to_vec());
    let config = common::on_workers(input.len(), workers);
    StreamingContext::new(config)
        .run(move |job| {
            let s = ops.iter().fold(job.queue_stream(&q), apply);
            s.collect_into(&o);
        })
        .expect("the job runs");
    out.values()
}

/// The pipeline with the order-free operators only, over plain vectors: Spark's per-batch
/// semantics as a naive model (`None` when the pipeline has an operator whose result depends
/// on partitions).
fn model(input: &[Vec<i64>], ops: &[Op]) -> Option<Vec<Vec<i64>>> {
    let mut batches = input.to_vec();
    for op in ops {
        batches = batches
            .into_iter()
            .map(|b| -> Option<Vec<i64>> {
                Some(match op.clone() {
                    Op::Map(k) => b.into_iter().map(|x| x * k + 1).collect(),
                    Op::Filter(m) => b.into_iter().filter(|x| x.rem_euclid(m) != 0).collect(),
                    Op::FlatMap => b.into_iter().flat_map(|x| [x, x + 100]).collect(),
                    Op::UnionWithMapped(k) => {
                        let mapped: Vec<i64> = b.iter().map(|x| x + k).collect();
                        b.into_iter().chain(mapped).collect()
                    }
                    Op::Repartition(_) | Op::PartitionBy(_) => b,
                    Op::ReduceByKey { keys, .. } => {
                        let mut sums = std::collections::BTreeMap::new();
                        for x in b {
                            *sums.entry(x.rem_euclid(keys)).or_insert(0) += x;
                        }
                        sums.into_iter().map(|(k, v)| k * 1_000_000 + v).collect()
                    }
                    Op::GroupByKey(keys) => b
                        .into_iter()
                        .map(|x| x.rem_euclid(keys) * 1_000_000 + x)
                        .collect(),
                    Op::Glom | Op::MapPartitions | Op::Transform => return None,
                })
            })
            .collect::<Option<Vec<_>>>()?;
    }
    Some(batches)
}

fn sorted(mut batches: Vec<Vec<i64>>) -> Vec<Vec<i64>> {
    batches.iter_mut().for_each(|b| b.sort());
    batches
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_pipeline_gives_one_order_on_any_number_of_workers(
        input in prop::collection::vec(prop::collection::vec(-50i64..50, 0..12), 1..4),
        ops in prop::collection::vec(op(), 1..5),
    ) {
        let one = run(&input, &ops, 1);
        prop_assert_eq!(&run(&input, &ops, 2), &one, "2 workers, pipeline {:?}", ops);
        prop_assert_eq!(&run(&input, &ops, 3), &one, "3 workers, pipeline {:?}", ops);
        if let Some(expected) = model(&input, &ops) {
            prop_assert_eq!(sorted(one), sorted(expected), "against the model, pipeline {:?}", ops);
        }
    }
}
