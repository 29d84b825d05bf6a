//! Named network groups: what every task trains. A group is one optimizer's worth of
//! networks: a `VarStore` (every variable, trainable or not), a [`FlatOptimizer`] over its
//! trainable variables, and an optional exponential moving average of those weights.
//!
//! The generic loop handles groups by name only: lr schedules, EMA updates, checkpoints
//! (`<group>.<variable>`, `opt_<group>.m|v`, `ema_<group>`: the layout checkpoints had before
//! groups existed, with `g` and `d`, so old run directories load unchanged), and the swap to
//! EMA weights when a run is opened for inference. Inspired by StarGAN v2's `CheckpointIO`
//! over named modules, written anew.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use super::optim::{FlatOptimizer, OptimizerConfig};
use crate::error::{GanError, Result};
use crate::io::named;

/// One optimizer's networks (see module docs).
#[derive(Debug)]
pub struct Group {
    name: String,
    vs: nn::VarStore,
    opt: FlatOptimizer,
    ema_beta: f64,
    ema: Option<Tensor>,
}

impl Group {
    /// A group over the networks already built on `vs`: its trainable variables move into
    /// one flat buffer owned by a new optimizer. `ema_beta` > 0 keeps an EMA of them.
    pub fn new(name: &str, vs: nn::VarStore, opt: OptimizerConfig, ema_beta: f64) -> Result<Self> {
        let opt = FlatOptimizer::new(opt, vs.trainable_variables())?;
        Ok(Self {
            name: name.into(),
            vs,
            opt,
            ema_beta,
            ema: None,
        })
    }

    /// The group's name (its checkpoint prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The variable store (network paths, e.g. for a layer summary).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The optimizer.
    pub fn opt(&self) -> &FlatOptimizer {
        &self.opt
    }

    /// The optimizer, to step it.
    pub fn opt_mut(&mut self) -> &mut FlatOptimizer {
        &mut self.opt
    }

    /// The EMA of the flat weights (None when off or before the first update).
    pub fn ema(&self) -> Option<&Tensor> {
        self.ema.as_ref()
    }

    /// Number of trainable scalars.
    pub fn numel(&self) -> i64 {
        self.opt.numel()
    }

    /// ema ← β·ema + (1 − β)·θ after update `step` (1-based), started at θ on the first call,
    /// with β = [`ema_decay`]`(ema_beta, rampup, step)`; nothing when `ema_beta` = 0.
    pub fn update_ema(&mut self, step: u64, rampup: f64) {
        if self.ema_beta <= 0.0 {
            return;
        }
        let _guard = tch::no_grad_guard();
        let theta = self.opt.flat();
        match &mut self.ema {
            Some(e) => {
                let _ = e.lerp_(theta, 1.0 - ema_decay(self.ema_beta, rampup, step));
            }
            None => self.ema = Some(theta.copy()),
        }
    }

    /// Runs `f` with the EMA weights swapped in (the trained ones are restored after); plain
    /// `f()` when the group keeps no EMA.
    pub fn with_ema<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(ema) = &self.ema else {
            return f();
        };
        let _guard = tch::no_grad_guard();
        let mut flat = self.opt.flat().shallow_clone();
        let trained = flat.copy();
        flat.copy_(ema);
        let out = f();
        flat.copy_(&trained);
        out
    }

    /// Every variable itself (not a copy) by path, in name order (`variables()` is a hash
    /// map): one order for saving, loading and the first bad tensor an error names.
    fn variables_by_name(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Named copies of every variable, `<group>.<path>`, in name order.
    pub fn weights(&self) -> Vec<(String, Tensor)> {
        self.variables_by_name()
            .into_iter()
            .map(|(k, t)| (format!("{}.{k}", self.name), t.detach().copy()))
            .collect()
    }
}

/// The EMA decay used after update `step` (1-based): `beta`, or with `rampup` r > 0 at most
/// 0.5^(1 / (r·(step − 1))), i.e. a half-life of at most r × the updates before this one —
/// StyleGAN2-ADA's `ema_rampup` (training_loop.py: `ema_nimg = min(ema_nimg, cur_nimg *
/// ema_rampup)`, `ema_beta = 0.5 ** (batch_size / ema_nimg)`, with `cur_nimg` the images seen
/// before the update), counted in updates instead of images (the batch size cancels). Without
/// it an EMA started at the first weights still holds β^(k−1) of them after k updates: 37% at
/// β = 0.999 and k = 1,000. A function of the step alone, so a resumed run continues the same
/// sequence.
pub fn ema_decay(beta: f64, rampup: f64, step: u64) -> f64 {
    if rampup <= 0.0 {
        return beta;
    }
    let before = step.saturating_sub(1) as f64;
    beta.min(0.5f64.powf(1.0 / (rampup * before)))
}

/// A task's groups, in the order the task declared them.
#[derive(Debug, Default)]
pub struct Groups(Vec<Group>);

impl Groups {
    /// Adds a group (names must be unique).
    pub fn push(&mut self, group: Group) {
        debug_assert!(self.0.iter().all(|g| g.name != group.name));
        self.0.push(group);
    }

    /// The group called `name`. Panics on an unknown name: group names are fixed by the
    /// task's code, never by user input.
    pub fn get(&self, name: &str) -> &Group {
        self.0
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no network group {name:?}"))
    }

    /// The group called `name`, mutably (see [`Groups::get`]).
    pub fn get_mut(&mut self, name: &str) -> &mut Group {
        self.0
            .iter_mut()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no network group {name:?}"))
    }

    /// All groups.
    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.0.iter()
    }

    /// All groups, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        self.0.iter_mut()
    }

    /// Sets every group's lr factor for the update after `done` of `total` steps.
    pub fn set_lr_factors(&mut self, done: u64, total: u64) {
        for g in &mut self.0 {
            let f = g.opt.config().lr_factor(done, total);
            g.opt.set_lr_factor(f);
        }
    }

    /// Updates every group's EMA after update `step` (groups without one are skipped).
    pub fn update_ema(&mut self, step: u64, rampup: f64) {
        for g in &mut self.0 {
            g.update_ema(step, rampup);
        }
    }

    /// Optimizer update counts by group name (for the checkpoint's JSON half).
    pub fn optimizer_steps(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .map(|g| (g.name.clone(), g.opt.steps()))
            .collect()
    }

    /// Every tensor a checkpoint holds: weights, optimizer moments and EMAs.
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for g in &self.0 {
            out.extend(g.weights());
            out.extend(g.opt.moment_tensors(&format!("opt_{}", g.name)));
            if let Some(e) = &g.ema {
                out.push((format!("ema_{}", g.name), e.copy()));
            }
        }
        out
    }

    /// Loads every variable of every group from `tensors` (the one source of the weights),
    /// and the EMAs where present; refuses missing tensors, other shapes and non-finite
    /// values, naming the tensor.
    pub fn load_weights(&mut self, tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
        let err = |message: String| GanError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let _guard = tch::no_grad_guard();
        for g in &mut self.0 {
            let device = g.vs.device();
            for (name, mut var) in g.variables_by_name() {
                let key = format!("{}.{name}", g.name);
                let src = named(tensors, &key).ok_or_else(|| {
                    err(format!(
                        "missing tensor `{key}` (was it written by a different model config?)"
                    ))
                })?;
                check_tensor(&key, src, &var.size()).map_err(err)?;
                var.copy_(&src.to_device(device));
            }
            let key = format!("ema_{}", g.name);
            g.ema = match named(tensors, &key) {
                Some(e) if g.ema_beta > 0.0 => {
                    check_tensor(&key, e, &[g.opt.numel()]).map_err(err)?;
                    Some(e.to_kind(Kind::Float).to_device(device))
                }
                _ => None,
            };
        }
        Ok(())
    }

    /// Restores every optimizer's moments and update count (for resuming training).
    pub fn load_optimizers(
        &mut self,
        tensors: &[(String, Tensor)],
        steps: &BTreeMap<String, u64>,
        path: &Path,
    ) -> Result<()> {
        for g in &mut self.0 {
            let n = *steps.get(&g.name).ok_or_else(|| GanError::Checkpoint {
                path: path.to_path_buf(),
                message: format!("no optimizer step count for group `{}`", g.name),
            })?;
            g.opt.load_moments(&format!("opt_{}", g.name), tensors, n)?;
        }
        Ok(())
    }

    /// For inference: EMA weights replace the trained ones where a group keeps them, and no
    /// variable records gradients (backward passes reach only the inputs).
    pub fn freeze_for_inference(&mut self) {
        let _guard = tch::no_grad_guard();
        for g in &mut self.0 {
            if let Some(e) = g.ema.take() {
                g.opt.flat().shallow_clone().copy_(&e);
            }
            g.vs.freeze();
        }
    }

    /// Copies rank 0's variables and EMAs into every rank's in place ([`crate::dist`]; a
    /// no-op without peers): one broadcast per tensor, once per run.
    pub fn broadcast_from_main(&self) -> Result<()> {
        if crate::dist::world_size() == 1 {
            return Ok(());
        }
        for g in &self.0 {
            for (_, v) in g.variables_by_name() {
                crate::dist::broadcast(&v.detach())?;
            }
            if let Some(e) = &g.ema {
                crate::dist::broadcast(e)?;
            }
        }
        Ok(())
    }

    /// Every variable of every group by name, sorted (e.g. to compare two runs).
    pub fn weights(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self.0.iter().flat_map(|g| g.weights()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The device of the first group (all groups of a task share one).
    pub fn device(&self) -> Device {
        self.0.first().map_or(Device::Cpu, |g| g.vs.device())
    }
}

/// Checks a loaded tensor's shape and finiteness.
fn check_tensor(key: &str, t: &Tensor, want: &[i64]) -> std::result::Result<(), String> {
    if t.size() != want {
        return Err(format!(
            "tensor `{key}` has shape {:?}, the model needs {want:?}",
            t.size()
        ));
    }
    if t.is_floating_point() && !bool::try_from(t.isfinite().all()).unwrap_or(false) {
        return Err(format!("tensor `{key}` holds NaN or infinite values"));
    }
    Ok(())
}

/// One line per network of a group: its path under the group, parameter count, and the
/// shapes of its variables (a layer summary any task gets from its variable stores).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerSummary {
    /// `<group>.<path>` of the layer (the variable name without its last component).
    pub layer: String,
    /// Trainable scalars of the layer.
    pub params: i64,
    /// Variable names and shapes (buffers such as BatchNorm running statistics included).
    pub variables: Vec<(String, Vec<i64>)>,
}

impl Group {
    /// The layer summary of this group, layers in name order.
    pub fn layers(&self) -> Vec<LayerSummary> {
        let trainable: Vec<Tensor> = self.vs.trainable_variables();
        let is_trainable = |t: &Tensor| trainable.iter().any(|p| p.is_set_to(t));
        let mut layers: BTreeMap<String, LayerSummary> = BTreeMap::new();
        for (name, t) in self.vs.variables() {
            let (layer, var) = name.rsplit_once('.').unwrap_or(("", name.as_str()));
            let entry = layers
                .entry(layer.to_string())
                .or_insert_with(|| LayerSummary {
                    layer: format!("{}.{layer}", self.name),
                    params: 0,
                    variables: Vec::new(),
                });
            if is_trainable(&t) {
                entry.params += t.numel() as i64;
            }
            entry.variables.push((var.to_string(), t.size()));
        }
        layers.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::ema_decay;

    /// Closed forms: off → β; first update → 0 (the EMA becomes θ); half-life r·(k − 1)
    /// below β's own; β once r·(k − 1) passes β's half-life ln 0.5 / ln β (693 steps at 0.999).
    #[test]
    fn ema_decay_ramps_up_to_beta() {
        assert_eq!(ema_decay(0.999, 0.0, 1), 0.999);
        assert_eq!(ema_decay(0.999, 0.05, 1), 0.0);
        let at_1001 = 0.5f64.powf(1.0 / 50.0); // r·(k − 1) = 50 steps of half-life
        assert!((ema_decay(0.999, 0.05, 1001) - at_1001).abs() < 1e-15);
        assert_eq!(ema_decay(0.999, 0.05, 14_000), 0.999); // 0.05 · 13,999 > 693
        assert!(ema_decay(0.999, 0.05, 13_000) < 0.999); // 0.05 · 12,999 < 693
    }
}
