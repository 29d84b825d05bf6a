//! Checkpoints: `checkpoints/step-N.safetensors` (every network group's weights, optimizer
//! moments and EMAs, see [`super::networks`]) plus `checkpoints/state.json` (step, optimizer
//! step counts by group, the task's own resumable state) naming the newest complete
//! checkpoint. Every file is written to a temporary name in the same directory and renamed,
//! so a crash never leaves a half-written checkpoint, and state.json only ever points at a
//! complete one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::diffusion::DiffusionState;
use crate::error::{GanError, IoContext, Result};
use crate::io::{write_atomic, write_safetensors_atomic};

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Training steps completed.
    pub step: u64,
    /// The tensor file, relative to the checkpoints directory.
    pub tensors: String,
    /// Updates done by each group's optimizer (Adam's bias correction needs them).
    #[serde(default)]
    pub optim_steps: BTreeMap<String, u64>,
    /// The task's resumable state (e.g. the diffusion controller, image pools).
    #[serde(default)]
    pub task: serde_json::Value,
    /// ganlab version that wrote it.
    pub version: String,
    /// Processes that trained the run ([`crate::dist`]; 1 in checkpoints written before).
    #[serde(default = "one")]
    pub world_size: usize,
    /// Seconds of training up to this step, summed over every resume (absent in
    /// checkpoints written before it was kept: a resume then counts from the last logged
    /// `wall_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// Checkpoints written before tasks existed (one G, one D): read, never written.
    #[serde(default, skip_serializing)]
    opt_g_steps: Option<u64>,
    /// See `opt_g_steps`.
    #[serde(default, skip_serializing)]
    opt_d_steps: Option<u64>,
    /// See `opt_g_steps`: the diffusion controller, now inside the GAN task's state.
    #[serde(default, skip_serializing)]
    diffusion: Option<DiffusionState>,
}

fn one() -> usize {
    1
}

impl CheckpointState {
    /// The state of a checkpoint at `step`.
    pub fn new(step: u64, optim_steps: BTreeMap<String, u64>, task: serde_json::Value) -> Self {
        Self {
            step,
            tensors: tensor_name(step),
            optim_steps,
            task,
            version: env!("CARGO_PKG_VERSION").into(),
            world_size: crate::dist::world_size(),
            train_seconds: None,
            opt_g_steps: None,
            opt_d_steps: None,
            diffusion: None,
        }
    }

    /// Moves the fields of a pre-task checkpoint (`opt_g_steps`, `opt_d_steps`, `diffusion`)
    /// to where a GAN task keeps them now (groups `g` and `d`, task state `{diffusion}`).
    fn migrate(mut self) -> Self {
        if let Some(n) = self.opt_g_steps.take() {
            self.optim_steps.entry("g".into()).or_insert(n);
        }
        if let Some(n) = self.opt_d_steps.take() {
            self.optim_steps.entry("d".into()).or_insert(n);
        }
        if let Some(d) = self.diffusion.take() {
            if self.task.is_null() {
                self.task = serde_json::json!({ "diffusion": d });
            }
        }
        self
    }
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
    let steps = tensor_files(dir)?;
    let drop = steps.len().saturating_sub(keep);
    for (n, path) in steps.into_iter().take(drop) {
        if n != state.step {
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

/// The tensor file name of the checkpoint of `step`.
fn tensor_name(step: u64) -> String {
    format!("step-{step}.safetensors")
}

/// The tensor files in `dir` (a checkpoints directory) with their steps, oldest first.
fn tensor_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
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
    Ok(steps)
}

/// The tensors of `file`; a file that does not read is a checkpoint error naming it.
fn read_tensors(file: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(file).map_err(|e| GanError::Checkpoint {
        path: file.to_path_buf(),
        message: format!("corrupt tensors: {e}"),
    })
}

/// Loads the newest complete checkpoint of `dir` (a checkpoints directory).
pub fn load(dir: &Path) -> Result<(CheckpointState, Vec<(String, Tensor)>)> {
    let state = load_state(dir)?;
    let tensors = read_tensors(&dir.join(&state.tensors))?;
    Ok((state, tensors))
}

/// The weights kept for `step` in `dir` (a checkpoints directory), with the newest
/// checkpoint's state and its `step` and `tensors` set to `step`'s (`train_seconds` cleared:
/// only the newest checkpoint's is kept). The task state (e.g. the
/// diffusion controller) stays the newest one's: older checkpoints keep only their tensors,
/// and inference (sampling, translation) reads only the weights. An error lists the kept
/// steps when `step` is not one of them.
pub fn load_at(dir: &Path, step: u64) -> Result<(CheckpointState, Vec<(String, Tensor)>)> {
    let mut state = load_state(dir)?;
    let name = tensor_name(step);
    let file = dir.join(&name);
    if !file.is_file() {
        let kept: Vec<u64> = tensor_files(dir)?.into_iter().map(|(n, _)| n).collect();
        return Err(GanError::Input(format!(
            "{}: no checkpoint of step {step}; the kept steps are {kept:?} (run.checkpoint_every \
             sets which steps are written, run.keep_checkpoints how many are kept)",
            dir.display()
        )));
    }
    let tensors = read_tensors(&file)?;
    state.step = step;
    state.tensors = name;
    state.train_seconds = None;
    Ok((state, tensors))
}

/// The JSON half of the newest checkpoint of `dir` (a checkpoints directory), checked.
pub fn load_state(dir: &Path) -> Result<CheckpointState> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| GanError::Checkpoint {
        path: state_path.clone(),
        message: format!("cannot read ({e}); is this a ganlab run directory with a checkpoint?"),
    })?;
    let state: CheckpointState = serde_json::from_str::<CheckpointState>(&text)
        .map_err(|e| GanError::Checkpoint {
            path: state_path.clone(),
            message: format!("corrupt state: {e}"),
        })?
        .migrate();
    if state.tensors.contains(['/', '\\']) || !state.tensors.ends_with(".safetensors") {
        return Err(GanError::Checkpoint {
            path: state_path,
            message: format!("corrupt state: tensor file {:?}", state.tensors),
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_keep_and_corruption() {
        let dir = std::env::temp_dir().join(format!("ganlab-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for step in 1..=4u64 {
            let st = CheckpointState::new(
                step,
                [("g".to_string(), step)].into(),
                serde_json::json!({ "k": step }),
            );
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
        assert_eq!(st.task["k"], 4);
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

    /// A state.json written before tasks existed reads as a GAN task's state.
    #[test]
    fn pre_task_state_is_migrated() {
        let d = crate::diffusion::Diffusion::new(Default::default(), 0);
        let old = serde_json::json!({
            "step": 7, "tensors": "step-7.safetensors", "opt_g_steps": 7, "opt_d_steps": 9,
            "diffusion": d.state(), "version": "0.1.0"
        });
        let st = serde_json::from_value::<CheckpointState>(old)
            .unwrap()
            .migrate();
        assert_eq!(
            st.optim_steps,
            [("d".to_string(), 9), ("g".to_string(), 7)].into()
        );
        let back: DiffusionState = serde_json::from_value(st.task["diffusion"].clone()).unwrap();
        assert_eq!(&back, d.state());
        let text = serde_json::to_string(&st).unwrap();
        assert!(!text.contains("opt_g_steps"), "{text}");
    }
}
