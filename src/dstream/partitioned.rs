//! Spark's `numPartitions`, one idiom for every shuffle: `stream.partitioned(n).op(...)`.
//!
//! Every keyed operator that shuffles (`reduceByKey`, `groupByKey`, `combineByKey`,
//! `countByValue`, `cogroup` and the joins, the keyed windows, `updateStateByKey`,
//! `mapWithState`) hashes its keys into the job's default parallelism
//! (`spark.default.parallelism`, [`StreamingConfig::default_parallelism`]). Where Spark takes a
//! `numPartitions` argument, sluice takes it before the operator:
//!
//! ```text
//! Spark:  pairs.reduceByKey(_ + _, 4)
//! sluice: pairs.partitioned(4).reduce_by_key(|a, b| a + b)
//! ```
//!
//! [`Partitioned`] has only the operators a partition count applies to, so that it cannot be
//! set and then lost on an operator that ignores it. Its results are ordinary streams.
//!
//! [`StreamingConfig::default_parallelism`]: crate::StreamingConfig::default_parallelism

use std::time::Duration;

use super::state::{MapWithState, StateSpec, UpdateState};
use super::stateful::Stateful;
use super::{DStream, Data, Key};

/// A stream whose next shuffle goes into a given number of hash partitions (Spark's
/// `numPartitions`); made by [`DStream::partitioned`].
pub struct Partitioned<'s, T> {
    stream: DStream<'s, T>,
    partitions: usize,
}

impl<'s, T: Data> DStream<'s, T> {
    /// This stream, with its next shuffle into `n` hash partitions instead of the job's
    /// default parallelism (Spark's `numPartitions` argument; `n` is at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2), ('a', 3)]], |s| s.partitioned(1).reduce_by_key(|a, b| a + b).glom())?;
    /// assert_eq!(out[0].len(), 1); // one partition holds every key
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn partitioned(&self, n: usize) -> Partitioned<'s, T> {
        Partitioned {
            stream: self.clone(),
            partitions: n.max(1),
        }
    }
}

impl<'s, T: Data> Partitioned<'s, T> {
    /// The number of partitions the next shuffle goes into.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64]], |s| { assert_eq!(s.partitioned(0).partitions(), 1); s.clone() })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// How often each distinct record occurs in each batch, in these partitions (Spark's
    /// `countByValue(numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec!['a', 'b', 'a']], |s| s.partitioned(1).count_by_value().glom())?;
    /// assert_eq!(out[0].len(), 1);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn count_by_value(&self) -> DStream<'s, (T, u64)>
    where
        T: Key,
    {
        let n = Some(self.partitions);
        self.stream
            .map(|x| (x, 1u64))
            .reduce_by_key_into(|a, b| a + b, n)
    }
}

impl<'s, K: Key, V: Data> Partitioned<'s, (K, V)> {
    /// [`DStream::reduce_by_key`] into these partitions (Spark's `reduceByKey(func,
    /// numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2), ('a', 3)]], |s| s.partitioned(3).reduce_by_key(|a, b| a + b).glom())?;
    /// assert_eq!(out[0].len(), 3);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + 'static) -> DStream<'s, (K, V)> {
        self.stream.reduce_by_key_into(f, Some(self.partitions))
    }

    /// [`DStream::group_by_key`] into these partitions (Spark's `groupByKey(numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('a', 3)]], |s| s.partitioned(2).group_by_key().glom())?;
    /// assert_eq!(out[0].len(), 2);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn group_by_key(&self) -> DStream<'s, (K, Vec<V>)> {
        self.stream.group_by_key_into(Some(self.partitions))
    }

    /// [`DStream::combine_by_key`] into these partitions (Spark's `combineByKey(create,
    /// mergeValue, mergeCombiners, partitioner)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('a', 3)]], |s| s.partitioned(1).combine_by_key(|v| vec![v], |mut c, v| { c.push(v); c }, |mut a, b| { a.extend(b); a }))?;
    /// out[0][0].1.sort();
    /// assert_eq!(out[0], vec![('a', vec![1, 3])]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + 'static,
        merge_value: impl Fn(C, V) -> C + 'static,
        merge_combiners: impl Fn(C, C) -> C + 'static,
    ) -> DStream<'s, (K, C)> {
        self.stream
            .combine_by_key_into(create, merge_value, merge_combiners, Some(self.partitions))
    }

    /// [`DStream::cogroup`] into these partitions (Spark's `cogroup(other, numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], |s| s.partitioned(2).cogroup(&s.map(|(k, v)| (k, v * 10))).glom())?;
    /// assert_eq!(out[0].len(), 2);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn cogroup<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (Vec<V>, Vec<W>))> {
        self.stream.cogroup_into(other, Some(self.partitions))
    }

    /// [`DStream::join`] into these partitions (Spark's `join(other, numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], |s| s.partitioned(1).join(&s.map(|(k, v)| (k, v * 10))))?;
    /// assert_eq!(out[0], vec![('a', (1, 10))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn join<W: Data>(&self, other: &DStream<'s, (K, W)>) -> DStream<'s, (K, (V, W))> {
        self.stream.join_into(other, Some(self.partitions))
    }

    /// [`DStream::left_outer_join`] into these partitions (Spark's `leftOuterJoin(other,
    /// numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], |s| s.partitioned(1).left_outer_join(&s.filter(|_| false)))?;
    /// assert_eq!(out[0], vec![('a', (1, None))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn left_outer_join<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (V, Option<W>))> {
        self.stream
            .left_outer_join_into(other, Some(self.partitions))
    }

    /// [`DStream::right_outer_join`] into these partitions (Spark's `rightOuterJoin(other,
    /// numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], |s| s.filter(|_| false).partitioned(1).right_outer_join(&s))?;
    /// assert_eq!(out[0], vec![('a', (None, 1))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn right_outer_join<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (Option<V>, W))> {
        self.stream
            .right_outer_join_into(other, Some(self.partitions))
    }

    /// [`DStream::full_outer_join`] into these partitions (Spark's `fullOuterJoin(other,
    /// numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], |s| s.partitioned(1).full_outer_join(&s.filter(|_| false)))?;
    /// assert_eq!(out[0], vec![('a', (Some(1), None::<u64>))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (Option<V>, Option<W>))> {
        self.stream
            .full_outer_join_into(other, Some(self.partitions))
    }

    /// [`DStream::reduce_by_key_and_window`] into these partitions (Spark's
    /// `reduceByKeyAndWindow(func, windowDuration, slideDuration, numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s1 = Duration::from_secs(1);
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 1)]], move |s| s.partitioned(1).reduce_by_key_and_window(|a, b| a + b, s1, s1).snapshots().glom())?;
    /// assert_eq!(out[0].len(), 1);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + 'static,
        length: Duration,
        slide: Duration,
    ) -> Stateful<'s, (K, V)>
    where
        K: differential_dataflow::Data,
        V: differential_dataflow::Data,
    {
        self.stream
            .reduce_by_key_and_window_into(f, length, slide, Some(self.partitions))
    }

    /// [`DStream::reduce_by_key_and_window_inv`] into these partitions (Spark's
    /// `reduceByKeyAndWindow(func, invFunc, windowDuration, slideDuration, numPartitions,
    /// filterFunc)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s1 = Duration::from_secs(1);
    /// let keep = None::<fn(&(char, i64)) -> bool>;
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1i64), ('b', 1)]], move |s| s.partitioned(1).reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, s1, s1, keep).snapshots().glom())?;
    /// assert_eq!(out[0].len(), 1);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + 'static,
        inv: impl Fn(V, V) -> V + 'static,
        length: Duration,
        slide: Duration,
        filter: Option<impl Fn(&(K, V)) -> bool + 'static>,
    ) -> Stateful<'s, (K, V)>
    where
        V: PartialEq,
    {
        self.stream.reduce_by_key_and_window_inv_into(
            f,
            inv,
            length,
            slide,
            Some(self.partitions),
            filter,
        )
    }

    /// [`DStream::group_by_key_and_window`] into these partitions (Spark's
    /// `groupByKeyAndWindow(windowDuration, slideDuration, numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s1 = Duration::from_secs(1);
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], move |s| s.partitioned(2).group_by_key_and_window(s1, s1).glom())?;
    /// assert_eq!(out[0].len(), 2);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn group_by_key_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> DStream<'s, (K, Vec<V>)> {
        self.stream
            .window(length, slide)
            .group_by_key_into(Some(self.partitions))
    }

    /// [`DStream::update_state_by_key`] with the state kept in these partitions (Spark's
    /// `updateStateByKey(updateFunc, numPartitions)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2)]], |s| s.partitioned(1).update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(new.iter().sum::<u64>() + old.unwrap_or(0))).snapshots().glom())?;
    /// assert_eq!(out[0].len(), 1);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn update_state_by_key<S: Data + PartialEq>(
        &self,
        f: impl Fn(Vec<V>, Option<S>) -> Option<S> + 'static,
    ) -> Stateful<'s, (K, S)> {
        self.update_state_by_key_with(UpdateState::new(f))
    }

    /// [`DStream::update_state_by_key_with`] with the state kept in these partitions.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::state::UpdateState;
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2)]], |s| {
    ///     let sum = UpdateState::new(|new: Vec<u64>, old: Option<u64>| Some(new.iter().sum::<u64>() + old.unwrap_or(0)));
    ///     s.partitioned(1).update_state_by_key_with(sum).snapshots().glom()
    /// })?;
    /// assert_eq!(out[0].len(), 1);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn update_state_by_key_with<S: Data + PartialEq>(
        &self,
        mut spec: UpdateState<K, V, S>,
    ) -> Stateful<'s, (K, S)> {
        spec.partitions = Some(self.partitions);
        self.stream.update_state_by_key_with(spec)
    }

    /// [`DStream::map_with_state`] with the state kept in these partitions (Spark's
    /// `StateSpec.numPartitions(n)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::state::{State, StateSpec};
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('b', 2)]], |s| {
    ///     let spec = StateSpec::simple(|_k: &char, v: Option<u64>, state: &mut State<u64>| {
    ///         let n = state.get().copied().unwrap_or(0) + v.unwrap_or(0);
    ///         state.update(n);
    ///         n
    ///     });
    ///     s.partitioned(1).map_with_state(spec).state_snapshots().glom()
    /// })?;
    /// assert_eq!(out[0].len(), 1);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn map_with_state<S: Data + PartialEq, U: Data>(
        &self,
        mut spec: StateSpec<K, V, S, U>,
    ) -> MapWithState<'s, U, K, S> {
        spec.partitions = Some(self.partitions);
        self.stream.map_with_state(spec)
    }
}
