//! Errors a sluice user can act on.
//!
//! Every variant names what is wrong and what to do about it; the `Display` text is meant to be
//! shown to the person running the job as it is.

use std::path::PathBuf;

/// The error type of sluice.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let err = sluice::StreamingConfig::new(Duration::from_micros(10)).unwrap_err();
/// assert!(err.to_string().contains("batch interval"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SluiceError {
    /// The batch interval is not a whole, positive number of milliseconds.
    #[error("invalid batch interval {given:?}: it must be a whole number of milliseconds, at least 1 ms (for example `--batch 2s` or `--batch 500ms`)")]
    InvalidBatchInterval {
        /// What was given.
        given: std::time::Duration,
    },
    /// A duration that must be a multiple of the batch interval is not.
    #[error("{what} is {given_ms} ms, which is not a multiple of the batch interval ({batch_ms} ms); use a multiple such as {suggestion} ms")]
    NotAMultipleOfBatch {
        /// Which setting.
        what: &'static str,
        /// Its value.
        given_ms: u64,
        /// The batch interval.
        batch_ms: u64,
        /// The nearest valid value.
        suggestion: u64,
    },
    /// A configuration value is wrong.
    #[error("invalid configuration: {problem}; {fix}")]
    InvalidConfig {
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// The hostfile for a multi-process run cannot be used.
    #[error("cannot use hostfile {path}: {problem}; it must list one `host:port` per line, one line per process (at least {processes})")]
    Hostfile {
        /// The hostfile.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The number of processes asked for.
        processes: usize,
    },
    /// The job has no output operation, so nothing would ever run (Spark says the same).
    #[error("no output operations registered, so nothing to execute: add an output such as `print(10)`, `foreach_batch(..)` or `save_as_text_files(..)` to a DStream")]
    NoOutputOperations,
    /// Timely could not start its workers (for example a port in the hostfile is taken).
    #[error("cannot start the workers: {0}")]
    Startup(String),
    /// A worker thread stopped with a panic or an error.
    #[error("worker failed: {0}")]
    WorkerFailed(String),
    /// An output operation failed for good (after its retries).
    #[error("output `{output}` failed for batch {batch_ms} ms: {reason}")]
    OutputFailed {
        /// The output operation.
        output: String,
        /// The batch.
        batch_ms: u64,
        /// Why.
        reason: String,
    },
    /// An I/O error on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot write").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The context was used in a way its lifecycle does not allow.
    #[error("{0}")]
    Lifecycle(String),
}

/// A `Result` with [`SluiceError`].
pub type Result<T, E = SluiceError> = std::result::Result<T, E>;
