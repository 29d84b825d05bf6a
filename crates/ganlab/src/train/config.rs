//! The training config: one TOML file, every field with a documented default, checked
//! once when loaded (`validate`) so the trainer can trust it.
//!
//! `[task] kind` chooses the task; `[run]` and `[diffusion]` are shared by every task, and
//! each task owns its sections (the GAN task: `[data]`, `[model]`, `[objective]`, `[optim]`,
//! as before tasks existed, so older configs and run directories load unchanged; pix2pix:
//! `[pix2pix]`). A section of another task is an error, and a run's config.toml holds the
//! chosen task's sections only, with every default written out. `--set section.key=value`
//! ([`TrainConfig::from_toml_with`]) edits the TOML before it is parsed and checked, so an
//! override is validated exactly like the file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::optim::OptimizerConfig;
pub use super::overrides::apply_overrides;
use super::overrides::fill_optimizer_defaults;
use crate::data::Toy2dConfig;
use crate::diffusion::DiffusionConfig;
use crate::error::{GanError, Result};
use crate::models::conditional::ConditionalConfig;
use crate::models::dcgan::DcganConfig;
use crate::models::mlp::MlpConfig;
use crate::models::projected::ProjectedConfig;
use crate::models::sngan::SnganConfig;
use crate::models::stylegan2::Stylegan2Config;
use crate::objectives::ObjectiveConfig;
use crate::tasks::attribute_classifier::ClassifierConfig;
use crate::tasks::autoencoder::AutoencoderTaskConfig;
use crate::tasks::bridgegan::BridgeConfig;
use crate::tasks::cyclegan::CycleGanConfig;
use crate::tasks::ddpm::DdpmConfig;
use crate::tasks::gan_int_cls::GanIntClsConfig;
use crate::tasks::ladiffgan::LadiffganConfig;
use crate::tasks::pix2pix::Pix2pixConfig;
use crate::tasks::simgan::SimganConfig;
use crate::tasks::stackgan::StackganConfig;
use crate::tasks::stargan::StarGanConfig;
use crate::tasks::text_encoder::TextEncoderConfig;
use crate::tasks::ugatit::UgatitConfig;

/// The tasks a config can choose (`[task] kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Unconditional or class-conditional GAN, with or without Diffusion-GAN
    /// (`crate::tasks::gan`; sections data, model, objective, optim).
    #[default]
    Gan,
    /// Paired image-to-image translation (`crate::tasks::pix2pix`; section pix2pix).
    Pix2pix,
    /// Unpaired translation with cycle consistency (`crate::tasks::cyclegan`; section
    /// cyclegan).
    Cyclegan,
    /// Unpaired translation with attention and AdaLIN (`crate::tasks::ugatit`; section
    /// ugatit).
    Ugatit,
    /// LaDiffGAN's per-domain autoencoder (`crate::tasks::autoencoder`; section autoencoder).
    Autoencoder,
    /// LaDiffGAN's latent DDPM (`crate::tasks::ddpm`; section ddpm).
    Ddpm,
    /// LaDiffGAN: U-GAT-IT with latent diffusion supervision (`crate::tasks::ladiffgan`;
    /// sections ugatit and ladiffgan).
    Ladiffgan,
    /// Multi-attribute translation, label- and reference-based (`crate::tasks::bridgegan`;
    /// section bridgegan).
    Bridgegan,
    /// StarGAN, the label-based baseline (`crate::tasks::stargan`; section stargan).
    Stargan,
    /// The attribute classifier that scores edits (`crate::tasks::attribute_classifier`;
    /// section attribute_classifier).
    AttributeClassifier,
    /// Sim-to-real refinement (`crate::tasks::simgan`; section simgan).
    Simgan,
    /// The joint text–image embedding for text-to-image synthesis
    /// (`crate::tasks::text_encoder`; section text_encoder).
    TextEncoder,
    /// Text-to-image with a matching-aware D and interpolated text
    /// (`crate::tasks::gan_int_cls`; section gan_int_cls).
    GanIntCls,
    /// Text-to-image in two stages with conditioning augmentation (`crate::tasks::stackgan`;
    /// section stackgan).
    Stackgan,
}

impl TaskKind {
    /// The top-level sections of a config of this task ([task], [run], [diffusion] are shared).
    pub fn sections(self) -> &'static [&'static str] {
        match self {
            TaskKind::Gan => &["data", "model", "objective", "optim"],
            TaskKind::Pix2pix => &["pix2pix"],
            TaskKind::Cyclegan => &["cyclegan"],
            TaskKind::Ugatit => &["ugatit"],
            TaskKind::Autoencoder => &["autoencoder"],
            TaskKind::Ddpm => &["ddpm"],
            TaskKind::Ladiffgan => &["ugatit", "ladiffgan"],
            TaskKind::Bridgegan => &["bridgegan"],
            TaskKind::Stargan => &["stargan"],
            TaskKind::AttributeClassifier => &["attribute_classifier"],
            TaskKind::Simgan => &["simgan"],
            TaskKind::TextEncoder => &["text_encoder"],
            TaskKind::GanIntCls => &["gan_int_cls"],
            TaskKind::Stackgan => &["stackgan"],
        }
    }

    /// Every task.
    pub const ALL: [TaskKind; 14] = [
        TaskKind::Gan,
        TaskKind::Pix2pix,
        TaskKind::Cyclegan,
        TaskKind::Ugatit,
        TaskKind::Autoencoder,
        TaskKind::Ddpm,
        TaskKind::Ladiffgan,
        TaskKind::Bridgegan,
        TaskKind::Stargan,
        TaskKind::AttributeClassifier,
        TaskKind::Simgan,
        TaskKind::TextEncoder,
        TaskKind::GanIntCls,
        TaskKind::Stackgan,
    ];

    /// Every task-owned section of any task.
    fn all_sections() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .flat_map(|k| k.sections().iter().copied())
            .collect()
    }

    /// The name written in `[task] kind`.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Gan => "gan",
            TaskKind::Pix2pix => "pix2pix",
            TaskKind::Cyclegan => "cyclegan",
            TaskKind::Ugatit => "ugatit",
            TaskKind::Autoencoder => "autoencoder",
            TaskKind::Ddpm => "ddpm",
            TaskKind::Ladiffgan => "ladiffgan",
            TaskKind::Bridgegan => "bridgegan",
            TaskKind::Stargan => "stargan",
            TaskKind::AttributeClassifier => "attribute_classifier",
            TaskKind::Simgan => "simgan",
            TaskKind::TextEncoder => "text_encoder",
            TaskKind::GanIntCls => "gan_int_cls",
            TaskKind::Stackgan => "stackgan",
        }
    }
}

/// `[task]`: which training method.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// "gan" (default), "pix2pix", "cyclegan", "ugatit", "autoencoder", "ddpm", "ladiffgan" or
    /// "bridgegan", "stargan", "attribute_classifier", "simgan", "text_encoder", "gan_int_cls" or "stackgan".
    pub kind: TaskKind,
}

/// `[run]`: budget, seed, logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Name of the run (the default run directory is runs/<name>).
    pub name: String,
    /// Seed of every random choice (weights, data, noise, t).
    pub seed: u64,
    /// Generator updates to train for.
    pub steps: u64,
    /// Minibatch size m (Algorithm 1).
    pub batch_size: i64,
    /// Steps between lines of metrics.jsonl.
    pub log_every: u64,
    /// Steps between evaluations (mode statistics for 2-D sets).
    pub eval_every: u64,
    /// Steps between checkpoints (a final one is always written).
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (older ones are deleted).
    pub keep_checkpoints: usize,
    /// Samples drawn for the final evaluation and plots.
    pub eval_samples: i64,
    /// "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    pub device: String,
    /// Decay β of an exponential moving average of G's weights, updated after every G step
    /// (ema ← β·ema + (1 − β)·θ); samples, grids and evaluations use it. 0 = off. BatchNorm
    /// running statistics are not averaged (DCGAN samples with batch statistics).
    pub ema_beta: f64,
    /// EMA ramp-up r (StyleGAN2-ADA's `ema_rampup`, 0.05 in its "cifar" and "auto" configs):
    /// the EMA's half-life is at most r × the steps done, so early EMAs forget the initial
    /// weights (β after step k is min(`ema_beta`, 0.5^(1/(r·(k−1))))). 0 = off: a constant β,
    /// whose EMA after k steps still weighs the first weights by β^(k−1) (37% at β = 0.999,
    /// k = 1,000). In [0, 1]; ignored when `ema_beta` is 0. The default is off so that run
    /// directories written before it existed resume with the EMA they started with.
    pub ema_rampup: f64,
    /// Also write the logged scalars as TensorBoard event files in <run>/tensorboard.
    pub tensorboard: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "gaussians25-diffusion".into(),
            seed: 0,
            steps: 15000,
            batch_size: 256,
            log_every: 25,
            eval_every: 500,
            checkpoint_every: 1000,
            keep_checkpoints: 3,
            eval_samples: 2500,
            device: "auto".into(),
            ema_beta: 0.0,
            ema_rampup: 0.0,
            tensorboard: false,
        }
    }
}

/// Where the data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// A built-in 2-D set (`[data.toy2d]`).
    Toy2d,
    /// An image directory (`[data.idx]`): MNIST-layout IDX files (fetched MNIST or
    /// Fashion-MNIST), CIFAR-10 binary batches, or a folder of PNG/JPEG images (resized and
    /// cropped to the model size), detected by the files present.
    Idx,
}

/// `[data.idx]`: an image directory (IDX or CIFAR-10 binary) and split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdxDataConfig {
    /// Directory with `train-images-idx3-ubyte[.gz]` etc. or `data_batch_N.bin`/`test_batch.bin` (relative paths: from the working
    /// directory).
    pub dir: std::path::PathBuf,
    /// `train` or `test`.
    pub split: String,
    /// Train on the first N images of the split only (0: all): a limited-data run
    /// (Diffusion-GAN §4.3). The first N in file order — MNIST, Fashion-MNIST and CIFAR-10
    /// files are not sorted by class; a folder is read in file-name order — so every seed
    /// trains on the same subset. More than the split holds is an error.
    pub max_images: i64,
}

impl Default for IdxDataConfig {
    fn default() -> Self {
        Self {
            dir: "data/mnist".into(),
            split: "train".into(),
            max_images: 0,
        }
    }
}

impl IdxDataConfig {
    /// The split as a [`crate::data::Split`].
    pub fn split(&self) -> Result<crate::data::Split> {
        match self.split.as_str() {
            "train" => Ok(crate::data::Split::Train),
            "test" => Ok(crate::data::Split::Test),
            other => Err(GanError::config(
                "data.idx.split",
                format!("must be train or test, got {other:?}"),
            )),
        }
    }
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Which loader.
    pub source: DataSource,
    /// Settings of the 2-D sets.
    pub toy2d: Toy2dConfig,
    /// Settings of IDX image sets.
    pub idx: IdxDataConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: DataSource::Toy2d,
            toy2d: Toy2dConfig::default(),
            idx: IdxDataConfig::default(),
        }
    }
}

/// Model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// MLP G and D (`[model.mlp]`).
    Mlp,
    /// DCGAN G and D (`[model.dcgan]`).
    Dcgan,
    /// SNGAN ResNet G and spectrally normalised D (`[model.sngan]`).
    Sngan,
    /// StyleGAN2's mapping + synthesis G and D (`[model.stylegan2]`).
    Stylegan2,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Which family.
    pub family: ModelFamily,
    /// MLP settings.
    pub mlp: MlpConfig,
    /// DCGAN settings.
    pub dcgan: DcganConfig,
    /// SNGAN settings.
    pub sngan: SnganConfig,
    /// StyleGAN2 settings.
    pub stylegan2: Stylegan2Config,
    /// Class conditioning (any family).
    pub conditional: ConditionalConfig,
    /// A discriminator on frozen pretrained features instead of the family's D (any image
    /// family; Diffusion ProjectedGAN with diffusion on).
    pub projected: ProjectedConfig,
}

impl ModelConfig {
    /// The images [C, H, W] an image family makes (None for the MLP).
    pub fn image_shape(&self) -> Option<(&'static str, [i64; 3])> {
        match self.family {
            ModelFamily::Mlp => None,
            ModelFamily::Dcgan => Some((
                "model.dcgan.image_size",
                [
                    self.dcgan.channels,
                    self.dcgan.image_size,
                    self.dcgan.image_size,
                ],
            )),
            ModelFamily::Sngan => Some((
                "model.sngan.image_size",
                [
                    self.sngan.channels,
                    self.sngan.image_size,
                    self.sngan.image_size,
                ],
            )),
            ModelFamily::Stylegan2 => Some((
                "model.stylegan2.image_size",
                [
                    self.stylegan2.channels,
                    self.stylegan2.image_size,
                    self.stylegan2.image_size,
                ],
            )),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            family: ModelFamily::Mlp,
            mlp: MlpConfig::default(),
            dcgan: DcganConfig::default(),
            sngan: SnganConfig::default(),
            stylegan2: Stylegan2Config::default(),
            conditional: ConditionalConfig::default(),
            projected: ProjectedConfig::default(),
        }
    }
}

/// `[optim]`: one optimizer per network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Generator optimizer.
    pub g: OptimizerConfig,
    /// Discriminator optimizer.
    pub d: OptimizerConfig,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            g: OptimizerConfig::adam(2e-4),
            d: OptimizerConfig::adam(2e-4),
        }
    }
}

/// A whole experiment. The default holds every field's default: the 25-Gaussians
/// Diffusion-GAN (§4.2) with the paper's feature-level diffusion config (Appendix G, Table
/// 5). The run `ganlab train` makes without a config is [`TrainConfig::built_in`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Which task.
    pub task: TaskConfig,
    /// Budget, seed and logging.
    pub run: RunConfig,
    /// Data.
    pub data: DataConfig,
    /// Networks.
    pub model: ModelConfig,
    /// Adversarial loss.
    pub objective: ObjectiveConfig,
    /// Optimizers.
    pub optim: OptimConfig,
    /// Diffusion-GAN noise (set `enabled = false` for a vanilla GAN), on any task's D.
    pub diffusion: DiffusionConfig,
    /// The pix2pix task.
    pub pix2pix: Pix2pixConfig,
    /// The CycleGAN task.
    pub cyclegan: CycleGanConfig,
    /// The U-GAT-IT task.
    pub ugatit: UgatitConfig,
    /// The autoencoder task.
    pub autoencoder: AutoencoderTaskConfig,
    /// The latent DDPM task.
    pub ddpm: DdpmConfig,
    /// What LaDiffGAN adds to U-GAT-IT.
    pub ladiffgan: LadiffganConfig,
    /// The multi-attribute translation task.
    pub bridgegan: BridgeConfig,
    /// The StarGAN task.
    pub stargan: StarGanConfig,
    /// The attribute classifier task.
    pub attribute_classifier: ClassifierConfig,
    /// The SimGAN task.
    pub simgan: SimganConfig,
    /// The text encoder task.
    pub text_encoder: TextEncoderConfig,
    /// The GAN-INT-CLS task.
    pub gan_int_cls: GanIntClsConfig,
    /// The StackGAN task.
    pub stackgan: StackganConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            task: TaskConfig::default(),
            run: RunConfig::default(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            objective: ObjectiveConfig::default(),
            optim: OptimConfig::default(),
            diffusion: DiffusionConfig::feature(),
            pix2pix: Pix2pixConfig::default(),
            cyclegan: CycleGanConfig::default(),
            ugatit: UgatitConfig::default(),
            autoencoder: AutoencoderTaskConfig::default(),
            ddpm: DdpmConfig::default(),
            ladiffgan: LadiffganConfig::default(),
            bridgegan: BridgeConfig::default(),
            stargan: StarGanConfig::default(),
            attribute_classifier: ClassifierConfig::default(),
            simgan: SimganConfig::default(),
            text_encoder: TextEncoderConfig::default(),
            gan_int_cls: GanIntClsConfig::default(),
            stackgan: StackganConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Parses TOML text; unknown fields and type errors name the field.
    ///
    /// Fields left out of `[diffusion]` take the Appendix G preset that fits the model: the
    /// feature config (β_T 0.01, T_max 500, σ 0.5) for the MLP family (points and feature
    /// vectors), the pixel config (β_T 0.02, T_max 1000, σ 0.05) for image families and
    /// image tasks, whether the table is written in part or not at all.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        Self::from_toml_with(text, origin, &[])
    }

    /// [`TrainConfig::from_toml_str`] after `--set` overrides (see [`apply_overrides`]).
    pub fn from_toml_with(text: &str, origin: &Path, sets: &[String]) -> Result<Self> {
        let parse_error = |e: toml::de::Error| {
            let place = e.span().filter(|_| sets.is_empty()).map(|span| {
                let line_no = text[..span.start].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
                format!(" (line {line_no}: {line})")
            });
            GanError::ConfigParse {
                path: origin.to_path_buf(),
                message: e.message().trim_end().to_string() + &place.unwrap_or_default(),
            }
        };
        // Checked as written first, so that errors point at the user's line; an error that
        // the task's optimizer defaults repair (a partial `[optim.g]`) is not one.
        let as_written = toml::from_str::<Self>(text);
        let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        let defaults =
            toml::Table::try_from(Self::default()).expect("config is always serializable");
        fill_optimizer_defaults(&mut table, &defaults);
        if let Err(e) = as_written {
            if toml::Value::Table(table.clone())
                .try_into::<Self>()
                .is_err()
            {
                return Err(parse_error(e));
            }
        }
        if table.is_empty() && sets.is_empty() {
            // Most likely the wrong file: training the defaults from it would be silent.
            return Err(GanError::ConfigParse {
                path: origin.to_path_buf(),
                message: "sets nothing (empty, or only comments); `ganlab train` without a \
                          config trains the default one"
                    .into(),
            });
        }
        if !sets.is_empty() {
            apply_overrides(&mut table, sets)?;
            fill_optimizer_defaults(&mut table, &defaults);
            toml::Value::Table(table.clone())
                .try_into::<Self>()
                .map_err(|e| GanError::ConfigParse {
                    path: origin.to_path_buf(),
                    message: format!("after --set: {}", e.message().trim_end()),
                })?;
        }
        let kind: TaskKind = table
            .get("task")
            .and_then(|t| t.get("kind"))
            .cloned()
            .map(|k| k.try_into())
            .transpose()
            .map_err(parse_error)?
            .unwrap_or_default();
        for section in TaskKind::all_sections() {
            if table.contains_key(section) && !kind.sections().contains(&section) {
                return Err(GanError::config(
                    section,
                    format!(
                        "is not a section of task {:?} (its sections: task, run, diffusion, {})",
                        kind.name(),
                        kind.sections().join(", ")
                    ),
                ));
            }
        }
        // The GAN task's MLP family trains on points and feature vectors, the rest on images.
        let image_data = table
            .get("model")
            .and_then(|m| m.get("family"))
            .and_then(|f| f.as_str())
            .is_some_and(|f| f != "mlp");
        // A projected D diffuses feature maps: Appendix G's feature preset.
        let on_features = table
            .get("model")
            .and_then(|m| m.get("projected"))
            .and_then(|p| p.get("enabled"))
            .and_then(|e| e.as_bool())
            == Some(true);
        let preset = if kind != TaskKind::Gan {
            // Every other task trains without diffusion noise unless `enabled = true` (the
            // autoencoder and the DDPM have no D at all).
            DiffusionConfig {
                enabled: false,
                ..DiffusionConfig::default()
            }
        } else if image_data && !on_features {
            DiffusionConfig::default()
        } else {
            DiffusionConfig::feature()
        };
        let preset = toml::Table::try_from(&preset).expect("config is always serializable");
        let diffusion = table
            .entry("diffusion")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let toml::Value::Table(written) = diffusion {
            for (key, value) in preset {
                written.entry(key).or_insert(value);
            }
        }
        let cfg: Self = toml::Value::Table(table).try_into().map_err(parse_error)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// Reads a TOML file, applies `--set` overrides, validates.
    pub fn load_with(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GanError::Input(format!("cannot read config {}: {e}", path.display())))?;
        Self::from_toml_with(&text, path, sets)
    }

    /// The built-in run (`ganlab train` without a config, and the base of `ganlab experiment
    /// gaussians25`): configs/gaussians25-diffusion.toml, compiled in. It departs from the
    /// field defaults ([`TrainConfig::default`], Appendix G) where docs/GAUSSIANS25.md
    /// measured that it must; the file says which and why.
    pub fn built_in() -> Self {
        Self::default_with(&[]).expect("configs/gaussians25-diffusion.toml is valid")
    }

    /// [`TrainConfig::built_in`] after `--set` overrides.
    pub fn default_with(sets: &[String]) -> Result<Self> {
        Self::from_toml_with(
            include_str!("../../../../configs/gaussians25-diffusion.toml"),
            Path::new("<built-in config: configs/gaussians25-diffusion.toml>"),
            sets,
        )
    }

    /// The config as TOML: the shared sections and the chosen task's, every default written
    /// out.
    pub fn to_toml(&self) -> String {
        let mut all = toml::Table::try_from(self).expect("config is always serializable");
        let kind = self.task.kind;
        ["task", "run"]
            .iter()
            .chain(kind.sections())
            .chain(&["diffusion"])
            .map(|&name| {
                let mut one = toml::Table::new();
                one.insert(
                    name.into(),
                    all.remove(name).expect("every section serializes"),
                );
                toml::to_string_pretty(&one).expect("config is always serializable")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
