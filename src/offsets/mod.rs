//! Where a Kafka direct stream keeps its offsets (Spark: Kafka itself, a checkpoint, ZooKeeper,
//! Redis or MySQL, course §4.2.2).
//!
//! Every store implements [`OffsetStore`]: `load` the next offset to read of some partitions,
//! `commit` new ones. The offsets of batch `t` are committed only after every output operation
//! of `t` has finished (the job's probe, behind the outputs, has passed `t`), each worker
//! committing the partitions it owns; a job stopped or killed before that replays the batch from
//! its plan. A stored offset is the *next* offset to read (Kafka's convention), i.e. the `until`
//! of the last committed batch.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::{Result, SluiceError};

pub mod checkpoint;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod sql;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;

pub use checkpoint::CheckpointStore;
#[cfg(feature = "kafka")]
pub use kafka::KafkaGroupStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub use sql::SqlStore;
#[cfg(feature = "zookeeper")]
pub use zookeeper::ZooKeeperStore;

/// A store's failure, with the store's own error kept as the source.
#[cfg_attr(
    not(any(
        feature = "kafka",
        feature = "redis",
        feature = "postgres",
        feature = "mysql",
        feature = "zookeeper"
    )),
    allow(dead_code)
)] // the checkpoint store, always built, has errors of its own
pub(crate) fn store_error(
    store: &str,
    action: &str,
    e: impl Into<crate::error::BoxError>,
) -> SluiceError {
    SluiceError::OffsetStore {
        store: store.to_owned(),
        action: action.to_owned(),
        source: e.into(),
    }
}

/// Whether an offset store's error is one that waiting may cure: the store unreachable or
/// gone away (a database's transient error, a Redis or ZooKeeper connection failure), rather
/// than a refusal that never passes (bad credentials, a missing database).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) fn is_transient(e: &SluiceError) -> bool {
    let SluiceError::OffsetStore { source, .. } = e else {
        return false;
    };
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    if let Some(db) = source.downcast_ref::<crate::database::DbError>() {
        return db.is_transient();
    }
    #[cfg(feature = "redis")]
    if let Some(r) = source.downcast_ref::<::redis::RedisError>() {
        return r.is_io_error()
            || r.is_connection_refusal()
            || r.is_timeout()
            || r.is_connection_dropped();
    }
    // Other stores say in their text; an I/O failure underneath is the world's.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A partition of a topic.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The records of one partition a batch holds: offsets `[from, until)` (Spark's `OffsetRange`).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct OffsetRange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// First offset of the batch.
    pub from: i64,
    /// One past the last offset of the batch (the next batch starts here).
    pub until: i64,
}

impl OffsetRange {
    /// How many offsets the range spans.
    pub fn count(&self) -> i64 {
        self.until - self.from
    }
    /// The partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

impl crate::SparkDisplay for OffsetRange {
    fn write_spark(&self, out: &mut String) {
        out.push_str(&format!(
            "OffsetRange(topic: '{}', partition: {}, range: [{} -> {}])",
            self.topic, self.partition, self.from, self.until
        ));
    }
}

/// Loads and commits the next offsets to read, per consumer group and partition.
pub trait OffsetStore: Send {
    /// The stored next offset of each of `partitions` that has one.
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>>;
    /// Stores the next offsets to read.
    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()>;
    /// A name for messages (`redis redis://127.0.0.1/`).
    fn describe(&self) -> String;
}

/// Which offset store a Kafka direct stream uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetStoreKind {
    /// Kafka's consumer-group commit (the default, Spark's `commitAsync`).
    Kafka,
    /// Files in a checkpoint directory: `<dir>/kafka-offsets/<group>/<topic>/<partition>`.
    Checkpoint(PathBuf),
    /// Redis: one hash per topic, field `group|partition` (the course's layout).
    Redis(String),
    /// A PostgreSQL table `sluice_kafka_offsets` (URL `postgres://user@host/db`).
    Postgres(String),
    /// A MySQL/MariaDB table `sluice_kafka_offsets` (URL `mysql://user@host/db`).
    MySql(String),
    /// ZooKeeper nodes `/consumers/offsets/<topic>/<group>/<partition>` (`host:port[,…]`).
    ZooKeeper(String),
}

/// The error for a store this build of sluice left out.
#[allow(dead_code)] // unused when every connector is built
fn not_built(store: &str, feature: &str) -> SluiceError {
    SluiceError::InvalidConfig {
        problem: format!("the {store} offset store is not in this build of sluice"),
        fix: format!("build sluice with `--features {feature}`"),
    }
}

impl OffsetStoreKind {
    /// Opens the store (the only way sluice makes one). `kafka_settings` are the librdkafka
    /// settings of the stream (`bootstrap.servers`, security, …), used by the Kafka store.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::offsets::OffsetStoreKind;
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = OffsetStoreKind::Checkpoint(dir.path().into()).open("g", &[])?;
    /// assert!(store.describe().starts_with("checkpoint"));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn open(
        &self,
        group: &str,
        kafka_settings: &[(String, String)],
    ) -> Result<Box<dyn OffsetStore>> {
        self.open_with_stop(group, kafka_settings, || false)
    }

    /// [`open`](OffsetStoreKind::open) for a job: a store that waits for a server's answer
    /// gives up waiting when `stopping()` holds.
    pub(crate) fn open_with_stop(
        &self,
        group: &str,
        kafka_settings: &[(String, String)],
        stopping: impl Fn() -> bool + Send + 'static,
    ) -> Result<Box<dyn OffsetStore>> {
        let _ = (group, kafka_settings, &stopping);
        Ok(match self {
            OffsetStoreKind::Checkpoint(dir) => Box::new(CheckpointStore::new(dir)),
            #[cfg(feature = "kafka")]
            OffsetStoreKind::Kafka => {
                Box::new(KafkaGroupStore::new(group, kafka_settings)?.stop_waiting_when(stopping))
            }
            #[cfg(not(feature = "kafka"))]
            OffsetStoreKind::Kafka => return Err(not_built("kafka", "kafka")),
            #[cfg(feature = "redis")]
            OffsetStoreKind::Redis(url) => Box::new(RedisStore::new(url.clone())),
            #[cfg(not(feature = "redis"))]
            OffsetStoreKind::Redis(_) => return Err(not_built("redis", "redis")),
            #[cfg(any(feature = "postgres", feature = "mysql"))]
            OffsetStoreKind::Postgres(url) | OffsetStoreKind::MySql(url) => {
                Box::new(SqlStore::new(url.clone())?)
            }
            #[cfg(not(any(feature = "postgres", feature = "mysql")))]
            OffsetStoreKind::Postgres(_) | OffsetStoreKind::MySql(_) => {
                return Err(not_built("SQL", "postgres,mysql"));
            }
            #[cfg(feature = "zookeeper")]
            OffsetStoreKind::ZooKeeper(connect) => Box::new(ZooKeeperStore::new(connect.clone())),
            #[cfg(not(feature = "zookeeper"))]
            OffsetStoreKind::ZooKeeper(_) => return Err(not_built("zookeeper", "zookeeper")),
        })
    }

    /// Parses `kafka`, `checkpoint:DIR`, `redis:URL`, `postgres:URL`, `mysql:URL`,
    /// `zookeeper:HOST:PORT`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::offsets::OffsetStoreKind;
    /// assert_eq!(OffsetStoreKind::parse("kafka").unwrap(), OffsetStoreKind::Kafka);
    /// assert_eq!(OffsetStoreKind::parse("redis:redis://127.0.0.1/").unwrap(), OffsetStoreKind::Redis("redis://127.0.0.1/".into()));
    /// assert!(OffsetStoreKind::parse("etcd").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let (kind, arg) = text.split_once(':').unwrap_or((text, ""));
        let need = |what: &str| -> Result<String> {
            if arg.is_empty() {
                Err(SluiceError::InvalidConfig {
                    problem: format!("the `{kind}` offset store needs {what}"),
                    fix: format!("write it as `{kind}:{what}`"),
                })
            } else {
                Ok(arg.to_owned())
            }
        };
        Ok(match kind {
            "kafka" => OffsetStoreKind::Kafka,
            "checkpoint" => OffsetStoreKind::Checkpoint(PathBuf::from(need("DIR")?)),
            "redis" => OffsetStoreKind::Redis(need("URL")?),
            "postgres" | "postgresql" => OffsetStoreKind::Postgres(need("URL")?),
            "mysql" | "mariadb" => OffsetStoreKind::MySql(need("URL")?),
            "zookeeper" | "zk" => OffsetStoreKind::ZooKeeper(need("HOST:PORT")?),
            other => {
                return Err(SluiceError::InvalidConfig {
                    problem: format!("`{other}` is not an offset store"),
                    fix: "use kafka, checkpoint:DIR, redis:URL, postgres:URL, mysql:URL or zookeeper:HOST:PORT".into(),
                })
            }
        })
    }
}
