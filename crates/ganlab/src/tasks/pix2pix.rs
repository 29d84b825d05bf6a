//! pix2pix (Isola et al. 2017; gan-lecture.txt "Image-to-image translation"): a conditional
//! GAN on paired data, G: x → y a U-Net ([`crate::models::unet`]) whose only noise is
//! dropout, D a PatchGAN ([`crate::models::patchgan`]) on the channel concatenation of input
//! and output, objective L_cGAN(G, D) + λ·L1(G), λ = 100. As the reference implementation
//! (pytorch-CycleGAN-and-pix2pix `pix2pix_model.py`, ../shared/specs/translation.md §3):
//!
//! - one step: fake = G(A); D update first, L_D = 0.5·[ℓ(D(A, fake), 0) + ℓ(D(A, B), 1)];
//!   then G with D frozen, L_G = ℓ(D(A, fake), 1) + λ·|fake − B|₁;
//! - ℓ is BCE-with-logits per patch ("vanilla") or MSE ("lsgan"); "none" trains the U-Net
//!   on L1 alone (the lecture's baseline for the adversarial term's effect; no D is built);
//! - Adam 2e-4, β (0.5, 0.999), lr constant for the first half then linear decay
//!   (`schedule = "linear"`, the reference's 100 + 100 epochs), batch 1, 286 → 256 random
//!   crop and flip.
//!
//! With `[diffusion] enabled = true`, real and fake pairs pass through the Diffusion-GAN
//! augment stage before D (one shared t-list), D takes t, and D's signs on real pairs drive
//! the adaptive T, as in the GAN task.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::{Curve, Mode, Outputs, Scalars, Section, StepContext, Task, Translator};
use crate::data::paired::{has_split, load_paired, PairedLayout, PairedSampler};
use crate::diffusion::Diffusion;
use crate::error::{GanError, Result};
use crate::models::patchgan::{PatchGan, PatchGanConfig};
use crate::models::unet::{UnetConfig, UnetGenerator};
use crate::rng::mix64;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::{LrSchedule, OptimizerConfig};
use crate::train::step_seed;

/// The conditional GAN loss ℓ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanLoss {
    /// BCE with logits against all-ones / all-zeros patch targets (reference default).
    Vanilla,
    /// Least squares against 1 / 0.
    Lsgan,
    /// No adversarial term: an L1-only U-Net.
    None,
}

/// `[pix2pix.data]`: paired images (see [`crate::data::paired`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairedDataConfig {
    /// Directory with `<split>/` (aligned A|B) or `<split>A/` + `<split>B/`.
    pub dir: std::path::PathBuf,
    /// auto, aligned or folders.
    pub layout: PairedLayout,
    /// Training split (a `test` split, when present, gives the probes and evaluation).
    pub split: String,
    /// "a2b" (A is the input) or "b2a".
    pub direction: String,
    /// Side of the images the networks see (reference: 256).
    pub image_size: i64,
    /// Side images are resized to before a random `image_size` crop (reference: 286;
    /// 0 = `image_size`, no crop).
    pub load_size: i64,
    /// Random horizontal flips (reference: on).
    pub flip: bool,
    /// Channels of the input (1 or 3).
    pub input_channels: i64,
    /// Channels of the output (1 or 3).
    pub output_channels: i64,
}

impl Default for PairedDataConfig {
    fn default() -> Self {
        Self {
            dir: "data/openmoji".into(),
            layout: PairedLayout::Auto,
            split: "train".into(),
            direction: "a2b".into(),
            image_size: 64,
            load_size: 72,
            flip: true,
            input_channels: 3,
            output_channels: 3,
        }
    }
}

impl PairedDataConfig {
    /// The (input, target) pairs of `split` at side `size`, in the configured direction and
    /// channels.
    pub fn load_pairs(&self, split: &str, size: i64) -> Result<(Tensor, Tensor)> {
        let s = load_paired(&self.dir, split, self.layout, size, 3, 3)?;
        let (a, b) = if self.direction == "b2a" {
            (s.b, s.a)
        } else {
            (s.a, s.b)
        };
        Ok((
            crate::data::folder::to_channels(a, self.input_channels),
            crate::data::folder::to_channels(b, self.output_channels),
        ))
    }
}

/// `[pix2pix.optim]`: one optimizer per network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pix2pixOptim {
    /// Generator (reference: Adam 2e-4, β (0.5, 0.999), linear decay in the second half).
    pub g: OptimizerConfig,
    /// Discriminator (as G).
    pub d: OptimizerConfig,
}

impl Default for Pix2pixOptim {
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

/// `[pix2pix]`: the task's section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pix2pixConfig {
    /// ℓ: vanilla (reference), lsgan, or none (L1 only).
    pub gan_loss: GanLoss,
    /// λ of the L1 term (reference: 100).
    pub lambda_l1: f64,
    /// Fixed probe pairs shown in the grids (rows of input | output | target).
    pub probes: i64,
    /// Paired data.
    pub data: PairedDataConfig,
    /// Generator.
    pub unet: UnetConfig,
    /// Discriminator.
    pub patchgan: PatchGanConfig,
    /// Optimizers.
    pub optim: Pix2pixOptim,
}

impl Default for Pix2pixConfig {
    fn default() -> Self {
        Self {
            gan_loss: GanLoss::Vanilla,
            lambda_l1: 100.0,
            probes: 8,
            data: PairedDataConfig::default(),
            unet: UnetConfig::default(),
            patchgan: PatchGanConfig::default(),
            optim: Pix2pixOptim::default(),
        }
    }
}

impl Pix2pixConfig {
    /// Checks every field; `prefix` is the section name in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if !(0.0..=1e6).contains(&self.lambda_l1) {
            return err(
                "lambda_l1",
                format!("must be in [0, 1e6], got {}", self.lambda_l1),
            );
        }
        if self.gan_loss == GanLoss::None && self.lambda_l1 == 0.0 {
            return err("lambda_l1", "must be > 0 when gan_loss = \"none\"".into());
        }
        if !(1..=64).contains(&self.probes) {
            return err("probes", format!("must be in [1, 64], got {}", self.probes));
        }
        let d = &self.data;
        if ![32, 64, 128, 256, 512].contains(&d.image_size) {
            return err(
                "data.image_size",
                format!("must be 32, 64, 128, 256 or 512, got {}", d.image_size),
            );
        }
        if d.load_size != 0 && !(d.image_size..=2 * d.image_size).contains(&d.load_size) {
            return err(
                "data.load_size",
                format!(
                    "must be 0 or in [image_size, 2·image_size] = [{}, {}], got {}",
                    d.image_size,
                    2 * d.image_size,
                    d.load_size
                ),
            );
        }
        for (f, c) in [
            ("data.input_channels", d.input_channels),
            ("data.output_channels", d.output_channels),
        ] {
            if ![1, 3].contains(&c) {
                return err(f, format!("must be 1 or 3, got {c}"));
            }
        }
        if !["a2b", "b2a"].contains(&d.direction.as_str()) {
            return err(
                "data.direction",
                format!("must be a2b or b2a, got {:?}", d.direction),
            );
        }
        if d.split.is_empty() || d.split.contains(['/', '\\']) {
            return err("data.split", "must be a folder name such as train".into());
        }
        self.unet
            .validate(&format!("{prefix}.unet"), d.image_size)?;
        self.patchgan
            .validate(&format!("{prefix}.patchgan"), d.image_size)?;
        self.optim.g.validate(&format!("{prefix}.optim.g"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// ℓ(logits, target) for the configured loss (mean over patches and batch).
fn gan_loss(kind: GanLoss, logits: &Tensor, real: bool) -> Tensor {
    let target = if real { 1.0 } else { 0.0 };
    match kind {
        // BCE(x, 1) = softplus(−x), BCE(x, 0) = softplus(x).
        GanLoss::Vanilla if real => (-logits).softplus().mean(Kind::Float),
        GanLoss::Vanilla => logits.softplus().mean(Kind::Float),
        GanLoss::Lsgan => (logits - target).square().mean(Kind::Float),
        GanLoss::None => logits.zeros_like().sum(Kind::Float),
    }
}

/// The pix2pix task (see module docs).
#[derive(Debug)]
pub struct Pix2pix {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    g: UnetGenerator,
    d: Option<PatchGan>,
    diffusion: Diffusion,
    data: Option<PairedSampler>,
    /// Fixed probe pairs (A, B) on the device, from the test split when there is one.
    probes: Option<(Tensor, Tensor)>,
    /// Test pairs for evaluation (None without a test split).
    test: Option<(Tensor, Tensor)>,
}

impl Pix2pix {
    /// The task of a validated config; `Mode::Train` loads the paired data.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let p = &cfg.pix2pix;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let dd = &p.data;
        let (ca, cb) = (dd.input_channels, dd.output_channels);
        let g_vs = nn::VarStore::new(device);
        let g = p.unet.init(g_vs.root(), ca, cb, dd.image_size);
        let mut groups = Groups::default();
        groups.push(Group::new("g", g_vs, p.optim.g.clone(), cfg.run.ema_beta)?);
        let d = if p.gan_loss == GanLoss::None {
            None
        } else {
            let d_vs = nn::VarStore::new(device);
            let d = p.patchgan.init(d_vs.root(), ca + cb, cfg.diffusion.enabled);
            groups.push(Group::new("d", d_vs, p.optim.d.clone(), 0.0)?);
            Some(d)
        };
        let (data, probes, test) = match mode {
            Mode::Inference => (None, None, None),
            Mode::Train => {
                let load = |split: &str, size: i64| dd.load_pairs(split, size);
                let load_size = if dd.load_size == 0 {
                    dd.image_size
                } else {
                    dd.load_size
                };
                let (a, b) = load(&dd.split, load_size)?;
                let sampler = PairedSampler::new(
                    crate::data::paired::PairedSet {
                        a,
                        b,
                        names: Vec::new(),
                    },
                    dd.image_size,
                    dd.flip,
                );
                let test = if dd.split != "test" && has_split(&dd.dir, "test") {
                    Some(load("test", dd.image_size)?)
                } else {
                    None
                };
                let probe_src = match &test {
                    Some(t) => (t.0.shallow_clone(), t.1.shallow_clone()),
                    None => load(&dd.split, dd.image_size)?,
                };
                // Probes spread evenly over the split (sorted file names cluster content,
                // e.g. OpenMoji's flags), the same ones at every evaluation.
                let n = probe_src.0.size()[0];
                let k = p.probes.min(n);
                let idx = Tensor::from_slice(&(0..k).map(|i| i * n / k).collect::<Vec<i64>>());
                let probes = (
                    probe_src.0.index_select(0, &idx).to_device(device),
                    probe_src.1.index_select(0, &idx).to_device(device),
                );
                (Some(sampler), Some(probes), test)
            }
        };
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            g,
            d,
            diffusion: Diffusion::new(cfg.diffusion.clone(), mix64(cfg.run.seed ^ 0xD1FF)),
            data,
            probes,
            test,
        })
    }

    /// G(x) image by image without gradient, with the EMA weights where kept. BatchNorm
    /// uses each image's own statistics and dropout stays on, as the reference's test
    /// script with its batch size of 1 (reseed libtorch first for reproducible dropout).
    fn translate_batch(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.groups.get("g").with_ema(|| {
            let outs: Vec<Tensor> = (0..x.size()[0])
                .map(|i| self.g.forward_t(&x.narrow(0, i, 1), true))
                .collect();
            Tensor::cat(&outs, 0)
        })
    }

    /// Rows of input | output | target for pairs (a, b): one image [C, H, W].
    fn triptych(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        tch::manual_seed(step_seed(self.cfg.run.seed, u64::MAX - 3));
        let y = self.translate_batch(a);
        let c = a.size()[1].max(b.size()[1]);
        let to = |x: &Tensor| crate::data::folder::to_channels(x.to_device(Device::Cpu), c);
        let rows = Tensor::stack(&[to(a), to(&y), to(b)], 1).flatten(0, 1);
        crate::data::grid(&rows, 3, 2)
    }

    /// Mean L1 between translations of the test inputs and their targets (at most
    /// `run.eval_samples` pairs), and the number of pairs.
    fn test_l1(&self) -> Option<(f64, i64)> {
        let (a, b) = self.test.as_ref()?;
        let n = a.size()[0].min(self.cfg.run.eval_samples);
        tch::manual_seed(step_seed(self.cfg.run.seed, u64::MAX - 4));
        let mut total = 0.0;
        for start in (0..n).step_by(64) {
            let len = 64.min(n - start);
            let y = self.translate_batch(&a.narrow(0, start, len).to_device(self.device));
            let t = b.narrow(0, start, len).to_device(self.device);
            total += (y - t).abs().sum(Kind::Double).double_value(&[]);
        }
        Some((
            total / (n * b.size()[1..].iter().product::<i64>()) as f64,
            n,
        ))
    }
}

impl Task for Pix2pix {
    fn kind(&self) -> &'static str {
        "pix2pix"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let p = &self.cfg.pix2pix;
        let m = self.cfg.run.batch_size;
        let data = self.data.as_mut().ok_or_else(|| {
            GanError::Input("this run was opened for inference; resume it to train".into())
        })?;
        let (a, b) = data.sample(m, self.device);
        let fake = self.g.forward_t(&a, true);
        let mut s = Scalars::new();
        if let Some(d) = &self.d {
            // D first, on (A, B) and (A, G(A)) through the augment stage (shared t).
            let real_ab = Tensor::cat(&[&a, &b], 1);
            let fake_ab = Tensor::cat(&[&a, &fake.detach()], 1);
            let (yy, t) = self.diffusion.augment(&[&real_ab, &fake_ab])?;
            let pred_real = d.forward(&yy.narrow(0, 0, m), &t);
            let pred_fake = d.forward(&yy.narrow(0, m, m), &t);
            let loss_d = (gan_loss(p.gan_loss, &pred_fake, false)
                + gan_loss(p.gan_loss, &pred_real, true))
                * 0.5;
            let opt = self.groups.get_mut("d").opt_mut();
            opt.zero_grad();
            loss_d.backward();
            opt.step()?;
            let pred_real = pred_real.detach();
            // The controller's r_d: the share of real patches D calls real, per image.
            let centre = if p.gan_loss == GanLoss::Lsgan {
                0.5
            } else {
                0.0
            };
            let signs = (pred_real.mean_dim(&[1i64, 2, 3][..], false, Kind::Float) - centre)
                .sign()
                .sum(Kind::Float)
                .double_value(&[]);
            self.diffusion.observe_real(signs, m as u64)?;
            let score = |x: &Tensor| match p.gan_loss {
                GanLoss::Vanilla => x.sigmoid().mean(Kind::Float).double_value(&[]),
                _ => x.mean(Kind::Float).double_value(&[]),
            };
            s.push("loss_d", loss_d.double_value(&[]));
            s.push("d_real", score(&pred_real));
            s.push("d_fake", score(&pred_fake.detach()));
        }
        // G with D frozen: fool D on (A, G(A)) and stay close to B in L1.
        let loss_l1 = (&fake - &b).abs().mean(Kind::Float);
        let mut loss_g = &loss_l1 * p.lambda_l1;
        if let Some(d) = &self.d {
            self.groups.get("d").opt().set_requires_grad(false);
            let (y, t) = self.diffusion.augment(&[&Tensor::cat(&[&a, &fake], 1)])?;
            let loss_gan = gan_loss(p.gan_loss, &d.forward(&y, &t), true);
            s.push("loss_g_gan", loss_gan.double_value(&[]));
            loss_g += loss_gan;
        }
        let opt = self.groups.get_mut("g").opt_mut();
        opt.zero_grad();
        loss_g.backward();
        opt.step()?;
        if self.d.is_some() {
            self.groups.get("d").opt().set_requires_grad(true);
        }
        s.push("loss_g_l1", loss_l1.double_value(&[]));
        s.push("loss_g", loss_g.double_value(&[]));
        Ok(s)
    }

    fn may_be_nan(&self, name: &str) -> bool {
        name == "r_d"
    }

    fn end_step(&mut self) -> Scalars {
        let on = self.cfg.diffusion.enabled && self.d.is_some();
        super::diffusion_end_step(&mut self.diffusion, on, self.cfg.run.batch_size)
    }

    fn state(&self) -> Result<serde_json::Value> {
        super::diffusion_state(&self.diffusion)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.diffusion = super::restore_diffusion(&self.cfg.diffusion, state, "pix2pix")?;
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        match &self.probes {
            Some((a, b)) => Ok(Some(self.triptych(a, b)?)),
            None => Ok(None),
        }
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        Ok(match self.test_l1() {
            Some((l1, _)) => Scalars::new().with("test_l1", l1),
            None => Scalars::new(),
        })
    }

    fn status(&self, s: &Scalars) -> String {
        let v = |k| s.get(k).unwrap_or(f64::NAN);
        let mut out = format!("loss_g={:.3} l1={:.4}", v("loss_g"), v("loss_g_l1"));
        if let Some(d) = s.get("loss_d") {
            out += &format!(" loss_d={d:.3}");
        }
        out
    }

    fn curves(&self) -> Vec<Curve> {
        vec![
            Curve {
                title: "losses",
                ylabel: "loss",
                series: vec!["loss_d", "loss_g_gan"],
            },
            Curve {
                title: "L1 to the target (train batch)",
                ylabel: "mean |G(A) − B|",
                series: vec!["loss_g_l1"],
            },
            Curve {
                title: "discriminator outputs",
                ylabel: "mean D score",
                series: vec!["d_real", "d_fake"],
            },
        ]
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        let mut summary = serde_json::Map::new();
        if let Some((l1, n)) = self.test_l1() {
            summary.insert("test_l1".into(), l1.into());
            summary.insert("test_pairs".into(), n.into());
        }
        if self.cfg.diffusion.enabled {
            summary.insert("final_T".into(), self.diffusion.t_cur().into());
        }
        let mut sections = Vec::new();
        if let Some(grid) = self.visuals()? {
            crate::data::write_png(&dir.join("samples.png"), &grid)?;
            sections.push(Section {
                heading: "Translations (input | output | target)".into(),
                html: "<img src=\"samples.png\" alt=\"probe pairs: input, output, target\">".into(),
            });
        }
        Ok(Outputs { summary, sections })
    }

    fn translator(&self) -> Option<&dyn Translator> {
        Some(self)
    }
}

impl Translator for Pix2pix {
    fn directions(&self) -> Vec<&'static str> {
        vec![if self.cfg.pix2pix.data.direction == "b2a" {
            "b2a"
        } else {
            "a2b"
        }]
    }

    fn input_shape(&self, direction: &str) -> Result<[i64; 3]> {
        let d = &self.cfg.pix2pix.data;
        if !self.directions().contains(&direction) {
            return Err(GanError::config(
                "--direction",
                format!(
                    "this pix2pix run translates {} only, got {direction}",
                    self.directions()[0]
                ),
            ));
        }
        Ok([d.input_channels, d.image_size, d.image_size])
    }

    fn translate(&self, x: &Tensor, direction: &str) -> Result<Tensor> {
        let [c, h, w] = self.input_shape(direction)?;
        let s = x.size();
        if s.len() != 4 || s[1..] != [c, h, w] {
            return Err(GanError::Input(format!(
                "translate: expected images [n, {c}, {h}, {w}], got {s:?}"
            )));
        }
        Ok(self.translate_batch(&x.to_device(self.device)))
    }
}

#[cfg(test)]
#[path = "pix2pix_tests.rs"]
mod tests;
