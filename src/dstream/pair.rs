//! Per-batch keyed operators on `DStream<(K, V)>` (Spark's `PairDStreamFunctions`).
//!
//! Each shuffle hash-partitions the keys into `n` partitions (Spark's `HashPartitioner`; `n` is
//! the job's default parallelism unless [`partitioned`](super::partitioned) names it) with a hash that every
//! process computes alike ([`route`]). `combine_by_key` and `reduce_by_key` combine within each
//! input partition before the shuffle (Spark's map-side combine), `group_by_key` does not.
//! Within a partition, the output follows the input partitions' order and fixed-seed hash
//! maps, so it is the same on any number of workers (Spark leaves it unspecified).

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Pipeline;

use super::batch_op::batch_fold;
use super::partition::{FixedMap, Part, PartitionId, map_parts, shuffle};
use super::{DStream, Data, Key};

pub use crate::fixed_hash::route;

type Map_<K, V> = FixedMap<K, V>;

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
        let name = self.ctx.name("MapValues");
        self.derive(map_parts(self.stream.clone(), &name, move |records| {
            records.into_iter().map(|(k, v)| (k, f(v))).collect()
        }))
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
        let name = self.ctx.name("FlatMapValues");
        self.derive(map_parts(self.stream.clone(), &name, move |records| {
            records
                .into_iter()
                .flat_map(|(k, v)| f(v).into_iter().map(move |w| (k.clone(), w)))
                .collect()
        }))
    }

    /// Hash-partitions the records by key into the job's default parallelism, so that
    /// per-partition functions (`transform`, `map_partitions`, `foreach_partition`) see all
    /// records of a key together (Spark's `partitionBy(new HashPartitioner(n))`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2)]], |s| s.partition_by_key())?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![('a', 1), ('b', 2)]]); // the same records, each in its key's partition
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn partition_by_key(&self) -> DStream<'s, (K, V)> {
        self.partition_by(self.ctx.info.parallelism)
    }

    /// Hash-partitions the records by key into `partitions` partitions (Spark's
    /// `partitionBy(new HashPartitioner(partitions))`); each keeps its input order.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2), ('a', 3)]], |s| s.partition_by(3).glom())?;
    /// assert_eq!(out[0].len(), 3); // three partitions
    /// assert!(out[0].iter().any(|p| p == &vec![('a', 1), ('a', 3)])); // a key's records together, in order
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn partition_by(&self, partitions: usize) -> DStream<'s, (K, V)> {
        let n = partitions.max(1);
        let partitioner = self.ctx.info.partitioner;
        let stream = shuffle(
            self.stream.clone(),
            self.ticks.clone(),
            n,
            &self.ctx.name("PartitionBy"),
            move |(k, _): &(K, V)| partitioner.partition(k, n),
            |_t, _q, records| records,
        );
        self.derive(stream)
    }

    /// The number of partitions of a shuffle: `partitions`, or the job's default.
    pub(crate) fn shuffle_partitions(&self, partitions: Option<usize>) -> usize {
        partitions.unwrap_or(self.ctx.info.parallelism).max(1)
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
        self.group_by_key_into(None)
    }

    /// [`group_by_key`](DStream::group_by_key) into `partitions` partitions (Spark's
    /// `groupByKey(numPartitions)`); `None` for the job's default.
    pub(crate) fn group_by_key_into(&self, partitions: Option<usize>) -> DStream<'s, (K, Vec<V>)> {
        let n = self.shuffle_partitions(partitions);
        let partitioner = self.ctx.info.partitioner;
        let stream = shuffle(
            self.stream.clone(),
            self.ticks.clone(),
            n,
            &self.ctx.name("GroupByKey"),
            move |(k, _): &(K, V)| partitioner.partition(k, n),
            |_t, _q, records| {
                let mut groups = Map_::<K, Vec<V>>::default();
                for (k, v) in records {
                    groups.entry(k).or_default().push(v);
                }
                groups.into_iter().collect()
            },
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
        self.combine_by_key_into(create, merge_value, merge_combiners, None)
    }

    /// [`combine_by_key`](DStream::combine_by_key) into `partitions` partitions (Spark's
    /// `combineByKey(.., partitioner)`); `None` for the job's default.
    pub(crate) fn combine_by_key_into<C: Data>(
        &self,
        create: impl Fn(V) -> C + 'static,
        merge_value: impl Fn(C, V) -> C + 'static,
        merge_combiners: impl Fn(C, C) -> C + 'static,
        partitions: Option<usize>,
    ) -> DStream<'s, (K, C)> {
        let n = self.shuffle_partitions(partitions);
        let partitioner = self.ctx.info.partitioner;
        // Map side: each input partition's values combined as they arrive.
        let local = batch_fold(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("CombineLocal"),
            BTreeMap::<PartitionId, Map_<K, Option<C>>>::new,
            move |combined, data: &mut Vec<Part<(K, V)>>| {
                for part in data.drain(..) {
                    let map = combined.entry(part.id).or_default();
                    for (k, v) in part.records {
                        upsert(map, k, v, &create, &merge_value);
                    }
                }
            },
            |_t, combined, out| {
                for (id, map) in combined {
                    let records = map.into_iter().filter_map(|(k, c)| Some((k, c?))).collect();
                    out.push(Part::new(id, records));
                }
            },
        );
        let merged = shuffle(
            local,
            self.ticks.clone(),
            n,
            &self.ctx.name("CombineMerge"),
            move |(k, _): &(K, C)| partitioner.partition(k, n),
            move |_t, _q, records| {
                let mut combined = Map_::<K, Option<C>>::default();
                for (k, c) in records {
                    upsert(&mut combined, k, c, |c| c, &merge_combiners);
                }
                combined
                    .into_iter()
                    .filter_map(|(k, c)| Some((k, c?)))
                    .collect()
            },
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
        self.reduce_by_key_into(f, None)
    }

    /// [`reduce_by_key`](DStream::reduce_by_key) into `partitions` partitions (Spark's
    /// `reduceByKey(func, numPartitions)`, [`Partitioned::reduce_by_key`](super::partitioned::Partitioned::reduce_by_key)); `None` for the job's default.
    pub(crate) fn reduce_by_key_into(
        &self,
        f: impl Fn(V, V) -> V + 'static,
        partitions: Option<usize>,
    ) -> DStream<'s, (K, V)> {
        let f = std::rc::Rc::new(f);
        let g = std::rc::Rc::clone(&f);
        self.combine_by_key_into(|v| v, move |a, b| f(a, b), move |a, b| g(a, b), partitions)
    }
}
