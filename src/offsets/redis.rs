//! Offsets in Redis, the course's layout: one hash per topic, field `<group>|<partition>`,
//! value the next offset to read. A commit is one atomic pipeline (`MULTI`/`EXEC`).

use std::collections::HashMap;

use super::{OffsetStore, TopicPartition, store_error};
use crate::error::Result;

/// Offsets in Redis: hash `<topic>`, field `<group>|<partition>`.
///
/// # Examples
///
/// ```no_run
/// use sluice::offsets::{OffsetStore, RedisStore, TopicPartition};
/// let mut store = RedisStore::new("redis://127.0.0.1/");
/// let tp = TopicPartition::new("logs", 0);
/// store.commit("g", &[(tp.clone(), 42)])?;
/// assert_eq!(store.load("g", &[tp.clone()])?.get(&tp), Some(&42));
/// # Ok::<(), sluice::SluiceError>(())
/// ```
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
            let client = redis::Client::open(self.url.as_str()).map_err(|e| {
                store_error(
                    &format!("redis {}", crate::redact::url(&self.url)),
                    "cannot connect",
                    e,
                )
            })?;
            self.connection = Some(client.get_connection().map_err(|e| {
                store_error(
                    &format!("redis {}", crate::redact::url(&self.url)),
                    "cannot connect",
                    e,
                )
            })?);
        }
        match self.connection.as_mut() {
            Some(c) => Ok(c),
            None => Err(store_error(
                &format!("redis {}", crate::redact::url(&self.url)),
                "cannot connect",
                "no connection",
            )),
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
                .map_err(|e| {
                    store_error(
                        &format!("redis {}", crate::redact::url(&url)),
                        "cannot read offsets",
                        e,
                    )
                })?;
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
            pipe.query::<()>(con).map_err(|e| {
                store_error(
                    &format!("redis {}", crate::redact::url(&url)),
                    "cannot commit offsets",
                    e,
                )
            })
        })();
        if result.is_err() {
            self.connection = None; // reconnect next time
        }
        result
    }

    fn describe(&self) -> String {
        format!("redis {}", crate::redact::url(&self.url))
    }
}
