//! The receiver's write-ahead log (Spark's `spark.streaming.receiver.writeAheadLog.enable`):
//! every line is durable before a batch can take it.

use crate::error::CheckpointError;

/// The receiver's write-ahead log: segments `<dir>/<batch>.wal` of records
/// `(first sequence number, lines)`, appended durably before the lines are handed over.
pub(crate) struct Wal {
    pub(crate) dir: std::path::PathBuf,
    /// The checkpoint's storage (a log's appends go to its object store too).
    pub(crate) storage: crate::checkpoint::storage::Storage,
    pub(crate) log: Option<crate::checkpoint::file::LogWriter>,
    pub(crate) next_seq: u64,
}

impl Wal {
    /// Appends `lines` durably to the open segment.
    pub(crate) fn append(&mut self, lines: &[String]) -> Result<(), CheckpointError> {
        let Some(log) = self.log.as_mut() else {
            return Err(CheckpointError::OutOfOrder {
                path: self.dir.clone(),
                why: "no segment of the write-ahead log is open".into(),
            });
        };
        let bytes =
            crate::checkpoint::codec::encode(&(self.next_seq, lines)).map_err(|source| {
                CheckpointError::Codec {
                    path: self.dir.clone(),
                    source,
                }
            })?;
        log.append(&bytes, true)?;
        self.next_seq += lines.len() as u64;
        Ok(())
    }

    /// Starts the segment of the batch `batch` (appending if it is there).
    pub(crate) fn open_segment(&mut self, batch: u64) -> Result<(), CheckpointError> {
        let path = self.dir.join(format!("{batch:020}.wal"));
        self.log = Some(self.storage.append_log(&path)?);
        Ok(())
    }

    /// Every line in the log, by sequence number.
    pub(crate) fn load(dir: &std::path::Path) -> std::collections::BTreeMap<u64, String> {
        let mut lines = std::collections::BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return lines;
        };
        for e in entries.flatten() {
            if e.path().extension().is_none_or(|x| x != "wal") {
                continue;
            }
            let records = match crate::checkpoint::file::read_log(&e.path()) {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!("write-ahead log: {err}");
                    continue;
                }
            };
            add_records(&mut lines, &records);
        }
        lines
    }
}

/// Adds the lines of a segment's records to `lines`, by sequence number. A record that does
/// not decode, or whose numbers run past `u64::MAX`, is skipped (it is not what the receiver
/// wrote; the plans then find the lines missing and say so).
pub(crate) fn add_records(
    lines: &mut std::collections::BTreeMap<u64, String>,
    records: &[Vec<u8>],
) {
    for r in records {
        let Ok((first, chunk)) = crate::checkpoint::codec::decode::<(u64, Vec<String>)>(r) else {
            tracing::warn!("write-ahead log: a record that does not decode is skipped");
            continue;
        };
        if first.checked_add(chunk.len() as u64).is_none() {
            tracing::warn!("write-ahead log: a record numbered past the end is skipped");
            continue;
        }
        for (i, line) in chunk.into_iter().enumerate() {
            lines.insert(first + i as u64, line);
        }
    }
}
