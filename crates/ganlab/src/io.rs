//! Ground-floor file helpers shared by every module: atomic writes (temporary file + rename
//! in the same directory, so a crash never leaves a half-written file), safetensors, and
//! output directories that never overwrite what a user wrote.

use std::path::{Path, PathBuf};

use tch::Tensor;

use crate::error::{GanError, IoContext, Result};

/// Writes `bytes` to `path` atomically (temporary file + rename in the same directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)
}

/// Writes named tensors to `path` as safetensors atomically (temporary file + rename).
pub fn write_safetensors_atomic<T: AsRef<Tensor>>(
    path: &Path,
    tensors: &[(&str, T)],
) -> Result<()> {
    let tmp = tmp_path(path);
    Tensor::write_safetensors(tensors, &tmp)?;
    std::fs::rename(&tmp, path).at(path)
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
        if std::fs::read_dir(dir).at(dir)?.next().is_some() {
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
