//! Directory streams (Spark's `textFileStream` and `fileStream`): each batch reads the files
//! that appeared in a directory since the batch before, on a local disk, S3 or HDFS (through
//! [`crate::storage`]).
//!
//! Semantics, Spark's where Spark is right:
//! - a file belongs to the batch in which the stream first finds it complete; it is read once;
//! - with `new_files_only` (the default) files already there when the job starts are skipped;
//!   without it, those modified within the remember window (60 s) are read by the first batch;
//! - one partition per file split ([`split`]), files in path order.
//!
//! Better than Spark where the course says Spark is weak:
//! - a file moved in (`mv`, which keeps its old modification time) is new: the stream compares
//!   listings, not times;
//! - a file still being written is not read until it is complete ([`FileCompletion`]): quiet for
//!   a while (local disks, HDFS; the default waits 1 s without change), a marker file beside it,
//!   or visible at all (S3, where an upload in progress, multipart or not, is not listed);
//! - the files a batch picked are its **batch plan**, recorded in the checkpoint before the
//!   batch runs: a job restarted after a crash replays its batches with exactly the same files
//!   and never reads a file twice or skips one (see `reader`).
//!
//! Lines that are not UTF-8 or too long are set aside in the options' [`DeadLetters`], with
//! their file and byte offset. A file that cannot be read after it was picked (deleted, or the
//! store failing until the job stops) fails the job with the file's name: its batch cannot be
//! exact without it.
//!
//! The parts: this file (options, building the stream), `select` (which files a listing
//! picks), `split` (splits and their lines), `reader` (listing, plans, recovery).

mod reader;
pub(crate) mod select;
pub mod split;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

pub use select::{FileCompletion, PathFilter};
pub use split::FileSplit;

use crate::dstream::DStream;
use crate::dstream::partition::{PartitionId, per_batch_partitions};
use crate::source::DeadLetters;
use crate::storage::{Location, Scheme, scheme_of};

/// Settings of a directory stream.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::source::file::{FileCompletion, FileStreamOptions};
/// let options = FileStreamOptions::default()
///     .glob("**/*.log")
///     .new_files_only(false)
///     .completion(FileCompletion::Marker(".done".into()))
///     .filter(|path| !path.contains("debug"));
/// assert!(options.recursive);
/// ```
#[derive(Clone)]
pub struct FileStreamOptions {
    /// Skip the files already in the directory when the job starts (Spark's `newFilesOnly`,
    /// default true).
    pub new_files_only: bool,
    /// Read only paths (relative to the directory) for which this holds (Spark's `filter`).
    pub path_filter: Option<PathFilter>,
    /// Read only paths matching this glob (`*.txt`, `2026/*/*.csv`, `**/*.log`).
    pub glob: Option<String>,
    /// List subdirectories too (default false, as Spark; a glob with `/` turns it on).
    pub recursive: bool,
    /// When a file is complete; `None` chooses by store: visible on S3, quiet for 1 s on a
    /// local disk or HDFS.
    pub completion_rule: Option<FileCompletion>,
    /// Without `new_files_only`, files modified longer ago than this are skipped at start
    /// (Spark's remember window, at least 60 s).
    pub remember: Duration,
    /// At most this many new files per batch (the rest wait for the next batches, oldest path
    /// first): the rate limit of a directory stream. Default unlimited.
    pub max_files_per_batch: Option<usize>,
    /// Files larger than this are read as several partitions (default 32 MiB, Spark's local
    /// block size); compressed files are always one.
    pub max_split_bytes: u64,
    /// Longest accepted line (default 1 MiB); longer ones are set aside.
    pub max_line_bytes: usize,
    /// Where malformed lines go (default: counted and logged).
    pub dead_letters: DeadLetters,
}

impl Default for FileStreamOptions {
    fn default() -> Self {
        FileStreamOptions {
            new_files_only: true,
            path_filter: None,
            glob: None,
            recursive: false,
            completion_rule: None,
            remember: Duration::from_secs(60),
            max_files_per_batch: None,
            max_split_bytes: 32 << 20,
            max_line_bytes: 1 << 20,
            dead_letters: DeadLetters::counting(),
        }
    }
}

impl FileStreamOptions {
    /// Sets `new_files_only`.
    pub fn new_files_only(mut self, yes: bool) -> Self {
        self.new_files_only = yes;
        self
    }

    /// Reads only paths matching `pattern`; a pattern with `/` lists subdirectories.
    pub fn glob(mut self, pattern: &str) -> Self {
        self.recursive |= pattern.contains('/');
        self.glob = Some(pattern.to_owned());
        self
    }

    /// Reads only paths for which `f` holds.
    pub fn filter(mut self, f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.path_filter = Some(std::sync::Arc::new(f));
        self
    }

    /// Lists subdirectories too.
    pub fn recursive(mut self) -> Self {
        self.recursive = true;
        self
    }

    /// Sets when a file counts as complete.
    pub fn completion(mut self, rule: FileCompletion) -> Self {
        self.completion_rule = Some(rule);
        self
    }

    /// The glob, compiled; an invalid one is the configuration's mistake.
    fn compiled_glob(&self) -> crate::Result<Option<globset::GlobMatcher>> {
        let Some(pattern) = &self.glob else {
            return Ok(None);
        };
        globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map(|g| Some(g.compile_matcher()))
            .map_err(|e| crate::SluiceError::InvalidConfig {
                problem: format!("the file pattern `{pattern}` is not a glob: {e}"),
                fix: "give a pattern such as `*.txt` or `**/*.log`".into(),
            })
    }

    fn completion_for(&self, url: &str) -> FileCompletion {
        self.completion_rule
            .clone()
            .unwrap_or_else(|| match scheme_of(url) {
                Ok(Scheme::S3) => FileCompletion::Visible,
                _ => FileCompletion::Quiet(Duration::from_secs(1)),
            })
    }

    pub(crate) fn selector(&self, url: &str) -> select::Selector {
        let completion = self.completion_for(url);
        let marker = match &completion {
            FileCompletion::Marker(m) => Some(m.clone()),
            _ => None,
        };
        let mut s = select::Selector::new(
            select::Eligible {
                glob: self.compiled_glob().ok().flatten(),
                filter: self.path_filter.clone(),
                marker,
            },
            completion,
            self.new_files_only,
            self.remember,
        );
        s.recursive = self.recursive;
        s.max_files = self.max_files_per_batch;
        s
    }
}

/// Builds the stream: the listing reader on worker 0 hands out splits, one partition each,
/// which the worker owning the partition reads.
pub(crate) fn file_stream<'s>(
    job: &mut crate::Job<'s>,
    dir: &str,
    options: FileStreamOptions,
) -> DStream<'s, String> {
    if let Err(e) = options.compiled_glob().and_then(|_| scheme_of(dir)) {
        job.ctx.fail_build(e);
    }
    let runtime = job.ctx.runtime.clone();
    let mut lister = reader::FileListReader::new(dir, &options, runtime.clone());
    if let Some(e) = lister.take_open_error() {
        // A directory that cannot be watched stops the job before it starts.
        job.ctx.fail_build(e);
    }
    let splits = job.source(lister);
    let url = dir.to_owned();
    let location: Rc<RefCell<Option<Location>>> = Rc::default();
    let dead = options.dead_letters.clone();
    let max_line = options.max_line_bytes;
    let name = splits.ctx.name("ReadFiles");
    let stream = per_batch_partitions(
        splits.stream.clone(),
        splits.ticks.clone(),
        &name,
        move |t, partitions: Vec<(PartitionId, Vec<FileSplit>)>| {
            let empty = |partitions: Vec<(PartitionId, Vec<FileSplit>)>| {
                partitions
                    .into_iter()
                    .map(|(id, _)| (id, Vec::new()))
                    .collect()
            };
            if partitions.iter().all(|(_, s)| s.is_empty()) || runtime.aborted() {
                return empty(partitions);
            }
            let mut slot = location.borrow_mut();
            if slot.is_none() {
                let stop = runtime.clone();
                match Location::open(&url) {
                    Ok(l) => *slot = Some(l.stop_when(move || stop.stopping())),
                    Err(e) => {
                        runtime.fail(e);
                        return empty(partitions);
                    }
                }
            }
            let Some(l) = slot.as_ref() else {
                return empty(partitions);
            };
            // Every split of this worker's partitions, read concurrently (object stores answer
            // one request at a time slowly), then put back in partition and split order.
            let all: Vec<&FileSplit> = partitions.iter().flat_map(|(_, s)| s).collect();
            let mut read = split::read_splits(l, &all, max_line, l.parallel_reads()).into_iter();
            let mut out = Vec::with_capacity(partitions.len());
            let mut failed = false;
            'partitions: for (id, splits) in &partitions {
                let mut lines = Vec::new();
                for split in splits {
                    match read.next().unwrap_or_else(|| Ok(Default::default())) {
                        Ok(got) => {
                            lines.extend(got.lines);
                            let give_up = std::time::Instant::now() + crate::dead_letter::GIVE_UP;
                            let stop =
                                || runtime.stopping() || std::time::Instant::now() >= give_up;
                            if let Err(e) = dead.write_batch(t, id, got.malformed, &stop) {
                                runtime.fail(e);
                                failed = true;
                                break 'partitions;
                            }
                        }
                        Err(e) if crate::storage::is_not_found(&e) && runtime.input_unneeded(t) => {
                            // A processed file deleted after its batch (as Spark users do):
                            // this replay has its outputs off and rebuilds no state from it.
                            tracing::info!(
                                "batch {t} ms is replayed with its outputs off and the job keeps no state: {} ({} bytes), which it read, is gone and not needed",
                                split.path,
                                split.size
                            );
                        }
                        Err(e) => {
                            runtime.fail(crate::SluiceError::Store {
                                location: url.clone(),
                                action: format!(
                                    "batch {t} ms picked {} ({} bytes), which cannot be read now; the batch cannot be exact without it (restore the file, or start afresh)",
                                    split.path, split.size
                                ),
                                user_error: false,
                                source: Box::new(e),
                            });
                            failed = true;
                            break 'partitions;
                        }
                    }
                }
                out.push((id.clone(), lines));
            }
            if failed {
                return empty(partitions);
            }
            out
        },
    );
    splits.derive(stream)
}
