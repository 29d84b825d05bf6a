//! SimGAN's networks (Shrivastava et al., CVPR 2017, "Learning from Simulated and
//! Unsupervised Images through Adversarial Training"; gan-lecture.txt "Sim-to-real
//! synthesis"), as §3.1 of the paper describes them:
//!
//! - **Refiner** R_θ, a fully convolutional ResNet without striding or pooling, so that each
//!   output pixel depends on a local neighbourhood of the input and the annotation (here:
//!   the digit) is kept: conv 3×3 → `channels` maps, `blocks` ResNet blocks (two 3×3
//!   convolutions of `channels` maps each, with the identity added before the last ReLU, as
//!   He et al. 2016), conv 1×1 → the image's channels. Paper: 64 maps, 4 blocks. The paper
//!   does not name the activations; we use ReLU inside, as its ResNet reference, and tanh at
//!   the output so refined images live in the data's [−1, 1] (as the public
//!   re-implementations do).
//! - **Local discriminator** D_φ: conv 3×3/2 (96) – conv 3×3/2 (64) – max-pool 3×3/1 –
//!   conv 3×3 (32) – conv 1×1 (32) – conv 1×1 (2), ReLU between (reconstructed: the paper
//!   lists the layers only), "same" padding. Its output is a w × h map of two-class logits
//!   (refined vs real), one per local patch; at 28 px w = h = 7, each patch's receptive
//!   field 23 × 23 pixels (3, + 2·2, + 2·4 for the pool, + 2·4), clipped by the border.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::{GanError, Result};

/// `[simgan.refiner]`: the refiner's width and depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefinerConfig {
    /// Feature maps of every convolution but the last (paper: 64).
    pub channels: i64,
    /// ResNet blocks (paper: 4).
    pub blocks: i64,
}

impl Default for RefinerConfig {
    fn default() -> Self {
        Self {
            channels: 64,
            blocks: 4,
        }
    }
}

impl RefinerConfig {
    /// Checks every field; `prefix` names the section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(1..=512).contains(&self.channels) {
            return Err(GanError::config(
                format!("{prefix}.channels"),
                format!("must be in [1, 512], got {}", self.channels),
            ));
        }
        if !(0..=16).contains(&self.blocks) {
            return Err(GanError::config(
                format!("{prefix}.blocks"),
                format!("must be in [0, 16], got {}", self.blocks),
            ));
        }
        Ok(())
    }
}

fn same(k: i64, stride: i64) -> nn::ConvConfig {
    nn::ConvConfig {
        stride,
        padding: k / 2,
        ..Default::default()
    }
}

/// The refiner R_θ (see module docs).
#[derive(Debug)]
pub struct Refiner {
    conv_in: nn::Conv2D,
    blocks: Vec<(nn::Conv2D, nn::Conv2D)>,
    conv_out: nn::Conv2D,
}

impl Refiner {
    /// A refiner of `c`-channel images under `p`.
    pub fn new(p: nn::Path, cfg: &RefinerConfig, c: i64) -> Self {
        let w = cfg.channels;
        let blocks = (0..cfg.blocks)
            .map(|i| {
                let b = &p / format!("block{i}");
                (
                    nn::conv2d(&b / "conv1", w, w, 3, same(3, 1)),
                    nn::conv2d(&b / "conv2", w, w, 3, same(3, 1)),
                )
            })
            .collect();
        Self {
            conv_in: nn::conv2d(&p / "conv_in", c, w, 3, same(3, 1)),
            blocks,
            conv_out: nn::conv2d(&p / "conv_out", w, c, 1, same(1, 1)),
        }
    }

    /// R(x): images [n, c, h, w] in [−1, 1] → refined images of the same shape.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = self.conv_in.forward(x).relu();
        for (c1, c2) in &self.blocks {
            h = (c2.forward(&c1.forward(&h).relu()) + &h).relu();
        }
        self.conv_out.forward(&h).tanh()
    }
}

/// The local discriminator D_φ (see module docs).
#[derive(Debug)]
pub struct LocalDiscriminator {
    convs: Vec<nn::Conv2D>,
}

impl LocalDiscriminator {
    /// The paper's layers for `c`-channel images under `p`.
    pub fn new(p: nn::Path, c: i64) -> Self {
        let layers = [
            (c, 96, 3, 2),
            (96, 64, 3, 2),
            (64, 32, 3, 1),
            (32, 32, 1, 1),
            (32, 2, 1, 1),
        ];
        Self {
            convs: layers
                .iter()
                .enumerate()
                .map(|(i, &(cin, cout, k, s))| {
                    nn::conv2d(&p / format!("conv{i}"), cin, cout, k, same(k, s))
                })
                .collect(),
        }
    }

    /// Patch logits [n, 2, h', w'] of images [n, c, h, w] (channel 0: refined, 1: real).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(&h);
            if i + 1 < self.convs.len() {
                h = h.relu();
            }
            if i == 1 {
                h = h.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false);
            }
        }
        h
    }
}

/// The local adversarial loss: the two-class cross-entropy of every patch's logits against
/// `real` (class 1) or refined (class 0), averaged over patches and images (the paper sums
/// over patches; the mean is that sum divided by the patch count, which
/// `SimganConfig::reg_weight` accounts for).
pub fn local_loss(logits: &Tensor, real: bool) -> Tensor {
    let target = if real { 1 } else { 0 };
    -logits
        .log_softmax(1, tch::Kind::Float)
        .select(1, target)
        .mean(tch::Kind::Float)
}

/// The share of patches D classifies as real.
pub fn real_share(logits: &Tensor) -> f64 {
    let d = logits.select(1, 1) - logits.select(1, 0);
    d.gt(0.0)
        .to_kind(tch::Kind::Float)
        .mean(tch::Kind::Float)
        .double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Parameter counts by closed form (conv k×k: k²·cin·cout + cout): the paper's refiner
    /// at 64 maps, 4 blocks on grey images: 640 + 8·36,928 + 65 = 296,129; the local D:
    /// 960 + 55,360 + 18,464 + 1,056 + 66 = 75,906. Shapes at 28 px: R keeps the shape,
    /// D gives 7×7 patches; the loss of uniform logits is ln 2.
    #[test]
    fn counts_shapes_and_loss() {
        let _rng = crate::test_rng_lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let r = Refiner::new(vs.root() / "r", &RefinerConfig::default(), 1);
        let d = LocalDiscriminator::new(vs.root() / "d", 1);
        let count = |prefix: &str| -> i64 {
            vs.variables()
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.numel() as i64)
                .sum()
        };
        assert_eq!(count("r."), 296_129);
        assert_eq!(count("d."), 75_906);
        let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let y = r.forward(&x);
        assert_eq!(y.size(), x.size());
        assert!(y.abs().max().double_value(&[]) <= 1.0);
        assert_eq!(d.forward(&x).size(), vec![3, 2, 7, 7]);
        let zero = Tensor::zeros([2, 2, 7, 7], (Kind::Float, Device::Cpu));
        let ln2 = std::f64::consts::LN_2;
        assert!((local_loss(&zero, true).double_value(&[]) - ln2).abs() < 1e-6);
        // Logits (0, 3) for every patch: CE vs real = ln(1 + e^−3), vs refined = ln(1 + e^3).
        let l = Tensor::cat(&[zero.narrow(1, 0, 1), zero.narrow(1, 1, 1) + 3.0], 1);
        let want_real = (1.0 + (-3.0f64).exp()).ln();
        let want_fake = (1.0 + 3.0f64.exp()).ln();
        assert!((local_loss(&l, true).double_value(&[]) - want_real).abs() < 1e-6);
        assert!((local_loss(&l, false).double_value(&[]) - want_fake).abs() < 1e-5);
        assert_eq!(real_share(&l), 1.0);
    }
}
