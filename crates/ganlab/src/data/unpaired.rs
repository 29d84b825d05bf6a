//! Unpaired image data for translation between two domains A and B (CycleGAN, U-GAT-IT):
//!
//! - **folders** (the references' `unaligned_dataset.py` / U-GAT-IT `dataset/` layout):
//!   `<dir>/<split>A/` and `<dir>/<split>B/` image folders with any number of images each,
//!   e.g. `trainA/ trainB/ testA/ testB/` of horse2zebra or selfie2anime, or
//!   `scripts/fetch-data emoji-twitter-google`;
//! - **classes**: a labelled image set (IDX or CIFAR-10 in `<dir>`, split train/test) whose
//!   images of class `class_a` form domain A and of `class_b` domain B (e.g. Animal-MNIST
//!   horse ↔ zebra).
//!
//! Images are resized to `load_size`. The [`JitterSampler`] draws random images of one
//! domain through libtorch's generator (reseeded per step by the loop, so a resumed run draws
//! the same ones) with the reference's jitter: a random `image_size` crop and a random
//! horizontal flip. The [`ImagePool`] is the references' history of generated images.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::folder::{load_image_folder, to_channels};
use crate::error::{GanError, Result};

/// Where the two domains come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnpairedSource {
    /// `<split>A/` and `<split>B/` image folders.
    #[default]
    Folders,
    /// Two classes of a labelled IDX / CIFAR-10 set.
    Classes,
}

/// `[<task>.data]`: two unpaired domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnpairedDataConfig {
    /// Directory of the data (relative paths: from the working directory).
    pub dir: PathBuf,
    /// folders or classes.
    pub source: UnpairedSource,
    /// `classes`: the label of domain A.
    pub class_a: i64,
    /// `classes`: the label of domain B.
    pub class_b: i64,
    /// Side of the images the networks see (reference: 256).
    pub image_size: i64,
    /// Side images are resized to before a random `image_size` crop (CycleGAN: 286; 0 =
    /// `image_size`, no crop).
    pub load_size: i64,
    /// Random horizontal flips (reference: on).
    pub flip: bool,
    /// Channels of both domains (1 or 3).
    pub channels: i64,
    /// The FID Inception (`scripts/fetch-data inception`): when the file exists, a finished
    /// run scores its translated test images per direction by FID and KID.
    pub inception: PathBuf,
}

impl Default for UnpairedDataConfig {
    fn default() -> Self {
        Self {
            dir: "data/emoji-twitter-google".into(),
            source: UnpairedSource::Folders,
            class_a: 7,
            class_b: 9,
            image_size: 64,
            load_size: 72,
            flip: true,
            channels: 3,
            inception: "data/inception/default_1.pt".into(),
        }
    }
}

impl UnpairedDataConfig {
    /// Checks every field; `prefix` names the section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if ![32, 64, 128, 256, 512].contains(&self.image_size) {
            return err(
                "image_size",
                format!("must be 32, 64, 128, 256 or 512, got {}", self.image_size),
            );
        }
        let s = self.image_size;
        if self.load_size != 0 && !(s..=2 * s).contains(&self.load_size) {
            return err(
                "load_size",
                format!(
                    "must be 0 or in [image_size, 2·image_size] = [{s}, {}], got {}",
                    2 * s,
                    self.load_size
                ),
            );
        }
        if ![1, 3].contains(&self.channels) {
            return err("channels", format!("must be 1 or 3, got {}", self.channels));
        }
        if self.source == UnpairedSource::Classes {
            for (f, c) in [("class_a", self.class_a), ("class_b", self.class_b)] {
                if !(0..=100_000).contains(&c) {
                    return err(f, format!("must be a class label in [0, 100000], got {c}"));
                }
            }
            if self.class_a == self.class_b {
                return err("class_b", "must differ from class_a".into());
            }
        }
        Ok(())
    }

    /// The side images are stored at (load size, or image size without a crop).
    pub fn stored_size(&self) -> i64 {
        if self.load_size == 0 {
            self.image_size
        } else {
            self.load_size
        }
    }

    /// True when `split` exists for this source.
    pub fn has_split(&self, split: &str) -> bool {
        match self.source {
            UnpairedSource::Folders => ["A", "B"]
                .iter()
                .all(|s| self.dir.join(format!("{split}{s}")).is_dir()),
            UnpairedSource::Classes => split == "train" || split == "test",
        }
    }

    /// Domains A and B of `split` at side `size`, [n, channels, size, size] in [−1, 1].
    pub fn load(&self, split: &str, size: i64) -> Result<(Tensor, Tensor)> {
        let (a, b) = match self.source {
            UnpairedSource::Folders => {
                let load = |side: &str| -> Result<Tensor> {
                    let d = self.dir.join(format!("{split}{side}"));
                    if !d.is_dir() {
                        return Err(GanError::Input(format!(
                            "unpaired data: {} is missing (expected {split}A/ and {split}B/ image folders in {})",
                            d.display(),
                            self.dir.display()
                        )));
                    }
                    Ok(load_image_folder(&d, Some(size))?.images)
                };
                (load("A")?, load("B")?)
            }
            UnpairedSource::Classes => self.load_classes(split, size)?,
        };
        Ok((to_channels(a, self.channels), to_channels(b, self.channels)))
    }

    fn load_classes(&self, split: &str, size: i64) -> Result<(Tensor, Tensor)> {
        let which = match split {
            "train" => super::Split::Train,
            "test" => super::Split::Test,
            other => {
                return Err(GanError::Input(format!(
                    "unpaired data from classes: split must be train or test, got {other:?}"
                )))
            }
        };
        let set = super::load_image_set(&self.dir, which)?;
        let labels = set.labels.ok_or_else(|| {
            GanError::Input(format!(
                "{}: source = \"classes\" needs a labelled set",
                self.dir.display()
            ))
        })?;
        let pick = |c: i64, f: &str| -> Result<Tensor> {
            let idx = labels.eq(c).nonzero().squeeze_dim(1);
            if idx.size()[0] == 0 {
                return Err(GanError::config(
                    f,
                    format!(
                        "no image of class {c} in the {split} split of {}",
                        self.dir.display()
                    ),
                ));
            }
            let x = set.images.index_select(0, &idx);
            Ok(x.upsample_bilinear2d([size, size], false, None, None)
                .clamp(-1.0, 1.0))
        };
        Ok((
            pick(self.class_a, "class_a")?,
            pick(self.class_b, "class_b")?,
        ))
    }
}

/// Random images of one domain with crop and flip jitter (see module docs).
#[derive(Debug)]
pub struct JitterSampler {
    images: Tensor,
    crop: i64,
    flip: bool,
}

impl JitterSampler {
    /// Images [n, C, L, L] stored at load size L, cropped to `crop` ≤ L, flipped when `flip`.
    pub fn new(images: Tensor, crop: i64, flip: bool) -> Self {
        Self { images, crop, flip }
    }

    /// Number of images.
    pub fn len(&self) -> i64 {
        self.images.size()[0]
    }

    /// True when empty (never: loading refuses empty folders).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` random images on `device`.
    pub fn sample(&self, n: i64, device: Device) -> Tensor {
        let idx = crate::dist::randint(0, self.len(), &[n], (Kind::Int64, Device::Cpu));
        let span = self.images.size()[2] - self.crop + 1;
        let offsets = crate::dist::randint(0, span, &[n, 2], (Kind::Int64, Device::Cpu));
        let flips = crate::dist::rand(&[n], (Kind::Float, Device::Cpu)).lt(0.5);
        let xs: Vec<Tensor> = (0..n)
            .map(|i| {
                let (dy, dx) = (offsets.int64_value(&[i, 0]), offsets.int64_value(&[i, 1]));
                let c = self
                    .images
                    .get(idx.int64_value(&[i]))
                    .narrow(1, dy, self.crop)
                    .narrow(2, dx, self.crop);
                if self.flip && flips.int64_value(&[i]) != 0 {
                    c.flip([2])
                } else {
                    c
                }
            })
            .collect();
        Tensor::stack(&xs, 0).to_device(device)
    }
}

/// The history of generated images D is trained on (Shrivastava et al. 2017; CycleGAN
/// §4 "we update the discriminators using a history of generated images rather than the ones
/// produced by the latest generators"), as the reference's `util/image_pool.py`, per image:
/// while the pool holds fewer than `size` images the new image is stored and returned;
/// once full, with probability 0.5 a random stored image is returned and the new one takes
/// its place, otherwise the new image is returned. Size 0 returns the input. Random draws
/// come from libtorch's generator (reseeded per step), and the stored images are
/// checkpointed, so a resumed run continues bit-identically.
#[derive(Debug)]
pub struct ImagePool {
    size: i64,
    images: Vec<Tensor>,
}

impl ImagePool {
    /// An empty pool of capacity `size`.
    pub fn new(size: i64) -> Self {
        Self {
            size,
            images: Vec::new(),
        }
    }

    /// Images stored.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The batch D sees for the generated batch `x` [n, ...] (detached).
    pub fn query(&mut self, x: &Tensor) -> Tensor {
        let x = x.detach();
        if self.size == 0 {
            return x;
        }
        let n = x.size()[0];
        let out: Vec<Tensor> = (0..n)
            .map(|i| {
                let img = x.get(i).copy();
                if (self.images.len() as i64) < self.size {
                    self.images.push(img.shallow_clone());
                    return img;
                }
                let u = Tensor::rand([1], (Kind::Float, Device::Cpu)).double_value(&[0]);
                if u > 0.5 {
                    let k = Tensor::randint(self.size, [1], (Kind::Int64, Device::Cpu))
                        .int64_value(&[0]) as usize;
                    std::mem::replace(&mut self.images[k], img)
                } else {
                    img
                }
            })
            .collect();
        Tensor::stack(&out, 0)
    }

    /// SimGAN's rule (Shrivastava et al. 2017 §2.3, "updating the discriminator using a
    /// history of refined images"): D's fake batch for the fresh batch `x` [n, ...] is its
    /// first n − ⌊n/2⌋ images and ⌊n/2⌋ images drawn without replacement from the pool (all
    /// of `x` while the pool holds fewer than ⌊n/2⌋); then the first ⌊n/2⌋ fresh images
    /// enter the pool, appended while there is room, else each replacing a stored image at
    /// a random slot (distinct slots). Draws come from libtorch's generator.
    pub fn history_batch(&mut self, x: &Tensor) -> Tensor {
        let x = x.detach();
        let n = x.size()[0];
        let half = n / 2;
        if self.size == 0 || half == 0 {
            return x;
        }
        let len = self.images.len() as i64;
        let out = if len >= half {
            let pick = Tensor::randperm(len, (Kind::Int64, Device::Cpu));
            let old: Vec<Tensor> = (0..half)
                .map(|i| self.images[pick.int64_value(&[i]) as usize].shallow_clone())
                .collect();
            Tensor::cat(&[x.narrow(0, 0, n - half), Tensor::stack(&old, 0)], 0)
        } else {
            x.shallow_clone()
        };
        let slots = Tensor::randperm(self.size, (Kind::Int64, Device::Cpu));
        let mut next_slot = 0;
        for i in 0..half {
            let img = x.get(i).copy();
            if (self.images.len() as i64) < self.size {
                self.images.push(img);
            } else {
                let k = slots.int64_value(&[next_slot]) as usize;
                next_slot += 1;
                self.images[k] = img;
            }
        }
        out
    }

    /// The stored images as one tensor [len, ...] (None when empty), for a checkpoint.
    pub fn to_tensor(&self) -> Option<Tensor> {
        (!self.images.is_empty()).then(|| Tensor::stack(&self.images, 0).to_device(Device::Cpu))
    }

    /// Restores the images saved by [`ImagePool::to_tensor`] onto `device`; `shape` is one
    /// image's shape. Refuses more images than the capacity, another shape or non-finite
    /// values.
    pub fn restore(
        &mut self,
        t: &Tensor,
        shape: &[i64],
        device: Device,
        what: &Path,
    ) -> Result<()> {
        let s = t.size();
        let bad = |m: String| Err(GanError::Input(format!("{}: {m}", what.display())));
        if s.len() != shape.len() + 1 || s[1..] != *shape || s[0] > self.size {
            return bad(format!(
                "image pool of shape {s:?}, expected at most {} images of shape {shape:?}",
                self.size
            ));
        }
        if !bool::try_from(t.isfinite().all()).unwrap_or(false) {
            return bad("image pool holds non-finite values".into());
        }
        let t = t.to_kind(Kind::Float).to_device(device);
        self.images = (0..s[0]).map(|i| t.get(i).copy()).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SimGAN's history rule on batches of 4 (values = ids): while the pool holds fewer
    /// than 2 the batch is returned whole; then the first 2 fresh images are always kept,
    /// the last 2 are stored ones (distinct), the first 2 fresh ones enter the pool (appended
    /// until it holds 6, then at distinct random slots), and over 3,000 steps (seed 1) every
    /// slot is replaced about equally often (χ² over 6 slots, 5 d.o.f.: bound 25, p ≈ 1e-4).
    #[test]
    fn history_rule() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(1);
        let mut pool = ImagePool::new(6);
        let batch = |k: i64| {
            Tensor::arange_start(4 * k, 4 * k + 4, (Kind::Float, Device::Cpu)).view([4, 1])
        };
        let ids = |t: &Tensor| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        assert_eq!(ids(&pool.history_batch(&batch(0))), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(pool.len(), 2);
        let mut hits = [0f64; 6];
        for k in 1..3000 {
            let before: Vec<f32> = pool
                .images
                .iter()
                .map(|t| t.double_value(&[0]) as f32)
                .collect();
            let out = ids(&pool.history_batch(&batch(k)));
            assert_eq!(out[..2], [4.0 * k as f32, 4.0 * k as f32 + 1.0]);
            assert!(out[2] != out[3] && before.contains(&out[2]) && before.contains(&out[3]));
            let now: Vec<f32> = pool
                .images
                .iter()
                .map(|t| t.double_value(&[0]) as f32)
                .collect();
            assert!(now.contains(&(4.0 * k as f32)) && now.contains(&(4.0 * k as f32 + 1.0)));
            if before.len() == 6 {
                for (slot, (b, a)) in before.iter().zip(&now).enumerate() {
                    if b != a {
                        hits[slot] += 1.0;
                    }
                }
            }
        }
        assert_eq!(pool.len(), 6);
        let e = hits.iter().sum::<f64>() / 6.0;
        let chi2: f64 = hits.iter().map(|h| (h - e).powi(2) / e).sum();
        assert!(
            (e - 2.0 * 2997.0 / 6.0).abs() < 1.0 && chi2 < 25.0,
            "hits {hits:?}"
        );
    }

    /// The swap rule, statistically (seed 0, 20,000 queries of one image each into a full
    /// pool of 50): the returned image is a stored one with probability 0.5 (binomial sd
    /// 0.0035; bound ±0.02 = 5.6 sd), and each stored slot is replaced equally often
    /// (χ² over 50 slots with 49 d.o.f.: bound 100, p ≈ 2e-5 under the rule). The first 50
    /// queries fill the pool and return their input.
    #[test]
    fn pool_swap_rule() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let mut pool = ImagePool::new(50);
        for i in 0..50 {
            let x = Tensor::full([1, 1], i as f64, (Kind::Float, Device::Cpu));
            assert_eq!(pool.query(&x).double_value(&[0, 0]), i as f64);
        }
        assert_eq!(pool.len(), 50);
        let n = 20_000;
        let (mut swapped, mut slot_hits) = (0, [0f64; 50]);
        for i in 0..n {
            let v = 1000.0 + i as f64;
            let x = Tensor::full([1, 1], v, (Kind::Float, Device::Cpu));
            let before: Vec<f64> = pool.images.iter().map(|t| t.double_value(&[0])).collect();
            let got = pool.query(&x).double_value(&[0, 0]);
            if got != v {
                swapped += 1;
                let k = before
                    .iter()
                    .position(|&b| b == got)
                    .expect("a stored image");
                assert_eq!(
                    pool.images[k].double_value(&[0]),
                    v,
                    "new image takes its slot"
                );
                slot_hits[k] += 1.0;
            }
        }
        let rate = swapped as f64 / n as f64;
        assert!((rate - 0.5).abs() < 0.02, "swap rate {rate}");
        let e = swapped as f64 / 50.0;
        let chi2: f64 = slot_hits.iter().map(|h| (h - e).powi(2) / e).sum();
        assert!(chi2 < 100.0, "slots not uniform: χ² = {chi2}");
        // Round trip through a checkpoint tensor.
        let t = pool.to_tensor().unwrap();
        let mut back = ImagePool::new(50);
        back.restore(&t, &[1], Device::Cpu, Path::new("x")).unwrap();
        assert!(Tensor::stack(&back.images, 0).equal(&t));
        let e = ImagePool::new(10)
            .restore(&t, &[1], Device::Cpu, Path::new("ckpt"))
            .unwrap_err();
        assert!(e.to_string().contains("at most 10 images"), "{e}");
        // Size 0: the input itself.
        let x = Tensor::ones([3, 2], (Kind::Float, Device::Cpu));
        assert!(ImagePool::new(0).query(&x).equal(&x));
    }

    /// Folders and classes both load two domains (classes: the right images, by value); a
    /// missing folder names it; a class with no images names the field.
    #[test]
    fn sources() {
        let _rng = crate::test_rng_lock();
        let dir = std::env::temp_dir().join(format!("ganlab-unpaired-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (side, n) in [("trainA", 3), ("trainB", 2)] {
            std::fs::create_dir_all(dir.join(side)).unwrap();
            for i in 0..n {
                let x = Tensor::rand([3, 10, 10], (Kind::Float, Device::Cpu)) * 2 - 1;
                crate::data::write_png(&dir.join(side).join(format!("{i}.png")), &x).unwrap();
            }
        }
        let cfg = UnpairedDataConfig {
            dir: dir.clone(),
            ..Default::default()
        };
        let (a, b) = cfg.load("train", 8).unwrap();
        assert_eq!((a.size(), b.size()), (vec![3, 3, 8, 8], vec![2, 3, 8, 8]));
        assert!(cfg.has_split("train") && !cfg.has_split("test"));
        let e = cfg.load("test", 8).unwrap_err();
        assert!(e.to_string().contains("testA"), "{e}");
        let s = JitterSampler::new(a, 6, true);
        assert_eq!(s.sample(5, Device::Cpu).size(), vec![5, 3, 6, 6]);
        // Classes of a labelled IDX set: 6 images 4×4, labels 0 1 2 0 1 2 (image i has value i).
        let idx = dir.join("idx");
        std::fs::create_dir_all(&idx).unwrap();
        let mut images = vec![0u8, 0, 8, 3, 0, 0, 0, 6, 0, 0, 0, 4, 0, 0, 0, 4];
        for i in 0..6u8 {
            images.extend(std::iter::repeat_n(i * 40, 16));
        }
        std::fs::write(idx.join("train-images-idx3-ubyte"), images).unwrap();
        let mut labels = vec![0u8, 0, 8, 1, 0, 0, 0, 6];
        labels.extend([0, 1, 2, 0, 1, 2]);
        std::fs::write(idx.join("train-labels-idx1-ubyte"), labels).unwrap();
        let cfg = UnpairedDataConfig {
            dir: idx.clone(),
            source: UnpairedSource::Classes,
            class_a: 1,
            class_b: 2,
            channels: 1,
            ..Default::default()
        };
        let (a, b) = cfg.load("train", 8).unwrap();
        assert_eq!((a.size(), b.size()), (vec![2, 1, 8, 8], vec![2, 1, 8, 8]));
        // Image 1 (value 40) is the first of class 1, image 2 (80) the first of class 2.
        let v = |x: &Tensor| (x.double_value(&[0, 0, 0, 0]) + 1.0) * 127.5;
        assert!((v(&a) - 40.0).abs() < 0.5 && (v(&b) - 80.0).abs() < 0.5);
        let e = UnpairedDataConfig { class_b: 7, ..cfg }
            .load("train", 8)
            .unwrap_err();
        assert!(e.to_string().contains("class_b"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
