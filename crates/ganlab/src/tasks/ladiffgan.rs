//! LaDiffGAN (Liu et al., CVPRW 2024; ladiffgan-supplement.txt): U-GAT-IT
//! ([`crate::tasks::ugatit`], the supplement's eqs. S4–S7, unchanged) supervised by
//! diffusion in the target domain's latent space. No official code exists and the main
//! paper is not available, so the terms below are reconstructed. The sources are in
//! ../shared/specs/translation.md §1 and its recommendation 1.
//!
//! Pretrained and frozen, per domain d: the autoencoder E_d / Dec_d
//! ([`crate::tasks::autoencoder`], S2–S3) and the latent DDPM ε_d
//! ([`crate::tasks::ddpm`], S1 and the reconstructed Eq. 2 and Eq. 5). The DDPM's latents are
//! scaled, z = E_d(x)/s_d. For a translation x̂ = G_{s→d}(x_s), let ẑ = E_d(x̂)/s_d.
//! Gradients flow through the frozen E_d into G.
//!
//! **(a) Latent diffusion GAN loss L_LDG** (reconstructed: Diffusion-GAN, seed 001, moved
//! into latent space; the abstract's "aligning latents of generated and real images with
//! different amounts of Gaussian noise"):
//! - per domain, a t-conditioned latent discriminator D^z_d (a PatchGAN on latents,
//!   [`crate::models::patchgan`] without normalisation);
//! - it sees y = q_sample(z) for real latents E_d(x_d)/s_d and for translated latents ẑ.
//!   Both domains' real and translated latents share one t-list, drawn by one adaptive-T
//!   controller ([`crate::diffusion::Diffusion`], its own instance in `[ladiffgan.diffusion]`;
//!   default σ 0.05, T in [5, 500], d_target 0.6, as the spec recommends);
//! - LSGAN targets: L_D = Σ_d (D^z_d(y_real) − 1)² + D^z_d(y_fake)², and for G
//!   L_LDG = Σ_d (D^z_d(y(ẑ)) − 1)²;
//! - the controller counts the signs of D^z on real latents, as the augment stage does for
//!   the pixel D.
//!
//! **(b) Conditional denoising loss L_HCD** (reconstructed: score distillation through the
//! frozen target DDPM, DreamFusion / threestudio's `stable_diffusion_guidance.py`):
//! - t ~ U{⌈0.02T⌉ … ⌊0.98T⌋}, ε ~ N(0, I), ẑ_t = √ᾱ_t·ẑ + √(1 − ᾱ_t)·ε;
//! - gradient w(t)(ε_d(ẑ_t, t) − ε)·∂ẑ/∂θ with w(t) = 1 − ᾱ_t;
//! - implemented as the surrogate L_HCD = ½·Σ(ẑ − sg(ẑ − g))²/B, g = w(t)(ε̂ − ε), whose
//!   gradient in ẑ is g/B ([`sds_surrogate`]);
//! - the optional image-level term (threestudio's option; weight `hcd_image_weight`,
//!   default 0): ẑ_0 = (ẑ_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t, x_0 = Dec_d(s_d·ẑ_0), and
//!   L_img = ½·Σ w(t)·√ᾱ_t/√(1 − ᾱ_t)·(x̂ − sg(x_0))²/B. Its gradient in x̂ is the latent
//!   SDS gradient carried to image space;
//! - "heterogeneous conditional" is not defined anywhere we can read. The denoiser is
//!   unconditional, as the spec recommends.
//!
//! L_G = U-GAT-IT's L_G + w_LDG·L_LDG + w_HCD·(L_HCD + w_img·L_img), in both directions.
//! The weights are unknown and default to 1 (w_img 0). The latent Ds get their own Adam,
//! set as U-GAT-IT's D.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::ddpm::LatentDenoiser;
use super::ugatit::{Supervision, Ugatit};
use super::unpaired::{lsgan_sign_sum, mse};
use super::{Curve, Mode, Outputs, Scalars, Section, StepContext, Task, Translator};
use crate::diffusion::schedule::{alphas_bar_at, ddpm_coefficients, q_sample};
use crate::diffusion::{Diffusion, DiffusionConfig, DiffusionState};
use crate::error::{GanError, Result};
use crate::models::patchgan::{PatchGan, PatchGanConfig, PatchNorm};
use crate::rng::mix64;
use crate::run::Run;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::OptimizerConfig;

/// `[ladiffgan]`: what LaDiffGAN adds to `[ugatit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LadiffganConfig {
    /// Run directory of domain A's latent DDPM (its autoencoder is the one it names).
    pub ddpm_a: PathBuf,
    /// Run directory of domain B's latent DDPM.
    pub ddpm_b: PathBuf,
    /// Weight of the latent diffusion GAN loss (a); 0 turns it off.
    pub ldg_weight: f64,
    /// Weight of the conditional denoising (SDS) loss (b); 0 turns it off.
    pub hcd_weight: f64,
    /// Weight of (b)'s image-level term, relative to (b).
    pub hcd_image_weight: f64,
    /// (b)'s range of t as fractions of T (DreamFusion: 0.02, 0.98).
    pub hcd_t_range: [f64; 2],
    /// The latent discriminators (a PatchGAN on latents).
    pub latent_d: PatchGanConfig,
    /// The latent noise and its adaptive T (always on).
    pub diffusion: DiffusionConfig,
    /// Adam over the latent Ds.
    pub optim: OptimizerConfig,
}

impl Default for LadiffganConfig {
    fn default() -> Self {
        Self {
            ddpm_a: "runs/ddpm-a".into(),
            ddpm_b: "runs/ddpm-b".into(),
            ldg_weight: 1.0,
            hcd_weight: 1.0,
            hcd_image_weight: 0.0,
            hcd_t_range: [0.02, 0.98],
            latent_d: PatchGanConfig {
                ndf: 64,
                n_layers: 1,
                norm: PatchNorm::None,
                t_embedding: Default::default(),
            },
            diffusion: DiffusionConfig {
                t_max: 500,
                ..DiffusionConfig::default()
            },
            optim: super::ugatit::UgatitOptim::default().d,
        }
    }
}

impl LadiffganConfig {
    /// Checks every field (the DDPM runs are checked when opened).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (f, v) in [
            ("ldg_weight", self.ldg_weight),
            ("hcd_weight", self.hcd_weight),
            ("hcd_image_weight", self.hcd_image_weight),
        ] {
            if !(0.0..=1e4).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [0, 10000], got {v}"),
                ));
            }
        }
        let [lo, hi] = self.hcd_t_range;
        if !(0.0 < lo && lo <= hi && hi <= 1.0) {
            return Err(GanError::config(
                format!("{prefix}.hcd_t_range"),
                format!("need 0 < low <= high <= 1, got [{lo}, {hi}]"),
            ));
        }
        if !self.diffusion.enabled {
            return Err(GanError::config(
                format!("{prefix}.diffusion.enabled"),
                "the latent diffusion GAN loss needs its noise: set ldg_weight = 0 to turn (a) off",
            ));
        }
        self.diffusion.validate(&format!("{prefix}.diffusion"))?;
        self.optim.validate(&format!("{prefix}.optim"))
    }
}

/// ½·Σ(ẑ − sg(ẑ − g))²/B: the SDS surrogate whose gradient in `z` is `g`/B (B = batch).
pub fn sds_surrogate(z: &Tensor, g: &Tensor) -> Tensor {
    let target = (z - g).detach();
    (z - target).square().sum(Kind::Float) * (0.5 / z.size()[0] as f64)
}

/// The latent terms (a) and (b) as U-GAT-IT [`Supervision`].
#[derive(Debug)]
struct Latent {
    cfg: LadiffganConfig,
    /// The DDPM runs of domains A and B.
    ddpm: [Run; 2],
    /// The latent Ds of domains A and B.
    d: [PatchGan; 2],
    diffusion: Diffusion,
}

impl Latent {
    fn den(&self, k: usize) -> &dyn LatentDenoiser {
        self.ddpm[k].task().denoiser().expect("checked when opened")
    }

    /// Scaled latents E_k(x)/s_k of images of domain k (differentiable in x).
    fn encode(&self, k: usize, x: &Tensor) -> Tensor {
        let d = self.den(k);
        d.autoencoder().encode(x) / d.scale()
    }

    /// Real and translated latents of both domains diffused at one t-list: the D input of
    /// domain k is rows [2km, 2km + 2m) of y (real, then translated), t repeated to match.
    fn diffused(&mut self, real: [&Tensor; 2], fake: [&Tensor; 2]) -> Result<(Tensor, Tensor)> {
        let (y, t) = self
            .diffusion
            .augment(&[real[0], fake[0], real[1], fake[1]])?;
        Ok((y, Tensor::cat(&[&t, &t, &t, &t], 0)))
    }

    /// L_HCD (and its image term) for translations `x` into domain k with latents `z`.
    fn hcd(&self, k: usize, x: &Tensor, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let den = self.den(k);
        let ab = den.alphas_bar();
        let t_max = (ab.len() - 1) as f64;
        let lo = ((self.cfg.hcd_t_range[0] * t_max).ceil() as i64).max(1);
        let hi = ((self.cfg.hcd_t_range[1] * t_max).floor() as i64).max(lo);
        let m = z.size()[0];
        let t = crate::dist::randint(lo, hi + 1, &[m], (Kind::Int64, z.device()));
        let abt = alphas_bar_at(ab, &t)?;
        let col =
            |f: &dyn Fn(f64) -> f64| -> Vec<f32> { abt.iter().map(|&a| f(a) as f32).collect() };
        let (sa, sb) = ddpm_coefficients(&abt);
        let per_sample = |v: Vec<f32>| {
            Tensor::from_slice(&v)
                .to_device(z.device())
                .view([m, 1, 1, 1])
        };
        let eps = crate::dist::randn(&z.size(), (z.kind(), z.device()));
        let zt = q_sample(&z.detach(), eps.copy(), &sa, &sb);
        let e_hat = tch::no_grad(|| den.eps(&zt, &t));
        let w = per_sample(col(&|a| 1.0 - a));
        let latent = sds_surrogate(z, &((&e_hat - &eps) * &w));
        let image = if self.cfg.hcd_image_weight > 0.0 {
            let x0 = tch::no_grad(|| {
                let z0 = (&zt - &e_hat * per_sample(sb.clone())) / per_sample(sa.clone());
                den.autoencoder().decode(&(z0 * den.scale()))
            });
            let coef = per_sample(col(&|a| (1.0 - a) * a.sqrt() / (1.0 - a).sqrt()));
            ((x - x0).square() * coef).sum(Kind::Float) * (0.5 / m as f64)
        } else {
            Tensor::zeros([], (Kind::Float, z.device()))
        };
        Ok((latent, image))
    }
}

impl Supervision for Latent {
    fn d_step(
        &mut self,
        groups: &mut Groups,
        real: [&Tensor; 2],
        fake: [&Tensor; 2],
    ) -> Result<Scalars> {
        if self.cfg.ldg_weight == 0.0 {
            return Ok(Scalars::new());
        }
        // fake[0] = G_ab(a) lies in domain B, fake[1] = G_ba(b) in A.
        let (zr, zf) = tch::no_grad(|| {
            (
                [self.encode(0, real[0]), self.encode(1, real[1])],
                [self.encode(0, fake[1]), self.encode(1, fake[0])],
            )
        });
        let (y, t) = self.diffused([&zr[0], &zr[1]], [&zf[0], &zf[1]])?;
        let m = real[0].size()[0];
        let mut loss = Tensor::zeros([], (Kind::Float, y.device()));
        let mut votes = 0.0;
        for k in 0..2 {
            let o = self.d[k].forward(
                &y.narrow(0, 2 * k as i64 * m, 2 * m),
                &t.narrow(0, 0, 2 * m),
            );
            let (pr, pf) = (o.narrow(0, 0, m), o.narrow(0, m, m));
            votes += lsgan_sign_sum(&pr);
            loss = loss + mse(&pr, 1.0) + mse(&pf, 0.0);
        }
        let loss = loss * self.cfg.ldg_weight;
        let opt = groups.get_mut("dz").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        self.diffusion.observe_real(votes, 2 * m as u64)?;
        Ok(Scalars::new().with("loss_dz", loss.double_value(&[])))
    }

    fn g_terms(
        &mut self,
        groups: &mut Groups,
        _real: [&Tensor; 2],
        fake: [&Tensor; 2],
    ) -> Result<Vec<(&'static str, Tensor)>> {
        // Translations indexed by target domain: into A is G_ba(b) = fake[1].
        let into = [fake[1], fake[0]];
        let z = [self.encode(0, into[0]), self.encode(1, into[1])];
        let mut out = Vec::new();
        if self.cfg.ldg_weight > 0.0 {
            groups.get("dz").opt().set_requires_grad(false);
            let (y, t) = self.diffusion.augment(&[&z[0], &z[1]])?;
            let m = z[0].size()[0];
            let mut l = Tensor::zeros([], (Kind::Float, y.device()));
            for k in 0..2 {
                l += mse(&self.d[k].forward(&y.narrow(0, k as i64 * m, m), &t), 1.0);
            }
            groups.get("dz").opt().set_requires_grad(true);
            out.push(("loss_ldg", l * self.cfg.ldg_weight));
        }
        if self.cfg.hcd_weight > 0.0 {
            let (mut lat, mut img) = self.hcd(0, into[0], &z[0])?;
            let (l1, i1) = self.hcd(1, into[1], &z[1])?;
            lat += l1;
            img += i1;
            out.push(("loss_hcd", lat * self.cfg.hcd_weight));
            if self.cfg.hcd_image_weight > 0.0 {
                out.push((
                    "loss_hcd_image",
                    img * (self.cfg.hcd_weight * self.cfg.hcd_image_weight),
                ));
            }
        }
        Ok(out)
    }
}

/// Resumable state: U-GAT-IT's and the latent controller's.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LadiffganState {
    ugatit: serde_json::Value,
    latent: DiffusionState,
}

/// The LaDiffGAN task (see module docs).
#[derive(Debug)]
pub struct Ladiffgan {
    base: Ugatit,
    latent: Latent,
    batch: i64,
}

impl Ladiffgan {
    /// The task of a validated config: U-GAT-IT from `[ugatit]`, the frozen DDPM runs (and
    /// their autoencoders) of `[ladiffgan]`, and the latent Ds as group `dz`.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.ladiffgan;
        let mut base = Ugatit::new(cfg, mode)?;
        let u = &cfg.ugatit.data;
        let open = |field: &str, dir: &Path| -> Result<Run> {
            let field = format!("ladiffgan.{field}");
            let run = Run::open(dir)
                .map_err(|e| GanError::config(&field, format!("{}: {e}", dir.display())))?;
            let den = run.task().denoiser().ok_or_else(|| {
                GanError::config(&field, format!("{} is not a ddpm run", dir.display()))
            })?;
            let shape = den.autoencoder().image_shape();
            if shape != [u.channels, u.image_size, u.image_size] {
                return Err(GanError::config(
                    &field,
                    format!(
                        "its autoencoder takes images {shape:?}, the translation makes [{}, {}, {}]",
                        u.channels, u.image_size, u.image_size
                    ),
                ));
            }
            Ok(run)
        };
        let ddpm = [open("ddpm_a", &c.ddpm_a)?, open("ddpm_b", &c.ddpm_b)?];
        for (k, want) in ["a", "b"].iter().enumerate() {
            let got = ddpm[k]
                .task()
                .denoiser()
                .expect("checked")
                .autoencoder()
                .domain()
                .to_string();
            if got != *want {
                return Err(GanError::config(
                    format!("ladiffgan.ddpm_{want}"),
                    format!("its autoencoder learnt domain {got}, not {want}"),
                ));
            }
        }
        let device = crate::device::resolve_device(&cfg.run.device)?;
        let lc = ddpm[0]
            .task()
            .denoiser()
            .expect("checked")
            .autoencoder()
            .latent_shape();
        c.latent_d
            .validate("ladiffgan.latent_d", lc[1].min(lc[2]))?;
        tch::manual_seed(crate::train::step_seed(cfg.run.seed, u64::MAX - 11));
        let vs = nn::VarStore::new(device);
        let d = [
            c.latent_d.init(vs.root() / "dz_a", lc[0], true),
            c.latent_d.init(vs.root() / "dz_b", lc[0], true),
        ];
        base.groups_mut()
            .push(Group::new("dz", vs, c.optim.clone(), 0.0)?);
        Ok(Self {
            base,
            latent: Latent {
                cfg: c.clone(),
                ddpm,
                d,
                diffusion: Diffusion::new(c.diffusion.clone(), mix64(cfg.run.seed ^ 0x1A7E)),
            },
            batch: cfg.run.batch_size,
        })
    }
}

impl Task for Ladiffgan {
    fn kind(&self) -> &'static str {
        "ladiffgan"
    }

    fn groups(&self) -> &Groups {
        self.base.groups()
    }

    fn groups_mut(&mut self) -> &mut Groups {
        self.base.groups_mut()
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        self.base.step_with(Some(&mut self.latent))
    }

    fn may_be_nan(&self, name: &str) -> bool {
        name == "r_d" || name == "r_d_latent"
    }

    fn end_step(&mut self) -> Scalars {
        let mut s = self.base.end_step();
        if self.latent.cfg.ldg_weight > 0.0 {
            let d = &mut self.latent.diffusion;
            d.end_minibatch(self.batch as usize);
            s.push("T_latent", d.t_cur() as f64);
            s.push("p_latent", d.p());
            s.push("r_d_latent", d.last_r_d().unwrap_or(f64::NAN));
        }
        s
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(LadiffganState {
            ugatit: self.base.state()?,
            latent: self.latent.diffusion.state().clone(),
        })?)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        let s: LadiffganState = serde_json::from_value(state)
            .map_err(|e| GanError::Input(format!("checkpoint state of ladiffgan: {e}")))?;
        self.base.restore(s.ugatit)?;
        self.latent.diffusion = Diffusion::restore(self.latent.cfg.diffusion.clone(), s.latent)?;
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        self.base.visuals()
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        self.base.evaluate()
    }

    fn status(&self, s: &Scalars) -> String {
        let v = |k| s.get(k).unwrap_or(f64::NAN);
        format!(
            "{} ldg={:.3} hcd={:.4}",
            self.base.status(s),
            v("loss_ldg"),
            v("loss_hcd")
        )
    }

    fn curves(&self) -> Vec<Curve> {
        let mut c = self.base.curves();
        c.push(Curve {
            title: "latent diffusion supervision (weighted)",
            ylabel: "loss",
            series: vec!["loss_ldg", "loss_hcd", "loss_hcd_image", "loss_dz"],
        });
        c.push(Curve {
            title: "latent adaptive T",
            ylabel: "T",
            series: vec!["T_latent"],
        });
        c
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        let mut out = self.base.finish(dir)?;
        let c = &self.latent.cfg;
        if c.ldg_weight > 0.0 {
            out.summary.insert(
                "final_T_latent".into(),
                self.latent.diffusion.t_cur().into(),
            );
        }
        out.sections.push(Section {
            heading: "LaDiffGAN latent supervision".into(),
            html: format!(
                "<p>Latent DDPMs {} (A) and {} (B); w_LDG {}, w_HCD {} (image term {}), SDS t ∈ [{}, {}]·T; final latent T {}.</p>",
                c.ddpm_a.display(),
                c.ddpm_b.display(),
                c.ldg_weight,
                c.hcd_weight,
                c.hcd_image_weight,
                c.hcd_t_range[0],
                c.hcd_t_range[1],
                self.latent.diffusion.t_cur()
            ),
        });
        Ok(out)
    }

    fn translator(&self) -> Option<&dyn Translator> {
        self.base.translator()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The surrogate's gradient is the SDS formula (closed form). A tiny linear "generator"
    /// ẑ = A·θ (θ ∈ R³, ẑ ∈ R^{2×4}) and a linear ε_θ(z_t) = M·z_t give
    /// ∂L/∂θ = Σ_i Aᵀ·w_i(M·ẑ_t,i − ε_i)/B. Autograd through [`sds_surrogate`] must match it
    /// to 1e-5 (float32), and the loss's value must be ½·Σ g²/B.
    #[test]
    fn sds_surrogate_gradient_is_the_sds_formula() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(7);
        let opts = (Kind::Float, Device::Cpu);
        let a = Tensor::randn([4, 3], opts);
        let m = Tensor::randn([4, 4], opts) * 0.3;
        let theta = Tensor::randn([2, 3], opts).set_requires_grad(true);
        let z = theta.matmul(&a.tr()); // [B = 2, 4]
        let eps = Tensor::randn([2, 4], opts);
        let (ab, w) = ([0.9f64, 0.2], [0.1f64, 0.8]);
        let (sa, sb) = ddpm_coefficients(&ab);
        let zt = q_sample(&z.detach(), eps.copy(), &sa, &sb);
        let e_hat = zt.matmul(&m.tr());
        let wt = Tensor::from_slice(&[w[0] as f32, w[1] as f32]).view([2, 1]);
        let g = (&e_hat - &eps) * &wt;
        let loss = sds_surrogate(&z, &g);
        let want_value = g.square().sum(Kind::Float).double_value(&[]) * 0.5 / 2.0;
        assert!((loss.double_value(&[]) - want_value).abs() < 1e-5);
        loss.backward();
        // Closed form: dL/dθ_i = (g_i / B)·A (row i of θ maps through A).
        let want = g.matmul(&a) / 2.0;
        let got = theta.grad();
        assert!((got - want).abs().max().double_value(&[]) < 1e-5);
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use crate::progress::Silent;
    use crate::tasks::latent_tests::pretrained;
    use crate::tasks::translation_tests::{tiny, tmp, write_domains};
    use crate::train::Trainer;
    use tch::Device;

    /// A tiny LaDiffGAN end to end: L_G is the sum of its logged terms (U-GAT-IT's and both
    /// latent terms, with the image-level term on; relative tolerance 1e-5), the latent T
    /// is logged, a resume from step 3 gives bit-identical weights of every group (latent Ds
    /// included) at step 6, the run translates both ways; the latent D's inputs of both
    /// domains, real and translated, share one t-list; a DDPM of the wrong domain is a
    /// config error naming the field.
    #[test]
    fn trains_resumes_and_translates() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let data = tmp("ladiffgan-data");
        write_domains(&data, "train", 5, 32);
        write_domains(&data, "test", 2, 32);
        let root = tmp("ladiffgan-pre");
        let [da, db] = pretrained(&data, &root);
        let mut cfg = tiny("ladiffgan", &data, 6);
        cfg.ladiffgan.ddpm_a = da.clone();
        cfg.ladiffgan.ddpm_b = db.clone();
        cfg.ladiffgan.hcd_image_weight = 0.5;
        cfg.ladiffgan.latent_d.ndf = 8;
        cfg.ladiffgan.diffusion.ada_kimg = 0.001;
        // Constant lr: a linear decay depends on run.steps, which the resume changes.
        cfg.ladiffgan.optim.schedule = crate::train::LrSchedule::Constant;
        cfg.validate().unwrap();
        let (a, b) = (tmp("ladiffgan-full"), tmp("ladiffgan-half"));
        let mut full = Trainer::new(cfg.clone(), &a).unwrap();
        full.run(&mut Silent).unwrap();
        let row = &full.rows()[0];
        let parts = [
            "loss_g_adv",
            "loss_cycle",
            "loss_identity",
            "loss_cam",
            "loss_ldg",
            "loss_hcd",
            "loss_hcd_image",
        ];
        let sum: f64 = parts.iter().map(|k| row.get(k)).sum();
        let total = row.get("loss_g");
        assert!(
            (sum - total).abs() < 1e-5 * total.abs().max(1.0),
            "{sum} vs {total}"
        );
        assert!(row.get("loss_hcd") > 0.0 && row.get("loss_dz").is_finite());
        assert!(full.rows().iter().all(|r| r.get("T_latent") >= 5.0));
        let mut half = cfg.clone();
        half.run.steps = 3;
        Trainer::new(half, &b).unwrap().run(&mut Silent).unwrap();
        let mut r = Trainer::resume(&b, Some(6), None).unwrap();
        r.run(&mut Silent).unwrap();
        let (wf, wr) = (full.weights(), r.weights());
        assert!(wf.iter().any(|(k, _)| k.starts_with("dz.")));
        for ((k, x), (_, y)) in wf.iter().zip(wr) {
            assert!(x.equal(&y), "{k} differs after resume");
        }
        let run = crate::run::Run::open(&a).unwrap();
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
        for d in ["a2b", "b2a"] {
            let y = run.translator().unwrap().translate(&x, d).unwrap();
            assert_eq!(y.size(), vec![2, 3, 32, 32]);
        }
        // One t-list for both domains' real and translated latents.
        let mut task = Ladiffgan::new(&cfg, Mode::Inference).unwrap();
        let z = Tensor::randn([3, 4, 8, 8], (Kind::Float, Device::Cpu));
        let (y, t) = task.latent.diffused([&z, &z], [&z, &z]).unwrap();
        assert_eq!(y.size(), vec![12, 4, 8, 8]);
        let t0 = t.narrow(0, 0, 3);
        for k in 1..4 {
            assert!(t.narrow(0, 3 * k, 3).equal(&t0));
        }
        let mut bad = cfg.clone();
        bad.ladiffgan.ddpm_a = db;
        let e = Ladiffgan::new(&bad, Mode::Inference)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ladiffgan.ddpm_a") && e.contains("domain b"),
            "{e}"
        );
    }
}
