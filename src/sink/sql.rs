//! PostgreSQL and MySQL/MariaDB sinks (course §4.3.1), with parameterized statements only.
//!
//! - **Idempotent** ([`DStream::write_sql`]): each worker writes its share of a batch in one
//!   transaction with the given statement, normally an upsert (`INSERT … ON CONFLICT … DO
//!   UPDATE` / `… ON DUPLICATE KEY UPDATE`); a replayed batch rewrites the same rows.
//! - **Transactional** ([`DirectStream::write_sql_with_offsets`], Kafka direct streams): the
//!   rows of a batch's partitions and those partitions' new offsets commit in one transaction,
//!   in the `sluice_kafka_offsets` table the stream loads its offsets from on start (give the
//!   stream the same store), so plain `INSERT`s are exactly-once too. A replayed batch whose
//!   offsets are already stored is skipped inside the transaction.
//!
//! A database that cannot be reached is retried with backoff (sluice's one retry policy:
//! capped exponential backoff, reported); the batch, and so the offset commit, waits for it. A permanent error
//! (a syntax error in the statement, a constraint violation, a type mismatch) fails the job
//! with the database's message; so does a transient one still failing when the job is asked to
//! stop (the batch is then replayed by the next run).
//!
//! [`DirectStream::write_sql_with_offsets`]: crate::source::kafka::DirectStream::write_sql_with_offsets

pub use crate::database::SqlValue;

use crate::database::{Connection, DbError, Dialect, connect};
use crate::dstream::partition::PartitionId;
use crate::dstream::{DStream, Data};
use crate::error::SluiceError;
use crate::offsets::OffsetRange;
use crate::retry::{Backoff, GaveUp};
use crate::sink::{BatchId, OutputError, Sink};

/// A connection to PostgreSQL (`postgres://…`) or MySQL/MariaDB (`mysql://…`) that writes
/// batches of rows, optionally with Kafka offsets, in one transaction each.
///
/// The statement uses the database's placeholders (`$1, $2` for PostgreSQL, `?` for MySQL).
///
/// # Examples
///
/// ```
/// use sluice::sink::SqlSink;
/// let sink = SqlSink::new("postgres://postgres@127.0.0.1/test", vec![], "INSERT INTO t VALUES ($1)");
/// assert!(sink.is_ok());
/// assert!(SqlSink::new("oracle://db", vec![], "INSERT INTO t VALUES (?)").is_err());
/// ```
pub struct SqlSink {
    url: String,
    dialect: Dialect,
    setup: Vec<String>,
    statement: String,
    conn: Option<Box<dyn Connection>>,
}

impl SqlSink {
    /// A sink at `url`; `setup` statements (e.g. `CREATE TABLE IF NOT EXISTS …`) run once per
    /// connection; `statement` runs once per row.
    pub fn new(
        url: impl Into<String>,
        setup: Vec<String>,
        statement: impl Into<String>,
    ) -> Result<Self, SluiceError> {
        let url = url.into();
        let dialect = Dialect::of_url(&url)?;
        Ok(SqlSink {
            url,
            dialect,
            setup,
            statement: statement.into(),
            conn: None,
        })
    }

    fn connection(&mut self) -> Result<&mut Box<dyn Connection>, DbError> {
        if self.conn.is_none() {
            let mut conn = connect(&self.url)?;
            // DDL commits implicitly in MySQL: the offsets table is made outside any batch.
            let setup = self
                .setup
                .iter()
                .map(String::as_str)
                .chain([self.dialect.create_offsets_table()]);
            for s in setup {
                // Two workers creating one table at once can collide (a known PostgreSQL race
                // on `IF NOT EXISTS`); the second attempt finds the table.
                if conn.execute_batch(s).is_err() {
                    conn.execute_batch(s)?;
                }
            }
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| DbError::transient("not connected".to_owned()))
    }

    /// Writes `rows` with the statement in one transaction, for your own outputs (inside
    /// [`foreach_partition`](DStream::foreach_partition), say): transient failures (the
    /// database away, a deadlock) are retried with backoff until `stop()` holds; a permanent
    /// one (a syntax error, a constraint violation) is returned at once with the database's
    /// message.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use sluice::sink::{SqlSink, SqlValue};
    /// let mut sink = SqlSink::new("postgres://postgres@127.0.0.1/test", vec![], "INSERT INTO t (x) VALUES ($1)")?;
    /// sink.write_rows(&[vec![SqlValue::Int(1)], vec![SqlValue::Int(2)]], || false)?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn write_rows(
        &mut self,
        rows: &[Vec<SqlValue>],
        stop: impl Fn() -> bool,
    ) -> Result<(), SluiceError> {
        self.write(rows, None, &stop)
            .map_err(|gave_up| SluiceError::OutputFailed {
                output: self.name(),
                batch_ms: 0,
                source: Box::new(gave_up.into_inner()),
            })
    }

    /// What the UI and errors call this sink (its URL without credentials).
    fn name(&self) -> String {
        format!("sql sink {}", crate::redact::url(&self.url))
    }

    /// One attempt at writing `rows` (and, when given, the new offsets of `group`) in one
    /// transaction, for [`Sink::commit`]: a transient failure drops the connection (the
    /// retry reconnects).
    fn commit(
        &mut self,
        rows: &[Vec<SqlValue>],
        offsets: Option<(&str, &[OffsetRange])>,
    ) -> Result<(), OutputError> {
        self.try_write(rows, offsets).map_err(|e| {
            if e.is_transient() {
                self.conn = None;
            }
            OutputError::from_failure(e.into_failure())
        })
    }

    /// Writes `rows` (and, when given, the new offsets of `group`) in one transaction;
    /// transient failures are retried until `stop()` holds.
    pub(crate) fn write(
        &mut self,
        rows: &[Vec<SqlValue>],
        offsets: Option<(&str, &[OffsetRange])>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), GaveUp<DbError>> {
        let what = format!("sql sink {}", crate::redact::url(&self.url));
        Backoff::default().retry(&what, stop, || {
            self.try_write(rows, offsets).map_err(|e| {
                if e.is_transient() {
                    self.conn = None; // reconnect next time
                }
                e.into_failure()
            })
        })
    }

    fn try_write(
        &mut self,
        rows: &[Vec<SqlValue>],
        offsets: Option<(&str, &[OffsetRange])>,
    ) -> Result<(), DbError> {
        let dialect = self.dialect;
        let statement = self.statement.clone();
        let mut tx = self.connection()?.transaction()?;
        if let Some((group, ranges)) = offsets.filter(|(_, r)| !r.is_empty()) {
            let mut done = true;
            for r in ranges {
                let stored = tx.query_i64(dialect.lock_offset(), &offset_key(r, group))?;
                done &= stored.is_some_and(|s| s >= r.until);
            }
            if done {
                // A batch replayed after a crash whose transaction had committed.
                tracing::info!(
                    "SQL sink: this share of the batch was committed before; not written again"
                );
                return Ok(()); // dropping the transaction rolls it back
            }
        }
        tx.execute_rows(&statement, rows)?;
        if let Some((group, ranges)) = offsets {
            let stored: Vec<Vec<SqlValue>> = ranges
                .iter()
                .map(|r| {
                    let mut row = offset_key(r, group);
                    row.push(SqlValue::Int(r.until));
                    row
                })
                .collect();
            tx.execute_rows(dialect.upsert_offset(), &stored)?;
        }
        tx.commit()
    }
}

/// (topic, group, partition) of a range, as the offsets table's key.
pub(crate) fn offset_key(r: &OffsetRange, group: &str) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(r.topic.clone()),
        SqlValue::Text(group.to_owned()),
        SqlValue::Int(i64::from(r.partition)),
    ]
}

impl<'s, T: Data> DStream<'s, T> {
    /// Writes every batch to PostgreSQL or MySQL: each worker runs `statement` (an upsert, for
    /// exactly-once) with `to_row(record)`'s parameters for its share of the batch, in one
    /// transaction; records for which `to_row` gives `None` are skipped. `setup` statements run
    /// once per connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn build(orders: sluice::DStream<'_, (String, String)>) {
    /// use sluice::sink::SqlValue;
    /// orders.write_sql(
    ///     "postgres://postgres@127.0.0.1/test",
    ///     vec!["CREATE TABLE IF NOT EXISTS myorders (name TEXT, orderid TEXT PRIMARY KEY)".into()],
    ///     "INSERT INTO myorders (name, orderid) VALUES ($1, $2) ON CONFLICT (orderid) DO UPDATE SET name = EXCLUDED.name",
    ///     |(name, id)| Some(vec![SqlValue::Text(name.clone()), SqlValue::Text(id.clone())]),
    /// );
    /// # }
    /// ```
    pub fn write_sql(
        &self,
        url: &str,
        setup: Vec<String>,
        statement: &str,
        to_row: impl Fn(&T) -> Option<Vec<SqlValue>> + 'static,
    ) {
        match SqlSink::new(url, setup, statement) {
            Ok(sink) => self.write_to(SqlRows {
                sink,
                to_row,
                rows: Vec::new(),
            }),
            Err(e) => self.ctx.fail_build(e),
        }
    }
}

/// `write_sql` as a [`Sink`]: a worker's rows of a batch in one transaction at commit.
struct SqlRows<F> {
    sink: SqlSink,
    to_row: F,
    rows: Vec<Vec<SqlValue>>,
}

impl<T, F: Fn(&T) -> Option<Vec<SqlValue>> + 'static> Sink<T> for SqlRows<F> {
    fn open(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        self.rows.clear();
        Ok(())
    }

    fn write(&mut self, _: &BatchId, _: &PartitionId, records: &[T]) -> Result<(), OutputError> {
        self.rows.extend(records.iter().filter_map(&self.to_row));
        Ok(())
    }

    fn commit(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.sink.commit(&self.rows, None)
    }

    fn name(&self) -> String {
        self.sink.name()
    }
}

#[cfg(feature = "kafka")]
impl crate::source::kafka::DirectStream<'_> {
    /// Exactly-once into PostgreSQL or MySQL (course §4.3.1, "atomic"): on the worker that reads
    /// each partition, a batch's rows (`to_row` of its records, skipping `None`) and the new
    /// offsets of its partitions commit in one transaction, in the `sluice_kafka_offsets` table.
    /// Give the stream the same table as its offset store
    /// (`OffsetStoreKind::Postgres(url)` / `MySql(url)`) so that a restart resumes from what was
    /// committed with the rows.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn build(stream: sluice::source::kafka::DirectStream<'_>) {
    /// use sluice::sink::SqlValue;
    /// stream.write_sql_with_offsets(
    ///     "postgres://postgres@127.0.0.1/test",
    ///     "my-group",
    ///     vec!["CREATE TABLE IF NOT EXISTS mydata (line TEXT)".into()],
    ///     "INSERT INTO mydata (line) VALUES ($1)",
    ///     |r| r.value_str().map(|v| vec![SqlValue::from(v)]),
    /// );
    /// # }
    /// ```
    pub fn write_sql_with_offsets(
        &self,
        url: &str,
        group: &str,
        setup: Vec<String>,
        statement: &str,
        to_row: impl Fn(&crate::source::kafka::ConsumerRecord) -> Option<Vec<SqlValue>> + 'static,
    ) {
        match SqlSink::new(url, setup, statement) {
            Ok(sink) => self.items().write_to(SqlRowsWithOffsets {
                sink,
                group: group.to_owned(),
                to_row,
                rows: Vec::new(),
                ranges: Vec::new(),
            }),
            Err(e) => self.items().ctx.fail_build(e),
        }
    }
}

/// `write_sql_with_offsets` as a [`Sink`]: a worker's rows of a batch and its partitions' new
/// offsets in one transaction at commit (a replay whose offsets are stored is skipped in it).
#[cfg(feature = "kafka")]
struct SqlRowsWithOffsets<F> {
    sink: SqlSink,
    group: String,
    to_row: F,
    rows: Vec<Vec<SqlValue>>,
    ranges: Vec<OffsetRange>,
}

#[cfg(feature = "kafka")]
impl<F> Sink<crate::source::kafka::KafkaItem> for SqlRowsWithOffsets<F>
where
    F: Fn(&crate::source::kafka::ConsumerRecord) -> Option<Vec<SqlValue>> + 'static,
{
    fn open(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        self.rows.clear();
        self.ranges.clear();
        Ok(())
    }

    fn write(
        &mut self,
        _: &BatchId,
        _: &PartitionId,
        items: &[crate::source::kafka::KafkaItem],
    ) -> Result<(), OutputError> {
        use crate::source::kafka::KafkaItem;
        for item in items {
            match item {
                KafkaItem::Record(r) => self.rows.extend((self.to_row)(r)),
                KafkaItem::Range(r) if r.until > r.from => self.ranges.push(r.clone()),
                KafkaItem::Range(_) => {}
            }
        }
        Ok(())
    }

    fn commit(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        if self.rows.is_empty() && self.ranges.is_empty() {
            return Ok(());
        }
        self.sink
            .commit(&self.rows, Some((&self.group, &self.ranges)))
    }

    fn name(&self) -> String {
        self.sink.name()
    }
}
