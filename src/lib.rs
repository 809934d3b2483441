//! # sluice
//!
//! Spark Streaming's DStream model, rebuilt on [timely dataflow] and [differential dataflow].
//! The programs, answers and guarantees of Spark Streaming, at a fraction of the latency and
//! memory.
//!
//! - **Time**: one timely epoch is one batch; the timestamp is the batch time in ms since the
//!   Unix epoch, a multiple of the batch interval (`Time: 1565253462000 ms`).
//! - **DStream**: [`DStream<T>`](DStream) at batch `t` is the multiset of records of Spark's RDD
//!   at `t`; its operators keep Spark's per-batch semantics.
//! - **Partitions**: every batch has Spark's partitions (queue slices, receiver blocks, Kafka
//!   topic-partitions, `repartition(n)`, hash partitions of the keyed operators), carried on
//!   chunks of records and spread over timely's workers (`-w/-n/-p/-h`); a batch is its
//!   partitions in order, so a job's output is the same on any number of workers
//!   ([`dstream::partition`]).
//!
//! ```
//! use std::time::Duration;
//! use sluice::{StreamingConfig, StreamingContext, CollectedBatches, source::BatchQueue};
//!
//! let lines = BatchQueue::from_batches(vec![vec!["hello world".to_owned(), "hello".to_owned()]]);
//! let counts = CollectedBatches::new();
//! let config = StreamingConfig::new(Duration::from_secs(2))?
//!     .as_fast_as_possible(1).first_batch_ms(2000).max_batches(1);
//! let (l, c) = (lines.clone(), counts.clone());
//! StreamingContext::new(config).run(move |job| {
//!     job.queue_stream(&l)
//!         .flat_map(|line: String| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
//!         .map(|word| (word, 1u64))
//!         .reduce_by_key(|a, b| a + b)
//!         .collect_into(&c);
//! })?;
//! let mut got = counts.batch_ms(2000);
//! got.sort();
//! assert_eq!(got, vec![("hello".to_owned(), 2), ("world".to_owned(), 1)]);
//! # Ok::<(), sluice::SluiceError>(())
//! ```
//!
//! [timely dataflow]: https://docs.rs/timely
//! [differential dataflow]: https://docs.rs/differential-dataflow

#![deny(missing_docs)]

pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod context;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod database;
pub mod dead_letter;
pub mod dstream;
pub mod error;
pub(crate) mod fixed_hash;
#[doc(hidden)]
pub mod fuzzing;
pub mod listener;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod offsets;
mod partition_id;
pub mod redact;
pub(crate) mod retry;
pub(crate) mod runtime;
pub mod sink;
pub mod source;
pub mod spark_hash;
#[cfg(feature = "sql")]
pub mod sql;
#[cfg(feature = "files")]
pub mod storage;
pub mod table;
pub mod testing;
pub mod text;
pub mod time;
#[cfg(feature = "ui")]
pub mod webui;

pub use config::{Cluster, ClusterArgs, Pacing, StreamingConfig};
pub use context::{Job, StreamingContext, StreamingHandle};
pub use dstream::output::CollectedBatches;
pub use dstream::render::SparkDisplay;
pub use dstream::{DStream, Data, Key, WorkerInfo};
pub use error::{Result, SluiceError};
pub use time::Time;

/// The dataflow engines sluice runs on, at the versions its escape hatches
/// ([`DStream::inner`], [`DStream::wrap`], [`Job::scope`], [`dstream::stateful::Stateful::collection`])
/// use in their signatures: a custom operator is written against these, not against a
/// separately added copy that may differ.
pub use differential_dataflow;
/// (See [`differential_dataflow`].)
pub use timely;

/// A string kept inline up to 24 bytes (a word, a short key) and on the heap beyond: the key
/// of the course's word counts, so that splitting a line into words allocates nothing.
///
/// It is `compact_str`'s, and hashes, compares, prints ([`SparkDisplay`]) and serializes as
/// `String` does: a job may switch between the two without its partitions, its output or
/// its checkpoints changing.
///
/// ```
/// use sluice::{CompactString, SparkDisplay};
/// let word = CompactString::from("hello");
/// assert!(!word.is_heap_allocated());
/// assert_eq!((word, 1u64).to_spark_string(), "(hello,1)");
/// ```
pub use compact_str::CompactString;
