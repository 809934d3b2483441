//! Stateless operators: each batch `t` of the output depends on batch `t` of the input alone.
//!
//! `map`, `flat_map` and `filter` run chunk by chunk where the records are and keep their
//! partitions. `map_partitions`, `glom` and `transform` see one partition of a batch at once;
//! `transform_whole` sees the whole batch on one worker. `repartition(n)` makes exactly `n`
//! partitions as Spark deals them; `union` concatenates the branches' partitions.

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::{Concat, Concatenate};
use timely::dataflow::operators::generic::Operator;

use super::batch_op::batch_fold;
use super::partition::{
    Part, PartitionId, SparkRoundRobin, collect_shards, gather, into_shards, map_parts,
    per_partition, relabel,
};
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
        let name = self.ctx.name("Map");
        self.derive(map_parts(self.stream.clone(), &name, move |records| {
            records.into_iter().map(&f).collect()
        }))
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
        let name = self.ctx.name("FlatMap");
        // Items per record of the chunk before: a chunk's output is allocated once, at about
        // its size (a tenth more), instead of grown by doubling and copying.
        let mut per_record = 1.0f64;
        self.derive(map_parts(self.stream.clone(), &name, move |records| {
            let n = records.len();
            let mut out = Vec::with_capacity((n as f64 * per_record * 1.1) as usize);
            for record in records {
                out.extend(f(record));
            }
            if n > 0 {
                per_record = out.len() as f64 / n as f64;
            }
            out
        }))
    }

    /// Applies `f` to every record: `Ok` values go on, `Err` ones are set aside in `dead`
    /// (counted, logged, and written to its file once, also when the record is read again
    /// after a crash; see [`DeadLetters`](crate::source::DeadLetters)). Give each `Malformed`
    /// the record's position in its source (Kafka's partition and offset), or leave it empty
    /// for `batch <ms> partition <p> record <i>`. The parse step of an ETL job.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::source::{DeadLetters, Malformed};
    /// let dead = DeadLetters::counting();
    /// let set_aside = dead.clone();
    /// let out = sluice::testing::collect_batches(vec![vec!["1".to_owned(), "x".to_owned()]], move |s| {
    ///     s.try_map(&set_aside, |v: String| v.parse::<u64>().map_err(|e| Malformed {
    ///         source: "test".into(), position: String::new(), reason: e.to_string(), bytes: v.into_bytes() }))
    /// })?;
    /// assert_eq!((out, dead.count()), (vec![vec![1]], 1));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn try_map<U: Data>(
        &self,
        dead: &crate::dead_letter::DeadLetters,
        f: impl Fn(T) -> Result<U, crate::dead_letter::Malformed> + 'static,
    ) -> DStream<'s, U> {
        let name = self.ctx.name("TryMap");
        let dead = dead.clone();
        let runtime = self.ctx.runtime.clone();
        let stream = per_partition(
            self.stream.clone(),
            self.ticks.clone(),
            &name,
            move |t, id, records| {
                let mut bad = Vec::new();
                let good = records
                    .into_iter()
                    .filter_map(|r| f(r).map_err(|m| bad.push(m)).ok())
                    .collect();
                // Set aside durably, or the batch fails (replayed on restart): never dropped.
                let give_up = std::time::Instant::now() + crate::dead_letter::GIVE_UP;
                let stop = || runtime.stopping() || std::time::Instant::now() >= give_up;
                if let Err(e) = dead.write_batch(t, id, bad, &stop) {
                    runtime.fail(e);
                }
                good
            },
        );
        self.derive(stream)
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
        let name = self.ctx.name("Filter");
        self.derive(map_parts(self.stream.clone(), &name, move |mut records| {
            records.retain(&p);
            records
        }))
    }

    /// Batch `t` of the result holds batch `t` of both streams (Spark's `union`): this stream's
    /// partitions, then the other's.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2]], |s| s.union(&s.map(|x| x * 10)))?;
    /// assert_eq!(out, vec![vec![1, 2, 10, 20]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn union(&self, other: &DStream<'s, T>) -> DStream<'s, T> {
        union_all(&[self.clone(), other.clone()]).unwrap_or_else(|| self.clone())
    }

    /// Exactly `partitions` partitions (Spark's `repartition`): each input partition deals its
    /// records round robin over them from the same starting point as Spark, so every output
    /// partition holds the records Spark's would (input partitions in order). Use it after a
    /// receiver, or to spread a small number of source partitions over more workers.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3]], |s| s.repartition(4).glom())?;
    /// assert_eq!(out[0].len(), 4); // four partitions, one of them empty
    /// assert_eq!(out[0].concat().len(), 3);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn repartition(&self, partitions: usize) -> DStream<'s, T> {
        let n = partitions.max(1);
        let name = self.ctx.name("Repartition");
        // Whole input partitions first: Spark deals each one from a starting position of its
        // own, over all its records in order.
        let whole = per_partition(
            self.stream.clone(),
            self.ticks.clone(),
            &format!("{name}Input"),
            |_t, _id, records| records,
        );
        let shards = whole.unary(Pipeline, &format!("{name}Deal"), move |_, _| {
            move |input, output| {
                input.for_each(|cap, chunks| {
                    let mut session = output.session(&cap);
                    for part in chunks.drain(..) {
                        let mut deal = SparkRoundRobin::new(part.id.index() as u32, n);
                        session.give_iterator(into_shards(part, n, |_| deal.next_partition()));
                    }
                });
            }
        });
        self.derive(collect_shards(
            shards,
            self.ticks.clone(),
            n,
            &name,
            |_t, partitions, out| {
                out.extend(
                    partitions
                        .into_iter()
                        .map(|(q, records)| Part::new(PartitionId::new(q), records)),
                )
            },
        ))
    }

    /// `f` gets each partition of a batch at once (Spark's `mapPartitions`); it is called for
    /// every partition of every batch, with an empty vector for an empty partition.
    ///
    /// # Examples
    ///
    /// ```
    /// // Spark's BasicOperationsSuite: 1 to 4 in two partitions gives sums 3 and 7.
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3, 4]], |s| s.map_partitions(|records| Some(records.iter().sum::<u64>())))?;
    /// assert_eq!(out, vec![vec![3, 7]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn map_partitions<U: Data, I>(&self, f: impl Fn(Vec<T>) -> I + 'static) -> DStream<'s, U>
    where
        I: IntoIterator<Item = U>,
    {
        self.transform(move |_t, records| f(records))
    }

    /// Each partition of a batch as one vector (Spark's `glom`).
    ///
    /// # Examples
    ///
    /// ```
    /// // The helpers slice a batch into two partitions, as Spark's test streams do.
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3, 4]], |s| s.glom())?;
    /// assert_eq!(out, vec![vec![vec![1, 2], vec![3, 4]]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn glom(&self) -> DStream<'s, Vec<T>> {
        self.transform(|_t, records| Some(records))
    }

    /// `f(time, records)` on each partition of batch `time` (Spark's `transform`, run per
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
        let stream = per_partition(
            self.stream.clone(),
            self.ticks.clone(),
            &name,
            move |t, _id, records| f(Time::from_millis(t), records).into_iter().collect(),
        );
        self.derive(stream)
    }

    /// `f(time, records)` on the whole of batch `time` (its partitions concatenated in order),
    /// gathered on worker 0: Spark's `transform` for functions that need every record (sort,
    /// top-N). Costs one worker's time; the result is one partition.
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
        let stream = gather(
            self.stream.clone(),
            self.ticks.clone(),
            &name,
            move |t, records, out| {
                let result = f(Time::from_millis(t), records).into_iter().collect();
                out.push(Part::new(PartitionId::new(0), result));
            },
        );
        self.derive(stream)
    }

    /// `f(time, mine, theirs)` on each partition of batch `time` of both streams, partition
    /// `p` of one with partition `p` of the other (Spark's `transformWith`, per partition).
    /// Co-partition keyed streams first with [`partition_by_key`](DStream::partition_by_key)
    /// when `f` matches records by key.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3]], |s| {
    ///     let odd = s.filter(|x| x % 2 == 1);
    ///     s.transform_with(&odd, |_time, all: Vec<u64>, odd: Vec<u64>| Some((all.len(), odd.len())))
    /// })?;
    /// assert_eq!(out, vec![vec![(1, 1), (2, 1)]]); // partitions [1] and [2, 3], as Spark slices
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
        let stream = batch_fold(
            self.tagged_with(other),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &name,
            Vec::new,
            |acc: &mut Vec<Part<Either<T, U>>>, data: &mut Vec<Part<Either<T, U>>>| {
                acc.append(data)
            },
            move |t, chunks, out| {
                for (id, records) in super::partition::by_partition(chunks) {
                    let (a, b) = split_either(records);
                    let result = f(Time::from_millis(t), a, b).into_iter().collect();
                    out.push(Part::new(id, result));
                }
            },
        );
        self.derive(stream)
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
        let stream = gather(
            self.tagged_with(other),
            self.ticks.clone(),
            &name,
            move |t, records, out| {
                let (a, b) = split_either(records);
                let result = f(Time::from_millis(t), a, b).into_iter().collect();
                out.push(Part::new(PartitionId::new(0), result));
            },
        );
        self.derive(stream)
    }

    /// Both streams in one, records tagged with their side, partitions kept.
    pub(crate) fn tagged_with<U: Data>(
        &self,
        other: &DStream<'s, U>,
    ) -> super::partition::Parts<'s, Either<T, U>> {
        let left = map_parts(self.stream.clone(), "Left", |r: Vec<T>| {
            r.into_iter().map(Either::Left).collect()
        });
        let right = map_parts(other.stream.clone(), "Right", |r: Vec<U>| {
            r.into_iter().map(Either::Right).collect()
        });
        left.concat(right)
    }
}

/// The two sides of tagged records, each in order.
fn split_either<A, B>(records: Vec<Either<A, B>>) -> (Vec<A>, Vec<B>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for x in records {
        match x {
            Either::Left(x) => a.push(x),
            Either::Right(x) => b.push(x),
        }
    }
    (a, b)
}

/// Unions many DStreams of one job at once (Spark's `StreamingContext.union`): the partitions
/// of the first stream, then the second's, and so on.
pub(crate) fn union_all<'s, T: Data>(streams: &[DStream<'s, T>]) -> Option<DStream<'s, T>> {
    let first = streams.first()?;
    let scope = first.stream.scope();
    let branches = streams.iter().enumerate().map(|(i, s)| {
        relabel(s.stream.clone(), "UnionBranch", move |id| {
            id.under(i as u32)
        })
    });
    let merged = scope.concatenate(branches.collect::<Vec<_>>());
    Some(first.derive(merged))
}
