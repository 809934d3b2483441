//! Per-batch keyed operators on `DStream<(K, V)>` (Spark's `PairDStreamFunctions`).
//!
//! Records are routed to workers by a hash of the key that every process computes alike
//! ([`route`]); `combine_by_key` and `reduce_by_key` combine on each worker before routing
//! (Spark's map-side combine), `group_by_key` does not. Output order within a batch is
//! unspecified, as in Spark.

use std::hash::{BuildHasher, Hash};

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Exchange as _;
use timely::dataflow::operators::vec::Map;

use super::batch_op::batch_fold;
use super::{DStream, Data, Key};

/// The worker-routing hash of a key: the same in every process of a job.
pub fn route<K: Hash + ?Sized>(key: &K) -> u64 {
    foldhash::quality::FixedState::with_seed(0x5EED_5EED).hash_one(key)
}

type Map_<K, V> = foldhash::HashMap<K, V>;

/// Adds `x` to the combiner of `k`: `merge(old, x)` if there is one, else `create(x)`.
/// (The map holds `Option`s so that combiners move by value with one hash lookup.)
fn upsert<K: Key, C, X>(
    map: &mut Map_<K, Option<C>>,
    k: K,
    x: X,
    create: impl FnOnce(X) -> C,
    merge: impl FnOnce(C, X) -> C,
) {
    let slot = map.entry(k).or_insert(None);
    *slot = Some(match slot.take() {
        Some(c) => merge(c, x),
        None => create(x),
    });
}

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// Applies `f` to every value, keeping the key (Spark's `mapValues`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], |s| s.map_values(|v| v * 10))?;
    /// assert_eq!(out, vec![vec![('a', 10)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn map_values<W: Data>(&self, f: impl Fn(V) -> W + 'static) -> DStream<'s, (K, W)> {
        self.derive(self.stream.clone().map(move |(k, v)| (k, f(v))))
    }

    /// Replaces every value by the values `f` returns, keeping the key (Spark's
    /// `flatMapValues`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 2u64)]], |s| s.flat_map_values(|v| 0..v))?;
    /// assert_eq!(out, vec![vec![('a', 0), ('a', 1)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn flat_map_values<W: Data, I>(&self, f: impl Fn(V) -> I + 'static) -> DStream<'s, (K, W)>
    where
        I: IntoIterator<Item = W>,
    {
        self.derive(
            self.stream
                .clone()
                .flat_map(move |(k, v)| f(v).into_iter().map(move |w| (k.clone(), w))),
        )
    }

    /// Routes every record to the worker that owns its key, so that per-partition functions
    /// (`transform`, `map_partitions`, `foreach_partition`) see all records of a key together.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2)]], |s| s.partition_by_key())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![('a', 1), ('b', 2)]]); // the same records, each on its key's worker
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn partition_by_key(&self) -> DStream<'s, (K, V)> {
        self.derive(self.stream.clone().exchange(|(k, _): &(K, V)| route(k)))
    }

    /// All values of each key in each batch (Spark's `groupByKey`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2), ('a', 3)]], |s| s.group_by_key())?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', vec![1, 3]), ('b', vec![2])]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn group_by_key(&self) -> DStream<'s, (K, Vec<V>)> {
        let stream = batch_fold(
            self.stream.clone(),
            self.ticks.clone(),
            Exchange::new(|(k, _): &(K, V)| route(k)),
            Pipeline,
            &self.ctx.name("GroupByKey"),
            Map_::<K, Vec<V>>::default,
            |groups, data: &mut Vec<(K, V)>| {
                for (k, v) in data.drain(..) {
                    groups.entry(k).or_default().push(v);
                }
            },
            |_t, groups, out| out.extend(groups),
        );
        self.derive(stream)
    }

    /// Combines the values of each key in each batch (Spark's `combineByKey`): `create` makes a
    /// combiner from a key's first value on a worker, `merge_value` adds a value to it, and
    /// `merge_combiners` merges the combiners of different workers.
    ///
    /// # Examples
    ///
    /// ```
    /// // Average per key: (sum, count) combiners.
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 2u64), ('a', 4)]], |s| {
    ///     s.combine_by_key(|v| (v, 1u64), |(s, n), v| (s + v, n + 1), |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2))
    ///         .map_values(|(sum, n)| sum / n)
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 3)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + 'static,
        merge_value: impl Fn(C, V) -> C + 'static,
        merge_combiners: impl Fn(C, C) -> C + 'static,
    ) -> DStream<'s, (K, C)> {
        let local = batch_fold(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("CombineLocal"),
            Map_::<K, Option<C>>::default,
            move |combined, data: &mut Vec<(K, V)>| {
                for (k, v) in data.drain(..) {
                    upsert(combined, k, v, &create, &merge_value);
                }
            },
            |_t, combined, out| out.extend(combined.into_iter().filter_map(|(k, c)| Some((k, c?)))),
        );
        let merged = batch_fold(
            local,
            self.ticks.clone(),
            Exchange::new(|(k, _): &(K, C)| route(k)),
            Pipeline,
            &self.ctx.name("CombineMerge"),
            Map_::<K, Option<C>>::default,
            move |combined, data: &mut Vec<(K, C)>| {
                for (k, c) in data.drain(..) {
                    upsert(combined, k, c, |c| c, &merge_combiners);
                }
            },
            |_t, combined, out| out.extend(combined.into_iter().filter_map(|(k, c)| Some((k, c?)))),
        );
        self.derive(merged)
    }

    /// Reduces the values of each key in each batch with `f` (Spark's `reduceByKey`), combining
    /// on each worker before routing. `f` must be associative and commutative.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2), ('a', 3)]], |s| s.reduce_by_key(|a, b| a + b))?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', 4), ('b', 2)]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + 'static) -> DStream<'s, (K, V)> {
        let f = std::rc::Rc::new(f);
        let g = std::rc::Rc::clone(&f);
        self.combine_by_key(|v| v, move |a, b| f(a, b), move |a, b| g(a, b))
    }
}
