//! Which files of a listing a batch picks: the part of a directory stream with no I/O, so it
//! can be tested against a model.
//!
//! Invariants:
//! - a path is picked at most once while it stays in the directory (a file that changes after
//!   it was picked is reported, not read again); a path that leaves the directory and comes
//!   back is a new file;
//! - a file is picked only once it is **complete** ([`FileCompletion`]);
//! - files that were there before the first listing are skipped with `new_files_only`, and,
//!   without it, those last modified before the remember window (Spark's rule); a file that
//!   appears later is new whatever its modification time says (Spark misses files moved in with
//!   `mv`, which keep their old time; sluice does not);
//! - names Hadoop and Spark treat as hidden (`.x`, `_x`, in any directory of the path) and
//!   names of files still being written by common tools (`x._COPYING_` of `hdfs dfs -put`,
//!   `x.tmp`, `x.inprogress`, `x.crdownload`) are never picked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::storage::Entry;

/// When a file that appeared in a directory is complete enough to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileCompletion {
    /// At first sight: the store shows only complete objects (S3: an object is visible once
    /// its upload, multipart or not, has completed), or files only arrive by atomic rename.
    Visible,
    /// Once it has not changed for this long: its modification time is at least this old, or
    /// its size, time and tag were the same in a listing at least this long ago. Catches files
    /// copied in (`cp`, `scp`, an upload) while they are written, as long as the writer does
    /// not pause for longer than this.
    Quiet(Duration),
    /// Once a marker file `<name><suffix>` exists beside it (`part-1.txt.done`), the safest
    /// protocol for writers that can write one; markers themselves are never read.
    Marker(String),
}

/// A filter on paths (relative to the watched directory), as Spark's `fileStream`'s.
pub type PathFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Which names are read at all.
#[derive(Clone, Default)]
pub(crate) struct Eligible {
    pub(crate) glob: Option<globset::GlobMatcher>,
    pub(crate) filter: Option<PathFilter>,
    pub(crate) marker: Option<String>,
}

const IN_PROGRESS: [&str; 4] = ["._COPYING_", ".tmp", ".inprogress", ".crdownload"];

impl Eligible {
    pub(crate) fn admits(&self, path: &str) -> bool {
        if path
            .split('/')
            .any(|c| c.starts_with('.') || c.starts_with('_'))
        {
            return false;
        }
        if IN_PROGRESS.iter().any(|s| path.ends_with(s)) {
            return false;
        }
        if let Some(m) = &self.marker
            && path.ends_with(m.as_str())
        {
            return false;
        }
        if let Some(g) = &self.glob
            && !g.is_match(path)
        {
            return false;
        }
        self.filter.as_ref().is_none_or(|f| f(path))
    }
}

/// A file seen but not yet complete.
#[derive(Clone, Debug)]
struct Pending {
    size: u64,
    modified_ms: i64,
    tag: Option<String>,
    /// When it was first seen as it is now (wall ms).
    since_ms: i64,
}

/// The selector's memory: what it has picked or skipped (and must not pick), what it waits for.
pub(crate) struct Selector {
    pub(crate) eligible: Eligible,
    pub(crate) completion: FileCompletion,
    pub(crate) new_files_only: bool,
    pub(crate) remember_ms: i64,
    /// Whether subdirectories are listed too.
    pub(crate) recursive: bool,
    /// At most this many files per batch.
    pub(crate) max_files: Option<usize>,
    /// Paths picked or skipped, with the size they had then, while they stay listed.
    pub(crate) known: BTreeMap<String, u64>,
    pending: BTreeMap<String, Pending>,
    /// Whether a listing was seen (the first one decides what existed before the job).
    pub(crate) started: bool,
    /// Known paths already reported as changed after they were picked.
    changed_warned: BTreeSet<String>,
}

impl Selector {
    pub(crate) fn new(
        eligible: Eligible,
        completion: FileCompletion,
        new_files_only: bool,
        remember: Duration,
    ) -> Self {
        Selector {
            eligible,
            completion,
            new_files_only,
            remember_ms: remember.as_millis() as i64,
            recursive: false,
            max_files: None,
            known: BTreeMap::new(),
            pending: BTreeMap::new(),
            started: false,
            changed_warned: BTreeSet::new(),
        }
    }

    /// The files of `listing` (sorted by path) that the batch picks, in path order; `now_ms` is
    /// the wall-clock time of the listing.
    pub(crate) fn select(&mut self, listing: &[Entry], now_ms: i64) -> Vec<Entry> {
        let listed: BTreeSet<&str> = listing.iter().map(|e| e.path.as_str()).collect();
        // Forget what left the directory: if it comes back, it is a new file.
        self.known.retain(|p, _| listed.contains(p.as_str()));
        self.pending.retain(|p, _| listed.contains(p.as_str()));
        let first = !self.started;
        self.started = true;
        let mut picked = Vec::new();
        for e in listing {
            if !self.eligible.admits(&e.path) {
                continue;
            }
            if let Some(size) = self.known.get(&e.path) {
                if *size != e.size && self.changed_warned.insert(e.path.clone()) {
                    tracing::warn!(
                        "{}: changed after it was read ({size} bytes then, {} now); the change is not read (write files elsewhere and move them in when complete)",
                        e.path,
                        e.size
                    );
                }
                continue;
            }
            if first && (self.new_files_only || e.modified_ms < now_ms - self.remember_ms) {
                // There before the job started (Spark: `newFilesOnly`), or older than the
                // remember window.
                self.known.insert(e.path.clone(), e.size);
                continue;
            }
            if self.max_files.is_some_and(|m| picked.len() >= m) {
                // The rate limit: the rest waits for the next batches.
                break;
            }
            if self.complete(e, &listed, now_ms) {
                self.pending.remove(&e.path);
                self.known.insert(e.path.clone(), e.size);
                picked.push(e.clone());
            }
        }
        picked
    }

    fn complete(&mut self, e: &Entry, listed: &BTreeSet<&str>, now_ms: i64) -> bool {
        match &self.completion {
            FileCompletion::Visible => true,
            FileCompletion::Marker(suffix) => {
                listed.contains(format!("{}{suffix}", e.path).as_str())
            }
            FileCompletion::Quiet(d) => {
                let quiet = d.as_millis() as i64;
                if e.modified_ms <= now_ms - quiet {
                    return true;
                }
                let same = |p: &Pending| {
                    p.size == e.size && p.modified_ms == e.modified_ms && p.tag == e.tag
                };
                match self.pending.get(&e.path) {
                    Some(p) if same(p) => now_ms - p.since_ms >= quiet,
                    _ => {
                        self.pending.insert(
                            e.path.clone(),
                            Pending {
                                size: e.size,
                                modified_ms: e.modified_ms,
                                tag: e.tag.clone(),
                                since_ms: now_ms,
                            },
                        );
                        false
                    }
                }
            }
        }
    }

    /// Whether subdirectories are listed too.
    pub(crate) fn recursive(&self) -> bool {
        self.recursive
    }

    /// Marks `files` as picked (a replayed batch's, or the known set of a restored plan).
    pub(crate) fn remember_picked(&mut self, files: impl IntoIterator<Item = (String, u64)>) {
        self.started = true;
        self.known.extend(files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(path: &str, size: u64, modified_ms: i64) -> Entry {
        Entry {
            path: path.into(),
            size,
            modified_ms,
            tag: None,
        }
    }

    fn names(v: &[Entry]) -> Vec<&str> {
        v.iter().map(|e| e.path.as_str()).collect()
    }

    fn selector(completion: FileCompletion, new_files_only: bool) -> Selector {
        Selector::new(
            Eligible::default(),
            completion,
            new_files_only,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn files_present_at_start_are_skipped_with_new_files_only() {
        let mut s = selector(FileCompletion::Visible, true);
        assert!(s.select(&[entry("old.txt", 1, 0)], 100_000).is_empty());
        let l = [entry("new.txt", 1, 100_500), entry("old.txt", 1, 0)];
        assert_eq!(names(&s.select(&l, 101_000)), ["new.txt"]);
        assert!(s.select(&l, 102_000).is_empty(), "never twice");
    }

    #[test]
    fn without_new_files_only_old_files_within_the_remember_window_are_read() {
        let mut s = selector(FileCompletion::Visible, false);
        let l = [entry("ancient.txt", 1, 0), entry("recent.txt", 1, 90_000)];
        assert_eq!(names(&s.select(&l, 100_000)), ["recent.txt"]);
    }

    #[test]
    fn a_file_moved_in_with_an_old_time_is_new() {
        let mut s = selector(FileCompletion::Quiet(Duration::from_secs(1)), true);
        assert!(s.select(&[], 100_000).is_empty());
        let l = [entry("moved.txt", 10, 5_000)];
        assert_eq!(names(&s.select(&l, 101_000)), ["moved.txt"]);
    }

    #[test]
    fn a_file_being_written_waits_until_it_is_quiet() {
        let mut s = selector(FileCompletion::Quiet(Duration::from_secs(1)), true);
        s.select(&[], 0);
        assert!(s.select(&[entry("f", 10, 10_000)], 10_100).is_empty());
        assert!(s.select(&[entry("f", 20, 10_500)], 10_600).is_empty());
        assert!(s.select(&[entry("f", 20, 10_500)], 11_000).is_empty());
        assert_eq!(names(&s.select(&[entry("f", 20, 10_500)], 11_500)), ["f"]);
    }

    #[test]
    fn markers_gate_files_and_are_never_read() {
        let mut s = Selector::new(
            Eligible {
                marker: Some(".done".into()),
                ..Eligible::default()
            },
            FileCompletion::Marker(".done".into()),
            true,
            Duration::from_secs(60),
        );
        s.select(&[], 0);
        assert!(s.select(&[entry("a", 1, 1)], 1).is_empty());
        let l = [entry("a", 1, 1), entry("a.done", 0, 2)];
        assert_eq!(names(&s.select(&l, 2)), ["a"]);
    }

    #[test]
    fn hidden_and_in_progress_names_are_never_read() {
        let e = Eligible::default();
        for name in [
            ".x",
            "_SUCCESS",
            "d/.hidden/f",
            "f._COPYING_",
            "f.tmp",
            "f.crdownload",
        ] {
            assert!(!e.admits(name), "{name}");
        }
        assert!(e.admits("dir/part-0000.txt"));
    }

    #[test]
    fn max_files_per_batch_spreads_a_backlog_over_batches() {
        let mut s = selector(FileCompletion::Visible, true);
        s.max_files = Some(2);
        s.select(&[], 0);
        let l: Vec<Entry> = (0..5).map(|i| entry(&format!("f{i}"), 1, 1)).collect();
        assert_eq!(names(&s.select(&l, 1)), ["f0", "f1"]);
        assert_eq!(names(&s.select(&l, 2)), ["f2", "f3"]);
        assert_eq!(names(&s.select(&l, 3)), ["f4"]);
    }

    #[test]
    fn a_file_that_leaves_and_comes_back_is_new() {
        let mut s = selector(FileCompletion::Visible, true);
        s.select(&[], 0);
        assert_eq!(s.select(&[entry("a", 1, 1)], 1).len(), 1);
        assert!(s.select(&[], 2).is_empty());
        assert_eq!(s.select(&[entry("a", 1, 3)], 3).len(), 1);
    }

    proptest! {
        /// Against a model: with files that appear (whole) and stay, every file that appeared
        /// after the first listing is picked exactly once, in the listing it first shows up in.
        #[test]
        fn every_new_file_is_picked_exactly_once(arrivals in proptest::collection::vec(0usize..6, 1..40)) {
            let mut s = selector(FileCompletion::Visible, true);
            let mut present: Vec<Entry> = vec![entry("pre-existing", 1, 0)];
            s.select(&present, 0);
            let mut picked = BTreeMap::new();
            for (round, n) in arrivals.iter().enumerate() {
                for k in 0..*n {
                    present.push(entry(&format!("f{round:03}-{k}"), 1, round as i64));
                }
                present.sort_by(|a, b| a.path.cmp(&b.path));
                for e in s.select(&present, round as i64 + 1) {
                    prop_assert!(picked.insert(e.path.clone(), round).is_none(), "{} twice", e.path);
                }
            }
            let expected: usize = arrivals.iter().sum();
            prop_assert_eq!(picked.len(), expected);
            for (path, round) in picked {
                prop_assert_eq!(path[1..4].parse::<usize>().unwrap(), round);
            }
        }
    }
}
