//! Backpressure: Spark's PID rate estimator (`PIDRateEstimator`), with Spark's defaults.
//!
//! After each batch, the estimator compares the rate it allowed with the rate the job actually
//! processed (`records / processing delay`) and corrects by `proportional × error + integral ×
//! (scheduling delay × processing rate / interval) + derivative × d(error)/dt`, never below
//! `min_rate`. Until it has seen a batch it allows the initial rate (Spark's
//! `backpressure.initialRate`), so the first batch is bounded.

use std::time::Duration;

/// Settings of the PID estimator (Spark's `spark.streaming.backpressure.pid.*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PidSettings {
    /// Weight of the current error (1.0).
    pub proportional: f64,
    /// Weight of the accumulated error (0.2).
    pub integral: f64,
    /// Weight of the error's change (0.0).
    pub derivative: f64,
    /// The lowest rate it sets, records/s (100).
    pub min_rate: f64,
}

impl Default for PidSettings {
    fn default() -> Self {
        PidSettings {
            proportional: 1.0,
            integral: 0.2,
            derivative: 0.0,
            min_rate: 100.0,
        }
    }
}

/// Backpressure settings (Spark's `spark.streaming.backpressure.*`), for the Kafka direct
/// stream and for receivers.
///
/// # Examples
///
/// ```
/// use sluice::source::{Backpressure, PidSettings};
/// let bp = Backpressure { initial_rate: Some(1000), pid: PidSettings::default() };
/// assert_eq!(bp.pid.min_rate, 100.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backpressure {
    /// Records/s over the stream before the first batch has finished (bounds the first batch).
    pub initial_rate: Option<u64>,
    /// The PID estimator's settings.
    pub pid: PidSettings,
}

impl Backpressure {
    /// Feeds a finished batch to `estimator` (made at the first batch): the new rate, records/s,
    /// if it changes.
    ///
    /// Batches in flight are processed concurrently in timely (Spark runs one job at a time): a
    /// batch that waited for earlier ones was partly processed while waiting, so its processing
    /// time lies between `processing` and `processing + scheduling`. The upper bound gives a
    /// conservative rate, exact when batches do not overlap.
    pub(crate) fn next_rate(
        &self,
        estimator: &mut Option<PidRateEstimator>,
        batch: &super::CompletedBatch,
    ) -> Option<f64> {
        let estimator =
            estimator.get_or_insert_with(|| PidRateEstimator::new(batch.interval_ms, self.pid));
        let busy = batch.processing_delay + batch.scheduling_delay;
        estimator.compute(
            batch.time.millis(),
            batch.records,
            busy,
            batch.scheduling_delay,
        )
    }
}

/// Spark's PID rate estimator for one stream (or one worker's share of it).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::source::rate::{PidRateEstimator, PidSettings};
/// let mut pid = PidRateEstimator::new(1000, PidSettings::default());
/// // The first observation only calibrates (as in Spark).
/// assert_eq!(pid.compute(1000, 10_000, Duration::from_millis(500), Duration::ZERO), None);
/// // Processing keeps up at 20 000/s, so the rate moves toward it.
/// let rate = pid.compute(2000, 10_000, Duration::from_millis(500), Duration::ZERO).unwrap();
/// assert!((rate - 20_000.0).abs() < 1.0);
/// ```
#[derive(Clone, Debug)]
pub struct PidRateEstimator {
    batch_ms: u64,
    settings: PidSettings,
    first_run: bool,
    latest_time: u64,
    latest_rate: f64,
    latest_error: f64,
}

impl PidRateEstimator {
    /// An estimator for batches of `batch_ms`.
    pub fn new(batch_ms: u64, settings: PidSettings) -> Self {
        PidRateEstimator {
            batch_ms: batch_ms.max(1),
            settings,
            first_run: true,
            latest_time: 0,
            latest_rate: -1.0,
            latest_error: -1.0,
        }
    }

    /// Feeds a finished batch (time in ms); the new rate in records/s, if it changes.
    pub fn compute(
        &mut self,
        time_ms: u64,
        elements: u64,
        processing: Duration,
        scheduling: Duration,
    ) -> Option<f64> {
        let processing_ms = processing.as_secs_f64() * 1e3;
        if time_ms <= self.latest_time || elements == 0 || processing_ms <= 0.0 {
            return None;
        }
        let since_update = (time_ms - self.latest_time) as f64 / 1000.0;
        let processing_rate = elements as f64 / processing_ms * 1000.0;
        let error = self.latest_rate - processing_rate;
        let historical_error =
            scheduling.as_secs_f64() * 1e3 * processing_rate / self.batch_ms as f64;
        let d_error = (error - self.latest_error) / since_update;
        let s = self.settings;
        let new_rate = (self.latest_rate
            - s.proportional * error
            - s.integral * historical_error
            - s.derivative * d_error)
            .max(s.min_rate);
        self.latest_time = time_ms;
        if self.first_run {
            self.latest_rate = processing_rate;
            self.latest_error = 0.0;
            self.first_run = false;
            None
        } else {
            self.latest_rate = new_rate;
            self.latest_error = error;
            Some(new_rate)
        }
    }
}
