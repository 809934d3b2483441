//! Generated batches: what the job generator (`context::generator`) fixed for each batch at its
//! batch time — a Kafka stream's log-end offsets, a directory's new files — made durable then,
//! as Spark checkpoints the batches its `JobGenerator` generates.
//!
//! A batch generated but not yet cut (queued behind a slow one) when the process dies is cut
//! after the restart with the same input: its source gets the record back in
//! [`SourceRecovery::generated`](super::SourceRecovery::generated). Once a batch is cut, its
//! plan (`plans`) is what replays it; the generated record is then only history, pruned with
//! the plans.
//!
//! Each process appends one record per batch to its own log
//! (`generated/<start>-p<process>-<run>.log`, the plans' record format), starting a new segment
//! at every checkpoint batch so that old segments are pruned with old snapshots.

use super::file::LogWriter;
use super::plans::PlanRecord;
use super::{Checkpoint, ck_err, codec};
use crate::error::Result;

/// One process's log of generated batches (a new segment at every checkpoint batch).
#[derive(Default)]
pub(crate) struct GeneratedLog {
    segment: Option<(u64, LogWriter)>,
}

impl Checkpoint {
    /// Appends, durably, what the sources of process `process` fixed for batch `t` (source key
    /// → bytes); nothing when no source fixed anything.
    pub(crate) fn record_generated(
        &self,
        log: &mut GeneratedLog,
        process: usize,
        t: u64,
        sources: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if sources.is_empty() {
            return Ok(());
        }
        let new_segment = match &log.segment {
            None => true,
            Some((start, _)) => self.on_schedule(t) && *start != t,
        };
        if new_segment {
            let path = self
                .dir
                .join("generated")
                .join(format!("{t:020}-p{process:04}-{}.log", self.run));
            // (Checkpoint file errors keep their kind: a full disk stays `StorageFull`.)
            let writer = self.storage.create_log(&path)?;
            log.segment = Some((t, writer));
        }
        let Some((_, writer)) = log.segment.as_mut() else {
            return Ok(());
        };
        let bytes = codec::encode(&PlanRecord { t, sources }).map_err(|e| ck_err(e.to_string()))?;
        Ok(writer.append(&bytes, true)?)
    }

    /// The latest batch an earlier run generated (`None` without one).
    pub(crate) fn last_generated(&self) -> Option<u64> {
        if !self.resuming {
            return None;
        }
        super::lock(&self.generated).keys().next_back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointConfig;

    fn open(dir: &std::path::Path) -> std::sync::Arc<Checkpoint> {
        let config = CheckpointConfig {
            dir: dir.to_path_buf(),
            interval_ms: None,
            incremental: true,
            accept_source_change: false,
        };
        Checkpoint::open(&config, 1000, 1000, None, 0).unwrap()
    }

    #[test]
    fn a_generated_batch_not_yet_planned_comes_back_to_its_source() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = open(dir.path());
            let mut log = c.plan_log(1000, 0).unwrap();
            c.record_plan(&mut log, 1000, vec![("source#0".into(), b"p1".to_vec())])
                .unwrap();
            let mut generated = GeneratedLog::default();
            for t in [1000, 2000, 3000] {
                let sample = format!("g{t}").into_bytes();
                c.record_generated(&mut generated, 0, t, vec![("source#0".into(), sample)])
                    .unwrap();
            }
            c.release();
        }
        let c = open(dir.path());
        assert!(c.resuming);
        assert_eq!(c.last_generated(), Some(3000));
        let recovery = c.source_recovery("source#0");
        let generated: Vec<(u64, Vec<Vec<u8>>)> = recovery.generated.into_iter().collect();
        assert_eq!(
            generated,
            vec![
                (2000, vec![b"g2000".to_vec()]),
                (3000, vec![b"g3000".to_vec()])
            ],
            "batch 1000 was planned: its plan replays it, not its generated record"
        );
        assert!(c.source_recovery("source#1").generated.is_empty());
    }
}
