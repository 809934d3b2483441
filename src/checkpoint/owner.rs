//! One owner per checkpoint: a process holds its checkpoint exclusively from before it reads
//! anything there until it exits, so that two copies of a job (or two jobs) never write into
//! one directory and a restart never restores a mix of both.
//!
//! - **Local directory**: `owner-p<process>` is `flock`ed (an exclusive advisory lock). The
//!   kernel drops the lock when its process dies, however it dies, so a stale lock is taken
//!   over by the next start as a matter of course; the file's content names the holder (host,
//!   PID, start time, job) for the refusal of a second process.
//! - **Object store** (`s3://`, `hdfs://`): `owner-p<process>` is a lease: the same holder
//!   record with an expiry, created only if absent and renewed every [`LEASE`]`/3` with a
//!   conditional write on the version it last wrote. A lease past its expiry, or one held by a
//!   process of this host that no longer runs, is taken over (again conditionally, so of two
//!   starts one wins). A holder whose renewal finds another holder, or that cannot renew
//!   before its lease expires, is **fenced**: every later write to the store fails, and the
//!   job stops with the reason, instead of writing beside the new owner.
//!
//! Each process of a job of several processes holds its own `owner-p<i>`: the processes of one
//! job share the checkpoint, a second copy of any of them is refused.
//!
//! Invariants: the lock (or lease) is taken before `metadata`, plans, snapshots or logs are
//! read; it is held for as long as the [`Owner`] lives (the [`Checkpoint`](super::Checkpoint)
//! keeps it); a refusal is [`SluiceError::CheckpointInUse`] (exit 2) naming the holder.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
#[cfg(feature = "files")]
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "files")]
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use crate::error::{Result, SluiceError};

/// How long an object-store lease lasts without renewal.
#[cfg_attr(not(feature = "files"), allow(dead_code))]
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// Who holds a checkpoint: written into the lock file or lease object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Holder {
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// When the holder started, ms since the Unix epoch.
    pub(crate) started_ms: u64,
    /// The holder's process index in its job.
    pub(crate) process: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) job: Option<String>,
    /// A lease's expiry, ms since the Unix epoch (object stores only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_ms: Option<u64>,
    /// Tells two holders of one host and PID apart (a process that opens a checkpoint twice).
    #[serde(default)]
    pub(crate) nonce: u64,
}

impl Holder {
    fn this_process(process: usize, job: Option<&str>) -> Holder {
        Holder {
            host: host_name(),
            pid: std::process::id(),
            started_ms: now_ms(),
            process,
            job: job.map(str::to_owned),
            expires_ms: None,
            nonce: nonce(),
        }
    }

    /// "process 4242 on host web-1 (job `x`, since 2026-12-07 12:00:00 UTC)".
    pub(crate) fn describe(&self) -> String {
        let since = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(self.started_ms),
        );
        let job = self
            .job
            .as_deref()
            .map_or_else(String::new, |j| format!("job `{j}`, "));
        format!(
            "PID {} on host {} ({job}process {} of its job, started {since})",
            self.pid, self.host, self.process
        )
    }

    /// Whether this holder is a process of this host that no longer runs.
    #[cfg_attr(not(feature = "files"), allow(dead_code))]
    fn is_dead_here(&self) -> bool {
        self.host == host_name() && !pid_alive(self.pid)
    }
}

/// This process's hold on a checkpoint: released when dropped (or when the process ends).
pub(crate) struct Owner {
    _lock: Option<File>,
    lease: Option<Lease>,
    /// Set when the lease was lost: every later write to the store must fail.
    pub(crate) fenced: Arc<AtomicBool>,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner")
            .field("lease", &self.lease.is_some())
            .field("fenced", &self.fenced.load(Ordering::SeqCst))
            .finish()
    }
}

fn lock_name(process: usize) -> String {
    format!("owner-p{process}")
}

/// Whether `name` (relative to a checkpoint) is an owner's lock or lease.
pub(crate) fn is_owner_file(name: &str) -> bool {
    name.strip_prefix("owner-p")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Takes the lock of process `process` on the local checkpoint directory `dir` (created if
/// missing), or refuses with the holder.
pub(crate) fn lock_local(dir: &Path, process: usize, job: Option<&str>) -> Result<Owner> {
    let path = dir.join(lock_name(process));
    let io = |action: &'static str, source: std::io::Error| SluiceError::Io {
        action,
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io("cannot open the checkpoint's lock", e))?;
    let mut previous = String::new();
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let _ = file.read_to_string(&mut previous);
            return Err(in_use(dir, serde_json::from_str(&previous).ok()));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(io("cannot lock the checkpoint", e));
        }
    }
    let _ = file.read_to_string(&mut previous);
    if let Ok(stale) = serde_json::from_str::<Holder>(&previous) {
        tracing::info!(
            "checkpoint {}: took over the lock of {} (that process no longer holds it)",
            dir.display(),
            stale.describe()
        );
    }
    let me = Holder::this_process(process, job);
    let bytes = serde_json::to_vec(&me).unwrap_or_default();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(&bytes))
        .and_then(|()| file.sync_all())
        .map_err(|e| io("cannot write the checkpoint's lock", e))?;
    Ok(Owner {
        _lock: Some(file),
        lease: None,
        fenced: Arc::new(AtomicBool::new(false)),
    })
}

fn in_use(dir: &Path, holder: Option<Holder>) -> SluiceError {
    SluiceError::CheckpointInUse {
        dir: dir.to_owned(),
        holder: holder.map_or_else(
            || "another process (its lock names no holder yet)".to_owned(),
            |h| {
                let left = h
                    .expires_ms
                    .map(|e| {
                        format!(
                            "; its lease expires in {} s unless renewed",
                            e.saturating_sub(now_ms()).div_ceil(1000)
                        )
                    })
                    .unwrap_or_default();
                format!("{}{left}", h.describe())
            },
        ),
    }
}

/// Takes the lease of process `process` on the checkpoint at `url` (an object store), or
/// refuses with the holder. A background thread renews it while the [`Owner`] lives.
#[cfg(feature = "files")]
pub(crate) fn lease(url: &str, process: usize, job: Option<&str>) -> Result<Owner> {
    use crate::storage::Location;
    let name = lock_name(process);
    let location = Location::open(url)?;
    let mut me = Holder::this_process(process, job);
    let record = |holder: &Holder| serde_json::to_vec(holder).unwrap_or_default();
    // Two rounds: a lease that vanished or changed between our read and our write is read again.
    let mut written = None;
    for _ in 0..3 {
        let current = location.read_versioned(&name)?;
        let holder = current
            .as_ref()
            .and_then(|v| serde_json::from_slice::<Holder>(&v.bytes).ok());
        if let Some(h) = &holder {
            let expired = h.expires_ms.is_some_and(|e| e <= now_ms());
            if !expired && !h.is_dead_here() {
                return Err(in_use(Path::new(url), Some(h.clone())));
            }
        }
        me.expires_ms = Some(now_ms() + LEASE.as_millis() as u64);
        let bytes = record(&me);
        if location.write_if(&name, &bytes, current.as_ref())? {
            if let Some(h) = holder {
                tracing::info!(
                    "checkpoint {url}: took over the lease of {} (expired, or its process no longer runs)",
                    h.describe()
                );
            }
            written = Some(bytes);
            break;
        }
        // Our own write may have landed before a retry reported it as a conflict.
        if let Some(v) = location.read_versioned(&name)?
            && v.bytes == bytes
        {
            written = Some(bytes);
            break;
        }
    }
    let Some(bytes) = written else {
        let holder = location
            .read_versioned(&name)?
            .and_then(|v| serde_json::from_slice(&v.bytes).ok());
        return Err(in_use(Path::new(url), holder));
    };
    let fenced = Arc::new(AtomicBool::new(false));
    let lease = Lease::start(location, name, me, bytes, Arc::clone(&fenced))?;
    Ok(Owner {
        _lock: None,
        lease: Some(lease),
        fenced,
    })
}

/// A held lease and the thread that renews it.
#[cfg_attr(not(feature = "files"), allow(dead_code))]
struct Lease {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "files")]
impl Lease {
    fn start(
        location: crate::storage::Location,
        name: String,
        mut me: Holder,
        bytes: Vec<u8>,
        fenced: Arc<AtomicBool>,
    ) -> Result<Lease> {
        let (stop, stopped) = mpsc::channel::<()>();
        let url = location.url().to_owned();
        let path = PathBuf::from(&url);
        // Requests give up once the lease has expired: by then it may be another's.
        let expires = Arc::new(Mutex::new(me.expires_ms.unwrap_or(0)));
        let deadline = Arc::clone(&expires);
        let location = location.stop_when(move || now_ms() >= *lock(&deadline));
        let mut ours = location.read_versioned(&name)?;
        let thread = std::thread::Builder::new()
            .name("checkpoint lease".into())
            .spawn(move || {
                let mut last = bytes;
                loop {
                    match stopped.recv_timeout(LEASE / 3) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        // Released: remove the lease if it is still ours.
                        _ => {
                            if let Ok(Some(v)) = location.read_versioned(&name)
                                && v.bytes == last
                            {
                                let _ = location.delete(&name);
                            }
                            return;
                        }
                    }
                    me.expires_ms = Some(now_ms() + LEASE.as_millis() as u64);
                    let next = serde_json::to_vec(&me).unwrap_or_default();
                    match location.write_if(&name, &next, ours.as_ref()) {
                        Ok(true) => {
                            *lock(&expires) = me.expires_ms.unwrap_or(0);
                            last = next;
                            ours = location.read_versioned(&name).ok().flatten();
                        }
                        Ok(false) => {
                            let other = location
                                .read_versioned(&name)
                                .ok()
                                .flatten()
                                .and_then(|v| serde_json::from_slice::<Holder>(&v.bytes).ok());
                            fenced.store(true, Ordering::SeqCst);
                            tracing::error!(
                                "checkpoint {url}: this process's lease was taken over by {}; it stops writing to the checkpoint",
                                other.map_or_else(|| "another process".into(), |h| h.describe())
                            );
                            return;
                        }
                        Err(e) => {
                            if now_ms() >= *lock(&expires) {
                                fenced.store(true, Ordering::SeqCst);
                                tracing::error!(
                                    "checkpoint {url}: cannot renew this process's lease before it expired ({e}); it stops writing to the checkpoint"
                                );
                                return;
                            }
                            tracing::warn!("checkpoint {url}: cannot renew the lease yet: {e}");
                        }
                    }
                }
            })
            .map_err(|e| SluiceError::Io {
                action: "cannot start the lease thread for",
                path,
                source: e,
            })?;
        Ok(Lease {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(feature = "files")]
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A number no other holder of this host and PID had (the time in ns and a counter).
fn nonce() -> u64 {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    ns ^ COUNT.fetch_add(1, Ordering::SeqCst).rotate_left(48)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This machine's name (as `hostname` prints it).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process `pid` runs on this machine (Linux: `/proc/<pid>`; elsewhere assumed).
fn pid_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The holder named in a lock file or lease (for `sluice checkpoint show`).
pub(crate) fn read_holder(bytes: &[u8]) -> Option<Holder> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_with_the_holder_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_local(dir.path(), 0, Some("one")).unwrap();
        let err = lock_local(dir.path(), 0, Some("two")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains(&format!("PID {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("job `one`"), "{text}");
        // Another process index of the same job has a lock of its own.
        let other = lock_local(dir.path(), 1, Some("one")).unwrap();
        drop(first);
        let again = lock_local(dir.path(), 0, Some("two")).unwrap();
        drop((again, other));
    }

    #[cfg(feature = "files")]
    #[test]
    fn a_lease_is_refused_while_held_and_taken_over_when_expired_or_its_process_is_gone() {
        let store = tempfile::tempdir().unwrap();
        let url = store.path().to_str().unwrap().to_owned();
        let held = lease(&url, 0, Some("a")).unwrap();
        let err = lease(&url, 0, Some("b")).unwrap_err();
        assert!(err.to_string().contains("lease expires in"), "{err}");
        drop(held);
        // Released: the lease object is gone, the next start takes it at once.
        assert!(!store.path().join("owner-p0").exists());
        let write = |h: &Holder| {
            std::fs::write(
                store.path().join("owner-p0"),
                serde_json::to_vec(h).unwrap(),
            )
            .unwrap()
        };
        // Another host's live lease: refused; once expired: taken over.
        let mut other = Holder::this_process(0, Some("x"));
        other.host = "elsewhere".into();
        other.expires_ms = Some(now_ms() + 60_000);
        write(&other);
        assert!(lease(&url, 0, None).is_err());
        other.expires_ms = Some(now_ms() - 1);
        write(&other);
        let taken = lease(&url, 0, None).unwrap();
        drop(taken);
        // A lease of a process of this host that is gone: taken over though not expired.
        let mut dead = Holder::this_process(0, None);
        dead.pid = u32::MAX - 1;
        dead.expires_ms = Some(now_ms() + 60_000);
        write(&dead);
        drop(lease(&url, 0, None).unwrap());
    }

    #[test]
    fn owner_files_are_recognised() {
        assert!(is_owner_file("owner-p0"));
        assert!(is_owner_file("owner-p12"));
        assert!(!is_owner_file("owner-p"));
        assert!(!is_owner_file("metadata"));
    }
}
