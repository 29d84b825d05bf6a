//! DCGAN (Radford et al. 2016; the lecture's "DCGAN" and GAN hacks) for 28, 32 and 64 px.
//!
//! With `s0` = 7 for 28 px and 4 otherwise, and `u` = log2(size / s0) upsamplings:
//! - G: z → ConvT(nz, w·2^(u−1), s0, 1, 0) → BN → ReLU → [ConvT(·, ·/2, 4, 2, 1) → BN → ReLU]
//!   × (u − 1) → ConvT(w, C, 4, 2, 1) → tanh. (32 px: 4w@4 → 2w@8 → w@16 → C@32.)
//! - D: Conv(C, w, 4, 2, 1) [+ E(t) per channel] → LeakyReLU → [Conv(·, 2·, 4, 2, 1) → BN →
//!   LeakyReLU] × (u − 1) → Conv(w·2^(u−1), 1, s0, 1, 0).
//!
//! BatchNorm runs in training mode (batch statistics) in both nets, as the DCGAN reference
//! code samples; D therefore scores real and fake in separate passes. D takes the
//! Diffusion-GAN step t through the timestep embedding added to its first feature map.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::{Discriminator, Generator};
use crate::error::{GanError, Result};
use crate::nn::{LeakyRelu, TimestepEmbedding, TimestepEmbeddingConfig};

/// Shape of both DCGAN nets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcganConfig {
    /// Image side: 28, 32 or 64.
    pub image_size: i64,
    /// Image channels: 1 (grey) or 3 (RGB).
    pub channels: i64,
    /// Dimension of z ~ N(0, I) (DCGAN: 100).
    pub latent_dim: i64,
    /// Base width w (ngf = ndf; DCGAN: 64).
    pub width: i64,
    /// LeakyReLU slope of D (DCGAN: 0.2).
    pub leaky_slope: f64,
    /// Timestep embedding of D.
    pub t_embedding: TimestepEmbeddingConfig,
}

impl Default for DcganConfig {
    fn default() -> Self {
        Self {
            image_size: 28,
            channels: 1,
            latent_dim: 100,
            width: 64,
            leaky_slope: 0.2,
            t_embedding: Default::default(),
        }
    }
}

impl DcganConfig {
    /// (s0, u): start side and number of ×2 upsamplings.
    fn plan(&self) -> (i64, u32) {
        super::image_plan(self.image_size)
    }

    /// Checks every field; `prefix` is the TOML section used in error messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        super::validate_image(prefix, self.image_size, self.channels)?;
        if !(1..=4096).contains(&self.latent_dim) {
            return err(
                "latent_dim",
                format!("must be in [1, 4096], got {}", self.latent_dim),
            );
        }
        if !(1..=1024).contains(&self.width) {
            return err("width", format!("must be in [1, 1024], got {}", self.width));
        }
        if !(0.0..1.0).contains(&self.leaky_slope) {
            return err(
                "leaky_slope",
                format!("must be in [0, 1), got {}", self.leaky_slope),
            );
        }
        self.t_embedding.validate(&format!("{prefix}.t_embedding"))
    }

    /// Builds the generator under `path`.
    pub fn init_generator(&self, path: nn::Path) -> DcganGenerator {
        let (s0, u) = self.plan();
        let w = self.width;
        let ct = |stride, padding| nn::ConvTransposeConfig {
            stride,
            padding,
            bias: false,
            ..Default::default()
        };
        let mut blocks = Vec::new();
        let mut c = w << (u - 1);
        blocks.push((
            nn::conv_transpose2d(&path / "up0", self.latent_dim, c, s0, ct(1, 0)),
            nn::batch_norm2d(&path / "bn0", c, Default::default()),
        ));
        for i in 1..u as i64 {
            blocks.push((
                nn::conv_transpose2d(&path / format!("up{i}"), c, c / 2, 4, ct(2, 1)),
                nn::batch_norm2d(&path / format!("bn{i}"), c / 2, Default::default()),
            ));
            c /= 2;
        }
        let out = nn::conv_transpose2d(
            &path / "out",
            c,
            self.channels,
            4,
            nn::ConvTransposeConfig {
                stride: 2,
                padding: 1,
                ..Default::default()
            },
        );
        DcganGenerator {
            blocks,
            out,
            latent_dim: self.latent_dim,
        }
    }

    /// Builds the discriminator under `path`; `with_t` as for the MLP.
    pub fn init_discriminator(&self, path: nn::Path, with_t: bool) -> DcganDiscriminator {
        let (s0, u) = self.plan();
        let w = self.width;
        let conv = |stride, padding, bias| nn::ConvConfig {
            stride,
            padding,
            bias,
            ..Default::default()
        };
        let first = nn::conv2d(&path / "in", self.channels, w, 4, conv(2, 1, true));
        let mut blocks = Vec::new();
        let mut c = w;
        for i in 1..u as i64 {
            blocks.push((
                nn::conv2d(&path / format!("down{i}"), c, c * 2, 4, conv(2, 1, false)),
                nn::batch_norm2d(&path / format!("bn{i}"), c * 2, Default::default()),
            ));
            c *= 2;
        }
        let out = nn::conv2d(&path / "out", c, 1, s0, conv(1, 0, true));
        DcganDiscriminator {
            first,
            blocks,
            out,
            t_embed: with_t.then(|| self.t_embedding.init(&path / "t_embed", w)),
            act: LeakyRelu::new(self.leaky_slope),
        }
    }
}

/// DCGAN generator.
#[derive(Debug)]
pub struct DcganGenerator {
    blocks: Vec<(nn::ConvTranspose2D, nn::BatchNorm)>,
    out: nn::ConvTranspose2D,
    latent_dim: i64,
}

impl Generator for DcganGenerator {
    fn forward(&self, z: &Tensor) -> Tensor {
        let n = z.size()[0];
        let h = self
            .blocks
            .iter()
            .fold(z.view([n, self.latent_dim, 1, 1]), |h, (up, bn)| {
                bn.forward_t(&up.forward(&h), true).relu()
            });
        self.out.forward(&h).tanh()
    }

    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
}

/// DCGAN discriminator (raw score per image).
#[derive(Debug)]
pub struct DcganDiscriminator {
    first: nn::Conv2D,
    blocks: Vec<(nn::Conv2D, nn::BatchNorm)>,
    out: nn::Conv2D,
    t_embed: Option<TimestepEmbedding>,
    act: LeakyRelu,
}

impl DcganDiscriminator {
    /// The last feature map [n, C, s0, s0] (before the output convolution).
    fn feature_map(&self, y: &Tensor, t: &Tensor) -> Tensor {
        let h0 = self.first.forward(y);
        let h0 = match &self.t_embed {
            Some(e) => h0 + e.forward(t).unsqueeze(-1).unsqueeze(-1),
            None => h0,
        };
        self.blocks
            .iter()
            .fold(self.act.forward(&h0), |h, (down, bn)| {
                self.act.forward(&bn.forward_t(&down.forward(&h), true))
            })
    }
}

impl Discriminator for DcganDiscriminator {
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.out.forward(&self.feature_map(y, t)).flatten(1, -1)
    }

    fn features(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.feature_map(y, t).flatten(1, -1)
    }

    fn feature_dim(&self) -> i64 {
        self.out.ws.size()[1..].iter().product()
    }

    fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let h = self.feature_map(y, t);
        (self.out.forward(&h).flatten(1, -1), h.flatten(1, -1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Every size gives images of that size in [-1, 1] and one score per image; D depends on
    /// t only when built with it; invalid sizes name the field.
    #[test]
    fn shapes_ranges_and_t() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        for (size, ch) in [(28, 1), (32, 3), (64, 3)] {
            let cfg = DcganConfig {
                image_size: size,
                channels: ch,
                width: 8,
                ..Default::default()
            };
            cfg.validate("model.dcgan").unwrap();
            let vs = nn::VarStore::new(Device::Cpu);
            let g = cfg.init_generator(vs.root() / "g");
            let d = cfg.init_discriminator(vs.root() / "d", true);
            let x = g.forward(&Tensor::randn([4, 100], (Kind::Float, Device::Cpu)));
            assert_eq!(x.size(), vec![4, ch, size, size]);
            assert!(x.abs().max().double_value(&[]) <= 1.0);
            let t0 = Tensor::zeros([4], (Kind::Int64, Device::Cpu));
            let t1 = Tensor::full([4], 200, (Kind::Int64, Device::Cpu));
            let s0 = d.forward(&x, &t0);
            assert_eq!(s0.size(), vec![4, 1]);
            assert!(!s0.equal(&d.forward(&x, &t1)), "{size}: D must depend on t");
            let plain = cfg.init_discriminator(vs.root() / "p", false);
            assert!(plain.forward(&x, &t0).equal(&plain.forward(&x, &t1)));
        }
        let e = DcganConfig {
            image_size: 48,
            ..Default::default()
        }
        .validate("model.dcgan")
        .unwrap_err();
        assert!(e.to_string().contains("model.dcgan.image_size"), "{e}");
    }
}
