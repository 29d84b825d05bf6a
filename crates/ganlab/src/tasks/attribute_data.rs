//! What the attribute-editing tasks (multi-attribute translation, StarGAN) share: their data
//! (train and test splits of an attribute set), the batch of one step (sources and, as the
//! official code does, the same batch shuffled as references and targets), the fixed probes,
//! the grids in the paper's layouts, and the accuracy of a classifier on their edits.
//!
//! An *edit* is a function (x, y_s, y_t, x_r) → images: x [n, 3, s, s] with labels y_s edited
//! to y_t, reference-based when references x_r are given (label-based otherwise).

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::{AttributeEditor, Curve, Mode, Outputs, Scalars, Section, Task};
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
        let idx = crate::dist::randint(0, t.len(), &[m], (Kind::Int64, Device::Cpu));
        let perm = Tensor::randperm(m, (Kind::Int64, Device::Cpu));
        let flips = crate::dist::rand(&[m, 1, 1, 1], (Kind::Float, Device::Cpu)).lt(0.5);
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
    /// Probe i is image (i·⌊n/k⌋ + i) mod n: the extra +i keeps a split whose labels repeat
    /// with period ⌊n/k⌋ (the emoji set's 288 test images cycle through 36 = 2 vendors × 3
    /// genders × 6 skin tones, and 288/8 = 36) from showing one label configuration k times.
    pub fn probes(&self) -> Option<(Tensor, Tensor)> {
        let t = self.test.as_ref()?;
        let (n, k) = (t.len(), self.probes.min(t.len()));
        let idx = Tensor::from_slice(&probe_indices(n, k));
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

    /// Fig. 11's grid (reference-based synthesis of one attribute each side): the first row
    /// holds two sources, for `jl` and for `jr` (see [`source_for`]: a test image without
    /// the attribute, preferably one with a group mate, e.g. a woman for Man); the edge
    /// columns hold `n` references, test images with `jl` (left) and with `jr` (right),
    /// spread over the split; the middle columns are the left source given `jl`
    /// in each left reference's style and the right source given `jr` in each right
    /// reference's style (only that attribute changes: the conflict rule clears its group
    /// mates); `edit(x, y_s, y_t, x_r)` is the reference-based edit. None when the test split
    /// lacks such images.
    pub fn edge_reference_grid(
        &self,
        jl: usize,
        jr: usize,
        n: i64,
        edit: &dyn Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Option<Tensor>> {
        tch::manual_seed(step_seed(self.seed, u64::MAX - 3));
        let t = self
            .test
            .as_ref()
            .ok_or_else(|| GanError::Input("no test split".into()))?;
        let col = |j: usize| -> Result<Vec<f32>> {
            Ok(Vec::try_from(t.labels.narrow(1, j as i64, 1).view([-1]))?)
        };
        let mut cells: Vec<Tensor> = Vec::new();
        let mut sides = Vec::new();
        let mates = self.cfg.mates();
        let mut taken = Vec::new();
        for j in [jl, jr] {
            let c = col(j)?;
            let Some(src) = source_for(&c, &mates[j], &col, &taken)? else {
                return Ok(None);
            };
            taken.push(src);
            let with: Vec<i64> = (0..c.len() as i64)
                .filter(|&i| c[i as usize] == 1.0)
                .collect();
            if with.is_empty() {
                return Ok(None);
            }
            let picks: Vec<i64> = (0..n)
                .map(|i| with[(i as usize * with.len()) / n as usize])
                .collect();
            let idx = Tensor::from_slice(&[src as i64]);
            let (x, y) = (
                t.images_at(&idx, self.device),
                t.labels_at(&idx, self.device),
            );
            let refs = t.images_at(&Tensor::from_slice(&picks), self.device);
            let y_t = flip_attribute(&self.cfg.mates(), &y, j).expand([n, -1], false);
            let xs = x.expand([n, -1, -1, -1], false);
            let out = edit(&xs, &y.expand([n, -1], false), &y_t, &refs)?;
            sides.push((x, refs, out));
        }
        let blank = sides[0].0.ones_like();
        cells.extend([blank.shallow_clone(), sides[0].0.shallow_clone()]);
        cells.extend([sides[1].0.shallow_clone(), blank]);
        for i in 0..n {
            cells.push(sides[0].1.narrow(0, i, 1));
            cells.push(sides[0].2.narrow(0, i, 1));
            cells.push(sides[1].2.narrow(0, i, 1));
            cells.push(sides[1].1.narrow(0, i, 1));
        }
        let all = Tensor::cat(&cells, 0).to_device(Device::Cpu);
        Ok(Some(crate::data::grid(&all, 4, 2)?))
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

/// The probe indices (i·⌊n/k⌋ + i) mod n, i < k (see [`AttributeData::probes`]).
pub fn probe_indices(n: i64, k: i64) -> Vec<i64> {
    (0..k)
        .map(|i| (i * (n / k.max(1)) + i) % n.max(1))
        .collect()
}

/// Fig. 11's source for attribute j, whose label column is `c`: the first test image
/// without j that has one of j's group `mates` (so the edit is a real change, e.g. a woman
/// made a man) and is not `taken` by the other side; else the first without j not taken;
/// else the first without j. None when every image has j.
pub fn source_for(
    c: &[f32],
    mates: &[usize],
    col: &dyn Fn(usize) -> Result<Vec<f32>>,
    taken: &[usize],
) -> Result<Option<usize>> {
    let mate_cols = mates.iter().map(|&m| col(m)).collect::<Result<Vec<_>>>()?;
    let without: Vec<usize> = (0..c.len()).filter(|&i| c[i] == 0.0).collect();
    let free = |i: &&usize| !taken.contains(i);
    Ok(without
        .iter()
        .filter(free)
        .find(|&&i| mate_cols.iter().any(|m| m[i] == 1.0))
        .or_else(|| without.iter().find(free))
        .or(without.first())
        .copied())
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

/// What an attribute-editing task provides; the [`Task`] methods and the
/// [`AttributeEditor`](super::AttributeEditor) they share are written once on it (the
/// functions below and the blanket implementation).
pub trait AttributeModel: Task {
    /// The task's data.
    fn data(&self) -> &AttributeData;
    /// The device its networks live on.
    fn device(&self) -> Device;
    /// True when the model takes reference images.
    fn has_reference(&self) -> bool;
    /// The edit of validated tensors on the device, no gradient: G(x, y_s → y_t) with the
    /// EMA weights where kept; α = 1 label-based, α = 0 reference-based (`x_r` given), in
    /// between the mix ([`super::AttributeEditor::edit`]). A model without references
    /// ignores `x_r` and α.
    fn generate(
        &self,
        x: &Tensor,
        y_s: &Tensor,
        y_t: &Tensor,
        x_r: Option<&Tensor>,
        alpha: f64,
    ) -> Tensor;
    /// The model's own attribute logits [n, k] of images on the device (no gradient).
    fn logits(&self, x: &Tensor) -> Tensor;
    /// Test images scored at each evaluation.
    fn eval_samples(&self) -> i64;
}

/// `m`'s edit as an [`EditFn`]: reference-based when references are given, else
/// label-based.
fn edit_of<M: AttributeModel + ?Sized>(
    m: &M,
) -> impl Fn(&Tensor, &Tensor, &Tensor, Option<&Tensor>) -> Tensor + '_ {
    |x: &Tensor, a: &Tensor, b: &Tensor, r: Option<&Tensor>| {
        m.generate(x, a, b, r, if r.is_some() { 0.0 } else { 1.0 })
    }
}

/// Accuracy of the model's own classifier on real test images and on its edits
/// ([`AttributeData::accuracy`], prefix `c_acc`; reference-based too where it takes
/// references).
pub fn c_accuracy<M: AttributeModel + ?Sized>(m: &M, limit: i64) -> Result<Scalars> {
    let classify = |x: &Tensor| m.logits(x);
    m.data()
        .accuracy(limit, "c_acc", &classify, &edit_of(m), m.has_reference())
}

/// [`Task::visuals`]: the label grid of the probes (Fig. 9, with a reference row where the
/// model takes references).
pub fn visuals<M: AttributeModel + ?Sized>(m: &M) -> Result<Option<Tensor>> {
    let Some((x, y)) = m.data().probes() else {
        return Ok(None);
    };
    Ok(Some(m.data().label_grid(
        &x,
        &y,
        &edit_of(m),
        m.has_reference(),
    )?))
}

/// [`Task::evaluate`]: the mean accuracies of [`c_accuracy`] (not per attribute).
pub fn evaluate<M: AttributeModel + ?Sized>(m: &M) -> Result<Scalars> {
    let mut s = c_accuracy(m, m.eval_samples())?;
    s.0.retain(|(k, _)| matches!(k.as_str(), "c_acc_real" | "c_acc_label" | "c_acc_ref"));
    Ok(s)
}

/// [`Task::finish`]: label_based.png (Fig. 9) and, where the model takes references,
/// reference_based.png (Fig. 6), each with a report section; [`c_accuracy`] in the summary.
pub fn finish<M: AttributeModel + ?Sized>(m: &M, dir: &Path) -> Result<Outputs> {
    let mut out = Outputs::default();
    let Some((x, y)) = m.data().probes() else {
        return Ok(out);
    };
    let edit = edit_of(m);
    let names = m.data().config().attributes.join(", ");
    let mut files = vec![(
        "label_based.png",
        m.data().label_grid(&x, &y, &edit, m.has_reference())?,
        if m.has_reference() {
            format!(
                "label-based: sources, then one row per attribute flipped ({names}), then \
                 reference-based with the next source as reference"
            )
        } else {
            format!("sources, then one row per attribute flipped ({names})")
        },
    )];
    if m.has_reference() {
        files.push((
            "reference_based.png",
            m.data().reference_grid(&x, &y, &edit)?,
            "reference-based: sources in the first row, references in the first column".into(),
        ));
    }
    for (file, grid, caption) in files {
        crate::data::write_png(&dir.join(file), &grid)?;
        out.sections.push(Section {
            html: format!("<img src=\"{file}\" alt=\"{caption}\">"),
            heading: caption,
        });
    }
    for (k, v) in c_accuracy(m, m.eval_samples())?.0 {
        out.summary.insert(k, v.into());
    }
    Ok(out)
}

/// [`Task::status`] of a WGAN-GP attribute task.
pub fn status(s: &Scalars) -> String {
    let v = |k| s.get(k).unwrap_or(f64::NAN);
    format!(
        "wd={:.3} gp={:.3} loss_g={:.3} rec={:.3}",
        v("wd"),
        v("gp"),
        v("loss_g"),
        v("loss_rec")
    )
}

/// [`Task::curves`] of a WGAN-GP attribute task: the critic's terms, and G's weighted
/// terms `g_terms`.
pub fn curves(g_terms: Vec<&'static str>) -> Vec<Curve> {
    vec![
        Curve {
            title: "WGAN-GP critic",
            ylabel: "value",
            series: vec!["wd", "gp", "loss_d_cls"],
        },
        Curve {
            title: "G's weighted terms",
            ylabel: "weighted loss",
            series: g_terms,
        },
    ]
}

impl<M: AttributeModel> AttributeEditor for M {
    fn attributes(&self) -> &[String] {
        &self.data().config().attributes
    }

    fn mates(&self) -> Vec<Vec<usize>> {
        self.data().config().mates()
    }

    fn image_size(&self) -> i64 {
        self.data().config().image_size
    }

    fn classify(&self, x: &Tensor) -> Result<Tensor> {
        check_images(x, self.image_size(), "input")?;
        Ok(self
            .logits(&x.to_device(self.device()))
            .gt(0.0)
            .to_kind(Kind::Float))
    }

    fn has_reference(&self) -> bool {
        AttributeModel::has_reference(self)
    }

    fn edit(
        &self,
        x: &Tensor,
        y_s: &Tensor,
        y_t: &Tensor,
        x_r: Option<&Tensor>,
        alpha: f64,
    ) -> Result<Tensor> {
        check_edit(x, y_s, y_t, self.image_size(), self.attributes().len())?;
        if !AttributeModel::has_reference(self) && (x_r.is_some() || alpha != 1.0) {
            return Err(GanError::Input(format!(
                "{} takes no reference images",
                self.kind()
            )));
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(GanError::Input(format!(
                "alpha must be in [0, 1], got {alpha}"
            )));
        }
        let n = x.size()[0];
        if alpha < 1.0 {
            let r = x_r.ok_or_else(|| {
                GanError::Input("reference-based synthesis (alpha < 1) needs references".into())
            })?;
            check_images(r, self.image_size(), "reference")?;
            if r.size()[0] != n {
                return Err(GanError::Input(format!(
                    "{n} inputs but {} references",
                    r.size()[0]
                )));
            }
        }
        let dev = |t: &Tensor| t.to_device(self.device());
        let r = x_r.map(dev);
        Ok(self.generate(&dev(x), &dev(y_s), &dev(y_t), r.as_ref(), alpha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_do_not_alias_a_periodic_split() {
        // The emoji test split: 288 images, labels with period 36; 8 probes.
        let idx = probe_indices(288, 8);
        assert_eq!(idx, vec![0, 37, 74, 111, 148, 185, 222, 259]);
        let phases: std::collections::BTreeSet<i64> = idx.iter().map(|i| i % 36).collect();
        assert_eq!(
            phases.len(),
            8,
            "every probe at a different phase of the period"
        );
        assert!(probe_indices(5, 5).iter().all(|&i| i < 5));
        assert_eq!(probe_indices(3, 3), vec![0, 2, 1]);
    }

    #[test]
    fn fig11_source_prefers_a_group_mate() {
        // Columns: Man (0), Woman (1); images: neutral, man, woman, neutral.
        let cols = [vec![0.0, 1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 0.0]];
        let col = |j: usize| -> Result<Vec<f32>> { Ok(cols[j].clone()) };
        // For Man: a woman (image 2), not the neutral image 0.
        assert_eq!(source_for(&cols[0], &[1], &col, &[]).unwrap(), Some(2));
        // For Woman: a man (image 1).
        assert_eq!(source_for(&cols[1], &[0], &col, &[2]).unwrap(), Some(1));
        // No mates: the first without the attribute that is not taken.
        assert_eq!(source_for(&cols[0], &[], &col, &[0]).unwrap(), Some(2));
        // Everything taken: still the first without it.
        assert_eq!(
            source_for(&cols[0], &[], &col, &[0, 2, 3]).unwrap(),
            Some(0)
        );
        // Every image has it: none.
        assert_eq!(source_for(&[1.0, 1.0], &[], &col, &[]).unwrap(), None);
    }
}
