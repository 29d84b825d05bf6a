//! The GAN task's data: the sampler a config names (a 2-D toy set, IDX / CIFAR-10 files or an
//! image folder, optionally the first N images, optionally with class labels), checked against
//! the model's image shape; and the stand-in sampler of a run opened for inference.

use tch::{Device, Tensor};

use crate::data::{Sampler, Toy2d};
use crate::error::{GanError, Result};
use crate::train::config::{DataSource, TrainConfig};

/// The first `n` images (and labels) of `set`; all when `n` is 0 (`data.idx.max_images`).
pub fn first_images(set: crate::data::ImageSet, n: i64) -> Result<crate::data::ImageSet> {
    if n == 0 {
        return Ok(set);
    }
    if n > set.len() {
        return Err(GanError::config(
            "data.idx.max_images",
            format!("is {n}, but the data holds {} images", set.len()),
        ));
    }
    Ok(crate::data::ImageSet {
        images: set.images.narrow(0, 0, n),
        labels: set.labels.map(|l| l.narrow(0, 0, n)),
    })
}

/// The data sampler the config names; image data must fit the model's image shape.
pub fn make_sampler(cfg: &TrainConfig) -> Result<Box<dyn Sampler>> {
    Ok(match cfg.data.source {
        DataSource::Toy2d => Box::new(Toy2d::new(cfg.data.toy2d.clone())),
        DataSource::Idx => {
            let dir = &cfg.data.idx.dir;
            let shape = cfg.model.image_shape();
            let set = match (
                crate::data::load_image_set(dir, cfg.data.idx.split()?),
                shape,
            ) {
                (Ok(set), _) => set,
                // A folder of PNG/JPEG images: resized and centre-cropped to the model's size,
                // grey ↔ RGB converted to its channels (no labels, no split).
                (Err(_), Some((_, [c, h, _]))) if crate::data::folder::image_files(dir).is_ok() => {
                    let mut set = crate::data::load_image_folder(dir, Some(h))?;
                    set.images = crate::data::folder::to_channels(set.images, c);
                    set
                }
                (Err(e), _) => return Err(e),
            };
            let set = first_images(set, cfg.data.idx.max_images)?;
            let s = set.images.size();
            if let Some((field, [c, h, w])) = cfg.model.image_shape() {
                if s[1] != c || s[2] != h || s[3] != w {
                    return Err(GanError::config(
                        field,
                        format!(
                            "the data is {}×{}×{} but the model makes {c}×{h}×{w} images",
                            s[1], s[2], s[3]
                        ),
                    ));
                }
            }
            let cond = &cfg.model.conditional;
            match (cond.enabled(), set.labels) {
                (false, _) => Box::new(crate::data::TensorSampler::new(set.images)?),
                (true, Some(labels)) => {
                    let max = labels.max().int64_value(&[]);
                    if max >= cond.num_classes {
                        return Err(GanError::config(
                            "model.conditional.num_classes",
                            format!("the data has label {max}; need at least {}", max + 1),
                        ));
                    }
                    Box::new(crate::data::TensorSampler::with_labels(set.images, labels)?)
                }
                (true, None) => {
                    return Err(GanError::config(
                        "model.conditional.num_classes",
                        "a conditional model needs labelled data; this data set has no labels",
                    ))
                }
            }
        }
    })
}

/// The data of a task built for inference.
#[derive(Debug)]
pub(crate) struct NoData;

impl Sampler for NoData {
    fn sample(&mut self, _: i64, _: Device) -> Result<Tensor> {
        Err(GanError::Input(
            "this run was opened for inference; resume it to train".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// `data.idx.max_images`: the first n images and their labels; 0 keeps all; more than
    /// the set holds, or a value outside [0, 10^7], is an error naming the field.
    #[test]
    fn limited_data_takes_the_first_images() {
        let set = || crate::data::ImageSet {
            images: Tensor::arange(5, (Kind::Float, Device::Cpu)).view([5, 1, 1, 1]),
            labels: Some(Tensor::arange(5, (Kind::Int64, Device::Cpu)) * 10),
        };
        let three = first_images(set(), 3).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(three.images.view([-1])).unwrap(),
            [0.0, 1.0, 2.0]
        );
        let labels = Vec::<i64>::try_from(three.labels.unwrap()).unwrap();
        assert_eq!(labels, [0, 10, 20]);
        assert_eq!(first_images(set(), 0).unwrap().len(), 5);
        let e = first_images(set(), 6).unwrap_err().to_string();
        assert!(
            e.contains("data.idx.max_images") && e.contains("holds 5"),
            "{e}"
        );
        let mut cfg = TrainConfig::default();
        cfg.data.idx.max_images = -1;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("data.idx.max_images"), "{e}");
    }
}
