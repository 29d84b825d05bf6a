//! Data sources. A [`Sampler`] yields minibatches on a device; toy 2-D sets are infinite
//! samplers drawn from torch's generator (reseeded per step by the trainer, so a run is
//! reproducible and resumable).

pub mod attributes;
pub mod captions;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod paired;
pub mod toy2d;
pub mod unpaired;

pub use cifar::load_cifar10;
pub use folder::{grid, load_image_folder, write_png};
pub use idx::{load_idx_images, read_idx, ImageSet, Split};

/// The largest image count a config may cap a set at (`max_images` of `[data.idx]` and of
/// the attribute sets): 10^7, more than any set ganlab reads.
pub const MAX_IMAGES: i64 = 10_000_000;
pub use toy2d::{Toy2d, Toy2dConfig, Toy2dKind};

use tch::{Device, Tensor};

use crate::error::Result;

/// Loads the image set of `split` in `dir`, whichever format it holds: MNIST-layout IDX
/// files, or CIFAR-10 binary batches.
pub fn load_image_set(dir: &std::path::Path, split: Split) -> Result<ImageSet> {
    if !cifar::batch_files(dir, Split::Train).is_empty()
        || !cifar::batch_files(dir, Split::Test).is_empty()
    {
        load_cifar10(dir, split)
    } else {
        load_idx_images(dir, split)
    }
}

/// Something that yields minibatches [n, ...] scaled as the models expect.
pub trait Sampler: std::fmt::Debug {
    /// A batch of `n` samples on `device`.
    fn sample(&mut self, n: i64, device: Device) -> Result<Tensor>;
    /// A batch with its class labels [n] (Int64) where the data has them.
    fn sample_labeled(&mut self, n: i64, device: Device) -> Result<(Tensor, Option<Tensor>)> {
        Ok((self.sample(n, device)?, None))
    }
}

/// Draws minibatches from a fixed tensor [N, ...] with replacement, through libtorch's
/// generator (which the trainer reseeds per step), so batches are reproducible and a resumed
/// run draws exactly what an uninterrupted one would.
#[derive(Debug)]
pub struct TensorSampler {
    data: Tensor,
    labels: Option<Tensor>,
}

impl TensorSampler {
    /// Samples rows of `data` (at least one).
    pub fn new(data: Tensor) -> Result<Self> {
        if data.size().first().copied().unwrap_or(0) < 1 {
            return Err(crate::error::GanError::Input("data set is empty".into()));
        }
        Ok(Self { data, labels: None })
    }

    /// Samples rows of `data` with their `labels` [N].
    pub fn with_labels(data: Tensor, labels: Tensor) -> Result<Self> {
        if labels.size() != [data.size()[0]] {
            return Err(crate::error::GanError::Input(format!(
                "{:?} labels for {} samples",
                labels.size(),
                data.size()[0]
            )));
        }
        let mut s = Self::new(data)?;
        s.labels = Some(labels);
        Ok(s)
    }
}

impl Sampler for TensorSampler {
    fn sample(&mut self, n: i64, device: Device) -> Result<Tensor> {
        Ok(self.sample_labeled(n, device)?.0)
    }

    fn sample_labeled(&mut self, n: i64, device: Device) -> Result<(Tensor, Option<Tensor>)> {
        let idx = crate::dist::randint(
            0,
            self.data.size()[0],
            &[n],
            (tch::Kind::Int64, tch::Device::Cpu),
        );
        let labels = self
            .labels
            .as_ref()
            .map(|l| l.index_select(0, &idx).to_device(device));
        Ok((self.data.index_select(0, &idx).to_device(device), labels))
    }
}
