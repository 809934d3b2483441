//! Output operations: what makes a job run (Spark's `print`, `foreachRDD`, `saveAsTextFiles`).
//!
//! Every output runs for batch `t` once `t` is complete upstream of it, exactly once per batch,
//! in batch order, also for batches without records. Outputs are followed by the job's probe:
//! a batch counts as done (listeners, offsets) only after every output has finished it.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::Probe;
use timely::dataflow::operators::generic::Operator;

use super::batch_op::batch_fold;
use super::partition::{Part, PartitionId, by_partition, gather};
use super::render::SparkDisplay;
use super::{DStream, Data};
use crate::time::Time;

/// The dashes Spark prints around a batch header.
const DASHES: &str = "-------------------------------------------";

/// Formats one batch as Spark's `print(n)` does: dashes, `Time: <ms> ms`, dashes, the first `n`
/// records, `...` if there are more, then an empty line.
///
/// # Examples
///
/// ```
/// let text = sluice::dstream::output::format_print(sluice::Time::from_millis(2000), &[("a", 1), ("b", 2)], 1);
/// assert_eq!(text, "-------------------------------------------\nTime: 2000 ms\n-------------------------------------------\n(a,1)\n...\n\n");
/// ```
pub fn format_print<T: SparkDisplay>(time: Time, records: &[T], n: usize) -> String {
    let mut s = format!("{DASHES}\nTime: {time}\n{DASHES}\n");
    for r in records.iter().take(n) {
        r.write_spark(&mut s);
        s.push('\n');
    }
    if records.len() > n {
        s.push_str("...\n");
    }
    s.push('\n');
    s
}

/// One partition of a batch, as [`DStream::foreach_partition`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The batch.
    pub time: Time,
    /// The partition.
    pub id: PartitionId,
    /// The worker that runs it.
    pub worker: usize,
    /// All workers.
    pub peers: usize,
}

/// Batches collected by [`DStream::collect_into`], shared between the job and the caller.
///
/// # Examples
///
/// ```
/// let out = sluice::CollectedBatches::<u64>::new();
/// assert!(out.batches().is_empty());
/// ```
#[derive(Debug)]
pub struct CollectedBatches<T> {
    inner: Arc<Mutex<BTreeMap<u64, Vec<T>>>>,
}

impl<T> Clone for CollectedBatches<T> {
    fn clone(&self) -> Self {
        CollectedBatches {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Default for CollectedBatches<T> {
    fn default() -> Self {
        CollectedBatches {
            inner: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }
}

impl<T: Clone> CollectedBatches<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every batch seen, in batch order, with its records (empty batches included).
    pub fn batches(&self) -> Vec<(Time, Vec<T>)> {
        self.lock()
            .iter()
            .map(|(t, v)| (Time::from_millis(*t), v.clone()))
            .collect()
    }
    /// The records of the batch at `ms` (empty if the batch had none or was not seen).
    pub fn batch_ms(&self, ms: u64) -> Vec<T> {
        self.lock().get(&ms).cloned().unwrap_or_default()
    }
    /// The records of every batch, in batch order, without the times.
    pub fn values(&self) -> Vec<Vec<T>> {
        self.lock().values().cloned().collect()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<T>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn insert(&self, t: u64, records: Vec<T>) {
        self.lock().entry(t).or_default().extend(records);
    }
}

impl<'s, T: Data> DStream<'s, T> {
    /// This stream as an output sees it: without the batches a restarted job replays only to
    /// rebuild its state (their outputs ran before the restart).
    pub(crate) fn for_output(&self) -> DStream<'s, T> {
        let Some(silent) = self.ctx.runtime.silent_through() else {
            return self.clone();
        };
        fn after<'s, D: Clone + 'static>(
            s: &StreamVec<'s, u64, D>,
            silent: u64,
        ) -> StreamVec<'s, u64, D> {
            s.clone().unary(Pipeline, "AfterReplay", move |_, _| {
                move |input, output| {
                    input.for_each(|cap, data| {
                        if cap.least().is_some_and(|t| *t > silent) {
                            output.session(&cap).give_container(data);
                        }
                    });
                }
            })
        }
        DStream {
            stream: after(&self.stream, silent),
            ticks: after(&self.ticks, silent),
            ctx: std::rc::Rc::clone(&self.ctx),
        }
    }

    /// Registers an output operation (`name`, as Spark names them: `print`, `foreachRDD`…)
    /// whose `done` stream's frontier passes a batch when the output has finished it: the job's
    /// probe waits for it, and the moment it finishes each batch on this worker is reported
    /// for the batch metrics (Spark's output operation durations).
    pub(crate) fn register_output(&self, name: &str, done: StreamVec<'s, u64, ()>) {
        let id = self.ctx.outputs.get();
        self.ctx.outputs.set(id + 1);
        let runtime = self.ctx.runtime.clone();
        let name = name.to_owned();
        let _ = self
            .ticks
            .clone()
            .binary_frontier::<Vec<()>, timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
                done.clone(),
                Pipeline,
                Pipeline,
                &self.ctx.name("OutputDone"),
                move |_cap, _info| {
                    let mut pending = std::collections::BTreeSet::new();
                    move |(ticks, _), (finished, done_frontier), _output| {
                        ticks.for_each(|_, times| pending.extend(times.drain(..)));
                        finished.for_each(|_, _| {});
                        while let Some(&t) = pending.first() {
                            if done_frontier.less_equal(&t) {
                                break;
                            }
                            pending.pop_first();
                            runtime.report_output(t, id, &name);
                        }
                    }
                },
            );
        let _ = done.probe_with(&self.ctx.probe);
    }

    /// Prints the first `n` records of every batch to standard output in Spark's format (see
    /// [`format_print`]), once per batch for the whole stream (from worker 0), also for empty
    /// batches.
    ///
    /// # Examples
    ///
    /// ```
    /// // Prints Spark's block for every batch: dashes, `Time: 1000 ms`, dashes, up to 10 records.
    /// sluice::testing::run_batches(vec![vec![1u64, 2]], |s| s.print(10))?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn print(&self, n: usize)
    where
        T: SparkDisplay,
    {
        self.print_to(n, Arc::new(Mutex::new(std::io::stdout())));
    }

    /// [`print`](DStream::print) to any writer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let out = Arc::new(Mutex::new(Vec::<u8>::new()));
    /// let o = Arc::clone(&out);
    /// sluice::testing::run_batches(vec![vec![1u64, 2, 3]], move |s| s.print_to(2, Arc::clone(&o)))?;
    /// let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    /// assert!(text.contains("Time: 1000 ms") && text.contains("1\n2\n...\n"));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn print_to<W: Write + Send + 'static>(&self, n: usize, out: Arc<Mutex<W>>)
    where
        T: SparkDisplay,
    {
        // Each worker sends at most n + 1 records of a batch (enough to know whether to print
        // `...`), then worker 0 prints.
        let keep = n.saturating_add(1);
        let this = self.for_output();
        // Each partition's first n + 1 records (its chunks come in order).
        let firsts = batch_fold(
            this.stream.clone(),
            this.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("PrintTake"),
            BTreeMap::<PartitionId, Vec<T>>::new,
            move |acc, data: &mut Vec<Part<T>>| {
                for part in data.drain(..) {
                    let taken = acc.entry(part.id).or_default();
                    let room = keep.saturating_sub(taken.len());
                    taken.extend(part.records.into_iter().take(room));
                }
            },
            |_t, acc, out| out.extend(acc.into_iter().map(|(id, r)| Part::new(id, r))),
        );
        let printed = gather(
            firsts,
            this.ticks.clone(),
            &self.ctx.name("Print"),
            move |t, acc, _out: &mut Vec<()>| {
                let text = format_print(Time::from_millis(t), &acc, n);
                let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = w.write_all(text.as_bytes()).and_then(|_| w.flush()) {
                    tracing::warn!("print: cannot write batch {t} ms: {e}");
                }
            },
        );
        self.register_output("print", printed);
    }

    /// Calls `f(time, records)` with the whole of every batch — its partitions concatenated in
    /// order, each in its order, the same on any number of workers — on worker 0, once per
    /// batch and in batch order, also for empty batches (Spark's `foreachRDD` with a
    /// `collect`). For output that scales with the workers use
    /// [`foreach_partition`](DStream::foreach_partition).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s2 = Arc::clone(&seen);
    /// sluice::testing::run_batches(vec![vec![1u64, 2], vec![]], move |s| {
    ///     let seen = Arc::clone(&s2);
    ///     s.foreach_batch(move |time, records| seen.lock().unwrap().push((time.millis(), records)));
    /// })?;
    /// assert_eq!(*seen.lock().unwrap(), vec![(1000, vec![1, 2]), (2000, vec![])]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn foreach_batch(&self, f: impl FnMut(Time, Vec<T>) + 'static) {
        let f = std::cell::RefCell::new(f);
        let this = self.for_output();
        let done = gather(
            this.stream,
            this.ticks,
            &self.ctx.name("ForeachBatch"),
            move |t, records, _out: &mut Vec<()>| (f.borrow_mut())(Time::from_millis(t), records),
        );
        self.register_output("foreachRDD", done);
    }

    /// Calls `f(partition, records)` for every partition of every batch, on the worker that
    /// runs it, also for an empty partition (Spark's `foreachRDD { _.foreachPartition(..) }`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let written = Arc::new(Mutex::new(Vec::new()));
    /// let w = Arc::clone(&written);
    /// sluice::testing::run_batches(vec![vec![1u64, 2, 3]], move |s| {
    ///     let w = Arc::clone(&w);
    ///     // One connection per partition would be opened here (course §4.3.1).
    ///     s.foreach_partition(move |partition, records| w.lock().unwrap().push((partition.id.index(), records.len())));
    /// })?;
    /// assert_eq!(*written.lock().unwrap(), vec![(0, 1), (1, 2)]); // two partitions
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn foreach_partition(&self, f: impl FnMut(Partition, Vec<T>) + 'static) {
        let f = std::cell::RefCell::new(f);
        let info = self.ctx.info;
        self.foreach_chunks(
            &self.ctx.name("ForeachPartition"),
            "foreachPartition",
            move |t, chunks| {
                for (id, records) in by_partition(chunks) {
                    let p = Partition {
                        time: Time::from_millis(t),
                        id,
                        worker: info.index,
                        peers: info.peers,
                    };
                    (f.borrow_mut())(p, records)
                }
            },
        );
    }

    /// Every worker's chunks of every batch, once the batch is complete, as an output (`output`:
    /// its name as Spark names it).
    pub(crate) fn foreach_chunks(
        &self,
        name: &str,
        output: &str,
        mut f: impl FnMut(u64, Vec<Part<T>>) + 'static,
    ) {
        let this = self.for_output();
        let done = batch_fold(
            this.stream,
            this.ticks,
            Pipeline,
            Pipeline,
            name,
            Vec::new,
            |acc: &mut Vec<Part<T>>, data: &mut Vec<Part<T>>| acc.append(data),
            move |t, chunks, _out: &mut Vec<()>| f(t, chunks),
        );
        self.register_output(output, done);
    }

    /// Collects every batch into `into` (on worker 0 of process 0), in partition order: for
    /// tests and small jobs.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::CollectedBatches;
    /// let out = CollectedBatches::new();
    /// let o = out.clone();
    /// sluice::testing::run_batches(vec![vec![1u64, 2]], move |s| s.collect_into(&o))?;
    /// assert_eq!(out.batch_ms(1000), vec![1, 2]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn collect_into(&self, into: &CollectedBatches<T>) {
        let into = into.clone();
        self.foreach_batch(move |t, records| into.insert(t.millis(), records));
    }
}
