//! Small helpers to try an operator on a few batches, in the spirit of `timely::example`: the
//! doc examples of sluice use them, and so can a user's tests.
//!
//! Every helper runs one worker, a batch interval of 1 s, first batch at 1000 ms, batches cut as
//! fast as the job finishes them (no waiting for a clock), one batch per input vector, and a
//! default parallelism of 2: each batch is sliced into two partitions, as the input streams of
//! Spark's own test suites are (`numInputPartitions = 2`).

use std::time::Duration;

use crate::source::BatchQueue;
use crate::{CollectedBatches, DStream, Data, Result, StreamingConfig, StreamingContext};

/// The configuration the helpers use for `batches` batches.
fn config(batches: usize) -> Result<StreamingConfig> {
    Ok(StreamingConfig::new(Duration::from_secs(1))?
        .as_fast_as_possible(2)
        .first_batch_ms(1000)
        .default_parallelism(2)
        .max_batches(batches.max(1) as u64))
}

/// Runs `build` on a stream that yields `batches` (one vector per batch); `build` adds its own
/// output operation.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = Arc::clone(&seen);
/// sluice::testing::run_batches(vec![vec![1u64, 2], vec![3]], move |stream| {
///     let s = Arc::clone(&s);
///     stream.foreach_batch(move |time, records| s.lock().unwrap().push((time.millis(), records)));
/// })?;
/// assert_eq!(*seen.lock().unwrap(), vec![(1000, vec![1, 2]), (2000, vec![3])]);
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub fn run_batches<T, F>(batches: Vec<Vec<T>>, build: F) -> Result<()>
where
    T: Data + Send,
    F: for<'s> Fn(&DStream<'s, T>) + Send + Sync + 'static,
{
    let n = batches.len();
    let queue = BatchQueue::from_batches(batches);
    StreamingContext::new(config(n)?).run(move |job| build(&job.queue_stream(&queue)))
}

/// Runs `build` on a stream that yields `batches` and returns what the stream it builds holds
/// at each batch, in order (one vector per batch, also for empty batches).
///
/// # Examples
///
/// ```
/// let out = sluice::testing::collect_batches(vec![vec![1u64, 2, 3], vec![]], |s| s.map(|x| x * 10))?;
/// assert_eq!(out, vec![vec![10, 20, 30], vec![]]);
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub fn collect_batches<T, U, F>(batches: Vec<Vec<T>>, build: F) -> Result<Vec<Vec<U>>>
where
    T: Data + Send,
    U: Data + Send,
    F: for<'s> Fn(&DStream<'s, T>) -> DStream<'s, U> + Send + Sync + 'static,
{
    let n = batches.len();
    let out = CollectedBatches::new();
    let into = out.clone();
    run_batches(batches, move |stream| build(stream).collect_into(&into))?;
    let got = out.batches();
    Ok((0..n as u64)
        .map(|i| {
            got.iter()
                .find(|(t, _)| t.millis() == 1000 * (i + 1))
                .map(|(_, records)| records.clone())
                .unwrap_or_default()
        })
        .collect())
}
