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

use super::text_encoder::{CaptionDataConfig, TextEmbedder};
use super::{Curve, Mode, Outputs, Scalars, Section, StepContext, Task};
use crate::data::captions::CaptionSet;
use crate::error::{GanError, Result};
use crate::models::text2image::{TextDiscriminator, TextGanConfig, TextGenerator};
use crate::run::Run;
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

/// Two captions a walk goes between.
type CaptionPair = (String, String);

/// A model that draws images for captions (`ganlab sample --text`).
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
    encoder: Run,
    /// Training images and the embedding of every caption, with each image's caption rows.
    train: Option<(CaptionSet, Tensor, Vec<Vec<i64>>)>,
    /// Test images with their first captions.
    test: Option<CaptionSet>,
}

impl GanIntCls {
    /// The task of a validated config; `Mode::Train` loads the data and embeds its captions.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.gan_int_cls;
        let field = "gan_int_cls.text_encoder";
        let encoder = Run::open(&c.text_encoder)
            .map_err(|e| GanError::config(field, format!("{}: {e}", c.text_encoder.display())))?;
        let emb = encoder.task().text_embedder().ok_or_else(|| {
            GanError::config(
                field,
                format!("{} is not a text_encoder run", c.text_encoder.display()),
            )
        })?;
        let dim = emb.dim();
        let size = c.data.image_size;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let (g_vs, d_vs) = (nn::VarStore::new(device), nn::VarStore::new(device));
        let g = TextGenerator::new(g_vs.root() / "g", &c.net, dim, size);
        let d = TextDiscriminator::new(d_vs.root() / "d", &c.net, dim, size);
        let mut groups = Groups::default();
        groups.push(Group::new("g", g_vs, c.optim.g.clone(), cfg.run.ema_beta)?);
        groups.push(Group::new("d", d_vs, c.optim.d.clone(), 0.0)?);
        let (train, test) = match mode {
            Mode::Inference => (None, None),
            Mode::Train => {
                let set = c.data.load(&c.data.train)?;
                let mut rows = Vec::new();
                let mut all: Vec<&str> = Vec::new();
                for caps in &set.captions {
                    rows.push((all.len() as i64..(all.len() + caps.len()) as i64).collect());
                    all.extend(caps.iter().map(String::as_str));
                }
                let h = emb.embed_text(&all).to_device(device);
                if (set.len() as i64) < cfg.run.batch_size.max(2) {
                    return Err(GanError::config(
                        "run.batch_size",
                        format!(
                            "must be at most the {} training images (and at least 2)",
                            set.len()
                        ),
                    ));
                }
                (Some((set, h, rows)), Some(c.data.load(&c.data.test)?))
            }
        };
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            g,
            d,
            encoder,
            train,
            test,
        })
    }

    fn embed(&self, captions: &[&str]) -> Tensor {
        self.embedder().embed_text(captions).to_device(self.device)
    }

    /// The grid: `probes` test captions (rows) × `samples_per_caption` noise draws; and the
    /// captions, in row order.
    fn caption_grid(&self) -> Result<Option<(Tensor, Vec<String>)>> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let c = &self.cfg.gan_int_cls;
        let k = (c.probes as usize).min(test.len());
        let caps: Vec<String> = (0..k)
            .map(|i| test.captions[i * test.len() / k][0].clone())
            .collect();
        let per = c.samples_per_caption;
        let rows: Vec<&str> = caps
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.as_str(), per as usize))
            .collect();
        let x = self.sample_text(&rows, self.cfg.run.seed)?;
        Ok(Some((
            crate::data::grid(&x.to_device(Device::Cpu), per, 2)?,
            caps,
        )))
    }

    /// Text interpolation walks (the paper's Fig. 8): for `probes` / 2 pairs of test
    /// captions, one row each of 8 images from the first caption's embedding to the
    /// second's, h = (1 − β) h₁ + β h₂ for β = 0, 1/7, …, 1, with one noise vector per row (so
    /// only the text changes); and the caption pairs.
    fn walks(&self) -> Result<Option<(Tensor, Vec<CaptionPair>)>> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let rows = (self.cfg.gan_int_cls.probes / 2).max(1) as usize;
        let n = test.len();
        if n < 2 {
            return Ok(None);
        }
        let pairs: Vec<CaptionPair> = (0..rows)
            .map(|r| {
                let i = (r * n / rows) % n;
                let j = (i + n / 2) % n;
                (test.captions[i][0].clone(), test.captions[j][0].clone())
            })
            .collect();
        let ends: Vec<&str> = pairs
            .iter()
            .flat_map(|(a, b)| [a.as_str(), b.as_str()])
            .collect();
        let h = self.embed(&ends).view([rows as i64, 2, -1]);
        let beta = Tensor::linspace(0.0, 1.0, 8, (Kind::Float, self.device)).view([1, 8, 1]);
        let (h1, h2) = (h.narrow(1, 0, 1), h.narrow(1, 1, 1));
        let hw = (&h1 * (beta.ones_like() - &beta) + &h2 * &beta).flatten(0, 1);
        tch::manual_seed(step_seed(self.cfg.run.seed, u64::MAX - 5));
        let z = Tensor::randn([rows as i64, 1, self.z_dim()], (Kind::Float, self.device))
            .expand([rows as i64, 8, self.z_dim()], false)
            .flatten(0, 1);
        let x = self.sample_embedded(&hw, &z).to_device(Device::Cpu);
        Ok(Some((crate::data::grid(&x, 8, 2)?, pairs)))
    }

    /// R-precision of images generated for the test split's first captions (at most
    /// `run.eval_samples`), among 100 candidates, with the encoder's image side.
    fn test_r_precision(&self) -> Result<Option<f64>> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let n = test.len().min(self.cfg.run.eval_samples as usize);
        let caps: Vec<&str> = test.captions[..n].iter().map(|c| c[0].as_str()).collect();
        let x = self.sample_text(&caps, self.cfg.run.seed ^ 0xE7A1)?;
        let e = self.embedder();
        let v = e.embed_images(&crate::data::folder::resize_batch(&x, e.image_size()))?;
        let t = e.embed_text(&caps);
        let seed = step_seed(self.cfg.run.seed, u64::MAX - 11) as u64;
        Ok(Some(crate::metrics::retrieval::r_precision(
            &v.to_device(Device::Cpu),
            &t.to_device(Device::Cpu),
            100,
            seed,
        )))
    }
}

impl TextToImage for GanIntCls {
    fn sample_text(&self, captions: &[&str], seed: u64) -> Result<Tensor> {
        if captions.is_empty() {
            return Err(GanError::Input("no captions to draw".into()));
        }
        let h = self.embed(captions);
        tch::manual_seed(step_seed(seed, u64::MAX - 1));
        let z = Tensor::randn(
            [captions.len() as i64, self.z_dim()],
            (Kind::Float, self.device),
        );
        Ok(self.sample_embedded(&h, &z))
    }

    fn sample_embedded(&self, h: &Tensor, z: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let (h, z) = (h.to_device(self.device), z.to_device(self.device));
        self.groups.get("g").with_ema(|| {
            let outs: Vec<Tensor> = (0..h.size()[0])
                .step_by(256)
                .map(|i| {
                    let n = 256.min(h.size()[0] - i);
                    self.g
                        .forward_t(&z.narrow(0, i, n), &h.narrow(0, i, n), false)
                })
                .collect();
            Tensor::cat(&outs, 0)
        })
    }

    fn embedder(&self) -> &dyn TextEmbedder {
        self.encoder
            .task()
            .text_embedder()
            .expect("checked in GanIntCls::new")
    }

    fn z_dim(&self) -> i64 {
        self.cfg.gan_int_cls.net.z_dim
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
        let (set, h_all, rows) = self.train.as_ref().ok_or_else(|| {
            GanError::Input("this run was opened for inference; resume it to train".into())
        })?;
        // Distinct images; one caption each; the wrong caption is the next image's.
        let idx = Tensor::randperm(set.len() as i64, (Kind::Int64, Device::Cpu)).narrow(0, 0, m);
        let u = Tensor::rand([m], (Kind::Float, Device::Cpu));
        let cap: Vec<i64> = Vec::<i64>::try_from(&idx)?
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let r = &rows[i as usize];
                r[((u.double_value(&[k as i64]) * r.len() as f64) as usize).min(r.len() - 1)]
            })
            .collect();
        let cap = Tensor::from_slice(&cap).to_device(self.device);
        let x = set.images.index_select(0, &idx).to_device(self.device);
        let h = h_all.index_select(0, &cap);
        let h_wrong = h.roll([1], [0]);
        let z = Tensor::randn([m, c.net.z_dim], (Kind::Float, self.device));
        let fake = self.g.forward_t(&z, &h, true);
        // D: real/right, real/wrong, fake/right.
        let s_r = self.d.forward_t(&x, &h, true);
        let s_w = c.cls.then(|| self.d.forward_t(&x, &h_wrong, true));
        let s_f = self.d.forward_t(&fake.detach(), &h, true);
        let loss_d = matching_aware_d_loss(&s_r, s_w.as_ref(), &s_f);
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        loss_d.backward();
        opt.step();
        // G with D frozen: fool D on (G(z, h), h) and, with GAN-INT, on interpolated text.
        self.groups.get("d").opt().set_requires_grad(false);
        let mut loss_g = (-self.d.forward_t(&fake, &h, true))
            .softplus()
            .mean(Kind::Float);
        let mut s = Scalars::new();
        if c.int {
            let h_int = &h * c.int_beta + &h_wrong * (1.0 - c.int_beta);
            let z2 = Tensor::randn([m, c.net.z_dim], (Kind::Float, self.device));
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
        opt.step();
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
        Ok(self.caption_grid()?.map(|(g, _)| g))
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        Ok(match self.test_r_precision()? {
            Some(r) => Scalars::new().with("r_precision", r),
            None => Scalars::new(),
        })
    }

    fn curves(&self) -> Vec<Curve> {
        vec![
            Curve {
                title: "losses",
                ylabel: "loss",
                series: vec!["loss_d", "loss_g", "loss_g_int"],
            },
            Curve {
                title: "discriminator outputs",
                ylabel: "mean σ(D)",
                series: vec!["d_real", "d_wrong", "d_fake"],
            },
        ]
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        let mut summary = serde_json::Map::new();
        if let Some(r) = self.test_r_precision()? {
            summary.insert("r_precision".into(), r.into());
        }
        let mut sections = Vec::new();
        if let Some((grid, caps)) = self.caption_grid()? {
            crate::data::write_png(&dir.join("samples.png"), &grid)?;
            let list: String = caps
                .iter()
                .map(|c| format!("<li>{}</li>", crate::report::svg::escape(c)))
                .collect();
            sections.push(Section {
                heading: "Samples (one row per test caption)".into(),
                html: format!(
                    "<img src=\"samples.png\" alt=\"samples per caption\"><ol>{list}</ol>"
                ),
            });
        }
        if let Some((grid, pairs)) = self.walks()? {
            crate::data::write_png(&dir.join("interpolation.png"), &grid)?;
            let esc = crate::report::svg::escape;
            let list: String = pairs
                .iter()
                .map(|(a, b)| format!("<li>{} → {}</li>", esc(a), esc(b)))
                .collect();
            sections.push(Section {
                heading: "Text interpolation (one row per caption pair, one noise vector per row)"
                    .into(),
                html: format!("<img src=\"interpolation.png\" alt=\"text walks\"><ol>{list}</ol>"),
            });
        }
        Ok(Outputs { summary, sections })
    }

    fn text_to_image(&self) -> Option<&dyn TextToImage> {
        Some(self)
    }
}

#[cfg(test)]
#[path = "gan_int_cls_tests.rs"]
mod tests;
