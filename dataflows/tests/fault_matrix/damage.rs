//! The faults of the fault matrix and how each is done to a checkpoint directory (or to the
//! disk under it); `fault_matrix.rs` runs the jobs around them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What is done to the job between its two runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    Sigkill,
    PlansDeleted,
    PlanTornTail,
    PlanTruncated,
    PlanBitFlip,
    SnapshotBitFlip,
    ManifestDeleted,
    SnapshotsDeleted,
    WalTruncated,
    WalDeleted,
    MetadataBitFlip,
    CompletedDeleted,
    OtherJobsCheckpoint,
    ReadOnlyDirectory,
    DiskFull,
    ClockBackOneHour,
    ClockForwardTenMinutes,
    ClockJumpsBackWhileRunning,
    /// A second copy of the job is started on the checkpoint while the first runs.
    SecondCopyWhileRunning,
    /// SIGKILL, and the restart names its socket's server another way (`localhost`).
    SourceNamedAnotherWay,
}

impl Fault {
    /// Every fault, in the order the matrix lists them.
    pub const ALL: [Fault; 21] = [
        Fault::None,
        Fault::Sigkill,
        Fault::PlansDeleted,
        Fault::PlanTornTail,
        Fault::PlanTruncated,
        Fault::PlanBitFlip,
        Fault::SnapshotBitFlip,
        Fault::ManifestDeleted,
        Fault::SnapshotsDeleted,
        Fault::WalTruncated,
        Fault::WalDeleted,
        Fault::MetadataBitFlip,
        Fault::CompletedDeleted,
        Fault::OtherJobsCheckpoint,
        Fault::ReadOnlyDirectory,
        Fault::DiskFull,
        Fault::ClockBackOneHour,
        Fault::ClockForwardTenMinutes,
        Fault::ClockJumpsBackWhileRunning,
        Fault::SecondCopyWhileRunning,
        Fault::SourceNamedAnotherWay,
    ];
}

pub fn apply(fault: Fault, ck: &Path) -> std::io::Result<()> {
    use Fault::*;
    match fault {
        None
        | Sigkill
        | OtherJobsCheckpoint
        | ClockBackOneHour
        | ClockForwardTenMinutes
        | ClockJumpsBackWhileRunning
        | SecondCopyWhileRunning
        | SourceNamedAnotherWay => Ok(()),
        PlansDeleted => std::fs::remove_dir_all(ck.join("plans")),
        // What a crash in the middle of an append leaves: part of a next record.
        PlanTornTail => append(
            &newest(&ck.join("plans"), ".log")?,
            &[9, 0, 0, 0, 0xde, 0xad],
        ),
        // The last record itself cut short (damage: a crash cannot leave it).
        PlanTruncated => truncate(&newest(&ck.join("plans"), ".log")?, 3),
        PlanBitFlip => flip_middle(&newest(&ck.join("plans"), ".log")?),
        SnapshotBitFlip => {
            let state = newest_state(ck)?;
            // A job without state has only the manifest.
            let all = files(&state)?;
            let part = all
                .iter()
                .find(|p| !p.ends_with("MANIFEST"))
                .or(all.first());
            flip_middle(part.ok_or_else(|| missing("a snapshot file"))?)
        }
        ManifestDeleted => std::fs::remove_file(newest_state(ck)?.join("MANIFEST")),
        SnapshotsDeleted => {
            for e in std::fs::read_dir(ck)? {
                let p = e?.path();
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("state-"))
                {
                    std::fs::remove_dir_all(p)?;
                }
            }
            Ok(())
        }
        WalTruncated | WalDeleted => {
            let receiver = ck.join("receiver");
            let Ok(dirs) = std::fs::read_dir(&receiver) else {
                return Ok(()); // a Kafka job has no write-ahead log
            };
            for d in dirs {
                let d = d?.path();
                if fault == WalDeleted {
                    std::fs::remove_dir_all(&d)?;
                } else {
                    truncate(&newest(&d, ".wal")?, 3)?;
                }
            }
            Ok(())
        }
        MetadataBitFlip => flip_middle(&ck.join("metadata")),
        CompletedDeleted => std::fs::remove_file(ck.join("completed")),
        ReadOnlyDirectory => remount(ck, "ro"),
        DiskFull => {
            // As full as it can be: the next snapshot or plan does not fit.
            let used = du(ck)?;
            remount(ck, &format!("size={}k", used / 1024 + 8))
        }
    }
}

pub fn missing(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {what}"))
}

pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}

pub fn newest(dir: &Path, ext: &str) -> std::io::Result<PathBuf> {
    files(dir)?
        .into_iter()
        .rfind(|p| p.to_string_lossy().ends_with(ext))
        .ok_or_else(|| missing(ext))
}

pub fn newest_state(ck: &Path) -> std::io::Result<PathBuf> {
    files(ck)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("state-"))
        })
        .max_by_key(|p| {
            p.file_name()
                .and_then(|n| n.to_string_lossy()[6..].parse::<u64>().ok())
        })
        .ok_or_else(|| missing("snapshot"))
}

pub fn truncate(path: &Path, by: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len();
    f.set_len(len.saturating_sub(by))
}

pub fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .write_all(bytes)
}

pub fn flip_middle(path: &Path) -> std::io::Result<()> {
    let mut bytes = std::fs::read(path)?;
    let mid = bytes.len() / 2;
    if let Some(b) = bytes.get_mut(mid) {
        *b ^= 0x10;
    }
    std::fs::write(path, bytes)
}

pub fn du(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            du(&e.path())?
        } else {
            m.len().div_ceil(4096) * 4096
        };
    }
    Ok(total)
}

pub fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn remount(dir: &Path, options: &str) -> std::io::Result<()> {
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,{options}")])
        .arg(dir)
        .status()?
        .success();
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "mount -o remount,{options} failed"
        )))
    }
}
