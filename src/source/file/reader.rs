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
use std::sync::{Arc, Mutex, MutexGuard};

use super::FileStreamOptions;
use super::select::Selector;
use super::split::{FileSplit, splits};
use crate::runtime::Runtime;
use crate::source::{BatchOut, BatchReader, BatchSlot, BatchTimeHook, Generated};
use crate::storage::{Entry, Location};

/// A batch's plan: the files it picked, and (at snapshot batches) every path known.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FilePlan {
    picked: Vec<(String, u64)>,
    known: Option<Vec<(String, u64)>>,
}

/// What the job generator picked at a batch time, as the checkpoint records it (path, size).
type PickedFiles = Vec<(String, u64)>;

/// What the generator's hook and the reader share on the listing worker: the selector, and the
/// files picked at each batch time for a batch not yet cut.
///
/// # Invariant
///
/// A batch's files are picked once: by the generator at its batch time, or by the reader when
/// it cuts a batch the generator has not reached (then the generator skips it). The selector
/// marks what it picks as known, so no file is picked for two batches.
struct Picking {
    selector: Selector,
    picked: BTreeMap<u64, Vec<Entry>>,
    /// Batches up to this one were cut.
    cut_through: Option<u64>,
}

type SharedPicking = Arc<Mutex<Picking>>;

fn lock(p: &SharedPicking) -> MutexGuard<'_, Picking> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct FileListReader {
    name: String,
    location: Option<Location>,
    picking: SharedPicking,
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
    /// The generator's hook (on the listing worker), until the job takes it.
    hook: Option<BatchTimeHook>,
}

/// The generator's hook of the listing worker (Spark's `FileInputDStream.compute` at `t`):
/// lists the directory at batch time `t` and picks the complete new files for batch `t`.
fn pick_at_batch_time(
    url: String,
    recursive: bool,
    runtime: Runtime,
    picking: SharedPicking,
) -> BatchTimeHook {
    let location: Mutex<Option<Location>> = Mutex::new(None);
    Box::new(move |t| {
        let mut location = location.lock().unwrap_or_else(|p| p.into_inner());
        if location.is_none() {
            let stop = runtime.clone();
            *location = Location::open(&url)
                .ok()
                .map(|l| l.stop_when(move || stop.stopping()));
        }
        let l = location.as_ref()?;
        let mut p = lock(&picking);
        if p.cut_through.is_some_and(|c| t <= c) || p.picked.contains_key(&t) {
            return None; // cut already, or recovered from the checkpoint
        }
        let at = wall_ms();
        // A listing that fails here is tried again when the batch is cut (which reports it).
        let listing = l.list_once(recursive).ok()?;
        let files = p.selector.select(&listing, at);
        let recorded: PickedFiles = files.iter().map(|f| (f.path.clone(), f.size)).collect();
        p.picked.insert(t, files);
        // Lines are counted when the files are read (Spark shows no records for a queued
        // batch of a file stream either).
        Some(Generated {
            record: crate::checkpoint::codec::encode(&recorded).ok()?,
            records: None,
        })
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
        let picking = Arc::new(Mutex::new(Picking {
            selector: options.selector(url),
            picked: BTreeMap::new(),
            cut_through: None,
        }));
        let hook = location.is_some().then(|| {
            pick_at_batch_time(
                url.to_owned(),
                options.selector(url).recursive(),
                runtime.clone(),
                Arc::clone(&picking),
            )
        });
        FileListReader {
            name: format!("file {url}"),
            location,
            picking,
            max_split_bytes: options.max_split_bytes,
            runtime,
            last: Vec::new(),
            replay: BTreeMap::new(),
            batches: 0,
            failure,
            listing_failed: false,
            hook,
        }
    }

    /// Why the directory could not be opened (on the listing worker), taken once.
    pub(crate) fn take_open_error(&mut self) -> Option<crate::SluiceError> {
        self.failure.take()
    }

    /// The complete new files of batch `t` — picked by the generator at `t` when it got there
    /// first, else from a listing now — or none when the listing fails (they are picked
    /// by the next listing that succeeds; nothing is lost).
    fn pick(&mut self, t: u64) -> Vec<Entry> {
        let Some(location) = &self.location else {
            return Vec::new();
        };
        let mut p = lock(&self.picking);
        p.cut_through = Some(p.cut_through.map_or(t, |c| c.max(t)));
        // Picked at `t` (and, should one have been left behind, at earlier times: each file
        // is picked once, so it must be read now).
        let later = p.picked.split_off(&(t + 1));
        let generated = std::mem::replace(&mut p.picked, later);
        if !generated.is_empty() {
            return generated.into_values().flatten().collect();
        }
        let now = wall_ms();
        let recursive = p.selector.recursive();
        match location.list_once(recursive) {
            Ok(listing) => {
                if self.listing_failed {
                    tracing::info!("{}: listing works again", self.name);
                    self.listing_failed = false;
                }
                p.selector.select(&listing, now)
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
            // What the batches up to this one read: the files the generator already picked
            // for later batches are not (they are read by those batches, after a restart
            // too); a snapshot that counted them as read lost them when the job died before
            // cutting those batches.
            known: with_known.then(|| {
                let p = lock(&self.picking);
                let ahead: std::collections::HashSet<&str> = p
                    .picked
                    .values()
                    .flatten()
                    .map(|e| e.path.as_str())
                    .collect();
                p.selector
                    .known
                    .iter()
                    .filter(|(path, _)| !ahead.contains(path.as_str()))
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
        let mut p = lock(&self.picking);
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
                p.selector.remember_picked(known);
            }
            p.selector.remember_picked(plan.picked.clone());
            if recovery.after.is_none_or(|a| *t > a) {
                self.replay.insert(*t, plan.picked);
            }
        }
        if recovery.after.is_some() && !known_from_plan {
            return Err(recovery.missing_plan(&self.name, "files"));
        }
        // Batches generated but not cut before the restart: cut with the files picked then.
        for (t, generated) in &recovery.generated {
            let Some(files) = generated
                .first()
                .and_then(|g| crate::checkpoint::codec::decode::<PickedFiles>(g).ok())
            else {
                tracing::warn!("{}: an unreadable generated batch {t} ms", self.name);
                continue;
            };
            p.selector.remember_picked(files.clone());
            let entries = files
                .into_iter()
                .map(|(path, size)| Entry {
                    path,
                    size,
                    modified_ms: 0,
                    tag: None,
                })
                .collect();
            p.picked.insert(*t, entries);
        }
        if any || !recovery.generated.is_empty() {
            tracing::info!(
                "{}: {} batches replayed with their recorded files, {} generated before the restart cut with the files picked then; {} files known from before the restart are not read again",
                self.name,
                self.replay.len(),
                recovery.generated.len(),
                p.selector.known.len()
            );
        }
        Ok(())
    }

    fn at_batch_time(&mut self) -> Option<BatchTimeHook> {
        self.hook.take()
    }
}
