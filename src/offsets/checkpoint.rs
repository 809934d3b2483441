//! Offsets in a checkpoint directory: one small file per partition,
//! `<dir>/kafka-offsets/<group>/<topic>/<partition>`, holding the next offset in decimal.
//! Each file is written atomically (temporary file, fsync, rename), so a crash leaves the old or
//! the new offset, never a torn one; partitions are owned by one worker, so no two writers
//! share a file.
//!
//! A checkpoint on an object store (`s3://…`, `hdfs://…`, the job's `--checkpoint` there)
//! keeps the same names as objects, each put whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{OffsetStore, TopicPartition};
use crate::checkpoint::file_name;
use crate::error::{Result, SluiceError};

/// Offsets kept as files under a checkpoint directory.
///
/// # Examples
///
/// ```
/// use sluice::offsets::{CheckpointStore, OffsetStore, TopicPartition};
/// let dir = tempfile::tempdir().unwrap();
/// let mut store = CheckpointStore::new(dir.path());
/// let tp = TopicPartition::new("logs", 0);
/// store.commit("g", &[(tp.clone(), 42)])?;
/// assert_eq!(store.load("g", &[tp.clone()])?.get(&tp), Some(&42));
/// # Ok::<(), sluice::SluiceError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    /// The object store when `dir` names one, opened at first use.
    remote: Option<Remote>,
}

/// A checkpoint store's object store.
#[derive(Clone)]
struct Remote {
    url: String,
    #[cfg(feature = "files")]
    location: Option<std::sync::Arc<crate::storage::Location>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", crate::redact::url(&self.url))
    }
}

impl CheckpointStore {
    /// A store under `dir`, a local directory or an object store's URL (created on the first
    /// commit).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let text = dir.as_ref().to_string_lossy();
        let remote = (text.contains("://") && !text.starts_with("file://")).then(|| Remote {
            url: text.trim_end_matches('/').to_owned(),
            #[cfg(feature = "files")]
            location: None,
        });
        CheckpointStore {
            dir: dir.as_ref().join("kafka-offsets"),
            remote,
        }
    }

    /// The name of a partition's offset under the store's root.
    #[cfg(feature = "files")]
    fn name(group: &str, tp: &TopicPartition) -> String {
        format!(
            "kafka-offsets/{}/{}/{}",
            file_name(group),
            file_name(&tp.topic),
            tp.partition
        )
    }

    fn file(&self, group: &str, tp: &TopicPartition) -> PathBuf {
        self.dir
            .join(file_name(group))
            .join(file_name(&tp.topic))
            .join(tp.partition.to_string())
    }

    /// The object store, opened at first use (`None`: a local directory).
    #[cfg(feature = "files")]
    fn location(&mut self) -> Result<Option<std::sync::Arc<crate::storage::Location>>> {
        let Some(remote) = self.remote.as_mut() else {
            return Ok(None);
        };
        if remote.location.is_none() {
            remote.location = Some(std::sync::Arc::new(crate::storage::Location::open(
                &remote.url,
            )?));
        }
        Ok(remote.location.clone())
    }

    /// Without the object stores built in, a URL is named as the mistake it is here.
    #[cfg(not(feature = "files"))]
    fn location(&mut self) -> Result<Option<std::convert::Infallible>> {
        match &self.remote {
            None => Ok(None),
            Some(remote) => Err(SluiceError::InvalidConfig {
                problem: format!(
                    "the offsets' checkpoint `{}` is on an object store, which this build of sluice cannot reach",
                    crate::redact::url(&remote.url)
                ),
                fix: "rebuild with `--features s3` (or `hdfs`), or give a local directory".into(),
            }),
        }
    }

    /// The offset in `text`, read from `at`.
    fn parse(text: &str, at: &str) -> Result<i64> {
        text.trim().parse::<i64>().map_err(|e| SluiceError::InvalidConfig {
            problem: format!("the offset file {at} holds `{}` ({e})", text.trim()),
            fix: "delete the file to fall back to auto.offset.reset, or write the next offset to read in it".into(),
        })
    }
}

impl OffsetStore for CheckpointStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let mut found = HashMap::new();
        #[cfg_attr(not(feature = "files"), allow(unused_variables))]
        if let Some(location) = self.location()? {
            #[cfg(feature = "files")]
            for tp in partitions {
                let name = Self::name(group, tp);
                match location.read_all(&name) {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        found.insert(tp.clone(), Self::parse(&text, &name)?);
                    }
                    Err(e) if crate::storage::is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(found);
        }
        for tp in partitions {
            let path = self.file(group, tp);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    found.insert(tp.clone(), Self::parse(&text, &path.display().to_string())?);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(SluiceError::Io {
                        action: "cannot read the offset file",
                        path,
                        source,
                    });
                }
            }
        }
        Ok(found)
    }

    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        #[cfg_attr(not(feature = "files"), allow(unused_variables))]
        if let Some(location) = self.location()? {
            #[cfg(feature = "files")]
            for (tp, offset) in offsets {
                location.write(&Self::name(group, tp), offset.to_string().as_bytes())?;
            }
            return Ok(());
        }
        for (tp, offset) in offsets {
            let path = self.file(group, tp);
            crate::checkpoint::file::write_atomic(&path, &[offset.to_string().as_bytes()])?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.remote {
            Some(remote) => format!("checkpoint {}", crate::redact::url(&remote.url)),
            None => format!("checkpoint {}", self.dir.display()),
        }
    }
}
