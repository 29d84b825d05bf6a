//! The ε-predictor of LaDiffGAN's latent DDPM (supplement eq. S1; the main paper's Eq. 5,
//! reconstructed in ../shared/specs/translation.md §1: E‖ε − ε_θ(z_t, t)‖²).
//!
//! The supplement says only "a DDPM in each latent space". This is a small DDPM U-Net (Ho et
//! al. 2020, `diffusion_tf/models/unet.py`) without self-attention, for 4 × 8 × 8 latents:
//! - t → sinusoidal code (width `ch`) → MLP → 4·ch, added in every residual block;
//! - conv3×3 → `ch`;
//! - per level: `blocks` residual blocks, each output kept for a skip, then a stride-2 conv
//!   except after the last level;
//! - a middle of two blocks;
//! - per level in reverse: `blocks + 1` blocks, each taking a skip concatenated on channels,
//!   then nearest ×2 + conv3×3 except at the top;
//! - GroupNorm, SiLU, conv3×3 → the latent's channels.
//!
//! The residual block is the autoencoder's ([`crate::models::autoencoder::ResBlock`]) with
//! its time-embedding projection.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use super::autoencoder::{conv, group_norm, ResBlock};
use crate::error::{GanError, Result};
use crate::nn::timestep::{TimestepEmbedding, TimestepEmbeddingConfig};

/// Shape of the U-Net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentUnetConfig {
    /// Base width (DDPM CIFAR-10: 128; default 64 for 8 × 8 latents on a CPU).
    pub ch: i64,
    /// Width multiplier per level (DDPM CIFAR-10: 1, 2, 2, 2).
    pub mults: Vec<i64>,
    /// Residual blocks per level (DDPM: 2).
    pub blocks: i64,
}

impl Default for LatentUnetConfig {
    fn default() -> Self {
        Self {
            ch: 64,
            mults: vec![1, 2],
            blocks: 2,
        }
    }
}

impl LatentUnetConfig {
    /// Checks every field for latents of side `side`.
    pub fn validate(&self, prefix: &str, side: i64) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if !(2..=1024).contains(&self.ch) || self.ch % 2 != 0 {
            return err(
                "ch",
                format!("must be even and in [2, 1024], got {}", self.ch),
            );
        }
        if self.mults.is_empty() || self.mults.len() > 5 {
            return err(
                "mults",
                format!("needs 1 to 5 levels, got {}", self.mults.len()),
            );
        }
        if let Some(m) = self.mults.iter().find(|m| !(1..=16).contains(*m)) {
            return err("mults", format!("each must be in [1, 16], got {m}"));
        }
        let f = 1i64 << (self.mults.len() - 1);
        if side % f != 0 {
            return err(
                "mults",
                format!(
                    "{} levels halve the latent {} times: its side {side} must be a multiple of {f}",
                    self.mults.len(),
                    self.mults.len() - 1
                ),
            );
        }
        if !(1..=8).contains(&self.blocks) {
            return err("blocks", format!("must be in [1, 8], got {}", self.blocks));
        }
        Ok(())
    }

    /// Builds the U-Net under `p` for latents of `c` channels.
    pub fn init(&self, p: nn::Path, c: i64) -> LatentUnet {
        let temb = 4 * self.ch;
        let mut skips = vec![self.ch];
        let mut down = Vec::new();
        let mut w = self.ch;
        let last = self.mults.len() - 1;
        for (i, m) in self.mults.iter().enumerate() {
            let mut blocks = Vec::new();
            for j in 0..self.blocks {
                blocks.push(ResBlock::new(
                    &p / format!("down{i}_{j}"),
                    w,
                    m * self.ch,
                    temb,
                ));
                w = m * self.ch;
                skips.push(w);
            }
            let ds = (i < last).then(|| {
                skips.push(w);
                conv(&p / format!("down{i}_ds"), w, w, 3, 2, 1)
            });
            down.push((blocks, ds));
        }
        let mid = [
            ResBlock::new(&p / "mid0", w, w, temb),
            ResBlock::new(&p / "mid1", w, w, temb),
        ];
        let mut up = Vec::new();
        for (i, m) in self.mults.iter().enumerate().rev() {
            let mut blocks = Vec::new();
            for j in 0..=self.blocks {
                let s = skips.pop().unwrap_or(0);
                blocks.push(ResBlock::new(
                    &p / format!("up{i}_{j}"),
                    w + s,
                    m * self.ch,
                    temb,
                ));
                w = m * self.ch;
            }
            let us = (i > 0).then(|| conv(&p / format!("up{i}_us"), w, w, 3, 1, 1));
            up.push((blocks, us));
        }
        LatentUnet {
            temb: TimestepEmbeddingConfig { code_dim: self.ch }.init(&p / "temb", temb),
            conv_in: conv(&p / "conv_in", c, self.ch, 3, 1, 1),
            down,
            mid,
            up,
            norm_out: group_norm(&p / "norm_out", w),
            conv_out: conv(&p / "conv_out", w, c, 3, 1, 1),
        }
    }
}

/// ε_θ(z_t, t) (see module docs).
#[derive(Debug)]
pub struct LatentUnet {
    temb: TimestepEmbedding,
    conv_in: nn::Conv2D,
    down: Vec<(Vec<ResBlock>, Option<nn::Conv2D>)>,
    mid: [ResBlock; 2],
    up: Vec<(Vec<ResBlock>, Option<nn::Conv2D>)>,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl LatentUnet {
    /// Predicted noise for latents `z` [n, c, h, w] at steps `t` ([n], Int64).
    pub fn forward(&self, z: &Tensor, t: &Tensor) -> Tensor {
        let e = self.temb.forward(t);
        let mut h = self.conv_in.forward(z);
        let mut hs = vec![h.shallow_clone()];
        for (blocks, ds) in &self.down {
            for b in blocks {
                h = b.forward(&h, Some(&e));
                hs.push(h.shallow_clone());
            }
            if let Some(ds) = ds {
                h = ds.forward(&h);
                hs.push(h.shallow_clone());
            }
        }
        for b in &self.mid {
            h = b.forward(&h, Some(&e));
        }
        for (blocks, us) in &self.up {
            for b in blocks {
                let s = hs.pop().expect("one skip per up block");
                h = b.forward(&Tensor::cat(&[&h, &s], 1), Some(&e));
            }
            if let Some(us) = us {
                let s = h.size();
                h = us.forward(&h.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None));
            }
        }
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn shapes_and_t_dependence() {
        let _rng = crate::test_rng_lock();
        let cfg = LatentUnetConfig::default();
        cfg.validate("u", 8).unwrap();
        assert!(cfg
            .validate("u", 7)
            .unwrap_err()
            .to_string()
            .contains("u.mults"));
        let vs = nn::VarStore::new(Device::Cpu);
        let u = cfg.init(vs.root(), 4);
        let z = Tensor::randn([3, 4, 8, 8], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[1i64, 500, 999]);
        let e = u.forward(&z, &t);
        assert_eq!(e.size(), [3, 4, 8, 8]);
        let e2 = u.forward(&z, &Tensor::from_slice(&[2i64, 10, 5]));
        assert!((e - e2).abs().max().double_value(&[]) > 1e-5);
    }
}
