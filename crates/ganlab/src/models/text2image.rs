//! GAN-INT-CLS's networks (Reed et al., ICML 2016, "Generative Adversarial Text to Image
//! Synthesis" §4.1; gan-lecture.txt "Text-to-image synthesis"): DCGAN networks conditioned
//! on a text embedding φ(t) from a frozen encoder ([`crate::tasks::text_encoder`]).
//!
//! - The embedding is compressed by a fully connected layer to `t_dim` (paper: 128)
//!   followed by LeakyReLU 0.2, separately in G and in D.
//! - G: [z ‖ compressed φ(t)] → transposed conv 4×4 to 4 × 4 × 8·ngf → transposed convs 4×4
//!   stride 2 halving the width up to the image side → tanh; BatchNorm and ReLU after every
//!   layer but the last (DCGAN).
//! - D: convs 4×4 stride 2 (ndf, 2ndf, 4ndf, 8ndf, …) with LeakyReLU 0.2 and BatchNorm after
//!   all but the first, down to 4 × 4; the compressed φ(t) replicated spatially to 4 × 4 and
//!   concatenated depth-wise; conv 1×1 (8·ndf) + BatchNorm + LeakyReLU 0.2; conv 4×4 → one
//!   logit ("the final score from D").

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use crate::error::{GanError, Result};
use crate::nn::LeakyRelu;

/// `[gan_int_cls.net]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextGanConfig {
    /// Noise dimension (paper: 100).
    pub z_dim: i64,
    /// Compressed text dimension (paper: 128).
    pub t_dim: i64,
    /// G's last width (DCGAN: 64).
    pub ngf: i64,
    /// D's first width (DCGAN: 64).
    pub ndf: i64,
}

impl Default for TextGanConfig {
    fn default() -> Self {
        Self {
            z_dim: 100,
            t_dim: 128,
            ngf: 64,
            ndf: 64,
        }
    }
}

impl TextGanConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (f, v) in [
            ("z_dim", self.z_dim),
            ("t_dim", self.t_dim),
            ("ngf", self.ngf),
            ("ndf", self.ndf),
        ] {
            if !(1..=1024).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [1, 1024], got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Stride-2 stages between 4 px and `size` (32 → 3, 64 → 4, 128 → 5).
fn stages(size: i64) -> i64 {
    (size / 4).trailing_zeros() as i64
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, Default::default())
}

/// The text compression: linear + LeakyReLU 0.2.
#[derive(Debug)]
pub struct TextProjection(nn::Linear);

impl TextProjection {
    /// `dim` → `t_dim` under `p`.
    pub fn new(p: nn::Path, dim: i64, t_dim: i64) -> Self {
        Self(nn::linear(p, dim, t_dim, Default::default()))
    }

    /// Compressed embeddings [n, t_dim].
    pub fn forward(&self, h: &Tensor) -> Tensor {
        LeakyRelu::new(0.2).forward(&self.0.forward(h))
    }
}

/// The conditional DCGAN generator (module docs).
#[derive(Debug)]
pub struct TextGenerator {
    proj: TextProjection,
    ups: Vec<(nn::ConvTranspose2D, Option<nn::BatchNorm>)>,
}

impl TextGenerator {
    /// G of `size`-px RGB images for `dim`-d text embeddings under `p`.
    pub fn new(p: nn::Path, cfg: &TextGanConfig, dim: i64, size: i64) -> Self {
        let n = stages(size);
        let width = |i: i64| cfg.ngf << (n - 1 - i).max(0); // 8·ngf at 4 px for 64 px images
        let mut ups = Vec::new();
        let first = nn::ConvTransposeConfig {
            bias: false,
            ..Default::default()
        };
        let cin = cfg.z_dim + cfg.t_dim;
        ups.push((
            nn::conv_transpose2d(&p / "up0", cin, width(0), 4, first),
            Some(bn(&p / "bn0", width(0))),
        ));
        for i in 1..=n {
            let last = i == n;
            let cout = if last { 3 } else { width(i) };
            let c = nn::ConvTransposeConfig {
                stride: 2,
                padding: 1,
                bias: last,
                ..Default::default()
            };
            let norm = (!last).then(|| bn(&p / format!("bn{i}"), cout));
            ups.push((
                nn::conv_transpose2d(&p / format!("up{i}"), width(i - 1), cout, 4, c),
                norm,
            ));
        }
        Self {
            proj: TextProjection::new(&p / "proj", dim, cfg.t_dim),
            ups,
        }
    }

    /// G(z, φ(t)): images [n, 3, size, size] in [−1, 1].
    pub fn forward_t(&self, z: &Tensor, h: &Tensor, train: bool) -> Tensor {
        let mut x = Tensor::cat(&[z, &self.proj.forward(h)], 1)
            .unsqueeze(-1)
            .unsqueeze(-1);
        for (conv, norm) in &self.ups {
            x = conv.forward(&x);
            x = match norm {
                Some(b) => b.forward_t(&x, train).relu(),
                None => x.tanh(),
            };
        }
        x
    }
}

/// The matching-aware DCGAN discriminator (module docs).
#[derive(Debug)]
pub struct TextDiscriminator {
    proj: TextProjection,
    downs: Vec<(nn::Conv2D, Option<nn::BatchNorm>)>,
    joint: (nn::Conv2D, nn::BatchNorm),
    out: nn::Conv2D,
}

impl TextDiscriminator {
    /// D of `size`-px RGB images and `dim`-d text embeddings under `p`.
    pub fn new(p: nn::Path, cfg: &TextGanConfig, dim: i64, size: i64) -> Self {
        let n = stages(size);
        let c = nn::ConvConfig {
            stride: 2,
            padding: 1,
            bias: false,
            ..Default::default()
        };
        let mut cin = 3;
        let downs = (0..n)
            .map(|i| {
                let w = cfg.ndf << i;
                let norm = (i > 0).then(|| bn(&p / format!("bn{i}"), w));
                let layer = (nn::conv2d(&p / format!("down{i}"), cin, w, 4, c), norm);
                cin = w;
                layer
            })
            .collect();
        let nobias = nn::ConvConfig {
            bias: false,
            ..Default::default()
        };
        Self {
            proj: TextProjection::new(&p / "proj", dim, cfg.t_dim),
            downs,
            joint: (
                nn::conv2d(&p / "joint", cin + cfg.t_dim, cin, 1, nobias),
                bn(&p / "joint_bn", cin),
            ),
            out: nn::conv2d(&p / "out", cin, 1, 4, Default::default()),
        }
    }

    /// Logits [n] of images [n, 3, size, size] paired with text embeddings [n, dim].
    pub fn forward_t(&self, x: &Tensor, h: &Tensor, train: bool) -> Tensor {
        let act = LeakyRelu::new(0.2);
        let mut y = x.shallow_clone();
        for (conv, norm) in &self.downs {
            y = conv.forward(&y);
            if let Some(b) = norm {
                y = b.forward_t(&y, train);
            }
            y = act.forward(&y);
        }
        let s = y.size();
        let t = self
            .proj
            .forward(h)
            .unsqueeze(-1)
            .unsqueeze(-1)
            .expand([s[0], -1, s[2], s[3]], false);
        let y = Tensor::cat(&[y, t], 1);
        let y = act.forward(&self.joint.1.forward_t(&self.joint.0.forward(&y), train));
        self.out.forward(&y).flatten(0, -1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Shapes at 32, 64 and 128 px, and the trainable parameter counts at the paper's 64 px
    /// setting (z 100, t_dim 128, ngf = ndf = 64, a 1,024-d embedding as Reed et al.'s) by
    /// closed form, layer by layer (k×k conv: k²·cin·cout, + cout with bias; BatchNorm: 2c).
    #[test]
    fn shapes_and_counts() {
        let _rng = crate::test_rng_lock();
        let cfg = TextGanConfig::default();
        for size in [32, 64, 128] {
            let vs = nn::VarStore::new(Device::Cpu);
            let g = TextGenerator::new(vs.root() / "g", &cfg, 16, size);
            let d = TextDiscriminator::new(vs.root() / "d", &cfg, 16, size);
            let z = Tensor::randn([2, 100], (Kind::Float, Device::Cpu));
            let h = Tensor::randn([2, 16], (Kind::Float, Device::Cpu));
            let x = g.forward_t(&z, &h, true);
            assert_eq!(x.size(), vec![2, 3, size, size]);
            assert_eq!(d.forward_t(&x, &h, true).size(), vec![2]);
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let _g = TextGenerator::new(vs.root() / "g", &cfg, 1024, 64);
        let _d = TextDiscriminator::new(vs.root() / "d", &cfg, 1024, 64);
        let count = |prefix: &str| -> i64 {
            vs.variables()
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && !k.contains("running"))
                .map(|(_, v)| v.numel() as i64)
                .sum::<i64>()
        };
        let proj = 1024 * 128 + 128;
        let g_want = proj
            + 228 * 512 * 16
            + 2 * 512
            + 512 * 256 * 16
            + 2 * 256
            + 256 * 128 * 16
            + 2 * 128
            + 128 * 64 * 16
            + 2 * 64
            + 64 * 3 * 16
            + 3;
        let d_want = proj
            + 3 * 64 * 16
            + 64 * 128 * 16
            + 2 * 128
            + 128 * 256 * 16
            + 2 * 256
            + 256 * 512 * 16
            + 2 * 512
            + (512 + 128) * 512
            + 2 * 512
            + 512 * 16
            + 1;
        assert_eq!(count("g."), g_want);
        assert_eq!(count("d."), d_want);
    }
}
