//! Offsets in a checkpoint directory: one small file per partition,
//! `<dir>/kafka-offsets/<group>/<topic>/<partition>`, holding the next offset in decimal.
//! Each file is written atomically (temporary file, fsync, rename), so a crash leaves the old or
//! the new offset, never a torn one; partitions are owned by one worker, so no two writers
//! share a file.

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
}

impl CheckpointStore {
    /// A store under `dir` (created on the first commit).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        CheckpointStore {
            dir: dir.as_ref().join("kafka-offsets"),
        }
    }

    fn file(&self, group: &str, tp: &TopicPartition) -> PathBuf {
        self.dir
            .join(file_name(group))
            .join(file_name(&tp.topic))
            .join(tp.partition.to_string())
    }
}

impl OffsetStore for CheckpointStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let mut found = HashMap::new();
        for tp in partitions {
            let path = self.file(group, tp);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let offset = text.trim().parse::<i64>().map_err(|e| SluiceError::InvalidConfig {
                        problem: format!("the offset file {} holds `{}` ({e})", path.display(), text.trim()),
                        fix: "delete the file to fall back to auto.offset.reset, or write the next offset to read in it".into(),
                    })?;
                    found.insert(tp.clone(), offset);
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
        for (tp, offset) in offsets {
            let path = self.file(group, tp);
            crate::checkpoint::file::write_atomic(&path, &[offset.to_string().as_bytes()])?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("checkpoint {}", self.dir.display())
    }
}
