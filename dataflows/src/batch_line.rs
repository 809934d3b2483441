//! One line per batch on stderr for the jobs that write somewhere (a table, a topic), so that
//! an operator sees at the default verbosity what each batch did — as `print` shows it for the
//! jobs that print:
//!
//! ```text
//! batch 1796658676000 ms: 437 records read (events-0 → 200, events-1 → 37, events-2 → 200), 435 rows upserted into myorders, 2 malformed to the dead letters, in 12 ms
//! ```
//!
//! Batches that read nothing are not reported (an idle job stays quiet); the offsets named
//! are where each partition's reading stands after the batch, which is what is committed
//! once every output has finished.

use std::sync::Mutex;

use sluice::listener::{BatchInfo, StreamingListener};

/// How many records the job has set aside so far (a dead-letter file's or topic's count).
pub type SetAside = Box<dyn Fn() -> u64 + Send + Sync>;

/// The listener that prints the line; `written` names what the records became (`rows upserted
/// into myorders`).
pub struct BatchLine {
    written: String,
    /// Records the job set aside after the source, and how many of them were reported.
    set_aside: Option<(SetAside, Mutex<u64>)>,
}

impl BatchLine {
    /// Reports each batch's records as `{n} {written}`.
    pub fn new(written: impl Into<String>) -> Self {
        BatchLine {
            written: written.into(),
            set_aside: None,
        }
    }

    /// Malformed records the job sets aside itself (past the source): each line reports those
    /// set aside since the line before.
    pub fn set_aside(mut self, count: SetAside) -> Self {
        self.set_aside = Some((count, Mutex::new(0)));
        self
    }

    /// The line of batch `b` (`None` for a batch that read nothing).
    pub fn line(&self, b: &BatchInfo) -> Option<String> {
        let records = b.num_records();
        let mut malformed: u64 = b.inputs.iter().map(|i| i.malformed).sum();
        if let Some((count, reported)) = &self.set_aside {
            let now = count();
            let mut reported = reported.lock().unwrap_or_else(|p| p.into_inner());
            malformed += now.saturating_sub(*reported);
            *reported = now;
        }
        if records == 0 {
            return None;
        }
        let offsets: Vec<String> = b
            .inputs
            .iter()
            .flat_map(|i| &i.partitions)
            .filter(|p| p.until > p.from)
            .map(|p| format!("{} → {}", p.partition, p.until))
            .collect();
        let mut line = format!("batch {} ms: {records} records read", b.batch_time.millis());
        if !offsets.is_empty() {
            line.push_str(&format!(" ({})", offsets.join(", ")));
        }
        line.push_str(&format!(
            ", {} {}",
            records.saturating_sub(malformed),
            self.written
        ));
        if malformed > 0 {
            line.push_str(&format!(", {malformed} malformed to the dead letters"));
        }
        line.push_str(&format!(", in {} ms", b.processing_time.as_millis()));
        Some(line)
    }
}

impl StreamingListener for BatchLine {
    fn on_batch_completed(&self, b: &BatchInfo) {
        if let Some(line) = self.line(b) {
            eprintln!("{}", sluice::redact::redact(&line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::listener::{PartitionInput, SourceInput};

    #[test]
    fn a_batch_is_one_line_and_an_empty_one_none() {
        let mut b = BatchInfo {
            batch_time: sluice::Time::from_millis(2000),
            inputs: vec![SourceInput {
                source: "kafka events".into(),
                records: 10,
                malformed: 2,
                partitions: vec![PartitionInput {
                    partition: "events-0".into(),
                    from: 5,
                    until: 15,
                    lag: 0,
                }],
                receiver: None,
            }],
            scheduling_delay: Default::default(),
            processing_time: std::time::Duration::from_millis(7),
            total_delay: Default::default(),
            state: vec![],
            snapshots: vec![],
            outputs: vec![],
        };
        let line = BatchLine::new("rows upserted into myorders");
        assert_eq!(
            line.line(&b).unwrap(),
            "batch 2000 ms: 10 records read (events-0 → 15), 8 rows upserted into myorders, 2 malformed to the dead letters, in 7 ms"
        );
        b.inputs[0].records = 0;
        assert_eq!(line.line(&b), None);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
        let s = std::sync::Arc::clone(&seen);
        let line = BatchLine::new("cleaned").set_aside(Box::new(move || {
            s.load(std::sync::atomic::Ordering::SeqCst)
        }));
        b.inputs[0].records = 10;
        b.inputs[0].malformed = 0;
        assert!(line.line(&b).unwrap().contains(", 7 cleaned, 3 malformed"));
        seen.store(4, std::sync::atomic::Ordering::SeqCst);
        assert!(line.line(&b).unwrap().contains(", 9 cleaned, 1 malformed"));
    }
}
