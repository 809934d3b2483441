//! The object-store layer under directory streams: one [`Location`] for a local directory,
//! an S3 prefix or an HDFS directory, read through the `object_store` crate (the layer
//! DataFusion and arrow-rs use), with a blocking face for the worker threads.
//!
//! - **Local** (`/data/in`, `data/in`, `file:///data/in`): `object_store`'s `LocalFileSystem`
//!   rooted at the directory, which must exist.
//! - **S3** (`s3://bucket/prefix`, feature `s3`): credentials, region and endpoint come from the
//!   usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//!   `AWS_ENDPOINT_URL` for an S3-protocol server other than Amazon's, `AWS_ALLOW_HTTP=true` for
//!   one without TLS), as the AWS tools and Spark's `s3a` read them.
//! - **HDFS** (`hdfs://namenode:port/dir`, feature `hdfs`): `hdfs-native-object-store`, a Rust
//!   client of the name node's protocol (no JVM, no `libhdfs`).
//!
//! Every request is retried with backoff while it fails transiently (a server away, a
//! connection reset); a missing directory or bucket and refused credentials end at once with a
//! configuration error (exit 2) that names the location.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Result, SluiceError};
use errors::{is_configuration, store_error};

mod errors;
use crate::retry::{Backoff, Failure, GaveUp};

/// Which kind of store a [`Location`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// A directory of the local file system (or a mounted one).
    Local,
    /// An S3 bucket (or any S3-protocol server).
    S3,
    /// An HDFS directory.
    Hdfs,
}

/// One object as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path below the location's root, `/`-separated (`2026/12/part-0.txt`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, ms since the epoch.
    pub modified_ms: i64,
    /// The store's version tag (S3's ETag; local: inode, size and time), if it has one.
    pub tag: Option<String>,
}

/// A directory on some store, opened: where directory streams list and read.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "files")] {
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("a.txt"), "hello\n").unwrap();
/// let location = sluice::storage::Location::open(dir.path().to_str().unwrap()).unwrap();
/// let entries = location.list(true).unwrap();
/// assert_eq!(entries[0].path, "a.txt");
/// assert_eq!(location.read(&entries[0].path, 0..6).unwrap(), b"hello\n");
/// # }
/// ```
pub struct Location {
    url: String,
    scheme: Scheme,
    store: Arc<dyn ObjectStore>,
    prefix: Option<ObjectPath>,
    runtime: tokio::runtime::Runtime,
    backoff: Backoff,
    /// Gives up retrying when this holds (the job is stopping).
    stop: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("url", &self.url)
            .field("scheme", &self.scheme)
            .finish()
    }
}

/// The scheme of `url`, without opening anything.
///
/// # Examples
///
/// ```
/// use sluice::storage::{scheme_of, Scheme};
/// assert_eq!(scheme_of("s3://bucket/in").unwrap(), Scheme::S3);
/// assert_eq!(scheme_of("/data/in").unwrap(), Scheme::Local);
/// assert!(scheme_of("gopher://x").is_err());
/// ```
pub fn scheme_of(url: &str) -> Result<Scheme> {
    match url.split_once("://") {
        None => Ok(Scheme::Local),
        Some(("file", _)) => Ok(Scheme::Local),
        Some(("s3" | "s3a", _)) => Ok(Scheme::S3),
        Some(("hdfs" | "viewfs", _)) => Ok(Scheme::Hdfs),
        Some((other, _)) => Err(SluiceError::InvalidConfig {
            problem: format!("`{url}` has the scheme `{other}://`, which directory streams do not read"),
            fix: "give a local directory (`/data/in`), `s3://bucket/prefix` or `hdfs://namenode:port/dir`".into(),
        }),
    }
}

impl Location {
    /// Opens the directory `url` (see the module docs for the forms). A local directory must
    /// exist; a remote one is only checked by the first listing.
    pub fn open(url: &str) -> Result<Location> {
        let scheme = scheme_of(url)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SluiceError::Io {
                action: "cannot start the I/O runtime for",
                path: url.into(),
                source: e,
            })?;
        let (store, prefix): (Arc<dyn ObjectStore>, Option<ObjectPath>) = match scheme {
            Scheme::Local => {
                let path = url.strip_prefix("file://").unwrap_or(url);
                let dir = std::fs::canonicalize(path).map_err(|e| SluiceError::Io {
                    action: "cannot watch the directory",
                    path: path.into(),
                    source: e,
                })?;
                if !dir.is_dir() {
                    return Err(SluiceError::InvalidConfig {
                        problem: format!("{} is not a directory", dir.display()),
                        fix: "give the directory that new files are put into".into(),
                    });
                }
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| store_error(url, "cannot open", e))?;
                (Arc::new(store), None)
            }
            Scheme::S3 => open_s3(url)?,
            Scheme::Hdfs => open_hdfs(url)?,
        };
        Ok(Location {
            url: url.to_owned(),
            scheme,
            store,
            prefix,
            runtime,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            stop: Arc::new(|| false),
        })
    }

    /// Gives up retrying a failing request once `stop()` holds (a stopping job).
    pub fn stop_when(mut self, stop: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.stop = Arc::new(stop);
        self
    }

    /// The location as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many reads a worker keeps in flight here: 4 on a local disk, 16 on an object store
    /// or HDFS (each request waits on the network).
    pub(crate) fn parallel_reads(&self) -> usize {
        match self.scheme {
            Scheme::Local => 4,
            _ => 16,
        }
    }

    /// Its kind of store.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn full(&self, path: &str) -> ObjectPath {
        match &self.prefix {
            Some(p) => ObjectPath::from(format!("{p}/{path}")),
            None => ObjectPath::from(path),
        }
    }

    fn relative(&self, location: &ObjectPath) -> String {
        let s = location.as_ref();
        match &self.prefix {
            Some(p) => s
                .strip_prefix(p.as_ref())
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(s)
                .to_owned(),
            None => s.to_owned(),
        }
    }

    /// Runs one request with retries: transient failures are retried with backoff until
    /// `stop`; a configuration mistake ends at once.
    fn request<T>(
        &self,
        action: &str,
        mut attempt: impl FnMut() -> object_store::Result<T>,
    ) -> Result<T> {
        let what = format!("{}: {action}", self.url);
        let stop = Arc::clone(&self.stop);
        self.backoff
            .retry(&what, &move || stop(), || {
                attempt().map_err(|e| {
                    if is_configuration(&e) {
                        Failure::Permanent(e)
                    } else {
                        Failure::Transient(e)
                    }
                })
            })
            .map_err(|e| match e {
                GaveUp::Permanent(e) | GaveUp::Stopped(e) => store_error(&self.url, action, e),
            })
    }

    /// Every object below the location (`recursive`) or directly in it, sorted by path;
    /// transient failures are retried.
    pub fn list(&self, recursive: bool) -> Result<Vec<Entry>> {
        self.request("cannot list", || self.list_attempt(recursive))
            .map(|m| self.entries(m))
    }

    /// Every object below the folder `dir` of the location (`""`: all), recursively, sorted.
    pub fn list_under(&self, dir: &str) -> Result<Vec<Entry>> {
        let prefix = match (&self.prefix, dir.trim_matches('/')) {
            (p, "") => p.clone(),
            (Some(p), d) => Some(ObjectPath::from(format!("{p}/{d}"))),
            (None, d) => Some(ObjectPath::from(d)),
        };
        let metas = self.request("cannot list", || {
            self.runtime
                .block_on(self.store.list(prefix.as_ref()).try_collect::<Vec<_>>())
        })?;
        Ok(self.entries(metas))
    }

    /// [`list`](Location::list), tried once: a directory stream lists again at its next batch
    /// rather than hold this one up.
    pub fn list_once(&self, recursive: bool) -> Result<Vec<Entry>> {
        self.list_attempt(recursive)
            .map(|m| self.entries(m))
            .map_err(|e| store_error(&self.url, "cannot list", e))
    }

    fn list_attempt(&self, recursive: bool) -> object_store::Result<Vec<object_store::ObjectMeta>> {
        self.runtime.block_on(async {
            if recursive {
                self.store.list(self.prefix.as_ref()).try_collect().await
            } else {
                self.store
                    .list_with_delimiter(self.prefix.as_ref())
                    .await
                    .map(|r| r.objects)
            }
        })
    }

    fn entries(&self, metas: Vec<object_store::ObjectMeta>) -> Vec<Entry> {
        let mut entries: Vec<Entry> = metas
            .into_iter()
            .map(|m| Entry {
                path: self.relative(&m.location),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
                tag: m.e_tag,
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries
    }

    /// Bytes `range` of the object at `path` (below the location).
    pub fn read(&self, path: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let location = self.full(path);
        let action = format!("cannot read {path}");
        self.request(&action, || {
            self.runtime
                .block_on(self.store.get_range(&location, range.clone()))
                .map(|b| b.to_vec())
        })
    }

    /// The whole object at `path`.
    pub fn read_all(&self, path: &str) -> Result<Vec<u8>> {
        let location = self.full(path);
        let action = format!("cannot read {path}");
        self.request(&action, || {
            self.runtime.block_on(async {
                let got = self.store.get(&location).await?;
                got.bytes().await.map(|b| b.to_vec())
            })
        })
    }

    /// Writes `bytes` to `path`, whole (readers see all of it or nothing).
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let location = self.full(path);
        let action = format!("cannot write {path}");
        let payload = object_store::PutPayload::from(bytes.to_vec());
        self.request(&action, || {
            self.runtime
                .block_on(self.store.put(&location, payload.clone()))
                .map(|_| ())
        })
    }

    /// Writes `bytes` to `path` only if nothing is there (`PutMode::Create`, where the store
    /// has it): a retry whose first attempt had landed finds its own bytes and succeeds; other
    /// bytes there are another writer's, and an error.
    pub fn write_new(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let location = self.full(path);
        let action = format!("cannot write {path}");
        let payload = object_store::PutPayload::from(bytes.to_vec());
        let options = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        let outcome = self.request(&action, || {
            match self.runtime.block_on(self.store.put_opts(
                &location,
                payload.clone(),
                options.clone(),
            )) {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(object_store::Error::NotImplemented { .. }) => self
                    .runtime
                    .block_on(self.store.put(&location, payload.clone()))
                    .map(|_| true),
                Err(e) => Err(e),
            }
        })?;
        if !outcome && self.read_all(path)? != bytes {
            return Err(SluiceError::Store {
                location: self.url.clone(),
                action: format!(
                    "{path} exists with other content: another job writes to this checkpoint"
                ),
                user_error: true,
                source: "already exists".into(),
            });
        }
        Ok(())
    }

    /// The whole object at `path` and its version (for [`write_if`](Location::write_if)), or
    /// `None` when there is none.
    pub fn read_versioned(&self, path: &str) -> Result<Option<Versioned>> {
        let location = self.full(path);
        let action = format!("cannot read {path}");
        self.request(&action, || {
            self.runtime.block_on(async {
                let got = match self.store.get(&location).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let version = object_store::UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await?.to_vec();
                Ok(Some(Versioned { bytes, version }))
            })
        })
    }

    /// Writes `bytes` to `path` only if the object there is still `expected` (`None`: only if
    /// there is none); whether it was written. Where the store has conditional writes (S3's
    /// `If-Match` / `If-None-Match`) the check and the write are one request; elsewhere the
    /// object is read again and compared just before an unconditional write, which leaves a
    /// short window to another writer.
    pub fn write_if(&self, path: &str, bytes: &[u8], expected: Option<&Versioned>) -> Result<bool> {
        let location = self.full(path);
        let action = format!("cannot write {path}");
        let payload = object_store::PutPayload::from(bytes.to_vec());
        // `None`: the store gave no version to condition on (compare, then write).
        let mode = match expected {
            None => Some(object_store::PutMode::Create),
            Some(v) if v.version.e_tag.is_some() || v.version.version.is_some() => {
                Some(object_store::PutMode::Update(v.version.clone()))
            }
            Some(_) => None,
        };
        self.request(&action, || {
            self.runtime.block_on(async {
                if let Some(mode) = &mode {
                    let options = object_store::PutOptions {
                        mode: mode.clone(),
                        ..Default::default()
                    };
                    match self
                        .store
                        .put_opts(&location, payload.clone(), options)
                        .await
                    {
                        Ok(_) => return Ok(true),
                        Err(
                            object_store::Error::AlreadyExists { .. }
                            | object_store::Error::Precondition { .. },
                        ) => return Ok(false),
                        Err(object_store::Error::NotImplemented { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                // No conditional write here: compare, then write.
                let current = match self.store.get(&location).await {
                    Ok(got) => Some(got.bytes().await?.to_vec()),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                if current.as_deref() != expected.map(|v| v.bytes.as_slice()) {
                    return Ok(false);
                }
                self.store.put(&location, payload.clone()).await?;
                Ok(true)
            })
        })
    }

    /// Deletes `path` (gone already is fine).
    pub fn delete(&self, path: &str) -> Result<()> {
        let location = self.full(path);
        let action = format!("cannot delete {path}");
        self.request(&action, || {
            match self.runtime.block_on(self.store.delete(&location)) {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
    }
}

/// An object's bytes and the version the store gave them (see [`Location::write_if`]).
#[derive(Clone, Debug)]
pub struct Versioned {
    /// The object's content.
    pub bytes: Vec<u8>,
    version: object_store::UpdateVersion,
}

/// Whether `e` is a store's "no such object" (a file deleted since it was listed).
pub(crate) fn is_not_found(e: &SluiceError) -> bool {
    match e {
        SluiceError::Store { source, .. } => source
            .downcast_ref::<object_store::Error>()
            .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })),
        SluiceError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

#[cfg(feature = "s3")]
fn open_s3(url: &str) -> Result<(Arc<dyn ObjectStore>, Option<ObjectPath>)> {
    let url = url.replacen("s3a://", "s3://", 1);
    let rest = url.trim_start_matches("s3://");
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(SluiceError::InvalidConfig {
            problem: format!("`{url}` names no bucket"),
            fix: "give `s3://bucket/prefix`".into(),
        });
    }
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| store_error(&url, "cannot open", e))?;
    let prefix = prefix.trim_matches('/');
    Ok((
        Arc::new(store),
        (!prefix.is_empty()).then(|| ObjectPath::from(prefix)),
    ))
}

#[cfg(not(feature = "s3"))]
fn open_s3(url: &str) -> Result<(Arc<dyn ObjectStore>, Option<ObjectPath>)> {
    Err(missing_feature(url, "s3"))
}

#[cfg(feature = "hdfs")]
fn open_hdfs(url: &str) -> Result<(Arc<dyn ObjectStore>, Option<ObjectPath>)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let root = format!(
        "{}://{authority}",
        url.split_once("://").map_or("hdfs", |s| s.0)
    );
    let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
        .with_url(&root)
        .build()
        .map_err(|e| store_error(url, "cannot open", e))?;
    let path = path.trim_matches('/');
    Ok((
        Arc::new(store),
        (!path.is_empty()).then(|| ObjectPath::from(path)),
    ))
}

#[cfg(not(feature = "hdfs"))]
fn open_hdfs(url: &str) -> Result<(Arc<dyn ObjectStore>, Option<ObjectPath>)> {
    Err(missing_feature(url, "hdfs"))
}

#[allow(dead_code)]
fn missing_feature(url: &str, feature: &str) -> SluiceError {
    SluiceError::InvalidConfig {
        problem: format!("`{url}` needs the `{feature}` feature, which this build of sluice lacks"),
        fix: format!("rebuild with `--features {feature}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_local_directory_is_a_configuration_error() {
        let e = Location::open("/no/such/dir/anywhere").unwrap_err();
        assert!(e.is_user_error(), "{e}");
        assert!(e.to_string().contains("/no/such/dir/anywhere"), "{e}");
    }

    #[test]
    fn lists_nested_files_sorted_with_and_without_recursion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.txt"), "b").unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("sub/c.txt"), "cc").unwrap();
        let l = Location::open(dir.path().to_str().unwrap()).unwrap();
        let names = |r| {
            l.list(r)
                .unwrap()
                .into_iter()
                .map(|e| e.path)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(true), ["a.txt", "b.txt", "sub/c.txt"]);
        assert_eq!(names(false), ["a.txt", "b.txt"]);
        assert_eq!(l.read("sub/c.txt", 1..2).unwrap(), b"c");
    }
}
