//! Per-batch aggregates of a whole stream: `count`, `reduce`, `count_by_value`.
//!
//! Each worker first folds its share of the batch, then worker 0 combines the partial results
//! (two stages, as Spark's tree of tasks). `count` yields one record per batch, `0` for an empty
//! batch; `reduce` yields nothing for an empty batch; the result lives on worker 0.

use timely::dataflow::channels::pact::{Exchange, Pipeline};

use super::batch_op::batch_fold;
use super::{DStream, Data, Key};

impl<'s, T: Data> DStream<'s, T> {
    /// The number of records of each batch; `0` for a batch without records (Spark's `count`).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec!['a', 'b'], vec![]], |s| s.count())?;
    /// assert_eq!(out, vec![vec![2], vec![0]]); // 0 for an empty batch, as Spark
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn count(&self) -> DStream<'s, u64> {
        let local = batch_fold(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("CountLocal"),
            || 0u64,
            |n: &mut u64, data: &mut Vec<T>| {
                *n += data.len() as u64;
                data.clear();
            },
            |_t, n, out| {
                if n > 0 {
                    out.push(n)
                }
            },
        );
        let total = batch_fold(
            local,
            self.ticks.clone(),
            Exchange::new(|_: &u64| 0),
            Exchange::new(|_: &u64| 0),
            &self.ctx.name("CountTotal"),
            || 0u64,
            |n: &mut u64, data: &mut Vec<u64>| *n += data.drain(..).sum::<u64>(),
            |_t, n, out| out.push(n),
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
            move |acc: &mut Option<T>, data: &mut Vec<T>| {
                for x in data.drain(..) {
                    *acc = Some(match acc.take() {
                        Some(a) => f(a, x),
                        None => x,
                    });
                }
            }
        };
        let local = batch_fold(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("ReduceLocal"),
            || None,
            fold(f.clone()),
            |_t, acc, out| out.extend(acc),
        );
        let total = batch_fold(
            local,
            self.ticks.clone(),
            Exchange::new(|_: &T| 0),
            Exchange::new(|_: &u64| 0),
            &self.ctx.name("ReduceTotal"),
            || None,
            fold(f),
            |_t, acc, out| out.extend(acc),
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
