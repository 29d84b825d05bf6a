//! The PatchGAN discriminator of pix2pix and CycleGAN (Isola et al. 2017 §3.2.2: "only
//! penalizes structure at the scale of patches"), layer for layer as the reference
//! implementation's `NLayerDiscriminator` (junyanz/pytorch-CycleGAN-and-pix2pix
//! `models/networks.py`; ../shared/specs/translation.md §3), n_layers = 3 giving 70×70
//! receptive fields:
//!
//! C64 (stride 2, bias, no norm) – C128 – C256 (stride 2, norm) – C512 (stride 1, norm) –
//! Conv 1 (stride 1, bias); every convolution 4×4 with padding 1, LeakyReLU 0.2 after each
//! but the last. Widths ndf·min(2^k, 8). A 256² input gives 30² logits. The norm is
//! BatchNorm for pix2pix (convolutions before it without bias) and parameter-free
//! InstanceNorm for CycleGAN (convolutions with bias), as the reference's `use_bias` rule.
//!
//! With Diffusion-GAN (`[diffusion] enabled = true`), D(y, t): a learned timestep
//! embedding (sinusoidal code → MLP, as our DCGAN's D) is added per channel after the first
//! convolution; without it D ignores t.

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::unet::{bn, conv_cfg};
use crate::error::{GanError, Result};
use crate::nn::{LeakyRelu, TimestepEmbedding, TimestepEmbeddingConfig};

/// The normalisation after the inner convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchNorm {
    /// BatchNorm2d (pix2pix's `--norm batch`).
    #[default]
    Batch,
    /// InstanceNorm2d without affine parameters (CycleGAN's `--norm instance`).
    Instance,
    /// No normalisation, convolutions with bias (the reference's `--norm none`; LaDiffGAN's
    /// latent D, whose 3×3 maps are too small for instance statistics).
    None,
}

/// Shape of the PatchGAN (reference defaults: ndf 64, n_layers 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchGanConfig {
    /// Filters of the first layer (reference: 64).
    pub ndf: i64,
    /// Strided layers after the first (reference: 3, the 70×70 PatchGAN).
    pub n_layers: i64,
    /// batch (pix2pix) or instance (CycleGAN).
    pub norm: PatchNorm,
    /// Timestep embedding (used with Diffusion-GAN only).
    pub t_embedding: TimestepEmbeddingConfig,
}

impl Default for PatchGanConfig {
    fn default() -> Self {
        Self {
            ndf: 64,
            n_layers: 3,
            norm: PatchNorm::Batch,
            t_embedding: Default::default(),
        }
    }
}

impl PatchGanConfig {
    /// Checks every field for images of side `image_size`.
    pub fn validate(&self, prefix: &str, image_size: i64) -> Result<()> {
        if !(1..=512).contains(&self.ndf) {
            return Err(GanError::config(
                format!("{prefix}.ndf"),
                format!("must be in [1, 512], got {}", self.ndf),
            ));
        }
        // The side after n_layers stride-2 convs and two stride-1 4×4 convs (−1 each) must
        // stay ≥ 1.
        let side = (0..self.n_layers).fold(image_size, |s, _| s / 2) - 2;
        if !(1..=6).contains(&self.n_layers) || side < 1 {
            return Err(GanError::config(
                format!("{prefix}.n_layers"),
                format!(
                    "must be in [1, 6] and leave a patch map of at least 1×1 at {image_size} px, got {}",
                    self.n_layers
                ),
            ));
        }
        self.t_embedding.validate(&format!("{prefix}.t_embedding"))
    }

    /// Builds the discriminator under `path` for `c_in` input channels; `with_t`: D(y, t).
    pub fn init(&self, path: nn::Path, c_in: i64, with_t: bool) -> PatchGan {
        let ndf = self.ndf;
        let first = nn::conv2d(&path / "conv0", c_in, ndf, 4, conv_cfg(true));
        let mut blocks = Vec::new();
        let mut prev = ndf;
        for k in 1..=self.n_layers {
            let width = ndf * (1 << k.min(3));
            let stride = if k == self.n_layers { 1 } else { 2 };
            let batch = self.norm == PatchNorm::Batch;
            let cfg = nn::ConvConfig {
                stride,
                ..conv_cfg(!batch)
            };
            blocks.push((
                nn::conv2d(&path / format!("conv{k}"), prev, width, 4, cfg),
                batch.then(|| bn(&path / format!("norm{k}"), width)),
            ));
            prev = width;
        }
        let out_cfg = nn::ConvConfig {
            stride: 1,
            ..conv_cfg(true)
        };
        let out = nn::conv2d(&path / "out", prev, 1, 4, out_cfg);
        PatchGan {
            first,
            blocks,
            out,
            t_embed: with_t.then(|| self.t_embedding.init(&path / "t_embed", ndf)),
            instance: self.norm == PatchNorm::Instance,
            act: LeakyRelu::new(0.2),
        }
    }
}

/// The PatchGAN discriminator (see module docs).
#[derive(Debug)]
pub struct PatchGan {
    first: nn::Conv2D,
    /// Convolutions and their BatchNorm (None: instance norm or none).
    blocks: Vec<(nn::Conv2D, Option<nn::BatchNorm>)>,
    instance: bool,
    out: nn::Conv2D,
    t_embed: Option<TimestepEmbedding>,
    act: LeakyRelu,
}

impl PatchGan {
    /// Patch logits [n, 1, h, w] of `y` [n, c_in, H, W] at diffusion steps `t` [n].
    pub fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor {
        let h = self.first.forward_t(y, true);
        let h = match &self.t_embed {
            Some(e) => h + e.forward(t).unsqueeze(-1).unsqueeze(-1),
            None => h,
        };
        let h = self
            .blocks
            .iter()
            .fold(self.act.forward(&h), |h, (conv, norm)| {
                let h = conv.forward_t(&h, true);
                let h = match norm {
                    Some(bn) => bn.forward_t(&h, true),
                    None if self.instance => crate::nn::norm::instance_norm(&h),
                    None => h,
                };
                self.act.forward(&h)
            });
        self.out.forward_t(&h, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// 256² → 30² patches and 64² → 6² (closed form: s/8 − 2); a depth too large for the
    /// image names the field.
    #[test]
    fn patch_map_sizes() {
        let _rng = crate::test_rng_lock();
        let cfg = PatchGanConfig {
            ndf: 4,
            ..Default::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let d = cfg.init(vs.root(), 6, false);
        let t = Tensor::zeros([2], (Kind::Int64, Device::Cpu));
        for (s, want) in [(256, 30), (64, 6)] {
            let y = Tensor::rand([2, 6, s, s], (Kind::Float, Device::Cpu));
            assert_eq!(d.forward(&y, &t).size(), vec![2, 1, want, want]);
        }
        let e = PatchGanConfig {
            n_layers: 5,
            ..Default::default()
        }
        .validate("pix2pix.patchgan", 64)
        .unwrap_err();
        assert!(e.to_string().contains("pix2pix.patchgan.n_layers"), "{e}");
    }
}
