//! Errors a sluice user can act on.
//!
//! Every variant names what is wrong and what to do about it; the `Display` text is meant to be
//! shown to the person running the job as it is. The variants say which kind of failure it is:
//!
//! - **configured wrong** ([`is_user_error`](SluiceError::is_user_error), exit code 2): a bad
//!   flag, setting, URL, window length or hostfile — the fix is in the message;
//! - **the world failed** (exit code 1): a server refused or went away for good, a disk write
//!   failed, a checkpoint is unusable, a worker panicked. Connector failures keep the
//!   underlying error as their [`source`](std::error::Error::source).

use std::path::PathBuf;

/// Any error of a connector, kept as the `source` of a [`SluiceError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    #[error(
        "invalid batch interval {given:?}: it must be a whole number of milliseconds, at least 1 ms (for example `--batch 2s` or `--batch 500ms`)"
    )]
    InvalidBatchInterval {
        /// What was given.
        given: std::time::Duration,
    },
    /// A duration that must be a multiple of the batch interval is not.
    #[error(
        "{what} is {given_ms} ms, which is not a multiple of the batch interval ({batch_ms} ms); use a multiple such as {suggestion} ms"
    )]
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
    #[error(
        "cannot use hostfile {path}: {problem}; it must list one `host:port` per line, one line per process (at least {processes})"
    )]
    Hostfile {
        /// The hostfile.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The number of processes asked for.
        processes: usize,
    },
    /// The job has no output operation, so nothing would ever run (Spark says the same).
    #[error(
        "no output operations registered, so nothing to execute: add an output such as `print(10)`, `foreach_batch(..)` or `save_as_text_files(..)` to a DStream"
    )]
    NoOutputOperations,
    /// Timely could not start its workers (for example a port in the hostfile is taken).
    #[error("cannot start the workers: {0}")]
    Startup(String),
    /// A worker thread stopped with a panic or an error.
    #[error("worker failed: {0}")]
    WorkerFailed(String),
    /// An output operation failed for good: a permanent error (a syntax error in the user's
    /// statement, a constraint violation, a type mismatch) or a transient one while the job was
    /// stopping.
    #[error("output `{output}` failed for batch {batch_ms} ms: {source}")]
    OutputFailed {
        /// The output operation.
        output: String,
        /// The batch.
        batch_ms: u64,
        /// Why.
        source: BoxError,
    },
    /// Kafka refused a request for good (an unknown topic, bad credentials, a fenced producer).
    #[cfg(feature = "kafka")]
    #[error("Kafka: {action}: {source}")]
    Kafka {
        /// What was being done.
        action: String,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// An offset store failed for good.
    #[error("the {store} offset store: {action}: {source}")]
    OffsetStore {
        /// Which store (`redis redis://127.0.0.1/`).
        store: String,
        /// What was being done.
        action: String,
        /// The store's error.
        source: BoxError,
    },
    /// A checkpoint cannot be used as it is; the message says what to do.
    #[error("checkpoint: {problem}; {fix}")]
    Checkpoint {
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// Another process holds the checkpoint (a second copy of the job, or another job on the
    /// same directory): refused before anything there is read or written.
    #[error(
        "the checkpoint {} is in use by {holder}; stop that process first, or give this job a checkpoint directory of its own (a lock left by a process that died is taken over at once)",
        dir.display()
    )]
    CheckpointInUse {
        /// The checkpoint directory or URL.
        dir: PathBuf,
        /// Who holds it: host, PID, start time, job.
        holder: String,
    },
    /// A checkpoint file cannot be read or written.
    #[error(transparent)]
    CheckpointFile(#[from] CheckpointError),
    /// An I/O error on a named path. A path that does not exist, is not a directory where one
    /// is needed, or may not be written is the configuration's mistake (exit 2); anything else
    /// (a full disk, a failing device) is the world's.
    #[error("{action} {path}: {source}{}", io_hint(source))]
    Io {
        /// What was being done ("cannot read", "cannot write").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The processes of a job could not connect, or a connection between two of them failed
    /// (a process died, a machine or link is gone): the job stops in every process.
    #[error("cluster: {problem}; {fix}")]
    Cluster {
        /// What happened, with the process and its address.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A file system or object store (a local directory, S3, HDFS) refused or failed a
    /// request: a missing bucket or directory and wrong credentials are configuration mistakes
    /// (`user_error`), a server that went away is the world's.
    #[error("{location}: {action}: {source}{}", if *user_error { "" } else { " (the store failed; sluice retried with backoff before giving up)" })]
    Store {
        /// The directory or object store (`s3://bucket/prefix`).
        location: String,
        /// What was being done ("cannot list", "cannot read …").
        action: String,
        /// Whether the configuration is wrong (credentials, a missing bucket or directory).
        user_error: bool,
        /// The store's error.
        source: BoxError,
    },
    /// The context was used in a way its lifecycle does not allow.
    #[error("{0}")]
    Lifecycle(String),
}

impl SluiceError {
    /// Whether the person running the job configured something wrong (a flag, a URL, a
    /// setting) rather than the world failing (a server down, a disk full, a bug).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = sluice::time::parse_duration("soon").unwrap_err();
    /// assert!(err.is_user_error());
    /// assert_eq!(err.exit_code(), 2);
    /// ```
    pub fn is_user_error(&self) -> bool {
        match self {
            SluiceError::Io { source, .. } => is_path_mistake(source),
            SluiceError::Store { user_error, .. } => *user_error,
            _ => matches!(
                self,
                SluiceError::InvalidBatchInterval { .. }
                    | SluiceError::InvalidConfig { .. }
                    | SluiceError::Hostfile { .. }
                    | SluiceError::NotAMultipleOfBatch { .. }
                    | SluiceError::NoOutputOperations
                    | SluiceError::CheckpointInUse { .. }
            ),
        }
    }

    /// The operating system's kind of error behind this one, when a file system refused (a
    /// full disk is `StorageFull`, a denied permission `PermissionDenied`): kept through
    /// checkpoint and output writes, so a caller can tell the two apart without reading text.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::SluiceError;
    /// let e = SluiceError::Io {
    ///     action: "cannot write",
    ///     path: "/data/out".into(),
    ///     source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    /// };
    /// assert_eq!(e.io_kind(), Some(std::io::ErrorKind::PermissionDenied));
    /// assert!(e.is_user_error());
    /// ```
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            SluiceError::Io { source, .. } => Some(source.kind()),
            SluiceError::CheckpointFile(e) => e.io_kind(),
            _ => None,
        }
    }

    /// The process exit code for this error: 2 for a configuration mistake, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.is_user_error() { 2 } else { 1 }
    }
}

/// Whether an I/O error on a configured path means the path is wrong (missing, not a
/// directory, not writable) rather than the device failing.
fn is_path_mistake(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        NotFound
            | PermissionDenied
            | NotADirectory
            | IsADirectory
            | ReadOnlyFilesystem
            | InvalidFilename
    )
}

/// The fix for a path mistake, as the end of the message.
fn io_hint(e: &std::io::Error) -> &'static str {
    if is_path_mistake(e) {
        " (give a path that exists, in a directory this user may write)"
    } else {
        ""
    }
}

/// A `Result` with [`SluiceError`].
pub type Result<T, E = SluiceError> = std::result::Result<T, E>;

/// A checkpoint file that cannot be used (here rather than in `checkpoint`, so that the error
/// types depend on nothing else of the crate).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file is missing, truncated, of another version or kind, or fails its checksum.
    #[error("checkpoint file {path} is unusable: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The file was written by a sluice with another format version.
    #[error(
        "checkpoint file {path} has format version {found}, this sluice reads version {reads}: finish the job with the sluice that wrote it, or start afresh with a new checkpoint directory"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it has.
        found: u16,
        /// The version this sluice reads.
        reads: u16,
    },
    /// The checkpoint is on an object store and the store did not take a write.
    #[error("cannot mirror {path} to the checkpoint's object store: {source}")]
    Mirror {
        /// The local working copy's file.
        path: PathBuf,
        /// The store's error.
        source: crate::error::BoxError,
    },
    /// A record could not be encoded for the file (or decoded from it).
    #[error("cannot encode a record for {path}: {source}")]
    Codec {
        /// The file.
        path: PathBuf,
        /// The codec's error.
        source: CodecError,
    },
    /// A write that must follow another cannot: the file it builds on was not written or is
    /// gone (a snapshot part's base, a log that is not open).
    #[error("cannot write {path}: {why}")]
    OutOfOrder {
        /// The file.
        path: PathBuf,
        /// What it should have followed.
        why: String,
    },
    /// Reading or writing failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl CheckpointError {
    /// The operating system's kind of error, when the file system refused (a full disk is
    /// `StorageFull`, a denied permission `PermissionDenied`); `None` for a file that is
    /// there but unusable.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::checkpoint::CheckpointError;
    /// let e = CheckpointError::Io {
    ///     action: "write",
    ///     path: "/ckpt/plans.log".into(),
    ///     source: std::io::Error::from(std::io::ErrorKind::StorageFull),
    /// };
    /// assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull));
    /// ```
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            CheckpointError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// A value sluice could not encode for a checkpoint file or decode from one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(#[from] postcard::Error);
