//! Multi-attribute translation bridging label- and reference-based synthesis (Huang et al.,
//! ICCV 2021; multi-attribute-translation-supplement.txt), as its official code trains it
//! (huangqiusheng/BridgeGAN `train_arch9.py`; ../shared/specs/translation.md §4). Networks:
//! [`crate::models::bridgegan`].
//!
//! With source images X_s, labels Y_s ∈ {0, 1}^k, and a reference batch that is the source
//! batch shuffled (X_r, with Y_t = its labels as the target):
//! - att_diff d = Y_t − Y_s ∈ {−1, 0, 1}^k;
//! - style maps, combined by addition: S_rand = E(X_s, −d) + M(R, d) (label-based, R ~ N(0,
//!   I)), S_ref = E(X_s, −d) + E(X_r, d) (reference-based), S_int = α·S_rand + (1 − α)·S_ref
//!   with α ~ U(0, 1) per image; X_g^{l,r,i} = G(X_s, S).
//!
//! D step (5 per G step, each on a fresh batch, fakes without gradient):
//! L_D = −(E D(X_s) − mean_k E D(X_g^k)) + λ_gp·mean_k GP(X_s, X_g^k) + BCE(C(X_s), Y_s),
//! GP at x̂ = X_s + u(X_g − X_s), u ~ U(0, 1) per image (WGAN-GP, λ_gp = 10).
//!
//! G step (G, M and E are one optimizer group, as the code's `G*` scopes), |·|₁ a mean:
//! - adversarial −mean_k E D(X_g^k); classification mean_k BCE(C(X_g^k), Y_t);
//! - L_rec = ½(|X_s − G(X_s, E(X_s, 0) + M(R, 0))|₁ + |X_s − G(X_s, E(X_s, 0) + E(X_r, 0))|₁);
//! - L_cyc = |S_rand − (E(sg X_g^l, d) + E(X_s, −d))|₁ + |S_ref − (E(sg X_g^r, d) + E(X_s,
//!   −d))|₁;
//! - L_ak (supplement eqs. 10–11, Fig. 1): att_ak = (1 − |d|) ⊙ (1 − 2·Y_s),
//!   L_ak = |E(X_g^l, att_ak) − E(X_s, att_ak)|₁;
//! - L_sty = |S_rand − S_ref|₁;
//! - L_ms = |R₁ − R|₁ / (|sg G(X_s, S_rand(R₁)) − G(X_s, S_rand(R))|₁ + 1e-5), R₁ a second
//!   draw (mode seeking).
//!
//! **Weights: the supplement's** (§C): λ_cls 10, λ_rec 100, λ_cyc 100, λ_ak 100, λ_sty 50,
//! λ_ms 0.005. The code weighs the *mean* of (cyc_rand, cyc_ref, ak) by 50 instead, i.e.
//! cyc_weight = ak_weight = 50/3 ≈ 16.667 per term here (configs/bridgegan-celeba128.toml
//! says how to switch). **Batch**: the supplement's 48 (the code: 60). **The noise table**:
//! the code keeps one R per training image (N(0, 1) at start) and, each G step, moves the
//! reference's R by r ← clip(r + (0.9/rms(g) + 5)·g, −1, 1), g = ∂ MSE(E(X_r, d), M(r, d))/∂r
//! — an ascent as written. The spec recommends fresh R (`noise_table = false`, default);
//! `noise_table = true` reproduces the code, the table saved with each checkpoint. Adam 2e-4,
//! β (0.5, 0.999), constant lr.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::attribute_data::{self, AttributeData, AttributeModel};
use super::{Curve, Mode, Outputs, Scalars, StepContext, Task};
use crate::data::attributes::AttributeDataConfig;
use crate::error::{GanError, Result};
use crate::models::bridgegan::{
    BridgeGenerator, BridgeModelConfig, DiscriminatorClassifier, MappingNetwork, StyleEncoder,
};
use crate::objectives::penalties::gradient_penalty;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::OptimizerConfig;
use crate::train::step_seed;

/// `[bridgegan.optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeOptim {
    /// G, M and E (Adam 2e-4, β (0.5, 0.999)).
    pub g: OptimizerConfig,
    /// D/C (as G).
    pub d: OptimizerConfig,
}

impl Default for BridgeOptim {
    fn default() -> Self {
        let adam = OptimizerConfig {
            beta1: 0.5,
            ..OptimizerConfig::adam(2e-4)
        };
        Self {
            g: adam.clone(),
            d: adam,
        }
    }
}

/// `[bridgegan]`: the task's section (see module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Weight of the adversarial terms, D's (−W + λ_gp·GP) and G's (supplement: 1). 0 trains
    /// D/C as a classifier only: a diagnostic of how fast C learns the attributes when the
    /// critic does not share its trunk (docs/ATTRIBUTES.md).
    pub adv_weight: f64,
    /// λ_cls of G's classification term.
    pub cls_weight: f64,
    /// Weight of D/C's classification term on real images (supplement and code: 1). The
    /// code's BCE is a mean over attributes; StarGAN's is a sum, i.e. this weight = k. At 1,
    /// C stays near the all-zeros floor for the first thousand steps on emoji
    /// (docs/ATTRIBUTES.md, "Why BridgeGAN does not edit yet").
    pub d_cls_weight: f64,
    /// Steps at the start in which D/C trains as a classifier only (n_critic classification
    /// updates on real images per step, no critic term, no G update), so that G's
    /// classification term meets a C that reads the attributes (supplement and code: 0, no
    /// warm-up). A CPU-scale aid, not the paper's: at 1,500 steps C stays near the all-zeros
    /// floor with the critic sharing its trunk, while alone it reaches 0.85 in 100 steps
    /// (docs/ATTRIBUTES.md). G trains `run.steps − c_warmup_steps` steps.
    pub c_warmup_steps: u64,
    /// λ_rec.
    pub rec_weight: f64,
    /// λ_cyc, per cycle term.
    pub cyc_weight: f64,
    /// λ_ak.
    pub ak_weight: f64,
    /// λ_sty.
    pub sty_weight: f64,
    /// λ_ms.
    pub ms_weight: f64,
    /// λ of WGAN-GP.
    pub gp_weight: f64,
    /// D steps per G step.
    pub n_critic: i64,
    /// The code's per-image noise table with its ascent (see module docs).
    pub noise_table: bool,
    /// Fixed test images shown in the grids.
    pub probes: i64,
    /// The attribute data.
    pub data: AttributeDataConfig,
    /// Network widths.
    pub model: BridgeModelConfig,
    /// Optimizers.
    pub optim: BridgeOptim,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            adv_weight: 1.0,
            cls_weight: 10.0,
            d_cls_weight: 1.0,
            c_warmup_steps: 0,
            rec_weight: 100.0,
            cyc_weight: 100.0,
            ak_weight: 100.0,
            sty_weight: 50.0,
            ms_weight: 0.005,
            gp_weight: 10.0,
            n_critic: 5,
            noise_table: false,
            probes: 8,
            data: AttributeDataConfig::default(),
            model: BridgeModelConfig::default(),
            optim: BridgeOptim::default(),
        }
    }
}

impl BridgeConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (f, v) in [
            ("adv_weight", self.adv_weight),
            ("cls_weight", self.cls_weight),
            ("d_cls_weight", self.d_cls_weight),
            ("rec_weight", self.rec_weight),
            ("cyc_weight", self.cyc_weight),
            ("ak_weight", self.ak_weight),
            ("sty_weight", self.sty_weight),
            ("ms_weight", self.ms_weight),
            ("gp_weight", self.gp_weight),
        ] {
            if !(0.0..=1e5).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [0, 100000], got {v}"),
                ));
            }
        }
        if self.c_warmup_steps > 1_000_000 {
            return Err(GanError::config(
                format!("{prefix}.c_warmup_steps"),
                format!("must be in [0, 1000000], got {}", self.c_warmup_steps),
            ));
        }
        if !(1..=20).contains(&self.n_critic) {
            return Err(GanError::config(
                format!("{prefix}.n_critic"),
                format!("must be in [1, 20], got {}", self.n_critic),
            ));
        }
        if !(1..=64).contains(&self.probes) {
            return Err(GanError::config(
                format!("{prefix}.probes"),
                format!("must be in [1, 64], got {}", self.probes),
            ));
        }
        self.data.validate(&format!("{prefix}.data"))?;
        self.model
            .validate(&format!("{prefix}.model"), self.data.image_size)?;
        self.optim.g.validate(&format!("{prefix}.optim.g"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// d = Y_t − Y_s.
pub fn att_diff(y_s: &Tensor, y_t: &Tensor) -> Tensor {
    y_t - y_s
}

/// att_ak = (1 − |d|) ⊙ (1 − 2·Y_s) (supplement eq. 11): the kept attributes (|d| = 0) with
/// the sign that flips them in E's convention, 0 for the edited ones.
pub fn att_ak(d: &Tensor, y_s: &Tensor) -> Tensor {
    (1.0 - d.abs()) * (1.0 - y_s * 2.0)
}

/// Mean absolute difference.
pub fn l1(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).abs().mean(Kind::Float)
}

/// Mean sigmoid cross-entropy of `logits` against targets `y` ∈ [0, 1] (TF's
/// `sigmoid_cross_entropy`): max(x, 0) − x·y + log(1 + e^−|x|).
pub fn bce_logits(logits: &Tensor, y: &Tensor) -> Tensor {
    bce_elements(logits, y).mean(Kind::Float)
}

/// Per-element sigmoid cross-entropy max(x, 0) − x·y + log(1 + e^−|x|) (stable for any x).
pub fn bce_elements(logits: &Tensor, y: &Tensor) -> Tensor {
    logits.relu() - logits * y + (-logits.abs()).exp().log1p()
}

/// L_ms = |r₁ − r|₁ / (|sg x₁ − x|₁ + 1e-5).
pub fn mode_seeking(r1: &Tensor, r: &Tensor, x1: &Tensor, x: &Tensor) -> Tensor {
    l1(r1, r) / (l1(&x1.detach(), x) + 1e-5)
}

/// The networks.
#[derive(Debug)]
pub struct BridgeNets {
    /// G.
    pub g: BridgeGenerator,
    /// M.
    pub m: MappingNetwork,
    /// E.
    pub e: StyleEncoder,
    /// D/C.
    pub dc: DiscriminatorClassifier,
}

/// The task (see module docs).
#[derive(Debug)]
pub struct BridgeGan {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    nets: BridgeNets,
    data: AttributeData,
    /// The code's per-image R (`noise_table`), [n_train, noise_dim].
    table: Option<Tensor>,
}

impl BridgeGan {
    /// The task of a validated config; `Mode::Train` loads the data.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.bridgegan;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let (k, size) = (c.data.attributes.len() as i64, c.data.image_size);
        let g_vs = nn::VarStore::new(device);
        let d_vs = nn::VarStore::new(device);
        let nets = BridgeNets {
            g: BridgeGenerator::new(g_vs.root() / "g_gen", &c.model),
            m: MappingNetwork::new(g_vs.root() / "g_map", &c.model, k, size),
            e: StyleEncoder::new(g_vs.root() / "g_enc", &c.model, k),
            dc: DiscriminatorClassifier::new(d_vs.root() / "dc", &c.model, k, size),
        };
        let mut groups = Groups::default();
        groups.push(Group::new("g", g_vs, c.optim.g.clone(), cfg.run.ema_beta)?);
        groups.push(Group::new("d", d_vs, c.optim.d.clone(), 0.0)?);
        let data = AttributeData::new(&c.data, c.probes, cfg.run.seed, mode, device)?;
        let table = (c.noise_table && data.train.is_some())
            .then(|| Tensor::randn([data.train_len(), c.model.noise_dim], (Kind::Float, device)));
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            nets,
            data,
            table,
        })
    }

    fn noise(&self, n: i64) -> Tensor {
        crate::dist::randn(
            &[n, self.cfg.bridgegan.model.noise_dim],
            (Kind::Float, self.device),
        )
    }

    /// (S_rand, S_ref, S_int, E(X_s, −d)) for batch `b` and noise `r`.
    fn styles(
        &self,
        b: &super::attribute_data::Batch,
        r: &Tensor,
    ) -> (Tensor, Tensor, Tensor, Tensor) {
        let n = &self.nets;
        let d = att_diff(&b.y_s, &b.y_t);
        let e_s = n.e.forward(&b.x, &(-&d));
        let s_rand = &e_s + n.m.forward(r, &d);
        let s_ref = &e_s + n.e.forward(&b.x_r, &d);
        let alpha = crate::dist::rand(&[b.x.size()[0], 1, 1, 1], (Kind::Float, self.device));
        let s_int = &alpha * &s_rand + (1.0 - &alpha) * &s_ref;
        (s_rand, s_ref, s_int, e_s)
    }

    /// One update of D/C's classification term alone on a real batch (`c_warmup_steps`).
    fn c_step(&mut self) -> Result<Scalars> {
        let c = &self.cfg.bridgegan;
        let b = self.data.batch(self.cfg.run.batch_size)?;
        let cls = self.nets.dc.classify(&b.x);
        let d_cls = bce_logits(&cls, &b.y_s) * c.d_cls_weight;
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        d_cls.backward();
        opt.step()?;
        Ok(Scalars::new().with("loss_d_cls", d_cls.double_value(&[])))
    }

    fn d_step(&mut self) -> Result<Scalars> {
        let c = self.cfg.bridgegan.clone();
        let b = self.data.batch(self.cfg.run.batch_size)?;
        let fakes = {
            let _guard = tch::no_grad_guard();
            let (s_rand, s_ref, s_int, _) = self.styles(&b, &self.noise(b.x.size()[0]));
            let x3 = b.x.repeat([3, 1, 1, 1]);
            self.nets
                .g
                .forward(&x3, &Tensor::cat(&[s_rand, s_ref, s_int], 0))
        };
        let m = b.x.size()[0];
        let (adv, cls) = self
            .nets
            .dc
            .forward_split(&Tensor::cat(&[&b.x, &fakes], 0), m);
        let wd = adv.narrow(0, 0, m).mean(Kind::Float) - adv.narrow(0, m, 3 * m).mean(Kind::Float);
        let eps = Tensor::rand([3 * m], (Kind::Float, self.device));
        let dc = &self.nets.dc;
        let gp = gradient_penalty(
            &|x| dc.critic(x),
            &b.x.repeat([3, 1, 1, 1]),
            &fakes,
            &eps,
            c.gp_weight,
        );
        let d_cls = bce_logits(&cls, &b.y_s) * c.d_cls_weight;
        let loss = (-&wd + &gp) * c.adv_weight + &d_cls;
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        let mut s = Scalars::new();
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

    /// The code's noise-table update for the references of `b`: the moved R (detached),
    /// also written back to the table.
    fn table_noise(&self, b: &super::attribute_data::Batch, d: &Tensor) -> Tensor {
        let mut table = self
            .table
            .as_ref()
            .expect("noise_table is on")
            .shallow_clone();
        let idx = b.ref_idx.to_device(self.device);
        let r0 = table.index_select(0, &idx).set_requires_grad(true);
        let target = self.nets.e.forward(&b.x_r, d).detach();
        let mse = (self.nets.m.forward(&r0, d) - target)
            .square()
            .mean(Kind::Float);
        let g = Tensor::run_backward(&[mse], &[&r0], false, false).remove(0);
        let rms = g.square().mean_dim(1, true, Kind::Float).sqrt();
        let step: Tensor = (0.9 / rms + 5.0) * g;
        let r = (r0.detach() + step).clamp(-1.0, 1.0);
        let _ = table.index_copy_(0, &idx, &r);
        r
    }

    fn g_step(&mut self) -> Result<Scalars> {
        let c = self.cfg.bridgegan.clone();
        let b = self.data.batch(self.cfg.run.batch_size)?;
        let m = b.x.size()[0];
        let d = att_diff(&b.y_s, &b.y_t);
        let r = if c.noise_table {
            self.table_noise(&b, &d)
        } else {
            self.noise(m)
        };
        let r1 = self.noise(m);
        self.groups.get("d").opt().set_requires_grad(false);
        let n = &self.nets;
        let (s_rand, s_ref, s_int, e_s) = self.styles(&b, &r);
        let zero = Tensor::zeros_like(&d);
        let e0 = n.e.forward(&b.x, &zero);
        let s_rand1 = &e_s + n.m.forward(&r1, &d);
        let s_rec_rand = &e0 + n.m.forward(&r, &zero);
        let s_rec_ref = &e0 + n.e.forward(&b.x_r, &zero);
        let styles = [&s_rand, &s_ref, &s_int, &s_rand1, &s_rec_rand, &s_rec_ref];
        let out =
            n.g.forward(&b.x.repeat([6, 1, 1, 1]), &Tensor::cat(&styles, 0));
        let part = |i: i64| out.narrow(0, i * m, m);
        let (x_l, x_ref) = (part(0), part(1));
        let (adv, cls) = n.dc.forward(&out.narrow(0, 0, 3 * m));
        let g_adv = -adv.mean(Kind::Float) * c.adv_weight;
        let g_cls = bce_logits(&cls, &b.y_t.repeat([3, 1])) * c.cls_weight;
        let rec = (l1(&b.x, &part(4)) + l1(&b.x, &part(5))) * (0.5 * c.rec_weight);
        let cyc = (l1(&s_rand, &(n.e.forward(&x_l.detach(), &d) + &e_s))
            + l1(&s_ref, &(n.e.forward(&x_ref.detach(), &d) + &e_s)))
            * c.cyc_weight;
        let ak = att_ak(&d, &b.y_s);
        let ak_loss = l1(&n.e.forward(&x_l, &ak), &n.e.forward(&b.x, &ak)) * c.ak_weight;
        let sty = l1(&s_rand, &s_ref) * c.sty_weight;
        let ms = mode_seeking(&r1, &r, &part(3), &x_l) * c.ms_weight;
        let loss = &g_adv + &g_cls + &rec + &cyc + &ak_loss + &sty + &ms;
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
            ("loss_cyc", &cyc),
            ("loss_ak", &ak_loss),
            ("loss_sty", &sty),
            ("loss_ms", &ms),
        ] {
            s.push(k, v.double_value(&[]));
        }
        Ok(s)
    }
}

impl BridgeGan {
    /// Label-based synthesis with the EMA weights where kept: G(x, E(x, −d) + M(R, d)),
    /// d = y_t − y_s, R drawn from libtorch's generator.
    pub fn label_based(&self, x: &Tensor, y_s: &Tensor, y_t: &Tensor) -> Tensor {
        self.synth(x, y_s, y_t, None, 1.0)
    }

    /// Reference-based synthesis: G(x, E(x, −d) + E(x_r, d)), the target attributes' style
    /// taken from the references `x_r`.
    pub fn reference_based(&self, x: &Tensor, y_s: &Tensor, y_t: &Tensor, x_r: &Tensor) -> Tensor {
        self.synth(x, y_s, y_t, Some(x_r), 0.0)
    }

    /// G(x, α·S_rand + (1 − α)·S_ref) (α = 1: label-based; 0: reference-based, which needs
    /// `x_r`).
    pub fn synth(
        &self,
        x: &Tensor,
        y_s: &Tensor,
        y_t: &Tensor,
        x_r: Option<&Tensor>,
        alpha: f64,
    ) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.groups.get("g").with_ema(|| {
            let n = &self.nets;
            let d = att_diff(y_s, y_t);
            let e_s = n.e.forward(x, &(-&d));
            let mut s = e_s.zeros_like();
            if alpha > 0.0 {
                s += n.m.forward(&self.noise(x.size()[0]), &d) * alpha;
            }
            if let (Some(r), true) = (x_r, alpha < 1.0) {
                s += n.e.forward(r, &d) * (1.0 - alpha);
            }
            n.g.forward(x, &(e_s + s))
        })
    }
}

impl Task for BridgeGan {
    fn kind(&self) -> &'static str {
        "bridgegan"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, ctx: StepContext) -> Result<Scalars> {
        let mut s = Scalars::new();
        if ctx.step <= self.cfg.bridgegan.c_warmup_steps {
            for _ in 0..self.cfg.bridgegan.n_critic {
                s = self.c_step()?;
            }
            return Ok(s);
        }
        for _ in 0..self.cfg.bridgegan.n_critic {
            s = self.d_step()?;
        }
        s.extend(self.g_step()?);
        Ok(s)
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.table
            .iter()
            .map(|t| ("noise_table".to_string(), t.shallow_clone()))
            .collect()
    }

    fn restore_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        let Some(table) = &mut self.table else {
            return Ok(());
        };
        let t = tensors
            .iter()
            .find(|(n, _)| n == "noise_table")
            .map(|(_, t)| t)
            .ok_or_else(|| GanError::Input("checkpoint: no task.noise_table".into()))?;
        if t.size() != table.size() || !bool::try_from(t.isfinite().all())? {
            return Err(GanError::Input(format!(
                "checkpoint: task.noise_table must be finite with shape {:?}, got {:?}",
                table.size(),
                t.size()
            )));
        }
        *table = t.to_device(self.device);
        Ok(())
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
        attribute_data::curves(vec![
            "loss_g_adv",
            "loss_g_cls",
            "loss_rec",
            "loss_cyc",
            "loss_ak",
            "loss_sty",
            "loss_ms",
        ])
    }

    fn editor(&self) -> Option<&dyn super::AttributeEditor> {
        Some(self)
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        attribute_data::finish(self, dir)
    }
}

impl AttributeModel for BridgeGan {
    fn data(&self) -> &AttributeData {
        &self.data
    }

    fn device(&self) -> Device {
        self.device
    }

    fn has_reference(&self) -> bool {
        true
    }

    fn generate(
        &self,
        x: &Tensor,
        y_s: &Tensor,
        y_t: &Tensor,
        x_r: Option<&Tensor>,
        alpha: f64,
    ) -> Tensor {
        self.synth(x, y_s, y_t, x_r, alpha)
    }

    fn logits(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.nets.dc.classify(x)
    }

    fn eval_samples(&self) -> i64 {
        self.cfg.run.eval_samples
    }
}
