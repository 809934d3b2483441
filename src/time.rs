//! Batch time: one timely epoch is one batch.
//!
//! The timely timestamp of every sluice dataflow is the **batch time in milliseconds since the
//! Unix epoch** (`u64`), exactly what Spark prints as `Time: 1565253462000 ms`. Batch times are
//! multiples of the batch interval; batch `t` holds what arrived in `(t - interval, t]`.

use std::fmt;
use std::time::Duration;

use crate::error::{Result, SluiceError};

/// The time of one batch, in milliseconds since the Unix epoch.
///
/// # Examples
///
/// ```
/// let t = sluice::Time::from_millis(1565253462000);
/// assert_eq!(t.to_string(), "1565253462000 ms");
/// assert_eq!(t.millis(), 1565253462000);
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Time(u64);

impl Time {
    /// A batch time from milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }
    /// The batch time in milliseconds.
    pub const fn millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A duration shown in milliseconds with the precision a reader wants: whole milliseconds from
/// 10 ms up, two decimals below (`0.37`, `4.20`, `136`), never `0.37186400000000003`. For logs,
/// the command line and the web page.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::time::Millis;
/// assert_eq!(Millis(Duration::from_micros(371_864)).to_string(), "372");
/// assert_eq!(Millis(Duration::from_micros(371)).to_string(), "0.37");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Millis(pub Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1e3;
        if ms >= 10.0 {
            write!(f, "{}", ms.round() as u64)
        } else {
            write!(f, "{ms:.2}")
        }
    }
}

/// Checks that `d` is a whole, positive number of milliseconds and returns it in ms.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(sluice::time::whole_millis(Duration::from_secs(2)).unwrap(), 2000);
/// assert!(sluice::time::whole_millis(Duration::from_micros(1500)).is_err());
/// ```
pub fn whole_millis(d: Duration) -> Result<u64> {
    let ms = d.as_millis();
    if ms == 0 || Duration::from_millis(ms as u64) != d || ms > u128::from(u64::MAX / 4) {
        return Err(SluiceError::InvalidBatchInterval { given: d });
    }
    Ok(ms as u64)
}

/// Checks that `d` is a positive multiple of the batch interval; returns it in ms.
///
/// `what` names the setting in the error ("window length", "slide interval").
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::time::multiple_of_batch;
/// assert_eq!(multiple_of_batch("window length", Duration::from_secs(6), 2000).unwrap(), 6000);
/// let err = multiple_of_batch("window length", Duration::from_secs(5), 2000).unwrap_err();
/// assert!(err.to_string().contains("not a multiple"));
/// ```
pub fn multiple_of_batch(what: &'static str, d: Duration, batch_ms: u64) -> Result<u64> {
    let ms = d.as_millis() as u64;
    if ms == 0 || Duration::from_millis(ms) != d || !ms.is_multiple_of(batch_ms) {
        let suggestion = (ms.div_ceil(batch_ms)).max(1) * batch_ms;
        return Err(SluiceError::NotAMultipleOfBatch {
            what,
            given_ms: ms,
            batch_ms,
            suggestion,
        });
    }
    Ok(ms)
}

/// Parses a human duration such as `2s`, `500ms`, `1m 30s` (for command lines and configs).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(sluice::time::parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert!(sluice::time::parse_duration("two seconds").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration> {
    if text.trim().starts_with('-') {
        return Err(SluiceError::InvalidConfig {
            problem: format!("`{text}` is negative"),
            fix: "give a positive duration, for example `2s`, `500ms` or `1m`".into(),
        });
    }
    humantime::parse_duration(text.trim()).map_err(|e| SluiceError::InvalidConfig {
        problem: format!("`{text}` is not a duration ({e})"),
        fix: "write it as a number with a unit, for example `2s`, `500ms` or `1m`".into(),
    })
}

/// The first batch time strictly after `now_ms`, aligned to `interval_ms` (Spark's zero time
/// plus one interval).
pub(crate) fn next_batch_after(now_ms: u64, interval_ms: u64) -> u64 {
    (now_ms / interval_ms + 1) * interval_ms
}

/// The smallest batch time at or after `now_ms`.
pub(crate) fn batch_at_or_after(now_ms: u64, interval_ms: u64) -> u64 {
    now_ms.div_ceil(interval_ms) * interval_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_alignment() {
        assert_eq!(next_batch_after(0, 1000), 1000);
        assert_eq!(next_batch_after(999, 1000), 1000);
        assert_eq!(next_batch_after(1000, 1000), 2000);
        assert_eq!(batch_at_or_after(1000, 1000), 1000);
        assert_eq!(batch_at_or_after(1001, 1000), 2000);
    }

    #[test]
    fn sub_millisecond_interval_is_rejected() {
        assert!(whole_millis(Duration::ZERO).is_err());
        assert!(whole_millis(Duration::from_nanos(1_000_500)).is_err());
        assert_eq!(whole_millis(Duration::from_millis(1)).unwrap(), 1);
    }
}
