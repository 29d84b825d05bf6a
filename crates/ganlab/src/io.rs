//! Ground-floor file helpers shared by every module: atomic writes (temporary file + rename
//! in the same directory, so a crash never leaves a half-written file), safetensors, and
//! output directories that never overwrite what a user wrote.

use std::path::{Path, PathBuf};

use tch::Tensor;

use crate::error::{GanError, IoContext, Result};

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same
/// directory, flushed to the disk, renamed over `path`, then the directory flushed (so
/// after a crash or power loss `path` holds the old or the new content, never a mix).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).at(&tmp)?;
    commit(&tmp, path)
}

/// Writes named tensors to `path` as safetensors, atomically and durably as
/// [`write_atomic`].
pub fn write_safetensors_atomic<T: AsRef<Tensor>>(
    path: &Path,
    tensors: &[(&str, T)],
) -> Result<()> {
    let tmp = tmp_path(path);
    Tensor::write_safetensors(tensors, &tmp)?;
    commit(&tmp, path)
}

/// fsync `tmp`, rename it to `path`, fsync the directory.
fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .at(tmp)?;
    std::fs::rename(tmp, path).at(path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsync a directory (its entries: renames, creations) where the platform allows it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .at(dir)?;
    Ok(())
}

/// Removes the temporary files (`*.tmp`) an interrupted atomic write left in `dir`; returns
/// how many. Only the writer of `dir` may call it (it holds the [`RunLock`]).
pub fn remove_stale_tmp(dir: &Path) -> Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir).at(dir)?.flatten() {
        let p = e.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "tmp") {
            std::fs::remove_file(&p).at(&p)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The name of the lock file in a run directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run directory (an OS file lock on `<dir>/.lock`), held while the
/// value lives; the OS releases it when the process exits or dies, so a crash leaves no
/// stale lock.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock on `dir` (which must exist), or fails at once, naming the directory,
    /// when another process (or another run in this one) holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(GanError::Input(format!(
                "{} is in use by another ganlab process; wait for it to finish or choose \
                 another directory",
                dir.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(e).at(&path),
        }
    }
}

/// The tensor called `key` in a list read from safetensors.
pub fn named<'a>(tensors: &'a [(String, Tensor)], key: &str) -> Option<&'a Tensor> {
    tensors.iter().find(|(k, _)| k == key).map(|(_, t)| t)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Creates the output directory `dir`; refuses a non-empty existing one (nothing a user
/// wrote is overwritten).
pub fn create_output_dir(dir: &Path) -> Result<()> {
    check_output_dir(dir)?;
    std::fs::create_dir_all(dir).at(dir)
}

/// Checks, without creating anything, that `dir` could become an output directory: it does
/// not exist yet (and its nearest existing ancestor is a directory) or it is an empty
/// directory. Commands that compute for a while call this before they start.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(GanError::Input(format!(
                "output path {} exists and is not a directory",
                dir.display()
            )));
        }
        // An empty directory, or one holding only a lock file (a run that died as it began,
        // or one starting now: the lock decides).
        if std::fs::read_dir(dir)
            .at(dir)?
            .flatten()
            .any(|e| e.file_name() != LOCK_FILE)
        {
            return Err(GanError::Input(format!(
                "output directory {} already exists and is not empty; choose a new one",
                dir.display()
            )));
        }
        return Ok(());
    }
    let mut up = dir.parent();
    while let Some(p) = up {
        if p.as_os_str().is_empty() || p.is_dir() {
            return Ok(());
        }
        if p.exists() {
            return Err(GanError::Input(format!(
                "cannot create {}: {} is not a directory",
                dir.display(),
                p.display()
            )));
        }
        up = p.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// check_output_dir creates nothing and refuses non-empty directories and files.
    #[test]
    fn output_dir_checks_create_nothing() {
        let base = std::env::temp_dir().join(format!("ganlab-io-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let new = base.join("a/b");
        check_output_dir(&new).unwrap();
        assert!(!base.join("a").exists(), "nothing created");
        std::fs::write(base.join("f"), "x").unwrap();
        assert!(check_output_dir(&base.join("f")).is_err());
        assert!(check_output_dir(&base.join("f/sub")).is_err());
        assert!(check_output_dir(&base).unwrap_err().is_user_error());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
