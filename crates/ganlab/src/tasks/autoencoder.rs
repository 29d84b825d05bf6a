//! LaDiffGAN's per-domain autoencoder as a task (supplement A, eqs. S2–S3):
//! L = w_l1·|x − D(E(x))|₁ + w_p·Σ_scales |f(x) − f(D(E(x)))|₁, trained on one domain
//! (`domain = "a"` or `"b"`) of an unpaired set. f is the pluggable perceptual network
//! ([`crate::models::perceptual`]): the FID Inception's blocks by default, or VGG-19 from a
//! user-provided torchvision file. The run's config, summary.json and report say which one
//! was used.
//!
//! A finished run offers its encoder and decoder as a [`LatentCodec`]: the latent DDPM and
//! LaDiffGAN open it with [`crate::run::Run::open`] and use it frozen. The summary also
//! records the latents' standard deviation over the training images (`latent_std`): the DDPM
//! divides latents by it, as LDM's `scale_factor` does.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::{Curve, Mode, Outputs, Scalars, Section, StepContext, Task};
use crate::data::unpaired::{JitterSampler, UnpairedDataConfig};
use crate::error::{GanError, Result};
use crate::models::autoencoder::{Autoencoder, AutoencoderConfig};
use crate::models::perceptual::{PerceptualConfig, PerceptualNet};
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::OptimizerConfig;
use crate::train::step_seed;

/// `[autoencoder]`: the task's section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoencoderTaskConfig {
    /// Which domain of `data` to learn: "a" or "b".
    pub domain: String,
    /// Weight of the pixel L1 term (S2).
    pub l1_weight: f64,
    /// Weight of the perceptual term (S3; the supplement sums S2 and S3 with equal weight).
    pub perceptual_weight: f64,
    /// Fixed probe images shown in the grids.
    pub probes: i64,
    /// The unpaired set (one domain of it is used).
    pub data: UnpairedDataConfig,
    /// Encoder and decoder.
    pub model: AutoencoderConfig,
    /// The perceptual network.
    pub perceptual: PerceptualConfig,
    /// Adam over encoder and decoder.
    pub optim: OptimizerConfig,
}

impl Default for AutoencoderTaskConfig {
    fn default() -> Self {
        Self {
            domain: "b".into(),
            l1_weight: 1.0,
            perceptual_weight: 1.0,
            probes: 8,
            data: UnpairedDataConfig::default(),
            model: AutoencoderConfig::default(),
            perceptual: PerceptualConfig::default(),
            optim: OptimizerConfig {
                beta1: 0.9,
                ..OptimizerConfig::adam(2e-4)
            },
        }
    }
}

impl AutoencoderTaskConfig {
    /// Checks every field.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if self.domain != "a" && self.domain != "b" {
            return Err(GanError::config(
                format!("{prefix}.domain"),
                format!("must be \"a\" or \"b\", got {:?}", self.domain),
            ));
        }
        for (f, v) in [
            ("l1_weight", self.l1_weight),
            ("perceptual_weight", self.perceptual_weight),
        ] {
            if !(0.0..=1e4).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [0, 10000], got {v}"),
                ));
            }
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
        self.perceptual.validate(&format!("{prefix}.perceptual"))?;
        self.optim.validate(&format!("{prefix}.optim"))
    }
}

/// A frozen autoencoder as other tasks use it.
pub trait LatentCodec {
    /// Images [n, c, H, W] in [−1, 1] → latents (differentiable in the images).
    fn encode(&self, x: &Tensor) -> Tensor;
    /// Latents → images in [−1, 1].
    fn decode(&self, z: &Tensor) -> Tensor;
    /// [c, H, W] of the images.
    fn image_shape(&self) -> [i64; 3];
    /// [C, h, w] of the latents.
    fn latent_shape(&self) -> [i64; 3];
    /// Which domain ("a" or "b") the autoencoder learnt.
    fn domain(&self) -> &str;
}

/// Data of a training run: the domain's train images and (if present) its test images.
#[derive(Debug)]
struct Data {
    train: JitterSampler,
    test: Option<Tensor>,
}

/// The autoencoder task (see module docs).
#[derive(Debug)]
pub struct AutoencoderTask {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    ae: Autoencoder,
    perceptual: Option<Box<dyn PerceptualNet>>,
    data: Option<Data>,
    probes: Option<Tensor>,
}

impl AutoencoderTask {
    /// The task of a validated config; `Mode::Train` loads the data and the perceptual net.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.autoencoder;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let vs = nn::VarStore::new(device);
        let ae = c.model.init(vs.root() / "ae", c.data.channels);
        let mut groups = Groups::default();
        groups.push(Group::new("ae", vs, c.optim.clone(), cfg.run.ema_beta)?);
        let (mut data, mut probes, mut perceptual) = (None, None, None);
        if mode == Mode::Train {
            let pick = |(a, b): (Tensor, Tensor)| if c.domain == "a" { a } else { b };
            let train = pick(c.data.load("train", c.data.stored_size())?);
            if train.size()[0] == 0 {
                return Err(GanError::Input(format!(
                    "{}: domain {} has no training images",
                    c.data.dir.display(),
                    c.domain
                )));
            }
            let test = if c.data.has_split("test") {
                Some(pick(c.data.load("test", c.data.image_size)?))
            } else {
                None
            };
            let source = test.as_ref().unwrap_or(&train);
            let k = c.probes.min(source.size()[0]);
            let s = c.data.image_size;
            let p = source.narrow(0, 0, k);
            let p = if p.size()[2] == s {
                p
            } else {
                p.upsample_bilinear2d([s, s], false, None, None)
            };
            probes = Some(p.to_device(device));
            data = Some(Data {
                train: JitterSampler::new(train, c.data.image_size, c.data.flip),
                test,
            });
            if c.perceptual_weight > 0.0 {
                perceptual = c.perceptual.build(device)?;
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            ae,
            perceptual,
            data,
            probes,
        })
    }

    fn data(&self) -> Result<&Data> {
        self.data
            .as_ref()
            .ok_or_else(|| GanError::Input("autoencoder: no data in inference mode".into()))
    }

    /// Mean L1 and PSNR (dB, on [0, 1] images) of the test reconstructions (EMA weights).
    fn test_scores(&self) -> Result<Option<(f64, f64)>> {
        let Some(test) = &self.data()?.test else {
            return Ok(None);
        };
        let _g = tch::no_grad_guard();
        let n = test.size()[0].min(self.cfg.run.eval_samples);
        let (mut l1, mut mse) = (0.0, 0.0);
        for s in (0..n).step_by(64) {
            let x = test.narrow(0, s, 64.min(n - s)).to_device(self.device);
            let r = self.reconstruct(&x);
            let k = x.size()[0] as f64;
            l1 += (&r - &x).abs().mean(Kind::Float).double_value(&[]) * k;
            // PSNR per image on [0, 1]: −10·log10(mse/1), mse = mean((r−x)/2)².
            let per = ((&r - &x) / 2.0)
                .square()
                .mean_dim(&[1i64, 2, 3][..], false, Kind::Float);
            mse += (per.clamp_min(1e-10).log10() * -10.0)
                .sum(Kind::Float)
                .double_value(&[]);
        }
        Ok(Some((l1 / n as f64, mse / n as f64)))
    }

    fn reconstruct(&self, x: &Tensor) -> Tensor {
        self.groups
            .get("ae")
            .with_ema(|| self.ae.decode(&self.ae.encode(x)))
    }

    /// Standard deviation of the latents of (up to 1024) training images.
    fn latent_std(&self) -> Result<f64> {
        let _g = tch::no_grad_guard();
        let d = self.data()?;
        let x = d.train.sample(1024.min(d.train.len()), self.device);
        let z = self.groups.get("ae").with_ema(|| self.ae.encode(&x));
        Ok(z.std(true).double_value(&[]))
    }
}

impl Task for AutoencoderTask {
    fn kind(&self) -> &'static str {
        "autoencoder"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let c = &self.cfg.autoencoder;
        let x = self
            .data()?
            .train
            .sample(self.cfg.run.batch_size, self.device);
        let r = self.ae.decode(&self.ae.encode(&x));
        let l1 = (&r - &x).abs().mean(Kind::Float) * c.l1_weight;
        let perc = match &self.perceptual {
            Some(p) => p.loss(&x, &r) * c.perceptual_weight,
            None => Tensor::zeros([], (Kind::Float, self.device)),
        };
        let loss = &l1 + &perc;
        let opt = self.groups.get_mut("ae").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        let mut s = Scalars::new();
        for (k, v) in [
            ("loss", &loss),
            ("loss_l1", &l1),
            ("loss_perceptual", &perc),
        ] {
            s.push(k, v.double_value(&[]));
        }
        Ok(s)
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }

    fn restore(&mut self, _: serde_json::Value) -> Result<()> {
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        let Some(p) = &self.probes else {
            return Ok(None);
        };
        let _g = tch::no_grad_guard();
        let r = self.reconstruct(p);
        let k = p.size()[0];
        Ok(Some(crate::data::grid(&Tensor::cat(&[p, &r], 0), k, 2)?))
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        Ok(match self.test_scores()? {
            Some((l1, psnr)) => Scalars::new().with("test_l1", l1).with("test_psnr", psnr),
            None => Scalars::new(),
        })
    }

    fn curves(&self) -> Vec<Curve> {
        vec![Curve {
            title: "reconstruction losses (weighted)",
            ylabel: "loss",
            series: vec!["loss_l1", "loss_perceptual"],
        }]
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        let c = &self.cfg.autoencoder;
        let mut summary = serde_json::Map::new();
        let perceptual = match &self.perceptual {
            Some(p) => p.describe(),
            None => "none (L1 only)".into(),
        };
        summary.insert("perceptual".into(), perceptual.clone().into());
        summary.insert("domain".into(), c.domain.clone().into());
        let shape = c.model.latent_shape(c.data.image_size);
        summary.insert("latent_shape".into(), serde_json::json!(shape));
        summary.insert("latent_std".into(), self.latent_std()?.into());
        let mut html = format!(
            "<p>Domain {}; latents {}×{}×{}; perceptual network: {}.</p>",
            c.domain, shape[0], shape[1], shape[2], perceptual
        );
        if let Some((l1, psnr)) = self.test_scores()? {
            summary.insert("test_l1".into(), l1.into());
            summary.insert("test_psnr".into(), psnr.into());
            html += &format!("<p>Test split: L1 {l1:.4}, PSNR {psnr:.2} dB.</p>");
        }
        if let Some(grid) = self.visuals()? {
            crate::data::write_png(&dir.join("reconstructions.png"), &grid)?;
            html +=
                "<img src=\"reconstructions.png\" alt=\"inputs (top), reconstructions (bottom)\">";
        }
        Ok(Outputs {
            summary,
            sections: vec![Section {
                heading: "Autoencoder".into(),
                html,
            }],
        })
    }

    fn codec(&self) -> Option<&dyn LatentCodec> {
        Some(self)
    }
}

impl LatentCodec for AutoencoderTask {
    fn encode(&self, x: &Tensor) -> Tensor {
        self.ae.encode(x)
    }

    fn decode(&self, z: &Tensor) -> Tensor {
        self.ae.decode(z)
    }

    fn image_shape(&self) -> [i64; 3] {
        let d = &self.cfg.autoencoder.data;
        [d.channels, d.image_size, d.image_size]
    }

    fn latent_shape(&self) -> [i64; 3] {
        let c = &self.cfg.autoencoder;
        c.model.latent_shape(c.data.image_size)
    }

    fn domain(&self) -> &str {
        &self.cfg.autoencoder.domain
    }
}
