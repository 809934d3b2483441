//! The listing side of a directory stream: on worker 0, list the directory once per batch,
//! pick the complete new files, cut them into splits and record them as the batch's plan.
//!
//! The plan of a batch is the files it picked (path and size). The plan of the first batch of
//! a run and of every batch after which a snapshot is due also holds every path the stream
//! knows (picked or skipped and still in the directory), so that a restart from the snapshot
//! of batch `t` knows, from `t`'s plan and the plans after it, exactly which files were read:
//! batches after `t` are replayed with their recorded files, and the first new batch picks
//! what arrived meanwhile, nothing twice.

use std::collections::BTreeMap;

use super::FileStreamOptions;
use super::select::Selector;
use super::split::{FileSplit, splits};
use crate::context::generator::SharedSamples;
use crate::runtime::Runtime;
use crate::source::{BatchOut, BatchReader, BatchSlot};
use crate::storage::{Entry, Location};

/// A batch's plan: the files it picked, and (at snapshot batches) every path known.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FilePlan {
    picked: Vec<(String, u64)>,
    known: Option<Vec<(String, u64)>>,
}

pub(crate) struct FileListReader {
    name: String,
    location: Option<Location>,
    selector: Selector,
    max_split_bytes: u64,
    runtime: Runtime,
    /// The files of the batch read last (for its plan).
    last: Vec<(String, u64)>,
    replay: BTreeMap<u64, Vec<(String, u64)>>,
    /// Batches cut by this run (its first plan carries the known set).
    batches: u64,
    failure: Option<crate::SluiceError>,
    /// The last listing failed (reported once until one succeeds).
    listing_failed: bool,
    /// The directory as the job generator listed it at each batch's time, and when (Spark's
    /// rule: batch `t` picks the files found complete at `t`, even when it is cut later).
    samples: SharedSamples<(Vec<Entry>, i64)>,
}

/// The generator's hook of the listing worker: the directory's listing at each batch time.
fn list_at_batch_time(
    url: String,
    recursive: bool,
    runtime: Runtime,
    samples: SharedSamples<(Vec<Entry>, i64)>,
) -> Box<dyn Fn(u64) + Send + Sync> {
    let location: std::sync::Mutex<Option<Location>> = std::sync::Mutex::new(None);
    Box::new(move |t| {
        let mut location = location.lock().unwrap_or_else(|p| p.into_inner());
        if location.is_none() {
            let stop = runtime.clone();
            *location = Location::open(&url)
                .ok()
                .map(|l| l.stop_when(move || stop.stopping()));
        }
        let Some(l) = location.as_ref() else {
            return;
        };
        let at = wall_ms();
        // A listing that fails here is tried again when the batch is cut (which reports it).
        if let Ok(listing) = l.list_once(recursive) {
            samples.put(t, (listing, at));
        }
    })
}

impl FileListReader {
    pub(crate) fn new(url: &str, options: &FileStreamOptions, runtime: Runtime) -> Self {
        let lister = runtime.worker().index == 0;
        let mut failure = None;
        let location = if lister {
            let stop_runtime = runtime.clone();
            match Location::open(url) {
                Ok(l) => Some(l.stop_when(move || stop_runtime.stopping())),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        } else {
            None
        };
        let samples = SharedSamples::default();
        if location.is_some() {
            runtime.on_batch_time(list_at_batch_time(
                url.to_owned(),
                options.selector(url).recursive(),
                runtime.clone(),
                std::sync::Arc::clone(&samples),
            ));
        }
        FileListReader {
            samples,
            name: format!("file {url}"),
            location,
            selector: options.selector(url),
            max_split_bytes: options.max_split_bytes,
            runtime,
            last: Vec::new(),
            replay: BTreeMap::new(),
            batches: 0,
            failure,
            listing_failed: false,
        }
    }

    /// Why the directory could not be opened (on the listing worker), taken once.
    pub(crate) fn take_open_error(&mut self) -> Option<crate::SluiceError> {
        self.failure.take()
    }

    /// The complete new files of batch `t` — from the generator's listing at `t` when there is
    /// one, else from a listing now — or none when the listing fails (they are picked
    /// by the next listing that succeeds; nothing is lost).
    fn pick(&mut self, t: u64) -> Vec<Entry> {
        let Some(location) = &self.location else {
            return Vec::new();
        };
        if let Some((listing, at)) = self.samples.take(t) {
            return self.selector.select(&listing, at);
        }
        let now = wall_ms();
        match location.list_once(self.selector.recursive()) {
            Ok(listing) => {
                if self.listing_failed {
                    tracing::info!("{}: listing works again", self.name);
                    self.listing_failed = false;
                }
                self.selector.select(&listing, now)
            }
            Err(e) if e.is_user_error() => {
                self.failure = Some(e);
                Vec::new()
            }
            Err(e) => {
                if !self.listing_failed {
                    tracing::warn!(
                        "{}: {e}; this batch picks no files, the next listing tries again",
                        self.name
                    );
                    self.listing_failed = true;
                }
                Vec::new()
            }
        }
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl BatchReader<FileSplit> for FileListReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn identity(&self) -> String {
        // A local directory by its absolute path, however it was written.
        match self.location.as_ref().map(|l| l.url()) {
            Some(url) if !url.contains("://") || url.starts_with("file://") => {
                let path = url.strip_prefix("file://").unwrap_or(url);
                std::fs::canonicalize(path)
                    .map_or_else(|_| self.name.clone(), |p| format!("file {}", p.display()))
            }
            _ => self.name.clone(),
        }
    }

    fn planned_records(&self, plan: &[u8]) -> Option<u64> {
        // A directory stream's batch is its files: each one counts.
        crate::checkpoint::codec::decode::<FilePlan>(plan)
            .ok()
            .map(|p| p.picked.len() as u64)
    }

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<FileSplit>) -> u64 {
        if self.location.is_none() {
            return 0;
        }
        self.batches += 1;
        let files: Vec<Entry> = match self.replay.remove(&slot.time.millis()) {
            Some(files) => files
                .into_iter()
                .map(|(path, size)| Entry {
                    path,
                    size,
                    modified_ms: 0,
                    tag: None,
                })
                .collect(),
            None => self.pick(slot.time.millis()),
        };
        self.last = files.iter().map(|f| (f.path.clone(), f.size)).collect();
        for (i, split) in splits(&files, self.max_split_bytes).into_iter().enumerate() {
            out.partition(i as u32).push(split);
        }
        0
    }

    fn records_in(&self, _items: &[FileSplit]) -> u64 {
        // Splits are not records; the lines read from them are counted where they are read.
        0
    }

    fn failure(&mut self) -> Option<crate::SluiceError> {
        self.failure.take()
    }

    fn plan(&mut self, slot: &BatchSlot) -> Option<Vec<u8>> {
        self.location.as_ref()?;
        let with_known = self.batches == 1 || self.runtime.snapshot_due(slot.time.millis());
        let plan = FilePlan {
            picked: std::mem::take(&mut self.last),
            known: with_known.then(|| {
                self.selector
                    .known
                    .iter()
                    .map(|(p, s)| (p.clone(), *s))
                    .collect()
            }),
        };
        crate::checkpoint::codec::encode(&plan).ok()
    }

    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) -> crate::Result<()> {
        if self.location.is_none() {
            return Ok(());
        }
        let mut known_from_plan = false;
        let mut any = false;
        for (t, plans) in &recovery.plans {
            let Some(plan) = plans
                .first()
                .and_then(|p| crate::checkpoint::codec::decode::<FilePlan>(p).ok())
            else {
                continue;
            };
            any = true;
            if let Some(known) = plan.known {
                // The restored batch's plan says what every batch up to it had read.
                known_from_plan |= recovery.after == Some(*t);
                self.selector.remember_picked(known);
            }
            self.selector.remember_picked(plan.picked.clone());
            if recovery.after.is_none_or(|a| *t > a) {
                self.replay.insert(*t, plan.picked);
            }
        }
        if recovery.after.is_some() && !known_from_plan {
            return Err(recovery.missing_plan(&self.name, "files"));
        }
        if any {
            tracing::info!(
                "{}: {} batches replayed with their recorded files; {} files known from before the restart are not read again",
                self.name,
                self.replay.len(),
                self.selector.known.len()
            );
        }
        Ok(())
    }
}
