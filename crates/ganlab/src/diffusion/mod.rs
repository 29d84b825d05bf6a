//! Diffusion-GAN (Wang et al., ICLR 2023): instance noise from a forward diffusion chain.
//!
//! This module is the "augment" stage between the data and the discriminator. It knows
//! nothing about models or losses: the trainer asks it for a list of steps `t` (one per
//! sample), diffuses real and generated batches with the *same* list, passes `(y, t)` to
//! D, and reports the signs of D's outputs on real data back through [`Diffusion::observe_real`].
//!
//! * Eq. (2): q(y | x, t) = N(y; √ᾱ_t x, (1 − ᾱ_t) σ² I), sampled as
//!   y = √ᾱ_t · x + √(1 − ᾱ_t) · σ · ε with ᾱ_0 = 1 (t = 0 leaves x untouched).
//! * The β schedule is recomputed over the *current* T every time T changes (as the
//!   official code does), so ᾱ_T always reaches the same final noise level.
//! * Eq. (6): t ~ p_π, 'uniform' (π_t = 1/T) or 'priority' (π_t = t / Σ_s s), t ∈ 1..=T.
//!   (The official code uses weights 0..T−1 for t = 1..T, i.e. t = 1 is never drawn; we
//!   follow the paper's equation.)
//! * Exploration list t_epl (Algorithm 1, Step III): `epl_len` = 64 slots, `epl_zeros` = 32
//!   of them t = 0, the rest drawn from p_π; kept fixed between T updates; each sample's t
//!   is drawn from it uniformly with replacement.
//! * Eq. (5): r_d = E[sign(D(y, t) − 0.5)] on real data, measured over the last
//!   `ada_interval` (= 4) minibatches. The objective maps D's raw output to that sign (for
//!   logit-based losses, the sign of the logit). Then either
//!   - [`AdaptiveMode::Paper`]: T ← T + sign(r_d − d_target) · C, or
//!   - [`AdaptiveMode::Accumulator`] (official code, from StyleGAN2-ADA):
//!     p ← clip(p + sign(r_d − d_target) · batch · interval / (ada_kimg · 1000), 0, 1),
//!     T = T_min + round(p · (T_max − T_min)),
//!
//!   clipped to [T_min, T_max]; [`AdaptiveMode::Fixed`] keeps T = T_max (ablation, Fig. 7).

pub mod schedule;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub use schedule::{alphas_bar, BetaSchedule};

use crate::error::{GanError, Result};
use crate::rng::SplitMix64;

/// Distribution p_π of the diffusion step t (eq. 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TSampling {
    /// π_t = 1/T.
    Uniform,
    /// π_t = t / Σ_{s=1}^T s: more weight on the newest, hardest steps.
    Priority,
}

/// How the maximum step T follows the overfitting measure r_d.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveMode {
    /// The paper's eq. (5): T += sign(r_d − d_target) · C.
    Paper,
    /// The official code's accumulator p ∈ [0, 1] (see module docs).
    Accumulator,
    /// T fixed at T_max (no adaptation).
    Fixed,
}

/// Every hyper-parameter of Diffusion-GAN Appendix G. Defaults are the paper's
/// "diffusion config for pixel, priority" (Table 5) with d_target = 0.6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffusionConfig {
    /// Inject diffusion noise at all; `false` gives a vanilla GAN with the same D (t = 0).
    pub enabled: bool,
    /// Shape of β_t over 1..T.
    pub beta_schedule: BetaSchedule,
    /// β_1 (paper: β_0 = 1e-4).
    pub beta_start: f64,
    /// β_T (paper: 0.02 on pixels, 0.01 on features).
    pub beta_end: f64,
    /// Smallest maximum step T_min (paper: 5).
    pub t_min: usize,
    /// Largest maximum step T_max (paper: 1000 priority / 500 uniform on pixels, 500 features).
    pub t_max: usize,
    /// Noise scale σ (paper: 0.05 on pixels in [-1, 1], 0.5 on features).
    pub sigma: f64,
    /// Target of r_d (paper: 0.6; 0.8 for FFHQ).
    pub d_target: f64,
    /// p_π, eq. (6).
    pub sampling: TSampling,
    /// How T adapts.
    pub adaptive: AdaptiveMode,
    /// Minibatches between T updates (paper: 4).
    pub ada_interval: usize,
    /// C of eq. (5), used by `adaptive = "paper"`.
    pub ada_c: usize,
    /// Speed of the accumulator: kimg for p to go from 0 to 1 (official code: 100).
    pub ada_kimg: f64,
    /// Length of the exploration list t_epl (Algorithm 1: 64).
    pub epl_len: usize,
    /// Number of t = 0 slots in t_epl (Algorithm 1: 32).
    pub epl_zeros: usize,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            beta_schedule: BetaSchedule::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            t_min: 5,
            t_max: 1000,
            sigma: 0.05,
            d_target: 0.6,
            sampling: TSampling::Priority,
            adaptive: AdaptiveMode::Accumulator,
            ada_interval: 4,
            ada_c: 1,
            ada_kimg: 100.0,
            epl_len: 64,
            epl_zeros: 32,
        }
    }
}

impl DiffusionConfig {
    /// Appendix G "diffusion config for feature" (β_T = 0.01, T_max = 500, σ = 0.5): the
    /// setting for feature vectors and 2-D points.
    pub fn feature() -> Self {
        Self {
            beta_end: 0.01,
            t_max: 500,
            sigma: 0.5,
            ..Self::default()
        }
    }

    /// Checks every field; `prefix` is the TOML section used in error messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let f = |name: &str| format!("{prefix}.{name}");
        if !(self.beta_start > 0.0 && self.beta_start < 1.0) {
            return Err(GanError::config(
                f("beta_start"),
                format!("must be in (0, 1), got {}", self.beta_start),
            ));
        }
        if !(self.beta_end >= self.beta_start && self.beta_end < 1.0) {
            return Err(GanError::config(
                f("beta_end"),
                format!("must be in [beta_start, 1), got {}", self.beta_end),
            ));
        }
        if self.t_min < 1 {
            return Err(GanError::config(f("t_min"), "must be at least 1"));
        }
        if self.t_max < self.t_min || self.t_max > 100_000 {
            return Err(GanError::config(
                f("t_max"),
                format!(
                    "must be in [t_min = {}, 100000], got {}",
                    self.t_min, self.t_max
                ),
            ));
        }
        if !(self.sigma > 0.0 && self.sigma.is_finite()) {
            return Err(GanError::config(
                f("sigma"),
                format!("must be a positive number, got {}", self.sigma),
            ));
        }
        if !(-1.0..=1.0).contains(&self.d_target) {
            return Err(GanError::config(
                f("d_target"),
                format!(
                    "must be in [-1, 1] (r_d is a mean of signs), got {}",
                    self.d_target
                ),
            ));
        }
        if self.ada_interval < 1 {
            return Err(GanError::config(f("ada_interval"), "must be at least 1"));
        }
        if self.ada_c < 1 && self.adaptive == AdaptiveMode::Paper {
            return Err(GanError::config(
                f("ada_c"),
                "must be at least 1 with adaptive = \"paper\"",
            ));
        }
        if !(self.ada_kimg > 0.0 && self.ada_kimg.is_finite()) {
            return Err(GanError::config(
                f("ada_kimg"),
                format!("must be a positive number, got {}", self.ada_kimg),
            ));
        }
        if self.epl_len < 1 || self.epl_len > 1_000_000 {
            return Err(GanError::config(
                f("epl_len"),
                format!("must be in [1, 1000000], got {}", self.epl_len),
            ));
        }
        if self.epl_zeros >= self.epl_len {
            return Err(GanError::config(
                f("epl_zeros"),
                format!(
                    "must be in [0, epl_len = {}), got {}",
                    self.epl_len, self.epl_zeros
                ),
            ));
        }
        Ok(())
    }
}

/// The controller's state, saved in checkpoints so a resumed run continues exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffusionState {
    /// Current maximum step T (0 when diffusion is disabled).
    pub t_cur: usize,
    /// Accumulator p ∈ [0, 1] (accumulator mode).
    pub p: f64,
    /// Exploration list t_epl.
    pub t_epl: Vec<i64>,
    /// Host RNG for t sampling.
    pub rng: SplitMix64,
    /// Minibatches since the last T update.
    pub batches_since_update: usize,
    /// Σ sign(D(y, t)) on real data since the last update.
    pub sign_sum: f64,
    /// Number of real samples behind `sign_sum`.
    pub sign_count: u64,
    /// The last r_d measured (None before the first update).
    pub last_r_d: Option<f64>,
}

/// The Diffusion-GAN augment stage (see module docs).
#[derive(Debug, Clone)]
pub struct Diffusion {
    cfg: DiffusionConfig,
    state: DiffusionState,
    sqrt_ab: Vec<f64>,
    sqrt_one_minus_ab: Vec<f64>,
}

impl Diffusion {
    /// Builds the stage; T starts at T_min (the easiest task first, §3.3), or at T_max in
    /// `Fixed` mode. Call [`DiffusionConfig::validate`] first.
    pub fn new(cfg: DiffusionConfig, seed: u64) -> Self {
        let t_cur = match (cfg.enabled, cfg.adaptive) {
            (false, _) => 0,
            (true, AdaptiveMode::Fixed) => cfg.t_max,
            (true, _) => cfg.t_min,
        };
        let p = if cfg.adaptive == AdaptiveMode::Fixed {
            1.0
        } else {
            0.0
        };
        let state = DiffusionState {
            t_cur,
            p,
            t_epl: vec![0; cfg.epl_len],
            rng: SplitMix64::new(seed),
            batches_since_update: 0,
            sign_sum: 0.0,
            sign_count: 0,
            last_r_d: None,
        };
        let mut d = Self {
            cfg,
            state,
            sqrt_ab: vec![1.0],
            sqrt_one_minus_ab: vec![0.0],
        };
        d.rebuild();
        d
    }

    /// Restores a saved controller state (T, p, t_epl, RNG, pending statistics), checking
    /// every field against the config as a config is checked (a state.json edited or
    /// corrupted by hand is an error naming the field, never a panic or a huge allocation).
    pub fn restore(cfg: DiffusionConfig, state: DiffusionState) -> Result<Self> {
        let bad = |field: &str, message: String| {
            Err(GanError::Input(format!(
                "checkpoint state: diffusion.{field} {message}"
            )))
        };
        let t_hi = if cfg.enabled { cfg.t_max } else { 0 };
        if state.t_cur > t_hi || (cfg.enabled && state.t_cur < cfg.t_min) {
            return bad(
                "t_cur",
                format!(
                    "must be in [{}, {t_hi}], got {}",
                    if cfg.enabled { cfg.t_min } else { 0 },
                    state.t_cur
                ),
            );
        }
        if state.t_epl.len() != cfg.epl_len {
            return bad(
                "t_epl",
                format!(
                    "must hold {} steps (diffusion.epl_len), got {}",
                    cfg.epl_len,
                    state.t_epl.len()
                ),
            );
        }
        if let Some(t) = state
            .t_epl
            .iter()
            .find(|t| !(0..=state.t_cur as i64).contains(*t))
        {
            return bad(
                "t_epl",
                format!("holds step {t} outside [0, T = {}]", state.t_cur),
            );
        }
        if !(0.0..=1.0).contains(&state.p) {
            return bad("p", format!("must be in [0, 1], got {}", state.p));
        }
        if !state.sign_sum.is_finite() || state.last_r_d.is_some_and(|r| !r.is_finite()) {
            return bad("sign_sum", "must be finite".into());
        }
        let mut d = Self {
            cfg,
            state,
            sqrt_ab: vec![1.0],
            sqrt_one_minus_ab: vec![0.0],
        };
        d.recompute_schedule();
        Ok(d)
    }

    /// The augment stage in one call: every part of `parts` (each [n, ...], one batch size)
    /// gets the same n steps t drawn from t_epl (real and fake share the t-list, Algorithm 1)
    /// and is diffused; returns the diffused parts concatenated along dim 0 and t ([n],
    /// Int64 on the parts' device; repeat it per part for the concatenation). With
    /// diffusion disabled the parts pass through with t = 0. Feed the controller with
    /// [`Diffusion::observe_real`] and step it with [`Diffusion::end_minibatch`].
    pub fn augment(&mut self, parts: &[&Tensor]) -> Result<(Tensor, Tensor)> {
        let n = parts.first().map_or(0, |p| p.size()[0]);
        let device = parts.first().map_or(tch::Device::Cpu, |p| p.device());
        // In a data-parallel step every rank draws the global batch's steps and noise and
        // keeps its rows (crate::dist), so the skip below is decided on the global list.
        let global = self.sample_t(n as usize * crate::dist::shards() as usize);
        let t = crate::dist::shard_slice(&global);
        let all: Vec<i64> = (0..parts.len()).flat_map(|_| t.iter().copied()).collect();
        let x = if parts.len() == 1 {
            parts[0].shallow_clone()
        } else {
            Tensor::cat(parts, 0)
        };
        let t_tensor = Self::t_tensor(&t, device);
        if global.iter().all(|t| *t == 0) {
            return Ok((x, t_tensor));
        }
        let eps = crate::dist::randn_parts(parts.len() as i64, &x.size(), (x.kind(), device));
        Ok((self.diffuse_with(&x, &all, eps)?, t_tensor))
    }

    /// The configuration.
    pub fn config(&self) -> &DiffusionConfig {
        &self.cfg
    }

    /// The state to save in a checkpoint.
    pub fn state(&self) -> &DiffusionState {
        &self.state
    }

    /// The current maximum step T (0 when disabled).
    pub fn t_cur(&self) -> usize {
        self.state.t_cur
    }

    /// The accumulator p.
    pub fn p(&self) -> f64 {
        self.state.p
    }

    /// The last measured r_d (None before the first update).
    pub fn last_r_d(&self) -> Option<f64> {
        self.state.last_r_d
    }

    /// ᾱ_t for t = 0..=T under the current T.
    pub fn alphas_bar(&self) -> Vec<f64> {
        self.sqrt_ab.iter().map(|s| s * s).collect()
    }

    /// The mixture weights π_1..π_T of eq. (6) for a given T.
    pub fn mixture_weights(sampling: TSampling, t_max: usize) -> Vec<f64> {
        match sampling {
            TSampling::Uniform => vec![1.0; t_max],
            TSampling::Priority => (1..=t_max).map(|t| t as f64).collect(),
        }
    }

    fn recompute_schedule(&mut self) {
        if self.state.t_cur == 0 {
            self.sqrt_ab = vec![1.0];
            self.sqrt_one_minus_ab = vec![0.0];
            return;
        }
        let betas =
            self.cfg
                .beta_schedule
                .betas(self.cfg.beta_start, self.cfg.beta_end, self.state.t_cur);
        let ab = alphas_bar(&betas);
        self.sqrt_ab = ab.iter().map(|a| a.sqrt()).collect();
        self.sqrt_one_minus_ab = ab.iter().map(|a| (1.0 - a).max(0.0).sqrt()).collect();
    }

    /// Recomputes β over the current T and draws a new exploration list.
    fn rebuild(&mut self) {
        self.recompute_schedule();
        let t_cur = self.state.t_cur;
        let zeros = self.cfg.epl_zeros;
        if t_cur == 0 {
            self.state.t_epl.iter_mut().for_each(|t| *t = 0);
            return;
        }
        let w = Self::mixture_weights(self.cfg.sampling, t_cur);
        // Algorithm 1 writes t_epl = [0, …, 0, t_1, …, t_32]; the order is irrelevant since
        // t is then drawn uniformly from the list.
        for i in 0..self.cfg.epl_len {
            self.state.t_epl[i] = if i < zeros {
                0
            } else {
                self.state.rng.categorical(&w) as i64 + 1
            };
        }
    }

    /// Draws one t per sample from t_epl, uniformly with replacement (Algorithm 1).
    pub fn sample_t(&mut self, n: usize) -> Vec<i64> {
        let len = self.state.t_epl.len() as u64;
        (0..n)
            .map(|_| self.state.t_epl[self.state.rng.below(len) as usize])
            .collect()
    }

    /// y = √ᾱ_t · x + √(1 − ᾱ_t) · σ · ε for a batch `x` of any shape `[n, ...]` and one t
    /// per sample. Differentiable in `x` (the generator learns through it, §3.2).
    pub fn diffuse(&self, x: &Tensor, t: &[i64]) -> Result<Tensor> {
        let n = x.size().first().copied().unwrap_or(0);
        if n != t.len() as i64 {
            return Err(GanError::Input(format!(
                "diffuse: batch has {n} samples but {} steps were given",
                t.len()
            )));
        }
        if t.iter().all(|t| *t == 0) {
            return Ok(x.shallow_clone());
        }
        self.diffuse_with(x, t, x.randn_like())
    }

    /// [`Diffusion::diffuse`] with the noise ε given (same shape as `x`), for one step per
    /// sample of `x` (checked by the callers).
    fn diffuse_with(&self, x: &Tensor, t: &[i64], eps: Tensor) -> Result<Tensor> {
        let mut a = Vec::with_capacity(t.len());
        let mut b = Vec::with_capacity(t.len());
        for &ti in t {
            let ti = usize::try_from(ti)
                .ok()
                .filter(|ti| *ti <= self.state.t_cur)
                .ok_or_else(|| {
                    GanError::Input(format!(
                        "diffuse: step {ti} outside 0..={}",
                        self.state.t_cur
                    ))
                })?;
            a.push(self.sqrt_ab[ti] as f32);
            b.push((self.sqrt_one_minus_ab[ti] * self.cfg.sigma) as f32);
        }
        Ok(schedule::q_sample(x, eps, &a, &b))
    }

    /// Records D's output signs on a real minibatch: `sign_sum` = Σ sign(·), over `count`
    /// samples. In a data-parallel step the ranks' sums are added (one small collective), so
    /// r_d, and hence T, is the global batch's on every rank.
    pub fn observe_real(&mut self, sign_sum: f64, count: u64) -> Result<()> {
        let s = crate::dist::sum_over_ranks(&[sign_sum, count as f64])?;
        self.state.sign_sum += s[0];
        self.state.sign_count += s[1].round() as u64;
        Ok(())
    }

    /// Marks the end of a minibatch of `batch_size` samples; every `ada_interval` calls it
    /// updates T by eq. (5) and resamples t_epl. Returns the new T when an update happened.
    pub fn end_minibatch(&mut self, batch_size: usize) -> Option<usize> {
        if !self.cfg.enabled {
            return None;
        }
        self.state.batches_since_update += 1;
        if self.state.batches_since_update < self.cfg.ada_interval {
            return None;
        }
        self.state.batches_since_update = 0;
        let r_d = if self.state.sign_count > 0 {
            self.state.sign_sum / self.state.sign_count as f64
        } else {
            0.0
        };
        self.state.sign_sum = 0.0;
        self.state.sign_count = 0;
        self.state.last_r_d = Some(r_d);
        let dir = sign(r_d - self.cfg.d_target);
        let (t_min, t_max) = (self.cfg.t_min, self.cfg.t_max);
        match self.cfg.adaptive {
            AdaptiveMode::Fixed => {}
            AdaptiveMode::Paper => {
                let t = self.state.t_cur as i64 + dir as i64 * self.cfg.ada_c as i64;
                self.state.t_cur = t.clamp(t_min as i64, t_max as i64) as usize;
                self.state.p = (self.state.t_cur - t_min) as f64 / (t_max - t_min).max(1) as f64;
            }
            AdaptiveMode::Accumulator => {
                let adjust = dir * (batch_size * self.cfg.ada_interval) as f64
                    / (self.cfg.ada_kimg * 1000.0);
                self.state.p = (self.state.p + adjust).clamp(0.0, 1.0);
                let t = t_min as f64 + (self.state.p * (t_max - t_min) as f64).round();
                self.state.t_cur = (t as usize).clamp(t_min, t_max);
            }
        }
        self.rebuild();
        Some(self.state.t_cur)
    }

    /// Forces T (used by tests and by fixed-T experiments); resamples t_epl.
    pub fn set_t(&mut self, t: usize) {
        self.state.t_cur = t.clamp(self.cfg.t_min, self.cfg.t_max);
        self.rebuild();
    }

    /// Checks that a tensor of steps is valid for [`Self::diffuse`]; returns it as a tensor
    /// of kind Int64 on `device` for the discriminator's embedding.
    pub fn t_tensor(t: &[i64], device: tch::Device) -> Tensor {
        Tensor::from_slice(t).to_kind(Kind::Int64).to_device(device)
    }
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DiffusionConfig {
        DiffusionConfig {
            t_max: 200,
            ..DiffusionConfig::default()
        }
    }

    /// Issue 18 item 4: a restored state with a short t_epl, a t_cur of 10^9 (an 8 GB
    /// schedule before), a step outside [0, T], p outside [0, 1] or a NaN sum is an error
    /// naming the field; the state the controller saved restores.
    #[test]
    fn restore_validates_every_field() {
        let good = Diffusion::new(cfg(), 1).state().clone();
        assert!(Diffusion::restore(cfg(), good.clone()).is_ok());
        let cases: Vec<(DiffusionState, &str)> = vec![
            (
                DiffusionState {
                    t_epl: vec![0; 3],
                    ..good.clone()
                },
                "t_epl must hold",
            ),
            (
                DiffusionState {
                    t_cur: 1_000_000_000,
                    ..good.clone()
                },
                "t_cur must be in",
            ),
            (
                DiffusionState {
                    t_epl: vec![999; good.t_epl.len()],
                    ..good.clone()
                },
                "outside [0, T",
            ),
            (
                DiffusionState {
                    p: 2.0,
                    ..good.clone()
                },
                "p must be in [0, 1]",
            ),
            (
                DiffusionState {
                    sign_sum: f64::NAN,
                    ..good.clone()
                },
                "sign_sum must be finite",
            ),
        ];
        for (state, want) in cases {
            let e = Diffusion::restore(cfg(), state).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    /// Mean and variance of y given (x, t) against the closed form of eq. (2), on a
    /// non-vector shape to show the stage is shape-agnostic.
    #[test]
    fn closed_form_mean_and_variance() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let mut d = Diffusion::new(
            DiffusionConfig {
                sigma: 0.5,
                ..cfg()
            },
            1,
        );
        d.set_t(200);
        let ab = d.alphas_bar();
        let n = 4096;
        let x = Tensor::full([n, 3, 4, 5], 1.5, (Kind::Float, tch::Device::Cpu));
        for t in [0i64, 1, 50, 200] {
            let y = d.diffuse(&x, &vec![t; n as usize]).unwrap();
            let mean = y.mean(Kind::Double).double_value(&[]);
            let var = y.var(true).double_value(&[]);
            let (m, v) = (ab[t as usize].sqrt() * 1.5, (1.0 - ab[t as usize]) * 0.25);
            // 245760 values: SE(mean) = sqrt(v/245760) <= 1e-3; SE(var) = v*sqrt(2/245760).
            // Tolerances are 6 standard errors.
            assert!(
                (mean - m).abs() < 6.0 * (v / 245760.0).sqrt() + 1e-6,
                "t={t}: mean {mean} vs {m}"
            );
            assert!(
                (var - v).abs() < 6.0 * v * (2.0f64 / 245760.0).sqrt() + 1e-9,
                "t={t}: var {var} vs {v}"
            );
        }
    }

    #[test]
    fn gradient_flows_through_diffusion() {
        let mut d = Diffusion::new(cfg(), 3);
        d.set_t(100);
        let x = Tensor::ones([8, 2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let t = vec![100i64; 8];
        let y = d.diffuse(&x, &t).unwrap();
        y.sum(Kind::Float).backward();
        let g = x.grad().mean(Kind::Double).double_value(&[]);
        assert!(
            (g - d.alphas_bar()[100].sqrt()).abs() < 1e-6,
            "dy/dx must be sqrt(alpha_bar)"
        );
    }

    /// Priority sampling (eq. 6) puts mass t/Σs on t; 32 of 64 slots are zero.
    #[test]
    fn priority_and_uniform_proportions() {
        for (sampling, expect) in [
            (
                TSampling::Priority,
                [1.0 / 15.0, 2.0 / 15.0, 3.0 / 15.0, 4.0 / 15.0, 5.0 / 15.0],
            ),
            (TSampling::Uniform, [0.2; 5]),
        ] {
            let mut d = Diffusion::new(
                DiffusionConfig {
                    sampling,
                    t_min: 5,
                    t_max: 5,
                    ..cfg()
                },
                11,
            );
            let mut counts = [0usize; 6];
            for _ in 0..4000 {
                d.set_t(5);
                assert_eq!(d.state().t_epl.iter().filter(|t| **t == 0).count(), 32);
                for t in &d.state().t_epl {
                    counts[*t as usize] += 1;
                }
            }
            let nonzero = (4000 * 32) as f64;
            for t in 1..=5 {
                let p = counts[t] as f64 / nonzero;
                // 128000 draws: SE <= 1.4e-3; tolerance 6e-3 (> 4 SE).
                assert!(
                    (p - expect[t - 1]).abs() < 6e-3,
                    "{sampling:?} t={t}: {p} vs {}",
                    expect[t - 1]
                );
            }
            assert_eq!(counts[0], 4000 * 32);
        }
    }

    /// Eq. (5), both modes: T rises while D overfits (all real signs +1 > d_target) and falls
    /// back to T_min once r_d stays below the target (all signs −1).
    #[test]
    fn adaptive_t_follows_overfitting() {
        for mode in [AdaptiveMode::Paper, AdaptiveMode::Accumulator] {
            let mut d = Diffusion::new(
                DiffusionConfig {
                    adaptive: mode,
                    ada_c: 3,
                    ..cfg()
                },
                5,
            );
            assert_eq!(d.t_cur(), 5);
            let mut last = d.t_cur();
            for i in 0..400 {
                d.observe_real(64.0, 64).unwrap(); // sign(logit) = +1 for every real sample: r_d = 1
                if let Some(t) = d.end_minibatch(64) {
                    assert!(t >= last, "{mode:?}: T must not fall while overfitting");
                    last = t;
                } else {
                    assert_ne!((i + 1) % 4, 0, "updates happen every 4 minibatches");
                }
            }
            assert!(d.t_cur() > 50, "{mode:?}: T rose only to {}", d.t_cur());
            assert_eq!(d.last_r_d(), Some(1.0));
            for _ in 0..4000 {
                d.observe_real(-64.0, 64).unwrap(); // r_d = -1 < 0.6
                d.end_minibatch(64);
            }
            assert_eq!(d.t_cur(), 5, "{mode:?}: T must fall back to T_min");
            // r_d exactly at the target leaves T unchanged (sign(0) = 0).
            d.observe_real(0.6 * 64.0, 64).unwrap();
            for _ in 0..4 {
                d.end_minibatch(64);
            }
            assert_eq!(d.t_cur(), 5);
        }
    }

    #[test]
    fn accumulator_step_size_matches_official_formula() {
        // One update: p = 64 * 4 / (100 * 1000) = 0.00256; T = 5 + round(0.00256 * 195) = 5.
        // After 100 updates p = 0.256, T = 5 + round(49.92) = 55.
        let mut d = Diffusion::new(cfg(), 5);
        for _ in 0..400 {
            d.observe_real(64.0, 64).unwrap();
            d.end_minibatch(64);
        }
        assert!((d.p() - 0.256).abs() < 1e-12, "p = {}", d.p());
        assert_eq!(d.t_cur(), 55);
    }

    #[test]
    fn disabled_is_identity_and_validation_names_fields() {
        let _rng = crate::test_rng_lock();
        let mut d = Diffusion::new(
            DiffusionConfig {
                enabled: false,
                ..cfg()
            },
            0,
        );
        let t = d.sample_t(10);
        assert!(t.iter().all(|t| *t == 0));
        let x = Tensor::randn([10, 2], (Kind::Float, tch::Device::Cpu));
        assert!(d.diffuse(&x, &t).unwrap().equal(&x));
        assert_eq!(d.end_minibatch(10), None);
        let err = DiffusionConfig {
            d_target: 2.0,
            ..cfg()
        }
        .validate("diffusion")
        .unwrap_err();
        assert!(err.to_string().contains("`diffusion.d_target`"), "{err}");
        let err = DiffusionConfig {
            epl_zeros: 64,
            ..cfg()
        }
        .validate("diffusion")
        .unwrap_err();
        assert!(err.to_string().contains("epl_zeros"), "{err}");
        assert!(d.diffuse(&x, &[0; 3]).is_err());
    }
}
