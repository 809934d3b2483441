//! Per-batch aggregates of a whole stream: `count`, `reduce`, `count_by_value`.
//!
//! Each partition is folded where it runs, then worker 0 combines the partial results in
//! partition order (two stages, as Spark's tasks and driver). `count` yields one record per
//! batch, `0` for an empty batch, in Spark's partitions: Spark counts with a `reduceByKey`
//! into the default parallelism, so the count is partition 0 of that many (the others empty);
//! `reduce` yields nothing for an empty batch, in one partition. Both are on worker 0.

use timely::dataflow::channels::pact::Pipeline;

use super::batch_op::batch_fold;
use super::partition::{Part, PartitionId, gather, map_parts};
use super::{DStream, Data, Key};

impl<'s, T: Data> DStream<'s, T> {
    /// The number of records of each batch; `0` for a batch without records (Spark's `count`),
    /// in partition 0 of as many as the job's default parallelism, the others empty (Spark's
    /// `count` is a `reduceByKey` of one key: `glom` shows `[[n], []]` with parallelism 2).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec!['a', 'b'], vec![]], |s| s.count())?;
    /// assert_eq!(out, vec![vec![2], vec![0]]); // 0 for an empty batch, as Spark
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn count(&self) -> DStream<'s, u64> {
        let partitions = self.ctx.info.parallelism.max(1) as u32;
        let local = map_parts(
            self.stream.clone(),
            &self.ctx.name("CountLocal"),
            |records: Vec<T>| vec![records.len() as u64],
        );
        let total = gather(
            local,
            self.ticks.clone(),
            &self.ctx.name("CountTotal"),
            move |_t, counts, out| {
                out.push(Part::new(PartitionId::new(0), vec![counts.iter().sum()]));
                out.extend((1..partitions).map(|i| Part::new(PartitionId::new(i), Vec::new())));
            },
        );
        self.derive(total)
    }

    /// Reduces each batch to one record with `f` (Spark's `reduce`); nothing for an empty
    /// batch. `f` must be associative and commutative, as in Spark.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3], vec![]], |s| s.reduce(|a, b| a + b))?;
    /// assert_eq!(out, vec![vec![6], vec![]]); // nothing for an empty batch, as Spark
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + 'static) -> DStream<'s, T> {
        let f = std::rc::Rc::new(f);
        let fold = |f: std::rc::Rc<dyn Fn(T, T) -> T>| {
            move |records: Vec<T>| -> Option<T> { records.into_iter().reduce(|a, b| f(a, b)) }
        };
        // Each partition's records in order, over all of its chunks.
        let local_fold = fold(f.clone());
        let local = batch_fold(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("ReduceLocal"),
            Vec::new,
            |acc: &mut Vec<Part<T>>, data: &mut Vec<Part<T>>| acc.append(data),
            move |_t, chunks, out| {
                for (id, records) in super::partition::by_partition(chunks) {
                    out.push(Part::new(id, local_fold(records).into_iter().collect()));
                }
            },
        );
        let total_fold = fold(f);
        let total = gather(
            local,
            self.ticks.clone(),
            &self.ctx.name("ReduceTotal"),
            move |_t, partials, out| {
                out.push(Part::new(
                    PartitionId::new(0),
                    total_fold(partials).into_iter().collect(),
                ))
            },
        );
        self.derive(total)
    }

    /// How often each distinct record occurs in each batch (Spark's `countByValue`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = sluice::testing::collect_batches(vec![vec!['a', 'b', 'a']], |s| s.count_by_value())?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', 2), ('b', 1)]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn count_by_value(&self) -> DStream<'s, (T, u64)>
    where
        T: Key,
    {
        self.map(|x| (x, 1u64)).reduce_by_key(|a, b| a + b)
    }
}
