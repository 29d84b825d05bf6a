//! The per-domain autoencoder of LaDiffGAN (supplement A: E_d, trained with L1 + a
//! perceptual loss, eqs. S2–S3), and the residual block it shares with the latent DDPM's
//! U-Net ([`crate::models::latent_unet`]).
//!
//! The supplement gives neither layers nor latent shape. We reconstruct the autoencoder after
//! the one its latent diffusion follows, LDM's KL-f8 "AutoencoderKL"
//! (CompVis/latent-diffusion `ldm/modules/diffusionmodules/model.py`), without its KL term
//! and attention, and at CPU widths:
//! - encoder: conv3×3 c→nf; per level i < `downsamplings`: `blocks` × ResBlock(→ nf·mult_i),
//!   then a stride-2 conv3×3 (LDM pads asymmetrically; we pad 1); a middle ResBlock;
//!   GroupNorm, SiLU, conv3×3 → `latent_channels`;
//! - decoder: the mirror image: conv3×3 → top width, a middle ResBlock; per level, `blocks` ×
//!   ResBlock, then nearest ×2 + conv3×3; GroupNorm, SiLU, conv3×3 → c, tanh (images in
//!   [−1, 1]).
//!
//! ResBlock: GN → SiLU → conv3×3 → (+ time embedding) → GN → SiLU → conv3×3, plus the input
//! (through a 1×1 conv when the width changes). GroupNorm has 32 groups, or fewer when
//! the width is under 128 (at least 4 channels a group; see [`group_norm`]). Latents are `latent_channels` ×
//! H/2^d × W/2^d, e.g. 4 × 8 × 8 for 64 px images and d = 3.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::{GanError, Result};

/// Shape of the autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoencoderConfig {
    /// Width of the first level (LDM: 128; default 32 for CPU runs).
    pub nf: i64,
    /// Width multiplier of each level, one per down-sampling (LDM KL-f8: 1, 2, 4, 4).
    pub mults: Vec<i64>,
    /// Residual blocks per level (LDM: 2).
    pub blocks: i64,
    /// Channels of the latent (LDM KL-f8: 4).
    pub latent_channels: i64,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            nf: 32,
            mults: vec![1, 2, 4],
            blocks: 1,
            latent_channels: 4,
        }
    }
}

impl AutoencoderConfig {
    /// Checks every field; `size` is the image side.
    pub fn validate(&self, prefix: &str, size: i64) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if !(1..=512).contains(&self.nf) {
            return err("nf", format!("must be in [1, 512], got {}", self.nf));
        }
        if self.mults.is_empty() || self.mults.len() > 6 {
            return err(
                "mults",
                format!("needs 1 to 6 levels, got {}", self.mults.len()),
            );
        }
        if let Some(m) = self.mults.iter().find(|m| !(1..=16).contains(*m)) {
            return err("mults", format!("each must be in [1, 16], got {m}"));
        }
        let f = 1i64 << self.mults.len();
        if size % f != 0 || size / f < 2 {
            return err(
                "mults",
                format!(
                    "{} down-samplings divide {size} px by {f}: the latent must be at least 2 px",
                    self.mults.len()
                ),
            );
        }
        if !(0..=8).contains(&self.blocks) {
            return err("blocks", format!("must be in [0, 8], got {}", self.blocks));
        }
        if !(1..=64).contains(&self.latent_channels) {
            return err(
                "latent_channels",
                format!("must be in [1, 64], got {}", self.latent_channels),
            );
        }
        Ok(())
    }

    /// Latent shape [C, H/f, W/f] for `size` px images.
    pub fn latent_shape(&self, size: i64) -> [i64; 3] {
        let s = size >> self.mults.len();
        [self.latent_channels, s, s]
    }

    /// Builds encoder and decoder under `path` for `c`-channel images.
    pub fn init(&self, path: nn::Path, c: i64) -> Autoencoder {
        let widths: Vec<i64> = self.mults.iter().map(|m| m * self.nf).collect();
        let top = *widths.last().unwrap_or(&self.nf);
        let e = &path / "enc";
        let mut enc_levels = Vec::new();
        let mut w = self.nf;
        for (i, &wi) in widths.iter().enumerate() {
            let p = &e / format!("down{i}");
            let mut blocks = Vec::new();
            for j in 0..self.blocks {
                blocks.push(ResBlock::new(&p / format!("res{j}"), w, wi, 0));
                w = wi;
            }
            let down = conv(&p / "down", w, w, 3, 2, 1);
            enc_levels.push((blocks, down));
        }
        let enc = Encoder {
            conv_in: conv(&e / "conv_in", c, self.nf, 3, 1, 1),
            levels: enc_levels,
            mid: ResBlock::new(&e / "mid", w, top, 0),
            norm_out: group_norm(&e / "norm_out", top),
            conv_out: conv(&e / "conv_out", top, self.latent_channels, 3, 1, 1),
        };
        let d = &path / "dec";
        let mut dec_levels = Vec::new();
        let mut w = top;
        for (i, &wi) in widths.iter().enumerate().rev() {
            let p = &d / format!("up{i}");
            let mut blocks = Vec::new();
            for j in 0..self.blocks {
                blocks.push(ResBlock::new(&p / format!("res{j}"), w, wi, 0));
                w = wi;
            }
            let up = conv(&p / "up", w, w, 3, 1, 1);
            dec_levels.push((blocks, up));
        }
        let dec = Decoder {
            conv_in: conv(&d / "conv_in", self.latent_channels, top, 3, 1, 1),
            mid: ResBlock::new(&d / "mid", top, top, 0),
            levels: dec_levels,
            norm_out: group_norm(&d / "norm_out", w),
            conv_out: conv(&d / "conv_out", w, c, 3, 1, 1),
        };
        Autoencoder { enc, dec }
    }
}

/// Conv with PyTorch's default init (what LDM uses).
pub(crate) fn conv(p: nn::Path, i: i64, o: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        i,
        o,
        k,
        nn::ConvConfig {
            stride,
            padding,
            ..Default::default()
        },
    )
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// GroupNorm with 32 groups of at least 4 channels (gcd(32, width/4)), eps 1e-6 as LDM,
/// whose 128-channel levels have 32 groups of 4. Single-channel groups would remove the
/// per-channel shift that carries the time embedding.
pub(crate) fn group_norm(p: nn::Path, c: i64) -> nn::GroupNorm {
    nn::group_norm(
        p,
        gcd(32, (c / 4).max(1)),
        c,
        nn::GroupNormConfig {
            eps: 1e-6,
            ..Default::default()
        },
    )
}

/// The residual block (see module docs); `temb` > 0 adds a projection of a time embedding of
/// that width between the two convolutions (DDPM's ResnetBlock).
#[derive(Debug)]
pub struct ResBlock {
    norm1: nn::GroupNorm,
    conv1: nn::Conv2D,
    temb: Option<nn::Linear>,
    norm2: nn::GroupNorm,
    conv2: nn::Conv2D,
    skip: Option<nn::Conv2D>,
}

impl ResBlock {
    /// A block `c_in` → `c_out` under `p`.
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, temb: i64) -> Self {
        Self {
            norm1: group_norm(&p / "norm1", c_in),
            conv1: conv(&p / "conv1", c_in, c_out, 3, 1, 1),
            temb: (temb > 0).then(|| nn::linear(&p / "temb", temb, c_out, Default::default())),
            norm2: group_norm(&p / "norm2", c_out),
            conv2: conv(&p / "conv2", c_out, c_out, 3, 1, 1),
            skip: (c_in != c_out).then(|| conv(&p / "skip", c_in, c_out, 1, 1, 0)),
        }
    }

    /// x [n, c_in, h, w] (and the time embedding [n, temb] when the block has one).
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Tensor {
        let mut h = self.conv1.forward(&self.norm1.forward(x).silu());
        if let (Some(l), Some(t)) = (&self.temb, temb) {
            // In place on the conv output, which the conv backward does not need.
            h += l.forward(&t.silu()).unsqueeze(-1).unsqueeze(-1);
        }
        let h = self.conv2.forward(&self.norm2.forward(&h).silu());
        match &self.skip {
            Some(s) => s.forward(x) + h,
            None => x + h,
        }
    }
}

#[derive(Debug)]
struct Encoder {
    conv_in: nn::Conv2D,
    levels: Vec<(Vec<ResBlock>, nn::Conv2D)>,
    mid: ResBlock,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

#[derive(Debug)]
struct Decoder {
    conv_in: nn::Conv2D,
    mid: ResBlock,
    levels: Vec<(Vec<ResBlock>, nn::Conv2D)>,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

/// Encoder + decoder (see module docs).
#[derive(Debug)]
pub struct Autoencoder {
    enc: Encoder,
    dec: Decoder,
}

impl Autoencoder {
    /// Images [n, c, H, W] in [−1, 1] → latents [n, latent_channels, H/f, W/f].
    pub fn encode(&self, x: &Tensor) -> Tensor {
        let e = &self.enc;
        let mut h = e.conv_in.forward(x);
        for (blocks, down) in &e.levels {
            for b in blocks {
                h = b.forward(&h, None);
            }
            h = down.forward(&h);
        }
        let h = e.mid.forward(&h, None);
        e.conv_out.forward(&e.norm_out.forward(&h).silu())
    }

    /// Latents → images in [−1, 1].
    pub fn decode(&self, z: &Tensor) -> Tensor {
        let d = &self.dec;
        let mut h = d.mid.forward(&d.conv_in.forward(z), None);
        for (blocks, up) in &d.levels {
            for b in blocks {
                h = b.forward(&h, None);
            }
            let s = h.size();
            h = up.forward(&h.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None));
        }
        d.conv_out.forward(&d.norm_out.forward(&h).silu()).tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn shapes_and_validation() {
        let _rng = crate::test_rng_lock();
        let cfg = AutoencoderConfig::default();
        cfg.validate("ae", 64).unwrap();
        assert_eq!(cfg.latent_shape(64), [4, 8, 8]);
        let vs = nn::VarStore::new(Device::Cpu);
        let ae = cfg.init(vs.root(), 3);
        let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu)) * 2 - 1;
        let z = ae.encode(&x);
        assert_eq!(z.size(), [2, 4, 8, 8]);
        let y = ae.decode(&z);
        assert_eq!(y.size(), [2, 3, 64, 64]);
        assert!(y.abs().max().double_value(&[]) <= 1.0);
        // 3 down-samplings of 8 px leave 1 px: refused, naming the field.
        let e = cfg.validate("ae", 8).unwrap_err().to_string();
        assert!(e.contains("ae.mults"), "{e}");
        let bad = AutoencoderConfig {
            latent_channels: 0,
            ..cfg
        };
        assert!(bad
            .validate("ae", 64)
            .unwrap_err()
            .to_string()
            .contains("ae.latent_channels"));
    }

    #[test]
    fn resblock_time_embedding_changes_output() {
        let _rng = crate::test_rng_lock();
        let vs = nn::VarStore::new(Device::Cpu);
        let b = ResBlock::new(vs.root(), 8, 16, 12);
        let x = Tensor::randn([2, 8, 4, 4], (Kind::Float, Device::Cpu));
        let t0 = Tensor::zeros([2, 12], (Kind::Float, Device::Cpu));
        let t1 = Tensor::ones([2, 12], (Kind::Float, Device::Cpu));
        let (a, c) = (b.forward(&x, Some(&t0)), b.forward(&x, Some(&t1)));
        assert_eq!(a.size(), [2, 16, 4, 4]);
        assert!((a - c).abs().max().double_value(&[]) > 1e-4);
    }
}
