//! StarGAN (Choi et al. 2018), the label-based baseline of multi-attribute translation, as
//! its official code trains it (yunjey/stargan `solver.py`; networks:
//! [`crate::models::stargan`]). Targets are the batch's labels shuffled, as in the official
//! code (and as [`super::bridgegan`] draws them, so the two see the same data). One step:
//!
//! - `n_critic` D steps, each on a fresh batch: L_D = −E D_src(x) + E D_src(G(x, c_t)) +
//!   λ_cls·L_cls(D_cls(x), c_s) + λ_gp·E(‖∇D_src(x̂)‖ − 1)², x̂ = u·x + (1 − u)·G(x, c_t);
//! - one G step: L_G = −E D_src(G(x, c_t)) + λ_cls·L_cls(D_cls(G(x, c_t)), c_t) +
//!   λ_rec·|x − G(G(x, c_t), c_s)|₁.
//!
//! L_cls is the official CelebA classification loss: binary cross-entropy summed over the
//! attributes and averaged over the batch. Weights λ_cls 1, λ_rec 10, λ_gp 10; `n_critic`
//! 5; Adam 1e-4, β (0.5, 0.999), constant (the official code decays linearly over the
//! last 100k of 200k iterations).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::attribute_data::{self, AttributeData, AttributeModel};
use super::{Curve, Mode, Outputs, Scalars, StepContext, Task};
use crate::data::attributes::AttributeDataConfig;
use crate::error::{GanError, Result};
use crate::models::stargan::{StarDiscriminator, StarGanModelConfig, StarGenerator};
use crate::objectives::penalties::gradient_penalty;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::OptimizerConfig;
use crate::train::step_seed;

/// `[stargan.optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StarGanOptim {
    /// G (Adam 1e-4, β (0.5, 0.999)).
    pub g: OptimizerConfig,
    /// D (as G).
    pub d: OptimizerConfig,
}

impl Default for StarGanOptim {
    fn default() -> Self {
        let adam = OptimizerConfig {
            beta1: 0.5,
            ..OptimizerConfig::adam(1e-4)
        };
        Self {
            g: adam.clone(),
            d: adam,
        }
    }
}

/// `[stargan]`: the task's section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StarGanConfig {
    /// λ_cls.
    pub cls_weight: f64,
    /// λ_rec.
    pub rec_weight: f64,
    /// λ_gp.
    pub gp_weight: f64,
    /// D steps per G step.
    pub n_critic: i64,
    /// Fixed test images shown in the grids.
    pub probes: i64,
    /// The attribute data.
    pub data: AttributeDataConfig,
    /// Network widths.
    pub model: StarGanModelConfig,
    /// Optimizers.
    pub optim: StarGanOptim,
}

impl Default for StarGanConfig {
    fn default() -> Self {
        Self {
            cls_weight: 1.0,
            rec_weight: 10.0,
            gp_weight: 10.0,
            n_critic: 5,
            probes: 8,
            data: AttributeDataConfig::default(),
            model: StarGanModelConfig::default(),
            optim: StarGanOptim::default(),
        }
    }
}

impl StarGanConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (f, v) in [
            ("cls_weight", self.cls_weight),
            ("rec_weight", self.rec_weight),
            ("gp_weight", self.gp_weight),
        ] {
            if !(0.0..=1e5).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [0, 100000], got {v}"),
                ));
            }
        }
        for (f, v, hi) in [("n_critic", self.n_critic, 20), ("probes", self.probes, 64)] {
            if !(1..=hi).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [1, {hi}], got {v}"),
                ));
            }
        }
        self.data.validate(&format!("{prefix}.data"))?;
        self.model
            .validate(&format!("{prefix}.model"), self.data.image_size)?;
        self.optim.g.validate(&format!("{prefix}.optim.g"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// Binary cross-entropy of logits against targets, summed over attributes and averaged over
/// the batch (the official CelebA `classification_loss`).
pub fn cls_loss(logits: &Tensor, y: &Tensor) -> Tensor {
    super::bridgegan::bce_elements(logits, y).sum(Kind::Float) / logits.size()[0] as f64
}

/// The task (see module docs).
#[derive(Debug)]
pub struct StarGan {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    g: StarGenerator,
    d: StarDiscriminator,
    data: AttributeData,
}

impl StarGan {
    /// The task of a validated config; `Mode::Train` loads the data.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.stargan;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let (k, size) = (c.data.attributes.len() as i64, c.data.image_size);
        let g_vs = nn::VarStore::new(device);
        let d_vs = nn::VarStore::new(device);
        let g = StarGenerator::new(g_vs.root() / "g", &c.model, k);
        let d = StarDiscriminator::new(d_vs.root() / "d", &c.model, k, size);
        let mut groups = Groups::default();
        groups.push(Group::new("g", g_vs, c.optim.g.clone(), cfg.run.ema_beta)?);
        groups.push(Group::new("d", d_vs, c.optim.d.clone(), 0.0)?);
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            g,
            d,
            data: AttributeData::new(&c.data, c.probes, cfg.run.seed, mode, device)?,
        })
    }

    fn d_step(&mut self) -> Result<Scalars> {
        let c = self.cfg.stargan.clone();
        let b = self.data.batch(self.cfg.run.batch_size)?;
        let m = b.x.size()[0];
        let fake = tch::no_grad(|| self.g.forward(&b.x, &b.y_t));
        let (src, cls) = self.d.forward(&Tensor::cat(&[&b.x, &fake], 0));
        let real_src = src.narrow(0, 0, m).mean(Kind::Float);
        let fake_src = src.narrow(0, m, m).mean(Kind::Float);
        let d_cls = cls_loss(&cls.narrow(0, 0, m), &b.y_s) * c.cls_weight;
        let eps = crate::dist::rand(&[m], (Kind::Float, self.device));
        let d = &self.d;
        let gp = gradient_penalty(&|x| d.forward(x).0, &b.x, &fake, &eps, c.gp_weight);
        let loss = -&real_src + &fake_src + &d_cls + &gp;
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        let mut s = Scalars::new();
        let wd = &real_src - &fake_src;
        for (k, v) in [
            ("loss_d", &loss),
            ("wd", &wd),
            ("gp", &gp),
            ("loss_d_cls", &d_cls),
        ] {
            s.push(k, v.double_value(&[]));
        }
        Ok(s)
    }

    fn g_step(&mut self) -> Result<Scalars> {
        let c = self.cfg.stargan.clone();
        let b = self.data.batch(self.cfg.run.batch_size)?;
        self.groups.get("d").opt().set_requires_grad(false);
        let fake = self.g.forward(&b.x, &b.y_t);
        let (src, cls) = self.d.forward(&fake);
        let g_adv = -src.mean(Kind::Float);
        let g_cls = cls_loss(&cls, &b.y_t) * c.cls_weight;
        let rec = (self.g.forward(&fake, &b.y_s) - &b.x)
            .abs()
            .mean(Kind::Float)
            * c.rec_weight;
        let loss = &g_adv + &g_cls + &rec;
        let opt = self.groups.get_mut("g").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        self.groups.get("d").opt().set_requires_grad(true);
        let mut s = Scalars::new();
        for (k, v) in [
            ("loss_g", &loss),
            ("loss_g_adv", &g_adv),
            ("loss_g_cls", &g_cls),
            ("loss_rec", &rec),
        ] {
            s.push(k, v.double_value(&[]));
        }
        Ok(s)
    }
}

impl Task for StarGan {
    fn kind(&self) -> &'static str {
        "stargan"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let mut s = Scalars::new();
        for _ in 0..self.cfg.stargan.n_critic {
            s = self.d_step()?;
        }
        s.extend(self.g_step()?);
        Ok(s)
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        attribute_data::visuals(self)
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        attribute_data::evaluate(self)
    }

    fn status(&self, s: &Scalars) -> String {
        attribute_data::status(s)
    }

    fn curves(&self) -> Vec<Curve> {
        attribute_data::curves(vec!["loss_g_adv", "loss_g_cls", "loss_rec"])
    }

    fn editor(&self) -> Option<&dyn super::AttributeEditor> {
        Some(self)
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        attribute_data::finish(self, dir)
    }
}

impl AttributeModel for StarGan {
    fn data(&self) -> &AttributeData {
        &self.data
    }

    fn device(&self) -> Device {
        self.device
    }

    fn has_reference(&self) -> bool {
        false
    }

    /// G(x, y_t) with the EMA weights where kept; StarGAN takes no reference.
    fn generate(&self, x: &Tensor, _: &Tensor, y_t: &Tensor, _: Option<&Tensor>, _: f64) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.groups.get("g").with_ema(|| self.g.forward(x, y_t))
    }

    fn logits(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.d.forward(x).1
    }

    fn eval_samples(&self) -> i64 {
        self.cfg.run.eval_samples
    }
}
