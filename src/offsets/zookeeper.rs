//! Offsets in ZooKeeper, at `/consumers/offsets/<topic>/<group>/<partition>` (the node holds
//! the next offset in decimal), the layout of the course's ZooKeeper-managed offsets.

use std::collections::HashMap;
use std::time::Duration;

use zookeeper::{Acl, CreateMode, WatchedEvent, Watcher, ZkError, ZooKeeper, ZooKeeperExt};

use super::{OffsetStore, TopicPartition};
use crate::error::{Result, SluiceError};

struct Quiet;

impl Watcher for Quiet {
    fn handle(&self, _: WatchedEvent) {}
}

/// Offsets in ZooKeeper.
pub struct ZooKeeperStore {
    connect: String,
    zk: Option<ZooKeeper>,
}

fn zk_error(connect: &str, what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::InvalidConfig {
        problem: format!("the zookeeper offset store at {connect}: {what}: {e}"),
        fix: "check that ZooKeeper is running there (host:port[,host:port…])".into(),
    }
}

impl ZooKeeperStore {
    /// A store at `connect` (`127.0.0.1:2181`); connects on first use.
    pub fn new(connect: impl Into<String>) -> Self {
        ZooKeeperStore {
            connect: connect.into(),
            zk: None,
        }
    }

    fn zk(&mut self) -> Result<&ZooKeeper> {
        if self.zk.is_none() {
            let zk = ZooKeeper::connect(&self.connect, Duration::from_secs(10), Quiet)
                .map_err(|e| zk_error(&self.connect, "cannot connect", e))?;
            self.zk = Some(zk);
        }
        self.zk
            .as_ref()
            .ok_or_else(|| zk_error(&self.connect, "no session", "not connected"))
    }

    fn path(group: &str, tp: &TopicPartition) -> String {
        format!("/consumers/offsets/{}/{}/{}", tp.topic, group, tp.partition)
    }
}

impl OffsetStore for ZooKeeperStore {
    fn load(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let connect = self.connect.clone();
        let zk = self.zk()?;
        let mut found = HashMap::new();
        for tp in partitions {
            let path = Self::path(group, tp);
            match zk.get_data(&path, false) {
                Ok((data, _)) => {
                    let text = String::from_utf8_lossy(&data);
                    let offset = text.trim().parse::<i64>().map_err(|e| SluiceError::InvalidConfig {
                        problem: format!("the zookeeper node {path} holds `{text}` ({e})"),
                        fix: "delete the node to fall back to auto.offset.reset, or write the next offset to read in it".into(),
                    })?;
                    found.insert(tp.clone(), offset);
                }
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(zk_error(&connect, &format!("cannot read {path}"), e)),
            }
        }
        Ok(found)
    }

    fn commit(&mut self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let connect = self.connect.clone();
        let result = (|| {
            let zk = self.zk()?;
            for (tp, offset) in offsets {
                let path = Self::path(group, tp);
                let data = offset.to_string().into_bytes();
                match zk.set_data(&path, data.clone(), None) {
                    Ok(_) => {}
                    Err(ZkError::NoNode) => {
                        let parent = path
                            .rsplit_once('/')
                            .map(|(p, _)| p.to_owned())
                            .unwrap_or_default();
                        zk.ensure_path(&parent).map_err(|e| {
                            zk_error(&connect, &format!("cannot create {parent}"), e)
                        })?;
                        match zk.create(
                            &path,
                            data.clone(),
                            Acl::open_unsafe().clone(),
                            CreateMode::Persistent,
                        ) {
                            Ok(_) => {}
                            Err(ZkError::NodeExists) => {
                                zk.set_data(&path, data, None).map_err(|e| {
                                    zk_error(&connect, &format!("cannot write {path}"), e)
                                })?;
                            }
                            Err(e) => {
                                return Err(zk_error(&connect, &format!("cannot create {path}"), e))
                            }
                        }
                    }
                    Err(e) => return Err(zk_error(&connect, &format!("cannot write {path}"), e)),
                }
            }
            Ok(())
        })();
        if result.is_err() {
            self.zk = None;
        }
        result
    }

    fn describe(&self) -> String {
        format!("zookeeper {}", self.connect)
    }
}
