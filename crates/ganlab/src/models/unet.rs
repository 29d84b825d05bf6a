//! The U-Net generator of pix2pix (Isola et al. 2017, "Image-to-Image Translation with
//! Conditional Adversarial Networks", §3.2.1 and Appendix 6.1.1), layer for layer as the
//! reference implementation's `UnetGenerator` / `UnetSkipConnectionBlock`
//! (junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py`; facts in
//! ../shared/specs/translation.md §3):
//!
//! - `num_downs` blocks, each halving the side: down = LeakyReLU(0.2) → Conv4 s2 p1 → BN;
//!   up = ReLU → ConvTranspose4 s2 p1 → BN; the block returns cat[x, up(sub(down(x)))].
//! - Widths from the outside in: ngf, 2ngf, 4ngf, 8ngf, then 8ngf for the rest.
//! - The outermost block has no activation or norm on its down side, and its up side ends
//!   ReLU → ConvTranspose (with bias) → Tanh, without a skip; the innermost has no norm on
//!   its down side and no sub-block.
//! - Dropout 0.5 after the up-norm of the `num_downs − 5` blocks between the innermost and
//!   the 4ngf block (the generator's only noise source: pix2pix has no z).
//! - Convolutions have no bias when followed by BatchNorm (`use_bias = norm is
//!   InstanceNorm`), including the outermost down convolution; init N(0, 0.02), BN weights
//!   N(1, 0.02), biases 0 (`init_weights('normal', 0.02)`).
//!
//! As the reference's default test script, BatchNorm uses batch statistics and dropout stays
//! on when translating (`train = true`; the paper applies dropout at test time).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

use crate::error::{GanError, Result};
use crate::nn::LeakyRelu;

/// Shape of the U-Net (reference defaults: ngf 64, dropout on, BatchNorm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnetConfig {
    /// Filters of the outermost block (reference: 64).
    pub ngf: i64,
    /// Number of down-samplings (0: log2 of the image size, as the reference's `unet_256` = 8
    /// and `unet_128` = 7; the innermost feature map is then 1×1).
    pub num_downs: i64,
    /// Dropout 0.5 in the inner 8ngf blocks (reference: on for pix2pix).
    pub dropout: bool,
}

impl Default for UnetConfig {
    fn default() -> Self {
        Self {
            ngf: 64,
            num_downs: 0,
            dropout: true,
        }
    }
}

impl UnetConfig {
    /// The number of down-samplings for images of side `image_size`.
    pub fn downs(&self, image_size: i64) -> i64 {
        if self.num_downs > 0 {
            self.num_downs
        } else {
            63 - (image_size.max(1) as u64).leading_zeros() as i64
        }
    }

    /// Checks every field for images of side `image_size`.
    pub fn validate(&self, prefix: &str, image_size: i64) -> Result<()> {
        if !(1..=512).contains(&self.ngf) {
            return Err(GanError::config(
                format!("{prefix}.ngf"),
                format!("must be in [1, 512], got {}", self.ngf),
            ));
        }
        let max = 63 - (image_size.max(1) as u64).leading_zeros() as i64;
        if self.num_downs != 0 && !(5..=max).contains(&self.num_downs) {
            return Err(GanError::config(
                format!("{prefix}.num_downs"),
                format!(
                    "must be 0 (auto) or in [5, {max}] for {image_size} px images (each halves the side), got {}",
                    self.num_downs
                ),
            ));
        }
        Ok(())
    }

    /// Builds the generator under `path` for `c_in` → `c_out` channels at `image_size`.
    pub fn init(&self, path: nn::Path, c_in: i64, c_out: i64, image_size: i64) -> UnetGenerator {
        let n = self.downs(image_size);
        let ngf = self.ngf;
        // (outer, inner) widths from the outermost block inwards.
        let mut widths = vec![
            (c_out, ngf),
            (ngf, 2 * ngf),
            (2 * ngf, 4 * ngf),
            (4 * ngf, 8 * ngf),
        ];
        widths.extend((4..n).map(|_| (8 * ngf, 8 * ngf)));
        let mut blocks = Vec::new();
        for (i, &(outer, inner)) in widths.iter().enumerate() {
            let p = &path / format!("block{i}");
            let outermost = i == 0;
            let innermost = i as i64 == n - 1;
            let input = if outermost { c_in } else { outer };
            let down = nn::conv2d(&p / "down", input, inner, 4, conv_cfg(false));
            let up_in = if innermost { inner } else { 2 * inner };
            let up = nn::conv_transpose2d(&p / "up", up_in, outer, 4, convt_cfg(outermost));
            blocks.push(UnetBlock {
                down,
                down_norm: (!outermost && !innermost).then(|| bn(&p / "down_norm", inner)),
                up,
                up_norm: (!outermost).then(|| bn(&p / "up_norm", outer)),
                // The reference puts dropout in the blocks built in its `num_downs − 5` loop:
                // indices 4 ..= n − 2 here (not the innermost, not the 8ngf block at index 3).
                dropout: self.dropout && i >= 4 && !innermost,
            });
        }
        UnetGenerator {
            blocks,
            act: LeakyRelu::new(0.2),
        }
    }
}

/// The reference's weight init, N(0, 0.02) (`init_weights('normal', 0.02)`).
pub(crate) const N002: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};

/// Conv4 s2 p1, N(0, 0.02) weights, optional zero bias.
pub(crate) fn conv_cfg(bias: bool) -> nn::ConvConfig {
    nn::ConvConfig {
        stride: 2,
        padding: 1,
        bias,
        ws_init: N002,
        bs_init: Init::Const(0.0),
        ..Default::default()
    }
}

/// ConvTranspose4 s2 p1, as [`conv_cfg`].
fn convt_cfg(bias: bool) -> nn::ConvTransposeConfig {
    let c = conv_cfg(bias);
    nn::ConvTransposeConfig {
        stride: c.stride,
        padding: c.padding,
        bias,
        ws_init: c.ws_init,
        bs_init: c.bs_init,
        ..Default::default()
    }
}

/// BatchNorm2d with the reference's init: weight N(1, 0.02), bias 0.
pub(crate) fn bn(path: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        path,
        c,
        nn::BatchNormConfig {
            ws_init: Init::Randn {
                mean: 1.0,
                stdev: 0.02,
            },
            bs_init: Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// One `UnetSkipConnectionBlock`.
#[derive(Debug)]
struct UnetBlock {
    down: nn::Conv2D,
    down_norm: Option<nn::BatchNorm>,
    up: nn::ConvTranspose2D,
    up_norm: Option<nn::BatchNorm>,
    dropout: bool,
}

/// The pix2pix U-Net generator (see module docs).
#[derive(Debug)]
pub struct UnetGenerator {
    /// Outermost first.
    blocks: Vec<UnetBlock>,
    act: LeakyRelu,
}

impl UnetGenerator {
    /// Translates `x` [n, c_in, H, W] in [−1, 1] to [n, c_out, H, W] in [−1, 1]; `train`:
    /// BatchNorm batch statistics and dropout on (see module docs).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.block(0, x, train)
    }

    fn block(&self, i: usize, x: &Tensor, train: bool) -> Tensor {
        let b = &self.blocks[i];
        let outermost = i == 0;
        let innermost = i + 1 == self.blocks.len();
        let h = if outermost {
            b.down.forward_t(x, train)
        } else {
            b.down.forward_t(&self.act.forward(x), train)
        };
        let h = match &b.down_norm {
            Some(n) => n.forward_t(&h, train),
            None => h,
        };
        let h = if innermost {
            h
        } else {
            self.block(i + 1, &h, train)
        };
        let h = b.up.forward_t(&h.relu(), train);
        if outermost {
            return h.tanh();
        }
        let h = b
            .up_norm
            .as_ref()
            .map_or(h.shallow_clone(), |n| n.forward_t(&h, train));
        let h = if b.dropout {
            crate::dist::dropout(&h, 0.5, train)
        } else {
            h
        };
        Tensor::cat(&[x, &h], 1)
    }

    /// Number of blocks (down-samplings).
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Shapes at 64 px (6 downs, 1×1 innermost), output in [−1, 1], the dropout blocks are
    /// the reference's, and a size without enough halvings names the field.
    #[test]
    fn shapes_and_dropout_blocks() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let cfg = UnetConfig {
            ngf: 4,
            ..Default::default()
        };
        assert_eq!(cfg.downs(64), 6);
        assert_eq!(cfg.downs(256), 8);
        let vs = nn::VarStore::new(Device::Cpu);
        let g = cfg.init(vs.root(), 1, 3, 64);
        assert_eq!(g.depth(), 6);
        let drops: Vec<usize> = (0..6).filter(|&i| g.blocks[i].dropout).collect();
        assert_eq!(drops, vec![4], "num_downs − 5 = 1 dropout block");
        let g256 = cfg.init(vs.root() / "big", 3, 3, 256);
        let drops: Vec<usize> = (0..8).filter(|&i| g256.blocks[i].dropout).collect();
        assert_eq!(drops, vec![4, 5, 6], "unet_256: three dropout blocks");
        let x = Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu)) * 2 - 1;
        let y = g.forward_t(&x, true);
        assert_eq!(y.size(), vec![2, 3, 64, 64]);
        assert!(y.abs().max().double_value(&[]) <= 1.0);
        let e = UnetConfig {
            num_downs: 9,
            ..Default::default()
        }
        .validate("pix2pix.unet", 64)
        .unwrap_err();
        assert!(e.to_string().contains("pix2pix.unet.num_downs"), "{e}");
    }
}
