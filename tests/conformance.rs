//! Conformance: every per-batch operator against Spark's results — the output-vector tests of
//! Spark's `BasicOperationsSuite` (`streaming/src/test/scala/org/apache/spark/streaming/`) with
//! their inputs, partition counts (`numInputPartitions = 2`) and expected outputs — each run
//! with 1, 2 and 4 workers and as 2 processes on loopback. Cases Spark checks as lists
//! (`useSet = false`) are compared in exact order, the others as multisets; every topology must
//! give the order one worker gives. Windows and state are in `windows_state.rs`.

mod common;

use std::collections::HashMap;

use common::{Batches, expect, run1, run1_sliced, run2};
use sluice::Cluster;
use sluice::table::PairBatchExt;

fn ints() -> Vec<Vec<i64>> {
    vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10, 11, 12]]
}

fn words() -> Vec<Vec<String>> {
    vec![
        vec!["a".into(), "a".into(), "b".into()],
        vec!["".into(), "".into()],
        vec![],
    ]
}

fn s(x: &str) -> String {
    x.to_owned()
}

fn join_left() -> Vec<Vec<(String, i64)>> {
    [vec!["a"], vec!["a", "b"], vec!["a", ""], vec![""]]
        .into_iter()
        .map(|b| b.into_iter().map(|w| (s(w), 1)).collect())
        .collect()
}

fn join_right() -> Vec<Vec<(String, String)>> {
    [vec!["a"], vec!["b"], vec!["b", ""], vec![]]
        .into_iter()
        .map(|b| b.into_iter().map(|w| (s(w), s("x"))).collect())
        .collect()
}

fn range(from: i64, to: i64) -> Vec<i64> {
    (from..=to).collect()
}

/// `"a"`-style words to `(word, 1)` pairs per batch.
fn ones(batches: &[&[&str]]) -> Vec<Vec<(String, i64)>> {
    batches
        .iter()
        .map(|b| b.iter().map(|w| (s(w), 1)).collect())
        .collect()
}

/// Spark's `Seq( Seq("a", "a", "b"), Seq("", ""), Seq() )`.
fn spark_words() -> Vec<Vec<String>> {
    vec![vec![s("a"), s("a"), s("b")], vec![s(""), s("")], vec![]]
}

/// Spark's two inputs of the join family.
fn join_inputs() -> (Vec<Vec<(String, i64)>>, Vec<Vec<(String, String)>>) {
    let left = ones(&[&["a", "b"], &["a", ""], &[""], &[]]);
    let right = [vec!["a", "b"], vec!["b", ""], vec![], vec![""]]
        .into_iter()
        .map(|b| b.into_iter().map(|w| (s(w), s("x"))).collect())
        .collect();
    (left, right)
}

/// Every case by name, so that child processes can run them too.
fn run_case(name: &str, cluster: Cluster) -> Batches {
    match name {
        // Spark's BasicOperationsSuite, in its order.
        "spark_map" => run1(ints(), cluster, |d| d.map(|x| x.to_string())),
        "spark_flat_map" => run1(ints(), cluster, |d| d.flat_map(|x| vec![x, x * 2])),
        "spark_filter" => run1(ints(), cluster, |d| d.filter(|x| x % 2 == 0)),
        "spark_glom" => run1(ints(), cluster, |d| d.glom()),
        "spark_map_partitions" => run1(ints(), cluster, |d| {
            d.map_partitions(|xs| Some(xs.iter().sum::<i64>()))
        }),
        "spark_repartition_more" => run1_sliced(
            vec![range(1, 100), range(101, 200), range(201, 300)],
            2,
            cluster,
            |d| {
                d.repartition(5).glom().map(|mut p| {
                    p.sort();
                    p
                })
            },
        ),
        "spark_repartition_fewer" => run1_sliced(
            vec![range(1, 100), range(101, 200), range(201, 300)],
            5,
            cluster,
            |d| {
                d.repartition(2).glom().map(|mut p| {
                    p.sort();
                    p
                })
            },
        ),
        "spark_group_by_key" => run1(spark_words(), cluster, |d| {
            d.map(|x| (x, 1i64)).group_by_key()
        }),
        "spark_reduce_by_key" => run1(spark_words(), cluster, |d| {
            d.map(|x| (x, 1i64)).reduce_by_key(|a, b| a + b)
        }),
        "spark_reduce" => run1(ints(), cluster, |d| d.reduce(|a, b| a + b)),
        "spark_count" => run1(
            vec![vec![], range(1, 1), range(1, 2), range(1, 3), range(1, 4)],
            cluster,
            |d: sluice::DStream<'_, i64>| d.count(),
        ),
        // Spark's count is a reduceByKey into the default parallelism (2 here).
        "spark_count_partitions" => run1(
            vec![vec![], range(1, 3), range(1, 5)],
            cluster,
            |d: sluice::DStream<'_, i64>| d.count().glom(),
        ),
        "spark_count_by_value" => run1(
            vec![vec![1i64], vec![1, 1, 1], vec![1, 2], vec![1, 1, 2, 2]],
            cluster,
            |d| d.count_by_value(),
        ),
        "spark_map_values" => run1(spark_words(), cluster, |d| {
            d.map(|x| (x, 1i64))
                .reduce_by_key(|a, b| a + b)
                .map_values(|v| v + 10)
        }),
        "spark_flat_map_values" => run1(spark_words(), cluster, |d| {
            d.map(|x| (x, 1i64))
                .reduce_by_key(|a, b| a + b)
                .flat_map_values(|v| vec![v, v + 10])
        }),
        "spark_union" => run1(
            vec![range(1, 4), range(101, 104), range(201, 204)],
            cluster,
            |d| d.union(&d.map(|x| x + 4)),
        ),
        "spark_transform" => run1(ints(), cluster, |d| {
            d.transform(|_t, rdd| rdd.into_iter().map(|x| x.to_string()))
        }),
        "spark_transform_with" => {
            let (a, b) = join_inputs();
            run2(a, b, cluster, |a, b| {
                a.transform_with_whole(&b, |_t, xs, ys| {
                    let mut joined = Vec::new();
                    for (k, v) in &xs {
                        for (k2, w) in &ys {
                            if k == k2 {
                                joined.push((k.clone(), (*v, w.clone())));
                            }
                        }
                    }
                    joined
                })
            })
        }
        "spark_cogroup" => {
            let a = ones(&[&["a", "a", "b"], &["a", ""], &[""], &[]]);
            let b: Vec<Vec<(String, String)>> =
                [vec!["a", "a", "b"], vec!["b", ""], vec![], vec![]]
                    .into_iter()
                    .map(|b| b.into_iter().map(|w| (s(w), s("x"))).collect())
                    .collect();
            run2(a, b, cluster, |a, b| a.cogroup(&b))
        }
        "spark_join" => {
            let (a, b) = join_inputs();
            run2(a, b, cluster, |a, b| a.join(&b))
        }
        "spark_left_outer_join" => {
            let (a, b) = join_inputs();
            run2(a, b, cluster, |a, b| a.left_outer_join(&b))
        }
        "spark_right_outer_join" => {
            let (a, b) = join_inputs();
            run2(a, b, cluster, |a, b| a.right_outer_join(&b))
        }
        "spark_full_outer_join" => {
            let (a, b) = join_inputs();
            run2(a, b, cluster, |a, b| a.full_outer_join(&b))
        }
        // Beyond the suite: partitions a Spark user reads.
        "partition_by_glom" => run1(
            vec![vec![(s("a"), 1i64), (s("b"), 2), (s("a"), 3), (s("c"), 4)]],
            cluster,
            |d| d.partition_by(3).glom(),
        ),
        "reduce_by_key_into_one" => run1(spark_words(), cluster, |d| {
            d.map(|x| (x, 1i64))
                .partitioned(1)
                .reduce_by_key(|a, b| a + b)
                .glom()
        }),
        "map" => run1(ints(), cluster, |d| d.map(|x| x.to_string())),
        "flat_map" => run1(ints(), cluster, |d| d.flat_map(|x| vec![x, x * 2])),
        "filter" => run1(ints(), cluster, |d| d.filter(|x| x % 2 == 0)),
        "union" => run1(ints(), cluster, |d| d.union(&d.map(|x| x * 100))),
        "repartition" => run1(ints(), cluster, |d| d.repartition(2)),
        "count" => run1(
            vec![vec![], vec![1], vec![1, 2], vec![1, 2, 3]],
            cluster,
            |d: sluice::DStream<'_, i64>| d.count(),
        ),
        "reduce" => run1(
            vec![vec![1, 2, 3, 4], vec![], vec![5, 6]],
            cluster,
            |d: sluice::DStream<'_, i64>| d.reduce(|a, b| a + b),
        ),
        "count_by_value" => run1(words(), cluster, |d| d.count_by_value()),
        "reduce_by_key" => run1(words(), cluster, |d| {
            d.map(|w| (w, 1i64)).reduce_by_key(|a, b| a + b)
        }),
        "group_by_key" => run1(words(), cluster, |d| {
            d.map(|w| (w, 1i64)).group_by_key().map(|(k, mut vs)| {
                vs.sort();
                (k, vs)
            })
        }),
        "combine_by_key" => run1(
            vec![
                vec![(s("a"), 1i64), (s("a"), 3), (s("b"), 5)],
                vec![],
                vec![(s("c"), 2)],
            ],
            cluster,
            |d| {
                d.combine_by_key(
                    |v| (v, 1i64),
                    |(sum, n), v| (sum + v, n + 1),
                    |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
                )
            },
        ),
        "map_values" => run1(vec![vec![(s("a"), 1i64), (s("b"), 2)]], cluster, |d| {
            d.map_values(|v| v * 10)
        }),
        "flat_map_values" => run1(vec![vec![(s("a"), 1i64), (s("b"), 2)]], cluster, |d| {
            d.flat_map_values(|v| vec![v, v + 10])
        }),
        "join" => run2(join_left(), join_right(), cluster, |a, b| a.join(&b)),
        "left_outer_join" => run2(join_left(), join_right(), cluster, |a, b| {
            a.left_outer_join(&b)
        }),
        "right_outer_join" => run2(join_left(), join_right(), cluster, |a, b| {
            a.right_outer_join(&b)
        }),
        "full_outer_join" => run2(join_left(), join_right(), cluster, |a, b| {
            a.full_outer_join(&b)
        }),
        "cogroup" => {
            let a: Vec<Vec<(String, i64)>> = [vec!["a", "a", "b"], vec!["a", ""], vec![""], vec![]]
                .into_iter()
                .map(|b| b.into_iter().map(|w| (s(w), 1)).collect())
                .collect();
            let b: Vec<Vec<(String, String)>> = [vec!["a", "b"], vec!["b", ""], vec![], vec![]]
                .into_iter()
                .map(|b| b.into_iter().map(|w| (s(w), s("x"))).collect())
                .collect();
            run2(a, b, cluster, |a, b| a.cogroup(&b))
        }
        "transform" => run1(ints(), cluster, |d| {
            d.transform(|t, xs| xs.into_iter().map(move |x| (t.millis(), x * 2)))
        }),
        "transform_whole" => run1(ints(), cluster, |d| {
            d.transform_whole(|_t, mut xs| {
                xs.sort_by(|a, b| b.cmp(a));
                xs.truncate(2);
                xs
            })
        }),
        "transform_with" => run2(
            vec![vec![(s("a"), 1i64), (s("b"), 2)], vec![(s("c"), 3)]],
            vec![vec![(s("a"), s("x")), (s("z"), s("y"))], vec![]],
            cluster,
            |a, b| {
                a.partition_by_key()
                    .transform_with(&b.partition_by_key(), |_t, xs, ys| {
                        let table: HashMap<String, String> = ys.into_iter().collect();
                        xs.join(&table)
                    })
            },
        ),
        "transform_with_whole" => run2(
            vec![vec![(s("a"), 1i64), (s("b"), 2)], vec![(s("c"), 3)]],
            vec![vec![(s("a"), s("x")), (s("z"), s("y"))], vec![]],
            cluster,
            |a, b| {
                // No co-partitioning: the whole of both batches meets on one worker.
                a.transform_with_whole(&b, |_t, xs, ys| {
                    let table: HashMap<String, String> = ys.into_iter().collect();
                    xs.join(&table)
                })
            },
        ),
        "blacklist_transform" => run1(
            vec![vec![
                s(
                    "27.19.74.143##2016-05-30 17:38:20##GET /static/image/common/faq.gif HTTP/1.1##200##1127",
                ),
                s(
                    "110.52.250.126##2016-05-30 17:38:20##GET /data/cache/style_1_widthauto.css?y7a HTTP/1.1##200##1292",
                ),
                s(
                    "8.35.201.144##2016-05-30 17:38:20##GET /static/image/common/hot_1.gif HTTP/1.1##200##680",
                ),
            ]],
            cluster,
            |d| {
                let blacklist: HashMap<String, bool> =
                    [(s("27.19.74.143"), true), (s("110.52.250.126"), true)].into();
                d.map(|line| match line.split_once("##") {
                    Some((ip, rest)) => (ip.to_owned(), rest.to_owned()),
                    None => (line, String::new()),
                })
                .transform(move |_t, batch| {
                    batch
                        .left_outer_join(&blacklist)
                        .into_iter()
                        .filter(|(_, (_, hit))| hit.is_none())
                        .map(|(ip, (rest, _))| (ip, rest))
                })
            },
        ),
        "spark_context_union" => run_job(
            vec![range(1, 4), range(101, 104), range(201, 204)],
            cluster,
            |job, s| job.union(&[s.clone(), s.map(|x| x + 4), s.map(|x| x + 8)]),
        ),
        "spark_context_transform" => run_job(
            vec![range(1, 4), range(101, 104), range(201, 204)],
            cluster,
            |job, s| {
                job.transform(
                    &[s.clone(), s.map(|x| x + 4), s.map(|x| x + 8)],
                    |_t, rdds: Vec<Vec<i64>>| rdds.concat(),
                )
            },
        ),
        other => panic!("unknown case {other}"),
    }
}

/// Runs `f` with the job (for `StreamingContext`'s own operators) over one queued input.
fn run_job(
    input: Vec<Vec<i64>>,
    cluster: Cluster,
    f: impl for<'s> Fn(&mut sluice::Job<'s>, sluice::DStream<'s, i64>) -> sluice::DStream<'s, i64>
    + Send
    + Sync
    + 'static,
) -> Batches {
    let n = input.len();
    let queue = sluice::source::BatchQueue::from_batches(input);
    common::run_source(common::config(n, cluster), move |job| {
        let s = job.queue_stream(&queue);
        f(job, s)
    })
}

fn check(name: &str, expected: Batches) {
    common::check(name, expected, run_case);
}

fn check_ordered(name: &str, expected: Batches) {
    common::check_ordered(name, expected, run_case);
}

/// Entry point of the child processes of multi-process runs; does nothing in a normal run.
#[test]
fn child_process_entry() {
    common::child_entry(run_case);
}

#[test]
fn map() {
    check(
        "map",
        expect(vec![
            vec!["1", "2", "3", "4"],
            vec!["5", "6", "7", "8"],
            vec!["9", "10", "11", "12"],
        ]),
    );
}

#[test]
fn flat_map() {
    check(
        "flat_map",
        expect(vec![
            vec![1, 2, 2, 4, 3, 6, 4, 8],
            vec![5, 10, 6, 12, 7, 14, 8, 16],
            vec![9, 18, 10, 20, 11, 22, 12, 24],
        ]),
    );
}

#[test]
fn filter() {
    check("filter", expect(vec![vec![2, 4], vec![6, 8], vec![10, 12]]));
}

#[test]
fn union() {
    check(
        "union",
        expect(vec![
            vec![1, 2, 3, 4, 100, 200, 300, 400],
            vec![5, 6, 7, 8, 500, 600, 700, 800],
            vec![9, 10, 11, 12, 900, 1000, 1100, 1200],
        ]),
    );
}

#[test]
fn repartition_keeps_every_record() {
    check("repartition", expect(ints()));
}

#[test]
fn count_is_zero_for_an_empty_batch() {
    check("count", expect(vec![vec![0u64], vec![1], vec![2], vec![3]]));
}

#[test]
fn reduce_yields_nothing_for_an_empty_batch() {
    check("reduce", expect(vec![vec![10i64], vec![], vec![11]]));
}

#[test]
fn count_by_value() {
    check(
        "count_by_value",
        expect(vec![
            vec![(s("a"), 2u64), (s("b"), 1)],
            vec![(s(""), 2)],
            vec![],
        ]),
    );
}

#[test]
fn reduce_by_key() {
    check(
        "reduce_by_key",
        expect(vec![
            vec![(s("a"), 2i64), (s("b"), 1)],
            vec![(s(""), 2)],
            vec![],
        ]),
    );
}

#[test]
fn group_by_key() {
    check(
        "group_by_key",
        expect(vec![
            vec![(s("a"), vec![1i64, 1]), (s("b"), vec![1])],
            vec![(s(""), vec![1, 1])],
            vec![],
        ]),
    );
}

#[test]
fn combine_by_key() {
    check(
        "combine_by_key",
        expect(vec![
            vec![(s("a"), (4i64, 2i64)), (s("b"), (5, 1))],
            vec![],
            vec![(s("c"), (2, 1))],
        ]),
    );
}

#[test]
fn map_values() {
    check(
        "map_values",
        expect(vec![vec![(s("a"), 10i64), (s("b"), 20)]]),
    );
}

#[test]
fn flat_map_values() {
    check(
        "flat_map_values",
        expect(vec![vec![
            (s("a"), 1i64),
            (s("a"), 11),
            (s("b"), 2),
            (s("b"), 12),
        ]]),
    );
}

#[test]
fn join() {
    let x = || s("x");
    check(
        "join",
        expect(vec![
            vec![(s("a"), (1i64, x()))],
            vec![(s("b"), (1, x()))],
            vec![(s(""), (1, x()))],
            vec![],
        ]),
    );
}

#[test]
fn left_outer_join() {
    let x = || Some(s("x"));
    check(
        "left_outer_join",
        expect(vec![
            vec![(s("a"), (1i64, x()))],
            vec![(s("a"), (1, None)), (s("b"), (1, x()))],
            vec![(s(""), (1, x())), (s("a"), (1, None))],
            vec![(s(""), (1, None))],
        ]),
    );
}

#[test]
fn right_outer_join() {
    let x = || s("x");
    check(
        "right_outer_join",
        expect(vec![
            vec![(s("a"), (Some(1i64), x()))],
            vec![(s("b"), (Some(1), x()))],
            vec![(s(""), (Some(1), x())), (s("b"), (None, x()))],
            vec![],
        ]),
    );
}

#[test]
fn full_outer_join() {
    let x = || Some(s("x"));
    check(
        "full_outer_join",
        expect(vec![
            vec![(s("a"), (Some(1i64), x()))],
            vec![(s("a"), (Some(1), None)), (s("b"), (Some(1), x()))],
            vec![
                (s(""), (Some(1), x())),
                (s("a"), (Some(1), None)),
                (s("b"), (None, x())),
            ],
            vec![(s(""), (Some(1), None))],
        ]),
    );
}

#[test]
fn cogroup() {
    let x = || s("x");
    let none: Vec<String> = vec![];
    check(
        "cogroup",
        expect(vec![
            vec![
                (s("a"), (vec![1i64, 1], vec![x()])),
                (s("b"), (vec![1], vec![x()])),
            ],
            vec![
                (s(""), (vec![1], vec![x()])),
                (s("a"), (vec![1], none.clone())),
                (s("b"), (vec![], vec![x()])),
            ],
            vec![(s(""), (vec![1], none))],
            vec![],
        ]),
    );
}

#[test]
fn transform_sees_the_batch_time() {
    check(
        "transform",
        expect(vec![
            vec![(1000u64, 2i64), (1000, 4), (1000, 6), (1000, 8)],
            vec![(2000, 10), (2000, 12), (2000, 14), (2000, 16)],
            vec![(3000, 18), (3000, 20), (3000, 22), (3000, 24)],
        ]),
    );
}

#[test]
fn transform_whole_sees_the_whole_batch() {
    check(
        "transform_whole",
        expect(vec![vec![4i64, 3], vec![8, 7], vec![12, 11]]),
    );
}

#[test]
fn transform_with_on_co_partitioned_streams() {
    check(
        "transform_with",
        expect(vec![vec![(s("a"), (1i64, s("x")))], vec![]]),
    );
}

#[test]
fn transform_with_whole_joins_whole_batches() {
    check(
        "transform_with_whole",
        expect(vec![vec![(s("a"), (1i64, s("x")))], vec![]]),
    );
}

#[test]
fn blacklist_filter_as_in_the_course() {
    check(
        "blacklist_transform",
        expect(vec![vec![(
            s("8.35.201.144"),
            s("2016-05-30 17:38:20##GET /static/image/common/hot_1.gif HTTP/1.1##200##680"),
        )]]),
    );
}

/// Spark 4.3's own partitions (`benches/spark/partitions.sh`, each partition sorted): batches
/// 1..=100, 101..=200, 201..=300, repartitioned to 5 from 2 slices, and to 2 from 5.
const SPARK_REPARTITION_MORE: [&str; 3] = [
    "[2,7,12,17,22,27,32,37,42,47,52,57,62,67,72,77,82,87,92,97];[3,8,13,18,23,28,33,38,43,48,53,58,63,68,73,78,83,88,93,98];[4,9,14,19,24,29,34,39,44,49,54,59,64,69,74,79,84,89,94,99];[5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100];[1,6,11,16,21,26,31,36,41,46,51,56,61,66,71,76,81,86,91,96]",
    "[102,107,112,117,122,127,132,137,142,147,152,157,162,167,172,177,182,187,192,197];[103,108,113,118,123,128,133,138,143,148,153,158,163,168,173,178,183,188,193,198];[104,109,114,119,124,129,134,139,144,149,154,159,164,169,174,179,184,189,194,199];[105,110,115,120,125,130,135,140,145,150,155,160,165,170,175,180,185,190,195,200];[101,106,111,116,121,126,131,136,141,146,151,156,161,166,171,176,181,186,191,196]",
    "[202,207,212,217,222,227,232,237,242,247,252,257,262,267,272,277,282,287,292,297];[203,208,213,218,223,228,233,238,243,248,253,258,263,268,273,278,283,288,293,298];[204,209,214,219,224,229,234,239,244,249,254,259,264,269,274,279,284,289,294,299];[205,210,215,220,225,230,235,240,245,250,255,260,265,270,275,280,285,290,295,300];[201,206,211,216,221,226,231,236,241,246,251,256,261,266,271,276,281,286,291,296]",
];
const SPARK_REPARTITION_FEWER: [&str; 3] = [
    "[2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,41,43,45,47,49,51,53,55,57,59,61,63,65,67,69,71,73,75,77,79,81,83,85,87,89,91,93,95,97,99];[1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31,33,35,37,39,42,44,46,48,50,52,54,56,58,60,62,64,66,68,70,72,74,76,78,80,82,84,86,88,90,92,94,96,98,100]",
    "[102,104,106,108,110,112,114,116,118,120,122,124,126,128,130,132,134,136,138,140,141,143,145,147,149,151,153,155,157,159,161,163,165,167,169,171,173,175,177,179,181,183,185,187,189,191,193,195,197,199];[101,103,105,107,109,111,113,115,117,119,121,123,125,127,129,131,133,135,137,139,142,144,146,148,150,152,154,156,158,160,162,164,166,168,170,172,174,176,178,180,182,184,186,188,190,192,194,196,198,200]",
    "[202,204,206,208,210,212,214,216,218,220,222,224,226,228,230,232,234,236,238,240,241,243,245,247,249,251,253,255,257,259,261,263,265,267,269,271,273,275,277,279,281,283,285,287,289,291,293,295,297,299];[201,203,205,207,209,211,213,215,217,219,221,223,225,227,229,231,233,235,237,239,242,244,246,248,250,252,254,256,258,260,262,264,266,268,270,272,274,276,278,280,282,284,286,288,290,292,294,296,298,300]",
];

/// Spark's partitions above as the batches `glom` gives (each partition sorted).
fn spark_partitions(batches: &[&str]) -> Batches {
    batches
        .iter()
        .map(|b| b.split(';').map(|p| p.replace(',', ", ")).collect())
        .collect()
}

// ---- Spark's BasicOperationsSuite, case by case (Spark's `useSet` decides the comparison) ----

fn spark_ints_as<T: std::fmt::Debug>(f: impl Fn(i64) -> T) -> Batches {
    expect(
        ints()
            .into_iter()
            .map(|b| b.into_iter().map(&f).collect())
            .collect(),
    )
}

#[test]
fn spark_map() {
    check_ordered("spark_map", spark_ints_as(|x| x.to_string()));
}

#[test]
fn spark_flat_map() {
    let expected = ints()
        .into_iter()
        .map(|b| b.into_iter().flat_map(|x| [x, x * 2]).collect())
        .collect();
    check_ordered("spark_flat_map", expect::<i64>(expected));
}

#[test]
fn spark_filter() {
    check_ordered(
        "spark_filter",
        expect(vec![vec![2, 4], vec![6, 8], vec![10, 12]]),
    );
}

#[test]
fn spark_glom_shows_two_partitions() {
    check_ordered(
        "spark_glom",
        expect(vec![
            vec![vec![1, 2], vec![3, 4]],
            vec![vec![5, 6], vec![7, 8]],
            vec![vec![9, 10], vec![11, 12]],
        ]),
    );
}

#[test]
fn spark_map_partitions_sums_each_partition() {
    check(
        "spark_map_partitions",
        expect(vec![vec![3, 7], vec![11, 15], vec![19, 23]]),
    );
}

/// Spark's repartition tests: the number of partitions and the records of each batch.
fn repartitioned(batches: &Batches, partitions: usize) -> Vec<Vec<i64>> {
    batches
        .iter()
        .map(|b| {
            assert_eq!(b.len(), partitions, "partitions of a batch: {b:?}");
            let mut all: Vec<i64> = b
                .iter()
                .flat_map(|p| {
                    p.trim_matches(|c| c == '[' || c == ']')
                        .split(", ")
                        .filter(|x| !x.is_empty())
                        .map(|x| x.parse::<i64>().expect("a number"))
                        .collect::<Vec<_>>()
                })
                .collect();
            all.sort();
            all
        })
        .collect()
}

/// Spark's repartition test for `case` (`partitions` per batch, every record kept), then each
/// partition against Spark 4.3's own (beyond Spark's test).
fn check_repartition(case: &str, partitions: usize, spark: &[&str]) {
    let got = run_case(case, Cluster::default());
    assert_eq!(
        repartitioned(&got, partitions),
        vec![range(1, 100), range(101, 200), range(201, 300)]
    );
    check_ordered(case, spark_partitions(spark));
}

#[test]
fn spark_repartition_to_more_partitions() {
    check_repartition("spark_repartition_more", 5, &SPARK_REPARTITION_MORE);
}

#[test]
fn spark_repartition_to_fewer_partitions() {
    check_repartition("spark_repartition_fewer", 2, &SPARK_REPARTITION_FEWER);
}

#[test]
fn spark_group_by_key() {
    check(
        "spark_group_by_key",
        expect(vec![
            vec![(s("a"), vec![1i64, 1]), (s("b"), vec![1])],
            vec![(s(""), vec![1, 1])],
            vec![],
        ]),
    );
}

#[test]
fn spark_reduce_by_key() {
    check(
        "spark_reduce_by_key",
        expect(vec![
            vec![(s("a"), 2i64), (s("b"), 1)],
            vec![(s(""), 2)],
            vec![],
        ]),
    );
}

#[test]
fn spark_reduce() {
    check_ordered(
        "spark_reduce",
        expect(vec![vec![10i64], vec![26], vec![42]]),
    );
}

#[test]
fn spark_count() {
    check_ordered(
        "spark_count",
        expect(vec![vec![0u64], vec![1], vec![2], vec![3], vec![4]]),
    );
}

#[test]
fn spark_count_partitions() {
    check_ordered(
        "spark_count_partitions",
        expect(vec![
            vec![vec![0u64], vec![]],
            vec![vec![3], vec![]],
            vec![vec![5], vec![]],
        ]),
    );
}

#[test]
fn spark_count_by_value() {
    check(
        "spark_count_by_value",
        expect(vec![
            vec![(1i64, 1u64)],
            vec![(1, 3)],
            vec![(1, 1), (2, 1)],
            vec![(2, 2), (1, 2)],
        ]),
    );
}

#[test]
fn spark_map_values() {
    check(
        "spark_map_values",
        expect(vec![
            vec![(s("a"), 12i64), (s("b"), 11)],
            vec![(s(""), 12)],
            vec![],
        ]),
    );
}

#[test]
fn spark_flat_map_values() {
    check(
        "spark_flat_map_values",
        expect(vec![
            vec![(s("a"), 2i64), (s("a"), 12), (s("b"), 1), (s("b"), 11)],
            vec![(s(""), 2), (s(""), 12)],
            vec![],
        ]),
    );
}

#[test]
fn spark_union_concatenates_the_branches() {
    check_ordered(
        "spark_union",
        expect(vec![range(1, 8), range(101, 108), range(201, 208)]),
    );
}

#[test]
fn spark_streaming_context_union() {
    check_ordered(
        "spark_context_union",
        expect(vec![range(1, 12), range(101, 112), range(201, 212)]),
    );
}

#[test]
fn spark_transform() {
    check_ordered("spark_transform", spark_ints_as(|x| x.to_string()));
}

#[test]
fn spark_transform_with_a_join() {
    check(
        "spark_transform_with",
        expect(vec![
            vec![(s("a"), (1i64, s("x"))), (s("b"), (1, s("x")))],
            vec![(s(""), (1, s("x")))],
            vec![],
            vec![],
        ]),
    );
}

#[test]
fn spark_streaming_context_transform() {
    check_ordered(
        "spark_context_transform",
        expect(vec![range(1, 12), range(101, 112), range(201, 212)]),
    );
}

#[test]
fn spark_cogroup() {
    let v = |xs: &[i64], ws: &[&str]| (xs.to_vec(), ws.iter().map(|w| s(w)).collect::<Vec<_>>());
    check(
        "spark_cogroup",
        expect(vec![
            vec![(s("a"), v(&[1, 1], &["x", "x"])), (s("b"), v(&[1], &["x"]))],
            vec![
                (s("a"), v(&[1], &[])),
                (s("b"), v(&[], &["x"])),
                (s(""), v(&[1], &["x"])),
            ],
            vec![(s(""), v(&[1], &[]))],
            vec![],
        ]),
    );
}

#[test]
fn spark_join() {
    check(
        "spark_join",
        expect(vec![
            vec![(s("a"), (1i64, s("x"))), (s("b"), (1, s("x")))],
            vec![(s(""), (1, s("x")))],
            vec![],
            vec![],
        ]),
    );
}

#[test]
fn spark_left_outer_join() {
    check(
        "spark_left_outer_join",
        expect(vec![
            vec![(s("a"), (1i64, Some(s("x")))), (s("b"), (1, Some(s("x"))))],
            vec![(s(""), (1, Some(s("x")))), (s("a"), (1, None))],
            vec![(s(""), (1, None))],
            vec![],
        ]),
    );
}

#[test]
fn spark_right_outer_join() {
    check(
        "spark_right_outer_join",
        expect(vec![
            vec![(s("a"), (Some(1i64), s("x"))), (s("b"), (Some(1), s("x")))],
            vec![(s(""), (Some(1), s("x"))), (s("b"), (None, s("x")))],
            vec![],
            vec![(s(""), (None, s("x")))],
        ]),
    );
}

#[test]
fn spark_full_outer_join() {
    check(
        "spark_full_outer_join",
        expect(vec![
            vec![
                (s("a"), (Some(1i64), Some(s("x")))),
                (s("b"), (Some(1), Some(s("x")))),
            ],
            vec![
                (s(""), (Some(1), Some(s("x")))),
                (s("a"), (Some(1), None)),
                (s("b"), (None, Some(s("x")))),
            ],
            vec![(s(""), (Some(1), None))],
            vec![(s(""), (None, Some(s("x"))))],
        ]),
    );
}

#[test]
fn partition_by_keeps_a_keys_records_together_in_order() {
    let got = run_case("partition_by_glom", Cluster::default());
    assert_eq!(got[0].len(), 3, "three partitions: {got:?}");
    // a's records share a partition, in their order (b may hash there too).
    let (a1, a3) = (r#"("a", 1)"#, r#"("a", 3)"#);
    assert!(
        got[0]
            .iter()
            .any(|p| p.contains(a1) && p.contains(a3) && p.find(a1) < p.find(a3)),
        "{got:?}"
    );
    check_ordered("partition_by_glom", got);
}

#[test]
fn a_shuffle_takes_its_number_of_partitions() {
    let got = run_case("reduce_by_key_into_one", Cluster::default());
    assert!(
        got.iter().all(|b| b.len() == 1),
        "one partition per batch: {got:?}"
    );
    check_ordered("reduce_by_key_into_one", got);
}

/// With `Partitioner::Spark`, a shuffle puts each key where Spark's `HashPartitioner` does:
/// the expected partitions are Spark 4.3's own (`HashPartitioner(n).getPartition` of these
/// keys, printed with the pyspark wheel's jars), on 1, 2 and 3 workers.
#[test]
fn spark_partitioner_places_keys_as_spark_does() {
    use sluice::source::BatchQueue;
    use sluice::spark_hash::Partitioner;
    use sluice::{CollectedBatches, StreamingContext};
    let words: Vec<String> = [
        "spark",
        "streaming",
        "a",
        "b",
        "c",
        "hello",
        "world",
        "kafka",
        "flink",
        "sluice",
        "a",
        "spark",
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    let pairs: Vec<(String, i32)> = (0..8).map(|i| (format!("k{i}"), i)).collect();
    for workers in 1..=3 {
        let (by_word, by_pair) = (CollectedBatches::new(), CollectedBatches::new());
        let (w, p) = (by_word.clone(), by_pair.clone());
        let (qw, qp) = (
            BatchQueue::from_batches(vec![words.clone()]),
            BatchQueue::from_batches(vec![pairs.clone()]),
        );
        StreamingContext::new(common::on_workers(1, workers).partitioner(Partitioner::Spark))
            .run(move |job| {
                job.queue_stream(&qw)
                    .map(|w| (w, 1u64))
                    .reduce_by_key(|a, b| a + b)
                    .glom()
                    .map(|mut p| {
                        p.sort();
                        p
                    })
                    .collect_into(&w);
                job.queue_stream(&qp)
                    .map(|(k, i)| ((k, i), 1u64))
                    .partitioned(3)
                    .reduce_by_key(|a, b| a + b)
                    .glom()
                    .map(|p| {
                        let mut keys: Vec<i32> = p.into_iter().map(|((_, i), _)| i).collect();
                        keys.sort();
                        keys
                    })
                    .collect_into(&p);
            })
            .expect("the job runs");
        let one = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(w, n)| (w.to_string(), *n)).collect()
        };
        assert_eq!(
            by_word.values(),
            vec![vec![
                one(&[
                    ("b", 1),
                    ("flink", 1),
                    ("hello", 1),
                    ("kafka", 1),
                    ("streaming", 1),
                    ("world", 1)
                ]),
                one(&[("a", 2), ("c", 1), ("sluice", 1), ("spark", 2)]),
            ]],
            "{workers} workers"
        );
        assert_eq!(
            by_pair.values(),
            vec![vec![vec![1, 2, 3, 4], vec![5, 7], vec![0, 6]]],
            "{workers} workers"
        );
    }
}
