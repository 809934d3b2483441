//! Prometheus metrics of a running job, kept by a [`StreamingListener`] with the
//! `prometheus-client` crate (the Prometheus project's own Rust client) and served as text at
//! `/metrics` by the [web UI](crate::webui).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sluice_batches_completed_total` | counter | |
//! | `sluice_batches_failed_total` | counter | (an output failed it for good; the job then stops) |
//! | `sluice_records_total` | counter | `source` |
//! | `sluice_malformed_records_total` | counter | `source` (records set aside as dead letters) |
//! | `sluice_partition_records_total` | counter | `source`, `partition` (Kafka: offsets read) |
//! | `sluice_partition_lag_records` | gauge | `source`, `partition` (Kafka: records after the latest batch) |
//! | `sluice_receiver_held_back_seconds_total` | counter | `source` (a receiver waited for room or for its rate: its sender was held back) |
//! | `sluice_receiver_batch_bytes` | gauge | `source` (memory of the lines the latest batch took from a receiver) |
//! | `sluice_receiver_rate_limit` | gauge | `source` (lines/s in force: max rate or backpressure; 0 = none) |
//! | `sluice_scheduling_delay_seconds` | histogram | |
//! | `sluice_processing_time_seconds` | histogram | |
//! | `sluice_total_delay_seconds` | histogram | |
//! | `sluice_state_keys` | gauge | `operator` |
//! | `sluice_state_bytes` | gauge | `operator` (approximate, see [`StateSize`](crate::listener::StateSize)) |
//! | `sluice_snapshot_writes_total`, `sluice_snapshot_write_failures_total` | counter | `operator` (a failure is a worker's part not written) |
//! | `sluice_snapshot_bytes_total` | counter | `operator` |
//! | `sluice_snapshot_write_seconds` | histogram | (per batch with a snapshot, summed over operators and workers) |
//! | `sluice_output_operation_seconds` | histogram | `operation` (`print`, `foreachRDD`…: from the batch's processing start until it finished) |
//! | `sluice_retries_total` | counter | `operation` (`sql sink postgres://app@db/x`, `write-ahead log`…: transient failures retried; passwords removed) |
//! | `sluice_last_completed_batch_timestamp_seconds` | gauge | |
//! | `sluice_batch_interval_seconds` | gauge | |
//!
//! Each process of a job has its own: its workers' share of the records and state, except on
//! process 0 of several, whose records and state are the whole job's.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::listener::{BatchInfo, StreamingListener};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    source: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabel {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabel {
    operation: String,
}

/// 0.5 ms … ~33 s: sub-millisecond batches up to a badly overloaded job.
fn delay_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperatorLabel {
    operator: String,
}

/// The metrics of one process, updated once per completed batch.
///
/// # Examples
///
/// ```
/// let metrics = sluice::metrics::Metrics::new(std::time::Duration::from_secs(2));
/// assert!(metrics.encode().contains("sluice_batches_completed_total 0"));
/// ```
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    batches: Counter,
    failed: Counter,
    records: Family<SourceLabel, Counter>,
    malformed: Family<SourceLabel, Counter>,
    partition_records: Family<PartitionLabel, Counter>,
    partition_lag: Family<PartitionLabel, Gauge>,
    held_back: Family<SourceLabel, Counter<f64, AtomicU64>>,
    receiver_bytes: Family<SourceLabel, Gauge>,
    receiver_rate: Family<SourceLabel, Gauge>,
    scheduling: Histogram,
    processing: Histogram,
    total: Histogram,
    state_keys: Family<OperatorLabel, Gauge>,
    state_bytes: Family<OperatorLabel, Gauge>,
    snapshot_writes: Family<OperatorLabel, Counter>,
    snapshot_failures: Family<OperatorLabel, Counter>,
    snapshot_bytes: Family<OperatorLabel, Counter>,
    snapshot_seconds: Histogram,
    outputs: Family<OutputLabel, Histogram, fn() -> Histogram>,
    retries: Family<RetryLabel, Counter>,
    retries_seen: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    last_batch: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Metrics of a job with batches of `batch`.
    pub fn new(batch: std::time::Duration) -> Self {
        let buckets = delay_buckets;
        let mut m = Metrics {
            batches: Counter::default(),
            failed: Counter::default(),
            records: Family::default(),
            malformed: Family::default(),
            partition_records: Family::default(),
            partition_lag: Family::default(),
            held_back: Family::default(),
            receiver_bytes: Family::default(),
            receiver_rate: Family::default(),
            scheduling: buckets(),
            processing: buckets(),
            total: buckets(),
            state_keys: Family::default(),
            state_bytes: Family::default(),
            snapshot_writes: Family::default(),
            snapshot_failures: Family::default(),
            snapshot_bytes: Family::default(),
            snapshot_seconds: buckets(),
            outputs: Family::new_with_constructor(delay_buckets),
            retries: Family::default(),
            retries_seen: std::sync::Mutex::new(crate::retry::retries()),
            last_batch: Gauge::default(),
            registry: Registry::with_prefix("sluice"),
        };
        m.registry.register(
            "batches_completed",
            "Batches whose outputs all finished",
            m.batches.clone(),
        );
        m.registry.register(
            "batches_failed",
            "Batches an output operation failed for good (the job then stops)",
            m.failed.clone(),
        );
        m.registry
            .register("records", "Records received, per source", m.records.clone());
        m.registry.register(
            "malformed_records",
            "Malformed records set aside (dead letters), per source",
            m.malformed.clone(),
        );
        m.registry.register(
            "partition_records",
            "Records read per source partition (Kafka: offsets)",
            m.partition_records.clone(),
        );
        m.registry.register(
            "partition_lag_records",
            "Records of a partition after what the latest batch read (Kafka consumer lag)",
            m.partition_lag.clone(),
        );
        m.registry.register_with_unit(
            "receiver_held_back",
            "Time a receiver waited for room in its buffer or for its rate (its sender held back)",
            Unit::Seconds,
            m.held_back.clone(),
        );
        m.registry.register(
            "receiver_batch_bytes",
            "Memory of the lines the latest batch took from a receiver",
            m.receiver_bytes.clone(),
        );
        m.registry.register(
            "receiver_rate_limit",
            "A receiver's rate limit in force, lines/s (max rate or backpressure; 0: none)",
            m.receiver_rate.clone(),
        );
        m.registry.register_with_unit(
            "scheduling_delay",
            "From a batch being due to its processing starting",
            Unit::Seconds,
            m.scheduling.clone(),
        );
        m.registry.register_with_unit(
            "processing_time",
            "From a batch's processing starting to every output having finished",
            Unit::Seconds,
            m.processing.clone(),
        );
        m.registry.register_with_unit(
            "total_delay",
            "From a batch being due to every output having finished",
            Unit::Seconds,
            m.total.clone(),
        );
        m.registry.register(
            "state_keys",
            "Keys with state, per stateful operator",
            m.state_keys.clone(),
        );
        m.registry.register(
            "state_bytes",
            "Approximate bytes of state, per stateful operator",
            m.state_bytes.clone(),
        );
        m.registry.register(
            "snapshot_writes",
            "State snapshots written after a batch, per stateful operator",
            m.snapshot_writes.clone(),
        );
        m.registry.register(
            "snapshot_write_failures",
            "Workers' snapshot parts that could not be written, per stateful operator",
            m.snapshot_failures.clone(),
        );
        m.registry.register(
            "snapshot_bytes",
            "Bytes of state snapshots written, per stateful operator",
            m.snapshot_bytes.clone(),
        );
        m.registry.register_with_unit(
            "snapshot_write",
            "Time spent writing a batch's snapshots (summed over operators and workers)",
            Unit::Seconds,
            m.snapshot_seconds.clone(),
        );
        m.registry.register_with_unit(
            "output_operation",
            "From a batch's processing start until an output operation finished it",
            Unit::Seconds,
            m.outputs.clone(),
        );
        m.registry.register(
            "retries",
            "Transient failures retried, per sink, offset store or source",
            m.retries.clone(),
        );
        m.registry.register_with_unit(
            "last_completed_batch_timestamp",
            "The time of the latest completed batch, since the Unix epoch",
            Unit::Seconds,
            m.last_batch.clone(),
        );
        let interval: Gauge<f64, AtomicU64> = Gauge::default();
        interval.set(batch.as_secs_f64());
        m.registry.register_with_unit(
            "batch_interval",
            "The batch interval",
            Unit::Seconds,
            interval,
        );
        m
    }

    /// The metrics in Prometheus's text format (OpenMetrics 1.0, which Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        // Labels name sources and outputs; none may carry a secret (`crate::redact`).
        crate::redact::redact(&out).into_owned()
    }
}

impl Metrics {
    fn set_state(&self, state: &[crate::listener::StateSize]) {
        for s in state {
            let label = OperatorLabel {
                operator: s.operator.clone(),
            };
            self.state_keys
                .get_or_create(&label)
                .set(s.keys.min(i64::MAX as u64) as i64);
            self.state_bytes
                .get_or_create(&label)
                .set(s.approx_bytes.min(i64::MAX as u64) as i64);
        }
    }
}

impl StreamingListener for Metrics {
    fn on_batch_state(&self, _batch_time: crate::Time, state: &[crate::listener::StateSize]) {
        self.set_state(state);
    }

    fn on_batch_failed(&self, _batch_time: crate::Time, _output: &str, _reason: &str) {
        self.failed.inc();
    }

    fn on_batch_completed(&self, b: &BatchInfo) {
        self.batches.inc();
        for i in &b.inputs {
            let label = SourceLabel {
                source: i.source.clone(),
            };
            self.records.get_or_create(&label).inc_by(i.records);
            self.malformed.get_or_create(&label).inc_by(i.malformed);
            for p in &i.partitions {
                let label = PartitionLabel {
                    source: i.source.clone(),
                    partition: p.partition.clone(),
                };
                let read = (p.until - p.from).max(0) as u64;
                self.partition_records.get_or_create(&label).inc_by(read);
                self.partition_lag.get_or_create(&label).set(p.lag);
            }
            if let Some(r) = &i.receiver {
                self.held_back
                    .get_or_create(&label)
                    .inc_by(r.held_back_ms as f64 / 1e3);
                let gauge = |v: u64| v.min(i64::MAX as u64) as i64;
                self.receiver_bytes
                    .get_or_create(&label)
                    .set(gauge(r.bytes));
                self.receiver_rate
                    .get_or_create(&label)
                    .set(gauge(r.rate_limit.unwrap_or(0)));
            }
        }
        self.scheduling.observe(b.scheduling_delay.as_secs_f64());
        self.processing.observe(b.processing_time.as_secs_f64());
        self.total.observe(b.total_delay.as_secs_f64());
        self.set_state(&b.state);
        for w in &b.snapshots {
            let label = OperatorLabel {
                operator: w.operator.clone(),
            };
            self.snapshot_writes.get_or_create(&label).inc();
            self.snapshot_failures
                .get_or_create(&label)
                .inc_by(w.failed);
            self.snapshot_bytes.get_or_create(&label).inc_by(w.bytes);
        }
        if !b.snapshots.is_empty() {
            let spent: std::time::Duration = b.snapshots.iter().map(|w| w.duration).sum();
            self.snapshot_seconds.observe(spent.as_secs_f64());
        }
        for o in &b.outputs {
            self.outputs
                .get_or_create(&OutputLabel {
                    operation: o.name.clone(),
                })
                .observe(o.duration.as_secs_f64());
        }
        let now = crate::retry::retries();
        if let Ok(mut seen) = self.retries_seen.lock() {
            for (operation, n) in &now {
                let before = seen.get(operation).copied().unwrap_or(0);
                self.retries
                    .get_or_create(&RetryLabel {
                        operation: operation.clone(),
                    })
                    .inc_by(n.saturating_sub(before));
            }
            *seen = now;
        }
        self.last_batch.set(b.batch_time.millis() as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Time;
    use crate::listener::{OutputOp, SourceInput, StateSize};
    use std::time::Duration;

    #[test]
    fn a_batch_moves_every_metric_it_concerns() {
        let m = Metrics::new(Duration::from_secs(1));
        m.on_batch_completed(&BatchInfo {
            batch_time: Time::from_millis(2000),
            inputs: vec![SourceInput {
                source: "socket".into(),
                records: 7,
                malformed: 2,
                partitions: Vec::new(),
                receiver: Some(crate::listener::ReceiverInput {
                    lines: 7,
                    bytes: 700,
                    max_buffered_bytes: 1 << 20,
                    held_back_ms: 1500,
                    rate_limit: Some(100),
                    last_error: None,
                }),
            }],
            scheduling_delay: Duration::from_millis(1),
            processing_time: Duration::from_millis(3),
            total_delay: Duration::from_millis(4),
            state: vec![StateSize {
                operator: "totals".into(),
                keys: 5,
                approx_bytes: 200,
            }],
            snapshots: Vec::new(),
            outputs: vec![OutputOp {
                id: 0,
                name: "print".into(),
                duration: Duration::from_millis(3),
            }],
        });
        // One transient failure, retried, between two batches.
        let mut tries = 0;
        let _ = crate::retry::Backoff::new(Duration::from_millis(1), Duration::from_millis(1))
            .retry(
                &"sql sink postgres://app:pw@db/metrics-test",
                &|| false,
                || {
                    tries += 1;
                    if tries == 1 {
                        Err(crate::retry::Failure::Transient("down"))
                    } else {
                        Ok(())
                    }
                },
            );
        m.on_batch_completed(&BatchInfo {
            batch_time: Time::from_millis(3000),
            inputs: Vec::new(),
            scheduling_delay: Duration::ZERO,
            processing_time: Duration::ZERO,
            total_delay: Duration::ZERO,
            state: Vec::new(),
            snapshots: Vec::new(),
            outputs: Vec::new(),
        });
        m.on_batch_failed(Time::from_millis(4000), "print", "broken pipe");
        let text = m.encode();
        for line in [
            "sluice_batches_completed_total 2",
            "sluice_retries_total{operation=\"sql sink postgres://app@db/metrics-test\"} 1",
            "sluice_batches_failed_total 1",
            "sluice_records_total{source=\"socket\"} 7",
            "sluice_malformed_records_total{source=\"socket\"} 2",
            "sluice_receiver_held_back_seconds_total{source=\"socket\"} 1.5",
            "sluice_receiver_batch_bytes{source=\"socket\"} 700",
            "sluice_receiver_rate_limit{source=\"socket\"} 100",
            "sluice_state_keys{operator=\"totals\"} 5",
            "sluice_output_operation_seconds_count{operation=\"print\"} 1",
            "sluice_processing_time_seconds_count 2",
            "sluice_last_completed_batch_timestamp_seconds 3.0",
            "sluice_batch_interval_seconds 1.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "`{line}` missing in\n{text}"
            );
        }
    }
}
