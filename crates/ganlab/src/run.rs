//! The run handle: a finished (or interrupted) run directory opened for use, not for
//! training. [`Run::open`] builds the task's networks without loading its data or optimizer
//! state, loads the newest checkpoint's weights (EMA weights where the run keeps them), and
//! freezes them; the task then offers generation (z → x, [`Generative`]) or translation
//! (x → y, [`Translator`]). `sample`, `interpolate`, `eval`, `refine` and `translate` use it.

use std::path::{Path, PathBuf};

use crate::error::{GanError, Result};
use crate::tasks::{Generative, Mode, Task, Translator};
use crate::train::{checkpoint, load_run_config, TrainConfig};

/// A run opened for inference (see module docs).
#[derive(Debug)]
pub struct Run {
    cfg: TrainConfig,
    dir: PathBuf,
    step: u64,
    task: Box<dyn Task>,
}

impl Run {
    /// Opens the run in `dir` at its newest checkpoint without writing anything.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_at(dir, None)
    }

    /// Opens the run in `dir` at the kept checkpoint of `step` (None: the newest), without
    /// writing anything; see [`checkpoint::load_at`] for what an older step restores.
    pub fn open_at(dir: &Path, step: Option<u64>) -> Result<Self> {
        let cfg = load_run_config(dir)?;
        let mut task = crate::tasks::build(&cfg, Mode::Inference)?;
        let ckpt = dir.join("checkpoints");
        let (state, tensors) = match step {
            Some(s) => checkpoint::load_at(&ckpt, s)?,
            None => checkpoint::load(&ckpt)?,
        };
        task.groups_mut().load_weights(&tensors, &ckpt)?;
        task.restore(state.task)?;
        task.groups_mut().freeze_for_inference();
        Ok(Self {
            cfg,
            dir: dir.to_path_buf(),
            step: state.step,
            task,
        })
    }

    /// The run's config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Training steps of the loaded checkpoint.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The task.
    pub fn task(&self) -> &dyn Task {
        self.task.as_ref()
    }

    /// z → x, or an error saying this run's task does not generate from noise.
    pub fn generative(&self) -> Result<&dyn Generative> {
        self.task.generative().ok_or_else(|| {
            GanError::Input(format!(
                "{} is a {} run, which does not generate from noise (try `ganlab translate`)",
                self.dir.display(),
                self.task.kind()
            ))
        })
    }

    /// x → y, or an error saying this run's task does not translate images.
    pub fn translator(&self) -> Result<&dyn Translator> {
        self.task.translator().ok_or_else(|| {
            GanError::Input(format!(
                "{} is a {} run, which does not translate images (try `ganlab sample`)",
                self.dir.display(),
                self.task.kind()
            ))
        })
    }
}
