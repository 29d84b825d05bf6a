//! SimGAN (Shrivastava et al., CVPR 2017; gan-lecture.txt "Sim-to-real synthesis"): a
//! refiner R_θ ([`crate::models::simgan::Refiner`]) makes *synthetic* images look like
//! *unlabelled real* ones while keeping their annotation, trained against a local
//! discriminator D_φ on patches. As the paper's §2 and Algorithm 1:
//!
//! - L_R = ℓ_real(R(x)) + λ‖ψ(R(x)) − ψ(x)‖₁: the local adversarial loss (every patch of
//!   D(R(x)) classified as real) plus self-regularisation in the feature space ψ (identity
//!   in the paper's eye experiments; here `psi_pool` > 1 makes ψ a k×k average pooling, so
//!   the refiner may change fine texture but not the coarse shape);
//! - L_D = ℓ_refined(D(refined)) + ℓ_real(D(y)) with the history buffer: half of D's
//!   refined batch comes from earlier refiners (`crate::data::unpaired::ImagePool::
//!   history_batch`, capacity `buffer_size`);
//! - first R on self-regularisation alone (`pretrain_refiner` steps, paper: 1,000), then D
//!   alone (`pretrain_d`, paper: 200), then per step K_g = `refiner_updates` refiner
//!   updates and one D update (paper's Algorithm 1: K_d = 1; K_g 2 in its §3.1 text).
//!
//! Loss scale (reconstructed): the paper sums the cross-entropy over patches and the L1 over
//! pixels; we average both, so λ here is the paper's λ · pixels / patches. The paper's
//! λ is not printed in its eye-gaze section; the authors' reply quoted by the AlexHex7
//! PyTorch re-implementation gives 0.01, which at 28 px (784 pixels, 49 patches) is
//! `reg_weight` = 0.16, the default. Optimizer (departure): the paper uses SGD at 0.001;
//! ganlab's optimizers are Adam and RMSProp, so both networks use Adam 1e-4, β (0.5, 0.999).
//!
//! Data: two MNIST-layout image sets (`[simgan.data]`): synthetic images with labels (the
//! simulator's annotation; only the experiment's classifiers read them) and real images
//! whose labels are never read (SimGAN is unsupervised on the real side).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::{Curve, Mode, Outputs, Scalars, Section, StepContext, Task, Translator};
use crate::data::unpaired::ImagePool;
use crate::data::{load_idx_images, Sampler, Split, TensorSampler};
use crate::error::{GanError, Result};
use crate::models::simgan::{local_loss, real_share, LocalDiscriminator, Refiner, RefinerConfig};
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::OptimizerConfig;
use crate::train::step_seed;

/// `[simgan.data]`: the synthetic (simulated) and the real images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimganDataConfig {
    /// MNIST-layout directory of synthetic images and their labels (`scripts/fetch-data
    /// synth-digits`).
    pub synthetic: PathBuf,
    /// MNIST-layout directory of real images (labels unused).
    pub real: PathBuf,
    /// Use the first n synthetic training images (0: all).
    pub max_synthetic: i64,
    /// Use the first n real training images (0: all).
    pub max_real: i64,
    /// Side of the square images (both sets must have it).
    pub image_size: i64,
}

impl Default for SimganDataConfig {
    fn default() -> Self {
        Self {
            synthetic: "data/synth-digits".into(),
            real: "data/mnist".into(),
            max_synthetic: 0,
            max_real: 0,
            image_size: 28,
        }
    }
}

/// `[simgan.optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimganOptim {
    /// Refiner.
    pub r: OptimizerConfig,
    /// Local discriminator.
    pub d: OptimizerConfig,
}

impl Default for SimganOptim {
    fn default() -> Self {
        Self {
            r: OptimizerConfig::adam(1e-4),
            d: OptimizerConfig::adam(1e-4),
        }
    }
}

/// `[simgan]`: the task's section (module docs give the sources of the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimganConfig {
    /// λ of the self-regularisation term, on the mean L1 (paper's 0.01 on sums at 28 px).
    pub reg_weight: f64,
    /// ψ: 1 = identity (paper), k > 1 = k×k average pooling (must divide the image side).
    pub psi_pool: i64,
    /// K_g: refiner updates per D update.
    pub refiner_updates: i64,
    /// Steps of refiner pre-training on self-regularisation alone (paper: 1,000).
    pub pretrain_refiner: u64,
    /// Steps of D pre-training after it (paper: 200).
    pub pretrain_d: u64,
    /// History buffer capacity in images (0: no buffer, D sees the current refiner only).
    pub buffer_size: i64,
    /// Fixed synthetic test images shown in the grids.
    pub probes: i64,
    /// The data.
    pub data: SimganDataConfig,
    /// The refiner.
    pub refiner: RefinerConfig,
    /// Optimizers.
    pub optim: SimganOptim,
}

impl Default for SimganConfig {
    fn default() -> Self {
        Self {
            reg_weight: 0.16,
            psi_pool: 1,
            refiner_updates: 2,
            pretrain_refiner: 1000,
            pretrain_d: 200,
            buffer_size: 6400,
            probes: 16,
            data: SimganDataConfig::default(),
            refiner: RefinerConfig::default(),
            optim: SimganOptim::default(),
        }
    }
}

impl SimganConfig {
    /// Checks every field; `prefix` names the section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if !(0.0..=1e6).contains(&self.reg_weight) {
            return err(
                "reg_weight",
                format!("must be in [0, 1e6], got {}", self.reg_weight),
            );
        }
        let side = self.data.image_size;
        if !(8..=512).contains(&side) {
            return err(
                "data.image_size",
                format!("must be in [8, 512], got {side}"),
            );
        }
        if !(1..=side).contains(&self.psi_pool) || side % self.psi_pool != 0 {
            return err(
                "psi_pool",
                format!(
                    "must divide the image side {side} (1 = identity), got {}",
                    self.psi_pool
                ),
            );
        }
        if !(1..=100).contains(&self.refiner_updates) {
            return err(
                "refiner_updates",
                format!("must be in [1, 100], got {}", self.refiner_updates),
            );
        }
        if !(0..=10_000_000).contains(&self.buffer_size) {
            return err(
                "buffer_size",
                format!("must be in [0, 10000000], got {}", self.buffer_size),
            );
        }
        if !(1..=64).contains(&self.probes) {
            return err("probes", format!("must be in [1, 64], got {}", self.probes));
        }
        for (f, n) in [
            ("data.max_synthetic", self.data.max_synthetic),
            ("data.max_real", self.data.max_real),
        ] {
            if !(0..=crate::data::MAX_IMAGES).contains(&n) {
                return err(
                    f,
                    format!("must be in [0, {}], got {n}", crate::data::MAX_IMAGES),
                );
            }
        }
        self.refiner.validate(&format!("{prefix}.refiner"))?;
        self.optim.r.validate(&format!("{prefix}.optim.r"))?;
        self.optim.d.validate(&format!("{prefix}.optim.d"))
    }
}

/// The images of `dir`'s `split`, the first `max` (0: all), checked to be `side`² grey.
pub fn load_set(dir: &Path, split: Split, max: i64, side: i64) -> Result<(Tensor, Option<Tensor>)> {
    let set = load_idx_images(dir, split)?;
    let s = set.images.size();
    if s[1..] != [1, side, side] {
        return Err(GanError::Input(format!(
            "{}: images of shape {:?}, simgan.data.image_size asks for [1, {side}, {side}]",
            dir.display(),
            &s[1..]
        )));
    }
    let n = if max > 0 { max.min(s[0]) } else { s[0] };
    Ok((
        set.images.narrow(0, 0, n),
        set.labels.map(|l| l.narrow(0, 0, n)),
    ))
}

/// The SimGAN task (see module docs).
#[derive(Debug)]
pub struct Simgan {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    r: Refiner,
    d: LocalDiscriminator,
    pool: ImagePool,
    /// (synthetic, real) training samplers.
    data: Option<(TensorSampler, TensorSampler)>,
    /// Synthetic test images (probes and evaluation) and real test probes.
    test: Option<(Tensor, Tensor)>,
}

impl Simgan {
    /// The task of a validated config; `Mode::Train` loads both image sets.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let s = &cfg.simgan;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let r_vs = nn::VarStore::new(device);
        let r = Refiner::new(r_vs.root() / "r", &s.refiner, 1);
        let d_vs = nn::VarStore::new(device);
        let d = LocalDiscriminator::new(d_vs.root() / "d", 1);
        let mut groups = Groups::default();
        groups.push(Group::new("r", r_vs, s.optim.r.clone(), cfg.run.ema_beta)?);
        groups.push(Group::new("d", d_vs, s.optim.d.clone(), 0.0)?);
        let (data, test) = match mode {
            Mode::Inference => (None, None),
            Mode::Train => {
                let dd = &s.data;
                let side = dd.image_size;
                let (syn, _) = load_set(&dd.synthetic, Split::Train, dd.max_synthetic, side)?;
                let (real, _) = load_set(&dd.real, Split::Train, dd.max_real, side)?;
                let (syn_test, _) = load_set(&dd.synthetic, Split::Test, 0, side)?;
                let (real_test, _) = load_set(&dd.real, Split::Test, s.probes, side)?;
                (
                    Some((TensorSampler::new(syn)?, TensorSampler::new(real)?)),
                    Some((syn_test, real_test)),
                )
            }
        };
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            r,
            d,
            pool: ImagePool::new(s.buffer_size),
            data,
            test,
        })
    }

    /// ψ of images (module docs).
    fn psi(&self, x: &Tensor) -> Tensor {
        let k = self.cfg.simgan.psi_pool;
        if k == 1 {
            x.shallow_clone()
        } else {
            x.avg_pool2d([k, k], [k, k], [0, 0], false, true, None)
        }
    }

    /// R(x) without gradient, with the EMA weights where kept.
    fn refine_batch(&self, x: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        self.groups.get("r").with_ema(|| self.r.forward(x))
    }

    /// Refines `x` [n, 1, s, s] in batches of 256 on the task's device; the result on the CPU.
    fn refine_all(&self, x: &Tensor) -> Tensor {
        let n = x.size()[0];
        let outs: Vec<Tensor> = (0..n)
            .step_by(256)
            .map(|i| {
                let b = x.narrow(0, i, 256.min(n - i)).to_device(self.device);
                self.refine_batch(&b).to_device(Device::Cpu)
            })
            .collect();
        Tensor::cat(&outs, 0)
    }

    fn data(&mut self) -> Result<&mut (TensorSampler, TensorSampler)> {
        self.data.as_mut().ok_or_else(|| {
            GanError::Input("this run was opened for inference; resume it to train".into())
        })
    }

    /// One refiner update; `adversarial` adds the local adversarial term.
    fn update_r(&mut self, adversarial: bool, s: &mut Scalars) -> Result<()> {
        let m = self.cfg.run.batch_size;
        let device = self.device;
        let x = self.data()?.0.sample(m, device)?;
        let y = self.r.forward(&x);
        let reg = (self.psi(&y) - self.psi(&x)).abs().mean(Kind::Float);
        let mut loss = &reg * self.cfg.simgan.reg_weight;
        if adversarial {
            self.groups.get("d").opt().set_requires_grad(false);
            let logits = self.d.forward(&y);
            let adv = local_loss(&logits, true);
            s.push("loss_r_adv", adv.double_value(&[]));
            s.push("fooled", real_share(&logits.detach()));
            loss += adv;
        }
        let opt = self.groups.get_mut("r").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        self.groups.get("d").opt().set_requires_grad(true);
        s.push("loss_r_reg", reg.double_value(&[]));
        s.push("loss_r", loss.double_value(&[]));
        Ok(())
    }

    /// One D update on real images and refined ones (half from the history buffer).
    fn update_d(&mut self, s: &mut Scalars) -> Result<()> {
        let m = self.cfg.run.batch_size;
        let device = self.device;
        let (syn, real) = self.data()?;
        let (x, y) = (syn.sample(m, device)?, real.sample(m, device)?);
        let refined = {
            let _g = tch::no_grad_guard();
            self.r.forward(&x)
        };
        let fake = self.pool.history_batch(&refined);
        let (lr, lf) = (self.d.forward(&y), self.d.forward(&fake));
        let loss = local_loss(&lr, true) + local_loss(&lf, false);
        let opt = self.groups.get_mut("d").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        s.push("loss_d", loss.double_value(&[]));
        s.push("d_real", real_share(&lr.detach()));
        s.push("d_refined", 1.0 - real_share(&lf.detach()));
        Ok(())
    }

    /// Mean |R(x) − x| over the synthetic test images (at most `run.eval_samples`) and the
    /// share of their patches D calls real.
    fn test_scores(&self) -> Option<(f64, f64)> {
        let (syn, _) = self.test.as_ref()?;
        let n = syn.size()[0].min(self.cfg.run.eval_samples);
        let x = syn.narrow(0, 0, n);
        let y = self.refine_all(&x);
        let l1 = (&y - &x).abs().mean(Kind::Double).double_value(&[]);
        let _g = tch::no_grad_guard();
        let fooled = real_share(&self.d.forward(&y.to_device(self.device)));
        Some((l1, fooled))
    }
}

impl Task for Simgan {
    fn kind(&self) -> &'static str {
        "simgan"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, ctx: StepContext) -> Result<Scalars> {
        let c = &self.cfg.simgan;
        let (pre_r, pre_d, k_g) = (c.pretrain_refiner, c.pretrain_d, c.refiner_updates);
        let mut s = Scalars::new();
        if ctx.step <= pre_r {
            self.update_r(false, &mut s)?;
        } else if ctx.step <= pre_r + pre_d {
            self.update_d(&mut s)?;
        } else {
            // The step's scalars are those of its last refiner update.
            for _ in 0..k_g {
                s = Scalars::new();
                self.update_r(true, &mut s)?;
            }
            self.update_d(&mut s)?;
        }
        Ok(s)
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.pool
            .to_tensor()
            .map(|t| ("history".to_string(), t))
            .into_iter()
            .collect()
    }

    fn restore_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        if let Some(t) = crate::io::named(tensors, "history") {
            let side = self.cfg.simgan.data.image_size;
            self.pool.restore(
                t,
                &[1, side, side],
                self.device,
                Path::new("checkpoint history"),
            )?;
        }
        Ok(())
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        let Some((syn, real)) = &self.test else {
            return Ok(None);
        };
        // The first k test images: the synthetic digits' labels cycle 0–9 there (an even
        // stride over 10,000 would show only 0s and 5s).
        let k = self
            .cfg
            .simgan
            .probes
            .min(syn.size()[0])
            .min(real.size()[0]);
        let x = syn.narrow(0, 0, k);
        let y = self.refine_all(&x);
        let rows = Tensor::cat(&[x, y, real.narrow(0, 0, k)], 0);
        Ok(Some(crate::data::grid(&rows, k, 2)?))
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        Ok(match self.test_scores() {
            Some((l1, fooled)) => Scalars::new()
                .with("test_l1", l1)
                .with("test_fooled", fooled),
            None => Scalars::new(),
        })
    }

    fn status(&self, s: &Scalars) -> String {
        let v = |k| s.get(k).unwrap_or(f64::NAN);
        format!(
            "loss_r={:.3} reg={:.4} loss_d={:.3}",
            v("loss_r"),
            v("loss_r_reg"),
            v("loss_d")
        )
    }

    fn curves(&self) -> Vec<Curve> {
        vec![
            Curve {
                title: "losses",
                ylabel: "loss",
                series: vec!["loss_d", "loss_r_adv"],
            },
            Curve {
                title: "self-regularisation (train batch)",
                ylabel: "mean |ψ(R(x)) − ψ(x)|",
                series: vec!["loss_r_reg"],
            },
            Curve {
                title: "local discriminator (share of patches right)",
                ylabel: "share",
                series: vec!["d_real", "d_refined", "fooled"],
            },
        ]
    }

    fn finish(&self, dir: &Path) -> Result<Outputs> {
        let mut summary = serde_json::Map::new();
        if let Some((l1, fooled)) = self.test_scores() {
            summary.insert("test_l1".into(), l1.into());
            summary.insert("test_fooled".into(), fooled.into());
        }
        let mut sections = Vec::new();
        if let Some(grid) = self.visuals()? {
            crate::data::write_png(&dir.join("samples.png"), &grid)?;
            sections.push(Section {
                heading: "Refinement (rows: synthetic, refined, real)".into(),
                html: "<img src=\"samples.png\" alt=\"synthetic, refined and real digits\">".into(),
            });
        }
        Ok(Outputs { summary, sections })
    }

    fn translator(&self) -> Option<&dyn Translator> {
        Some(self)
    }
}

impl Translator for Simgan {
    fn directions(&self) -> Vec<&'static str> {
        vec!["a2b"]
    }

    fn input_shape(&self, direction: &str) -> Result<[i64; 3]> {
        if direction != "a2b" {
            return Err(GanError::config(
                "--direction",
                format!("a SimGAN run refines synthetic images (a2b) only, got {direction}"),
            ));
        }
        let side = self.cfg.simgan.data.image_size;
        Ok([1, side, side])
    }

    fn translate(&self, x: &Tensor, direction: &str) -> Result<Tensor> {
        let shape = self.input_shape(direction)?;
        let s = x.size();
        if s.len() != 4 || s[1..] != shape {
            return Err(GanError::Input(format!(
                "refine: expected images [n, {}, {}, {}], got {s:?}",
                shape[0], shape[1], shape[2]
            )));
        }
        Ok(self.refine_all(x))
    }
}

#[cfg(test)]
#[path = "simgan_tests.rs"]
mod tests;
