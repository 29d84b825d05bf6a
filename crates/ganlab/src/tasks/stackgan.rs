//! StackGAN (Zhang et al., ICCV 2017; gan-lecture.txt "StackGAN"): text-to-image in two
//! stages, coarse to fine, each a task run ([`crate::models::stackgan`] has the networks).
//!
//! - `stage = 1`: Stage-I G draws a low-resolution image from noise and the augmented
//!   condition c (conditioning augmentation, c = μ + σ ⊙ ε, with the KL regulariser weighted
//!   `kl_weight`, official 2.0); Stage-I D judges (image, μ) pairs.
//! - `stage = 2`: a finished Stage-I run (`stage1`, frozen) draws the low-resolution image;
//!   Stage-II G (its own conditioning augmentation, no noise vector) refines it to
//!   `data.image_size`; Stage-II D adds unconditional logits.
//! - Both D losses are the official `compute_discriminator_loss`: real images with the right
//!   condition, real images with a wrong one (another image's μ), fakes with the right one;
//!   L_D = ℓ_real + (ℓ_wrong + ℓ_fake) / 2, and with unconditional logits
//!   (ℓ_real + ℓ_real^u) / 2 + (ℓ_fake + ℓ_wrong + ℓ_fake^u) / 3. G: ℓ(D(fake, μ), real)
//!   (+ the unconditional term) + kl_weight · KL. D's condition is G's μ, detached.
//! - Adam 2e-4, β₁ 0.5 for both, batch 64 (official). The official lr halving every 20
//!   epochs is not reproduced (`optim.*.schedule` offers constant, linear or cosine).
//!
//! The text embedding is a finished `text_encoder` run, as for GAN-INT-CLS; the shared
//! plumbing (batches, grids, walks, R-precision) is `super::text2image_data`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::gan_int_cls::{matching_aware_d_loss, TextGanOptim, TextToImage};
use super::text2image_data::{text_curves, TextData, TextGan};
use super::text_encoder::CaptionDataConfig;
use super::{Curve, Mode, Outputs, Scalars, StepContext, Task};
use crate::error::{GanError, Result};
use crate::models::stackgan::{
    kl_loss, StackDiscriminator, StackNetConfig, Stage1Generator, Stage2Generator,
};
use crate::run::Run;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::step_seed;

/// `[stackgan]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackganConfig {
    /// Run directory of a finished `text_encoder` run (frozen).
    pub text_encoder: PathBuf,
    /// 1 (Stage-I) or 2 (Stage-II on a finished Stage-I run).
    pub stage: i64,
    /// Stage-II: run directory of the finished Stage-I run (frozen).
    pub stage1: PathBuf,
    /// Weight of the conditioning augmentation's KL term (official 2.0).
    pub kl_weight: f64,
    /// Test captions shown in the grid (rows).
    pub probes: i64,
    /// Noise draws per caption in the grid (columns).
    pub samples_per_caption: i64,
    /// Images (at this stage's output side) and captions.
    pub data: CaptionDataConfig,
    /// Networks (Stage-I: `ngf` is the width at 4 × 4; Stage-II: the base width).
    pub net: StackNetConfig,
    /// Optimizers.
    pub optim: TextGanOptim,
}

impl Default for StackganConfig {
    fn default() -> Self {
        Self {
            text_encoder: "runs/text-encoder-emoji".into(),
            stage: 1,
            stage1: "runs/stackgan-stage1-emoji".into(),
            kl_weight: 2.0,
            probes: 8,
            samples_per_caption: 8,
            data: CaptionDataConfig::default(),
            net: StackNetConfig::default(),
            optim: TextGanOptim::default(),
        }
    }
}

impl StackganConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if ![1, 2].contains(&self.stage) {
            return err("stage", format!("must be 1 or 2, got {}", self.stage));
        }
        if !(0.0..=1e3).contains(&self.kl_weight) {
            return err(
                "kl_weight",
                format!("must be in [0, 1000], got {}", self.kl_weight),
            );
        }
        for (f, v) in [
            ("probes", self.probes),
            ("samples_per_caption", self.samples_per_caption),
        ] {
            if !(1..=64).contains(&v) {
                return err(f, format!("must be in [1, 64], got {v}"));
            }
        }
        self.data.validate(&format!("{prefix}.data"))?;
        self.net.validate(&format!("{prefix}.net"))?;
        // Stage-I halves its width at each of log2(side / 4) up-blocks.
        let ups = (self.data.image_size / 4).trailing_zeros();
        if self.stage == 1 && self.net.ngf < 1 << ups {
            return err(
                "net.ngf",
                format!(
                    "must be at least {} for {} px (one halving per up-block), got {}",
                    1 << ups,
                    self.data.image_size,
                    self.net.ngf
                ),
            );
        }
        self.optim.g.validate(&format!("{prefix}.optim.g"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// The generator of a stage.
#[derive(Debug)]
enum StageG {
    One(Box<Stage1Generator>),
    /// Stage-II G and the frozen Stage-I run.
    Two(Box<Stage2Generator>, Box<Run>),
}

/// The StackGAN task (see module docs).
#[derive(Debug)]
pub struct Stackgan {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    g: StageG,
    d: StackDiscriminator,
    data: TextData,
}

/// BCE with logits against all-ones (`real`) or all-zeros, batch mean.
fn bce(logits: &Tensor, real: bool) -> Tensor {
    if real {
        (-logits).softplus().mean(Kind::Float)
    } else {
        logits.softplus().mean(Kind::Float)
    }
}

impl Stackgan {
    /// The task of a validated config; `Mode::Train` loads the data and embeds its captions.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.stackgan;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        let data = TextData::new(
            &c.text_encoder,
            "stackgan.text_encoder",
            &c.data,
            mode,
            cfg.run.batch_size,
            device,
        )?;
        let (dim, size) = (data.embedder().dim(), c.data.image_size);
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let (g_vs, d_vs) = (nn::VarStore::new(device), nn::VarStore::new(device));
        let g = if c.stage == 1 {
            StageG::One(Box::new(Stage1Generator::new(
                g_vs.root() / "g",
                &c.net,
                dim,
                size,
            )))
        } else {
            let field = "stackgan.stage1";
            let run = Run::open(&c.stage1)
                .map_err(|e| GanError::config(field, format!("{}: {e}", c.stage1.display())))?;
            let s1 = &run.config().stackgan;
            if run.task().kind() != "stackgan" || s1.stage != 1 {
                return Err(GanError::config(
                    field,
                    format!("{} is not a Stage-I stackgan run", c.stage1.display()),
                ));
            }
            let s1_size = s1.data.image_size;
            if size <= s1_size
                || (size / (s1_size / 4)).count_ones() != 1
                || size % (s1_size / 4) != 0
            {
                return Err(GanError::config(
                    "stackgan.data.image_size",
                    format!("must be a power-of-two multiple of the Stage-I side {s1_size}, larger than it; got {size}"),
                ));
            }
            let ups = (size / (s1_size / 4)).trailing_zeros();
            if (4 * c.net.ngf) >> ups < 1 {
                return Err(GanError::config(
                    "stackgan.net.ngf",
                    format!(
                        "4·ngf must stay ≥ 1 through {ups} halvings, got ngf = {}",
                        c.net.ngf
                    ),
                ));
            }
            if s1.net.z_dim != c.net.z_dim {
                return Err(GanError::config(
                    "stackgan.net.z_dim",
                    format!(
                        "must equal the Stage-I run's {} (its noise is drawn here)",
                        s1.net.z_dim
                    ),
                ));
            }
            StageG::Two(
                Box::new(Stage2Generator::new(
                    g_vs.root() / "g",
                    &c.net,
                    dim,
                    s1_size,
                    size,
                )),
                Box::new(run),
            )
        };
        let d = StackDiscriminator::new(d_vs.root() / "d", &c.net, size, c.stage == 2);
        let mut groups = Groups::default();
        groups.push(Group::new("g", g_vs, c.optim.g.clone(), cfg.run.ema_beta)?);
        groups.push(Group::new("d", d_vs, c.optim.d.clone(), 0.0)?);
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            g,
            d,
            data,
        })
    }

    /// (image, μ, log σ²) of this stage's G for embeddings `h` and noise `z`.
    fn generate(&self, h: &Tensor, z: &Tensor, train: bool) -> (Tensor, Tensor, Tensor) {
        match &self.g {
            StageG::One(g) => g.forward_t(h, z, train),
            StageG::Two(g, run) => {
                let t2i = run
                    .task()
                    .text_to_image()
                    .expect("checked in Stackgan::new");
                let x1 = t2i.sample_embedded(h, z).to_device(self.device);
                g.forward_t(&x1, h, train)
            }
        }
    }
}

impl TextGan for Stackgan {
    fn text_data(&self) -> &TextData {
        &self.data
    }

    fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    fn noise_dim(&self) -> i64 {
        self.cfg.stackgan.net.z_dim
    }

    fn grid_shape(&self) -> (i64, i64) {
        let c = &self.cfg.stackgan;
        (c.probes, c.samples_per_caption)
    }

    fn draw(&self, h: &Tensor, z: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let (h, z) = (h.to_device(self.device), z.to_device(self.device));
        self.groups
            .get("g")
            .with_ema(|| self.generate(&h, &z, false).0)
    }
}

impl Task for Stackgan {
    fn kind(&self) -> &'static str {
        "stackgan"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let m = self.cfg.run.batch_size;
        let (x, h, _) = self.data.batch(m)?;
        let z = crate::dist::randn(&[m, self.noise_dim()], (Kind::Float, self.device));
        let (fake, mu, logvar) = self.generate(&h, &z, true);
        let cond = mu.detach();
        let wrong = cond.roll([1], [0]);
        // D: real/right, real/wrong, fake/right (+ unconditional real and fake at Stage-II).
        let (code_r, code_f) = (self.d.encode(&x, true), self.d.encode(&fake.detach(), true));
        let s_r = self.d.cond_logits(&code_r, &cond, true);
        let s_w = self.d.cond_logits(&code_r, &wrong, true);
        let s_f = self.d.cond_logits(&code_f, &cond, true);
        let loss_d = match (self.d.uncond_logits(&code_r), self.d.uncond_logits(&code_f)) {
            (Some(u_r), Some(u_f)) => {
                (bce(&s_r, true) + bce(&u_r, true)) / 2.0
                    + (bce(&s_f, false) + bce(&s_w, false) + bce(&u_f, false)) / 3.0
            }
            _ => matching_aware_d_loss(&s_r, Some(&s_w), &s_f),
        };
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        loss_d.backward();
        opt.step()?;
        // G with D frozen.
        self.groups.get("d").opt().set_requires_grad(false);
        let code = self.d.encode(&fake, true);
        let mut loss_adv = bce(&self.d.cond_logits(&code, &cond, true), true);
        if let Some(u) = self.d.uncond_logits(&code) {
            loss_adv += bce(&u, true);
        }
        let kl = kl_loss(&mu, &logvar);
        let loss_g = &loss_adv + &kl * self.cfg.stackgan.kl_weight;
        let opt = self.groups.get_mut("g").opt_mut();
        opt.zero_grad();
        loss_g.backward();
        opt.step()?;
        self.groups.get("d").opt().set_requires_grad(true);
        let score = |t: &Tensor| t.detach().sigmoid().mean(Kind::Float).double_value(&[]);
        Ok(Scalars::new()
            .with("loss_d", loss_d.double_value(&[]))
            .with("loss_g", loss_g.double_value(&[]))
            .with("loss_g_adv", loss_adv.double_value(&[]))
            .with("kl", kl.double_value(&[]))
            .with("d_real", score(&s_r))
            .with("d_wrong", score(&s_w))
            .with("d_fake", score(&s_f)))
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        self.text_visuals()
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        self.text_evaluate()
    }

    fn curves(&self) -> Vec<Curve> {
        text_curves(vec!["loss_d", "loss_g_adv", "kl"])
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        self.text_outputs(dir)
    }

    fn text_to_image(&self) -> Option<&dyn TextToImage> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::train::Trainer;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ganlab-stack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn tiny(data: &Path, enc: &Path, stage: i64, size: i64, steps: u64) -> TrainConfig {
        let mut cfg =
            TrainConfig::from_toml_str("[task]\nkind = \"stackgan\"\n", Path::new("t")).unwrap();
        cfg.run.steps = steps;
        cfg.run.batch_size = 4;
        cfg.run.log_every = 1;
        cfg.run.eval_every = 2;
        cfg.run.checkpoint_every = 2;
        cfg.run.device = "cpu".into();
        let c = &mut cfg.stackgan;
        c.text_encoder = enc.to_path_buf();
        c.stage = stage;
        c.data.dir = data.to_path_buf();
        c.data.captions = data.join("captions.tsv");
        c.data.image_size = size;
        c.probes = 2;
        c.samples_per_caption = 2;
        c.net = StackNetConfig {
            z_dim: 8,
            c_dim: 4,
            ngf: if stage == 1 { 32 } else { 4 },
            ndf: 2,
            res_blocks: 1,
        };
        cfg
    }

    /// Stage-I at 32 px then Stage-II to 64 px on it, end to end: KL and D's three terms
    /// logged, bit-identical resume of Stage-II (the frozen Stage-I run drawing its input),
    /// captions drawn at 64 px through the run handle; Stage-II refuses a side that is not
    /// a larger power-of-two multiple of Stage-I's and a Stage-I run that is not one.
    #[test]
    fn stage1_then_stage2() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let data = tmp("data");
        crate::tasks::text_encoder::tests::write_data(&data, 2);
        let enc = tmp("enc");
        Trainer::new(crate::tasks::text_encoder::tests::tiny(&data, 2), &enc)
            .unwrap()
            .run(&mut Silent)
            .unwrap();
        let s1 = tmp("s1");
        let mut t = Trainer::new(tiny(&data, &enc, 1, 32, 2), &s1).unwrap();
        t.run(&mut Silent).unwrap();
        for k in ["loss_d", "loss_g_adv", "kl", "d_real", "d_wrong", "d_fake"] {
            assert!(t.rows()[0].get(k).is_finite(), "{k} logged");
        }
        let stage2 = |steps| {
            let mut c = tiny(&data, &enc, 2, 64, steps);
            c.stackgan.stage1 = s1.clone();
            c
        };
        let (a, b) = (tmp("full"), tmp("half"));
        let mut full = Trainer::new(stage2(4), &a).unwrap();
        let s = full.run(&mut Silent).unwrap();
        assert!((0.0..=1.0).contains(&s["r_precision"].as_f64().unwrap()));
        Trainer::new(stage2(2), &b)
            .unwrap()
            .run(&mut Silent)
            .unwrap();
        let mut r = Trainer::resume(&b, Some(4), None).unwrap();
        r.run(&mut Silent).unwrap();
        for ((k, x), (_, y)) in full.weights().iter().zip(r.weights()) {
            assert!(x.equal(&y), "{k} differs after resume");
        }
        let run = crate::run::Run::open(&a).unwrap();
        let x = run
            .task()
            .text_to_image()
            .unwrap()
            .sample_text(&["red"], 1)
            .unwrap();
        assert_eq!(x.size(), vec![1, 3, 64, 64]);
        let mut bad = stage2(1);
        bad.stackgan.data.image_size = 32;
        let e = Stackgan::new(&bad, Mode::Inference)
            .unwrap_err()
            .to_string();
        assert!(e.contains("stackgan.data.image_size"), "{e}");
        let mut bad = stage2(1);
        bad.stackgan.stage1 = enc.clone();
        let e = Stackgan::new(&bad, Mode::Inference)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a Stage-I stackgan run"), "{e}");
        for d in [data, enc, s1, a, b] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
