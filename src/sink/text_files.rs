//! Text files, one directory per batch (Spark's `saveAsTextFiles`): `prefix-<ms>[.suffix]/`
//! holds one `part-NNNNN` per worker and `_SUCCESS` once every part is written. Every file is
//! written atomically (`checkpoint::file::write_atomic`), so a batch replayed after a crash replaces its files
//! whole; a write that keeps failing (disk full, no permission) fails the job.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::channels::pact::{Exchange, Pipeline};

use crate::SparkDisplay;
use crate::checkpoint::file::{CheckpointError, write_atomic};
use crate::dstream::batch_op::batch_fold;
use crate::dstream::partition::{Part, PartitionId};
use crate::dstream::{DStream, Data};
use crate::error::SluiceError;
use crate::retry::{Backoff, Failure};
use crate::runtime::Runtime;

impl<'s, T: Data> DStream<'s, T> {
    /// Writes every batch as text, one record per line in Spark's rendering, to the directory
    /// `prefix-<ms>` (or `prefix-<ms>.suffix`), one `part-NNNNN` file per worker and `_SUCCESS`
    /// once all parts are written (Spark's `saveAsTextFiles`). Files are written to a temporary
    /// name and renamed, so a batch written again replaces its files whole.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::testing::run_batches;
    /// let dir = tempfile::tempdir().unwrap();
    /// let prefix = dir.path().join("words").display().to_string();
    /// let p = prefix.clone();
    /// run_batches(vec![vec!["a".to_owned(), "b".to_owned()]], move |s| s.save_as_text_files(p.clone(), Some("txt")))?;
    /// // One file per partition (the helpers make two), as Spark's.
    /// let part = |n: &str| std::fs::read_to_string(format!("{prefix}-1000.txt/part-{n}")).unwrap();
    /// assert_eq!((part("00000"), part("00001")), ("a\n".to_owned(), "b\n".to_owned()));
    /// assert!(std::path::Path::new(&format!("{prefix}-1000.txt/_SUCCESS")).exists());
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn save_as_text_files(&self, prefix: impl Into<String>, suffix: Option<&str>)
    where
        T: SparkDisplay,
    {
        let prefix: String = prefix.into();
        let suffix = suffix.filter(|s| !s.is_empty()).map(str::to_owned);
        let dir_for = move |t: u64| -> PathBuf {
            match &suffix {
                Some(s) => PathBuf::from(format!("{prefix}-{t}.{s}")),
                None => PathBuf::from(format!("{prefix}-{t}")),
            }
        };
        let dir_for = Arc::new(dir_for);
        let info = self.ctx.info;
        let runtime = self.ctx.runtime.clone();
        let parts_dir = Arc::clone(&dir_for);
        let this = self.for_output();
        // One file per partition, as Spark's `part-NNNNN` (a union's `part-BBBBB-NNNNN`); each
        // worker reports once it wrote all of its partitions of the batch.
        let parts = batch_fold(
            this.stream.clone(),
            this.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("SaveParts"),
            std::collections::BTreeMap::<PartitionId, String>::new,
            |texts, data: &mut Vec<Part<T>>| {
                for part in data.drain(..) {
                    let text = texts.entry(part.id).or_default();
                    for r in part.records {
                        r.write_spark(text);
                        text.push('\n');
                    }
                }
            },
            move |t, texts, out: &mut Vec<u64>| {
                let dir = parts_dir(t);
                for (id, text) in texts {
                    let name: Vec<String> = id.path().iter().map(|i| format!("{i:05}")).collect();
                    let part = dir.join(format!("part-{}", name.join("-")));
                    if let Err(e) = write(&runtime, &part, text.as_bytes()) {
                        return runtime.fail(failed(t, e));
                    }
                }
                out.push(t);
            },
        );
        let runtime = self.ctx.runtime.clone();
        let done = batch_fold(
            parts,
            this.ticks.clone(),
            Exchange::new(|_: &u64| 0),
            Exchange::new(|_: &u64| 0),
            &self.ctx.name("SaveSuccess"),
            || 0usize,
            |n: &mut usize, data: &mut Vec<u64>| {
                *n += data.len();
                data.clear();
            },
            move |t, parts_written, _out: &mut Vec<()>| {
                if parts_written < info.peers {
                    return; // a worker's part failed; the job is stopping with that error
                }
                if let Err(e) = write(&runtime, &dir_for(t).join("_SUCCESS"), b"") {
                    runtime.fail(failed(t, e));
                }
            },
        );
        self.register_output("saveAsTextFiles", done);
    }
}

/// Writes one file, retrying a few times (a full disk may be freed) until the job stops.
fn write(runtime: &Runtime, path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let what = format!("save_as_text_files: cannot write {}", path.display());
    let mut tries = 0;
    Backoff::new(Duration::from_millis(100), Duration::from_millis(400))
        .retry(&what, &|| runtime.stopping(), || {
            tries += 1;
            write_atomic(path, &[bytes]).map_err(|e| {
                if tries < 3 {
                    Failure::Transient(e)
                } else {
                    Failure::Permanent(e)
                }
            })
        })
        .map_err(|g| g.into_inner())
}

fn failed(t: u64, e: CheckpointError) -> SluiceError {
    SluiceError::OutputFailed {
        output: "save_as_text_files".into(),
        batch_ms: t,
        source: Box::new(e),
    }
}
