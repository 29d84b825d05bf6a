//! What the attribute-editing tasks (multi-attribute translation, StarGAN) share: their data
//! (train and test splits of an attribute set), the batch of one step (sources and, as the
//! official code does, the same batch shuffled as references and targets), the fixed probes,
//! the grids in the paper's layouts, and the accuracy of a classifier on their edits.
//!
//! An *edit* is a function (x, y_s, y_t, x_r) → images: x [n, 3, s, s] with labels y_s edited
//! to y_t, reference-based when references x_r are given (label-based otherwise).

use tch::{Device, Kind, Tensor};

use super::{Mode, Scalars};
use crate::data::attributes::{flip_attribute, AttributeDataConfig, AttributeSet};
use crate::error::{GanError, Result};
use crate::train::step_seed;

/// An edit (see module docs).
pub type EditFn<'a> = &'a dyn Fn(&Tensor, &Tensor, &Tensor, Option<&Tensor>) -> Tensor;

/// One training batch: sources, their labels, the references (the batch shuffled), the
/// targets (the references' labels) and the references' indices in the training split.
pub struct Batch {
    /// Sources [m, 3, s, s].
    pub x: Tensor,
    /// Their labels [m, k].
    pub y_s: Tensor,
    /// References: the sources shuffled.
    pub x_r: Tensor,
    /// Targets: the references' labels.
    pub y_t: Tensor,
    /// The references' indices in the training split (CPU).
    pub ref_idx: Tensor,
}

/// The data of an attribute task.
#[derive(Debug)]
pub struct AttributeData {
    cfg: AttributeDataConfig,
    seed: u64,
    probes: i64,
    device: Device,
    /// The training split (None for inference).
    pub train: Option<AttributeSet>,
    /// The test split (None for inference).
    pub test: Option<AttributeSet>,
}

impl AttributeData {
    /// Loads both splits of a validated config (`Mode::Train` only); `probes` test images
    /// are shown in the grids.
    pub fn new(
        cfg: &AttributeDataConfig,
        probes: i64,
        seed: u64,
        mode: Mode,
        device: Device,
    ) -> Result<Self> {
        let (train, test) = match mode {
            Mode::Train => (Some(cfg.load("train")?), Some(cfg.load("test")?)),
            Mode::Inference => (None, None),
        };
        Ok(Self {
            cfg: cfg.clone(),
            seed,
            probes,
            device,
            train,
            test,
        })
    }

    /// The data config.
    pub fn config(&self) -> &AttributeDataConfig {
        &self.cfg
    }

    /// Number of training images (0 for inference).
    pub fn train_len(&self) -> i64 {
        self.train.as_ref().map_or(0, AttributeSet::len)
    }

    /// A random batch of `m` (libtorch's generator, reseeded per step by the loop).
    pub fn batch(&self, m: i64) -> Result<Batch> {
        let t = self.train.as_ref().ok_or_else(|| {
            GanError::Input("this run was opened for inference; resume it to train".into())
        })?;
        let idx = Tensor::randint(t.len(), [m], (Kind::Int64, Device::Cpu));
        let perm = Tensor::randperm(m, (Kind::Int64, Device::Cpu));
        let flips = Tensor::rand([m, 1, 1, 1], (Kind::Float, Device::Cpu)).lt(0.5);
        let mut x = t.images_at(&idx, Device::Cpu);
        if self.cfg.flip {
            x = x.flip([3]).where_self(&flips, &x);
        }
        let y_s = t.labels_at(&idx, Device::Cpu);
        Ok(Batch {
            x_r: x.index_select(0, &perm).to_device(self.device),
            y_t: y_s.index_select(0, &perm).to_device(self.device),
            ref_idx: idx.index_select(0, &perm),
            x: x.to_device(self.device),
            y_s: y_s.to_device(self.device),
        })
    }

    /// The fixed probes: `probes` test images spread over the split, and their labels.
    pub fn probes(&self) -> Option<(Tensor, Tensor)> {
        let t = self.test.as_ref()?;
        let k = self.probes.min(t.len());
        let idx = Tensor::from_slice(&(0..k).map(|i| i * t.len() / k).collect::<Vec<i64>>());
        Some((
            t.images_at(&idx, self.device),
            t.labels_at(&idx, self.device),
        ))
    }

    /// Fig. 9's grid: the sources in the first row, then one row per attribute flipped
    /// (label-based); with `reference`, one more row, reference-based, whose targets and
    /// styles are the next probe's.
    pub fn label_grid(
        &self,
        x: &Tensor,
        y: &Tensor,
        edit: EditFn,
        reference: bool,
    ) -> Result<Tensor> {
        tch::manual_seed(step_seed(self.seed, u64::MAX - 3));
        let mates = self.cfg.mates();
        let mut rows = vec![x.shallow_clone()];
        for j in 0..self.cfg.attributes.len() {
            let y_t = flip_attribute(&mates, y, j);
            rows.push(edit(x, y, &y_t, None));
        }
        if reference {
            let (x_r, y_r) = (x.roll([1], [0]), y.roll([1], [0]));
            rows.push(edit(x, y, &y_r, Some(&x_r)));
        }
        let all = Tensor::cat(&rows, 0).to_device(Device::Cpu);
        crate::data::grid(&all, x.size()[0], 2)
    }

    /// Fig. 6's grid: the sources in the first row, the references in the first column; cell
    /// (i, j) is source j given reference i's attributes and style.
    pub fn reference_grid(&self, x: &Tensor, y: &Tensor, edit: EditFn) -> Result<Tensor> {
        tch::manual_seed(step_seed(self.seed, u64::MAX - 3));
        let n = x.size()[0];
        let blank = Tensor::ones([1, 3, x.size()[2], x.size()[3]], (Kind::Float, self.device));
        let mut cells = vec![blank, x.shallow_clone()];
        for i in 0..n {
            let (r, yr) = (x.narrow(0, i, 1), y.narrow(0, i, 1));
            cells.push(r.shallow_clone());
            let rr = r.expand([n, -1, -1, -1], false);
            cells.push(edit(x, y, &yr.expand([n, -1], false), Some(&rr)));
        }
        let all = Tensor::cat(&cells, 0).to_device(Device::Cpu);
        crate::data::grid(&all, n + 1, 2)
    }

    /// For image i and attribute j flipped, a reference: the next test image (cyclically)
    /// whose attribute j has the target value 1 − y_ij (the image itself when none has).
    pub fn references_for(&self, n: i64, j: usize) -> Result<Tensor> {
        let t = self
            .test
            .as_ref()
            .ok_or_else(|| GanError::Input("no test split".into()))?;
        let col: Vec<f32> = Vec::try_from(t.labels.narrow(1, j as i64, 1).view([-1]))?;
        let refs: Vec<i64> = (0..n as usize)
            .map(|i| {
                let v = 1.0 - col[i];
                (1..col.len())
                    .map(|o| (i + o) % col.len())
                    .find(|&r| col[r] == v)
                    .unwrap_or(i) as i64
            })
            .collect();
        Ok(t.images_at(&Tensor::from_slice(&refs), self.device))
    }

    /// The first `n` test images with labels, on the device.
    pub fn test_batch(&self, n: i64) -> Result<(Tensor, Tensor)> {
        let t = self
            .test
            .as_ref()
            .ok_or_else(|| GanError::Input("no test split".into()))?;
        let idx = Tensor::arange(n.min(t.len()), (Kind::Int64, Device::Cpu));
        Ok((
            t.images_at(&idx, self.device),
            t.labels_at(&idx, self.device),
        ))
    }

    /// The first `limit` test images with attribute `j` flipped by `edit` (label-based, or
    /// reference-based with references from [`AttributeData::references_for`]), in batches
    /// of 32, on the CPU; and the flipped attribute's target values [n, 1].
    pub fn flips(
        &self,
        limit: i64,
        j: usize,
        edit: EditFn,
        reference: bool,
    ) -> Result<(Tensor, Tensor)> {
        let t = self
            .test
            .as_ref()
            .ok_or_else(|| GanError::Input("no test split".into()))?;
        let (x, y) = self.test_batch(limit)?;
        let n = x.size()[0];
        let y_t = t.flip(&y, j);
        let x_r = if reference {
            Some(self.references_for(n, j)?)
        } else {
            None
        };
        let parts: Vec<Tensor> = (0..n)
            .step_by(32)
            .map(|a| {
                let l = 32.min(n - a);
                let r = x_r.as_ref().map(|r| r.narrow(0, a, l));
                edit(
                    &x.narrow(0, a, l),
                    &y.narrow(0, a, l),
                    &y_t.narrow(0, a, l),
                    r.as_ref(),
                )
                .to_device(Device::Cpu)
            })
            .collect();
        Ok((
            Tensor::cat(&parts, 0),
            y_t.narrow(1, j as i64, 1).to_device(Device::Cpu),
        ))
    }

    /// Attribute accuracy of `classify` (logits [n, k]) on up to `limit` test images: on the
    /// real images (`<prefix>_real`), and on single-attribute flips ([`AttributeData::flips`]),
    /// label-based (`<prefix>_label`) and, with `reference`, reference-based
    /// (`<prefix>_ref`): the share of edits whose flipped attribute `classify` reads as the
    /// target. Per attribute as `<prefix>_label_<name>` and `<prefix>_ref_<name>`.
    pub fn accuracy(
        &self,
        limit: i64,
        prefix: &str,
        classify: &dyn Fn(&Tensor) -> Tensor,
        edit: EditFn,
        reference: bool,
    ) -> Result<Scalars> {
        let mut s = Scalars::new();
        if self.test.is_none() {
            return Ok(s);
        }
        tch::manual_seed(step_seed(self.seed, u64::MAX - 4));
        let (x, y) = self.test_batch(limit)?;
        let logits = |x: &Tensor| {
            let parts: Vec<Tensor> = (0..x.size()[0])
                .step_by(32)
                .map(|a| {
                    let b = x
                        .narrow(0, a, 32.min(x.size()[0] - a))
                        .to_device(self.device);
                    classify(&b).to_device(Device::Cpu)
                })
                .collect();
            Tensor::cat(&parts, 0)
        };
        s.push(
            &format!("{prefix}_real"),
            hit_rate(&logits(&x), &y.to_device(Device::Cpu)),
        );
        let names = &self.cfg.attributes;
        let modes: &[&str] = if reference {
            &["label", "ref"]
        } else {
            &["label"]
        };
        for mode in modes {
            let mut sum = 0.0;
            for (j, name) in names.iter().enumerate() {
                let (e, want) = self.flips(limit, j, edit, *mode == "ref")?;
                let acc = hit_rate(&logits(&e).narrow(1, j as i64, 1), &want);
                s.push(&format!("{prefix}_{mode}_{name}"), acc);
                sum += acc;
            }
            s.push(&format!("{prefix}_{mode}"), sum / names.len() as f64);
        }
        Ok(s)
    }
}

/// The share of entries where `logits` > 0 agrees with `target` ∈ {0, 1}.
pub fn hit_rate(logits: &Tensor, target: &Tensor) -> f64 {
    logits
        .gt(0.0)
        .to_kind(Kind::Float)
        .eq_tensor(target)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[])
}

/// Checks `x` is a batch of RGB `s` × `s` images; `what` names it in the error.
pub fn check_images(x: &Tensor, s: i64, what: &str) -> Result<()> {
    if x.size().len() != 4 || x.size()[1..] != [3, s, s] {
        return Err(GanError::Input(format!(
            "{what}: expected images [n, 3, {s}, {s}], got {:?}",
            x.size()
        )));
    }
    Ok(())
}

/// Checks the arguments of an edit: images `x` of side `s` and source and target labels
/// [n, k].
pub fn check_edit(x: &Tensor, y_s: &Tensor, y_t: &Tensor, s: i64, k: usize) -> Result<()> {
    check_images(x, s, "input")?;
    let n = x.size()[0];
    for (what, y) in [("source labels", y_s), ("target labels", y_t)] {
        if y.size() != [n, k as i64] {
            return Err(GanError::Input(format!(
                "{what}: expected [{n}, {k}], got {:?}",
                y.size()
            )));
        }
    }
    Ok(())
}
