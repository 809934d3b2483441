//! Stateless operators: each batch `t` of the output depends on batch `t` of the input alone.
//!
//! `map`, `flat_map` and `filter` run record by record where the records are. `map_partitions`,
//! `glom` and `transform` see one worker's share of a batch at once (a Spark partition);
//! `transform_whole` sees the whole batch on one worker. `repartition` spreads records round
//! robin over the workers, `union` merges two streams batch by batch.

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::{Concat, Concatenate, Exchange as _};
use timely::dataflow::operators::vec::{Filter, Map};

use super::batch_op::{batch_collect, batch_fold};
use super::{DStream, Data};
use crate::time::Time;

/// Either of two record types, for operators with two inputs.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Either<A, B> {
    /// From the first stream.
    Left(A),
    /// From the second stream.
    Right(B),
}

impl<'s, T: Data> DStream<'s, T> {
    /// Spark's `cache()` / `persist()`: keeps each batch's records for every operator that uses
    /// this stream. In sluice that always holds — a stream used by several operators is computed
    /// once per batch and its records are handed to each of them (timely fans a stream out), and
    /// nothing is recomputed from lineage — so this returns the same stream; it exists so that
    /// Spark programs read the same.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![1u64, 2]], |s| {
    ///     let doubled = s.map(|x| x * 2).cache(); // computed once, used twice
    ///     doubled.union(&doubled.map(|x| x + 1))
    /// })?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![2, 3, 4, 5]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn cache(&self) -> DStream<'s, T> {
        self.clone()
    }

    /// Spark's `persist(level)`: the same as [`cache`](DStream::cache) here — records live in
    /// memory only for as long as the operators of their batch need them (windows and state
    /// keep what they need themselves), so there is no storage level to choose.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64]], |s| s.persist().count())?;
    /// assert_eq!(out, vec![vec![1]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn persist(&self) -> DStream<'s, T> {
        self.clone()
    }

    /// Applies `f` to every record (Spark's `map`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2]], |s| s.map(|x| x + 1))?;
    /// assert_eq!(out, vec![vec![2, 3]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + 'static) -> DStream<'s, U> {
        self.derive(self.stream.clone().map(f))
    }

    /// Applies `f` to every record and keeps every item it returns (Spark's `flatMap`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lines = vec![vec!["a b".to_owned(), "c".to_owned()]];
    /// let out = sluice::testing::collect_batches(lines, |s| {
    ///     s.flat_map(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
    /// })?;
    /// assert_eq!(out, vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn flat_map<U: Data, I>(&self, f: impl Fn(T) -> I + 'static) -> DStream<'s, U>
    where
        I: IntoIterator<Item = U>,
    {
        self.derive(self.stream.clone().flat_map(f))
    }

    /// Keeps the records for which `p` holds (Spark's `filter`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3, 4]], |s| s.filter(|x| x % 2 == 0))?;
    /// assert_eq!(out, vec![vec![2, 4]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn filter(&self, p: impl Fn(&T) -> bool + 'static) -> DStream<'s, T> {
        self.derive(self.stream.clone().filter(p))
    }

    /// Batch `t` of the result holds batch `t` of both streams (Spark's `union`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![1u64, 2]], |s| s.union(&s.map(|x| x * 10)))?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![1, 2, 10, 20]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn union(&self, other: &DStream<'s, T>) -> DStream<'s, T> {
        self.derive(self.stream.clone().concat(other.stream.clone()))
    }

    /// Spreads the records round robin over `min(partitions, workers)` workers (Spark's
    /// `repartition`; a worker is a partition here). Use it after a receiver, which reads on one
    /// worker, to share the work.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3]], |s| s.repartition(4))?;
    /// out[0].sort();
    /// assert_eq!(out, vec![vec![1, 2, 3]]); // the same records, spread over the workers
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn repartition(&self, partitions: usize) -> DStream<'s, T> {
        let targets = partitions.clamp(1, self.ctx.info.peers) as u64;
        let mut next = self.ctx.info.index as u64;
        let stream = self.stream.clone().exchange(move |_: &T| {
            next = next.wrapping_add(1);
            next % targets
        });
        self.derive(stream)
    }

    /// `f` gets each worker's share of a batch at once (Spark's `mapPartitions`); it is called
    /// for every batch, with an empty vector when the share is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3]], |s| s.map_partitions(|records| Some(records.iter().sum::<u64>())))?;
    /// assert_eq!(out, vec![vec![6]]); // one worker: one partition
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn map_partitions<U: Data, I>(&self, f: impl Fn(Vec<T>) -> I + 'static) -> DStream<'s, U>
    where
        I: IntoIterator<Item = U>,
    {
        self.transform(move |_t, records| f(records))
    }

    /// Each worker's share of a batch as one vector (Spark's `glom`; a worker is a partition).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3]], |s| s.glom())?;
    /// assert_eq!(out, vec![vec![vec![1, 2, 3]]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn glom(&self) -> DStream<'s, Vec<T>> {
        self.transform(|_t, records| Some(records))
    }

    /// `f(time, records)` on each worker's share of batch `time` (Spark's `transform`, run per
    /// partition). This equals Spark's whole-RDD `transform` for functions that work record by
    /// record or per key on a key-partitioned stream: `map`, `filter`, joins against a table
    /// every worker holds (the blacklist filter), per-key work after
    /// [`partition_by_key`](DStream::partition_by_key). For functions of the whole batch
    /// (sorting, top-N, distinct over all records) use [`transform_whole`](DStream::transform_whole).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sluice::{StreamingConfig, StreamingContext, CollectedBatches, source::BatchQueue};
    /// use std::collections::HashMap;
    /// use sluice::table::PairBatchExt;
    /// let blacklist: HashMap<String, bool> = [("27.19.74.143".to_owned(), true)].into();
    /// let queue = BatchQueue::from_batches(vec![vec![
    ///     ("27.19.74.143".to_owned(), "GET /a".to_owned()),
    ///     ("110.52.250.1".to_owned(), "GET /b".to_owned()),
    /// ]]);
    /// let out = CollectedBatches::new();
    /// # let config = StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).first_batch_ms(1000).max_batches(1);
    /// let (q, o) = (queue.clone(), out.clone());
    /// StreamingContext::new(config).run(move |job| {
    ///     let blacklist = blacklist.clone();
    ///     job.queue_stream(&q)
    ///         .transform(move |_time, batch| {
    ///             batch.left_outer_join(&blacklist).into_iter()
    ///                 .filter(|(_, (_, hit))| hit.is_none())
    ///                 .map(|(ip, (rest, _))| (ip, rest))
    ///         })
    ///         .collect_into(&o);
    /// })?;
    /// assert_eq!(out.batch_ms(1000), vec![("110.52.250.1".to_owned(), "GET /b".to_owned())]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// // The course's blacklist filter: drop records whose key is listed.
    /// let out = sluice::testing::collect_batches(vec![vec![('t', 1u64), ('l', 2)]], |s| {
    ///     s.transform(|_time, records: Vec<(char, u64)>| records.into_iter().filter(|(name, _)| *name != 't'))
    /// })?;
    /// assert_eq!(out, vec![vec![('l', 2)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn transform<U: Data, I>(&self, f: impl Fn(Time, Vec<T>) -> I + 'static) -> DStream<'s, U>
    where
        I: IntoIterator<Item = U>,
    {
        let name = self.ctx.name("Transform");
        let stream = batch_collect(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &name,
            move |t, acc, out| out.extend(f(Time::from_millis(t), acc)),
        );
        self.derive(stream)
    }

    /// `f(time, records)` on the whole of batch `time`, gathered on worker 0: Spark's
    /// `transform` for functions that need every record (sort, top-N). Costs one worker's time.
    ///
    /// # Examples
    ///
    /// ```
    /// // Top-2 of the whole batch.
    /// let out = sluice::testing::collect_batches(vec![vec![5u64, 1, 9, 7]], |s| {
    ///     s.transform_whole(|_time, mut records: Vec<u64>| { records.sort_unstable_by(|a, b| b.cmp(a)); records.truncate(2); records })
    /// })?;
    /// assert_eq!(out, vec![vec![9, 7]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn transform_whole<U: Data, I>(
        &self,
        f: impl Fn(Time, Vec<T>) -> I + 'static,
    ) -> DStream<'s, U>
    where
        I: IntoIterator<Item = U>,
    {
        let name = self.ctx.name("TransformWhole");
        let stream = batch_collect(
            self.stream.clone(),
            self.ticks.clone(),
            Exchange::new(|_: &T| 0),
            Exchange::new(|_: &u64| 0),
            &name,
            move |t, acc, out| out.extend(f(Time::from_millis(t), acc)),
        );
        self.derive(stream)
    }

    /// `f(time, mine, theirs)` on each worker's share of batch `time` of both streams (Spark's
    /// `transformWith`, per partition). Co-partition keyed streams first with
    /// [`partition_by_key`](DStream::partition_by_key) when `f` matches records by key.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3]], |s| {
    ///     let odd = s.filter(|x| x % 2 == 1);
    ///     s.transform_with(&odd, |_time, all: Vec<u64>, odd: Vec<u64>| Some((all.len(), odd.len())))
    /// })?;
    /// assert_eq!(out, vec![vec![(3, 2)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn transform_with<U: Data, V: Data, I>(
        &self,
        other: &DStream<'s, U>,
        f: impl Fn(Time, Vec<T>, Vec<U>) -> I + 'static,
    ) -> DStream<'s, V>
    where
        I: IntoIterator<Item = V>,
    {
        let name = self.ctx.name("TransformWith");
        self.fold_with(other, Pipeline, Pipeline, &name, f)
    }

    /// `f(time, mine, theirs)` on the *whole* of batch `time` of both streams, on one worker
    /// (Spark's `transformWith` with a function that needs whole RDDs, such as a join of the two
    /// batches). For large batches prefer the per-partition
    /// [`transform_with`](DStream::transform_with) on co-partitioned streams.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// // Join the batch's orders with the batch's customers, whatever worker read them.
    /// let input = vec![vec![(1u64, 'o'), (2, 'o'), (1, 'c')]];
    /// let mut out = sluice::testing::collect_batches(input, |s| {
    ///     let orders = s.filter(|(_, kind)| *kind == 'o');
    ///     let customers = s.filter(|(_, kind)| *kind == 'c');
    ///     orders.transform_with_whole(&customers, |_t, orders: Vec<(u64, char)>, customers: Vec<(u64, char)>| {
    ///         let known: HashMap<u64, char> = customers.into_iter().collect();
    ///         orders.into_iter().filter(|(id, _)| known.contains_key(id)).collect::<Vec<_>>()
    ///     })
    /// })?;
    /// assert_eq!(out, vec![vec![(1, 'o')]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn transform_with_whole<U: Data, V: Data, I>(
        &self,
        other: &DStream<'s, U>,
        f: impl Fn(Time, Vec<T>, Vec<U>) -> I + 'static,
    ) -> DStream<'s, V>
    where
        I: IntoIterator<Item = V>,
    {
        let name = self.ctx.name("TransformWithWhole");
        let (data, ticks) = (
            Exchange::new(|_: &Either<T, U>| 0),
            Exchange::new(|_: &u64| 0),
        );
        self.fold_with(other, data, ticks, &name, f)
    }

    /// Batch `t` of both streams, routed by `data_pact` (ticks by `tick_pact`), given to `f`:
    /// what `transform_with` (each worker's share) and `transform_with_whole` (all on one
    /// worker) share.
    fn fold_with<U: Data, V: Data, I, P, Q>(
        &self,
        other: &DStream<'s, U>,
        data_pact: P,
        tick_pact: Q,
        name: &str,
        f: impl Fn(Time, Vec<T>, Vec<U>) -> I + 'static,
    ) -> DStream<'s, V>
    where
        I: IntoIterator<Item = V>,
        P: timely::dataflow::channels::pact::ParallelizationContract<u64, Vec<Either<T, U>>>,
        Q: timely::dataflow::channels::pact::ParallelizationContract<u64, Vec<u64>>,
    {
        let both = self
            .stream
            .clone()
            .map(Either::Left)
            .concat(other.stream.clone().map(Either::Right));
        let stream = batch_fold(
            both,
            self.ticks.clone(),
            data_pact,
            tick_pact,
            name,
            || (Vec::new(), Vec::new()),
            |acc: &mut (Vec<T>, Vec<U>), data: &mut Vec<Either<T, U>>| {
                for x in data.drain(..) {
                    match x {
                        Either::Left(a) => acc.0.push(a),
                        Either::Right(b) => acc.1.push(b),
                    }
                }
            },
            move |t, (a, b), out| out.extend(f(Time::from_millis(t), a, b)),
        );
        self.derive(stream)
    }
}

/// Unions many DStreams of one job at once (Spark's `StreamingContext.union`).
pub(crate) fn union_all<'s, T: Data>(streams: &[DStream<'s, T>]) -> Option<DStream<'s, T>> {
    let first = streams.first()?;
    let scope = first.stream.scope();
    let merged = scope.concatenate(streams.iter().map(|s| s.stream.clone()));
    Some(first.derive(merged))
}
