//! Offsets in ZooKeeper, at `/consumers/offsets/<topic>/<group>/<partition>` (the node holds
//! the next offset in decimal), the layout of the course's ZooKeeper-managed offsets.
//!
//! The client is `zookeeper-client` (asynchronous, maintained); the store runs it on a small
//! runtime of its own (one thread, which also keeps the session alive between batches) and
//! waits for each call, as the worker that commits is a plain thread.

use std::collections::HashMap;
use std::time::Duration;

use zookeeper_client as zk;

use super::{OffsetStore, TopicPartition, store_error};
use crate::error::{Result, SluiceError};

/// Offsets in ZooKeeper.
///
/// # Examples
///
/// ```no_run
/// use sluice::offsets::{OffsetStore, TopicPartition, ZooKeeperStore};
/// let mut store = ZooKeeperStore::new("127.0.0.1:2181");
/// let tp = TopicPartition::new("logs", 0);
/// store.commit("g", &[(tp.clone(), 42)])?;
/// assert_eq!(store.load("g", &[tp.clone()])?.get(&tp), Some(&42));
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub struct ZooKeeperStore {
    connect: String,
    runtime: Option<tokio::runtime::Runtime>,
    client: Option<zk::Client>,
}

impl ZooKeeperStore {
    /// A store at `connect` (`127.0.0.1:2181`, or `host:port,host:port`); connects on first
    /// use.
    pub fn new(connect: impl Into<String>) -> Self {
        ZooKeeperStore {
            connect: connect.into(),
            runtime: None,
            client: None,
        }
    }

    fn error(&self, action: &str, e: impl Into<crate::error::BoxError>) -> SluiceError {
        store_error(&self.describe(), action, e)
    }

    /// The runtime and a connected client.
    fn session(&mut self) -> Result<(&tokio::runtime::Runtime, &zk::Client)> {
        if self.runtime.is_none() {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("sluice-zookeeper")
                .enable_all()
                .build()
                .map_err(|e| self.error("cannot start its client", e))?;
            self.runtime = Some(runtime);
        }
        if self.client.is_none() {
            let connect = self.connect.clone();
            let connected = self.runtime.as_ref().map(|rt| {
                rt.block_on(
                    zk::Client::connector()
                        .with_session_timeout(Duration::from_secs(10))
                        .connect(&connect),
                )
            });
            match connected {
                Some(Ok(client)) => self.client = Some(client),
                Some(Err(e)) => return Err(self.error("cannot connect", e)),
                None => return Err(self.error("cannot connect", "no runtime")),
            }
        }
        match (self.runtime.as_ref(), self.client.as_ref()) {
            (Some(rt), Some(client)) => Ok((rt, client)),
            _ => Err(store_error(
                &format!("zookeeper {}", self.connect),
                "cannot connect",
                "no session",
            )),
        }
    }

    fn path(group: &str, tp: &TopicPartition) -> String {
        format!("/consumers/offsets/{}/{}/{}", tp.topic, group, tp.partition)
    }

    fn write(
        rt: &tokio::runtime::Runtime,
        client: &zk::Client,
        path: &str,
        data: &[u8],
    ) -> std::result::Result<(), (String, zk::Error)> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        rt.block_on(async {
            match client.set_data(path, data, None).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err((format!("cannot write {path}"), e)),
            }
            let parent = path.rsplit_once('/').map_or("/", |(p, _)| p);
            client
                .mkdir(parent, &options)
                .await
                .map_err(|e| (format!("cannot create {parent}"), e))?;
            match client.create(path, data, &options).await {
                Ok(_) => Ok(()),
                Err(zk::Error::NodeExists) => client
                    .set_data(path, data, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| (format!("cannot write {path}"), e)),
                Err(e) => Err((format!("cannot create {path}"), e)),
            }
        })
    }
}

impl OffsetStore for ZooKeeperStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let mut found = HashMap::new();
        for tp in partitions {
            let path = Self::path(group, tp);
            let (rt, client) = self.session()?;
            let read = rt.block_on(client.get_data(&path));
            match read {
                Ok((data, _)) => {
                    let text = String::from_utf8_lossy(&data);
                    let offset = text.trim().parse::<i64>().map_err(|e| SluiceError::InvalidConfig {
                        problem: format!("the zookeeper node {path} holds `{text}` ({e})"),
                        fix: "delete the node to fall back to auto.offset.reset, or write the next offset to read in it".into(),
                    })?;
                    found.insert(tp.clone(), offset);
                }
                Err(zk::Error::NoNode) => {}
                Err(e) => {
                    self.client = None;
                    return Err(self.error(&format!("cannot read {path}"), e));
                }
            }
        }
        Ok(found)
    }

    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        for (tp, offset) in offsets {
            let path = Self::path(group, tp);
            let data = offset.to_string().into_bytes();
            let (rt, client) = self.session()?;
            if let Err((action, e)) = Self::write(rt, client, &path, &data) {
                self.client = None; // a new session next time
                return Err(self.error(&action, e));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("zookeeper {}", self.connect)
    }
}
