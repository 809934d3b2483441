//! The JSON shapes of the REST API: Spark's (`org.apache.spark.status.api.v1.streaming`:
//! `StreamingStatistics`, `BatchInfo`, `OutputOperationInfo`) field for field, then sluice's own
//! fields (inputs per source, receivers, state per operator, snapshots).

use serde::Serialize;

/// The job as the page describes it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobDescription {
    /// The job's name (`StreamingConfig::app_name`); the REST API's application id.
    pub name: String,
    /// Batch interval, ms.
    pub batch_ms: u64,
    /// Worker threads per process.
    pub workers: usize,
    /// Processes of the job.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// The job's settings as `(name, value)`, shown as they are (the command line's flags).
    pub settings: Vec<(String, String)>,
}

/// Spark's `StreamingStatistics`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// When the job started, as Spark writes dates (`2019-08-08T10:37:42.000GMT`).
    pub start_time: String,
    /// Batch interval, ms.
    pub batch_duration: u64,
    /// Receivers seen so far (a socket, the receiver-based Kafka stream; a direct stream is
    /// none, as in Spark).
    pub num_receivers: usize,
    /// Sources that brought records in the retained batches.
    pub num_active_receivers: usize,
    /// Sources that did not.
    pub num_inactive_receivers: usize,
    /// Batches completed since the start.
    pub num_total_completed_batches: u64,
    /// Batches kept in memory for the page.
    pub num_retained_completed_batches: usize,
    /// Batches started and not yet completed.
    pub num_active_batches: usize,
    /// Batches an output failed (the job stops after the first: sluice).
    pub num_failed_batches: usize,
    /// Records of all completed batches.
    pub num_processed_records: u64,
    /// Records received (equal to processed: a batch's records are received before it runs).
    pub num_received_records: u64,
    /// Records per second over the retained batches.
    pub avg_input_rate: Option<f64>,
    /// Mean over the retained batches, ms.
    pub avg_scheduling_delay: Option<u64>,
    /// Mean over the retained batches, ms.
    pub avg_processing_time: Option<u64>,
    /// Mean over the retained batches, ms.
    pub avg_total_delay: Option<u64>,
    /// The mean unrounded, ms (sluice; Spark's field is rounded to whole ms).
    pub avg_scheduling_delay_exact: Option<f64>,
    /// The mean unrounded, ms (sluice).
    pub avg_processing_time_exact: Option<f64>,
    /// The mean unrounded, ms (sluice).
    pub avg_total_delay_exact: Option<f64>,
    /// Malformed records set aside since the start (sluice).
    pub num_malformed_records: u64,
}

/// One source's input in a batch (sluice).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InputJson {
    /// The source.
    pub source: String,
    /// Records.
    pub records: u64,
    /// Malformed records set aside.
    pub malformed: u64,
    /// What the batch read of each partition (Kafka offset ranges and lag).
    pub partitions: Vec<PartitionJson>,
    /// A receiver's share: what it took and how long it held its sender back (sluice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<ReceiverJson>,
}

/// What a receiver did for a batch (sluice; see [`crate::listener::ReceiverInput`]).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverJson {
    /// Lines the batch took.
    pub lines: u64,
    /// Their memory.
    pub bytes: u64,
    /// The receiver's buffer bound.
    pub max_buffered_bytes: u64,
    /// Time the receiver waited for room or for its rate since the batch before.
    pub held_back_ms: u64,
    /// The rate limit in force, lines/s.
    pub rate_limit: Option<u64>,
}

/// One partition's range in a batch (sluice; Spark shows these as the Kafka batch's
/// "offset ranges" in its batch page).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionJson {
    /// `topic-partition`.
    pub partition: String,
    /// First offset read.
    pub from: i64,
    /// One past the last offset read.
    pub until: i64,
    /// Records after `until` when the batch was planned.
    pub lag: i64,
}

/// One stateful operator's state after a batch (sluice).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StateJson {
    /// The operator.
    pub operator: String,
    /// Keys.
    pub keys: u64,
    /// Approximate bytes.
    pub approx_bytes: u64,
}

/// One stateful operator's snapshot written after a batch (sluice).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotJson {
    /// The operator.
    pub operator: String,
    /// Bytes handed to the writer.
    pub bytes: u64,
    /// Entries: every key of a full part; the changes logged since the previous snapshot for
    /// an incremental one.
    pub keys: u64,
    /// Workers that encoded a full part (the others handed over their logged changes).
    pub full_parts: u64,
    /// Time spent, summed over the workers, ms.
    pub duration_ms: f64,
    /// Workers whose part could not be written.
    pub failed: u64,
}

/// Spark's `OutputOperationInfo` (without start and end dates: sluice measures durations).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutputOpJson {
    /// Its number, in the order the job declared its outputs.
    pub output_op_id: usize,
    /// `print`, `foreachRDD`, `foreachPartition`, `saveAsTextFiles`.
    pub name: String,
    /// As Spark's: the operation (sluice has no call sites to show).
    pub description: String,
    /// From the batch's processing start until it finished, ms.
    pub duration: u64,
    /// With sub-millisecond precision, ms (sluice).
    pub duration_exact: f64,
    /// Why it failed (a failed output fails the job: always none on a completed batch).
    pub failure_reason: Option<String>,
}

/// Spark's `BatchInfo`, then sluice's inputs and state.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BatchJson {
    /// The batch time in ms (Spark's batch id).
    pub batch_id: u64,
    /// The batch time as a date.
    pub batch_time: String,
    /// `COMPLETED`.
    pub status: String,
    /// Batch interval, ms.
    pub batch_duration: u64,
    /// Records (of a queued batch: as its sources fixed them at generation, when they can
    /// tell; see `input_size_known`).
    pub input_size: u64,
    /// Whether `input_size` is known (sluice): always for a completed batch; for a queued one
    /// when its sources fixed it at generation (Kafka); not for a batch still processing.
    pub input_size_known: bool,
    /// ms.
    pub scheduling_delay: Option<u64>,
    /// ms.
    pub processing_time: Option<u64>,
    /// ms.
    pub total_delay: Option<u64>,
    /// Output operations still running (0: the batch is complete).
    pub num_active_output_ops: u64,
    /// Output operations that finished (sluice reports a batch when all of them have).
    pub num_completed_output_ops: u64,
    /// Output operations that failed (a failed output fails the job).
    pub num_failed_output_ops: u64,
    /// Output operations.
    pub num_total_output_ops: u64,
    /// Why the first failed one failed.
    pub first_failure_reason: Option<String>,
    /// Scheduling delay with sub-millisecond precision, ms (sluice).
    pub scheduling_delay_exact: f64,
    /// Processing time with sub-millisecond precision, ms (sluice).
    pub processing_time_exact: f64,
    /// Total delay with sub-millisecond precision, ms (sluice).
    pub total_delay_exact: f64,
    /// Input per source (sluice).
    pub inputs: Vec<InputJson>,
    /// State per stateful operator after the batch (sluice).
    pub state: Vec<StateJson>,
    /// Snapshots written after the batch, per operator (sluice; empty unless one was due).
    pub snapshots: Vec<SnapshotJson>,
    /// The output operations (also at `/batches/{id}/operations`, as Spark's).
    pub output_operations: Vec<OutputOpJson>,
}

/// A date as Spark's REST API writes it: `2019-08-08T10:37:42.000GMT`.
pub fn spark_date(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_dates() {
        assert_eq!(spark_date(1_565_253_462_000), "2019-08-08T08:37:42.000GMT");
        assert_eq!(spark_date(0), "1970-01-01T00:00:00.000GMT");
        assert_eq!(spark_date(951_782_400_123), "2000-02-29T00:00:00.123GMT");
    }
}
