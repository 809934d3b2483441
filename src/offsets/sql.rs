//! Offsets in Redis (the course's layout) and in SQL tables (PostgreSQL, MySQL/MariaDB).
//!
//! - Redis: one hash per topic, field `group|partition`, value the next offset.
//! - SQL: a table `sluice_kafka_offsets (topic, group_id, partition_id, next_offset)` with the
//!   first three as primary key, created if missing; commits are parameterized upserts (never
//!   SQL built from strings: the course concatenates values into SQL, an injection hole).

use std::collections::HashMap;

use super::{OffsetStore, TopicPartition};
use crate::error::{Result, SluiceError};

/// A PostgreSQL error with the server's own message (its `Display` says only "db error").
fn pg(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn store_error(store: &str, url: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::InvalidConfig {
        problem: format!("the {store} offset store at {url} failed: {e}"),
        fix: format!("check that {store} is running and reachable at that URL"),
    }
}

/// Offsets in Redis: hash `<topic>`, field `<group>|<partition>`.
pub struct RedisStore {
    url: String,
    connection: Option<redis::Connection>,
}

impl RedisStore {
    /// A store at `url` (`redis://127.0.0.1/`); connects on first use.
    pub fn new(url: impl Into<String>) -> Self {
        RedisStore {
            url: url.into(),
            connection: None,
        }
    }

    fn connection(&mut self) -> Result<&mut redis::Connection> {
        if self.connection.is_none() {
            let client = redis::Client::open(self.url.as_str())
                .map_err(|e| store_error("redis", &self.url, e))?;
            self.connection = Some(
                client
                    .get_connection()
                    .map_err(|e| store_error("redis", &self.url, e))?,
            );
        }
        match self.connection.as_mut() {
            Some(c) => Ok(c),
            None => Err(store_error("redis", &self.url, "no connection")),
        }
    }
}

impl OffsetStore for RedisStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let url = self.url.clone();
        let con = self.connection()?;
        let mut found = HashMap::new();
        for tp in partitions {
            let field = format!("{group}|{}", tp.partition);
            let value: Option<i64> = redis::cmd("HGET")
                .arg(&tp.topic)
                .arg(&field)
                .query(con)
                .map_err(|e| store_error("redis", &url, e))?;
            if let Some(v) = value {
                found.insert(tp.clone(), v);
            }
        }
        Ok(found)
    }

    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let url = self.url.clone();
        let result = (|| {
            let con = self.connection()?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (tp, offset) in offsets {
                pipe.cmd("HSET")
                    .arg(&tp.topic)
                    .arg(format!("{group}|{}", tp.partition))
                    .arg(*offset)
                    .ignore();
            }
            pipe.query::<()>(con)
                .map_err(|e| store_error("redis", &url, e))
        })();
        if result.is_err() {
            self.connection = None; // reconnect next time
        }
        result
    }

    fn describe(&self) -> String {
        format!("redis {}", self.url)
    }
}

const TABLE: &str = "sluice_kafka_offsets";

/// The offsets table in PostgreSQL (shared with the transactional SQL sink).
pub(crate) const PG_CREATE: &str = "CREATE TABLE IF NOT EXISTS sluice_kafka_offsets (topic TEXT NOT NULL, group_id TEXT NOT NULL, \
     partition_id INT NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, group_id, partition_id))";
/// Stores `$4` as the next offset of (`$1` topic, `$2` group, `$3` partition) in PostgreSQL.
pub(crate) const PG_UPSERT: &str = "INSERT INTO sluice_kafka_offsets (topic, group_id, partition_id, next_offset) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (topic, group_id, partition_id) DO UPDATE SET next_offset = EXCLUDED.next_offset";
/// The offsets table in MySQL/MariaDB.
pub(crate) const MY_CREATE: &str = "CREATE TABLE IF NOT EXISTS sluice_kafka_offsets (topic VARCHAR(249) NOT NULL, group_id VARCHAR(255) NOT NULL, \
     partition_id INT NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, group_id, partition_id))";
/// Stores the next offset of (topic, group, partition) in MySQL/MariaDB.
pub(crate) const MY_UPSERT: &str = "INSERT INTO sluice_kafka_offsets (topic, group_id, partition_id, next_offset) VALUES (?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)";

/// Offsets in a PostgreSQL table.
pub struct PostgresStore {
    url: String,
    client: Option<postgres::Client>,
}

impl PostgresStore {
    /// A store at `url` (`postgres://postgres@127.0.0.1/test`); connects on first use.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresStore {
            url: url.into(),
            client: None,
        }
    }

    fn client(&mut self) -> Result<&mut postgres::Client> {
        if self.client.is_none() {
            let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
                .map_err(|e| store_error("postgres", &self.url, pg(e)))?;
            let create = PG_CREATE;
            // Two workers creating the table at once can collide (a known PostgreSQL race on
            // `IF NOT EXISTS`); the second attempt finds the table.
            if client.batch_execute(create).is_err() {
                client
                    .batch_execute(create)
                    .map_err(|e| store_error("postgres", &self.url, pg(e)))?;
            }
            self.client = Some(client);
        }
        match self.client.as_mut() {
            Some(c) => Ok(c),
            None => Err(store_error("postgres", &self.url, "no connection")),
        }
    }
}

impl OffsetStore for PostgresStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let url = self.url.clone();
        let client = self.client()?;
        let mut found = HashMap::new();
        for tp in partitions {
            let rows = client
                .query(
                    &format!("SELECT next_offset FROM {TABLE} WHERE topic = $1 AND group_id = $2 AND partition_id = $3"),
                    &[&tp.topic, &group, &tp.partition],
                )
                .map_err(|e| store_error("postgres", &url, pg(e)))?;
            if let Some(row) = rows.first() {
                found.insert(tp.clone(), row.get::<_, i64>(0));
            }
        }
        Ok(found)
    }

    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let url = self.url.clone();
        let result = (|| {
            let client = self.client()?;
            let mut tx = client
                .transaction()
                .map_err(|e| store_error("postgres", &url, pg(e)))?;
            for (tp, offset) in offsets {
                tx.execute(PG_UPSERT, &[&tp.topic, &group, &tp.partition, offset])
                    .map_err(|e| store_error("postgres", &url, pg(e)))?;
            }
            tx.commit()
                .map_err(|e| store_error("postgres", &url, pg(e)))
        })();
        if result.is_err() {
            self.client = None;
        }
        result
    }

    fn describe(&self) -> String {
        format!("postgres {}", self.url)
    }
}

/// Offsets in a MySQL/MariaDB table.
pub struct MySqlStore {
    url: String,
    conn: Option<mysql::Conn>,
}

impl MySqlStore {
    /// A store at `url` (`mysql://root@127.0.0.1/test`); connects on first use.
    pub fn new(url: impl Into<String>) -> Self {
        MySqlStore {
            url: url.into(),
            conn: None,
        }
    }

    fn conn(&mut self) -> Result<&mut mysql::Conn> {
        use mysql::prelude::Queryable;
        if self.conn.is_none() {
            let opts =
                mysql::Opts::from_url(&self.url).map_err(|e| store_error("mysql", &self.url, e))?;
            let mut conn =
                mysql::Conn::new(opts).map_err(|e| store_error("mysql", &self.url, e))?;
            conn.query_drop(MY_CREATE)
                .map_err(|e| store_error("mysql", &self.url, e))?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(store_error("mysql", &self.url, "no connection")),
        }
    }
}

impl OffsetStore for MySqlStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        use mysql::prelude::Queryable;
        let url = self.url.clone();
        let conn = self.conn()?;
        let mut found = HashMap::new();
        for tp in partitions {
            let row: Option<i64> = conn
                .exec_first(
                    format!("SELECT next_offset FROM {TABLE} WHERE topic = ? AND group_id = ? AND partition_id = ?"),
                    (&tp.topic, group, tp.partition),
                )
                .map_err(|e| store_error("mysql", &url, e))?;
            if let Some(v) = row {
                found.insert(tp.clone(), v);
            }
        }
        Ok(found)
    }

    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        use mysql::prelude::Queryable;
        let url = self.url.clone();
        let result = (|| {
            let conn = self.conn()?;
            let mut tx = conn
                .start_transaction(mysql::TxOpts::default())
                .map_err(|e| store_error("mysql", &url, e))?;
            for (tp, offset) in offsets {
                tx.exec_drop(MY_UPSERT, (&tp.topic, group, tp.partition, offset))
                    .map_err(|e| store_error("mysql", &url, e))?;
            }
            tx.commit().map_err(|e| store_error("mysql", &url, e))
        })();
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn describe(&self) -> String {
        format!("mysql {}", self.url)
    }
}
