//! Where batches go: text files, databases, Kafka (`ARCHITECTURE.md` §5). One sink per file.
//!
//! A batch that crashed between its output and its offset commit is replayed from its plan with
//! the same content, so a sink is exactly-once when writing a batch again changes nothing
//! (idempotent: an upsert keyed by the data, files replaced whole) or when the batch's rows and
//! its offsets commit in one transaction (transactional).
//!
//! - [`text_files`]: `save_as_text_files` (always built);
//! - [`sql`]: PostgreSQL and MySQL/MariaDB, idempotent or with offsets (features `postgres`,
//!   `mysql`);
//! - [`kafka`]: at-least-once, transactional, exactly-once Kafka → Kafka (feature `kafka`);
//! - [`user`]: the user's own outputs with the same retry, failure and replay rules
//!   ([`Sink`], `try_foreach_batch`, `try_foreach_partition`; always built).

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod sql;
pub mod text_files;
pub mod user;

#[cfg(any(feature = "postgres", feature = "mysql"))]
pub use sql::{SqlSink, SqlValue};
pub use user::{BatchId, OutputError, Sink};
