//! StyleGAN2 (Karras et al. 2020), the backbone of Diffusion-GAN's headline results
//! (Diffusion-StyleGAN2), built as StyleGAN2-ADA's official networks
//! (NVlabs/stylegan2-ada-pytorch `training/networks.py`; Diffusion-GAN's
//! `diffusion-stylegan2/training/networks.py` adds t to D). Layers: [`crate::nn::equalized`].
//!
//! - **G** = mapping ∘ synthesis. Mapping: z → normalize_2nd_moment → `mapping_layers` fully
//!   connected lrelu layers (lr multiplier 0.01) → w. Synthesis ("skip" architecture): a
//!   learnt 4×4 constant, then per resolution r = 4, 8, …, image_size a block of two
//!   modulated 3×3 convs (the first ×2 up-sampling, none at r = 4), each with per-pixel noise
//!   of learnt strength, and a ToRGB whose output is added to the FIR-up-sampled image so far.
//!   Channels at r: min(channel_base / r, channel_max). The image is not squashed (no tanh).
//! - **D** ("orig" or "resnet"): per resolution r = image_size, …, 8 a block (FromRGB 1×1 in
//!   the first block only; conv 3×3; conv 3×3 with ×2 FIR down-sampling; "resnet" adds a
//!   1×1 down-sampling skip, both branches scaled by √0.5), then the epilogue at 4×4:
//!   minibatch standard deviation (group `mbstd_group`, `mbstd_channels` features), conv 3×3,
//!   fully connected lrelu, and a linear output.
//! - **t in D** (Diffusion-StyleGAN2): t is D's conditioning label (t_dim = 1): D gets a
//!   mapping network (z_dim 0, c_dim 1, `d_mapping_layers` layers, width = D's 4×4 channels)
//!   of the float step t, and the score is the projection ⟨out(h), cmap(t)⟩/√cmap_dim. A D
//!   without diffusion has neither, and its output has one unit, as StyleGAN2-ADA's.
//!
//! Departures: every w of a sample is the same (no style mixing: the CIFAR setting turns it
//! off; no path-length regulariser: CIFAR sets its weight 0); no w_avg tracking or truncation;
//! the minibatch-stddev group is the largest divisor of the batch not above `mbstd_group`
//! (the official code requires the batch to divide by it); FP16 is not used (the official
//! code runs the 4 highest resolutions in FP16 on GPUs).

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use super::{Discriminator, Generator};
use crate::error::{GanError, Result};
use crate::nn::equalized::{
    normalize_2nd_moment, upsample2d, ConvOptions, EqConv2d, EqLinear, ModConv,
};

/// D's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DArchitecture {
    /// Plain blocks (StyleGAN2-ADA's CIFAR setting).
    Orig,
    /// Residual blocks (StyleGAN2's default).
    Resnet,
}

/// `[model.stylegan2]`. Defaults: StyleGAN2-ADA's networks at its CIFAR-10 setting, except
/// D's architecture (residual, the default of every other setting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stylegan2Config {
    /// Image side: 32 or 64.
    pub image_size: i64,
    /// 1 (grey) or 3 (RGB).
    pub channels: i64,
    /// Dimension of z (official: 512).
    pub latent_dim: i64,
    /// Dimension of w (official: 512).
    pub w_dim: i64,
    /// Layers of G's mapping network (official: 8; CIFAR: 2).
    pub mapping_layers: i64,
    /// Layers of D's mapping network of t (official default: 8).
    pub d_mapping_layers: i64,
    /// Channels at resolution r: min(channel_base / r, channel_max) (official: 32768 × fmaps).
    pub channel_base: i64,
    /// Channel cap (official: 512).
    pub channel_max: i64,
    /// D's blocks: "orig" or "resnet".
    pub d_architecture: DArchitecture,
    /// Minibatch-stddev group size (official: 4; CIFAR: 32).
    pub mbstd_group: i64,
    /// Minibatch-stddev features (official: 1; 0 turns the layer off).
    pub mbstd_channels: i64,
    /// Clamp of conv outputs (official: 256; 0: none).
    pub conv_clamp: f64,
    /// Per-pixel noise inputs in G.
    pub noise: bool,
}

impl Default for Stylegan2Config {
    fn default() -> Self {
        Self {
            image_size: 32,
            channels: 3,
            latent_dim: 512,
            w_dim: 512,
            mapping_layers: 2,
            d_mapping_layers: 8,
            channel_base: 32768,
            channel_max: 512,
            d_architecture: DArchitecture::Resnet,
            mbstd_group: 32,
            mbstd_channels: 1,
            conv_clamp: 256.0,
            noise: true,
        }
    }
}

impl Stylegan2Config {
    /// Channels at resolution `r`.
    fn ch(&self, r: i64) -> i64 {
        (self.channel_base / r).min(self.channel_max)
    }

    /// Resolutions 4, 8, …, image_size.
    fn resolutions(&self) -> Vec<i64> {
        let mut r = vec![4];
        while *r.last().expect("non-empty") < self.image_size {
            r.push(r.last().expect("non-empty") * 2);
        }
        r
    }

    /// Checks every field; `prefix` names the section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if ![32, 64].contains(&self.image_size) {
            return err(
                "image_size",
                format!("must be 32 or 64, got {}", self.image_size),
            );
        }
        super::validate_image(prefix, self.image_size, self.channels)?;
        for (f, v, lo, hi) in [
            ("latent_dim", self.latent_dim, 1, 1024),
            ("w_dim", self.w_dim, 1, 1024),
            ("mapping_layers", self.mapping_layers, 1, 16),
            ("d_mapping_layers", self.d_mapping_layers, 1, 16),
            ("channel_base", self.channel_base, 64, 1 << 20),
            ("channel_max", self.channel_max, 1, 1024),
            ("mbstd_group", self.mbstd_group, 1, 1024),
            ("mbstd_channels", self.mbstd_channels, 0, 16),
        ] {
            if !(lo..=hi).contains(&v) {
                return err(f, format!("must be in [{lo}, {hi}], got {v}"));
            }
        }
        if self.ch(self.image_size) < 1 {
            return err(
                "channel_base",
                format!(
                    "gives {} channels at {} px; must be at least the image size",
                    self.ch(self.image_size),
                    self.image_size
                ),
            );
        }
        if self.mbstd_channels > 0 && self.ch(4) % self.mbstd_channels != 0 {
            return err(
                "mbstd_channels",
                format!("must divide D's 4×4 channels ({})", self.ch(4)),
            );
        }
        if !(self.conv_clamp >= 0.0 && self.conv_clamp.is_finite()) {
            return err(
                "conv_clamp",
                format!("must be ≥ 0 (0: none), got {}", self.conv_clamp),
            );
        }
        Ok(())
    }

    /// Builds G under `path`.
    pub fn init_generator(&self, path: nn::Path) -> Stylegan2Generator {
        let mapping = mapping(
            &(&path / "mapping"),
            self.latent_dim,
            self.w_dim,
            self.mapping_layers,
        );
        let clamp = self.conv_clamp;
        let blocks = self
            .resolutions()
            .into_iter()
            .map(|r| {
                let p = &path / format!("b{r}");
                let c = self.ch(r);
                SynthesisBlock {
                    constant: (r == 4).then(|| {
                        p.var(
                            "const",
                            &[c, 4, 4],
                            nn::Init::Randn {
                                mean: 0.0,
                                stdev: 1.0,
                            },
                        )
                    }),
                    conv0: (r > 4).then(|| {
                        ModConv::synthesis(
                            &p / "conv0",
                            self.ch(r / 2),
                            c,
                            self.w_dim,
                            true,
                            self.noise,
                            clamp,
                        )
                    }),
                    conv1: ModConv::synthesis(
                        &p / "conv1",
                        c,
                        c,
                        self.w_dim,
                        false,
                        self.noise,
                        clamp,
                    ),
                    torgb: ModConv::to_rgb(&p / "torgb", c, self.channels, self.w_dim, clamp),
                }
            })
            .collect();
        Stylegan2Generator {
            mapping,
            blocks,
            latent_dim: self.latent_dim,
        }
    }

    /// Builds D under `path`; `with_t`: D is conditioned on the diffusion step t.
    pub fn init_discriminator(&self, path: nn::Path, with_t: bool) -> Stylegan2Discriminator {
        let clamp = self.conv_clamp;
        let act = ConvOptions {
            bias: true,
            down: false,
            lrelu: true,
            clamp,
        };
        let down = ConvOptions { down: true, ..act };
        let resnet = self.d_architecture == DArchitecture::Resnet;
        let blocks = self
            .resolutions()
            .into_iter()
            .rev()
            .filter(|&r| r > 4)
            .map(|r| {
                let p = &path / format!("b{r}");
                let (tmp, out) = (self.ch(r), self.ch(r / 2));
                DBlock {
                    fromrgb: (r == self.image_size)
                        .then(|| EqConv2d::new(&p / "fromrgb", self.channels, tmp, 1, act)),
                    conv0: EqConv2d::new(&p / "conv0", tmp, tmp, 3, act),
                    conv1: EqConv2d::new(&p / "conv1", tmp, out, 3, down),
                    skip: resnet.then(|| {
                        let o = ConvOptions {
                            bias: false,
                            lrelu: false,
                            clamp: 0.0,
                            ..down
                        };
                        EqConv2d::new(&p / "skip", tmp, out, 1, o)
                    }),
                }
            })
            .collect();
        let c4 = self.ch(4);
        let p = &path / "b4";
        let cmap_dim = if with_t { c4 } else { 0 };
        Stylegan2Discriminator {
            blocks,
            conv: EqConv2d::new(&p / "conv", c4 + self.mbstd_channels, c4, 3, act),
            fc: EqLinear::new(&p / "fc", c4 * 16, c4, true, 1.0, 0.0),
            out: EqLinear::new(&p / "out", c4, cmap_dim.max(1), false, 1.0, 0.0),
            t_mapping: with_t.then(|| TMapping {
                embed: EqLinear::new(&path / "mapping" / "embed", 1, c4, false, 1.0, 0.0),
                layers: mapping(&(&path / "mapping"), c4, c4, self.d_mapping_layers),
            }),
            mbstd_group: self.mbstd_group,
            mbstd_channels: self.mbstd_channels,
            width: c4,
        }
    }
}

/// `n` fully connected lrelu layers fc0… (lr multiplier 0.01), `in_dim` → w_dim → … → w_dim.
fn mapping(p: &nn::Path, in_dim: i64, w_dim: i64, n: i64) -> Vec<EqLinear> {
    (0..n)
        .map(|i| {
            let d = if i == 0 { in_dim } else { w_dim };
            EqLinear::new(p / format!("fc{i}"), d, w_dim, true, 0.01, 0.0)
        })
        .collect()
}

#[derive(Debug)]
struct SynthesisBlock {
    constant: Option<Tensor>,
    conv0: Option<ModConv>,
    conv1: ModConv,
    torgb: ModConv,
}

/// StyleGAN2's generator (skip architecture).
#[derive(Debug)]
pub struct Stylegan2Generator {
    mapping: Vec<EqLinear>,
    blocks: Vec<SynthesisBlock>,
    latent_dim: i64,
}

impl Stylegan2Generator {
    /// w = mapping(z) ([n, w_dim]).
    pub fn map(&self, z: &Tensor) -> Tensor {
        self.mapping
            .iter()
            .fold(normalize_2nd_moment(z), |x, l| l.forward(&x))
    }

    /// The image of w.
    pub fn synthesize(&self, w: &Tensor) -> Tensor {
        let n = w.size()[0];
        let (mut x, mut img) = (None::<Tensor>, None::<Tensor>);
        for b in &self.blocks {
            let h = match (&b.constant, &b.conv0, &x) {
                (Some(c), _, _) => c.unsqueeze(0).repeat([n, 1, 1, 1]),
                (None, Some(conv0), Some(x)) => conv0.forward(x, w, 1.0),
                _ => unreachable!("the first block holds the constant, the others conv0"),
            };
            let h = b.conv1.forward(&h, w, 1.0);
            let y = b.torgb.forward(&h, w, 1.0);
            img = Some(match img {
                Some(i) => upsample2d(&i) + y,
                None => y,
            });
            x = Some(h);
        }
        img.expect("at least one block")
    }
}

impl Generator for Stylegan2Generator {
    fn forward(&self, z: &Tensor) -> Tensor {
        self.synthesize(&self.map(z))
    }

    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
}

#[derive(Debug)]
struct DBlock {
    fromrgb: Option<EqConv2d>,
    conv0: EqConv2d,
    conv1: EqConv2d,
    skip: Option<EqConv2d>,
}

impl DBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = match &self.fromrgb {
            Some(f) => f.forward(x, 1.0),
            None => x.shallow_clone(),
        };
        match &self.skip {
            Some(skip) => {
                let g = 0.5f64.sqrt();
                skip.forward(&x, g) + self.conv1.forward(&self.conv0.forward(&x, 1.0), g)
            }
            None => self.conv1.forward(&self.conv0.forward(&x, 1.0), 1.0),
        }
    }
}

/// D's mapping network of t: embed (1 → c) → normalize_2nd_moment → layers.
#[derive(Debug)]
struct TMapping {
    embed: EqLinear,
    layers: Vec<EqLinear>,
}

/// StyleGAN2's discriminator.
#[derive(Debug)]
pub struct Stylegan2Discriminator {
    blocks: Vec<DBlock>,
    conv: EqConv2d,
    fc: EqLinear,
    out: EqLinear,
    t_mapping: Option<TMapping>,
    mbstd_group: i64,
    mbstd_channels: i64,
    width: i64,
}

/// The largest divisor of `n` not above `g`.
fn group_size(n: i64, g: i64) -> i64 {
    (1..=g.min(n)).rev().find(|d| n % d == 0).unwrap_or(1)
}

/// `MinibatchStdLayer`: per group of samples, the standard deviation of each feature over
/// the group, averaged over the channels of each of `f` channel groups and pixels, appended
/// as `f` constant channels.
pub fn minibatch_stddev(x: &Tensor, group: i64, f: i64) -> Tensor {
    let [n, c, h, w] = x.size()[..] else {
        unreachable!("D's features are [n, c, h, w]")
    };
    let g = group_size(n, group);
    let y = x.reshape([g, -1, f, c / f, h, w]);
    let y = &y - y.mean_dim(0, true, y.kind());
    let y = (y.square().mean_dim(0, false, y.kind()) + 1e-8).sqrt();
    let y = y
        .mean_dim([2, 3, 4].as_slice(), false, y.kind())
        .reshape([-1, f, 1, 1]);
    Tensor::cat(&[x, &y.repeat([g, 1, h, w])], 1)
}

impl Discriminator for Stylegan2Discriminator {
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.score_and_features(y, t).0
    }

    fn feature_dim(&self) -> i64 {
        self.width
    }

    fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let f = self.features(y, t);
        let out = self.out.forward(&f);
        let score = match &self.t_mapping {
            Some(m) => {
                let c = t.to_kind(f.kind()).view([-1, 1]);
                let cmap = m
                    .layers
                    .iter()
                    .fold(normalize_2nd_moment(&m.embed.forward(&c)), |x, l| {
                        l.forward(&x)
                    });
                let k = cmap.size()[1] as f64;
                (out * cmap).sum_dim_intlist(1, true, f.kind()) * (1.0 / k.sqrt())
            }
            None => out,
        };
        (score, f)
    }

    fn features(&self, y: &Tensor, _t: &Tensor) -> Tensor {
        let x = self
            .blocks
            .iter()
            .fold(y.shallow_clone(), |x, b| b.forward(&x));
        let x = if self.mbstd_channels > 0 {
            minibatch_stddev(&x, self.mbstd_group, self.mbstd_channels)
        } else {
            x
        };
        self.fc.forward(&self.conv.forward(&x, 1.0).flatten(1, -1))
    }
}

#[cfg(test)]
#[path = "stylegan2_tests.rs"]
mod tests;
