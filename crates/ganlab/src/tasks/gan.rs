//! The GAN task: Algorithm 1 of Diffusion-GAN, which is the ordinary GAN loop when the
//! diffusion stage is disabled. Any model family (MLP, DCGAN, SNGAN), any objective, class
//! conditioning, R1/GP penalties: each is a value chosen by the config.
//!
//! One step (a generator update), groups `g` and `d`:
//! 1. `n_critic` times: x ~ data, x_g = G(z); t ~ t_epl (one list for both);
//!    y = q(y|x,t), y_g = q(y|x_g,t); D minimises the objective; optional weight clipping;
//!    the signs of D on real data go to the diffusion controller.
//! 2. G minimises the objective on D(q(y|G(z),t), t) with a fresh z and t.
//! 3. After the loop's finiteness check ([`Task::end_step`]): every `ada_interval` steps the
//!    controller updates T (eq. 5) and t_epl, counting the `n_critic`·m real images D saw
//!    per step (StyleGAN2-ADA's `ada_kimg` is in images seen by D).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::gan_data::{make_sampler, NoData};
use super::{Curve, Generative, Mode, Outputs, Scalars, Section, StepContext, Task};
use crate::data::{Sampler, Toy2d};
use crate::diffusion::{Diffusion, DiffusionState};
use crate::error::{GanError, Result};
use crate::io::write_atomic;
use crate::metrics::{mode_stats, ModeStats};
use crate::models::{Discriminator, Generator};
use crate::objectives::{penalties, Objective};
use crate::rng::mix64;
use crate::tasks::{Group, Groups};
use crate::train::config::{DataSource, ModelFamily, TrainConfig};
use crate::train::step_seed;

/// What `summary.json` of a GAN run holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Steps trained.
    pub steps: u64,
    /// Final maximum diffusion step T.
    #[serde(rename = "final_T")]
    pub final_t: usize,
    /// Modes holding enough high-quality samples (2-D sets with modes).
    pub modes_covered: Option<usize>,
    /// Number of modes of the data.
    pub n_modes: Option<usize>,
    /// Fraction of samples within 3σ of a centre.
    pub high_quality_fraction: Option<f64>,
    /// KL(mode histogram ‖ uniform).
    pub mode_kl: Option<f64>,
    /// Samples the statistics were computed from.
    pub eval_samples: i64,
    /// Wall-clock seconds of this process's training.
    pub train_seconds: f64,
    /// Device used.
    pub device: String,
}

impl Summary {
    /// The summary of a GAN run from its summary.json value.
    pub fn from_value(v: serde_json::Value) -> Result<Self> {
        Ok(serde_json::from_value(v)?)
    }
}

/// The resumable state of the GAN task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GanState {
    /// The diffusion controller (T, p, t_epl, RNG, pending statistics).
    diffusion: DiffusionState,
}

/// Builds G and D of the configured family (wrapped for class conditioning) on `g_vs`, `d_vs`.
fn build_networks(
    cfg: &TrainConfig,
    g_vs: &nn::VarStore,
    d_vs: &nn::VarStore,
) -> Result<(Box<dyn Generator>, Box<dyn Discriminator>)> {
    // A conditional G takes [z, E(c)]: its inner network is built for the wider input.
    let cond = &cfg.model.conditional;
    let extra = if cond.enabled() { cond.embed_dim } else { 0 };
    let with_t = cfg.diffusion.enabled;
    let projected = cfg.model.projected.enabled;
    macro_rules! family {
        ($m:expr) => {{
            let mut m = $m.clone();
            m.latent_dim += extra;
            let g = Box::new(m.init_generator(g_vs.root())) as Box<dyn Generator>;
            let d = (!projected).then(|| {
                Box::new(m.init_discriminator(d_vs.root(), with_t)) as Box<dyn Discriminator>
            });
            (g, d)
        }};
    }
    let (g, d) = match cfg.model.family {
        ModelFamily::Mlp => family!(cfg.model.mlp),
        ModelFamily::Sngan => family!(cfg.model.sngan),
        ModelFamily::Dcgan => family!(cfg.model.dcgan),
        ModelFamily::Stylegan2 => family!(cfg.model.stylegan2),
    };
    let Some(d) = d else {
        // The family's D is replaced by a projected one (validation refuses conditioning).
        let p = crate::models::projected::ProjectedDiscriminator::new(
            d_vs.root() / "projected",
            &cfg.model.projected,
        )?;
        return Ok((g, Box::new(p)));
    };
    if !cond.enabled() {
        return Ok((g, d));
    }
    use crate::models::conditional::{ConditionalDiscriminator, ConditionalGenerator};
    Ok((
        Box::new(ConditionalGenerator::new(
            g,
            g_vs.root() / "class_embed",
            cond,
        )),
        Box::new(ConditionalDiscriminator::new(
            d,
            d_vs.root() / "class_embed",
            cond.num_classes,
        )),
    ))
}

/// The GAN task (see module docs).
#[derive(Debug)]
pub struct GanTask {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    g: Box<dyn Generator>,
    d: Box<dyn Discriminator>,
    objective: Objective,
    diffusion: Diffusion,
    data: Box<dyn Sampler>,
    toy: Option<Toy2d>,
}

impl GanTask {
    /// The task of a validated config; `Mode::Train` loads the configured data.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let data = match mode {
            Mode::Train => make_sampler(cfg)?,
            Mode::Inference => Box::new(NoData),
        };
        Self::with_sampler(cfg, data)
    }

    /// The task with a caller-supplied data sampler (the config's data section is still
    /// used for metrics).
    pub fn with_sampler(cfg: &TrainConfig, data: Box<dyn Sampler>) -> Result<Self> {
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let g_vs = nn::VarStore::new(device);
        let d_vs = nn::VarStore::new(device);
        let (g, d) = build_networks(cfg, &g_vs, &d_vs)?;
        let mut groups = Groups::default();
        groups.push(Group::new(
            "g",
            g_vs,
            cfg.optim.g.clone(),
            cfg.run.ema_beta,
        )?);
        groups.push(Group::new("d", d_vs, cfg.optim.d.clone(), 0.0)?);
        let toy = match cfg.data.source {
            DataSource::Toy2d => Some(Toy2d::new(cfg.data.toy2d.clone())),
            DataSource::Idx => None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            g,
            d,
            objective: Objective::new(cfg.objective.clone())?,
            diffusion: Diffusion::new(cfg.diffusion.clone(), mix64(cfg.run.seed ^ 0xD1FF)),
            data,
            toy,
        })
    }

    /// The diffusion stage.
    pub fn diffusion(&self) -> &Diffusion {
        &self.diffusion
    }

    /// The 2-D data set, if it has modes to score against.
    fn toy_with_modes(&self) -> Option<&Toy2d> {
        self.toy.as_ref().filter(|t| !t.centres().is_empty())
    }

    /// Mode statistics of samples `x` (None for data without modes).
    fn mode_stats_of(&self, x: &Tensor) -> Result<Option<ModeStats>> {
        self.toy_with_modes()
            .map(|toy| mode_stats(x, toy.centres(), toy.std(), 0))
            .transpose()
    }

    /// The discriminator updates of one step; returns (loss, D on real, D on fake) of the last.
    fn train_d(&mut self, step: u64) -> Result<(Tensor, Tensor, Tensor)> {
        let m = self.cfg.run.batch_size;
        let dev = self.device;
        let zdim = self.g.latent_dim();
        let classes = self.g.num_classes();
        let mut last = None;
        for i in 0..self.objective.n_critic() {
            // D steps are numbered from 0 across the run, so resuming keeps the R1 phase.
            let d_step = (step - 1) * self.objective.n_critic() as u64 + i as u64;
            let (x, labels) = self.data.sample_labeled(m, dev)?;
            let c_real = match (classes > 0, labels) {
                (false, _) => None,
                (true, Some(l)) => Some(l),
                (true, None) => {
                    return Err(GanError::Input(
                        "a conditional model needs labelled data".into(),
                    ))
                }
            };
            let c_fake =
                (classes > 0).then(|| crate::dist::randint(0, classes, &[m], (Kind::Int64, dev)));
            let xg = self.g.forward_c(
                &crate::dist::randn(&[m, zdim], (Kind::Float, dev)),
                c_fake.as_ref(),
            );
            let (loss_d, real, fake) = if let Some(p) = self.d.projection() {
                // Feature-level noise: D's trained layers see diffused frozen features.
                let maps = |x: &Tensor| tch::no_grad(|| p.project(x));
                let real = p.head(&diffuse_maps(&mut self.diffusion, maps(&x)?)?);
                let fake = p.head(&diffuse_maps(&mut self.diffusion, maps(&xg)?)?);
                (self.objective.d_loss(&real, &fake), real, fake)
            } else {
                self.d_loss_pixels(&x, &xg, c_real.as_ref(), c_fake.as_ref(), d_step)?
            };
            let clip = self.objective.clip();
            let opt = self.groups.get_mut("d").opt_mut();
            opt.zero_grad();
            loss_d.backward();
            opt.step()?;
            if let Some(c) = clip {
                opt.clip(c);
            }
            let real = real.detach();
            let signs = self
                .objective
                .real_signs(&real)
                .sum(Kind::Float)
                .double_value(&[]);
            self.diffusion.observe_real(signs, real.numel() as u64)?;
            last = Some((loss_d.detach(), real, fake.detach()));
        }
        Ok(last.expect("n_critic >= 1 is checked by ObjectiveConfig::validate"))
    }

    /// D's loss on real `x` and fake `xg` with the noise on pixels, and D on both.
    fn d_loss_pixels(
        &mut self,
        x: &Tensor,
        xg: &Tensor,
        c_real: Option<&Tensor>,
        c_fake: Option<&Tensor>,
        d_step: u64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (m, dev) = (self.cfg.run.batch_size, self.device);
        let classes = self.g.num_classes();
        // Real and fake share the steps t; both are diffused in one call and, when D
        // has no batch statistics, scored in one forward pass (fewer, larger ops).
        let (yy, t) = self.diffusion.augment(&[x, xg])?;
        let (real, fake) = if self.d.batch_independent() {
            let cc = c_real.zip(c_fake).map(|(a, b)| Tensor::cat(&[a, b], 0));
            let out = self.d.forward_c(&yy, &t.repeat([2]), cc.as_ref());
            (out.narrow(0, 0, m), out.narrow(0, m, m))
        } else {
            (
                self.d.forward_c(&yy.narrow(0, 0, m), &t, c_real),
                self.d.forward_c(&yy.narrow(0, m, m), &t, c_fake),
            )
        };
        let mut loss_d = match (c_real, self.cfg.model.conditional.mismatched) {
            // GAN-CLS negatives: real samples with a wrong label count as fakes.
            (Some(c), true) => {
                let shift = crate::dist::randint(1, classes, &[m], (Kind::Int64, dev));
                let wrong = (c + shift).remainder(classes);
                let mis = self.d.forward_c(&yy.narrow(0, 0, m), &t, Some(&wrong));
                self.objective
                    .d_loss(&real, &Tensor::cat(&[&fake, &mis], 0))
            }
            _ => self.objective.d_loss(&real, &fake),
        };
        let oc = self.objective.config();
        let r1 = oc.r1_gamma > 0.0 && d_step.is_multiple_of(oc.r1_every);
        if r1 || oc.gp_lambda > 0.0 {
            // Penalties by double backward, on the diffused samples at their steps t.
            let d = |y: &Tensor| self.d.forward_c(y, &t, c_real);
            let (y_real, y_fake) = (yy.narrow(0, 0, m), yy.narrow(0, m, m));
            if r1 {
                loss_d += penalties::r1(&d, &y_real, oc.r1_gamma * oc.r1_every as f64);
            }
            if oc.gp_lambda > 0.0 {
                let eps = crate::dist::rand(&[m], (Kind::Float, dev));
                loss_d += penalties::gradient_penalty(&d, &y_real, &y_fake, &eps, oc.gp_lambda);
            }
        }
        Ok((loss_d, real, fake))
    }

    /// The generator update of one step; returns its loss.
    fn train_g(&mut self) -> Result<Tensor> {
        let m = self.cfg.run.batch_size;
        let dev = self.device;
        let classes = self.g.num_classes();
        let c = (classes > 0).then(|| crate::dist::randint(0, classes, &[m], (Kind::Int64, dev)));
        let xg = self.g.forward_c(
            &crate::dist::randn(&[m, self.g.latent_dim()], (Kind::Float, dev)),
            c.as_ref(),
        );
        let out = if let Some(p) = self.d.projection() {
            p.head(&diffuse_maps(&mut self.diffusion, p.project(&xg)?)?)
        } else {
            let (yg, t) = self.diffusion.augment(&[&xg])?;
            self.d.forward_c(&yg, &t, c.as_ref())
        };
        let loss_g = self.objective.g_loss(&out);
        let opt = self.groups.get_mut("g").opt_mut();
        opt.zero_grad();
        loss_g.backward();
        opt.step()?;
        Ok(loss_g)
    }

    /// Real (grey) vs generated (blue) points as an SVG scatter plot.
    pub fn scatter_svg(&self, samples: &Tensor, title: &str) -> Result<String> {
        scatter_svg(&self.cfg, samples, title)
    }
}

/// Diffuses feature maps ([n, C, H, W] each) with one step t per sample and channel, as
/// Diffusion ProjectedGAN's `Diffusion.forward` draws `batch_size * num_channels` steps from
/// t_epl (`pg_modules/diffusion.py`); each map draws its own steps. Disabled: unchanged.
pub fn diffuse_maps(diffusion: &mut Diffusion, maps: Vec<Tensor>) -> Result<Vec<Tensor>> {
    maps.into_iter()
        .map(|f| {
            let s = f.size();
            let (y, _) = diffusion.augment(&[&f.reshape([s[0] * s[1], -1])])?;
            Ok(y.reshape(s))
        })
        .collect()
}

/// Real points of the run's 2-D set (grey) vs `samples` (blue) as an SVG scatter plot.
pub fn scatter_svg(cfg: &TrainConfig, samples: &Tensor, title: &str) -> Result<String> {
    let _guard = tch::no_grad_guard();
    tch::manual_seed(step_seed(cfg.run.seed, u64::MAX - 2));
    let mut toy = Toy2d::new(cfg.data.toy2d.clone());
    let real = toy.sample(samples.size()[0], Device::Cpu)?;
    Ok(crate::report::scatter_real_fake(&real, samples, title))
}

impl Task for GanTask {
    fn kind(&self) -> &'static str {
        "gan"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, ctx: StepContext) -> Result<Scalars> {
        // Step I: discriminator (G's parameters need no gradient), then step II: generator.
        self.groups.get("g").opt().set_requires_grad(false);
        let d = self.train_d(ctx.step);
        self.groups.get("g").opt().set_requires_grad(true);
        let (loss_d, real, fake) = d?;
        self.groups.get("d").opt().set_requires_grad(false);
        let loss_g = self.train_g();
        self.groups.get("d").opt().set_requires_grad(true);
        let loss_g = loss_g?;
        let mean = |t: &Tensor| {
            self.objective
                .d_score(t)
                .mean(Kind::Float)
                .double_value(&[])
        };
        Ok(Scalars::new()
            .with("loss_d", loss_d.double_value(&[]))
            .with("loss_g", loss_g.double_value(&[]))
            .with("d_real", mean(&real))
            .with("d_fake", mean(&fake)))
    }

    fn may_be_nan(&self, name: &str) -> bool {
        name == "r_d"
    }

    fn end_step(&mut self) -> Scalars {
        // Step III: diffusion, over the real images D saw in this step.
        let seen = self.objective.n_critic() * self.cfg.run.batch_size as usize;
        self.diffusion.end_minibatch(seen);
        super::controller_scalars(&self.diffusion)
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(GanState {
            diffusion: self.diffusion.state().clone(),
        })?)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        let s: GanState = serde_json::from_value(state)
            .map_err(|e| GanError::Input(format!("checkpoint state of the GAN task: {e}")))?;
        self.diffusion = Diffusion::restore(self.cfg.diffusion.clone(), s.diffusion)?;
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        if self.toy.is_some() {
            return Ok(None);
        }
        let x = self.sample(64, self.cfg.run.seed);
        Ok(Some(crate::data::grid(&x.to_device(Device::Cpu), 8, 2)?))
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        if self.toy_with_modes().is_none() {
            return Ok(Scalars::new());
        }
        let x = self.sample(self.cfg.run.eval_samples, self.cfg.run.seed);
        Ok(match self.mode_stats_of(&x)? {
            Some(ms) => Scalars::new()
                .with("modes/covered", ms.modes_covered as f64)
                .with("modes/high_quality_fraction", ms.high_quality_fraction)
                .with("modes/kl", ms.mode_kl),
            None => Scalars::new(),
        })
    }

    fn status(&self, s: &Scalars) -> String {
        format!(
            "T={} loss_d={:.3} loss_g={:.3}",
            self.diffusion.t_cur(),
            s.get("loss_d").unwrap_or(f64::NAN),
            s.get("loss_g").unwrap_or(f64::NAN)
        )
    }

    fn curves(&self) -> Vec<Curve> {
        vec![
            Curve {
                title: "losses",
                ylabel: "loss",
                series: vec!["loss_d", "loss_g"],
            },
            Curve {
                title: "discriminator outputs",
                ylabel: "mean D score",
                series: vec!["d_real", "d_fake"],
            },
            Curve {
                title: "adaptive diffusion: T",
                ylabel: "T",
                series: vec!["T"],
            },
            Curve {
                title: "overfitting measure r_d",
                ylabel: "r_d",
                series: vec!["r_d"],
            },
        ]
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        let samples = self.sample(self.cfg.run.eval_samples, self.cfg.run.seed);
        let modes = self.mode_stats_of(&samples)?;
        let summary = serde_json::json!({
            "final_T": self.diffusion.t_cur(),
            "modes_covered": modes.as_ref().map(|m| m.modes_covered),
            "n_modes": modes.as_ref().map(|m| m.n_modes),
            "high_quality_fraction": modes.as_ref().map(|m| m.high_quality_fraction),
            "mode_kl": modes.as_ref().map(|m| m.mode_kl),
            "eval_samples": self.cfg.run.eval_samples,
        });
        crate::report::npy::write_f32(&dir.join("samples.npy"), &samples)?;
        let picture = if self.toy.is_some() {
            let scatter = self.scatter_svg(&samples, &self.cfg.run.name)?;
            write_atomic(&dir.join("samples.svg"), scatter.as_bytes())?;
            scatter
        } else {
            if let Some(grid) = self.visuals()? {
                crate::data::write_png(&dir.join("samples.png"), &grid)?;
            }
            "<img src=\"samples.png\" alt=\"64 samples from fixed noise\">".to_string()
        };
        Ok(Outputs {
            summary: summary.as_object().cloned().unwrap_or_default(),
            sections: vec![Section {
                heading: "Samples".into(),
                html: picture,
            }],
        })
    }

    fn generative(&self) -> Option<&dyn Generative> {
        Some(self)
    }
}

impl Generative for GanTask {
    fn latent_dim(&self) -> i64 {
        self.g.latent_dim()
    }

    fn num_classes(&self) -> i64 {
        self.g.num_classes()
    }

    fn device(&self) -> Device {
        self.device
    }

    fn generate(&self, z: &Tensor, c: Option<&Tensor>) -> Tensor {
        let _guard = tch::no_grad_guard();
        let x = self.groups.get("g").with_ema(|| self.g.forward_c(z, c));
        // Images are clamped to [-1, 1], as StyleGAN2's official code converts its unsquashed
        // output to pixels (a no-op for the tanh generators); 2-D points are left alone.
        match self.cfg.model.image_shape() {
            Some(_) => x.clamp(-1.0, 1.0),
            None => x,
        }
    }

    fn generator(&self) -> &dyn Generator {
        self.g.as_ref()
    }

    fn discriminator(&self) -> &dyn Discriminator {
        self.d.as_ref()
    }

    fn toy(&self) -> Option<&Toy2d> {
        self.toy.as_ref()
    }

    fn config(&self) -> &TrainConfig {
        &self.cfg
    }
}
