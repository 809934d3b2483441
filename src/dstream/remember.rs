//! `transform_remembered`: a whole-batch function that looks back (Spark's `ssc.remember(d)`
//! with `dstream.slice(from, to)` inside `foreachRDD`/`transform`).
//!
//! Spark keeps each DStream's RDDs for its remember duration so that a job can reach back to
//! earlier batches; nothing else is kept, because a Spark RDD can be recomputed from its
//! lineage. sluice recomputes nothing, so keeping batches is explicit: the operator holds the
//! whole batches of the last `d` (on worker 0, partitions in order) and hands them to the
//! function with the current one. After a restart from a checkpoint, the batches replayed to
//! refill windows refill this history too (it registers `d` as a window).

use std::collections::VecDeque;
use std::time::Duration;

use super::partition::{Part, PartitionId, gather};
use super::{DStream, Data};
use crate::time::{Time, multiple_of_batch};

impl<'s, T: Data> DStream<'s, T> {
    /// `f(time, history)` once per batch on worker 0, where `history` is the whole batches of
    /// the last `remember` (a multiple of the batch interval), oldest first and batch `time`
    /// last; what `f` returns is the batch (one partition). Spark's `ssc.remember(d)` with
    /// `stream.slice(time - d, time)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// // Each batch with the one before it: how many records the last 2 s held.
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2], vec![3], vec![]], |s| {
    ///     s.transform_remembered(Duration::from_secs(2), |_time, history| {
    ///         Some(history.iter().map(|(_, records)| records.len()).sum::<usize>())
    ///     })
    /// })?;
    /// assert_eq!(out, vec![vec![2], vec![3], vec![1]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn transform_remembered<U: Data, I>(
        &self,
        remember: Duration,
        mut f: impl FnMut(Time, &[(Time, Vec<T>)]) -> I + 'static,
    ) -> DStream<'s, U>
    where
        I: IntoIterator<Item = U>,
    {
        let keep = match multiple_of_batch("remember duration", remember, self.ctx.info.batch_ms) {
            Ok(ms) => ms,
            Err(e) => {
                self.ctx.fail_build(e);
                self.ctx.info.batch_ms
            }
        };
        self.ctx.runtime.register_window(keep);
        let mut history: VecDeque<(Time, Vec<T>)> = VecDeque::new();
        let stream = gather(
            self.stream.clone(),
            self.ticks.clone(),
            &self.ctx.name("TransformRemembered"),
            move |t, records, out| {
                history.push_back((Time::from_millis(t), records));
                while history.front().is_some_and(|(b, _)| b.millis() + keep <= t) {
                    history.pop_front();
                }
                let result = f(Time::from_millis(t), history.make_contiguous())
                    .into_iter()
                    .collect();
                out.push(Part::new(PartitionId::new(0), result));
            },
        );
        self.derive(stream)
    }
}
