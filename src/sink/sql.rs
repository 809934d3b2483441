//! PostgreSQL and MySQL/MariaDB sinks (course §4.3.1), with parameterized statements only.
//!
//! - **Idempotent**: each worker writes its share of a batch in one transaction with the given
//!   statement, normally an upsert (`INSERT … ON CONFLICT … DO UPDATE` /
//!   `… ON DUPLICATE KEY UPDATE`); a replayed batch rewrites the same rows.
//! - **Transactional** (Kafka direct streams, [`DirectStream::write_sql_with_offsets`]): the
//!   rows of a batch's partitions and those partitions' new offsets commit in one transaction,
//!   in the `sluice_kafka_offsets` table the stream loads its offsets from on start (give the
//!   stream the same store), so plain `INSERT`s are exactly-once too.
//!
//! A database that cannot be reached is retried with backoff (reported every attempt); the
//! batch, and so the offset commit, waits for it.
//!
//! [`DirectStream::write_sql_with_offsets`]: crate::source::kafka::DirectStream::write_sql_with_offsets

use std::time::Duration;

use crate::error::SluiceError;
use crate::offsets::OffsetRange;

/// One parameter of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlValue {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// NULL.
    Null,
}

enum Conn {
    Postgres(Box<postgres::Client>),
    MySql(mysql::Conn),
}

/// A connection to PostgreSQL (`postgres://…`) or MySQL/MariaDB (`mysql://…`) that writes
/// batches of rows, optionally with Kafka offsets, in one transaction each.
///
/// The statement uses the database's placeholders (`$1, $2` for PostgreSQL, `?` for MySQL).
pub struct SqlSink {
    url: String,
    setup: Vec<String>,
    statement: String,
    conn: Option<Conn>,
}

fn pg_text(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
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
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("mysql://"))
        {
            return Err(SluiceError::InvalidConfig {
                problem: format!("`{url}` is not a PostgreSQL or MySQL URL"),
                fix: "use postgres://user@host:port/db or mysql://user@host:port/db".into(),
            });
        }
        Ok(SqlSink {
            url,
            setup,
            statement: statement.into(),
            conn: None,
        })
    }

    fn connect(&mut self) -> Result<&mut Conn, String> {
        if self.conn.is_none() {
            let conn = if self.url.starts_with("mysql://") {
                use mysql::prelude::Queryable;
                let opts = mysql::Opts::from_url(&self.url).map_err(|e| e.to_string())?;
                let mut c = mysql::Conn::new(opts).map_err(|e| e.to_string())?;
                for s in &self.setup {
                    c.query_drop(s).map_err(|e| e.to_string())?;
                }
                // DDL commits implicitly in MySQL: create the offsets table outside any batch.
                c.query_drop(crate::offsets::sql::MY_CREATE)
                    .map_err(|e| e.to_string())?;
                Conn::MySql(c)
            } else {
                let mut c =
                    postgres::Client::connect(&self.url, postgres::NoTls).map_err(pg_text)?;
                for s in &self.setup {
                    // A concurrent `CREATE … IF NOT EXISTS` from another worker can collide once.
                    if c.batch_execute(s).is_err() {
                        c.batch_execute(s).map_err(pg_text)?;
                    }
                }
                Conn::Postgres(Box::new(c))
            };
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| "not connected".to_owned())
    }

    /// Writes `rows` (and, when given, the new offsets of `group`) in one transaction; retries
    /// with backoff until it succeeds or `give_up()` says to stop.
    pub fn write(
        &mut self,
        rows: &[Vec<SqlValue>],
        offsets: Option<(&str, &[OffsetRange])>,
        give_up: impl Fn() -> bool,
    ) -> Result<(), SluiceError> {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.try_write(rows, offsets) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.conn = None;
                    if give_up() {
                        return Err(SluiceError::OutputFailed {
                            output: format!("sql sink {}", self.url),
                            batch_ms: 0,
                            reason: e,
                        });
                    }
                    tracing::warn!(
                        "sql sink {}: {e}; the batch waits and retries in {wait:?}",
                        self.url
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn try_write(
        &mut self,
        rows: &[Vec<SqlValue>],
        offsets: Option<(&str, &[OffsetRange])>,
    ) -> Result<(), String> {
        let statement = self.statement.clone();
        match self.connect()? {
            Conn::Postgres(client) => {
                use postgres::types::ToSql;
                let mut tx = client.transaction().map_err(pg_text)?;
                if let Some((group, ranges)) = offsets.filter(|(_, r)| !r.is_empty()) {
                    tx.batch_execute(crate::offsets::sql::PG_CREATE)
                        .map_err(pg_text)?;
                    let mut done = true;
                    for r in ranges {
                        let stored: Option<i64> = tx
                            .query_opt(PG_LOCK, &[&r.topic, &group, &r.partition])
                            .map_err(pg_text)?
                            .map(|row| row.get(0));
                        done &= stored.is_some_and(|s| s >= r.until);
                    }
                    if done {
                        // A batch replayed after a crash whose transaction had committed.
                        tracing::info!("SQL sink: this share of the batch was committed before; not written again");
                        return tx.rollback().map_err(pg_text);
                    }
                }
                if !rows.is_empty() {
                    let prepared = tx.prepare(&statement).map_err(pg_text)?;
                    for row in rows {
                        let owned: Vec<Box<dyn ToSql + Sync>> = row
                            .iter()
                            .map(|v| -> Box<dyn ToSql + Sync> {
                                match v {
                                    SqlValue::Text(s) => Box::new(s.clone()),
                                    SqlValue::Int(i) => Box::new(*i),
                                    SqlValue::Null => Box::new(None::<String>),
                                }
                            })
                            .collect();
                        let params: Vec<&(dyn ToSql + Sync)> =
                            owned.iter().map(|b| b.as_ref()).collect();
                        tx.execute(&prepared, &params).map_err(pg_text)?;
                    }
                }
                if let Some((group, ranges)) = offsets {
                    for r in ranges {
                        tx.execute(
                            crate::offsets::sql::PG_UPSERT,
                            &[&r.topic, &group, &r.partition, &r.until],
                        )
                        .map_err(pg_text)?;
                    }
                }
                tx.commit().map_err(pg_text)
            }
            Conn::MySql(conn) => {
                use mysql::prelude::Queryable;
                let mut tx = conn
                    .start_transaction(mysql::TxOpts::default())
                    .map_err(|e| e.to_string())?;
                if let Some((group, ranges)) = offsets.filter(|(_, r)| !r.is_empty()) {
                    let mut done = true;
                    for r in ranges {
                        let stored: Option<i64> = tx
                            .exec_first(MY_LOCK, (&r.topic, group, r.partition))
                            .map_err(|e| e.to_string())?;
                        done &= stored.is_some_and(|s| s >= r.until);
                    }
                    if done {
                        tracing::info!("SQL sink: this share of the batch was committed before; not written again");
                        return tx.rollback().map_err(|e| e.to_string());
                    }
                }
                for row in rows {
                    let params: Vec<mysql::Value> = row
                        .iter()
                        .map(|v| match v {
                            SqlValue::Text(s) => mysql::Value::from(s.as_str()),
                            SqlValue::Int(i) => mysql::Value::from(*i),
                            SqlValue::Null => mysql::Value::NULL,
                        })
                        .collect();
                    tx.exec_drop(&statement, params)
                        .map_err(|e| e.to_string())?;
                }
                if let Some((group, ranges)) = offsets {
                    for r in ranges {
                        tx.exec_drop(
                            crate::offsets::sql::MY_UPSERT,
                            (&r.topic, group, r.partition, r.until),
                        )
                        .map_err(|e| e.to_string())?;
                    }
                }
                tx.commit().map_err(|e| e.to_string())
            }
        }
    }
}

/// Reads and locks a partition's stored offset inside the batch's transaction: a replayed batch
/// whose offsets are already stored was written before (exactly-once across a crash between the
/// commit and the checkpoint's record of it).
const PG_LOCK: &str = "SELECT next_offset FROM sluice_kafka_offsets WHERE topic = $1 AND group_id = $2 AND partition_id = $3 FOR UPDATE";
const MY_LOCK: &str = "SELECT next_offset FROM sluice_kafka_offsets WHERE topic = ? AND group_id = ? AND partition_id = ? FOR UPDATE";

impl<'s, T: crate::dstream::Data> crate::dstream::DStream<'s, T> {
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
        let mut sink = match SqlSink::new(url, setup, statement) {
            Ok(s) => s,
            Err(e) => {
                self.ctx.fail_build(e);
                return;
            }
        };
        let coord = std::sync::Arc::clone(&self.ctx.coord);
        self.foreach_partition(move |p, records| {
            let rows: Vec<Vec<SqlValue>> = records.iter().filter_map(&to_row).collect();
            if rows.is_empty() {
                return;
            }
            if let Err(e) = sink.write(&rows, None, || coord.aborted()) {
                coord.fail(with_batch(e, p.time));
            }
        });
    }
}

/// The batch time in an output error.
pub(crate) fn with_batch(e: SluiceError, time: crate::Time) -> SluiceError {
    match e {
        SluiceError::OutputFailed { output, reason, .. } => SluiceError::OutputFailed {
            output,
            batch_ms: time.millis(),
            reason,
        },
        other => other,
    }
}
