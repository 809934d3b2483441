//! Offsets in a SQL table, PostgreSQL or MySQL/MariaDB: `sluice_kafka_offsets (topic, group_id,
//! partition_id, next_offset)` with the first three as primary key, created if missing (the
//! table the transactional SQL sink commits with its rows). Commits are parameterized upserts
//! in one transaction; the course concatenates values into SQL, an injection hole.

use std::collections::HashMap;

use super::{OffsetStore, TopicPartition, store_error};
use crate::database::{Connection, DbError, Dialect, SqlValue, connect};
use crate::error::Result;

/// Offsets in a PostgreSQL or MySQL/MariaDB table.
///
/// # Examples
///
/// ```no_run
/// use sluice::offsets::{OffsetStore, SqlStore, TopicPartition};
/// let mut store = SqlStore::new("postgres://postgres@127.0.0.1/test")?;
/// let tp = TopicPartition::new("logs", 0);
/// store.commit("g", &[(tp.clone(), 42)])?;
/// assert_eq!(store.load("g", &[tp.clone()])?.get(&tp), Some(&42));
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub struct SqlStore {
    url: String,
    dialect: Dialect,
    conn: Option<Box<dyn Connection>>,
}

impl SqlStore {
    /// A store at `url` (`postgres://postgres@127.0.0.1/test`, `mysql://root@127.0.0.1/test`);
    /// connects on first use.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        let url = url.into();
        let dialect = Dialect::of_url(&url)?;
        Ok(SqlStore {
            url,
            dialect,
            conn: None,
        })
    }

    fn connection(&mut self) -> std::result::Result<&mut Box<dyn Connection>, DbError> {
        if self.conn.is_none() {
            let mut conn = connect(&self.url)?;
            let create = self.dialect.create_offsets_table();
            // Two workers creating the table at once can collide (a known PostgreSQL race on
            // `IF NOT EXISTS`); the second attempt finds the table.
            if conn.execute_batch(create).is_err() {
                conn.execute_batch(create)?;
            }
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| DbError::transient("not connected".to_owned()))
    }

    fn key(group: &str, tp: &TopicPartition) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(tp.topic.clone()),
            SqlValue::Text(group.to_owned()),
            SqlValue::Int(i64::from(tp.partition)),
        ]
    }

    fn run<T>(
        &mut self,
        action: &str,
        f: impl FnOnce(Dialect, &mut Box<dyn Connection>) -> std::result::Result<T, DbError>,
    ) -> Result<T> {
        let dialect = self.dialect;
        let result = self.connection().and_then(|c| f(dialect, c));
        result.map_err(|e| {
            self.conn = None; // reconnect next time
            store_error(&self.describe(), action, e)
        })
    }
}

impl OffsetStore for SqlStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        self.run("cannot read offsets", |dialect, conn| {
            let mut tx = conn.transaction()?;
            let mut found = HashMap::new();
            for tp in partitions {
                // Locking: a transaction of a run killed a moment ago may still be committing
                // this row (results and offsets together); the restart must read what it
                // committed, not the offset before it, or it writes that batch again.
                if let Some(v) = tx.query_i64(dialect.lock_offset(), &Self::key(group, tp))? {
                    found.insert(tp.clone(), v);
                }
            }
            Ok(found)
        })
    }

    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.run("cannot commit offsets", |dialect, conn| {
            let rows: Vec<Vec<SqlValue>> = offsets
                .iter()
                .map(|(tp, o)| {
                    let mut row = Self::key(group, tp);
                    row.push(SqlValue::Int(*o));
                    row
                })
                .collect();
            let mut tx = conn.transaction()?;
            tx.execute_rows(dialect.upsert_offset(), &rows)?;
            tx.commit()
        })
    }

    fn describe(&self) -> String {
        let scheme = self.url.split_once("://").map_or("sql", |(s, _)| s);
        format!("{scheme} {}", crate::redact::url(&self.url))
    }
}
