//! Batch plans: what each source decided a batch holds, recorded before the batch runs
//! (`ARCHITECTURE.md` §4), and what a restarted source gets back from them.
//!
//! Each worker appends one [`PlanRecord`] per batch to its own log
//! (`plans/<start>-w<worker>-<run>.log`), starting a new segment at every checkpoint batch so
//! that old segments can be pruned with old snapshots.

use std::collections::BTreeMap;
use std::path::Path;

use super::file::{self, CheckpointError, read_log};
use super::{Checkpoint, ck_err, codec, lock};
use crate::error::Result;

/// One batch's plan on one worker: per source (by its stable key), the source's plan bytes.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct PlanRecord {
    pub(super) t: u64,
    pub(super) sources: Vec<(String, Vec<u8>)>,
}

/// Recorded plans: batch → source key → the plans of every worker that recorded one.
pub(crate) type Plans = BTreeMap<u64, BTreeMap<String, Vec<Vec<u8>>>>;

/// What a source needs to resume: its recorded plans, and which batches to replay silently.
#[derive(Debug, Default)]
pub struct SourceRecovery {
    /// The snapshot batch the job restarts after (`None`: from the job's first batch).
    pub after: Option<u64>,
    /// Recorded plans of this source, per batch, from every worker that recorded one.
    pub plans: BTreeMap<u64, Vec<Vec<u8>>>,
    /// Batches up to this one finished all their outputs before the restart.
    pub completed: Option<u64>,
    /// Where the plans are kept (for messages).
    pub plans_dir: std::path::PathBuf,
    /// What the job generator fixed for this source at batch times after the last recorded
    /// plan (see [`BatchReader::at_batch_time`](crate::source::BatchReader::at_batch_time)),
    /// per batch, from every worker that generated one: batches generated before the crash
    /// but never cut, to be cut now with the same input.
    pub generated: BTreeMap<u64, Vec<Vec<u8>>>,
}

impl SourceRecovery {
    /// The refusal of a source whose plan of the snapshot batch is missing: without it, the
    /// source cannot tell what the restored state has already counted (`what`: its records),
    /// and replaying would count it again or skip it.
    pub fn missing_plan(&self, source: &str, what: &str) -> crate::SluiceError {
        let after = self.after.unwrap_or(0);
        crate::SluiceError::Checkpoint {
            problem: format!(
                "{source}: the batch plans in {} have no readable record of batch {after} ms, the batch whose state the snapshot holds, so it cannot tell which {what} that state already counted (the plan logs are missing, emptied or damaged)",
                self.plans_dir.display()
            ),
            fix: format!(
                "restore the plan logs of {} from a backup; or start afresh with a new, empty checkpoint directory (the state is lost)",
                self.plans_dir.display()
            ),
        }
    }
}

/// Every record of every plan log in `dir/plans`. A torn tail is dropped (a crash mid-append);
/// a log of another format version is refused.
pub(super) fn load_plans(dir: &Path) -> Result<Plans> {
    load_records(&dir.join("plans"))
}

/// Every record of every log in `log_dir` (plans, or generated batches: one format).
pub(super) fn load_records(log_dir: &Path) -> Result<Plans> {
    let mut plans = Plans::new();
    if let Ok(entries) = std::fs::read_dir(log_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            let records = match read_log(&path) {
                Ok(r) => r,
                Err(e @ CheckpointError::Version { .. }) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!("checkpoint: skipping plan log: {e}");
                    continue;
                }
            };
            add_plan_records(&mut plans, &path, &records);
        }
    }
    Ok(plans)
}

/// Adds the plan records of one log (`path`, for warnings) to `plans`; a record that does not
/// decode is skipped with a warning.
pub(crate) fn add_plan_records(plans: &mut Plans, path: &Path, records: &[Vec<u8>]) {
    for bytes in records {
        match codec::decode::<PlanRecord>(bytes) {
            Ok(r) => {
                let batch = plans.entry(r.t).or_default();
                for (key, plan) in r.sources {
                    batch.entry(key).or_default().push(plan);
                }
            }
            Err(e) => tracing::warn!("checkpoint: an unreadable plan in {}: {e}", path.display()),
        }
    }
}

impl Checkpoint {
    /// What the source with stable key `key` needs to resume.
    pub(crate) fn source_recovery(&self, key: &str) -> SourceRecovery {
        let after = self.restored_batch();
        let plans = lock(&self.plans);
        let from = after.unwrap_or(0);
        let planned = plans.keys().next_back().copied().unwrap_or(from);
        SourceRecovery {
            after,
            plans: plans
                .range(from..)
                .filter_map(|(t, by)| by.get(key).map(|p| (*t, p.clone())))
                .collect(),
            completed: self.completed,
            plans_dir: self.dir.join("plans"),
            generated: lock(&self.generated)
                .range(planned.max(from) + 1..)
                .filter_map(|(t, by)| by.get(key).map(|p| (*t, p.clone())))
                .collect(),
        }
    }

    /// Opens this worker's plan log for a segment starting at batch `start`.
    pub(crate) fn plan_log(&self, start: u64, worker: usize) -> Result<file::LogWriter> {
        let path = self
            .dir
            .join("plans")
            .join(format!("{start:020}-w{worker:04}-{}.log", self.run));
        Ok(self.storage.create_log(&path)?)
    }

    /// Appends batch `t`'s plans (source key → bytes) to `log`, durably.
    pub(crate) fn record_plan(
        &self,
        log: &mut file::LogWriter,
        t: u64,
        sources: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        let record = PlanRecord { t, sources };
        let bytes = codec::encode(&record).map_err(|e| ck_err(e.to_string()))?;
        Ok(log.append(&bytes, true)?)
    }
}
