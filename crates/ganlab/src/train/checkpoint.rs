//! Checkpoints: `checkpoints/step-N.safetensors` (network weights and optimizer moments)
//! plus `checkpoints/state.json` (step, optimizer step counts, diffusion controller state)
//! naming the newest complete checkpoint. Every file is written to a temporary name in
//! the same directory and renamed, so a crash never leaves a half-written checkpoint, and
//! state.json only ever points at a complete one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::diffusion::DiffusionState;
use crate::error::{GanError, IoContext, Result};

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Generator updates completed.
    pub step: u64,
    /// The tensor file, relative to the checkpoints directory.
    pub tensors: String,
    /// Updates done by the generator optimizer (Adam's bias correction needs it).
    pub opt_g_steps: u64,
    /// Updates done by the discriminator optimizer.
    pub opt_d_steps: u64,
    /// The diffusion controller (T, p, t_epl, RNG).
    pub diffusion: DiffusionState,
    /// ganlab version that wrote it.
    pub version: String,
}

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

/// Saves tensors and state atomically, then deletes all but the newest `keep` tensor files.
pub fn save(
    dir: &Path,
    state: &CheckpointState,
    tensors: &[(String, Tensor)],
    keep: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)?;
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    write_safetensors_atomic(&dir.join(&state.tensors), &named)?;
    write_atomic(
        &dir.join("state.json"),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    let mut steps: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .at(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name
                .strip_prefix("step-")?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    steps.sort();
    let drop = steps.len().saturating_sub(keep);
    for (n, path) in steps.into_iter().take(drop) {
        if n != state.step {
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

/// Loads the newest complete checkpoint of `dir` (a checkpoints directory).
pub fn load(dir: &Path) -> Result<(CheckpointState, Vec<(String, Tensor)>)> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| GanError::Checkpoint {
        path: state_path.clone(),
        message: format!("cannot read ({e}); is this a ganlab run directory with a checkpoint?"),
    })?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| GanError::Checkpoint {
        path: state_path.clone(),
        message: format!("corrupt state: {e}"),
    })?;
    let file = dir.join(&state.tensors);
    let tensors = Tensor::read_safetensors(&file).map_err(|e| GanError::Checkpoint {
        path: file.clone(),
        message: format!("corrupt tensors: {e}"),
    })?;
    Ok((state, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_keep_and_corruption() {
        let dir = std::env::temp_dir().join(format!("ganlab-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = crate::diffusion::Diffusion::new(Default::default(), 0);
        for step in 1..=4u64 {
            let st = CheckpointState {
                step,
                tensors: format!("step-{step}.safetensors"),
                opt_g_steps: step,
                opt_d_steps: step,
                diffusion: d.state().clone(),
                version: "t".into(),
            };
            save(
                &dir,
                &st,
                &[("a".into(), Tensor::from_slice(&[step as f32]))],
                2,
            )
            .unwrap();
        }
        let (st, t) = load(&dir).unwrap();
        assert_eq!(st.step, 4);
        assert_eq!(t[0].1.double_value(&[0]), 4.0);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".safetensors"))
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        std::fs::write(dir.join("step-4.safetensors"), b"garbage").unwrap();
        let e = load(&dir).unwrap_err();
        assert!(
            e.to_string().contains("corrupt tensors") && e.is_user_error(),
            "{e}"
        );
        std::fs::write(dir.join("state.json"), b"{").unwrap();
        assert!(load(&dir)
            .unwrap_err()
            .to_string()
            .contains("corrupt state"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
