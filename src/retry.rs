//! One retry policy for every loop that waits for the world: a socket reconnecting, a broker
//! coming back, a database accepting a transaction, a producer delivering a batch.
//!
//! The caller says, per failed attempt, whether the failure is **transient** (the server is
//! down, a connection dropped, a lock timed out: waiting helps) or **permanent** (a syntax
//! error in the user's statement, a constraint violation, a type mismatch, an unknown topic:
//! waiting never helps). Transient failures are retried with capped exponential backoff and
//! reported; a permanent one ends the loop at once with the server's own message. Every wait
//! checks the caller's stop condition in slices of at most 50 ms, so a job asked to stop leaves
//! a loop within a second even while its server is down.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// Waiting may help: retry.
    Transient(E),
    /// Waiting never helps: give up now.
    Permanent(E),
}

/// Why a retry loop ended without success.
#[derive(Debug)]
pub(crate) enum GaveUp<E> {
    /// An attempt failed permanently.
    Permanent(E),
    /// The stop condition held while attempts still failed; the last error.
    Stopped(E),
}

impl<E> GaveUp<E> {
    /// The last error.
    pub(crate) fn into_inner(self) -> E {
        match self {
            GaveUp::Permanent(e) | GaveUp::Stopped(e) => e,
        }
    }
}

/// Capped exponential backoff: `first`, doubling, at most `max` between attempts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

/// Transient failures retried in this process so far, per operation (`sql sink postgres://…`,
/// `write-ahead log`), for the `sluice_retries_total` metric.
static RETRIES: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Transient failures retried in this process so far, per operation (passwords in URLs
/// removed).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn retries() -> std::collections::BTreeMap<String, u64> {
    RETRIES.lock().map(|r| r.clone()).unwrap_or_default()
}

fn count_retry(what: &dyn Display) {
    let what = without_password(&what.to_string());
    if let Ok(mut r) = RETRIES.lock() {
        *r.entry(what).or_default() += 1;
    }
}

/// `scheme://user:secret@host…` → `scheme://user@host…` (every URL in `text`).
fn without_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', ' ', '?']).unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

impl Backoff {
    /// A policy waiting `first`, then twice as long each time, at most `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max }
    }

    /// Runs `attempt` until it succeeds, fails permanently, or `stop()` holds after a transient
    /// failure. `what` names the operation in the warnings (`"sql sink postgres://…"`).
    pub(crate) fn retry<T, E: Display>(
        &self,
        what: &dyn Display,
        stop: &dyn Fn() -> bool,
        mut attempt: impl FnMut() -> Result<T, Failure<E>>,
    ) -> Result<T, GaveUp<E>> {
        let mut wait = self.first;
        let mut failures = 0u64;
        loop {
            match attempt() {
                Ok(v) => {
                    if failures > 0 {
                        tracing::info!("{what}: succeeded after {failures} failed attempts");
                    }
                    return Ok(v);
                }
                Err(Failure::Permanent(e)) => return Err(GaveUp::Permanent(e)),
                Err(Failure::Transient(e)) => {
                    if stop() {
                        return Err(GaveUp::Stopped(e));
                    }
                    failures += 1;
                    count_retry(what);
                    // Reported at once, then every 30th attempt (a server down for an hour
                    // should not fill the log); every attempt at debug level.
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!("{what}: {e}; retrying in {wait:?} (attempt {failures})");
                    } else {
                        tracing::debug!("{what}: {e}; retrying in {wait:?} (attempt {failures})");
                    }
                    if sleep_unless(wait, stop) {
                        return Err(GaveUp::Stopped(e));
                    }
                    wait = (wait * 2).min(self.max);
                }
            }
        }
    }
}

/// Sleeps for `wait` unless `stop()` holds first (checked every 50 ms); true if it did.
pub(crate) fn sleep_unless(wait: Duration, stop: &dyn Fn() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if stop() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn transient_failures_are_retried_until_success() {
        let tries = Cell::new(0);
        let policy = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let got = policy.retry(&"op", &|| false, || {
            tries.set(tries.get() + 1);
            if tries.get() < 4 {
                Err(Failure::Transient("down"))
            } else {
                Ok(7)
            }
        });
        assert_eq!(got.ok(), Some(7));
        assert_eq!(tries.get(), 4);
    }

    #[test]
    fn a_permanent_failure_ends_at_once() {
        let tries = Cell::new(0);
        let got: Result<(), _> = Backoff::default().retry(&"op", &|| false, || {
            tries.set(tries.get() + 1);
            Err(Failure::Permanent("syntax error"))
        });
        assert!(matches!(got, Err(GaveUp::Permanent("syntax error"))));
        assert_eq!(tries.get(), 1);
    }

    #[test]
    fn a_stop_ends_the_wait_promptly() {
        let started = Instant::now();
        let stop_at = started + Duration::from_millis(120);
        let policy = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let got: Result<(), _> = policy.retry(&"op", &|| Instant::now() >= stop_at, || {
            Err(Failure::Transient("down"))
        });
        assert!(matches!(got, Err(GaveUp::Stopped("down"))));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn retries_are_counted_without_passwords() {
        assert_eq!(
            without_password("sql sink postgres://app:s3cret@db:5432/x?sslmode=require"),
            "sql sink postgres://app@db:5432/x?sslmode=require"
        );
        assert_eq!(without_password("write-ahead log"), "write-ahead log");
        assert_eq!(without_password("redis://host:6379"), "redis://host:6379");
    }
}
