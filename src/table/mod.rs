//! Static and reloaded keyed tables for `transform` (Spark's "join the batch with an RDD").
//!
//! [`PairBatchExt`] joins one batch's records with a `HashMap`; [`ReloadingTable`] keeps such a
//! map loaded from a file and re-reads it when the file changes (checked at most once per
//! `check_every`), so a blacklist can be edited while the job runs. A file that cannot be read
//! or parsed keeps the previous table and is reported; bad lines are counted and skipped.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Result, SluiceError};

/// Joins a batch of `(K, V)` records with a keyed table.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use sluice::table::PairBatchExt;
/// let table: HashMap<&str, bool> = [("bad", true)].into();
/// let batch = vec![("bad", 1), ("good", 2)];
/// assert_eq!(batch.clone().left_outer_join(&table), vec![("bad", (1, Some(true))), ("good", (2, None))]);
/// assert_eq!(batch.join(&table), vec![("bad", (1, true))]);
/// ```
pub trait PairBatchExt<K, V> {
    /// Every record, with the table's value for its key or `None` (Spark's `leftOuterJoin`).
    fn left_outer_join<W: Clone, S: std::hash::BuildHasher>(
        self,
        table: &HashMap<K, W, S>,
    ) -> Vec<(K, (V, Option<W>))>;
    /// The records whose key is in the table, with its value (Spark's `join`).
    fn join<W: Clone, S: std::hash::BuildHasher>(
        self,
        table: &HashMap<K, W, S>,
    ) -> Vec<(K, (V, W))>;
}

impl<K: Hash + Eq, V> PairBatchExt<K, V> for Vec<(K, V)> {
    fn left_outer_join<W: Clone, S: std::hash::BuildHasher>(
        self,
        table: &HashMap<K, W, S>,
    ) -> Vec<(K, (V, Option<W>))> {
        self.into_iter()
            .map(|(k, v)| {
                let w = table.get(&k).cloned();
                (k, (v, w))
            })
            .collect()
    }
    fn join<W: Clone, S: std::hash::BuildHasher>(
        self,
        table: &HashMap<K, W, S>,
    ) -> Vec<(K, (V, W))> {
        self.into_iter()
            .filter_map(|(k, v)| {
                let w = table.get(&k).cloned()?;
                Some((k, (v, w)))
            })
            .collect()
    }
}

type Parser<K, V> = dyn Fn(&str) -> Option<(K, V)> + Send + Sync;

struct Loaded<K, V> {
    table: Arc<HashMap<K, V>>,
    modified: Option<SystemTime>,
    len: u64,
    checked: Instant,
}

/// A keyed table loaded from a text file and re-read when the file changes; clones share it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::table::ReloadingTable;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("blacklist.txt");
/// std::fs::write(&path, "27.19.74.143\n# a comment\n").unwrap();
/// let table = ReloadingTable::from_file(&path, Duration::ZERO, |line| Some((line.to_owned(), true)))?;
/// assert!(table.current().contains_key("27.19.74.143"));
/// std::fs::write(&path, "27.19.74.143\n110.52.250.126\n").unwrap();
/// assert_eq!(table.current().len(), 2);
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub struct ReloadingTable<K, V> {
    path: PathBuf,
    check_every: Duration,
    parse: Arc<Parser<K, V>>,
    loaded: Arc<Mutex<Loaded<K, V>>>,
}

impl<K, V> Clone for ReloadingTable<K, V> {
    fn clone(&self) -> Self {
        ReloadingTable {
            path: self.path.clone(),
            check_every: self.check_every,
            parse: Arc::clone(&self.parse),
            loaded: Arc::clone(&self.loaded),
        }
    }
}

impl<K: Hash + Eq, V> ReloadingTable<K, V> {
    /// Loads `path` now (an error if it cannot be read), parsing each non-empty line that does
    /// not start with `#` with `parse` (lines it rejects are counted and skipped).
    pub fn from_file(
        path: impl AsRef<Path>,
        check_every: Duration,
        parse: impl Fn(&str) -> Option<(K, V)> + Send + Sync + 'static,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let parse: Arc<Parser<K, V>> = Arc::new(parse);
        let (table, modified, len) = load(&path, &*parse)?;
        Ok(ReloadingTable {
            path,
            check_every,
            parse,
            loaded: Arc::new(Mutex::new(Loaded {
                table: Arc::new(table),
                modified,
                len,
                checked: Instant::now(),
            })),
        })
    }

    /// The table as of now: re-read first if the file changed since it was last read.
    pub fn current(&self) -> Arc<HashMap<K, V>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() >= self.check_every {
            loaded.checked = Instant::now();
            let meta = std::fs::metadata(&self.path);
            let changed = match &meta {
                Ok(m) => m.modified().ok() != loaded.modified || m.len() != loaded.len,
                Err(_) => false,
            };
            if let Err(e) = &meta {
                tracing::warn!(
                    "cannot check {}: {e}; keeping the table read before",
                    self.path.display()
                );
            }
            if changed {
                match load(&self.path, &*self.parse) {
                    Ok((table, modified, len)) => {
                        tracing::info!("reloaded {} ({} keys)", self.path.display(), table.len());
                        loaded.table = Arc::new(table);
                        loaded.modified = modified;
                        loaded.len = len;
                    }
                    Err(e) => tracing::warn!("{e}; keeping the table read before"),
                }
            }
        }
        Arc::clone(&loaded.table)
    }
}

fn load<K: Hash + Eq, V>(
    path: &Path,
    parse: &Parser<K, V>,
) -> Result<(HashMap<K, V>, Option<SystemTime>, u64)> {
    let io = |source| SluiceError::Io {
        action: "cannot read the table file",
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut table = HashMap::new();
    let mut bad = 0u64;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match parse(line) {
            Some((k, v)) => {
                table.insert(k, v);
            }
            None => bad += 1,
        }
    }
    if bad > 0 {
        tracing::warn!(
            "{}: {bad} lines could not be parsed and were skipped",
            path.display()
        );
    }
    Ok((table, meta.modified().ok(), meta.len()))
}
