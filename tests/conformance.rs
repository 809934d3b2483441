//! Conformance: every per-batch operator against Spark's documented results (cases taken from
//! Spark's `BasicOperationsSuite`), each run with 1 worker, with 2 workers, and as 2 processes
//! on loopback, with exact per-batch outputs (empty batches included).

mod common;

use std::collections::HashMap;

use common::{expect, run1, run2, Batches};
use sluice::table::PairBatchExt;
use sluice::Cluster;

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

/// Every case by name, so that child processes can run them too.
fn run_case(name: &str, cluster: Cluster) -> Batches {
    match name {
        "map" => run1(ints(), cluster, |d| d.map(|x| x.to_string())),
        "flat_map" => run1(ints(), cluster, |d| d.flat_map(|x| vec![x, x * 2])),
        "filter" => run1(ints(), cluster, |d| d.filter(|x| x % 2 == 0)),
        "union" => run1(ints(), cluster, |d| d.union(&d.map(|x| x * 100))),
        "repartition" => run1(ints(), cluster, |d| d.repartition(2)),
        "count" => run1(vec![vec![], vec![1], vec![1, 2], vec![1, 2, 3]], cluster, |d: sluice::DStream<'_, i64>| d.count()),
        "reduce" => run1(vec![vec![1, 2, 3, 4], vec![], vec![5, 6]], cluster, |d: sluice::DStream<'_, i64>| d.reduce(|a, b| a + b)),
        "count_by_value" => run1(words(), cluster, |d| d.count_by_value()),
        "reduce_by_key" => run1(words(), cluster, |d| d.map(|w| (w, 1i64)).reduce_by_key(|a, b| a + b)),
        "group_by_key" => run1(words(), cluster, |d| {
            d.map(|w| (w, 1i64)).group_by_key().map(|(k, mut vs)| {
                vs.sort();
                (k, vs)
            })
        }),
        "combine_by_key" => run1(
            vec![vec![(s("a"), 1i64), (s("a"), 3), (s("b"), 5)], vec![], vec![(s("c"), 2)]],
            cluster,
            |d| d.combine_by_key(|v| (v, 1i64), |(sum, n), v| (sum + v, n + 1), |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2)),
        ),
        "map_values" => run1(vec![vec![(s("a"), 1i64), (s("b"), 2)]], cluster, |d| d.map_values(|v| v * 10)),
        "flat_map_values" => run1(vec![vec![(s("a"), 1i64), (s("b"), 2)]], cluster, |d| d.flat_map_values(|v| vec![v, v + 10])),
        "join" => run2(join_left(), join_right(), cluster, |a, b| a.join(&b)),
        "left_outer_join" => run2(join_left(), join_right(), cluster, |a, b| a.left_outer_join(&b)),
        "right_outer_join" => run2(join_left(), join_right(), cluster, |a, b| a.right_outer_join(&b)),
        "full_outer_join" => run2(join_left(), join_right(), cluster, |a, b| a.full_outer_join(&b)),
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
        "transform" => run1(ints(), cluster, |d| d.transform(|t, xs| xs.into_iter().map(move |x| (t.millis(), x * 2)))),
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
                a.partition_by_key().transform_with(&b.partition_by_key(), |_t, xs, ys| {
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
                s("27.19.74.143##2016-05-30 17:38:20##GET /static/image/common/faq.gif HTTP/1.1##200##1127"),
                s("110.52.250.126##2016-05-30 17:38:20##GET /data/cache/style_1_widthauto.css?y7a HTTP/1.1##200##1292"),
                s("8.35.201.144##2016-05-30 17:38:20##GET /static/image/common/hot_1.gif HTTP/1.1##200##680"),
            ]],
            cluster,
            |d| {
                let blacklist: HashMap<String, bool> = [(s("27.19.74.143"), true), (s("110.52.250.126"), true)].into();
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
