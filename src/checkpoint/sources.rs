//! Sources' identities in the checkpoint (`sources`), and the refusal of a restart that would
//! silently drop input a source planned but no snapshot has counted yet.
//!
//! A source's plans are kept under its position in the job (`source#<n>`, in the order the
//! job creates its sources: the code is rebuilt identically on every restart) and the
//! checkpoint records, per position, what the source *is* ([`BatchReader::identity`]): a
//! socket's resolved address and port, a Kafka stream's topics, a directory. A restart checks
//! each recorded source against the job's:
//!
//! - the same identity (`localhost` for `127.0.0.1`, the same server): the plans replay;
//! - another identity (another port, other topics), or a recorded source the job no longer
//!   has: the old source's plans of batches the restored state still needs (after the restored
//!   snapshot; for a job without state, after the last completed batch) would replay as
//!   nothing. While they hold records the restart is refused, naming both sources and how much
//!   would be dropped, unless [`accept_source_change`](crate::StreamingConfig::accept_source_change)
//!   says to drop it (then it is logged, with the same figures).
//!
//! [`BatchReader::identity`]: crate::source::BatchReader::identity

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{Checkpoint, lock};
use crate::error::{Result, SluiceError};

/// A source as the checkpoint records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RecordedSource {
    /// What it reads (see `BatchReader::identity`).
    pub(crate) identity: String,
    /// Its name in logs, as the job that recorded it gave it.
    pub(crate) name: String,
}

/// Position key → recorded source.
pub(crate) type Sources = BTreeMap<String, RecordedSource>;

/// The key a job's `n`-th source keeps its plans under.
pub(crate) fn key(n: usize) -> String {
    format!("source#{n}")
}

/// The sources recorded in the checkpoint at `dir` (none when the file is missing or was
/// written by a version that did not record them).
pub(crate) fn load(dir: &Path) -> Sources {
    std::fs::read(dir.join("sources"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// A source of the running job, as the check sees it.
pub(crate) struct CurrentSource<'a> {
    pub(crate) key: String,
    pub(crate) identity: String,
    pub(crate) name: String,
    /// The key earlier versions kept its plans under (`<name>#<i>`).
    pub(crate) legacy_key: String,
    /// How many records one of its plans holds, when it can tell.
    pub(crate) count: Box<dyn Fn(&[u8]) -> Option<u64> + 'a>,
}

/// What a restart would drop of one recorded source.
#[derive(Debug, PartialEq, Eq)]
struct Dropped {
    key: String,
    was: String,
    now: Option<String>,
    batches: usize,
    /// Records of those batches; `None` when the plans cannot tell.
    records: Option<u64>,
}

impl Dropped {
    fn describe(&self) -> String {
        let records = self
            .records
            .map_or_else(|| "records".to_owned(), |n| format!("{n} records"));
        let now = self.now.as_ref().map_or_else(
            || "is not in this job".to_owned(),
            |n| format!("is `{n}` in this job"),
        );
        format!(
            "the checkpoint's source {} `{}` {now}: {} batches it planned hold {records} that the restored state has not counted and that would replay as nothing",
            self.key, self.was, self.batches
        )
    }
}

impl Checkpoint {
    /// A checkpoint of an earlier version kept plans under `<name>#<i>`: they move to the
    /// position key of the source of that name (in memory; new plans use the new keys).
    fn adopt_legacy_keys(&self, current: &[CurrentSource<'_>]) {
        let mut plans = lock(&self.plans);
        for by in plans.values_mut() {
            for c in current {
                if c.legacy_key != c.key
                    && !by.contains_key(&c.key)
                    && let Some(p) = by.remove(&c.legacy_key)
                {
                    by.insert(c.key.clone(), p);
                }
            }
        }
    }

    /// Checks the job's sources against the checkpoint's (see the module docs) and records
    /// theirs; the keys whose plans are dropped (a change accepted with
    /// `accept_source_change`). Every worker checks alike; `record` on one of them.
    pub(crate) fn check_sources(
        &self,
        current: &[CurrentSource<'_>],
        record: bool,
    ) -> Result<BTreeSet<String>> {
        // (Always: in a job of several processes another process may have written `sources`
        // already; a legacy key moves only where the position key has no plan of that batch.)
        self.adopt_legacy_keys(current);
        let recorded = load(&self.dir);
        let mut dropped = Vec::new();
        if self.resuming {
            let stateful = self.keeps_state();
            let after = self.restored_batch();
            // Batches whose content still matters: those the state must be rebuilt from, and
            // those whose outputs have not all happened.
            let from = if stateful {
                after
            } else {
                after.max(self.completed)
            };
            let plans = lock(&self.plans);
            let needed = |key: &str| -> Vec<&Vec<Vec<u8>>> {
                plans
                    .iter()
                    .filter(|(t, _)| from.is_none_or(|f| **t > f))
                    .filter_map(|(_, by)| by.get(key))
                    .collect()
            };
            let mut keys: BTreeSet<&str> = recorded.keys().map(String::as_str).collect();
            keys.extend(plans.values().flat_map(|by| by.keys().map(String::as_str)));
            for key in keys {
                let mine = current.iter().find(|c| c.key == key);
                let was = recorded.get(key);
                let same = match (mine, was) {
                    (Some(m), Some(w)) => m.identity == w.identity,
                    // Recorded by a version without identities: the key says enough.
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if same {
                    continue;
                }
                let batches = needed(key);
                let records = match mine {
                    Some(m) => batches
                        .iter()
                        .flat_map(|p| p.iter())
                        .map(|p| (m.count)(p))
                        .sum::<Option<u64>>(),
                    None => None,
                };
                let lost = !batches.is_empty() && records != Some(0);
                let d = Dropped {
                    key: key.to_owned(),
                    was: was.map_or_else(|| key.to_owned(), |w| w.identity.clone()),
                    now: mine.map(|m| m.identity.clone()),
                    batches: batches.len(),
                    records,
                };
                if lost {
                    dropped.push(d);
                } else if record {
                    tracing::info!(
                        "checkpoint {}: source {key} was `{}` and is {}; none of its planned batches is still needed",
                        self.dir.display(),
                        d.was,
                        d.now.as_deref().unwrap_or("not in this job")
                    );
                }
            }
        }
        if !dropped.is_empty() && !self.accept_source_change {
            let what: Vec<String> = dropped.iter().map(Dropped::describe).collect();
            return Err(SluiceError::InvalidConfig {
                problem: format!(
                    "the sources of this job are not those of the checkpoint in {}: {}",
                    self.dir.display(),
                    what.join("; ")
                ),
                fix: format!(
                    "restart with the source{} the checkpoint recorded ({}); or, to drop that input, restart with `--accept-source-change` (`StreamingConfig::accept_source_change(true)`)",
                    if dropped.len() > 1 { "s" } else { "" },
                    dropped
                        .iter()
                        .map(|d| format!("`{}`", d.was))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if record {
            for d in &dropped {
                tracing::warn!(
                    "checkpoint {}: accepted a changed source: {}; they are dropped",
                    self.dir.display(),
                    d.describe()
                );
            }
            let sources: Sources = current
                .iter()
                .map(|c| {
                    (
                        c.key.clone(),
                        RecordedSource {
                            identity: c.identity.clone(),
                            name: c.name.clone(),
                        },
                    )
                })
                .collect();
            if sources != recorded {
                let bytes = serde_json::to_vec_pretty(&sources).unwrap_or_default();
                self.storage
                    .write_atomic(&self.dir.join("sources"), &[&bytes])?;
            }
        }
        Ok(dropped.into_iter().map(|d| d.key).collect())
    }
}
