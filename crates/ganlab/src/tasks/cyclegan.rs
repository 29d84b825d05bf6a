//! CycleGAN (Zhu et al. 2017; gan-lecture.txt "CycleGAN"): unpaired translation between
//! domains A and B with two generators G_A: A → B, G_B: B → A ([`crate::models::resnet`]) and
//! two 70×70 PatchGANs with instance norm ([`crate::models::patchgan`]): D_A judges domain B
//! (real B vs G_A(A)), D_B judges domain A — the reference's naming. As the reference
//! implementation (pytorch-CycleGAN-and-pix2pix `cycle_gan_model.py`,
//! ../shared/specs/translation.md §3), one step:
//!
//! 1. G first, with both Ds frozen: fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B),
//!    rec_B = G_A(fake_A);
//!    L_G = (D_A(fake_B) − 1)² + (D_B(fake_A) − 1)² + λ_A|rec_A − A|₁ + λ_B|rec_B − B|₁
//!    + λ_idt·(λ_B|G_A(B) − B|₁ + λ_A|G_B(A) − A|₁) (means over pixels and patches);
//! 2. then each D on real images and on a history of fakes ([`ImagePool`], 50 images, the
//!    0.5 swap rule): L_D_A = 0.5·[(D_A(B) − 1)² + D_A(pool_B(fake_B))²], L_D_B likewise.
//!
//! λ_A = λ_B = 10, λ_idt = 0.5; Adam 2e-4 β (0.5, 0.999), one optimizer over both Gs and one
//! over both Ds (as the reference's `itertools.chain`), lr constant for half the run then
//! linear decay; batch 1; 286 → 256 crop and flip.
//!
//! With `[diffusion] enabled = true` every D input passes the Diffusion-GAN augment stage
//! (real and pooled fake images of a D share one t-list), each D takes t, and both Ds' votes
//! on real images drive one adaptive T (one controller per task: both Ds face the same
//! generator pair and budget).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::unpaired::{l1, lsgan_sign_sum, mse, Direction, Domains};
use super::{Curve, Mode, Outputs, Scalars, StepContext, Task, Translator};
use crate::data::unpaired::{ImagePool, UnpairedDataConfig};
use crate::diffusion::Diffusion;
use crate::error::{GanError, Result};
use crate::models::patchgan::{PatchGan, PatchGanConfig, PatchNorm};
use crate::models::resnet::{ResnetConfig, ResnetGenerator};
use crate::rng::mix64;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::{LrSchedule, OptimizerConfig};
use crate::train::step_seed;

/// `[cyclegan.optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CycleGanOptim {
    /// Both generators (reference: Adam 2e-4, β (0.5, 0.999), linear decay in the second
    /// half).
    pub g: OptimizerConfig,
    /// Both discriminators (as G).
    pub d: OptimizerConfig,
}

impl Default for CycleGanOptim {
    fn default() -> Self {
        let adam = OptimizerConfig {
            schedule: LrSchedule::Linear,
            ..OptimizerConfig::adam(2e-4)
        };
        Self {
            g: adam.clone(),
            d: adam,
        }
    }
}

/// `[cyclegan]`: the task's section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CycleGanConfig {
    /// Weight of the A → B → A cycle loss (reference: 10).
    pub lambda_a: f64,
    /// Weight of the B → A → B cycle loss (reference: 10).
    pub lambda_b: f64,
    /// Identity loss weight relative to λ (reference: 0.5; 0 = off).
    pub lambda_identity: f64,
    /// Images in each history pool (reference: 50; 0 = no pool).
    pub pool_size: i64,
    /// Fixed probe images per domain shown in the grids.
    pub probes: i64,
    /// Unpaired data.
    pub data: UnpairedDataConfig,
    /// Both generators.
    pub generator: ResnetConfig,
    /// Both discriminators (instance norm).
    pub discriminator: PatchGanConfig,
    /// Optimizers.
    pub optim: CycleGanOptim,
}

impl Default for CycleGanConfig {
    fn default() -> Self {
        Self {
            lambda_a: 10.0,
            lambda_b: 10.0,
            lambda_identity: 0.5,
            pool_size: 50,
            probes: 8,
            data: UnpairedDataConfig::default(),
            generator: ResnetConfig::default(),
            discriminator: PatchGanConfig {
                norm: PatchNorm::Instance,
                ..Default::default()
            },
            optim: CycleGanOptim::default(),
        }
    }
}

impl CycleGanConfig {
    /// Checks every field; `prefix` is the section name in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        for (f, v) in [
            ("lambda_a", self.lambda_a),
            ("lambda_b", self.lambda_b),
            ("lambda_identity", self.lambda_identity),
        ] {
            if !(0.0..=1e4).contains(&v) {
                return err(f, format!("must be in [0, 10000], got {v}"));
            }
        }
        if !(0..=1000).contains(&self.pool_size) {
            return err(
                "pool_size",
                format!("must be in [0, 1000], got {}", self.pool_size),
            );
        }
        if !(1..=64).contains(&self.probes) {
            return err("probes", format!("must be in [1, 64], got {}", self.probes));
        }
        self.data.validate(&format!("{prefix}.data"))?;
        self.generator.validate(&format!("{prefix}.generator"))?;
        self.discriminator
            .validate(&format!("{prefix}.discriminator"), self.data.image_size)?;
        self.optim.g.validate(&format!("{prefix}.optim.g"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// The CycleGAN task (see module docs).
#[derive(Debug)]
pub struct CycleGan {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    /// G_A: A → B and G_B: B → A.
    g: [ResnetGenerator; 2],
    /// D_A (judges B) and D_B (judges A).
    d: [PatchGan; 2],
    /// Histories of fake B (for D_A) and fake A (for D_B).
    pools: [ImagePool; 2],
    diffusion: Diffusion,
    domains: Domains,
}

impl CycleGan {
    /// The task of a validated config; `Mode::Train` loads the data.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.cyclegan;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let ch = c.data.channels;
        let g_vs = nn::VarStore::new(device);
        let g = [
            c.generator.init(g_vs.root() / "g_a", ch, ch),
            c.generator.init(g_vs.root() / "g_b", ch, ch),
        ];
        let d_vs = nn::VarStore::new(device);
        let with_t = cfg.diffusion.enabled;
        let d = [
            c.discriminator.init(d_vs.root() / "d_a", ch, with_t),
            c.discriminator.init(d_vs.root() / "d_b", ch, with_t),
        ];
        let mut groups = Groups::default();
        groups.push(Group::new("g", g_vs, c.optim.g.clone(), cfg.run.ema_beta)?);
        groups.push(Group::new("d", d_vs, c.optim.d.clone(), 0.0)?);
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            g,
            d,
            pools: [ImagePool::new(c.pool_size), ImagePool::new(c.pool_size)],
            diffusion: Diffusion::new(cfg.diffusion.clone(), mix64(cfg.run.seed ^ 0xD1FF)),
            domains: Domains::new(&c.data, c.probes, cfg.run.seed, mode, device)?,
        })
    }

    /// The generator of `d` (G_A for a2b).
    fn gen(&self, d: Direction) -> &ResnetGenerator {
        &self.g[(d == Direction::B2a) as usize]
    }

    /// G(x) for direction `d` without gradient, with the EMA weights where kept.
    fn translate_dir(&self, x: &Tensor, d: Direction) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.groups
            .get("g")
            .with_ema(|| self.gen(d).forward_t(x, false))
    }

    /// Input | translated | reconstructed for probes `x` of direction `d`.
    fn columns(&self, x: &Tensor, d: Direction) -> Result<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        Ok(self.groups.get("g").with_ema(|| {
            let y = self.gen(d).forward_t(x, false);
            let back = if d == Direction::A2b {
                Direction::B2a
            } else {
                Direction::A2b
            };
            let r = self.gen(back).forward_t(&y, false);
            vec![x.shallow_clone(), y, r]
        }))
    }

    /// D's adversarial loss on `real` and pooled `fake` images through the augment stage,
    /// and D's votes on the real ones.
    fn d_loss(&mut self, k: usize, real: &Tensor, fake: &Tensor) -> Result<(Tensor, f64)> {
        let m = real.size()[0];
        let n = fake.size()[0];
        let (yy, t) = self.diffusion.augment(&[real, fake])?;
        let (pr, pf) = if self.cfg.cyclegan.discriminator.norm == PatchNorm::Instance {
            // Per-image normalisation: real and fake in one pass, as two passes would score.
            let p = self.d[k].forward(&yy, &Tensor::cat(&[&t, &t], 0));
            (p.narrow(0, 0, m), p.narrow(0, m, n))
        } else {
            (
                self.d[k].forward(&yy.narrow(0, 0, m), &t),
                self.d[k].forward(&yy.narrow(0, m, n), &t),
            )
        };
        Ok(((mse(&pr, 1.0) + mse(&pf, 0.0)) * 0.5, lsgan_sign_sum(&pr)))
    }
}

impl Task for CycleGan {
    fn kind(&self) -> &'static str {
        "cyclegan"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let c = self.cfg.cyclegan.clone();
        let m = self.cfg.run.batch_size;
        let (a, b) = self.domains.sample(m)?;
        // G_A and G_B with both Ds frozen. The generators normalise per image (instance
        // norm), so the reference's six calls run as three batched ones with the same result:
        // G_A([a, b]) → fake_B, idt_A; G_B([b, a, fake_B]) → fake_A, idt_B, rec_A; G_A(fake_A).
        let idt = c.lambda_identity > 0.0;
        let split = |y: Tensor, parts: i64| -> Vec<Tensor> {
            y.split(m, 0).into_iter().take(parts as usize).collect()
        };
        let in_a = if idt {
            Tensor::cat(&[&a, &b], 0)
        } else {
            a.shallow_clone()
        };
        let out_a = split(self.g[0].forward_t(&in_a, true), 2);
        let fake_b = out_a[0].shallow_clone();
        let in_b = if idt {
            Tensor::cat(&[&b, &a, &fake_b], 0)
        } else {
            Tensor::cat(&[&b, &fake_b], 0)
        };
        let out_b = split(self.g[1].forward_t(&in_b, true), 3);
        let fake_a = out_b[0].shallow_clone();
        let rec_a = out_b.last().expect("three outputs").shallow_clone();
        let rec_b = self.g[0].forward_t(&fake_a, true);
        self.groups.get("d").opt().set_requires_grad(false);
        let (yb, tb) = self.diffusion.augment(&[&fake_b])?;
        let (ya, ta) = self.diffusion.augment(&[&fake_a])?;
        let gan_a = mse(&self.d[0].forward(&yb, &tb), 1.0);
        let gan_b = mse(&self.d[1].forward(&ya, &ta), 1.0);
        let cycle_a = l1(&rec_a, &a) * c.lambda_a;
        let cycle_b = l1(&rec_b, &b) * c.lambda_b;
        let mut loss_g = &gan_a + &gan_b + &cycle_a + &cycle_b;
        let mut s = Scalars::new();
        if idt {
            let idt_a = l1(&out_a[1], &b) * (c.lambda_b * c.lambda_identity);
            let idt_b = l1(&out_b[1], &a) * (c.lambda_a * c.lambda_identity);
            s.push("loss_idt_a", idt_a.double_value(&[]));
            s.push("loss_idt_b", idt_b.double_value(&[]));
            loss_g += idt_a + idt_b;
        }
        let opt = self.groups.get_mut("g").opt_mut();
        opt.zero_grad();
        loss_g.backward();
        opt.step()?;
        self.groups.get("d").opt().set_requires_grad(true);
        // D_A on real B vs the history of fake B; D_B on real A vs fake A.
        let pooled_b = self.pools[0].query(&fake_b);
        let pooled_a = self.pools[1].query(&fake_a);
        let (loss_da, votes_a) = self.d_loss(0, &b, &pooled_b)?;
        let (loss_db, votes_b) = self.d_loss(1, &a, &pooled_a)?;
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        (&loss_da + &loss_db).backward();
        opt.step()?;
        self.diffusion
            .observe_real(votes_a + votes_b, 2 * m as u64)?;
        for (k, v) in [
            ("loss_g", &loss_g),
            ("loss_g_a", &gan_a),
            ("loss_g_b", &gan_b),
            ("loss_cycle_a", &cycle_a),
            ("loss_cycle_b", &cycle_b),
            ("loss_d_a", &loss_da),
            ("loss_d_b", &loss_db),
        ] {
            s.push(k, v.double_value(&[]));
        }
        Ok(s)
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
        self.diffusion = super::restore_diffusion(&self.cfg.diffusion, state, "cyclegan")?;
        Ok(())
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        ["pool_b", "pool_a"]
            .iter()
            .zip(&self.pools)
            .filter_map(|(k, p)| Some((k.to_string(), p.to_tensor()?)))
            .collect()
    }

    fn restore_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        let shape = self.domains.image_shape();
        for (k, pool) in ["pool_b", "pool_a"].iter().zip(&mut self.pools) {
            if let Some(t) = crate::io::named(tensors, k) {
                pool.restore(
                    t,
                    &shape,
                    self.device,
                    Path::new(&format!("checkpoint {k}")),
                )?;
            }
        }
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        self.domains.visuals(&|x, d| self.columns(x, d))
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        let limit = self.cfg.run.eval_samples;
        self.domains
            .test_cycle(limit, &|x, d| Ok(self.columns(x, d)?.remove(2)))
    }

    fn status(&self, s: &Scalars) -> String {
        let v = |k| s.get(k).unwrap_or(f64::NAN);
        format!(
            "loss_g={:.3} cyc={:.3} loss_d={:.3}",
            v("loss_g"),
            v("loss_cycle_a") + v("loss_cycle_b"),
            v("loss_d_a") + v("loss_d_b")
        )
    }

    fn curves(&self) -> Vec<Curve> {
        vec![
            Curve {
                title: "adversarial losses",
                ylabel: "LSGAN loss",
                series: vec!["loss_g_a", "loss_g_b", "loss_d_a", "loss_d_b"],
            },
            Curve {
                title: "cycle and identity losses (weighted)",
                ylabel: "λ·L1",
                series: vec!["loss_cycle_a", "loss_cycle_b", "loss_idt_a", "loss_idt_b"],
            },
        ]
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        super::unpaired::finish(
            &self.domains,
            &self.diffusion,
            self.cfg.diffusion.enabled,
            dir,
            "input | translated | reconstructed",
            &|x, d| self.columns(x, d),
            &|x, d| Ok(self.translate_dir(x, d)),
        )
    }

    fn translator(&self) -> Option<&dyn Translator> {
        Some(self)
    }
}

impl super::unpaired::UnpairedTask for CycleGan {
    fn domains(&self) -> &Domains {
        &self.domains
    }

    fn device(&self) -> Device {
        self.device
    }

    fn translate_dir(&self, x: &Tensor, d: Direction) -> Tensor {
        CycleGan::translate_dir(self, x, d)
    }
}
