//! What the web page and the REST API show: the last N completed batches of this process (a
//! ring, newest last) and the totals since the start, kept by a [`StreamingListener`].
//!
//! The JSON shapes (in `json`) are Spark's (`org.apache.spark.status.api.v1.streaming`:
//! `StreamingStatistics`, `BatchInfo`), field for field, so that a script written against
//! Spark's `/api/v1/applications/{id}/streaming/…` reads sluice's too; sluice's own fields
//! (inputs per source, state per operator) come after Spark's.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::listener::{BatchInfo, StreamingListener};

pub use super::json::{
    BatchJson, InputJson, JobDescription, OutputOpJson, PartitionJson, ReceiverJson, SnapshotJson,
    StateJson, Statistics,
};

/// The batches and totals of one process, updated by its listener.
#[derive(Debug)]
pub struct Status {
    job: JobDescription,
    started: SystemTime,
    /// When the job ended (ms since the epoch): set for a job served from its event log.
    ended: Option<u64>,
    retained: usize,
    inner: Mutex<Inner>,
}

mod spark_info;

#[derive(Debug, Default)]
struct Inner {
    /// Batches an output failed: (time, output, reason).
    failed: Vec<(u64, String, String)>,
    /// Batches started and not completed, with when they started (ms since the epoch).
    active: std::collections::BTreeMap<u64, u64>,
    /// Batches generated at their time and not started yet (waiting for the workers).
    queued: std::collections::BTreeMap<u64, Option<u64>>,
    /// The latest batch completed.
    last_completed: Option<u64>,
    batches: VecDeque<BatchInfo>,
    completed: u64,
    records: u64,
    malformed: u64,
    sources: Vec<String>,
    /// The sources that are receivers (a socket, the receiver-based Kafka stream), in order.
    receivers: Vec<String>,
    /// Per batch running: how many of its output operations have finished it.
    outputs_done: std::collections::BTreeMap<u64, u64>,
    /// The job's output operations (as the latest completed batch had them).
    outputs_total: u64,
}

pub use super::json::spark_date;

fn ms(d: Duration) -> u64 {
    (d.as_secs_f64() * 1e3).round() as u64
}

impl Status {
    /// A status for `job` keeping the last `retained` batches (Spark keeps 1000:
    /// `spark.streaming.ui.retainedBatches`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::webui::{JobDescription, Status};
    /// let job = JobDescription { name: "wc".into(), batch_ms: 1000, workers: 1, processes: 1, process: 0, settings: vec![] };
    /// let status = Status::new(job, 1000);
    /// assert_eq!(status.statistics().num_total_completed_batches, 0);
    /// ```
    pub fn new(mut job: JobDescription, retained: usize) -> Self {
        // Nothing the page or REST serves shows a secret (`crate::redact`).
        for (_, value) in &mut job.settings {
            *value = crate::redact::redact(value).into_owned();
        }
        Status {
            job,
            started: SystemTime::now(),
            ended: None,
            retained: retained.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The job.
    pub fn job(&self) -> &JobDescription {
        &self.job
    }

    /// A status served from an event log: the job started at `started_ms` and has ended at
    /// `ended_ms`.
    pub(crate) fn set_history(&mut self, started_ms: u64, ended_ms: u64) {
        self.started = UNIX_EPOCH + Duration::from_millis(started_ms);
        self.ended = Some(ended_ms);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Totals and means, as Spark's `/streaming/statistics`.
    pub fn statistics(&self) -> Statistics {
        let inner = self.lock();
        let n = inner.batches.len();
        let mean = |f: &dyn Fn(&BatchInfo) -> Duration| -> Option<u64> {
            (n > 0).then(|| ms(inner.batches.iter().map(f).sum::<Duration>() / n as u32))
        };
        let exact = |f: &dyn Fn(&BatchInfo) -> Duration| -> Option<f64> {
            (n > 0).then(|| {
                inner
                    .batches
                    .iter()
                    .map(|b| f(b).as_secs_f64())
                    .sum::<f64>()
                    * 1e3
                    / n as f64
            })
        };
        let retained_records: u64 = inner.batches.iter().map(BatchInfo::num_records).sum();
        // Spark counts receivers only (a direct stream has none).
        let active: std::collections::BTreeSet<&str> = inner
            .batches
            .iter()
            .flat_map(|b| {
                b.inputs
                    .iter()
                    .filter(|i| i.records > 0 && i.receiver.is_some())
            })
            .map(|i| i.source.as_str())
            .collect();
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Statistics {
            start_time: spark_date(started),
            batch_duration: self.job.batch_ms,
            num_receivers: inner.receivers.len(),
            num_active_receivers: active.len(),
            num_inactive_receivers: inner.receivers.len().saturating_sub(active.len()),
            num_total_completed_batches: inner.completed,
            num_retained_completed_batches: n,
            num_active_batches: inner.active.len() + inner.queued.len(),
            num_failed_batches: inner.failed.len(),
            num_processed_records: inner.records,
            num_received_records: inner.records,
            avg_input_rate: (n > 0)
                .then(|| retained_records as f64 / (n as f64 * self.job.batch_ms as f64 / 1000.0)),
            avg_scheduling_delay: mean(&|b| b.scheduling_delay),
            avg_processing_time: mean(&|b| b.processing_time),
            avg_total_delay: mean(&|b| b.total_delay),
            avg_scheduling_delay_exact: exact(&|b| b.scheduling_delay),
            avg_processing_time_exact: exact(&|b| b.processing_time),
            avg_total_delay_exact: exact(&|b| b.total_delay),
            num_malformed_records: inner.malformed,
        }
    }

    /// The failed batches, the queued ones (generated at their time, waiting for the workers:
    /// status `QUEUED`, with how long they have waited as their scheduling delay so far), the
    /// ones in progress (status `PROCESSING`), then the retained completed ones, newest first
    /// in each group.
    pub fn batches(&self) -> Vec<BatchJson> {
        let inner = self.lock();
        let queued = inner.queued.iter().rev().map(|(t, n)| self.queued(*t, *n));
        let active = inner.active.iter().rev().map(|(t, started)| {
            let done = inner.outputs_done.get(t).copied().unwrap_or(0);
            self.processing(*t, *started, done, inner.outputs_total)
        });
        let failed = inner
            .failed
            .iter()
            .map(|(t, output, reason)| self.failed(*t, output, reason));
        failed
            .chain(queued)
            .chain(active)
            .chain(inner.batches.iter().rev().map(|b| self.json(b)))
            .collect()
    }

    /// A batch generated and not started: status `QUEUED`, waiting since its time.
    fn queued(&self, t: u64, records: Option<u64>) -> BatchJson {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let waited = now.saturating_sub(t);
        BatchJson {
            status: "QUEUED".into(),
            input_size: records.unwrap_or(0),
            input_size_known: records.is_some(),
            scheduling_delay: Some(waited),
            scheduling_delay_exact: waited as f64,
            ..self.pending(t)
        }
    }

    /// One retained batch by its time (Spark's batch id): failed, in progress or completed,
    /// in the order [`batches`](Status::batches) lists them; only that one is rendered.
    pub fn batch(&self, batch_ms: u64) -> Option<BatchJson> {
        let inner = self.lock();
        if let Some((t, output, reason)) = inner.failed.iter().find(|f| f.0 == batch_ms) {
            return Some(self.failed(*t, output, reason));
        }
        if let Some(started) = inner.active.get(&batch_ms) {
            let done = inner.outputs_done.get(&batch_ms).copied().unwrap_or(0);
            return Some(self.processing(batch_ms, *started, done, inner.outputs_total));
        }
        if let Some(records) = inner.queued.get(&batch_ms) {
            return Some(self.queued(batch_ms, *records));
        }
        inner
            .batches
            .iter()
            .find(|b| b.batch_time.millis() == batch_ms)
            .map(|b| self.json(b))
    }

    /// A batch an output failed: status `FAILED`, with the output and the reason.
    fn failed(&self, t: u64, output: &str, reason: &str) -> BatchJson {
        BatchJson {
            status: "FAILED".into(),
            num_failed_output_ops: 1,
            first_failure_reason: Some(format!("{output}: {reason}")),
            ..self.pending(t)
        }
    }

    /// A batch that has not completed: status `PROCESSING`, nothing measured yet.
    /// A batch started and not completed: status `PROCESSING`, its wait (its time to its
    /// start) and how long it has run so far.
    fn processing(&self, t: u64, started: u64, outputs_done: u64, outputs: u64) -> BatchJson {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (waited, running) = (started.saturating_sub(t), now.saturating_sub(started));
        BatchJson {
            scheduling_delay: Some(waited),
            scheduling_delay_exact: waited as f64,
            processing_time: Some(running),
            processing_time_exact: running as f64,
            num_completed_output_ops: outputs_done,
            num_active_output_ops: outputs.saturating_sub(outputs_done),
            num_total_output_ops: outputs,
            ..self.pending(t)
        }
    }

    fn pending(&self, t: u64) -> BatchJson {
        BatchJson {
            batch_id: t,
            batch_time: spark_date(t),
            status: "PROCESSING".into(),
            batch_duration: self.job.batch_ms,
            input_size: 0,
            input_size_known: false,
            scheduling_delay: None,
            processing_time: None,
            total_delay: None,
            num_active_output_ops: 0,
            num_completed_output_ops: 0,
            num_failed_output_ops: 0,
            num_total_output_ops: 0,
            first_failure_reason: None,
            scheduling_delay_exact: 0.0,
            processing_time_exact: 0.0,
            total_delay_exact: 0.0,
            inputs: Vec::new(),
            state: Vec::new(),
            snapshots: Vec::new(),
            output_operations: Vec::new(),
        }
    }

    fn json(&self, b: &BatchInfo) -> BatchJson {
        let t = b.batch_time.millis();
        BatchJson {
            batch_id: t,
            batch_time: spark_date(t),
            status: "COMPLETED".into(),
            batch_duration: self.job.batch_ms,
            input_size: b.num_records(),
            input_size_known: true,
            scheduling_delay: Some(ms(b.scheduling_delay)),
            processing_time: Some(ms(b.processing_time)),
            total_delay: Some(ms(b.total_delay)),
            num_active_output_ops: 0,
            num_completed_output_ops: b.outputs.len() as u64,
            num_failed_output_ops: 0,
            num_total_output_ops: b.outputs.len() as u64,
            first_failure_reason: None,
            scheduling_delay_exact: b.scheduling_delay.as_secs_f64() * 1e3,
            processing_time_exact: b.processing_time.as_secs_f64() * 1e3,
            total_delay_exact: b.total_delay.as_secs_f64() * 1e3,
            inputs: b
                .inputs
                .iter()
                .map(|i| InputJson {
                    source: i.source.clone(),
                    records: i.records,
                    malformed: i.malformed,
                    partitions: i
                        .partitions
                        .iter()
                        .map(|p| PartitionJson {
                            partition: p.partition.clone(),
                            from: p.from,
                            until: p.until,
                            lag: p.lag,
                        })
                        .collect(),
                    receiver: i.receiver.as_ref().map(|r| ReceiverJson {
                        lines: r.lines,
                        bytes: r.bytes,
                        max_buffered_bytes: r.max_buffered_bytes,
                        held_back_ms: r.held_back_ms,
                        rate_limit: r.rate_limit,
                    }),
                })
                .collect(),
            state: b
                .state
                .iter()
                .map(|s| StateJson {
                    operator: s.operator.clone(),
                    keys: s.keys,
                    approx_bytes: s.approx_bytes,
                })
                .collect(),
            snapshots: b
                .snapshots
                .iter()
                .map(|w| SnapshotJson {
                    operator: w.operator.clone(),
                    bytes: w.bytes,
                    keys: w.keys,
                    full_parts: w.full_parts,
                    duration_ms: w.duration.as_secs_f64() * 1e3,
                    failed: w.failed,
                })
                .collect(),
            output_operations: b
                .outputs
                .iter()
                .map(|o| OutputOpJson {
                    output_op_id: o.id,
                    name: o.name.clone(),
                    description: o.name.clone(),
                    duration: ms(o.duration),
                    duration_exact: o.duration.as_secs_f64() * 1e3,
                    failure_reason: None,
                })
                .collect(),
        }
    }
}

impl StreamingListener for Status {
    fn on_batch_submitted(&self, batch: &crate::listener::SubmittedBatch) {
        let t = batch.batch_time.millis();
        let mut inner = self.lock();
        if !inner.active.contains_key(&t) && inner.last_completed.is_none_or(|c| t > c) {
            inner.queued.insert(t, batch.num_records);
        }
    }

    fn on_batch_started(&self, batch_time: crate::Time) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut inner = self.lock();
        inner.queued.remove(&batch_time.millis());
        inner.active.insert(batch_time.millis(), now);
    }

    fn on_output_operation_completed(&self, batch_time: crate::Time, _id: usize, _name: &str) {
        let t = batch_time.millis();
        let mut inner = self.lock();
        if inner.active.contains_key(&t) {
            *inner.outputs_done.entry(t).or_default() += 1;
        }
    }

    fn on_batch_failed(&self, batch_time: crate::Time, output: &str, reason: &str) {
        let mut inner = self.lock();
        inner.active.remove(&batch_time.millis());
        inner.queued.remove(&batch_time.millis());
        inner.failed.push((
            batch_time.millis(),
            crate::redact::redact(output).into_owned(),
            crate::redact::redact(reason).into_owned(),
        ));
    }

    fn on_batch_state(&self, batch_time: crate::Time, state: &[crate::listener::StateSize]) {
        let mut inner = self.lock();
        if let Some(b) = inner
            .batches
            .iter_mut()
            .rev()
            .find(|b| b.batch_time == batch_time)
        {
            b.state = state.to_vec();
        }
    }

    fn on_batch_completed(&self, batch: &BatchInfo) {
        let mut inner = self.lock();
        let t = batch.batch_time.millis();
        // A batch that completed is no longer active (nor any before it: completion is in order).
        inner.active.retain(|a, _| *a > t);
        inner.queued.retain(|q, _| *q > t);
        inner.outputs_done.retain(|o, _| *o > t);
        inner.outputs_total = batch.outputs.len() as u64;
        inner.last_completed = Some(inner.last_completed.map_or(t, |c| c.max(t)));
        inner.completed += 1;
        inner.records += batch.num_records();
        inner.malformed += batch.inputs.iter().map(|i| i.malformed).sum::<u64>();
        for i in &batch.inputs {
            if !inner.sources.contains(&i.source) {
                inner.sources.push(i.source.clone());
            }
            if i.receiver.is_some() && !inner.receivers.contains(&i.source) {
                inner.receivers.push(i.source.clone());
            }
        }
        if inner.batches.len() == self.retained {
            inner.batches.pop_front();
        }
        inner.batches.push_back(batch.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Time;
    use crate::listener::SourceInput;

    pub(super) fn batch(t: u64, records: u64, processing_ms: u64) -> BatchInfo {
        BatchInfo {
            batch_time: Time::from_millis(t),
            inputs: vec![SourceInput {
                source: "socket".into(),
                records,
                malformed: 1,
                partitions: Vec::new(),
                receiver: None,
            }],
            scheduling_delay: Duration::from_millis(2),
            processing_time: Duration::from_millis(processing_ms),
            total_delay: Duration::from_millis(2 + processing_ms),
            state: Vec::new(),
            snapshots: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub(super) fn wc_job() -> JobDescription {
        JobDescription {
            name: "wc".into(),
            batch_ms: 1000,
            workers: 1,
            processes: 1,
            process: 0,
            settings: vec![],
        }
    }

    #[test]
    fn a_submitted_batch_is_queued_until_it_starts() {
        let job = wc_job();
        let s = Status::new(job, 10);
        s.on_batch_started(Time::from_millis(1000));
        s.on_batch_submitted(&submitted(2000, Some(200)));
        s.on_batch_submitted(&submitted(3000, None));
        let statuses: Vec<(u64, String)> = s
            .batches()
            .into_iter()
            .map(|b| (b.batch_id, b.status))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (3000, "QUEUED".to_owned()),
                (2000, "QUEUED".to_owned()),
                (1000, "PROCESSING".to_owned())
            ]
        );
        assert_eq!(s.statistics().num_active_batches, 3);
        let queued = s.batch(2000).unwrap();
        assert!(queued.scheduling_delay.is_some(), "its wait so far");
        assert_eq!((queued.input_size, queued.input_size_known), (200, true));
        assert!(!s.batch(3000).unwrap().input_size_known);
        s.on_batch_started(Time::from_millis(2000));
        s.on_batch_completed(&batch(2000, 1, 1));
        let statuses: Vec<(u64, String)> = s
            .batches()
            .into_iter()
            .map(|b| (b.batch_id, b.status))
            .collect();
        assert_eq!(
            statuses,
            vec![(3000, "QUEUED".to_owned()), (2000, "COMPLETED".to_owned())]
        );
        // A batch submitted after it completed (a late notice) is not queued again.
        s.on_batch_submitted(&submitted(2000, Some(200)));
        assert_eq!(s.statistics().num_active_batches, 1);
    }

    #[test]
    fn a_running_batch_shows_its_wait_its_run_and_its_outputs_so_far() {
        let s = Status::new(wc_job(), 10);
        let mut done = batch(1000, 1, 1);
        done.outputs = vec![crate::listener::OutputOp::default(); 2];
        s.on_batch_started(Time::from_millis(1000));
        s.on_batch_completed(&done);
        s.on_batch_started(Time::from_millis(2000));
        s.on_output_operation_completed(Time::from_millis(2000), 0, "print");
        let running = s.batch(2000).unwrap();
        assert_eq!(running.status, "PROCESSING");
        assert_eq!(
            (
                running.num_completed_output_ops,
                running.num_active_output_ops,
                running.num_total_output_ops
            ),
            (1, 1, 2)
        );
        assert!(running.scheduling_delay.is_some() && running.processing_time.is_some());
    }

    fn submitted(t: u64, records: Option<u64>) -> crate::listener::SubmittedBatch {
        crate::listener::SubmittedBatch {
            batch_time: Time::from_millis(t),
            num_records: records,
        }
    }

    #[test]
    fn statistics_are_the_means_of_the_retained_batches_and_totals_since_the_start() {
        let job = wc_job();
        let s = Status::new(job, 2);
        for (t, r, p) in [(1000, 10, 10), (2000, 20, 20), (3000, 30, 40)] {
            s.on_batch_completed(&batch(t, r, p));
        }
        let st = s.statistics();
        assert_eq!(st.num_total_completed_batches, 3);
        assert_eq!(st.num_retained_completed_batches, 2);
        assert_eq!(st.num_processed_records, 60);
        assert_eq!(st.num_malformed_records, 3);
        assert_eq!(st.avg_processing_time, Some(30));
        assert_eq!(st.avg_input_rate, Some(25.0));
        let ids: Vec<u64> = s.batches().iter().map(|b| b.batch_id).collect();
        assert_eq!(ids, vec![3000, 2000], "newest first, the oldest dropped");
        assert!(s.batch(1000).is_none());
        assert_eq!(s.batch(2000).unwrap().input_size, 20);
        // A started batch is active until it completes.
        s.on_batch_started(Time::from_millis(4000));
        assert_eq!(s.statistics().num_active_batches, 1);
        assert_eq!(s.batches()[0].status, "PROCESSING");
        assert_eq!(s.batches()[0].batch_id, 4000);
        s.on_batch_completed(&batch(4000, 1, 1));
        assert_eq!(s.statistics().num_active_batches, 0);
        assert_eq!(s.batches()[0].status, "COMPLETED");
        // A failed one comes first, with its reason.
        s.on_batch_started(Time::from_millis(5000));
        s.on_batch_failed(
            Time::from_millis(5000),
            "foreachPartition",
            "42601: syntax error",
        );
        let failed = s.batch(5000).unwrap();
        assert_eq!(failed.status, "FAILED");
        assert_eq!(failed.num_failed_output_ops, 1);
        assert_eq!(
            failed.first_failure_reason.as_deref(),
            Some("foreachPartition: 42601: syntax error")
        );
        assert_eq!(s.statistics().num_failed_batches, 1);
        assert_eq!(s.statistics().num_active_batches, 0);
    }
}
