//! Optimizers over one flat parameter buffer.
//!
//! tch's `nn::Optimizer` steps one parameter at a time in C++ and cannot save its state.
//! Ours makes every parameter a view into one contiguous buffer (as apex's fused optimizers
//! and FSDP do), so an update is ~10 tensor ops however many parameters the model has, weight
//! clipping is one `clamp_`, and the moments are two tensors to checkpoint.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{GanError, Result};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba 2015), bias-corrected as `torch.optim.Adam`.
    Adam,
    /// RMSProp as `torch.optim.RMSprop` (no momentum, not centered): WGAN's choice.
    Rmsprop,
}

/// How the learning rate changes over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `lr` throughout.
    #[default]
    Constant,
    /// Cosine annealing from `lr` at step 0 to 0 at the run's last step
    /// (Loshchilov & Hutter 2017, one cycle, no restarts): lr·(1 + cos(π·step/steps))/2.
    Cosine,
    /// `lr` until `decay_start`·steps, then linear decay towards 0: pix2pix/CycleGAN's
    /// "linear" policy (pytorch-CycleGAN-and-pix2pix `networks.get_scheduler`, factor
    /// 1 − max(0, epoch + 1 − n_epochs)/(n_epochs_decay + 1)), counted in steps instead of
    /// epochs, so the last update runs at lr/(decay steps + 1), as the reference's last epoch.
    Linear,
}

impl LrSchedule {
    /// The factor multiplying `lr` for the update after `step` of `total` steps;
    /// `decay_start` ∈ [0, 1] is the fraction of the run before a linear decay begins.
    pub fn factor(self, step: u64, total: u64, decay_start: f64) -> f64 {
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Cosine => {
                let frac = (step as f64 / total.max(1) as f64).min(1.0);
                0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
            LrSchedule::Linear => {
                let start = (decay_start * total as f64).round() as u64;
                let decay = total.saturating_sub(start) as f64;
                let into = (step + 1).saturating_sub(start) as f64;
                (1.0 - into / (decay + 1.0)).max(0.0)
            }
        }
    }
}

/// An optimizer section of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Adam β1 (DCGAN: 0.5).
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam β2, or RMSProp's smoothing constant α.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Term added to the denominator.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Learning-rate schedule over `run.steps`.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// `linear` schedule: fraction of `run.steps` at constant lr before the decay starts.
    #[serde(default = "default_decay_start")]
    pub decay_start: f64,
    /// L2 penalty added to the gradient, g + λ·θ, before the update (`torch.optim.Adam`'s
    /// `weight_decay`, coupled; U-GAT-IT: 1e-4). 0 = off.
    #[serde(default)]
    pub weight_decay: f64,
}

fn default_decay_start() -> f64 {
    0.5
}

fn default_beta1() -> f64 {
    0.5
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

impl OptimizerConfig {
    /// Adam with the DCGAN betas (0.5, 0.999).
    pub fn adam(lr: f64) -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            schedule: LrSchedule::Constant,
            decay_start: 0.5,
            weight_decay: 0.0,
        }
    }

    /// RMSProp with torch's defaults (α = 0.99, ε = 1e-8), the lecture's WGAN optimizer.
    pub fn rmsprop(lr: f64) -> Self {
        Self {
            kind: OptimizerKind::Rmsprop,
            lr,
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
            schedule: LrSchedule::Constant,
            decay_start: 0.5,
            weight_decay: 0.0,
        }
    }

    /// The factor multiplying `lr` for the update after `done` of `total` steps.
    pub fn lr_factor(&self, done: u64, total: u64) -> f64 {
        self.schedule.factor(done, total, self.decay_start)
    }

    /// Checks every field; `prefix` is the TOML section used in error messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(0.0..=1.0).contains(&self.decay_start) {
            return Err(GanError::config(
                format!("{prefix}.decay_start"),
                format!("must be in [0, 1], got {}", self.decay_start),
            ));
        }
        if !(self.lr > 0.0 && self.lr < 10.0) {
            return Err(GanError::config(
                format!("{prefix}.lr"),
                format!("must be in (0, 10), got {}", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(GanError::config(
                format!("{prefix}.beta1"),
                format!("must be in [0, 1), got {}", self.beta1),
            ));
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return Err(GanError::config(
                format!("{prefix}.beta2"),
                format!("must be in [0, 1), got {}", self.beta2),
            ));
        }
        if !(0.0..1.0).contains(&self.weight_decay) {
            return Err(GanError::config(
                format!("{prefix}.weight_decay"),
                format!("must be in [0, 1), got {}", self.weight_decay),
            ));
        }
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return Err(GanError::config(
                format!("{prefix}.eps"),
                format!("must be in (0, 1), got {}", self.eps),
            ));
        }
        Ok(())
    }
}

/// An optimizer owning a flat buffer that all its parameters are views of.
#[derive(Debug)]
pub struct FlatOptimizer {
    cfg: OptimizerConfig,
    params: Vec<Tensor>,
    flat: Tensor,
    flat_grad: Tensor,
    m: Tensor,
    v: Tensor,
    steps: u64,
    lr_factor: f64,
}

impl FlatOptimizer {
    /// Moves `params` (leaf tensors, e.g. `VarStore::trainable_variables()`) into one flat
    /// buffer; every handle sharing those tensors sees the change.
    pub fn new(cfg: OptimizerConfig, mut params: Vec<Tensor>) -> Result<Self> {
        if params.is_empty() {
            return Err(GanError::Input("optimizer: no trainable parameters".into()));
        }
        let flat = tch::no_grad(|| {
            Tensor::cat(
                &params
                    .iter()
                    .map(|p| p.detach().reshape([-1]))
                    .collect::<Vec<_>>(),
                0,
            )
        });
        // Gradients live in one buffer too: each parameter's .grad is defined once (by a
        // zero backward) and then re-pointed at its slice, so autograd accumulates in place
        // into `flat_grad` and an update reads it without gathering.
        let flat_grad = flat.zeros_like();
        let mut offset = 0;
        for p in params.iter_mut() {
            let n = p.numel() as i64;
            let view = flat.narrow(0, offset, n).view(p.size().as_slice());
            p.set_data(&view);
            if p.requires_grad() {
                (&*p * 0.0).sum(Kind::Float).backward();
                let mut g = p.grad();
                g.set_data(&flat_grad.narrow(0, offset, n).view(p.size().as_slice()));
            }
            offset += n;
        }
        let m = flat.zeros_like();
        let v = flat.zeros_like();
        Ok(Self {
            cfg,
            params,
            flat,
            flat_grad,
            m,
            v,
            steps: 0,
            lr_factor: 1.0,
        })
    }

    /// The update rule and its settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    /// The flat parameter buffer (every parameter is a view of it).
    pub fn flat(&self) -> &Tensor {
        &self.flat
    }

    /// Number of scalar parameters.
    pub fn numel(&self) -> i64 {
        self.flat.numel() as i64
    }

    /// Number of updates done.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The parameters (views of the flat buffer).
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Scales `lr` by `factor` from the next update on (the trainer sets it from the
    /// config's [`LrSchedule`]).
    pub fn set_lr_factor(&mut self, factor: f64) {
        self.lr_factor = factor;
    }

    /// The learning rate of the next update.
    pub fn lr(&self) -> f64 {
        self.cfg.lr * self.lr_factor
    }

    /// Clears the gradients of all parameters.
    pub fn zero_grad(&mut self) {
        let _ = self.flat_grad.zero_();
    }

    /// Turns gradient tracking of all parameters on or off (off while the other network
    /// trains, so no gradient is computed for it).
    pub fn set_requires_grad(&self, on: bool) {
        for p in &self.params {
            let _ = p.set_requires_grad(on);
        }
    }

    /// One update from the current gradients (missing gradients count as zero). In a
    /// process group ([`crate::dist`]) the flat gradient is first averaged over the ranks:
    /// one all-reduce per optimizer per step; that collective is what can fail.
    pub fn step(&mut self) -> Result<()> {
        crate::dist::all_reduce_mean(&self.flat_grad)?;
        let _guard = tch::no_grad_guard();
        let c = &self.cfg;
        let decayed;
        let g = if c.weight_decay > 0.0 {
            decayed = &self.flat_grad + &self.flat * c.weight_decay;
            &decayed
        } else {
            &self.flat_grad
        };
        self.steps += 1;
        let lr = c.lr * self.lr_factor;
        match c.kind {
            OptimizerKind::Adam => {
                let bc1 = 1.0 - c.beta1.powi(self.steps as i32);
                let bc2 = 1.0 - c.beta2.powi(self.steps as i32);
                let _ = self.m.lerp_(g, 1.0 - c.beta1);
                let _ = self.v.lerp_(&g.square(), 1.0 - c.beta2);
                let denom = (&self.v / bc2).sqrt() + c.eps;
                let _ = self.flat.addcdiv_(&(&self.m * (-lr / bc1)), &denom);
            }
            OptimizerKind::Rmsprop => {
                let _ = self.v.lerp_(&g.square(), 1.0 - c.beta2);
                let denom = self.v.sqrt() + c.eps;
                let _ = self.flat.addcdiv_(&(g * -lr), &denom);
            }
        }
        Ok(())
    }

    /// Clips every parameter to [−c, c] (WGAN weight clipping) in one op.
    pub fn clip(&mut self, c: f64) {
        let _guard = tch::no_grad_guard();
        let _ = self.flat.clamp_(-c, c);
    }

    /// Named moment tensors for a checkpoint (the weights themselves are saved by name, by
    /// the network group, as the one source of truth).
    pub fn moment_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}.m"), self.m.copy()),
            (format!("{prefix}.v"), self.v.copy()),
        ]
    }

    /// Restores the moments saved by [`Self::moment_tensors`] and the step count.
    pub fn load_moments(
        &mut self,
        prefix: &str,
        tensors: &[(String, Tensor)],
        steps: u64,
    ) -> Result<()> {
        let find = |name: &str| -> Result<&Tensor> {
            let key = format!("{prefix}.{name}");
            crate::io::named(tensors, &key)
                .ok_or_else(|| GanError::Input(format!("checkpoint lacks tensor `{key}`")))
        };
        let _guard = tch::no_grad_guard();
        for (name, dst) in [("m", &mut self.m), ("v", &mut self.v)] {
            let src = find(name)?;
            if src.size() != dst.size() {
                return Err(GanError::Input(format!(
                    "checkpoint tensor `{prefix}.{name}` has shape {:?}, the model needs {:?} (different model config?)",
                    src.size(),
                    dst.size()
                )));
            }
            dst.copy_(&src.to_kind(Kind::Float).to_device(dst.device()));
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig as _};

    /// Our flat Adam against tch's own Adam (libtorch's C++ implementation of
    /// torch.optim.Adam) on the same model and data for 20 steps, without and with weight
    /// decay 0.1; tolerance 1e-5.
    #[test]
    fn flat_adam_matches_libtorch_adam() {
        let _rng = crate::test_rng_lock();
        let build = |seed| {
            tch::manual_seed(seed);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let net = nn::seq()
                .add(nn::linear(vs.root() / "a", 3, 5, Default::default()))
                .add_fn(|x| x.tanh())
                .add(nn::linear(vs.root() / "b", 5, 1, Default::default()));
            (vs, net)
        };
        for wd in [0.0, 0.1] {
            let (vs1, net1) = build(1);
            let (vs2, net2) = build(1);
            let cfg = OptimizerConfig {
                weight_decay: wd,
                ..OptimizerConfig::adam(1e-2)
            };
            let mut ours = FlatOptimizer::new(cfg, vs1.trainable_variables()).unwrap();
            let mut theirs = nn::Adam {
                beta1: 0.5,
                beta2: 0.999,
                wd,
                eps: 1e-8,
                amsgrad: false,
            }
            .build(&vs2, 1e-2)
            .unwrap();
            let x = Tensor::randn([16, 3], (Kind::Float, tch::Device::Cpu));
            for _ in 0..20 {
                ours.zero_grad();
                net1.forward(&x).square().mean(Kind::Float).backward();
                ours.step().unwrap();
                theirs.zero_grad();
                net2.forward(&x).square().mean(Kind::Float).backward();
                theirs.step();
            }
            let a = net1.forward(&x);
            let b = net2.forward(&x);
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(
                diff < 1e-5,
                "weight decay {wd}: max |ours - libtorch| = {diff}"
            );
        }
    }

    /// RMSProp against torch.optim.RMSprop's closed form for one scalar: after one step from
    /// v = 0 with gradient g, v = (1-α)g² and p -= lr·g/(sqrt(v)+ε).
    #[test]
    fn rmsprop_first_step_and_clip() {
        let p = Tensor::from_slice(&[0.5f32]).set_requires_grad(true);
        let mut opt =
            FlatOptimizer::new(OptimizerConfig::rmsprop(0.1), vec![p.shallow_clone()]).unwrap();
        (&p * 2.0).sum(Kind::Float).backward(); // g = 2
        opt.step().unwrap();
        let want = 0.5 - 0.1 * 2.0 / ((0.01f64 * 4.0).sqrt() + 1e-8);
        assert!((p.double_value(&[0]) - want).abs() < 1e-6);
        opt.clip(0.01);
        assert!((p.double_value(&[0]) + 0.01).abs() < 1e-9);
    }

    /// Cosine schedule at closed-form points: 1 at step 0, 1/2 halfway, (1 + cos(π/4))/2 at a
    /// quarter, 0 at the end and after; constant is 1 everywhere. A scaled update moves the
    /// parameter by exactly the scaled Adam step (first Adam step is lr·sign(g)).
    #[test]
    fn cosine_schedule() {
        let c = LrSchedule::Cosine;
        assert_eq!(c.factor(0, 100, 0.5), 1.0);
        assert!((c.factor(50, 100, 0.5) - 0.5).abs() < 1e-15);
        let quarter = 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2);
        assert!((c.factor(25, 100, 0.5) - quarter).abs() < 1e-15);
        assert!(c.factor(100, 100, 0.5).abs() < 1e-15);
        assert!(c.factor(150, 100, 0.5).abs() < 1e-15);
        assert_eq!(LrSchedule::Constant.factor(99, 100, 0.5), 1.0);
        // Linear, against the reference's epoch formula with n_epochs = n_epochs_decay = 100
        // (one "epoch" per step): 1 − max(0, ep + 1 − 100)/101.
        let l = LrSchedule::Linear;
        for ep in [0u64, 50, 98, 99, 100, 150, 199] {
            let want = 1.0 - (ep + 1).saturating_sub(100) as f64 / 101.0;
            assert!((l.factor(ep, 200, 0.5) - want).abs() < 1e-15, "epoch {ep}");
        }
        let p = Tensor::from_slice(&[0.0f32]).set_requires_grad(true);
        let mut opt =
            FlatOptimizer::new(OptimizerConfig::adam(0.1), vec![p.shallow_clone()]).unwrap();
        opt.set_lr_factor(0.25);
        assert!((opt.lr() - 0.025).abs() < 1e-15);
        (&p * 3.0).sum(Kind::Float).backward();
        opt.step().unwrap();
        assert!((p.double_value(&[0]) + 0.025).abs() < 1e-6);
    }
}
