//! Spark's `ApplicationInfo` (with its attempt) and `ReceiverInfo` of the job a [`Status`]
//! follows, for the REST routes `/applications/{app}` and `/streaming/receivers`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Status, spark_date};

impl Status {
    /// Spark's `ApplicationInfo` of the job, with its one attempt (`completed` once it ended).
    pub fn application(&self) -> serde_json::Value {
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let end = self.ended.unwrap_or(now);
        serde_json::json!({
            "id": self.job.name,
            "name": self.job.name,
            "attempts": [{
                "startTime": spark_date(started),
                "endTime": self.ended.map_or_else(|| "1969-12-31T23:59:59.999GMT".to_owned(), spark_date),
                "lastUpdated": spark_date(end),
                "duration": end.saturating_sub(started),
                "sparkUser": std::env::var("USER").unwrap_or_default(),
                "completed": self.ended.is_some(),
                "appSparkVersion": concat!("sluice ", env!("CARGO_PKG_VERSION")),
                "startTimeEpoch": started,
                "endTimeEpoch": self.ended.map_or(-1, |e| e as i64),
                "lastUpdatedEpoch": end,
            }],
            "job": self.job,
        })
    }

    /// Spark's `ReceiverInfo` of each receiver: its rate per retained batch, and whether it
    /// brought records in the latest one.
    pub fn receivers(&self) -> Vec<serde_json::Value> {
        let inner = self.lock();
        let secs = self.job.batch_ms as f64 / 1000.0;
        inner
            .receivers
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let rates: Vec<(u64, f64)> = inner
                    .batches
                    .iter()
                    .filter_map(|b| {
                        let i = b.inputs.iter().find(|i| &i.source == name)?;
                        Some((b.batch_time.millis(), i.records as f64 / secs))
                    })
                    .collect();
                let avg = (!rates.is_empty())
                    .then(|| rates.iter().map(|r| r.1).sum::<f64>() / rates.len() as f64);
                let latest = inner
                    .batches
                    .back()
                    .and_then(|b| b.inputs.iter().find(|i| &i.source == name));
                let active = latest.is_some_and(|i| i.records > 0);
                let error = latest
                    .and_then(|i| i.receiver.as_ref())
                    .and_then(|r| r.last_error.clone());
                serde_json::json!({
                    "streamId": id,
                    "streamName": name,
                    "isActive": active && self.ended.is_none(),
                    "executorId": format!("process {}", self.job.process),
                    "executorHost": "127.0.0.1",
                    "lastErrorTime": error.as_ref().map(|(at, _)| spark_date(*at)),
                    "lastErrorMessage": error.as_ref().map(|(_, m)| m.clone()),
                    "lastError": error.as_ref().map(|(_, m)| m.clone()),
                    "avgEventRate": avg,
                    "eventRates": rates,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{batch, wc_job};
    use super::*;
    use crate::listener::StreamingListener;

    #[test]
    fn a_receivers_latest_error_is_its_last_error() {
        let s = Status::new(wc_job(), 10);
        let mut b = batch(1000, 5, 1);
        b.inputs[0].receiver = Some(crate::listener::ReceiverInput {
            last_error: Some((1_565_253_462_000, "connection lost: reset".into())),
            ..Default::default()
        });
        s.on_batch_completed(&b);
        let r = &s.receivers()[0];
        assert_eq!(r["streamName"], "socket");
        assert_eq!(r["lastErrorMessage"], "connection lost: reset");
        assert_eq!(r["lastErrorTime"], "2019-08-08T08:37:42.000GMT");
        assert_eq!(r["avgEventRate"], 5.0);
        assert_eq!(s.statistics().num_receivers, 1);
    }
}
