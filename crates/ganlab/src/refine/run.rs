//! Refinement of a trained run (`ganlab refine`): G and D from the run's newest checkpoint,
//! the kernel on D's features (or a named extractor, or the data), a condition, quality
//! before and after, and the output files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::conditions::{self, Condition};
use super::{refine, Potentials, RefineConfig, Refined, StepLog};
use crate::data::{load_image_set, Split};
use crate::error::{GanError, IoContext, Result};
use crate::metrics::extractors::MnistCnn;
use crate::metrics::features::{frechet_distance, prdc, FeatureStats};
use crate::metrics::{mode_stats, ModeStats};
use crate::run::Run;
use crate::tasks::gan::scatter_svg;
use crate::tasks::gan_data::make_sampler;
use crate::tasks::Generative;
use crate::train::{step_seed, DataSource};

/// Where the kernel's features h(x) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelSpace {
    /// D's penultimate activations (the seed's choice).
    Discriminator,
    /// The samples themselves (flattened).
    Data,
    /// The ccexam MNIST CNN's 128-d features.
    MnistCnn,
}

impl KernelSpace {
    /// Parses `d`, `data` or `mnist-cnn`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "d" => Ok(Self::Discriminator),
            "data" => Ok(Self::Data),
            "mnist-cnn" => Ok(Self::MnistCnn),
            _ => Err(GanError::config(
                "--kernel",
                format!("must be d, data or mnist-cnn, got {s:?}"),
            )),
        }
    }
}

/// Everything `ganlab refine` needs besides the run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The update and its hyper-parameters.
    pub refine: RefineConfig,
    /// Number of particles.
    pub n: i64,
    /// Seed of the initial codes, the real samples and the update noise.
    pub seed: u64,
    /// The condition c.
    pub condition: Condition,
    /// σ of the inpainting observation model.
    pub inpaint_sigma: f64,
    /// Kernel features.
    pub kernel: KernelSpace,
    /// Data directory (extractor weights: `scripts/fetch-data ccexam`).
    pub data_dir: PathBuf,
}

/// Quality of one set of particles.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Quality {
    /// Mode statistics (2-D sets with modes).
    pub modes: Option<ModeStats>,
    /// FID against the run's real data with the MNIST CNN (image runs, when fetched).
    pub fid: Option<f64>,
    /// Precision (k = 3) in the same feature space.
    pub precision: Option<f64>,
    /// Recall (k = 3) in the same feature space.
    pub recall: Option<f64>,
    /// Mean d(G(z)).
    pub critic: f64,
    /// Fraction classified as the condition's class.
    pub class_accuracy: Option<f64>,
    /// Mean squared error on the known pixels (inpainting).
    pub known_pixel_mse: Option<f64>,
}

/// The machine-readable record of one refinement (summary.json).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run refined.
    pub run: PathBuf,
    /// Its step.
    pub run_step: u64,
    /// Method and hyper-parameters.
    pub config: RefineConfig,
    /// Particles.
    pub n: i64,
    /// Seed.
    pub seed: u64,
    /// Condition, as given.
    pub condition: String,
    /// Kernel features.
    pub kernel: KernelSpace,
    /// Bandwidth used (flows).
    pub bandwidth: Option<f64>,
    /// DOT's k_eff.
    pub k_eff: Option<f64>,
    /// Before.
    pub before: Quality,
    /// After.
    pub after: Quality,
    /// Per-step statistics.
    pub log: Vec<StepLog>,
    /// Wall time of the refinement (without evaluation).
    pub seconds: f64,
}

/// A refinement of a run with its inputs and report.
#[derive(Debug)]
pub struct Outcome {
    /// Initial codes.
    pub z0: Tensor,
    /// G(z0).
    pub x0: Tensor,
    /// Refined codes and samples.
    pub refined: Refined,
    /// The known image and mask (inpainting).
    pub inpaint: Option<(Tensor, Tensor)>,
    /// The record.
    pub report: Report,
}

/// The evaluation context of a run: real data for FID and the classifier, loaded once.
struct Judge {
    cnn: Option<MnistCnn>,
    real_feats: Option<Tensor>,
    toy: Option<(Vec<[f64; 2]>, f64)>,
}

/// `n` samples of the run's training data (seeded), on `device`.
fn real_samples(t: &dyn Generative, n: i64, seed: u64) -> Result<Tensor> {
    let mut s = make_sampler(t.config())?;
    tch::manual_seed(step_seed(seed, u64::MAX - 3));
    s.sample(n, t.device())
}

/// The run's test images (IDX runs), for FID and inpainting targets.
fn test_images(t: &dyn Generative) -> Result<Tensor> {
    match t.config().data.source {
        DataSource::Idx => Ok(load_image_set(&t.config().data.idx.dir, Split::Test)?.images),
        DataSource::Toy2d => Err(GanError::Input("this run has no image test split".into())),
    }
}

fn mnist_cnn(o: &RunOptions, device: Device) -> Result<MnistCnn> {
    MnistCnn::load(&o.data_dir.join("ccexam/mnist_cnn.safetensors"), device)
}

impl Judge {
    fn new(t: &dyn Generative, o: &RunOptions) -> Result<Self> {
        if let Some(toy) = t.toy() {
            return Ok(Self {
                cnn: None,
                real_feats: None,
                toy: Some((toy.centres().to_vec(), toy.std())),
            });
        }
        let cnn = mnist_cnn(o, Device::Cpu).ok();
        let real_feats = match &cnn {
            Some(c) => {
                let real = test_images(t)?;
                let real = real.narrow(0, 0, o.n.min(real.size()[0]));
                let _g = tch::no_grad_guard();
                Some(batched(&real, 500, |x| Ok(c.forward(x)?.0))?)
            }
            None => None,
        };
        Ok(Self {
            cnn,
            real_feats,
            toy: None,
        })
    }

    fn quality(
        &self,
        x: &Tensor,
        critic: &Tensor,
        cond: &Condition,
        inpaint: Option<&(Tensor, Tensor)>,
    ) -> Result<Quality> {
        let _g = tch::no_grad_guard();
        let mut q = Quality {
            critic: critic.mean(Kind::Double).double_value(&[]),
            ..Default::default()
        };
        if let Some((centres, std)) = &self.toy {
            q.modes = Some(mode_stats(x, centres, *std, 0)?);
            if let Condition::Class(k) = cond {
                q.class_accuracy = Some(fraction(
                    &conditions::mode_logits(x, centres, 1.0).argmax(1, false),
                    *k,
                ));
            }
        }
        if let (Some(cnn), Some(rf)) = (&self.cnn, &self.real_feats) {
            let x = x.to_device(Device::Cpu);
            let (f, logits) = {
                let mut fs = Vec::new();
                let mut ls = Vec::new();
                for lo in (0..x.size()[0]).step_by(500) {
                    let (f, l) = cnn.forward(&x.narrow(0, lo, 500.min(x.size()[0] - lo)))?;
                    fs.push(f);
                    ls.push(l);
                }
                (Tensor::cat(&fs, 0), Tensor::cat(&ls, 0))
            };
            q.fid = Some(frechet_distance(
                &FeatureStats::from_features(rf)?,
                &FeatureStats::from_features(&f)?,
            )?);
            let p = prdc(rf, &f, 3, 5)?;
            q.precision = Some(p.precision);
            q.recall = Some(p.recall);
            if let Condition::Class(k) = cond {
                q.class_accuracy = Some(fraction(&logits.argmax(1, false), *k));
            }
        }
        if let Some((known, mask)) = inpaint {
            q.known_pixel_mse = Some(
                conditions::known_pixel_mse(x, known, mask)
                    .mean(Kind::Double)
                    .double_value(&[]),
            );
        }
        Ok(q)
    }
}

fn fraction(labels: &Tensor, k: i64) -> f64 {
    labels
        .eq(k)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}

fn batched(x: &Tensor, b: i64, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let n = x.size()[0];
    let mut parts = Vec::new();
    for lo in (0..n).step_by(b as usize) {
        parts.push(f(&x.narrow(0, lo, b.min(n - lo)))?);
    }
    Ok(Tensor::cat(&parts, 0))
}

type BoxFn<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;

/// Refines `o.n` particles of the opened run (its weights frozen by [`Run::open`]; G with its
/// EMA weights where the run keeps them).
pub fn refine_run(run: &Run, o: &RunOptions) -> Result<Outcome> {
    let t = run.generative()?;
    o.refine.validate()?;
    if !(2..=100_000).contains(&o.n) {
        return Err(GanError::config(
            "--n",
            format!("must be in [2, 100000], got {}", o.n),
        ));
    }
    if !(o.inpaint_sigma > 0.0 && o.inpaint_sigma.is_finite()) {
        return Err(GanError::config(
            "--inpaint-sigma",
            format!("must be > 0, got {}", o.inpaint_sigma),
        ));
    }
    let device = t.device();
    let is_toy = t.toy().is_some();
    if is_toy && o.kernel == KernelSpace::MnistCnn {
        return Err(GanError::config(
            "--kernel",
            "mnist-cnn features need an image run; use d or data for 2-D runs",
        ));
    }
    let cnn_needed = o.kernel == KernelSpace::MnistCnn
        || (!is_toy && matches!(o.condition, Condition::Class(_)));
    let cnn = if cnn_needed {
        Some(mnist_cnn(o, device)?)
    } else {
        None
    };
    let inpaint = match &o.condition {
        Condition::Inpaint { index, mask } => {
            if is_toy {
                return Err(GanError::config(
                    "--condition",
                    "inpainting needs an image run",
                ));
            }
            let test = test_images(t)?;
            if *index >= test.size()[0] {
                return Err(GanError::config(
                    "--condition",
                    format!(
                        "image index must be in [0, {}], got {index}",
                        test.size()[0] - 1
                    ),
                ));
            }
            let known = test.narrow(0, *index, 1).to_device(device);
            let m = mask.build(&known.size(), device);
            Some((known, m))
        }
        _ => None,
    };
    let judge = Judge::new(t, o)?;

    let g = t.generator();
    let d = t.discriminator();
    let t0 = |x: &Tensor| Tensor::zeros([x.size()[0]], (Kind::Int64, x.device()));
    let generator = |z: &Tensor| g.forward(z);
    let critic = |x: &Tensor| d.forward(x, &t0(x)).reshape([-1]);
    let features: BoxFn = match o.kernel {
        KernelSpace::Discriminator => Box::new(|x: &Tensor| d.features(x, &t0(x))),
        KernelSpace::Data => Box::new(|x: &Tensor| x.flatten(1, -1)),
        KernelSpace::MnistCnn => {
            let c = cnn
                .as_ref()
                .ok_or_else(|| GanError::Input("no MNIST CNN".into()))?;
            Box::new(move |x: &Tensor| {
                c.forward(x)
                    .map(|(f, _)| f)
                    .unwrap_or_else(|_| x.flatten(1, -1))
            })
        }
    };
    let condition: Option<BoxFn> = match &o.condition {
        Condition::None => None,
        Condition::Class(k) => {
            let k = *k;
            match (t.toy(), &cnn) {
                (Some(toy), _) => {
                    if !(0..toy.centres().len() as i64).contains(&k) {
                        return Err(GanError::config(
                            "--condition",
                            format!(
                                "class must be in [0, {}] (a mode of the set), got {k}",
                                toy.centres().len() as i64 - 1
                            ),
                        ));
                    }
                    let centres = toy.centres().to_vec();
                    Some(Box::new(move |x: &Tensor| {
                        conditions::mode_logits(x, &centres, 1.0)
                            .log_softmax(1, Kind::Float)
                            .select(1, k)
                    }))
                }
                (None, Some(c)) => {
                    if !(0..10).contains(&k) {
                        return Err(GanError::config(
                            "--condition",
                            format!("class must be in [0, 9] (MNIST CNN classes), got {k}"),
                        ));
                    }
                    Some(Box::new(move |x: &Tensor| match c.forward(x) {
                        Ok((_, l)) => l.log_softmax(1, Kind::Float).select(1, k),
                        Err(_) => Tensor::zeros([x.size()[0]], (Kind::Float, x.device())),
                    }))
                }
                (None, None) => unreachable!("the CNN is loaded for image class conditions"),
            }
        }
        Condition::Inpaint { .. } => {
            let (known, mask) = inpaint
                .as_ref()
                .map(|(a, b)| (a, b))
                .ok_or_else(|| GanError::Input("inpainting target missing".into()))?;
            let sigma = o.inpaint_sigma;
            Some(Box::new(move |x: &Tensor| {
                conditions::inpaint_log_lik(x, known, mask, sigma)
            }))
        }
    };
    let pot = Potentials {
        generator: &generator,
        critic: Some(&critic),
        features: features.as_ref(),
        condition: condition.as_deref(),
    };

    let real = if matches!(o.refine.method, super::Method::KrrWgf | super::Method::Kde)
        && o.refine.eta_data > 0.0
    {
        Some(real_samples(t, o.refine.n_real, o.seed)?)
    } else {
        None
    };
    tch::manual_seed(step_seed(o.seed, u64::MAX - 4));
    let z0 = super::latents(o.n, g.latent_dim(), device);
    let x0 = tch::no_grad(|| batched(&z0, o.refine.chunk, |z| Ok(g.forward(z))))?;
    let d0 = tch::no_grad(|| batched(&x0, o.refine.chunk, |x| Ok(critic(x))))?;
    let started = Instant::now();
    let refined = refine(&z0, real.as_ref(), &pot, &o.refine)?;
    let seconds = started.elapsed().as_secs_f64();
    let d1 = tch::no_grad(|| batched(&refined.x, o.refine.chunk, |x| Ok(critic(x))))?;
    let before = judge.quality(&x0, &d0, &o.condition, inpaint.as_ref())?;
    let after = judge.quality(&refined.x, &d1, &o.condition, inpaint.as_ref())?;
    let report = Report {
        run: run.dir().to_path_buf(),
        run_step: run.step(),
        config: o.refine.clone(),
        n: o.n,
        seed: o.seed,
        condition: condition_name(&o.condition),
        kernel: o.kernel,
        bandwidth: refined.bandwidth,
        k_eff: refined.k_eff,
        before,
        after,
        log: refined.log.clone(),
        seconds,
    };
    let inpaint = inpaint
        .as_ref()
        .map(|(k, m)| (k.shallow_clone(), m.shallow_clone()));
    Ok(Outcome {
        z0,
        x0,
        refined,
        inpaint,
        report,
    })
}

/// The condition as written on the command line.
pub fn condition_name(c: &Condition) -> String {
    match c {
        Condition::None => "none".into(),
        Condition::Class(k) => format!("class:{k}"),
        Condition::Inpaint { index, mask } => format!(
            "inpaint:{index}:{}",
            match mask {
                conditions::MaskKind::TopHalf => "top",
                conditions::MaskKind::LeftHalf => "left",
                conditions::MaskKind::Centre => "centre",
            }
        ),
    }
}

/// Writes refined.npy, latents.npy, initial.npy, initial_latents.npy, summary.json and a
/// before/after figure (before_after.svg for 2-D runs, before_after.png for images: the
/// first 32 before on top, the same particles after below, and the masked target first when
/// inpainting) into the new directory `dir`.
pub fn write_outputs(dir: &Path, o: &Outcome, run: &Run) -> Result<()> {
    use crate::report::npy::write_f32;
    crate::io::create_output_dir(dir)?;
    write_f32(&dir.join("refined.npy"), &o.refined.x)?;
    write_f32(&dir.join("latents.npy"), &o.refined.z)?;
    write_f32(&dir.join("initial.npy"), &o.x0)?;
    write_f32(&dir.join("initial_latents.npy"), &o.z0)?;
    let json = serde_json::to_string_pretty(&o.report)?;
    crate::io::write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    let x0 = o.x0.to_device(Device::Cpu);
    let x1 = o.refined.x.to_device(Device::Cpu);
    if x0.dim() == 2 {
        let before = scatter_svg(run.config(), &x0, "before")?;
        let after = scatter_svg(
            run.config(),
            &x1,
            &format!(
                "after {} × {}",
                o.report.config.method.name(),
                o.report.config.steps
            ),
        )?;
        let svg = crate::report::svg::grid(&[before, after], (360.0, 360.0), 2);
        std::fs::write(dir.join("before_after.svg"), svg).at(dir)?;
    } else {
        let k = x0.size()[0].min(32);
        let mut rows = vec![x0.narrow(0, 0, k), x1.narrow(0, 0, k)];
        if let Some((known, mask)) = &o.inpaint {
            // The target with its unknown pixels grey, then a blank row start.
            let shown = (known * mask).to_device(Device::Cpu);
            rows.insert(0, shown.expand([k.min(8), -1, -1, -1], false).contiguous());
        }
        let g = crate::data::grid(&Tensor::cat(&rows, 0), 8, 2)?;
        crate::data::write_png(&dir.join("before_after.png"), &g)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    /// End to end on a tiny trained 2-D run: every method refines through `ganlab refine`'s
    /// path, writes its files, moves the codes, and keeps the samples finite; DDLS and DOT
    /// raise the mean critic (they ascend it); a class condition raises the fraction of
    /// samples at the chosen mode.
    #[test]
    fn refines_a_tiny_run_end_to_end() {
        let _rng = crate::test_rng_lock();
        let base = std::env::temp_dir().join(format!("ganlab-refine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let mut cfg = crate::train::config::TrainConfig::default();
        cfg.run.steps = 150;
        cfg.run.batch_size = 64;
        cfg.run.eval_every = 150;
        cfg.run.checkpoint_every = 150;
        cfg.run.eval_samples = 200;
        cfg.run.device = "cpu".into();
        cfg.model.mlp.hidden = 32;
        let run = base.join("run");
        crate::train::Trainer::new(cfg, &run)
            .unwrap()
            .run(&mut Silent)
            .unwrap();
        for method in super::super::Method::NAMES {
            let t = Run::open(&run).unwrap();
            let o = RunOptions {
                refine: RefineConfig {
                    method: super::super::Method::parse(method).unwrap(),
                    steps: 4,
                    step_size: 0.1,
                    n_real: 200,
                    ..Default::default()
                },
                n: 200,
                seed: 1,
                condition: Condition::None,
                inpaint_sigma: 0.1,
                kernel: KernelSpace::Discriminator,
                data_dir: PathBuf::from("data"),
            };
            let out = refine_run(&t, &o).unwrap();
            let moved = out.report.log.last().unwrap().moved;
            assert!(moved > 1e-3, "{method}: codes did not move ({moved})");
            assert!(out.report.after.modes.is_some());
            if matches!(*method, "ddls" | "dot") {
                assert!(
                    out.report.after.critic > out.report.before.critic,
                    "{method}: mean critic {} → {}",
                    out.report.before.critic,
                    out.report.after.critic
                );
            }
            let dir = base.join(method);
            write_outputs(&dir, &out, &t).unwrap();
            for f in [
                "refined.npy",
                "latents.npy",
                "summary.json",
                "before_after.svg",
            ] {
                assert!(dir.join(f).is_file(), "{method}: {f} missing");
            }
            // Nothing a user wrote is overwritten.
            assert!(write_outputs(&dir, &out, &t).is_err());
        }
        let t = Run::open(&run).unwrap();
        let o = RunOptions {
            refine: RefineConfig {
                steps: 20,
                step_size: 0.3,
                eta_data: 0.0,
                eta_entropy: 0.1,
                eta_critic: 0.0,
                ..Default::default()
            },
            n: 200,
            seed: 1,
            condition: Condition::Class(12),
            inpaint_sigma: 0.1,
            kernel: KernelSpace::Data,
            data_dir: PathBuf::from("data"),
        };
        let out = refine_run(&t, &o).unwrap();
        let (b, a) = (
            out.report.before.class_accuracy.unwrap(),
            out.report.after.class_accuracy.unwrap(),
        );
        assert!(a > b + 0.2, "class 12 fraction {b} → {a}");
        let bad = RunOptions {
            condition: Condition::Class(25),
            ..o.clone()
        };
        assert!(refine_run(&t, &bad)
            .unwrap_err()
            .to_string()
            .contains("[0, 24]"));
        let bad = RunOptions {
            condition: Condition::Inpaint {
                index: 0,
                mask: conditions::MaskKind::TopHalf,
            },
            ..o
        };
        assert!(refine_run(&t, &bad)
            .unwrap_err()
            .to_string()
            .contains("image run"));
        let bad = RunOptions {
            kernel: KernelSpace::MnistCnn,
            condition: Condition::None,
            ..bad
        };
        assert!(refine_run(&t, &bad)
            .unwrap_err()
            .to_string()
            .contains("--kernel"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
