//! What the command line checks of the paths it is given before a job starts, so that a
//! mistyped path is a configuration error (exit 2) that names the flag and the fix, not a
//! directory made somewhere unexpected or a failure in the middle of a run.
//!
//! - `--checkpoint DIR` (local): a directory, or a name to create inside a directory that
//!   exists; a regular file, or a missing parent, is refused.
//! - `--dead-letter FILE`: a file to append to (created if missing) inside a directory that
//!   exists; a directory is refused.

use std::path::Path;

use sluice::{Result, SluiceError};

/// Checks `--checkpoint`'s `dir` (URLs of object stores are the store's to check).
pub fn checkpoint_dir(dir: &Path) -> Result<()> {
    if dir.to_string_lossy().contains("://") {
        return Ok(());
    }
    if dir.exists() {
        if !dir.is_dir() {
            return Err(SluiceError::InvalidConfig {
                problem: format!("--checkpoint {} is a file, not a directory", dir.display()),
                fix: "give a directory (created if missing), e.g. --checkpoint ./my-job-checkpoint"
                    .into(),
            });
        }
        return Ok(());
    }
    parent_exists("--checkpoint", dir)
}

/// Checks `--dead-letter`'s `file`.
pub fn dead_letter_file(file: &Path) -> Result<()> {
    if file.is_dir() {
        return Err(SluiceError::InvalidConfig {
            problem: format!("--dead-letter {} is a directory", file.display()),
            fix: "give a file to append to, e.g. --dead-letter ./dead-letters.tsv".into(),
        });
    }
    parent_exists("--dead-letter", file)
}

fn parent_exists(flag: &str, path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(()), // in the current directory
    };
    if parent.is_dir() {
        return Ok(());
    }
    if parent.exists() {
        return Err(SluiceError::InvalidConfig {
            problem: format!(
                "{flag} {}: {} is a file, not a directory",
                path.display(),
                parent.display()
            ),
            fix: "give a path that exists, or one inside a directory that exists".into(),
        });
    }
    Err(SluiceError::InvalidConfig {
        problem: format!(
            "{flag} {}: the directory {} does not exist",
            path.display(),
            parent.display()
        ),
        fix: format!(
            "create it first (mkdir -p {}), or give a path that exists or one inside a directory that exists",
            parent.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_or_a_missing_parent_is_refused_and_the_rest_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(checkpoint_dir(dir.path()).is_ok());
        assert!(checkpoint_dir(&dir.path().join("new")).is_ok());
        assert!(checkpoint_dir(Path::new("relative-new")).is_ok());
        assert!(checkpoint_dir(Path::new("s3://bucket/x")).is_ok());
        let e = checkpoint_dir(&file).unwrap_err().to_string();
        assert!(e.contains("is a file, not a directory"), "{e}");
        let e = checkpoint_dir(&dir.path().join("no/such"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not exist") && e.contains("mkdir -p"),
            "{e}"
        );
        assert!(dead_letter_file(&dir.path().join("dead.tsv")).is_ok());
        assert!(dead_letter_file(dir.path()).is_err());
        assert!(dead_letter_file(&dir.path().join("no/dead.tsv")).is_err());
    }
}
