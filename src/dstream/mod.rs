//! `DStream<T>`: a stream of batches, with Spark Streaming's operators and per-batch semantics.
//!
//! A `DStream<'s, T>` at batch `t` is the multiset of records of Spark's RDD at `t`
//! (`ARCHITECTURE.md` §2). It wraps a timely stream whose timestamp is the batch time in ms
//! and whose items are chunks of records of one Spark partition each ([`partition`]): a batch
//! has Spark's partitions whatever the number of workers, and a whole batch is its partitions
//! concatenated in order.
//!
//! The operator families live one per file:
//! - [`partition`]: partition ids, chunks, and the shuffle every keyed operator uses;
//! - [`stateless`]: `map`, `flat_map`, `filter`, `union`, `repartition`, `map_partitions`,
//!   `glom`, `transform`, `transform_with`;
//! - [`aggregate`]: `count`, `reduce`, `count_by_value`;
//! - [`pair`]: per-batch keyed operators on `DStream<(K, V)>`;
//! - [`join`]: `cogroup` and the `join` family;
//! - [`partitioned`]: Spark's `numPartitions` on any of them, `stream.partitioned(n).op(...)`;
//! - [`output`]: `print`, `foreach_batch`, `foreach_partition`, `save_as_text_files`,
//!   `collect_into`;
//! - [`remember`]: `transform_remembered`, whole batches that look back (Spark's `remember`).
//!
//! Operators take `&self`, so a DStream can be used several times, as in Spark.

use std::cell::Cell;
use std::hash::Hash;
use std::rc::Rc;
use timely::dataflow::{ProbeHandle, StreamVec};

use partition::Parts;

use crate::runtime::Runtime;

pub mod aggregate;
pub(crate) mod batch_op;
pub mod collection;
pub mod join;
pub mod output;
pub mod pair;
pub mod partition;
pub mod partitioned;
pub(crate) mod place;
pub mod remember;
pub mod render;
pub mod state;
pub mod stateful;
pub mod stateless;
pub mod window;
mod window_inverse;

/// What a record type needs: it can be cloned and sent between workers and processes.
///
/// Derive `Clone, serde::Serialize, serde::Deserialize` on your own record types.
pub trait Data: timely::ExchangeData + Clone {}
impl<T: timely::ExchangeData + Clone> Data for T {}

/// What a key needs: [`Data`] that can be hashed and compared.
pub trait Key: Data + Hash + Eq {}
impl<T: Data + Hash + Eq> Key for T {}

pub use crate::runtime::WorkerInfo;

/// Per-worker state shared by every DStream of a job.
pub(crate) struct JobCtx {
    pub(crate) probe: ProbeHandle<u64>,
    pub(crate) outputs: Cell<usize>,
    pub(crate) info: WorkerInfo,
    pub(crate) runtime: Runtime,
    pub(crate) operator_count: Cell<usize>,
    /// The first error found while the dataflow was built (a bad window length, …).
    pub(crate) build_error: std::cell::RefCell<Option<crate::error::SluiceError>>,
    /// Names of this worker's stateful operators (checkpointed state is keyed by them).
    pub(crate) state_names: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl JobCtx {
    /// Records an error found while building; the job fails with it before its first batch.
    pub(crate) fn fail_build(&self, error: crate::error::SluiceError) {
        let mut slot = self.build_error.borrow_mut();
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// Registers a stateful operator's name (`given`: by the user, else from its position);
    /// two operators with one name fail the build. A checkpointed job is warned about a
    /// positional name: an operator added before it would orphan its checkpointed state.
    pub(crate) fn register_state(&self, name: &str, given: bool) {
        if !self.state_names.borrow_mut().insert(name.to_owned()) {
            self.fail_build(crate::error::SluiceError::InvalidConfig {
                problem: format!("two stateful operators are named `{name}`"),
                fix: "give each `update_state_by_key`/`map_with_state` its own `.name(..)`: checkpointed state is kept by name".into(),
            });
        }
        if !given && self.info.index == 0 && self.runtime.checkpointed() {
            tracing::warn!(
                "stateful operator `{name}` has no name of its own: its checkpointed state is kept under a name from its position, so an operator added before it orphans that state; give it `.name(\"…\")`"
            );
        }
        self.runtime.register_operator(name);
    }

    /// A unique operator name for timely's logs.
    pub(crate) fn name(&self, what: &str) -> String {
        let n = self.operator_count.get();
        self.operator_count.set(n + 1);
        format!("{what}#{n}")
    }
}

/// A discretized stream: one multiset of records per batch.
///
/// Build one from a [`Job`](crate::Job) (`socket_text_stream`, `queue_stream`, `generator`) and
/// transform it with Spark's operators. Nothing runs until the job has an output operation.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::{StreamingConfig, StreamingContext, CollectedBatches, source::BatchQueue};
///
/// let queue = BatchQueue::from_batches(vec![vec!["a b".to_owned(), "b".to_owned()], vec![]]);
/// let out = CollectedBatches::new();
/// let config = StreamingConfig::new(Duration::from_secs(1))?
///     .as_fast_as_possible(1).first_batch_ms(1000).max_batches(2);
/// let (q, o) = (queue.clone(), out.clone());
/// StreamingContext::new(config).run(move |job| {
///     job.queue_stream(&q)
///         .flat_map(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
///         .map(|w| (w, 1u64))
///         .reduce_by_key(|a, b| a + b)
///         .collect_into(&o);
/// })?;
/// let mut first = out.batch_ms(1000);
/// first.sort();
/// assert_eq!(first, vec![("a".to_owned(), 1), ("b".to_owned(), 2)]);
/// assert!(out.batch_ms(2000).is_empty());
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub struct DStream<'s, T> {
    pub(crate) stream: Parts<'s, T>,
    pub(crate) ticks: StreamVec<'s, u64, u64>,
    pub(crate) ctx: Rc<JobCtx>,
}

impl<T: Clone + 'static> Clone for DStream<'_, T> {
    fn clone(&self) -> Self {
        DStream {
            stream: self.stream.clone(),
            ticks: self.ticks.clone(),
            ctx: Rc::clone(&self.ctx),
        }
    }
}

impl<'s, T: Data> DStream<'s, T> {
    /// A DStream over another stream of this job (same ticks and context).
    pub(crate) fn derive<U>(&self, stream: Parts<'s, U>) -> DStream<'s, U> {
        DStream {
            stream,
            ticks: self.ticks.clone(),
            ctx: Rc::clone(&self.ctx),
        }
    }

    /// The same records, with batch ticks only at the times `every` includes: operators and
    /// outputs downstream then run only at those times (Spark: a windowed DStream and everything
    /// derived from it compute only at slide times).
    pub(crate) fn on(&self, every: stateful::Every) -> DStream<'s, T> {
        use timely::dataflow::channels::pact::Pipeline;
        use timely::dataflow::operators::generic::Operator;
        let ticks = self
            .ticks
            .clone()
            .unary(Pipeline, "SlideTicks", move |_, _| {
                move |input, output| {
                    input.for_each(|cap, times| {
                        times.retain(|t| every.includes(*t));
                        if !times.is_empty() {
                            output.session(&cap).give_container(times);
                        }
                    });
                }
            });
        DStream {
            stream: self.stream.clone(),
            ticks,
            ctx: Rc::clone(&self.ctx),
        }
    }

    /// Drops records at times that are not batches (differential schedules retractions past
    /// the last batch; they surface when the job ends).
    pub(crate) fn only_batches(&self) -> DStream<'s, T> {
        use timely::dataflow::channels::pact::Pipeline;
        let stream = batch_op::batch_fold_core(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("OnlyBatches"),
            true,
            Vec::new,
            |acc: &mut Vec<partition::Part<T>>, data: &mut Vec<partition::Part<T>>| {
                acc.append(data)
            },
            |_t, chunks, out| out.extend(chunks),
        );
        self.derive(stream)
    }

    /// Where this worker sits in the job.
    pub fn worker(&self) -> WorkerInfo {
        self.ctx.info
    }
}

/// Escape hatches: the timely dataflow underneath, for operators sluice does not have. The
/// crate re-exports [`timely`] and [`differential_dataflow`] at the versions these signatures
/// use; a custom operator must keep the invariants of [`partition`] (each chunk one Spark
/// partition's records, timestamps batch times) for the operators after it to stay exact.
impl<'s, T: Data> DStream<'s, T> {
    /// The underlying timely stream of partition chunks (timestamps are batch times in ms), for
    /// custom operators; see [`partition`] for the invariants a custom operator must keep.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2]], |s| s.wrap(s.inner()))?;
    /// assert_eq!(out, vec![vec![1, 2]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn inner(&self) -> Parts<'s, T> {
        self.stream.clone()
    }

    /// The job's batch ticks: every worker emits each batch time it cuts, at that time.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::timely::dataflow::operators::Inspect;
    /// let out = sluice::testing::collect_batches(vec![vec![1u64]], |s| { s.batch_ticks().inspect(|t| assert_eq!(t % 1000, 0)); s.clone() })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn batch_ticks(&self) -> StreamVec<'s, u64, u64> {
        self.ticks.clone()
    }

    /// Wraps a timely stream of partition chunks of this job (timestamps must be batch times)
    /// as a DStream.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::timely::dataflow::operators::vec::Map;
    /// let out = sluice::testing::collect_batches(vec![vec![1u64, 2]], |s| s.wrap(s.inner().map(|mut part| { part.records.iter_mut().for_each(|x| *x *= 10); part })))?;
    /// assert_eq!(out, vec![vec![10, 20]]); // a custom operator on the chunks themselves
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn wrap<U: Data>(&self, stream: Parts<'s, U>) -> DStream<'s, U> {
        self.derive(stream)
    }
}
