//! U-GAT-IT (Kim et al. 2020; the base model of LaDiffGAN, ladiffgan-supplement.txt
//! eqs. S4–S7): unpaired translation with attention (CAM) and AdaLIN
//! ([`crate::models::ugatit`]). As the PyTorch reference (UGATIT-pytorch `UGATIT.py`;
//! ../shared/specs/translation.md §2), one step:
//!
//! 1. the four discriminators first (global and local, per domain; each returns patch logits
//!    and CAM logits η_D): L_D = w_adv·Σ_D [(D(x) − 1)² + D(G(y))² + (η_D(x) − 1)² + η_D(G(y))²];
//! 2. then both generators with the Ds frozen:
//!    L_G = w_adv·Σ_D [(D(G(y)) − 1)² + (η_D(G(y)) − 1)²] + w_cyc·(|G_ba(G_ab(a)) − a|₁ + …) +
//!    w_idt·(|G_ba(a) − a|₁ + |G_ab(b) − b|₁) +
//!    w_cam·Σ_G [BCE(η_G(source image), 1) + BCE(η_G(target-domain image), 0)];
//!    G's CAM tells the other domain's input (translation) from its own (identity);
//! 3. every ρ of AdaILN and ILN is clamped to [0, 1] (`RhoClipper`).
//!
//! Weights 1 / 10 / 10 / 1000; Adam 1e-4, β (0.5, 0.999), weight decay 1e-4 (PyTorch's
//! coupled L2), one optimizer over both Gs and one over the four Ds; lr constant for half the
//! run then decaying linearly to ~0 (the reference subtracts lr₀/(iterations/2) per step after
//! the half; our `linear` schedule is the same line to within one step). The fakes of the D
//! update are those of the G update (G does not change in between; the reference recomputes
//! them), and a D sees real and fake images in one batch (one spectral-norm power iteration
//! per D update; the reference's two calls make two).
//!
//! With `[diffusion] enabled = true` every D input passes the Diffusion-GAN augment stage
//! (the real and fake images a D pair of a domain sees share one t-list; the global and local
//! D of a domain see the same noisy images), each D takes t, and the Ds' votes on real images
//! (mean patch output vs 0.5) drive one adaptive T — the seed's Fig. A setting (U-GAT-IT with
//! and without Diffusion-GAN).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::unpaired::{heatmap_image, l1, lsgan_sign_sum, mse, Direction, Domains};
use super::{Curve, Mode, Outputs, Scalars, StepContext, Task, Translator};
use crate::data::unpaired::UnpairedDataConfig;
use crate::diffusion::Diffusion;
use crate::error::{GanError, Result};
use crate::models::ugatit::{
    UgatitDiscriminator, UgatitDiscriminatorConfig, UgatitGenerator, UgatitGeneratorConfig,
};
use crate::nn::norm::{clip_rho, mean_rho};
use crate::rng::mix64;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::{LrSchedule, OptimizerConfig};
use crate::train::step_seed;

/// `[ugatit.optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UgatitOptim {
    /// Both generators (reference: Adam 1e-4, β (0.5, 0.999), weight decay 1e-4, linear
    /// decay in the second half).
    pub g: OptimizerConfig,
    /// The four discriminators (as G).
    pub d: OptimizerConfig,
}

impl Default for UgatitOptim {
    fn default() -> Self {
        let adam = OptimizerConfig {
            schedule: LrSchedule::Linear,
            weight_decay: 1e-4,
            ..OptimizerConfig::adam(1e-4)
        };
        Self {
            g: adam.clone(),
            d: adam,
        }
    }
}

/// `[ugatit]`: the task's section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UgatitConfig {
    /// Weight of the adversarial terms (reference: 1).
    pub adv_weight: f64,
    /// Weight of the cycle terms (reference: 10).
    pub cycle_weight: f64,
    /// Weight of the identity terms (reference: 10).
    pub identity_weight: f64,
    /// Weight of G's CAM terms (reference: 1000).
    pub cam_weight: f64,
    /// Fixed probe images per domain shown in the grids.
    pub probes: i64,
    /// Unpaired data.
    pub data: UnpairedDataConfig,
    /// Both generators.
    pub generator: UgatitGeneratorConfig,
    /// The global and local discriminators of both domains.
    pub discriminator: UgatitDiscriminatorConfig,
    /// Optimizers.
    pub optim: UgatitOptim,
}

impl Default for UgatitConfig {
    fn default() -> Self {
        Self {
            adv_weight: 1.0,
            cycle_weight: 10.0,
            identity_weight: 10.0,
            cam_weight: 1000.0,
            probes: 8,
            data: UnpairedDataConfig::default(),
            generator: UgatitGeneratorConfig::default(),
            discriminator: UgatitDiscriminatorConfig::default(),
            optim: UgatitOptim::default(),
        }
    }
}

impl UgatitConfig {
    /// Checks every field; `prefix` is the section name in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (f, v) in [
            ("adv_weight", self.adv_weight),
            ("cycle_weight", self.cycle_weight),
            ("identity_weight", self.identity_weight),
            ("cam_weight", self.cam_weight),
        ] {
            if !(0.0..=1e5).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [0, 100000], got {v}"),
                ));
            }
        }
        if !(1..=64).contains(&self.probes) {
            return Err(GanError::config(
                format!("{prefix}.probes"),
                format!("must be in [1, 64], got {}", self.probes),
            ));
        }
        let size = self.data.image_size;
        self.data.validate(&format!("{prefix}.data"))?;
        self.generator
            .validate(&format!("{prefix}.generator"), size)?;
        self.discriminator
            .validate(&format!("{prefix}.discriminator"), size)?;
        self.optim.g.validate(&format!("{prefix}.optim.g"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// BCE with logits against an all-`target` label (mean).
pub(crate) fn bce(logits: &Tensor, target: bool) -> Tensor {
    // BCE(x, 1) = softplus(−x), BCE(x, 0) = softplus(x).
    if target {
        (-logits).softplus().mean(Kind::Float)
    } else {
        logits.softplus().mean(Kind::Float)
    }
}

/// What a method built on U-GAT-IT adds to its step (LaDiffGAN's latent terms). Images are
/// indexed by their source domain (A = 0, B = 1): `real = [a, b]`,
/// `fake = [G_ab(a), G_ba(b)]`, so `fake[k]` lies in the other domain. Both hooks get the
/// task's groups, where the method's own optimizers live.
pub trait Supervision {
    /// After U-GAT-IT's D update: updates the method's own discriminators on the real
    /// images `real = [a, b]` and the detached translations `fake = [G_ab(a), G_ba(b)]`.
    fn d_step(
        &mut self,
        groups: &mut Groups,
        real: [&Tensor; 2],
        fake: [&Tensor; 2],
    ) -> Result<Scalars>;
    /// The method's weighted G terms on the translations (with gradient), named for the log;
    /// they are added to L_G.
    fn g_terms(
        &mut self,
        groups: &mut Groups,
        real: [&Tensor; 2],
        fake: [&Tensor; 2],
    ) -> Result<Vec<(&'static str, Tensor)>>;
}

/// The U-GAT-IT task (see module docs).
#[derive(Debug)]
pub struct Ugatit {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    /// G_ab and G_ba.
    g: [UgatitGenerator; 2],
    /// Per domain (A, B): the global and the local D.
    d: [[UgatitDiscriminator; 2]; 2],
    diffusion: Diffusion,
    domains: Domains,
}

impl Ugatit {
    /// The task of a validated config; `Mode::Train` loads the data.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.ugatit;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let (ch, size) = (c.data.channels, c.data.image_size);
        let g_vs = nn::VarStore::new(device);
        let g = [
            c.generator.init(g_vs.root() / "g_ab", ch, ch, size),
            c.generator.init(g_vs.root() / "g_ba", ch, ch, size),
        ];
        let d_vs = nn::VarStore::new(device);
        let dc = &c.discriminator;
        let with_t = cfg.diffusion.enabled;
        let pair = |dom: &str| {
            [
                dc.init(
                    d_vs.root() / format!("d_g{dom}"),
                    ch,
                    dc.global_layers,
                    with_t,
                ),
                dc.init(
                    d_vs.root() / format!("d_l{dom}"),
                    ch,
                    dc.local_layers,
                    with_t,
                ),
            ]
        };
        let d = [pair("a"), pair("b")];
        let mut groups = Groups::default();
        groups.push(Group::new("g", g_vs, c.optim.g.clone(), cfg.run.ema_beta)?);
        groups.push(Group::new("d", d_vs, c.optim.d.clone(), 0.0)?);
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            g,
            d,
            diffusion: Diffusion::new(cfg.diffusion.clone(), mix64(cfg.run.seed ^ 0xD1FF)),
            domains: Domains::new(&c.data, c.probes, cfg.run.seed, mode, device)?,
        })
    }

    fn gen(&self, d: Direction) -> &UgatitGenerator {
        &self.g[(d == Direction::B2a) as usize]
    }

    /// Input | attention heat map | translated | reconstructed for probes `x` of `d`.
    fn columns(&self, x: &Tensor, d: Direction) -> Result<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        let back = if d == Direction::A2b {
            Direction::B2a
        } else {
            Direction::A2b
        };
        Ok(self.groups.get("g").with_ema(|| {
            let o = self.gen(d).forward(x);
            let r = self.gen(back).forward(&o.out).out;
            let heat = heatmap_image(&o.heatmap, x.size()[2]);
            vec![x.shallow_clone(), heat, o.out, r]
        }))
    }

    fn translate_dir(&self, x: &Tensor, d: Direction) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.groups.get("g").with_ema(|| self.gen(d).forward(x).out)
    }

    /// One step (see module docs), with a method's extra terms when `sup` is given
    /// (LaDiffGAN): its own D update after U-GAT-IT's, its G terms added to L_G and logged.
    pub fn step_with(&mut self, mut sup: Option<&mut dyn Supervision>) -> Result<Scalars> {
        let c = self.cfg.ugatit.clone();
        let m = self.cfg.run.batch_size;
        let (a, b) = self.domains.sample(m)?;
        let ab = self.g[0].forward(&a);
        let ba = self.g[1].forward(&b);
        // The four Ds: domain A judges real A vs G_ba(b), domain B real B vs G_ab(a).
        let (d_a, votes_a) = self.adv(0, Some(&a), &ba.out.detach())?;
        let (d_b, votes_b) = self.adv(1, Some(&b), &ab.out.detach())?;
        let loss_d = (&d_a + &d_b) * c.adv_weight;
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        loss_d.backward();
        opt.step()?;
        self.diffusion
            .observe_real(votes_a + votes_b, 4 * m as u64)?;
        let mut extra_d = Scalars::new();
        if let Some(sup) = sup.as_deref_mut() {
            let fakes = [ab.out.detach(), ba.out.detach()];
            extra_d = sup.d_step(&mut self.groups, [&a, &b], [&fakes[0], &fakes[1]])?;
        }
        // Both Gs with the Ds frozen.
        self.groups.get("d").opt().set_requires_grad(false);
        let aba = self.g[1].forward(&ab.out).out;
        let bab = self.g[0].forward(&ba.out).out;
        let aa = self.g[1].forward(&a);
        let bb = self.g[0].forward(&b);
        let (g_adv_a, _) = self.adv(0, None, &ba.out)?;
        let (g_adv_b, _) = self.adv(1, None, &ab.out)?;
        let g_adv = (g_adv_a + g_adv_b) * c.adv_weight;
        let cycle = (l1(&aba, &a) + l1(&bab, &b)) * c.cycle_weight;
        let identity = (l1(&aa.out, &a) + l1(&bb.out, &b)) * c.identity_weight;
        let cam = (bce(&ba.cam_logit, true)
            + bce(&aa.cam_logit, false)
            + bce(&ab.cam_logit, true)
            + bce(&bb.cam_logit, false))
            * c.cam_weight;
        let mut loss_g = &g_adv + &cycle + &identity + &cam;
        let extra_g = match sup {
            Some(sup) => sup.g_terms(&mut self.groups, [&a, &b], [&ab.out, &ba.out])?,
            None => Vec::new(),
        };
        for (_, v) in &extra_g {
            loss_g += v;
        }
        let opt = self.groups.get_mut("g").opt_mut();
        opt.zero_grad();
        loss_g.backward();
        opt.step()?;
        clip_rho(self.groups.get("g").var_store());
        self.groups.get("d").opt().set_requires_grad(true);
        let mut s = Scalars::new();
        for (k, v) in [
            ("loss_d", &loss_d),
            ("loss_g", &loss_g),
            ("loss_g_adv", &g_adv),
            ("loss_cycle", &cycle),
            ("loss_identity", &identity),
            ("loss_cam", &cam),
        ] {
            s.push(k, v.double_value(&[]));
        }
        for (k, v) in &extra_g {
            s.push(k, v.double_value(&[]));
        }
        s.push("rho_mean", mean_rho(self.groups.get("g").var_store()));
        s.extend(extra_d);
        Ok(s)
    }

    /// The D loss terms of domain `k` (0: A, 1: B) on `real` and `fake` images and the Ds'
    /// votes on the real ones; `g_side`: G's terms on fakes only (targets 1).
    fn adv(&mut self, k: usize, real: Option<&Tensor>, fake: &Tensor) -> Result<(Tensor, f64)> {
        // Real and fake images share one t-list (t is repeated for the stacked batch).
        let (y, t) = match real {
            Some(r) => {
                let (y, t) = self.diffusion.augment(&[r, fake])?;
                (y, Tensor::cat(&[&t, &t], 0))
            }
            None => self.diffusion.augment(&[fake])?,
        };
        let m = fake.size()[0];
        let mut loss = Tensor::zeros([], (Kind::Float, self.device));
        let mut votes = 0.0;
        for d in &self.d[k] {
            let o = d.forward(&y, &t);
            match real {
                Some(_) => {
                    let (pr, pf) = (o.out.narrow(0, 0, m), o.out.narrow(0, m, m));
                    let (cr, cf) = (o.cam_logit.narrow(0, 0, m), o.cam_logit.narrow(0, m, m));
                    votes += lsgan_sign_sum(&pr);
                    loss = loss + mse(&pr, 1.0) + mse(&pf, 0.0) + mse(&cr, 1.0) + mse(&cf, 0.0);
                }
                None => loss = loss + mse(&o.out, 1.0) + mse(&o.cam_logit, 1.0),
            }
        }
        Ok((loss, votes))
    }
}

impl Task for Ugatit {
    fn kind(&self) -> &'static str {
        "ugatit"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        self.step_with(None)
    }

    fn may_be_nan(&self, name: &str) -> bool {
        name == "r_d"
    }

    fn end_step(&mut self) -> Scalars {
        let on = self.cfg.diffusion.enabled;
        super::diffusion_end_step(&mut self.diffusion, on, self.cfg.run.batch_size)
    }

    fn state(&self) -> Result<serde_json::Value> {
        super::diffusion_state(&self.diffusion)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.diffusion = super::restore_diffusion(&self.cfg.diffusion, state, "ugatit")?;
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        self.domains.visuals(&|x, d| self.columns(x, d))
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        let limit = self.cfg.run.eval_samples;
        self.domains
            .test_cycle(limit, &|x, d| Ok(self.columns(x, d)?.remove(3)))
    }

    fn status(&self, s: &Scalars) -> String {
        let v = |k| s.get(k).unwrap_or(f64::NAN);
        format!(
            "loss_g={:.3} cyc={:.3} loss_d={:.3}",
            v("loss_g"),
            v("loss_cycle"),
            v("loss_d")
        )
    }

    fn curves(&self) -> Vec<Curve> {
        vec![
            Curve {
                title: "adversarial losses",
                ylabel: "LSGAN loss (4 Ds)",
                series: vec!["loss_d", "loss_g_adv"],
            },
            Curve {
                title: "cycle, identity and CAM losses (weighted)",
                ylabel: "weighted loss",
                series: vec!["loss_cycle", "loss_identity", "loss_cam"],
            },
            Curve {
                title: "mean ρ of AdaILN / ILN",
                ylabel: "ρ (1: instance norm, 0: layer norm)",
                series: vec!["rho_mean"],
            },
        ]
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        super::unpaired::finish(
            &self.domains,
            &self.diffusion,
            self.cfg.diffusion.enabled,
            dir,
            "input | attention | translated | reconstructed",
            &|x, d| self.columns(x, d),
            &|x, d| Ok(self.translate_dir(x, d)),
        )
    }

    fn translator(&self) -> Option<&dyn Translator> {
        Some(self)
    }
}

impl super::unpaired::UnpairedTask for Ugatit {
    fn domains(&self) -> &Domains {
        &self.domains
    }

    fn device(&self) -> Device {
        self.device
    }

    fn translate_dir(&self, x: &Tensor, d: Direction) -> Tensor {
        Ugatit::translate_dir(self, x, d)
    }
}
