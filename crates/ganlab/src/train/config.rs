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

    /// Every task-owned section of any task.
    fn all_sections() -> Vec<&'static str> {
        [
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
        ]
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

/// What a run's config.toml holds: the shared sections and the chosen task's.
#[derive(Serialize)]
struct TaskView<'a> {
    task: &'a TaskConfig,
    run: &'a RunConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a DataConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a ModelConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    objective: Option<&'a ObjectiveConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    optim: Option<&'a OptimConfig>,
    diffusion: &'a DiffusionConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pix2pix: Option<&'a Pix2pixConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cyclegan: Option<&'a CycleGanConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ugatit: Option<&'a UgatitConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    autoencoder: Option<&'a AutoencoderTaskConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ddpm: Option<&'a DdpmConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ladiffgan: Option<&'a LadiffganConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bridgegan: Option<&'a BridgeConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stargan: Option<&'a StarGanConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attribute_classifier: Option<&'a ClassifierConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    simgan: Option<&'a SimganConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_encoder: Option<&'a TextEncoderConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gan_int_cls: Option<&'a GanIntClsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stackgan: Option<&'a StackganConfig>,
}

/// Fills the fields a user left out of an optimizer section (`[optim.g]`,
/// `[bridgegan.optim.d]`, …: any table that is `kind` + `lr` in `defaults`) from the
/// task's default for that section, so that `[ugatit.optim.g] lr = 5e-5` keeps U-GAT-IT's
/// weight decay and schedule rather than needing every field or falling back to generic
/// ones. Other sections are left alone: their structs take missing fields from their own
/// `Default`.
fn fill_optimizer_defaults(user: &mut toml::Table, defaults: &toml::Table) {
    for (key, default) in defaults {
        let (Some(toml::Value::Table(u)), toml::Value::Table(d)) = (user.get_mut(key), default)
        else {
            continue;
        };
        if d.contains_key("kind") && d.contains_key("lr") {
            for (k, v) in d {
                u.entry(k).or_insert_with(|| v.clone());
            }
        } else {
            fill_optimizer_defaults(u, d);
        }
    }
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

/// Applies `key.path=value` overrides to a parsed TOML table. The value is read as a TOML
/// value (`3`, `0.5`, `true`, `"x"`, `[1, 2]`), and as a string when it is not one
/// (`run.device=cpu`); tables on the path are created as needed.
pub fn apply_overrides(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| GanError::Input(format!("--set {set:?}: expected section.key=value")))?;
        let path: Vec<&str> = key.trim().split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(GanError::Input(format!(
                "--set {set:?}: the key must be a dotted path such as run.steps"
            )));
        }
        let value = value.trim();
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut cur = &mut *table;
        for (i, part) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur.insert(part.to_string(), parsed.clone());
                break;
            }
            let next = cur
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            cur = match next {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(GanError::Input(format!(
                        "--set {set:?}: `{}` is a value, not a section",
                        path[..=i].join(".")
                    )))
                }
            };
        }
    }
    Ok(())
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
        let image_data = kind != TaskKind::Gan
            || table
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
        let preset = match (kind, image_data && !on_features) {
            // Translation tasks train without diffusion noise unless `enabled = true`.
            // …and the autoencoder and DDPM have no D at all.
            (
                TaskKind::Pix2pix
                | TaskKind::Cyclegan
                | TaskKind::Ugatit
                | TaskKind::Autoencoder
                | TaskKind::Ddpm
                | TaskKind::Ladiffgan
                | TaskKind::Bridgegan
                | TaskKind::Stargan
                | TaskKind::AttributeClassifier
                | TaskKind::Simgan
                | TaskKind::TextEncoder
                | TaskKind::GanIntCls
                | TaskKind::Stackgan,
                _,
            ) => DiffusionConfig {
                enabled: false,
                ..DiffusionConfig::default()
            },
            (_, true) => DiffusionConfig::default(),
            (_, false) => DiffusionConfig::feature(),
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
        let gan = self.task.kind == TaskKind::Gan;
        let view = TaskView {
            task: &self.task,
            run: &self.run,
            data: gan.then_some(&self.data),
            model: gan.then_some(&self.model),
            objective: gan.then_some(&self.objective),
            optim: gan.then_some(&self.optim),
            diffusion: &self.diffusion,
            pix2pix: (self.task.kind == TaskKind::Pix2pix).then_some(&self.pix2pix),
            cyclegan: (self.task.kind == TaskKind::Cyclegan).then_some(&self.cyclegan),
            ugatit: matches!(self.task.kind, TaskKind::Ugatit | TaskKind::Ladiffgan)
                .then_some(&self.ugatit),
            autoencoder: (self.task.kind == TaskKind::Autoencoder).then_some(&self.autoencoder),
            ddpm: (self.task.kind == TaskKind::Ddpm).then_some(&self.ddpm),
            ladiffgan: (self.task.kind == TaskKind::Ladiffgan).then_some(&self.ladiffgan),
            bridgegan: (self.task.kind == TaskKind::Bridgegan).then_some(&self.bridgegan),
            stargan: (self.task.kind == TaskKind::Stargan).then_some(&self.stargan),
            attribute_classifier: (self.task.kind == TaskKind::AttributeClassifier)
                .then_some(&self.attribute_classifier),
            simgan: (self.task.kind == TaskKind::Simgan).then_some(&self.simgan),
            text_encoder: (self.task.kind == TaskKind::TextEncoder).then_some(&self.text_encoder),
            gan_int_cls: (self.task.kind == TaskKind::GanIntCls).then_some(&self.gan_int_cls),
            stackgan: (self.task.kind == TaskKind::Stackgan).then_some(&self.stackgan),
        };
        toml::to_string_pretty(&view).expect("config is always serializable")
    }

    /// Checks every field, naming the first invalid one.
    pub fn validate(&self) -> Result<()> {
        let r = &self.run;
        if r.name.is_empty() || r.name.contains(['/', '\\']) {
            return Err(GanError::config(
                "run.name",
                "must be a non-empty name without path separators",
            ));
        }
        if !(1..=100_000_000).contains(&r.steps) {
            return Err(GanError::config(
                "run.steps",
                format!("must be in [1, 100000000], got {}", r.steps),
            ));
        }
        if !(1..=1_000_000).contains(&r.batch_size) {
            return Err(GanError::config(
                "run.batch_size",
                format!("must be in [1, 1000000], got {}", r.batch_size),
            ));
        }
        for (name, v) in [
            ("run.log_every", r.log_every),
            ("run.eval_every", r.eval_every),
            ("run.checkpoint_every", r.checkpoint_every),
        ] {
            if v < 1 {
                return Err(GanError::config(name, "must be at least 1"));
            }
        }
        if r.keep_checkpoints < 1 {
            return Err(GanError::config(
                "run.keep_checkpoints",
                "must be at least 1",
            ));
        }
        if !(1..=10_000_000).contains(&r.eval_samples) {
            return Err(GanError::config(
                "run.eval_samples",
                format!("must be in [1, 10000000], got {}", r.eval_samples),
            ));
        }
        crate::device::parse_device(&r.device)?;
        if !(0.0..1.0).contains(&r.ema_beta) {
            return Err(GanError::config(
                "run.ema_beta",
                format!("must be in [0, 1), got {}", r.ema_beta),
            ));
        }
        self.diffusion.validate("diffusion")?;
        // Tasks with no discriminator that takes t (SimGAN's local D, the text encoder).
        if self.diffusion.enabled
            && matches!(
                self.task.kind,
                TaskKind::Simgan | TaskKind::TextEncoder | TaskKind::GanIntCls | TaskKind::Stackgan
            )
        {
            return Err(GanError::config(
                "diffusion.enabled",
                format!(
                    "must be false for {}: it has no discriminator that takes t",
                    self.task.kind.name()
                ),
            ));
        }
        match self.task.kind {
            TaskKind::Gan => self.validate_gan(),
            TaskKind::Pix2pix => self.pix2pix.validate("pix2pix"),
            TaskKind::Cyclegan => self.cyclegan.validate("cyclegan"),
            TaskKind::Ugatit => self.ugatit.validate("ugatit"),
            TaskKind::Autoencoder => self.autoencoder.validate("autoencoder"),
            TaskKind::Ddpm => self.ddpm.validate("ddpm"),
            TaskKind::Ladiffgan => {
                self.ugatit.validate("ugatit")?;
                self.ladiffgan.validate("ladiffgan")
            }
            TaskKind::Bridgegan => self.bridgegan.validate("bridgegan"),
            TaskKind::Stargan => self.stargan.validate("stargan"),
            TaskKind::AttributeClassifier => {
                self.attribute_classifier.validate("attribute_classifier")
            }
            TaskKind::Simgan => self.simgan.validate("simgan"),
            TaskKind::TextEncoder => self.text_encoder.validate("text_encoder"),
            TaskKind::GanIntCls => self.gan_int_cls.validate("gan_int_cls"),
            TaskKind::Stackgan => self.stackgan.validate("stackgan"),
        }
    }

    /// Checks the GAN task's sections.
    fn validate_gan(&self) -> Result<()> {
        self.data.toy2d.validate("data.toy2d")?;
        self.model.mlp.validate("model.mlp")?;
        self.model.dcgan.validate("model.dcgan")?;
        self.model.sngan.validate("model.sngan")?;
        self.model.stylegan2.validate("model.stylegan2")?;
        self.model.conditional.validate("model.conditional")?;
        self.data.idx.split()?;
        if !(0..=crate::data::MAX_IMAGES).contains(&self.data.idx.max_images) {
            return Err(GanError::config(
                "data.idx.max_images",
                format!(
                    "must be in [0, {}] (0: every image), got {}",
                    crate::data::MAX_IMAGES,
                    self.data.idx.max_images
                ),
            ));
        }
        match (self.data.source, self.model.family) {
            (DataSource::Toy2d, ModelFamily::Mlp)
            | (
                DataSource::Idx,
                ModelFamily::Dcgan | ModelFamily::Sngan | ModelFamily::Stylegan2,
            ) => {}
            (source, family) => {
                return Err(GanError::config(
                    "model.family",
                    format!(
                        "{family:?} does not fit data.source {source:?} (toy2d needs mlp, idx needs dcgan, sngan or stylegan2)"
                    ),
                ))
            }
        }
        let cond = &self.model.conditional;
        if cond.enabled() && self.data.source == DataSource::Toy2d {
            let modes = crate::data::Toy2d::new(self.data.toy2d.clone())
                .centres()
                .len() as i64;
            if modes != cond.num_classes {
                return Err(GanError::config(
                    "model.conditional.num_classes",
                    format!(
                        "a conditional model on {:?} has one class per mode: must be {modes}, got {}",
                        self.data.toy2d.kind, cond.num_classes
                    ),
                ));
            }
        }
        if self.data.source == DataSource::Toy2d && self.model.mlp.data_dim != 2 {
            return Err(GanError::config(
                "model.mlp.data_dim",
                format!("must be 2 for 2-D data, got {}", self.model.mlp.data_dim),
            ));
        }
        self.validate_projected()?;
        self.objective.validate("objective")?;
        self.optim.g.validate("optim.g")?;
        self.optim.d.validate("optim.d")
    }

    /// A projected D needs grey 28 px images (its backbone's input) and takes neither class
    /// conditioning nor gradient penalties (Projected GAN uses none; the noise sits inside D).
    fn validate_projected(&self) -> Result<()> {
        let p = &self.model.projected;
        p.validate("model.projected")?;
        if !p.enabled {
            return Ok(());
        }
        let err = |f: &str, m: String| Err(GanError::config(f, m));
        match self.model.image_shape() {
            Some((_, [1, 28, 28])) => {}
            Some((field, [c, h, w])) => {
                return err(
                    field,
                    format!("model.projected's mnist-cnn backbone takes 1×28×28 images; the model makes {c}×{h}×{w}"),
                )
            }
            None => {
                return err(
                    "model.projected.enabled",
                    "a projected discriminator needs an image family (dcgan, sngan or stylegan2)".into(),
                )
            }
        }
        if self.model.conditional.enabled() {
            return err(
                "model.projected.enabled",
                "a projected discriminator is unconditional; set model.conditional.num_classes = 0"
                    .into(),
            );
        }
        let o = &self.objective;
        if o.r1_gamma > 0.0 || o.gp_lambda > 0.0 {
            return err(
                "objective.r1_gamma",
                "gradient penalties (r1_gamma, gp_lambda) must be 0 with a projected discriminator"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_and_errors_name_fields() {
        let cfg = TrainConfig::default();
        cfg.validate().unwrap();
        let text = cfg.to_toml();
        assert!(text.contains("[diffusion]") && text.contains("d_target = 0.6"));
        assert_eq!(
            TrainConfig::from_toml_str(&text, Path::new("x.toml")).unwrap(),
            cfg
        );
        let p = Path::new("x.toml");
        let e = TrainConfig::from_toml_str("[diffusion]\nt_max = 2\n", p).unwrap_err();
        assert!(e.to_string().contains("`diffusion.t_max`"), "{e}");
        let e = TrainConfig::from_toml_str("[run]\nstepz = 5\n", p).unwrap_err();
        assert!(e.to_string().contains("stepz"), "{e}");
        let e = TrainConfig::from_toml_str("[run]\nsteps = \"many\"\n", p).unwrap_err();
        assert!(e.to_string().contains("x.toml"), "{e}");
        assert!(e.to_string().contains("line 2: steps = \"many\""), "{e}");
        let e = TrainConfig::from_toml_str("[run]\ndevice = \"tpu\"\n", p).unwrap_err();
        assert!(e.to_string().contains("run.device"), "{e}");
        let e =
            TrainConfig::from_toml_str("[optim.d]\nkind = \"adam\"\nlr = -1.0\n", p).unwrap_err();
        assert!(e.to_string().contains("`optim.d.lr`"), "{e}");
        assert!(e.is_user_error());
    }

    /// Fields left out of [diffusion] take the Appendix G preset of the model family, whether
    /// the table is written in part or left out.
    #[test]
    fn diffusion_fields_default_to_the_family_preset() {
        let p = Path::new("x.toml");
        let toy = TrainConfig::from_toml_str("[diffusion]\nd_target = 0.3\n", p).unwrap();
        let want = DiffusionConfig {
            d_target: 0.3,
            ..DiffusionConfig::feature()
        };
        assert_eq!(toy.diffusion, want);
        let images = "[model]\nfamily = \"dcgan\"\n[data]\nsource = \"idx\"\n";
        let img = TrainConfig::from_toml_str(images, p).unwrap();
        assert_eq!(img.diffusion, DiffusionConfig::default());
        assert_eq!((img.diffusion.sigma, img.diffusion.t_max), (0.05, 1000));
        let partial = format!("{images}[diffusion]\nsampling = \"uniform\"\n");
        let img = TrainConfig::from_toml_str(&partial, p).unwrap();
        assert_eq!((img.diffusion.sigma, img.diffusion.t_max), (0.05, 1000));
    }

    /// Issue 18 item 14: a partial optimizer section takes the rest from the task's default
    /// for it (was: "missing field `kind`"), in a file and through --set.
    #[test]
    fn partial_optimizer_sections_keep_the_task_defaults() {
        let p = Path::new("x.toml");
        let gan = TrainConfig::from_toml_str("[optim.g]\nlr = 1e-4\n", p).unwrap();
        let want = OptimizerConfig {
            lr: 1e-4,
            ..OptimizerConfig::adam(2e-4)
        };
        assert_eq!(
            (&gan.optim.g, &gan.optim.d),
            (&want, &OptimizerConfig::adam(2e-4))
        );
        let ugatit = "[task]\nkind = \"ugatit\"\n[ugatit.optim.g]\nlr = 5e-5\n";
        let u = TrainConfig::from_toml_str(ugatit, p).unwrap();
        let base = UgatitConfig::default().optim.g;
        assert_ne!(base.weight_decay, 0.0, "U-GAT-IT's default decays weights");
        assert_eq!(u.ugatit.optim.g, OptimizerConfig { lr: 5e-5, ..base });
        let set = TrainConfig::from_toml_with(
            "[task]\nkind = \"bridgegan\"\n",
            p,
            &["bridgegan.optim.d.beta2=0.99".into()],
        )
        .unwrap();
        let base = BridgeConfig::default().optim.d;
        assert_eq!(
            set.bridgegan.optim.d,
            OptimizerConfig {
                beta2: 0.99,
                ..base
            }
        );
        // A wrong value in a partial section still names its line.
        let e = TrainConfig::from_toml_str("[optim.g]\nlr = \"fast\"\n", p).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    /// Every training config in configs/ parses and validates (refine-*.toml are experiment
    /// configs, checked by `experiments::refine`); the Diffusion-GAN one equals the built-in
    /// default (so `ganlab train` and the file agree).
    #[test]
    fn configs_directory_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.extension().is_some_and(|x| x == "toml") && !name.starts_with("refine-") {
                let cfg = TrainConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                if p.file_name().unwrap() == "gaussians25-diffusion.toml" {
                    assert_eq!(cfg, TrainConfig::built_in());
                }
                n += 1;
            }
        }
        assert!(n >= 5, "found {n} configs");
    }

    /// The pix2pix task's defaults, as a run's config.toml writes them.
    fn pix2pix_default() -> TrainConfig {
        TrainConfig::from_toml_str("[task]\nkind = \"pix2pix\"\n", Path::new("x.toml")).unwrap()
    }

    /// docs/CONFIG.md shows the defaults with every field, exactly as a run writes them: the
    /// GAN task's (block 1), then pix2pix's, CycleGAN's, U-GAT-IT's, the autoencoder's, the
    /// DDPM's and LaDiffGAN's. `GANLAB_UPDATE_DOCS=1 cargo test
    /// config_reference` rewrites the blocks from the code.
    #[test]
    fn config_reference_matches_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let mut want = vec![TrainConfig::default().to_toml()];
        for kind in [
            "pix2pix",
            "cyclegan",
            "ugatit",
            "autoencoder",
            "ddpm",
            "ladiffgan",
            "bridgegan",
            "stargan",
            "attribute_classifier",
            "simgan",
            "text_encoder",
            "gan_int_cls",
            "stackgan",
        ] {
            let text = format!("[task]\nkind = \"{kind}\"\n");
            want.push(
                TrainConfig::from_toml_str(&text, Path::new("x.toml"))
                    .unwrap()
                    .to_toml(),
            );
        }
        let mut parts: Vec<String> = doc.split("```toml\n").map(str::to_string).collect();
        assert!(
            parts.len() > want.len(),
            "a toml block per task in docs/CONFIG.md"
        );
        if std::env::var_os("GANLAB_UPDATE_DOCS").is_some() {
            for (i, w) in want.iter().enumerate() {
                let rest = parts[i + 1].split_once("```").map(|(_, r)| r.to_string());
                parts[i + 1] = format!("{}```{}", w.trim_end().to_string() + "\n", rest.unwrap());
            }
            std::fs::write(&path, parts.join("```toml\n")).unwrap();
            return;
        }
        for (i, w) in want.iter().enumerate() {
            let block = parts[i + 1].split("```").next().unwrap();
            assert_eq!(block.trim(), w.trim(), "block {} of docs/CONFIG.md", i + 1);
        }
    }

    /// `--set` edits any field before validation: values as TOML or as bare strings, new
    /// tables created, bad keys and values named; another task's section is refused.
    #[test]
    fn overrides_and_task_sections() {
        let p = Path::new("x.toml");
        let sets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cfg = TrainConfig::from_toml_with(
            "[run]\nsteps = 5\n",
            p,
            &sets(&[
                "run.steps=7",
                "run.device=cpu",
                "diffusion.enabled=false",
                "model.mlp.hidden=8",
            ]),
        )
        .unwrap();
        assert_eq!((cfg.run.steps, cfg.run.device.as_str()), (7, "cpu"));
        assert!(!cfg.diffusion.enabled && cfg.model.mlp.hidden == 8);
        // Issue 18 item 14: an empty or comment-only file is refused, not trained silently.
        for text in ["", "# only a comment\n\n"] {
            let e = TrainConfig::from_toml_str(text, p).unwrap_err().to_string();
            assert!(e.contains("sets nothing"), "{e}");
        }
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.steps=0"])).unwrap_err();
        assert!(e.to_string().contains("`run.steps`"), "{e}");
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.stepz=3"])).unwrap_err();
        assert!(e.to_string().contains("stepz"), "{e}");
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.steps"])).unwrap_err();
        assert!(e.to_string().contains("section.key=value"), "{e}");
        let e = TrainConfig::from_toml_with("", p, &sets(&["run.steps.x=1"])).unwrap_err();
        assert!(e.is_user_error(), "{e}");
        let e = TrainConfig::from_toml_str(
            "[task]\nkind = \"pix2pix\"\n[model]\nfamily = \"mlp\"\n",
            p,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`model` is not a section of task \"pix2pix\""),
            "{e}"
        );
        let px = pix2pix_default();
        assert!(
            !px.diffusion.enabled,
            "translation trains without diffusion unless asked"
        );
        let text = px.to_toml();
        assert!(
            text.contains("[pix2pix.unet]") && !text.contains("[model"),
            "{text}"
        );
        assert_eq!(TrainConfig::from_toml_str(&text, p).unwrap(), px);
    }
}
