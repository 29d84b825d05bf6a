//! GAN-INT-CLS (Reed et al., ICML 2016, "Generative Adversarial Text to Image Synthesis";
//! gan-lecture.txt "Text-to-image synthesis"): a DCGAN conditioned on a frozen text
//! embedding ([`crate::models::text2image`]; the embedding is a finished `text_encoder` run,
//! `gan_int_cls.text_encoder`), trained as the paper's Algorithm 1:
//!
//! - **matching-aware D (GAN-CLS)**: s_r = D(x, h) (real image, right text), s_w = D(x, ĥ)
//!   (real image, wrong text: the caption of another image of the batch), s_f = D(x̂, h)
//!   (fake, right text); L_D = log s_r + (log(1 − s_w) + log(1 − s_f)) / 2
//!   ([`matching_aware_d_loss`]); `cls = false` drops the wrong-text term (plain GAN);
//! - **interpolation (GAN-INT)**: G also fools D on embeddings interpolated between two
//!   training captions, h_int = β h₁ + (1 − β) h₂, β = 0.5 as the paper; `int = false` drops it;
//! - G: non-saturating log D(G(z, h), h); z ~ N(0, I) of 100 dimensions; Adam 2e-4,
//!   β₁ 0.5 for both, batch 64 (the paper's).
//!
//! A training pair is an image with one of its captions drawn at random each step. The
//! grid shows test captions (rows) × noise draws (columns); evaluation scores generated
//! images by R-precision with the encoder's image side ([`crate::metrics::retrieval`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::text2image_data::{text_curves, TextData, TextGan};
use super::text_encoder::{CaptionDataConfig, TextEmbedder};
use super::{Curve, Mode, Outputs, Scalars, StepContext, Task};
use crate::error::{GanError, Result};
use crate::models::text2image::{TextDiscriminator, TextGanConfig, TextGenerator};
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::OptimizerConfig;
use crate::train::step_seed;

/// `[gan_int_cls.optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextGanOptim {
    /// Generator (paper: Adam 2e-4, β₁ 0.5).
    pub g: OptimizerConfig,
    /// Discriminator (as G).
    pub d: OptimizerConfig,
}

impl Default for TextGanOptim {
    fn default() -> Self {
        Self {
            g: OptimizerConfig::adam(2e-4),
            d: OptimizerConfig::adam(2e-4),
        }
    }
}

/// `[gan_int_cls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanIntClsConfig {
    /// Run directory of a finished `text_encoder` run (frozen).
    pub text_encoder: PathBuf,
    /// The matching-aware term (real image, wrong text) in D's loss.
    pub cls: bool,
    /// The interpolated-text term in G's loss.
    pub int: bool,
    /// β of the interpolation (paper: 0.5).
    pub int_beta: f64,
    /// Test captions shown in the grid (rows).
    pub probes: i64,
    /// Noise draws per caption in the grid (columns).
    pub samples_per_caption: i64,
    /// Images and captions.
    pub data: CaptionDataConfig,
    /// G and D.
    pub net: TextGanConfig,
    /// Optimizers.
    pub optim: TextGanOptim,
}

impl Default for GanIntClsConfig {
    fn default() -> Self {
        Self {
            text_encoder: "runs/text-encoder-emoji".into(),
            cls: true,
            int: true,
            int_beta: 0.5,
            probes: 8,
            samples_per_caption: 8,
            data: CaptionDataConfig::default(),
            net: TextGanConfig::default(),
            optim: TextGanOptim::default(),
        }
    }
}

impl GanIntClsConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if !(0.0..=1.0).contains(&self.int_beta) {
            return err(
                "int_beta",
                format!("must be in [0, 1], got {}", self.int_beta),
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
        self.optim.g.validate(&format!("{prefix}.optim.g"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// GAN-CLS's discriminator loss on logits (paper's Algorithm 1, minimised form):
/// softplus(−s_r) + (softplus(s_w) + softplus(s_f)) / 2, each a batch mean — i.e.
/// −[log σ(s_r) + (log(1 − σ(s_w)) + log(1 − σ(s_f))) / 2]. Without `s_w` (plain GAN):
/// softplus(−s_r) + softplus(s_f).
pub fn matching_aware_d_loss(s_r: &Tensor, s_w: Option<&Tensor>, s_f: &Tensor) -> Tensor {
    let real = (-s_r).softplus().mean(Kind::Float);
    let fake = s_f.softplus().mean(Kind::Float);
    match s_w {
        Some(w) => real + (w.softplus().mean(Kind::Float) + fake) * 0.5,
        None => real + fake,
    }
}

/// A model that draws images for captions (`ganlab sample --text`); every text-to-image
/// task gets it from [`super::text2image_data::TextGan`].
pub trait TextToImage {
    /// Images [n, 3, s, s] for `captions` (one each), noise from `seed` (no gradient).
    fn sample_text(&self, captions: &[&str], seed: u64) -> Result<Tensor>;
    /// Images for embeddings `h` [n, dim] and noise `z` [n, z_dim] (walks between captions).
    fn sample_embedded(&self, h: &Tensor, z: &Tensor) -> Tensor;
    /// The frozen text encoder.
    fn embedder(&self) -> &dyn TextEmbedder;
    /// Noise dimension.
    fn z_dim(&self) -> i64;
}

/// The GAN-INT-CLS task (see module docs).
#[derive(Debug)]
pub struct GanIntCls {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    g: TextGenerator,
    d: TextDiscriminator,
    data: TextData,
}

impl GanIntCls {
    /// The task of a validated config; `Mode::Train` loads the data and embeds its captions.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.gan_int_cls;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        let data = TextData::new(
            &c.text_encoder,
            "gan_int_cls.text_encoder",
            &c.data,
            mode,
            cfg.run.batch_size,
            device,
        )?;
        let (dim, size) = (data.embedder().dim(), c.data.image_size);
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let (g_vs, d_vs) = (nn::VarStore::new(device), nn::VarStore::new(device));
        let g = TextGenerator::new(g_vs.root() / "g", &c.net, dim, size);
        let d = TextDiscriminator::new(d_vs.root() / "d", &c.net, dim, size);
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
}

impl TextGan for GanIntCls {
    fn text_data(&self) -> &TextData {
        &self.data
    }

    fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    fn noise_dim(&self) -> i64 {
        self.cfg.gan_int_cls.net.z_dim
    }

    fn grid_shape(&self) -> (i64, i64) {
        let c = &self.cfg.gan_int_cls;
        (c.probes, c.samples_per_caption)
    }

    fn draw(&self, h: &Tensor, z: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let (h, z) = (h.to_device(self.device), z.to_device(self.device));
        self.groups
            .get("g")
            .with_ema(|| self.g.forward_t(&z, &h, false))
    }
}

impl Task for GanIntCls {
    fn kind(&self) -> &'static str {
        "gan_int_cls"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let c = self.cfg.gan_int_cls.clone();
        let m = self.cfg.run.batch_size;
        let (x, h, h_wrong) = self.data.batch(m)?;
        let z = crate::dist::randn(&[m, c.net.z_dim], (Kind::Float, self.device));
        let fake = self.g.forward_t(&z, &h, true);
        // D: real/right, real/wrong, fake/right.
        let s_r = self.d.forward_t(&x, &h, true);
        let s_w = c.cls.then(|| self.d.forward_t(&x, &h_wrong, true));
        let s_f = self.d.forward_t(&fake.detach(), &h, true);
        let loss_d = matching_aware_d_loss(&s_r, s_w.as_ref(), &s_f);
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        loss_d.backward();
        opt.step()?;
        // G with D frozen: fool D on (G(z, h), h) and, with GAN-INT, on interpolated text.
        self.groups.get("d").opt().set_requires_grad(false);
        let mut loss_g = (-self.d.forward_t(&fake, &h, true))
            .softplus()
            .mean(Kind::Float);
        let mut s = Scalars::new();
        if c.int {
            let h_int = &h * c.int_beta + &h_wrong * (1.0 - c.int_beta);
            let z2 = crate::dist::randn(&[m, c.net.z_dim], (Kind::Float, self.device));
            let f_int = self.g.forward_t(&z2, &h_int, true);
            let l_int = (-self.d.forward_t(&f_int, &h_int, true))
                .softplus()
                .mean(Kind::Float);
            s.push("loss_g_int", l_int.double_value(&[]));
            loss_g += l_int;
        }
        let opt = self.groups.get_mut("g").opt_mut();
        opt.zero_grad();
        loss_g.backward();
        opt.step()?;
        self.groups.get("d").opt().set_requires_grad(true);
        let score = |t: &Tensor| t.detach().sigmoid().mean(Kind::Float).double_value(&[]);
        s.push("loss_d", loss_d.double_value(&[]));
        s.push("loss_g", loss_g.double_value(&[]));
        s.push("d_real", score(&s_r));
        if let Some(w) = &s_w {
            s.push("d_wrong", score(w));
        }
        s.push("d_fake", score(&s_f));
        Ok(s)
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        self.text_visuals()
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        self.text_evaluate()
    }

    fn curves(&self) -> Vec<Curve> {
        text_curves(vec!["loss_d", "loss_g", "loss_g_int"])
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        self.text_outputs(dir)
    }

    fn text_to_image(&self) -> Option<&dyn TextToImage> {
        Some(self)
    }
}

#[cfg(test)]
#[path = "gan_int_cls_tests.rs"]
mod tests;
