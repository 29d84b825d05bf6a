//! The attribute classifier that scores edits (multi-attribute-translation-supplement.txt
//! Table 1, "accuracy of each attribute"): a k-way sigmoid classifier trained on the real
//! training images, as its own task, then frozen. Its test accuracy on real images bounds
//! what the edit accuracy can show.
//!
//! Reconstructed: the paper ships no classifier; STGAN and AttGAN, whose protocol it follows
//! (../shared/specs/translation.md §5), train "a separate classifier" on CelebA's training
//! split without giving its layers. Ours: `blocks` stages of (conv3×3, GroupNorm 8, LReLU 0.2,
//! conv4×4 stride 2, GroupNorm 8, LReLU 0.2), widths w, 2w, …; global average pooling; a
//! linear layer to k logits. Per-sample GroupNorm instead of BatchNorm, so a checkpoint is
//! its weights alone. Loss: mean binary cross-entropy; Adam 1e-3, β (0.9, 0.999), cosine
//! decay; random flips.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::attribute_data::{check_images, AttributeData};
use super::{Mode, Outputs, Scalars, Section, StepContext, Task};
use crate::data::attributes::AttributeDataConfig;
use crate::error::{GanError, Result};
use crate::nn::LeakyRelu;
use crate::tasks::{Group, Groups};
use crate::train::config::TrainConfig;
use crate::train::optim::{LrSchedule, OptimizerConfig};
use crate::train::step_seed;

/// `[attribute_classifier]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// First width.
    pub width: i64,
    /// Down-sampling stages.
    pub blocks: i64,
    /// The attribute data (the attributes it reads, in order).
    pub data: AttributeDataConfig,
    /// Optimizer.
    pub optim: OptimizerConfig,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            width: 32,
            blocks: 4,
            data: AttributeDataConfig::default(),
            optim: OptimizerConfig {
                schedule: LrSchedule::Cosine,
                ..OptimizerConfig::adam(1e-3)
            },
        }
    }
}

impl ClassifierConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(8..=256).contains(&self.width) || self.width % 8 != 0 {
            return Err(GanError::config(
                format!("{prefix}.width"),
                format!("must be a multiple of 8 in [8, 256], got {}", self.width),
            ));
        }
        if !(1..=6).contains(&self.blocks) || self.data.image_size >> self.blocks < 1 {
            return Err(GanError::config(
                format!("{prefix}.blocks"),
                format!(
                    "must be in [1, 6] and leave at least 1 px, got {}",
                    self.blocks
                ),
            ));
        }
        self.data.validate(&format!("{prefix}.data"))?;
        self.optim.validate(&format!("{prefix}.optim"))
    }
}

/// The network (see module docs).
#[derive(Debug)]
pub struct AttributeNet {
    stages: Vec<[(nn::Conv2D, nn::GroupNorm); 2]>,
    fc: nn::Linear,
}

impl AttributeNet {
    /// The net under `p` for `k` attributes.
    pub fn new(p: nn::Path, c: &ClassifierConfig, k: i64) -> Self {
        let mut cin = 3;
        let stages = (0..c.blocks)
            .map(|i| {
                let w = c.width << i;
                let q = &p / format!("stage{i}");
                let conv = |name: &str, a: i64, kk: i64, s: i64, pad: i64| {
                    let cfg = nn::ConvConfig {
                        stride: s,
                        padding: pad,
                        ..Default::default()
                    };
                    (
                        nn::conv2d(&q / name, a, w, kk, cfg),
                        nn::group_norm(&q / format!("{name}_gn"), 8, w, Default::default()),
                    )
                };
                let st = [conv("conv0", cin, 3, 1, 1), conv("conv1", w, 4, 2, 1)];
                cin = w;
                st
            })
            .collect();
        Self {
            stages,
            fc: nn::linear(&p / "fc", cin, k, Default::default()),
        }
    }

    /// Attribute logits [n, k] of images [n, 3, s, s].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let act = LeakyRelu::new(0.2);
        let mut h = x.shallow_clone();
        for st in &self.stages {
            for (c, g) in st {
                h = act.forward(&g.forward(&c.forward(&h)));
            }
        }
        self.fc
            .forward(&h.mean_dim(&[2i64, 3][..], false, Kind::Float))
    }
}

/// A trained attribute classifier as the metrics use it.
pub trait AttributeClassifier {
    /// The attributes it reads, in order.
    fn attributes(&self) -> &[String];
    /// The image side it takes.
    fn image_size(&self) -> i64;
    /// Logits [n, k] of images [n, 3, s, s] (no gradient, on the classifier's device).
    fn logits(&self, x: &Tensor) -> Result<Tensor>;
}

/// The task (see module docs).
#[derive(Debug)]
pub struct ClassifierTask {
    cfg: TrainConfig,
    device: Device,
    groups: Groups,
    net: AttributeNet,
    data: AttributeData,
}

impl ClassifierTask {
    /// The task of a validated config; `Mode::Train` loads the data.
    pub fn new(cfg: &TrainConfig, mode: Mode) -> Result<Self> {
        let c = &cfg.attribute_classifier;
        let device = crate::device::resolve_device(&cfg.run.device)?;
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX));
        let vs = nn::VarStore::new(device);
        let net = AttributeNet::new(vs.root() / "c", c, c.data.attributes.len() as i64);
        let mut groups = Groups::default();
        groups.push(Group::new("c", vs, c.optim.clone(), cfg.run.ema_beta)?);
        Ok(Self {
            cfg: cfg.clone(),
            device,
            groups,
            net,
            data: AttributeData::new(&c.data, 8, cfg.run.seed, mode, device)?,
        })
    }

    fn eval_logits(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.groups.get("c").with_ema(|| self.net.forward(x))
    }

    /// Per-attribute accuracy on up to `limit` test images: `acc_<name>` and their mean `acc`.
    fn test_accuracy(&self, limit: i64) -> Result<Scalars> {
        let mut s = Scalars::new();
        let Some(t) = &self.data.test else {
            return Ok(s);
        };
        let n = t.len().min(limit);
        let mut hits = Vec::new();
        for a in (0..n).step_by(64) {
            let idx = Tensor::arange_start(a, a + 64.min(n - a), (Kind::Int64, Device::Cpu));
            let x = t.images_at(&idx, self.device);
            let y = t.labels_at(&idx, self.device);
            let pred = self.eval_logits(&x).gt(0.0).to_kind(Kind::Float);
            hits.push(pred.eq_tensor(&y).to_kind(Kind::Float));
        }
        let acc = Tensor::cat(&hits, 0).mean_dim(0, false, Kind::Float);
        let acc: Vec<f32> = Vec::try_from(acc.to_device(Device::Cpu))?;
        for (name, a) in self.data.config().attributes.iter().zip(&acc) {
            s.push(&format!("acc_{name}"), *a as f64);
        }
        s.push(
            "acc",
            acc.iter().map(|&a| a as f64).sum::<f64>() / acc.len() as f64,
        );
        Ok(s)
    }
}

impl Task for ClassifierTask {
    fn kind(&self) -> &'static str {
        "attribute_classifier"
    }

    fn groups(&self) -> &Groups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut Groups {
        &mut self.groups
    }

    fn step(&mut self, _: StepContext) -> Result<Scalars> {
        let b = self.data.batch(self.cfg.run.batch_size)?;
        let logits = self.net.forward(&b.x);
        let loss = super::bridgegan::bce_logits(&logits, &b.y_s);
        let acc = logits
            .gt(0.0)
            .to_kind(Kind::Float)
            .eq_tensor(&b.y_s)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        let opt = self.groups.get_mut("c").opt_mut();
        opt.zero_grad();
        loss.backward();
        opt.step()?;
        Ok(Scalars::new()
            .with("loss", loss.double_value(&[]))
            .with("train_acc", acc.double_value(&[])))
    }

    fn visuals(&self) -> Result<Option<Tensor>> {
        Ok(None)
    }

    fn evaluate(&mut self) -> Result<Scalars> {
        let s = self.test_accuracy(self.cfg.run.eval_samples)?;
        Ok(Scalars::new().with("test_acc", s.get("acc").unwrap_or(f64::NAN)))
    }

    fn finish(&self, _dir: &Path) -> Result<Outputs> {
        let mut out = Outputs::default();
        let s = self.test_accuracy(i64::MAX)?;
        let mut rows = String::new();
        for (k, v) in &s.0 {
            out.summary.insert(format!("test_{k}"), (*v).into());
            rows += &format!("<tr><td>{k}</td><td>{v:.3}</td></tr>");
        }
        out.sections.push(Section {
            heading: "test accuracy on real images".into(),
            html: format!("<table>{rows}</table>"),
        });
        Ok(out)
    }

    fn attribute_classifier(&self) -> Option<&dyn AttributeClassifier> {
        Some(self)
    }
}

impl AttributeClassifier for ClassifierTask {
    fn attributes(&self) -> &[String] {
        &self.cfg.attribute_classifier.data.attributes
    }

    fn image_size(&self) -> i64 {
        self.cfg.attribute_classifier.data.image_size
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        check_images(x, self.image_size(), "classifier input")?;
        Ok(self.eval_logits(&x.to_device(self.device)))
    }
}
