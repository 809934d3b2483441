//! Outputs of the user's own with the built-in sinks' guarantees: fallible `foreachRDD`s
//! ([`DStream::try_foreach_batch`], [`DStream::try_foreach_partition`]) and the [`Sink`] trait
//! ([`DStream::write_to`]).
//!
//! An attempt returns an [`OutputError`] that says what waiting would do: a **transient** one
//! (the server is away, a connection dropped, a lock timed out) is retried with the one retry
//! policy every built-in sink uses (capped exponential backoff, reported, until the job is
//! asked to stop); a **permanent** one fails the batch at once with
//! [`SluiceError::OutputFailed`] — the job stops, the listeners and the web UI show the batch
//! as failed with the error, and `run` returns it. A batch that failed is replayed on restart
//! from its checkpoint with the same records.
//!
//! Exactly-once with a [`Sink`]: a batch whose outputs may have run before a crash is replayed
//! with the same records in the same partitions, and its [`BatchId::in_doubt`] says so. A sink
//! is exactly-once when writing such a batch again changes nothing — an upsert keyed by the
//! data or by `(batch, partition)` (idempotent), or the records and a marker of
//! `(batch, worker)` committed in one transaction, skipping a batch whose marker is there
//! (transactional), as `write_sql_with_offsets` does.

use crate::dstream::output::Partition;
use crate::dstream::partition::{PartitionId, by_partition};
use crate::error::{BoxError, SluiceError};
use crate::retry::{Backoff, Failure, GaveUp};
use crate::runtime::Runtime;
use crate::time::Time;
use crate::{DStream, Data};

/// How an attempt of a user's output failed: whether retrying may help.
///
/// Any error converts with `?` into a [`Permanent`](OutputError::Permanent) one; say
/// [`OutputError::transient`] where waiting helps.
///
/// # Examples
///
/// ```
/// use sluice::sink::OutputError;
/// fn send(up: bool) -> Result<(), OutputError> {
///     if !up {
///         return Err(OutputError::transient("connection refused"));
///     }
///     let _n: u32 = "12".parse()?; // a parse error would be permanent
///     Ok(())
/// }
/// assert!(matches!(send(false), Err(OutputError::Transient(_))));
/// assert!(send(true).is_ok());
/// ```
#[derive(Debug)]
pub enum OutputError {
    /// Waiting may help (the server is down, a connection dropped, a lock timed out): the
    /// attempt is retried.
    Transient(BoxError),
    /// Waiting never helps (a rejected statement, a record the destination refuses): the batch
    /// fails at once.
    Permanent(BoxError),
}

impl OutputError {
    /// A failure that waiting may cure.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = sluice::sink::OutputError::transient("broker away");
    /// assert_eq!(e.to_string(), "broker away (transient)");
    /// ```
    pub fn transient(error: impl Into<BoxError>) -> Self {
        OutputError::Transient(error.into())
    }

    /// A failure that waiting never cures.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = sluice::sink::OutputError::permanent("no such table");
    /// assert_eq!(e.to_string(), "no such table");
    /// ```
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        OutputError::Permanent(error.into())
    }

    fn into_failure(self) -> Failure<BoxError> {
        match self {
            OutputError::Transient(e) => Failure::Transient(e),
            OutputError::Permanent(e) => Failure::Permanent(e),
        }
    }

    /// The built-in sinks' classified failures, as an output error.
    #[cfg_attr(
        not(any(feature = "kafka", feature = "postgres", feature = "mysql")),
        allow(dead_code)
    )]
    pub(crate) fn from_failure<E: Into<BoxError>>(failure: Failure<E>) -> Self {
        match failure {
            Failure::Transient(e) => OutputError::Transient(e.into()),
            Failure::Permanent(e) => OutputError::Permanent(e.into()),
        }
    }
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputError::Transient(e) => write!(f, "{e} (transient)"),
            OutputError::Permanent(e) => write!(f, "{e}"),
        }
    }
}

/// Any error is permanent unless said otherwise (so `?` works in an output's body).
impl<E: Into<BoxError>> From<E> for OutputError {
    fn from(error: E) -> Self {
        OutputError::Permanent(error.into())
    }
}

/// Which share of which batch a [`Sink`] is writing: the batch, this worker of all of them, and
/// whether the batch may have been written before (a replay after a crash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchId {
    /// The batch.
    pub time: Time,
    /// This worker (its share of the batch is the partitions it runs, the same on a replay).
    pub worker: usize,
    /// All workers of the job.
    pub workers: usize,
    /// The batch was planned by a run that crashed: its outputs may have run, in part or
    /// whole. Its records and partitions are the same as then.
    pub in_doubt: bool,
}

/// A destination of the user's own, written per worker and batch: [`open`](Sink::open), then
/// [`write`](Sink::write) for each partition this worker runs (none, some or all), then
/// [`commit`](Sink::commit). A transient error anywhere retries the whole share from `open`; a
/// permanent one fails the batch. Give [`DStream::write_to`] one sink per worker (build it in
/// the job's closure, which runs on every worker).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use sluice::dstream::partition::PartitionId;
/// use sluice::sink::{BatchId, OutputError, Sink};
///
/// /// Keeps each (batch, partition)'s records once: idempotent, so exactly-once on a replay.
/// struct Keyed(Arc<Mutex<std::collections::BTreeMap<(u64, u32), Vec<u64>>>>);
/// impl Sink<u64> for Keyed {
///     fn write(&mut self, batch: &BatchId, p: &PartitionId, records: &[u64]) -> Result<(), OutputError> {
///         self.0.lock().unwrap().insert((batch.time.millis(), p.index() as u32), records.to_vec());
///         Ok(())
///     }
/// }
/// let kept = Arc::new(Mutex::new(Default::default()));
/// let k = Arc::clone(&kept);
/// sluice::testing::run_batches(vec![vec![1u64, 2, 3]], move |s| s.write_to(Keyed(Arc::clone(&k))))?;
/// assert_eq!(kept.lock().unwrap().values().flatten().sum::<u64>(), 6);
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub trait Sink<T>: 'static {
    /// Starts this worker's share of `batch` (a transaction, say); by default nothing.
    fn open(&mut self, batch: &BatchId) -> Result<(), OutputError> {
        let _ = batch;
        Ok(())
    }

    /// Writes one partition's records of `batch`, in order; called for every partition this
    /// worker runs, also an empty one.
    fn write(
        &mut self,
        batch: &BatchId,
        partition: &PartitionId,
        records: &[T],
    ) -> Result<(), OutputError>;

    /// Ends this worker's share of `batch` (commits); by default nothing. Called also when the
    /// worker runs no partition of the batch.
    fn commit(&mut self, batch: &BatchId) -> Result<(), OutputError> {
        let _ = batch;
        Ok(())
    }

    /// The name the web UI, the listeners and a failed batch's error give this output (the
    /// built-in sinks say what they write to, e.g. `sql sink postgres://…/test`).
    fn name(&self) -> String {
        "sink".to_owned()
    }
}

/// Runs `attempt` under the retry policy; a permanent failure, or a transient one while the
/// job stops, fails the job with `OutputFailed` for `batch`.
fn attempt_or_fail(
    runtime: &Runtime,
    output: &str,
    batch: Time,
    mut attempt: impl FnMut() -> Result<(), OutputError>,
) {
    let stop = || runtime.stopping();
    let result = Backoff::default().retry(&output, &stop, || {
        attempt().map_err(OutputError::into_failure)
    });
    if let Err(gave_up) = result {
        let stopped = matches!(gave_up, GaveUp::Stopped(_));
        let source = gave_up.into_inner();
        runtime.fail(SluiceError::OutputFailed {
            output: output.to_owned(),
            batch_ms: batch.millis(),
            source: if stopped {
                format!("{source} (gave up: the job is stopping; the batch is replayed on restart)")
                    .into()
            } else {
                source
            },
        });
    }
}

impl<'s, T: Data> DStream<'s, T> {
    /// [`foreach_batch`](DStream::foreach_batch) whose body may fail: a transient
    /// [`OutputError`] is retried (the body is called again with the same records), a
    /// permanent one fails the batch and the job with [`SluiceError::OutputFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::sink::OutputError;
    /// let result = sluice::testing::run_batches(vec![vec![1u64, 2]], |s| {
    ///     s.try_foreach_batch(|_time, records| Err(OutputError::permanent(format!("refused {} records", records.len()))))
    /// });
    /// let error = result.unwrap_err().to_string();
    /// assert!(error.contains("refused 2 records"), "{error}");
    /// ```
    pub fn try_foreach_batch(
        &self,
        mut f: impl FnMut(Time, &[T]) -> Result<(), OutputError> + 'static,
    ) {
        let runtime = self.ctx.runtime.clone();
        self.foreach_batch(move |time, records| {
            attempt_or_fail(&runtime, "foreachRDD", time, || f(time, &records));
        });
    }

    /// [`foreach_partition`](DStream::foreach_partition) whose body may fail, with the retry
    /// and failure rules of [`try_foreach_batch`](DStream::try_foreach_batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use sluice::sink::OutputError;
    /// let tries = Arc::new(AtomicU32::new(0));
    /// let t = Arc::clone(&tries);
    /// sluice::testing::run_batches(vec![vec![1u64]], move |s| {
    ///     let t = Arc::clone(&t);
    ///     // Fails once, transiently: retried, then written.
    ///     s.try_foreach_partition(move |_p, _records| match t.fetch_add(1, Ordering::SeqCst) {
    ///         0 => Err(OutputError::transient("busy")),
    ///         _ => Ok(()),
    ///     })
    /// })?;
    /// assert!(tries.load(Ordering::SeqCst) >= 2);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn try_foreach_partition(
        &self,
        mut f: impl FnMut(Partition, &[T]) -> Result<(), OutputError> + 'static,
    ) {
        let runtime = self.ctx.runtime.clone();
        self.foreach_partition(move |partition, records| {
            attempt_or_fail(&runtime, "foreachPartition", partition.time, || {
                f(partition.clone(), &records)
            });
        });
    }

    /// Writes every batch to `sink` (see [`Sink`]): on every worker, once per batch, also for
    /// empty batches, its partitions in order between `open` and `commit`.
    ///
    /// # Examples
    ///
    /// (See [`Sink`].)
    ///
    /// ```
    /// use sluice::dstream::partition::PartitionId;
    /// use sluice::sink::{BatchId, OutputError, Sink};
    /// struct Refuses;
    /// impl Sink<u64> for Refuses {
    ///     fn write(&mut self, _: &BatchId, _: &PartitionId, _: &[u64]) -> Result<(), OutputError> {
    ///         Err(OutputError::permanent("read-only"))
    ///     }
    /// }
    /// let result = sluice::testing::run_batches(vec![vec![1u64]], |s| s.write_to(Refuses));
    /// assert!(result.unwrap_err().to_string().contains("read-only"));
    /// ```
    pub fn write_to(&self, mut sink: impl Sink<T>) {
        let runtime = self.ctx.runtime.clone();
        let info = self.ctx.info;
        let in_doubt_through = runtime.in_doubt_through();
        let output = sink.name();
        let name = self.ctx.name("WriteTo");
        self.foreach_chunks(&name, &output.clone(), move |t, chunks| {
            let batch = BatchId {
                time: Time::from_millis(t),
                worker: info.index,
                workers: info.peers,
                in_doubt: in_doubt_through.is_some_and(|last| t <= last),
            };
            let parts = by_partition(chunks);
            attempt_or_fail(&runtime, &output, batch.time, || {
                sink.open(&batch)?;
                for (id, records) in &parts {
                    sink.write(&batch, id, records)?;
                }
                sink.commit(&batch)
            });
        });
    }
}
