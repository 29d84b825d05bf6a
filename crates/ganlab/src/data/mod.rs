//! Data sources. A [`Sampler`] yields minibatches on a device; toy 2-D sets are infinite
//! samplers drawn from torch's generator (reseeded per step by the trainer, so a run is
//! reproducible and resumable).

pub mod folder;
pub mod idx;
pub mod toy2d;

pub use folder::{grid, load_image_folder, write_png};
pub use idx::{load_idx_images, read_idx, ImageSet, Split};
pub use toy2d::{Toy2d, Toy2dConfig, Toy2dKind};

use tch::{Device, Tensor};

use crate::error::Result;

/// Something that yields minibatches [n, ...] scaled as the models expect.
pub trait Sampler: std::fmt::Debug {
    /// A batch of `n` samples on `device`.
    fn sample(&mut self, n: i64, device: Device) -> Result<Tensor>;
}
