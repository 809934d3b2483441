//! The statements sluice runs itself, once per database: the Kafka offsets table
//! `sluice_kafka_offsets (topic, group_id, partition_id, next_offset)`, keyed by the first three.

use crate::error::SluiceError;

/// A database's flavour of SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres,
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    MySql,
}

impl Dialect {
    /// The dialect of a URL; an error naming the fix for an unknown scheme or a database this
    /// build left out.
    pub(crate) fn of_url(url: &str) -> Result<Dialect, SluiceError> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        match scheme {
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            #[allow(unreachable_patterns)] // reached when a database's feature is off
            "postgres" | "postgresql" | "mysql" | "mariadb" => Err(SluiceError::InvalidConfig {
                problem: format!("this sluice was built without the `{scheme}` feature"),
                fix: format!(
                    "build it with `--features {}`",
                    if scheme.starts_with('p') {
                        "postgres"
                    } else {
                        "mysql"
                    }
                ),
            }),
            _ => Err(SluiceError::InvalidConfig {
                problem: format!(
                    "`{}` is not a PostgreSQL or MySQL URL",
                    crate::redact::url(url)
                ),
                fix: "use postgres://user@host:port/db or mysql://user@host:port/db".into(),
            }),
        }
    }

    /// Creates the offsets table if it is missing.
    pub(crate) fn create_offsets_table(self) -> &'static str {
        match self {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => {
                "CREATE TABLE IF NOT EXISTS sluice_kafka_offsets (topic TEXT NOT NULL, group_id TEXT NOT NULL, \
                 partition_id INT NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, group_id, partition_id))"
            }
            #[cfg(feature = "mysql")]
            Dialect::MySql => {
                "CREATE TABLE IF NOT EXISTS sluice_kafka_offsets (topic VARCHAR(249) NOT NULL, group_id VARCHAR(255) NOT NULL, \
                 partition_id INT NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, group_id, partition_id))"
            }
        }
    }

    /// The stored next offset of (topic, group, partition), locking the row until the
    /// transaction ends: a replayed batch whose offsets are already stored was written before
    /// (exactly-once across a crash between the commit and the checkpoint's record of it), and
    /// a restart reads what a transaction still committing at the crash stored.
    pub(crate) fn lock_offset(self) -> &'static str {
        match self {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => {
                "SELECT next_offset FROM sluice_kafka_offsets WHERE topic = $1 AND group_id = $2 AND partition_id = $3 FOR UPDATE"
            }
            #[cfg(feature = "mysql")]
            Dialect::MySql => {
                "SELECT next_offset FROM sluice_kafka_offsets WHERE topic = ? AND group_id = ? AND partition_id = ? FOR UPDATE"
            }
        }
    }

    /// Stores (topic, group, partition, next offset).
    pub(crate) fn upsert_offset(self) -> &'static str {
        match self {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => {
                "INSERT INTO sluice_kafka_offsets (topic, group_id, partition_id, next_offset) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (topic, group_id, partition_id) DO UPDATE SET next_offset = EXCLUDED.next_offset"
            }
            #[cfg(feature = "mysql")]
            Dialect::MySql => {
                "INSERT INTO sluice_kafka_offsets (topic, group_id, partition_id, next_offset) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)"
            }
        }
    }
}
