//! CycleGAN's ResNet generator (Zhu et al. 2017, Appendix 7.2, after Johnson et al. 2016),
//! layer for layer as the reference implementation's `ResnetGenerator` with
//! `norm = instance` (junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py`;
//! ../shared/specs/translation.md §3):
//!
//! - c7s1-ngf: ReflectionPad 3, Conv7, InstanceNorm, ReLU;
//! - d2ngf, d4ngf: Conv3 stride 2 padding 1 (zeros), InstanceNorm, ReLU;
//! - `n_blocks` × R4ngf: [ReflectionPad 1, Conv3, IN, ReLU, (Dropout 0.5 if enabled),
//!   ReflectionPad 1, Conv3, IN] + x;
//! - u2ngf, ungf: ConvTranspose3 stride 2 padding 1 output_padding 1, IN, ReLU;
//! - c7s1-c_out: ReflectionPad 3, Conv7, Tanh.
//!
//! InstanceNorm has no affine parameters and no running statistics, so every convolution
//! has a bias (`use_bias = norm is InstanceNorm`). Init N(0, 0.02), biases 0.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

use super::unet::N002;
use crate::error::{GanError, Result};
use crate::nn::norm::instance_norm;

/// Shape of the ResNet generator (reference: ngf 64, 9 blocks at 256 px, 6 at 128 px).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResnetConfig {
    /// Filters of the first layer (reference: 64).
    pub ngf: i64,
    /// Residual blocks at 4·ngf channels (reference: 9, `resnet_9blocks`).
    pub n_blocks: i64,
    /// Dropout 0.5 inside the residual blocks (reference: off for CycleGAN).
    pub dropout: bool,
}

impl Default for ResnetConfig {
    fn default() -> Self {
        Self {
            ngf: 64,
            n_blocks: 9,
            dropout: false,
        }
    }
}

impl ResnetConfig {
    /// Checks every field.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(1..=256).contains(&self.ngf) {
            return Err(GanError::config(
                format!("{prefix}.ngf"),
                format!("must be in [1, 256], got {}", self.ngf),
            ));
        }
        if !(0..=32).contains(&self.n_blocks) {
            return Err(GanError::config(
                format!("{prefix}.n_blocks"),
                format!("must be in [0, 32], got {}", self.n_blocks),
            ));
        }
        Ok(())
    }

    /// Builds the generator under `path` for `c_in` → `c_out` channels.
    pub fn init(&self, path: nn::Path, c_in: i64, c_out: i64) -> ResnetGenerator {
        let ngf = self.ngf;
        let conv = |p: nn::Path, i, o, k, stride, padding| {
            nn::conv2d(
                p,
                i,
                o,
                k,
                nn::ConvConfig {
                    stride,
                    padding,
                    ws_init: N002,
                    bs_init: Init::Const(0.0),
                    ..Default::default()
                },
            )
        };
        let down = (0..2)
            .map(|i| {
                let m = 1 << i;
                conv(&path / format!("down{i}"), ngf * m, ngf * m * 2, 3, 2, 1)
            })
            .collect();
        let blocks = (0..self.n_blocks)
            .map(|i| {
                let p = &path / format!("block{i}");
                (
                    conv(&p / "conv0", 4 * ngf, 4 * ngf, 3, 1, 0),
                    conv(&p / "conv1", 4 * ngf, 4 * ngf, 3, 1, 0),
                )
            })
            .collect();
        let up = (0..2)
            .map(|i| {
                let m = 4 >> i;
                nn::conv_transpose2d(
                    &path / format!("up{i}"),
                    ngf * m,
                    ngf * m / 2,
                    3,
                    nn::ConvTransposeConfig {
                        stride: 2,
                        padding: 1,
                        output_padding: 1,
                        ws_init: N002,
                        bs_init: Init::Const(0.0),
                        ..Default::default()
                    },
                )
            })
            .collect();
        ResnetGenerator {
            stem: conv(&path / "stem", c_in, ngf, 7, 1, 0),
            down,
            blocks,
            up,
            out: conv(&path / "out", ngf, c_out, 7, 1, 0),
            dropout: self.dropout,
        }
    }
}

/// The ResNet generator (see module docs).
#[derive(Debug)]
pub struct ResnetGenerator {
    stem: nn::Conv2D,
    down: Vec<nn::Conv2D>,
    blocks: Vec<(nn::Conv2D, nn::Conv2D)>,
    up: Vec<nn::ConvTranspose2D>,
    out: nn::Conv2D,
    dropout: bool,
}

impl ResnetGenerator {
    /// Translates `x` [n, c_in, H, W] (H, W multiples of 4) to [n, c_out, H, W] in [−1, 1];
    /// `train` switches dropout (when enabled).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // ReLU in place on the norm's output, as the reference's nn.ReLU(True): instance
        // norm's backward needs its input, not its output, so nothing autograd saved changes.
        let norm_relu = |h: Tensor| instance_norm(&h).relu_();
        let mut h = norm_relu(
            self.stem
                .forward_t(&x.reflection_pad2d([3, 3, 3, 3]), train),
        );
        for d in &self.down {
            h = norm_relu(d.forward_t(&h, train));
        }
        for (c0, c1) in &self.blocks {
            let r = norm_relu(c0.forward_t(&h.reflection_pad2d([1, 1, 1, 1]), train));
            let r = if self.dropout {
                crate::dist::dropout(&r, 0.5, train)
            } else {
                r
            };
            let r = instance_norm(&c1.forward_t(&r.reflection_pad2d([1, 1, 1, 1]), train));
            // Out of place: `+=` on a Tensor is add_, and the reflection pad saved h.
            h = &h + r;
        }
        for u in &self.up {
            h = norm_relu(u.forward_t(&h, train));
        }
        self.out
            .forward_t(&h.reflection_pad2d([3, 3, 3, 3]), train)
            .tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Shapes are kept (64 px in, 64 px out), outputs in [−1, 1]; a bad width names the
    /// field.
    #[test]
    fn shapes() {
        let _rng = crate::test_rng_lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let g = ResnetConfig {
            ngf: 4,
            n_blocks: 2,
            dropout: false,
        }
        .init(vs.root(), 3, 1);
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
        let y = g.forward_t(&x, true);
        assert_eq!(y.size(), vec![2, 1, 32, 32]);
        assert!(y.abs().max().double_value(&[]) <= 1.0);
        let e = ResnetConfig {
            ngf: 0,
            ..Default::default()
        }
        .validate("cyclegan.generator")
        .unwrap_err();
        assert!(e.to_string().contains("cyclegan.generator.ngf"), "{e}");
    }
}
