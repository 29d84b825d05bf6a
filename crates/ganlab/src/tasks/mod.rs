//! Tasks: training methods as values the generic loop ([`crate::train::Trainer`]) runs.
//!
//! A task owns its networks as named [`Groups`] (parameters + optimizer + optional EMA), its
//! step formula (it draws its data, runs its optimizers in its order and reports named
//! [`Scalars`]), its resumable state, fixed-probe visuals and optional evaluation. The loop
//! owns everything else and never asks which task it runs. The shape follows
//! pytorch-CycleGAN-and-pix2pix's `BaseModel` (each model declares its losses, nets and
//! visuals; the base saves, loads, logs and shows them), written anew.
//!
//! Adding a task: its file(s) here, a variant of [`crate::train::config::TaskKind`] with its
//! config section, and one line in [`build`].

pub mod attribute_classifier;
pub mod attribute_data;
pub mod autoencoder;
pub mod bridgegan;
pub mod cyclegan;
pub mod ddpm;
pub mod gan;
pub mod gan_data;
pub mod gan_int_cls;
pub mod ladiffgan;
pub mod pix2pix;
pub mod simgan;
pub mod stackgan;
pub mod stargan;
pub mod text2image_data;
pub mod text_encoder;
pub mod ugatit;
pub mod unpaired;

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::data::Toy2d;
use crate::error::{GanError, Result};
use crate::models::{Discriminator, Generator};
use crate::train::config::{TaskKind, TrainConfig};
pub use crate::train::log::Scalars;
pub use crate::train::networks::{Group, Groups};

/// Whether a task is built to train (it loads its data) or to be used by a run handle
/// (no data, no optimizer state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training: the data is loaded.
    Train,
    /// Inference on a finished run.
    Inference,
}

/// What one call of [`Task::step`] may use.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// The step being trained (1-based).
    pub step: u64,
    /// The run's step budget.
    pub total: u64,
}

/// A section of the HTML report a task contributes.
#[derive(Debug, Clone)]
pub struct Section {
    /// Heading.
    pub heading: String,
    /// HTML body (figures, tables).
    pub html: String,
}

/// A training curve of the report: a title and the scalar names drawn in it.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Plot title.
    pub title: &'static str,
    /// Y axis label.
    pub ylabel: &'static str,
    /// Scalar names (each a series).
    pub series: Vec<&'static str>,
}

/// What a task leaves in a finished run directory, besides what the loop writes.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Fields of summary.json (besides steps, train_seconds and device, which the loop adds).
    pub summary: serde_json::Map<String, serde_json::Value>,
    /// Report sections, in order, shown before the training curves.
    pub sections: Vec<Section>,
}

/// A training method (see module docs).
pub trait Task: std::fmt::Debug {
    /// The task's name as written in `[task] kind`.
    fn kind(&self) -> &'static str;
    /// The networks, as named groups.
    fn groups(&self) -> &Groups;
    /// The networks, mutably (the loop steps lr schedules and EMAs, loads checkpoints).
    fn groups_mut(&mut self) -> &mut Groups;
    /// One training step: draws data, updates the groups, returns named scalars. The loop
    /// has reseeded libtorch and set each group's lr factor before the call; it checks the
    /// scalars are finite before it commits anything (EMA, [`Task::end_step`], step count).
    fn step(&mut self, ctx: StepContext) -> Result<Scalars>;
    /// Names of scalars that may legitimately be NaN (e.g. r_d before its first estimate);
    /// every other scalar must be finite.
    fn may_be_nan(&self, _name: &str) -> bool {
        false
    }
    /// Commits per-step state once the step's scalars are known to be finite (e.g. the
    /// diffusion controller); returns scalars describing the committed state, logged with
    /// the step's.
    fn end_step(&mut self) -> Scalars {
        Scalars::new()
    }
    /// The resumable state (saved in state.json); none (`{}`) unless the task keeps some.
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({}))
    }
    /// Restores [`Task::state`], validating every field; a task without state accepts only
    /// `{}`.
    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        if state != serde_json::json!({}) {
            return Err(GanError::Input(format!(
                "checkpoint: a {} run keeps no task state, found {state}",
                self.kind()
            )));
        }
        Ok(())
    }
    /// Resumable state that is tensors (e.g. image pools), saved in the checkpoint's
    /// safetensors file as `task.<name>`.
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// Restores [`Task::state_tensors`] from a checkpoint's tensors (names without the
    /// `task.` prefix), after [`Task::restore`]; checks shapes and values.
    fn restore_tensors(&mut self, _tensors: &[(String, Tensor)]) -> Result<()> {
        Ok(())
    }
    /// Fixed-probe visuals as one image [C, H, W] in [−1, 1], written as
    /// samples/step-N.png at each evaluation (None: the task draws none).
    fn visuals(&self) -> Result<Option<Tensor>>;
    /// Periodic evaluation (every `run.eval_every` steps): scalars for eval.jsonl.
    fn evaluate(&mut self) -> Result<Scalars> {
        Ok(Scalars::new())
    }
    /// Status shown beside the progress bar, from the step's scalars.
    fn status(&self, scalars: &Scalars) -> String {
        scalars
            .0
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k}={v:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// The report's training curves (default: one plot per logged scalar).
    fn curves(&self) -> Vec<Curve> {
        Vec::new()
    }
    /// Writes the task's final outputs into `dir` (samples, figures) and returns its summary
    /// fields and report sections.
    fn finish(&self, dir: &Path) -> Result<Outputs>;
    /// z → x, for tasks that generate from noise.
    fn generative(&self) -> Option<&dyn Generative> {
        None
    }
    /// x → y, for tasks that translate images.
    fn translator(&self) -> Option<&dyn Translator> {
        None
    }
    /// Image ↔ latent, for autoencoder runs (LaDiffGAN's E_d).
    fn codec(&self) -> Option<&dyn autoencoder::LatentCodec> {
        None
    }
    /// ε_θ(z_t, t), for latent DDPM runs.
    fn denoiser(&self) -> Option<&dyn ddpm::LatentDenoiser> {
        None
    }
    /// Attribute editing, for multi-attribute translation runs.
    fn editor(&self) -> Option<&dyn AttributeEditor> {
        None
    }
    /// Attribute logits, for attribute classifier runs (the metrics' judge).
    fn attribute_classifier(&self) -> Option<&dyn attribute_classifier::AttributeClassifier> {
        None
    }
    /// The joint text–image embedding, for text encoder runs (text-to-image conditioning
    /// and R-precision).
    fn text_embedder(&self) -> Option<&dyn text_encoder::TextEmbedder> {
        None
    }
    /// Caption → image, for text-to-image runs (`ganlab sample --text`).
    fn text_to_image(&self) -> Option<&dyn gan_int_cls::TextToImage> {
        None
    }
}

/// The diffusion controller's state as logged scalars: T, p and r_d (NaN before the first
/// estimate), for any task that puts the augment stage in front of its D.
pub fn controller_scalars(d: &crate::diffusion::Diffusion) -> Scalars {
    Scalars::new()
        .with("T", d.t_cur() as f64)
        .with("p", d.p())
        .with("r_d", d.last_r_d().unwrap_or(f64::NAN))
}

/// The resumable state of a task whose only per-step state is its diffusion controller
/// (pix2pix, CycleGAN, U-GAT-IT), as state.json holds it: `{diffusion}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct DiffusionOnlyState {
    diffusion: crate::diffusion::DiffusionState,
}

/// [`Task::state`] of such a task.
pub fn diffusion_state(d: &crate::diffusion::Diffusion) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(DiffusionOnlyState {
        diffusion: d.state().clone(),
    })?)
}

/// [`Task::restore`] of such a task: the controller rebuilt from `state`, every field
/// validated; `kind` names the task in errors.
pub fn restore_diffusion(
    cfg: &crate::diffusion::DiffusionConfig,
    state: serde_json::Value,
    kind: &str,
) -> Result<crate::diffusion::Diffusion> {
    let s: DiffusionOnlyState = serde_json::from_value(state)
        .map_err(|e| GanError::Input(format!("checkpoint state of {kind}: {e}")))?;
    crate::diffusion::Diffusion::restore(cfg.clone(), s.diffusion)
}

/// [`Task::end_step`] of a task with the augment stage in front of its D(s): the controller
/// counts one minibatch of `m` images and the step logs T, p and r_d (nothing when `on` is
/// false).
pub fn diffusion_end_step(d: &mut crate::diffusion::Diffusion, on: bool, m: i64) -> Scalars {
    if !on {
        return Scalars::new();
    }
    d.end_minibatch(m as usize);
    controller_scalars(d)
}

/// Builds the task `cfg.task.kind` names: the one place that lists task kinds.
pub fn build(cfg: &TrainConfig, mode: Mode) -> Result<Box<dyn Task>> {
    Ok(match cfg.task.kind {
        TaskKind::Gan => Box::new(gan::GanTask::new(cfg, mode)?),
        TaskKind::Pix2pix => Box::new(pix2pix::Pix2pix::new(cfg, mode)?),
        TaskKind::Cyclegan => Box::new(cyclegan::CycleGan::new(cfg, mode)?),
        TaskKind::Ugatit => Box::new(ugatit::Ugatit::new(cfg, mode)?),
        TaskKind::Autoencoder => Box::new(autoencoder::AutoencoderTask::new(cfg, mode)?),
        TaskKind::Ddpm => Box::new(ddpm::Ddpm::new(cfg, mode)?),
        TaskKind::Ladiffgan => Box::new(ladiffgan::Ladiffgan::new(cfg, mode)?),
        TaskKind::Bridgegan => Box::new(bridgegan::BridgeGan::new(cfg, mode)?),
        TaskKind::Stargan => Box::new(stargan::StarGan::new(cfg, mode)?),
        TaskKind::AttributeClassifier => {
            Box::new(attribute_classifier::ClassifierTask::new(cfg, mode)?)
        }
        TaskKind::Simgan => Box::new(simgan::Simgan::new(cfg, mode)?),
        TaskKind::TextEncoder => Box::new(text_encoder::TextEncoderTask::new(cfg, mode)?),
        TaskKind::GanIntCls => Box::new(gan_int_cls::GanIntCls::new(cfg, mode)?),
        TaskKind::Stackgan => Box::new(stackgan::Stackgan::new(cfg, mode)?),
    })
}

/// A task that generates from latent codes (the GAN task), as `sample`, `interpolate`,
/// `eval` and `refine` use it.
pub trait Generative {
    /// Dimension of z.
    fn latent_dim(&self) -> i64;
    /// Number of classes of a class-conditional G (0: unconditional).
    fn num_classes(&self) -> i64;
    /// The device of the networks.
    fn device(&self) -> Device;
    /// G(z, c) without gradient, with the EMA weights where the run keeps them. Without
    /// labels a conditional G draws balanced ones (sample i has class i mod K).
    fn generate(&self, z: &Tensor, c: Option<&Tensor>) -> Tensor;
    /// The generator network.
    fn generator(&self) -> &dyn Generator;
    /// The discriminator network.
    fn discriminator(&self) -> &dyn Discriminator;
    /// The run's built-in 2-D set (None for image runs).
    fn toy(&self) -> Option<&Toy2d>;
    /// The config the run was trained with.
    fn config(&self) -> &TrainConfig;

    /// The `n` latent codes seeded by `seed` (the same codes for the same seed).
    fn latent_codes(&self, n: i64, seed: u64) -> Tensor {
        tch::manual_seed(crate::train::step_seed(seed, u64::MAX - 1));
        Tensor::randn([n, self.latent_dim()], (Kind::Float, self.device()))
    }

    /// `n` samples from the codes of `seed`.
    fn sample(&self, n: i64, seed: u64) -> Tensor {
        self.generate(&self.latent_codes(n, seed), None)
    }

    /// `n` samples of class `class` (conditional runs), codes as [`Generative::sample`].
    fn sample_class(&self, n: i64, seed: u64, class: i64) -> Result<Tensor> {
        let k = self.num_classes();
        if !(0..k).contains(&class) {
            return Err(GanError::config(
                "--class",
                if k == 0 {
                    "this run is not class-conditional".to_string()
                } else {
                    format!("must be in [0, {}], got {class}", k - 1)
                },
            ));
        }
        let c = Tensor::full([n], class, (Kind::Int64, self.device()));
        Ok(self.generate(&self.latent_codes(n, seed), Some(&c)))
    }
}

/// A task that translates images (pix2pix, CycleGAN, U-GAT-IT).
pub trait Translator {
    /// Directions this model translates, e.g. `["a2b"]` or `["a2b", "b2a"]`.
    fn directions(&self) -> Vec<&'static str>;
    /// The input images [C, H, W] it takes for `direction`.
    fn input_shape(&self, direction: &str) -> Result<[i64; 3]>;
    /// Translates images `x` [n, C, H, W] in [−1, 1] (no gradient).
    fn translate(&self, x: &Tensor, direction: &str) -> Result<Tensor>;
}

/// A task that edits images by binary attributes (multi-attribute translation): label-based
/// (target attributes, style from noise) and, where the model has a style encoder,
/// reference-based (style from reference images) and mixes of the two.
pub trait AttributeEditor {
    /// The attribute names, in label order.
    fn attributes(&self) -> &[String];
    /// Per attribute, the attributes that setting it to 1 turns to 0 (the conflict rule of
    /// [`crate::data::attributes`]).
    fn mates(&self) -> Vec<Vec<usize>>;
    /// The side of the square RGB images it takes.
    fn image_size(&self) -> i64;
    /// The labels [n, k] in {0, 1} the model's own classifier reads from images `x`.
    fn classify(&self, x: &Tensor) -> Result<Tensor>;
    /// True when the model takes reference images.
    fn has_reference(&self) -> bool;
    /// Images `x` [n, 3, s, s] with labels `y_s` edited to `y_t` (no gradient): α = 1 is
    /// label-based (noise drawn from libtorch's generator), α = 0 reference-based (style of
    /// `x_r` [n, 3, s, s]), between them the mix of the two style codes.
    fn edit(
        &self,
        x: &Tensor,
        y_s: &Tensor,
        y_t: &Tensor,
        x_r: Option<&Tensor>,
        alpha: f64,
    ) -> Result<Tensor>;
}

#[cfg(test)]
pub(crate) mod translation_tests;

#[cfg(test)]
pub(crate) mod latent_tests;

#[cfg(test)]
pub(crate) mod bridgegan_tests;
