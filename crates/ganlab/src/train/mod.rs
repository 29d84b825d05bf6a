//! The generic training loop: one [`Trainer`] runs any [`Task`] and owns what every task
//! shares, without ever asking which task it runs:
//!
//! 1. reseed libtorch's generator from (seed, step), so a resumed run draws exactly the same
//!    data and noise as an uninterrupted one (host-side choices use checkpointed RNGs);
//! 2. set every group's lr factor from its schedule;
//! 3. the task's step, which reports named scalars;
//! 4. a finiteness check *before* anything is committed: on NaN/inf the step counter, the
//!    EMAs and the task's per-step state stay as they were, and the last good checkpoint on
//!    disk is kept ([`GanError::NonFinite`]);
//! 5. commit: EMAs, [`Task::end_step`], the step count;
//! 6. log rows (metrics.jsonl, TensorBoard), evaluations (eval.jsonl) and fixed-probe grids
//!    (samples/step-N.png), checkpoints (one mechanism over named groups + task state),
//!    progress; at the end summary.json and report.html.
//!
//! In a process group ([`crate::dist`]) every rank runs this loop on its shard of each batch:
//! rank 0's weights are broadcast at the start, the optimizers average gradients, each step's
//! scalars are averaged over the ranks (so every rank logs, and stops on, the same values),
//! and rank 0 alone writes (logs, grids, evaluations, checkpoints, outputs).

pub mod checkpoint;
pub mod config;
pub mod log;
pub mod networks;
pub mod optim;
mod overrides;

#[cfg(test)]
pub(crate) mod tests;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::Device;

pub use config::{
    DataConfig, DataSource, ModelConfig, ModelFamily, OptimConfig, RunConfig, TaskKind, TrainConfig,
};
pub use log::{LogRow, Scalars};
pub use optim::{FlatOptimizer, LrSchedule, OptimizerConfig, OptimizerKind};

use crate::error::{GanError, IoContext, Result};
use crate::io::{write_atomic, RunLock};
use crate::progress::Progress;
use crate::rng::mix64;
use crate::tasks::{Mode, StepContext, Task};

/// The seed of libtorch's generator at `step` (independent streams per step).
pub fn step_seed(seed: u64, step: u64) -> i64 {
    (mix64(seed ^ mix64(step.wrapping_add(0x5EED))) >> 1) as i64
}

/// The resolved config of the run in `dir` (its config.toml).
pub fn load_run_config(dir: &Path) -> Result<TrainConfig> {
    let cfg_path = dir.join("config.toml");
    if !cfg_path.exists() {
        return Err(GanError::Input(format!(
            "{} is not a ganlab run directory (no config.toml)",
            dir.display()
        )));
    }
    TrainConfig::load(&cfg_path)
}

/// Creates `dir` for a new run (see [`crate::io::create_output_dir`]) and takes its lock. Two processes racing for one new directory: one gets the
/// lock, the other an error; whoever locks second finds the first's files and stops.
pub fn create_run_dir(dir: &Path) -> Result<RunLock> {
    let taken = |e: GanError| match e {
        GanError::Input(m) => GanError::Input(format!(
            "{m}, or continue that run with --resume {}",
            dir.display()
        )),
        e => e,
    };
    crate::io::create_output_dir(dir).map_err(taken)?;
    let lock = RunLock::acquire(dir)?;
    // Checked again under the lock: another process may have filled it meanwhile.
    crate::io::check_output_dir(dir).map_err(taken)?;
    Ok(lock)
}

/// A training run bound to a run directory.
#[derive(Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    dir: PathBuf,
    device: Device,
    task: Box<dyn Task>,
    step: u64,
    rows: Vec<LogRow>,
    evals: Vec<LogRow>,
    /// When this process began training (reset by [`Trainer::run`]).
    started: Instant,
    /// Seconds trained before `started`: by the processes this run was resumed from.
    seconds_before: f64,
    /// The run directory's lock, held for the trainer's life (by the writing rank).
    _lock: Option<RunLock>,
}

impl Trainer {
    /// Starts a new run of the task `cfg` names in `dir` (created; must not hold anything).
    pub fn new(cfg: TrainConfig, dir: &Path) -> Result<Self> {
        cfg.validate()?;
        if crate::dist::is_main() {
            crate::io::check_output_dir(dir)?;
        }
        let task = crate::tasks::build(&cfg, Mode::Train)?;
        Self::with_task(cfg, dir, task)
    }

    /// Starts a new run of a task the caller built (e.g. with its own data sampler).
    pub fn with_task(cfg: TrainConfig, dir: &Path, task: Box<dyn Task>) -> Result<Self> {
        cfg.validate()?;
        let lock = match crate::dist::is_main() {
            true => Some(create_run_dir(dir)?),
            false => None,
        };
        Self::start(cfg, dir, task, lock)
    }

    /// Step 0 in the locked directory `dir`: writes config.toml first (a directory killed
    /// before it holds only the lock file, which `--out` accepts; after it, `--resume`
    /// starts again), then empty logs and the checkpoints folder.
    fn start(
        cfg: TrainConfig,
        dir: &Path,
        task: Box<dyn Task>,
        lock: Option<RunLock>,
    ) -> Result<Self> {
        if crate::dist::is_main() {
            write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
            write_atomic(&dir.join("metrics.jsonl"), b"")?;
            write_atomic(&dir.join("eval.jsonl"), b"")?;
            let ckpt = dir.join("checkpoints");
            std::fs::create_dir_all(&ckpt).at(&ckpt)?;
        }
        task.groups().broadcast_from_main()?;
        Ok(Self {
            device: task.groups().device(),
            cfg,
            dir: dir.to_path_buf(),
            task,
            step: 0,
            rows: Vec::new(),
            evals: Vec::new(),
            started: Instant::now(),
            seconds_before: 0.0,
            _lock: lock,
        })
    }

    /// Continues the run in `dir` from its newest checkpoint; `steps` (if given) replaces
    /// the step budget, e.g. to train longer; `device` (if given) must name the device the
    /// run trains on. Log lines after the checkpoint (from a run that died after it) are
    /// dropped so the logs match the weights. A run that stopped before its first
    /// checkpoint starts again from step 0 with its config.toml (its logs emptied). Holds
    /// the directory's lock; removes temporary files an interrupted write left.
    pub fn resume(dir: &Path, steps: Option<u64>, device: Option<&str>) -> Result<Self> {
        let mut cfg = load_run_config(dir)?;
        if let Some(d) = device {
            cfg.run.device = resume_device(d, &cfg.run.device)?;
        }
        if let Some(s) = steps {
            cfg.run.steps = s;
            cfg.validate()?;
        }
        let main = crate::dist::is_main();
        let lock = match main {
            true => Some(RunLock::acquire(dir)?),
            false => None,
        };
        let ckpt = dir.join("checkpoints");
        if main {
            crate::io::remove_stale_tmp(dir)?;
            if ckpt.is_dir() {
                crate::io::remove_stale_tmp(&ckpt)?;
            }
        }
        if !ckpt.join("state.json").is_file() {
            cfg.validate()?;
            let task = crate::tasks::build(&cfg, Mode::Train)?;
            return Self::start(cfg, dir, task, lock);
        }
        let (state, tensors) = checkpoint::load(&ckpt)?;
        let world = crate::dist::world_size();
        if state.world_size != world {
            // run.batch_size is per rank: another number of ranks is another global batch
            // and another data order.
            return Err(GanError::Input(format!(
                "{} was trained by {} process(es) and this resume has {world}; resume with \
                 --nproc {} (run.batch_size is per process)",
                dir.display(),
                state.world_size,
                state.world_size
            )));
        }
        if state.step > cfg.run.steps {
            return Err(GanError::config(
                "--steps",
                format!(
                    "is {}, but the run in {} is already at step {}; give at least {}",
                    cfg.run.steps,
                    dir.display(),
                    state.step,
                    state.step
                ),
            ));
        }
        let mut task = crate::tasks::build(&cfg, Mode::Train)?;
        let groups = task.groups_mut();
        groups.load_weights(&tensors, &ckpt)?;
        groups.load_optimizers(&tensors, &state.optim_steps, &ckpt)?;
        task.restore(state.task)?;
        let task_tensors: Vec<(String, tch::Tensor)> = tensors
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("task.")?.to_string(), v.shallow_clone())))
            .collect();
        task.restore_tensors(&task_tensors)?;
        task.groups().broadcast_from_main()?;
        let (mut rows, mut evals) = (Vec::new(), Vec::new());
        if main {
            rows = log::truncate_log(&dir.join("metrics.jsonl"), state.step)?;
            evals = log::truncate_log(&dir.join("eval.jsonl"), state.step)?;
            if steps.is_some() {
                write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
            }
        }
        let last_logged = || rows.last().and_then(|r| r.scalars.get("wall_s"));
        let seconds_before = state.train_seconds.or_else(last_logged).unwrap_or(0.0);
        Ok(Self {
            device: task.groups().device(),
            cfg,
            dir: dir.to_path_buf(),
            task,
            step: state.step,
            rows,
            evals,
            started: Instant::now(),
            seconds_before,
            _lock: lock,
        })
    }

    /// Seconds of training so far, over every process that trained this run (resumes
    /// included): what `wall_s` logs and summary.json's `train_seconds` says.
    pub fn train_seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    /// The resolved config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The task.
    pub fn task(&self) -> &dyn Task {
        self.task.as_ref()
    }

    /// Logged step rows so far (metrics.jsonl).
    pub fn rows(&self) -> &[LogRow] {
        &self.rows
    }

    /// Logged evaluations so far (eval.jsonl).
    pub fn evals(&self) -> &[LogRow] {
        &self.evals
    }

    /// Every network variable by name, sorted (e.g. to compare two runs).
    pub fn weights(&self) -> Vec<(String, tch::Tensor)> {
        self.task.groups().weights()
    }

    /// What a stopped run leaves to resume from, for error messages.
    fn kept(&self) -> String {
        let ckpt = self.dir.join("checkpoints");
        match checkpoint::load_state(&ckpt) {
            Ok(state) => format!(
                "the last good checkpoint (step {}) is kept in {}; continue with --resume {}",
                state.step,
                ckpt.display(),
                self.dir.display()
            ),
            Err(_) => format!(
                "no checkpoint had been written yet; --resume {} starts again from step 0",
                self.dir.display()
            ),
        }
    }

    /// One training step (see the module docs): the row of scalars it logged or would log.
    pub fn train_step(&mut self) -> Result<LogRow> {
        let step = self.step + 1;
        tch::manual_seed(step_seed(self.cfg.run.seed, step));
        let total = self.cfg.run.steps;
        self.task.groups_mut().set_lr_factors(self.step, total);
        let task = &mut self.task;
        let mut scalars = crate::dist::sharded(|| task.step(StepContext { step, total }))?;
        mean_over_ranks(&mut scalars)?;
        let task = &self.task;
        if let Some((what, value)) = scalars.first_non_finite(|k| !task.may_be_nan(k)) {
            return Err(GanError::NonFinite {
                what: what.into(),
                step,
                value,
                kept: self.kept(),
            });
        }
        self.task
            .groups_mut()
            .update_ema(step, self.cfg.run.ema_rampup);
        scalars.extend(self.task.end_step());
        self.step = step;
        scalars.push("wall_s", self.train_seconds());
        Ok(LogRow { step, scalars })
    }

    /// Writes a checkpoint for the current step.
    pub fn save_checkpoint(&self) -> Result<()> {
        if !crate::dist::is_main() {
            return Ok(());
        }
        let groups = self.task.groups();
        let mut state = checkpoint::CheckpointState::new(
            self.step,
            groups.optimizer_steps(),
            self.task.state()?,
        );
        state.train_seconds = Some(self.train_seconds());
        let mut tensors = groups.checkpoint_tensors();
        tensors.extend(
            self.task
                .state_tensors()
                .into_iter()
                .map(|(k, v)| (format!("task.{k}"), v)),
        );
        checkpoint::save(
            &self.dir.join("checkpoints"),
            &state,
            &tensors,
            self.cfg.run.keep_checkpoints,
        )
    }

    /// Writes the task's fixed-probe visuals as samples/step-N.png (if it draws any).
    fn write_visuals(&self) -> Result<()> {
        if let Some(grid) = self.task.visuals()? {
            let dir = self.dir.join("samples");
            std::fs::create_dir_all(&dir).at(&dir)?;
            crate::data::write_png(&dir.join(format!("step-{:07}.png", self.step)), &grid)?;
        }
        Ok(())
    }

    /// Trains until the step budget, logging, checkpointing and reporting; returns the
    /// summary also written to summary.json. On a NaN/inf scalar it stops with
    /// [`GanError::NonFinite`], leaving the last good checkpoint in place.
    pub fn run(&mut self, progress: &mut dyn Progress) -> Result<serde_json::Value> {
        let total = self.cfg.run.steps;
        if !crate::dist::is_main() {
            return self.run_worker();
        }
        let tb = self
            .cfg
            .run
            .tensorboard
            .then(|| self.dir.join("tensorboard"));
        let mut sinks = log::Sinks::open(&self.dir.join("metrics.jsonl"), tb.as_deref())?;
        let mut eval_log = log::JsonlLog::append(&self.dir.join("eval.jsonl"))?;
        let r = &self.cfg.run;
        let (log_every, eval_every, ckpt_every) = (r.log_every, r.eval_every, r.checkpoint_every);
        self.started = Instant::now();
        while self.step < total {
            let row = self.train_step()?;
            let step = row.step;
            let last = step == total;
            if step % log_every == 0 || last {
                sinks.write(&row)?;
                self.rows.push(row.clone());
            }
            if step % eval_every == 0 || last {
                let scalars = self.task.evaluate()?;
                if !scalars.is_empty() {
                    let eval = LogRow { step, scalars };
                    eval_log.write(&eval)?;
                    sinks.write_tensorboard(&eval)?;
                    self.evals.push(eval);
                }
                self.write_visuals()?;
            }
            if step % ckpt_every == 0 || last {
                sinks.flush()?;
                eval_log.flush()?;
                self.save_checkpoint()?;
            }
            progress.update(step, total, &self.task.status(&row.scalars));
        }
        progress.finish();
        self.write_outputs()
    }

    /// A rank other than 0: trains to the budget and writes nothing; its summary says
    /// which rank it was.
    fn run_worker(&mut self) -> Result<serde_json::Value> {
        self.started = Instant::now();
        while self.step < self.cfg.run.steps {
            self.train_step()?;
        }
        Ok(serde_json::json!({
            "steps": self.step,
            "rank": crate::dist::rank(),
            "train_seconds": self.train_seconds(),
        }))
    }

    /// Writes summary.json (steps, the task's fields, train_seconds, device, world_size), the task's
    /// outputs and report.html.
    pub fn write_outputs(&self) -> Result<serde_json::Value> {
        let out = self.task.finish(&self.dir)?;
        let mut summary = serde_json::Map::new();
        summary.insert("steps".into(), self.step.into());
        summary.extend(out.summary);
        summary.insert("train_seconds".into(), self.train_seconds().into());
        summary.insert("device".into(), format!("{:?}", self.device).into());
        summary.insert("world_size".into(), crate::dist::world_size().into());
        let summary = serde_json::Value::Object(summary);
        write_atomic(
            &self.dir.join("summary.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        let report = crate::report::run_report(&crate::report::RunReport {
            title: &self.cfg.run.name,
            summary: &summary,
            sections: &out.sections,
            rows: &self.rows,
            evals: &self.evals,
            curves: &self.task.curves(),
            grids: &grid_files(&self.dir),
            config_toml: &self.cfg.to_toml(),
        });
        write_atomic(&self.dir.join("report.html"), report.as_bytes())?;
        Ok(summary)
    }
}

/// Replaces each scalar by its mean over the ranks (one small all-reduce; nothing without
/// peers), so that every rank logs and checks the same values.
fn mean_over_ranks(scalars: &mut Scalars) -> Result<()> {
    if crate::dist::world_size() == 1 || scalars.0.is_empty() {
        return Ok(());
    }
    let values: Vec<f64> = scalars.0.iter().map(|(_, v)| *v).collect();
    let t = tch::Tensor::from_slice(&values);
    crate::dist::all_reduce_mean(&t)?;
    for ((_, v), m) in scalars.0.iter_mut().zip(Vec::<f64>::try_from(&t)?) {
        *v = m;
    }
    Ok(())
}

/// The fixed-probe grids of a run directory, samples/step-N.png, in step order.
fn grid_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("samples"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("step-") && n.ends_with(".png"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The device a resumed run continues on when the user names one: a run that chose its
/// device itself (`auto`) takes the one named (it may have trained on the CPU of a machine
/// without a GPU; the continuation on another device is not bit-identical to staying);
/// a run that named a device keeps it, and naming another one is refused.
pub fn resume_device(asked: &str, run: &str) -> Result<String> {
    crate::device::parse_device(asked)?;
    if run == "auto" || crate::device::same_device(asked, run)? {
        return Ok(if run == "auto" { asked } else { run }.to_string());
    }
    Err(GanError::Input(format!(
        "--device {asked} differs from the run's device {run}; resume on the same device"
    )))
}
