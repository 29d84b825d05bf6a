//! LaDiffGAN's latent DDPM as a task (supplement A, eq. S1). The main paper's Eq. 2 and
//! Eq. 5 are not available to us; ../shared/specs/translation.md §1 reconstructs them as DDPM
//! and LDM have them:
//! - Eq. 2 (forward process): q(z_t | z_0) = N(√ᾱ_t·z_0, (1 − ᾱ_t)·I), with z_0 = E_d(x)/s,
//!   ᾱ_t = Π_{s≤t}(1 − β_s), β linear from 1e-4 to 0.02, T = 1000. It is computed by
//!   [`crate::diffusion::schedule::q_sample`], the same function as Diffusion-GAN's
//!   augment stage.
//! - Eq. 5 (objective): E_{z_0, t ~ U{1..T}, ε ~ N(0, I)} ‖ε − ε_θ(z_t, t)‖².
//! - Eq. S1 (sampling): ancestral, z_T ~ N(0, I), and for t = T..1
//!   z_{t−1} = (z_t − β_t/√(1 − ᾱ_t)·ε_θ(z_t, t))/√(1 − β_t) + σ_t·ε with σ_t² = β_t, and
//!   no noise at t = 1. σ_t² = β_t is Ho et al.'s CIFAR-10 choice.
//!
//! The latents are those of a finished autoencoder run (`autoencoder = "runs/ae-b"`, frozen,
//! EMA weights), for every training image of its domain and its mirror image. They are divided by
//! their standard deviation s, as LDM's `scale_factor` does, so that z_0 has unit variance
//! like the noise. s is saved with the run.
//!
//! The check that the DDPM has learnt the latent distribution (`finish`, when the FID
//! Inception is fetched): FID against the domain's training images of
//! - decoded DDPM samples,
//! - decoded Gaussian latents s·N(0, I) (the floor: what a DDPM that learnt nothing gives),
//! - decoded encodings of real images (the ceiling the autoencoder allows).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::{Mode, Outputs, Scalars, Section, StepContext, Task};
use crate::diffusion::schedule::{
    alphas_bar, alphas_bar_at, ddpm_coefficients, q_sample, BetaSchedule,
};
use crate::error::{GanError, Result};
use crate::metrics::{extract_all, frechet_distance, FeatureStats};
use crate::models::latent_unet::{LatentUnet, LatentUnetConfig};
use crate::run::Run;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::OptimizerConfig;
use crate::train::step_seed;

/// `[ddpm]`: the task's section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdpmConfig {
    /// Run directory of a finished autoencoder run (relative paths: from the working
    /// directory).
    pub autoencoder: PathBuf,
    /// Steps of the chain T (reconstructed Eq. 2: 1000).
    pub t_max: usize,
    /// β_1 (1e-4).
    pub beta_start: f64,
    /// β_T (0.02).
    pub beta_end: f64,
    /// How β grows (linear).
    pub beta_schedule: BetaSchedule,
    /// Samples drawn for the final FID check (0: none).
    pub samples: i64,
    /// The FID Inception for that check.
    pub inception: PathBuf,
    /// The ε-predictor.
    pub model: LatentUnetConfig,
    /// Adam over the U-Net (DDPM: 2e-4, β (0.9, 0.999)).
    pub optim: OptimizerConfig,
}

impl Default for DdpmConfig {
    fn default() -> Self {
        Self {
            autoencoder: "runs/ae-b".into(),
            t_max: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            samples: 500,
            inception: "data/inception/default_1.pt".into(),
            model: LatentUnetConfig::default(),
            optim: OptimizerConfig {
                beta1: 0.9,
                ..OptimizerConfig::adam(2e-4)
            },
        }
    }
}

impl DdpmConfig {
    /// Checks every field (the autoencoder run is checked when opened).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if !(2..=10_000).contains(&self.t_max) {
            return err(
                "t_max",
                format!("must be in [2, 10000], got {}", self.t_max),
            );
        }
        if !(self.beta_start > 0.0 && self.beta_start < self.beta_end && self.beta_end < 1.0) {
            return err(
                "beta_end",
                format!(
                    "need 0 < beta_start < beta_end < 1, got {} and {}",
                    self.beta_start, self.beta_end
                ),
            );
        }
        if !(0..=50_000).contains(&self.samples) {
            return err(
                "samples",
                format!("must be in [0, 50000], got {}", self.samples),
            );
        }
        self.optim.validate(&format!("{prefix}.optim"))
    }
}

/// Ancestral sampling (eq. S1, see module docs) from z_T = `z` with β_1..β_T = `betas` and
/// the ε-predictor `eps(z_t, t)`; fresh noise from libtorch's generator.
pub fn ancestral(betas: &[f64], z: &Tensor, eps: &dyn Fn(&Tensor, &Tensor) -> Tensor) -> Tensor {
    let ab = alphas_bar(betas);
    let n = z.size()[0];
    let mut z = z.shallow_clone();
    for t in (1..=betas.len()).rev() {
        let tt = Tensor::full([n], t as i64, (Kind::Int64, z.device()));
        let beta = betas[t - 1];
        let e = eps(&z, &tt);
        let mean = (&z - e * (beta / (1.0 - ab[t]).sqrt())) / (1.0 - beta).sqrt();
        z = if t > 1 {
            mean + z.randn_like() * beta.sqrt()
        } else {
            mean
        };
    }
    z
}

/// A frozen latent DDPM as LaDiffGAN uses it.
pub trait LatentDenoiser {
    /// ε_θ(z_t, t) for scaled latents z_t [n, C, h, w] and steps t ([n], Int64, 1..=T).
    fn eps(&self, z_t: &Tensor, t: &Tensor) -> Tensor;
    /// ᾱ_0..ᾱ_T (ᾱ_0 = 1).
    fn alphas_bar(&self) -> &[f64];
    /// The scale s: the DDPM's latents are E(x)/s.
    fn scale(&self) -> f64;
    /// The autoencoder whose latents it learnt.
    fn autoencoder(&self) -> &dyn super::autoencoder::LatentCodec;
}

/// State saved with the run: the latent scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DdpmState {
    scale: f64,
}

/// The latent DDPM task (see module docs).
#[derive(Debug)]
pub struct Ddpm {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    unet: LatentUnet,
    ae: Run,
    betas: Vec<f64>,
    ab: Vec<f64>,
    scale: f64,
    /// Scaled training latents (training mode).
    latents: Option<Tensor>,
}

impl Ddpm {
    /// The task of a validated config; opens the autoencoder run, and in `Mode::Train`
    /// encodes its domain's training images.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.ddpm;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        let ae = Run::open(&c.autoencoder).map_err(|e| {
            GanError::config(
                "ddpm.autoencoder",
                format!("{}: {e}", c.autoencoder.display()),
            )
        })?;
        let codec = ae.task().codec().ok_or_else(|| {
            GanError::config(
                "ddpm.autoencoder",
                format!("{} is not an autoencoder run", c.autoencoder.display()),
            )
        })?;
        let [lc, lh, lw] = codec.latent_shape();
        c.model.validate("ddpm.model", lh.min(lw))?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let vs = nn::VarStore::new(device);
        let unet = c.model.init(vs.root() / "eps", lc);
        let mut groups = Groups::default();
        groups.push(Group::new("eps", vs, c.optim.clone(), cfg.run.ema_beta)?);
        let betas = c.beta_schedule.betas(c.beta_start, c.beta_end, c.t_max);
        let ab = alphas_bar(&betas);
        let (mut latents, mut scale) = (None, 1.0);
        if mode == Mode::Train {
            let z = Self::encode_domain(&ae, device)?;
            scale = z.std(true).double_value(&[]).max(1e-6);
            latents = Some(z / scale);
        }
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            unet,
            ae,
            betas,
            ab,
            scale,
            latents,
        })
    }

    /// The autoencoder's domain's training images at its image size.
    fn domain_images(ae: &Run) -> Result<Tensor> {
        let a = &ae.config().autoencoder;
        let (x, y) = a.data.load("train", a.data.image_size)?;
        Ok(if a.domain == "a" { x } else { y })
    }

    /// Latents (unscaled) of every training image and its mirror image.
    fn encode_domain(ae: &Run, device: Device) -> Result<Tensor> {
        let x = Self::domain_images(ae)?;
        let x = Tensor::cat(&[&x, &x.flip([3])], 0);
        let codec = ae.task().codec().expect("checked");
        let _g = tch::no_grad_guard();
        let mut zs = Vec::new();
        for s in (0..x.size()[0]).step_by(128) {
            let b = x.narrow(0, s, 128.min(x.size()[0] - s)).to_device(device);
            zs.push(codec.encode(&b));
        }
        Ok(Tensor::cat(&zs, 0))
    }

    /// `n` scaled latents by ancestral sampling (eq. S1; EMA weights), seeded by `seed`.
    pub fn sample(&self, n: i64, seed: u64) -> Tensor {
        let _g = tch::no_grad_guard();
        tch::manual_seed(step_seed(seed, u64::MAX - 7));
        let [c, h, w] = self.autoencoder().latent_shape();
        let z = Tensor::randn([n, c, h, w], (Kind::Float, self.device));
        self.groups
            .get("eps")
            .with_ema(|| ancestral(&self.betas, &z, &|z, t| self.unet.forward(z, t)))
    }

    /// FIDs of decoded samples, decoded Gaussian latents and reconstructions against the
    /// domain's training images (None: no Inception, or no samples asked for).
    fn fid_check(&self, dir: &Path) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let n = self.cfg.ddpm.samples;
        if n == 0 || !self.cfg.ddpm.inception.is_file() {
            return Ok(None);
        }
        let ex = crate::metrics::InceptionFid::load(&self.cfg.ddpm.inception, self.device)?;
        let real = Self::domain_images(&self.ae)?;
        let codec = self.autoencoder();
        let _g = tch::no_grad_guard();
        let decode = |z: &Tensor| -> Tensor {
            let mut xs = Vec::new();
            for s in (0..z.size()[0]).step_by(64) {
                let b = z.narrow(0, s, 64.min(z.size()[0] - s));
                xs.push(codec.decode(&(b * self.scale)).to_device(Device::Cpu));
            }
            Tensor::cat(&xs, 0)
        };
        let samples = decode(&self.sample(n, self.cfg.run.seed));
        tch::manual_seed(step_seed(self.cfg.run.seed, u64::MAX - 8));
        let [c, h, w] = codec.latent_shape();
        let floor = decode(&Tensor::randn([n, c, h, w], (Kind::Float, self.device)));
        let k = n.min(real.size()[0]);
        let idx = Tensor::randperm(real.size()[0], (Kind::Int64, Device::Cpu)).narrow(0, 0, k);
        let enc = codec.encode(&real.index_select(0, &idx).to_device(self.device)) / self.scale;
        let recon = decode(&enc);
        // The real images' statistics once, for the three FIDs.
        let stats = |x: &Tensor| -> Result<FeatureStats> {
            FeatureStats::from_features(&extract_all(&ex, x, &mut crate::progress::Silent)?.0)
        };
        let real_stats = stats(&real)?;
        let mut out = serde_json::Map::new();
        for (name, x) in [
            ("ddpm", &samples),
            ("gaussian", &floor),
            ("reconstruction", &recon),
        ] {
            let fid = frechet_distance(&real_stats, &stats(x)?)?;
            out.insert(format!("fid_{name}"), fid.into());
        }
        out.insert("fid_samples".into(), n.into());
        out.insert("fid_real".into(), real.size()[0].into());
        crate::data::write_png(
            &dir.join("ddpm_samples.png"),
            &crate::data::grid(&samples.narrow(0, 0, 64.min(n)), 8, 2)?,
        )?;
        Ok(Some(out))
    }
}

impl Task for Ddpm {
    fn kind(&self) -> &'static str {
        "ddpm"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let z_all = self
            .latents
            .as_ref()
            .ok_or_else(|| GanError::Input("ddpm: no latents in inference mode".into()))?;
        let m = self.cfg.run.batch_size;
        let idx = crate::dist::randint(0, z_all.size()[0], &[m], (Kind::Int64, self.device));
        let z0 = z_all.index_select(0, &idx);
        let t_max = self.cfg.ddpm.t_max as i64;
        let t = crate::dist::randint(1, t_max + 1, &[m], (Kind::Int64, self.device));
        let (a, b) = ddpm_coefficients(&alphas_bar_at(&self.ab, &t)?);
        let eps = crate::dist::randn(&z0.size(), (z0.kind(), z0.device()));
        let zt = q_sample(&z0, eps.copy(), &a, &b);
        let loss = (self.unet.forward(&zt, &t) - eps)
            .square()
            .mean(Kind::Float);
        let opt = self.groups.get_mut("eps").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        Ok(Scalars::new().with("loss", loss.double_value(&[])))
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(DdpmState { scale: self.scale })?)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        let s: DdpmState = serde_json::from_value(state)
            .map_err(|e| GanError::Input(format!("checkpoint state of ddpm: {e}")))?;
        if !(s.scale.is_finite() && s.scale > 0.0) {
            return Err(GanError::Input(format!(
                "checkpoint state of ddpm: scale must be finite and > 0, got {}",
                s.scale
            )));
        }
        if let Some(z) = &mut self.latents {
            // Training latents were divided by this run's scale; a resumed run keeps the saved one.
            *z = &*z * (self.scale / s.scale);
        }
        self.scale = s.scale;
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        Ok(None)
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        let mut summary = serde_json::Map::new();
        summary.insert("latent_scale".into(), self.scale.into());
        let mut html = format!(
            "<p>Latents of {} (scale s = {:.4}); T = {}, β {} → {}.</p>",
            self.cfg.ddpm.autoencoder.display(),
            self.scale,
            self.cfg.ddpm.t_max,
            self.cfg.ddpm.beta_start,
            self.cfg.ddpm.beta_end
        );
        match self.fid_check(dir)? {
            Some(f) => {
                html += &format!(
                    "<p>FID against the domain's {} training images ({} samples each): decoded DDPM samples {:.1}; decoded Gaussian latents (floor) {:.1}; reconstructions (ceiling) {:.1}.</p><img src=\"ddpm_samples.png\" alt=\"decoded DDPM samples\">",
                    f["fid_real"], f["fid_samples"],
                    f["fid_ddpm"].as_f64().unwrap_or(f64::NAN),
                    f["fid_gaussian"].as_f64().unwrap_or(f64::NAN),
                    f["fid_reconstruction"].as_f64().unwrap_or(f64::NAN)
                );
                summary.extend(f);
            }
            None => html += "<p>No FID check (no Inception, or samples = 0).</p>",
        }
        Ok(Outputs {
            summary,
            sections: vec![Section {
                heading: "Latent DDPM".into(),
                html,
            }],
        })
    }

    fn denoiser(&self) -> Option<&dyn LatentDenoiser> {
        Some(self)
    }
}

impl LatentDenoiser for Ddpm {
    fn eps(&self, z_t: &Tensor, t: &Tensor) -> Tensor {
        self.unet.forward(z_t, t)
    }

    fn alphas_bar(&self) -> &[f64] {
        &self.ab
    }

    fn scale(&self) -> f64 {
        self.scale
    }

    fn autoencoder(&self) -> &dyn super::autoencoder::LatentCodec {
        self.ae.task().codec().expect("checked when opened")
    }
}
