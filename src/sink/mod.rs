//! Sinks that make output exactly-once (`shared/DESIGN.md` §5).
//!
//! A batch that crashed between its output and its offset commit is replayed from its plan with
//! the same content, so a sink is exactly-once when writing a batch again changes nothing
//! (idempotent: an upsert keyed by the data) or when the batch's rows and its offsets commit in
//! one transaction (transactional).

pub mod kafka;
pub mod sql;

pub use sql::{SqlSink, SqlValue};
