//! U-GAT-IT's networks (Kim et al. 2020, "U-GAT-IT: Unsupervised Generative Attentional
//! Networks with Adaptive Layer-Instance Normalization"), layer for layer as the PyTorch
//! reference (UGATIT-pytorch `networks.py`; ../shared/specs/translation.md §2). Written anew.
//!
//! **Generator** (convolutions without bias, InstanceNorm without affine parameters):
//! ReflectionPad 3 + Conv7 + IN + ReLU; two down-samplings (ReflectionPad 1 + Conv3 s2 + IN +
//! ReLU); `n_blocks` residual blocks; the class activation map (CAM): logits of an auxiliary
//! classifier on global average and max pooled features (`gap_fc`, `gmp_fc`: C → 1, no bias),
//! whose weights re-weight the feature map (x ⊙ w_gap, x ⊙ w_gmp, concatenated, Conv1×1 2C → C
//! with bias, ReLU); the attention heat map is the channel sum. An MLP (light: on the globally
//! pooled map; full: on the flattened map) gives γ and β (C → C, no bias) shared by every
//! AdaILN of the `n_blocks` decoder residual blocks; two up-samplings (nearest ×2,
//! ReflectionPad 1, Conv3, ILN, ReLU); ReflectionPad 3 + Conv7 + Tanh.
//!
//! **Discriminator** (`n_layers` 7 global, 5 local): ReflectionPad 1 + SN Conv4 s2 (bias) +
//! LeakyReLU 0.2; n_layers − 3 more of those doubling channels; ReflectionPad 1 + SN Conv4 s1
//! doubling + LeakyReLU; a CAM with SN `gap_fc`/`gmp_fc` (no bias), Conv1×1 2C → C (bias, no
//! SN) + LeakyReLU; ReflectionPad 1 + SN Conv4 s1 → 1 (no bias). Returns the patch logits, the
//! CAM logits and the heat map.
//!
//! Choices where the references differ (recorded in ../shared/specs/translation.md):
//! init N(0, 0.02) for every convolution and linear layer (TensorFlow; the PyTorch code keeps
//! PyTorch's defaults — recommendation 5); D's CAM re-weights the features with the
//! *normalised* weight, the one its logit uses (PyTorch's `parameters()[0]` is the raw
//! `weight_orig` — recommendation 6).
//!
//! With Diffusion-GAN, D(y, t) adds a learned timestep embedding per channel after its first
//! convolution (as [`crate::models::patchgan`]).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, Module};
use tch::{Kind, Tensor};

use super::unet::N002;
use crate::error::{GanError, Result};
use crate::nn::norm::{instance_norm, AdaIln, Iln};
use crate::nn::{LeakyRelu, SnConv2d, SnLinear, TimestepEmbedding, TimestepEmbeddingConfig};

/// Shape of the U-GAT-IT generator (reference: ngf 64, 4 residual blocks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UgatitGeneratorConfig {
    /// Filters of the first layer (reference `--ch`: 64).
    pub ngf: i64,
    /// Residual blocks in the encoder and in the decoder each (reference `--n_res`: 4).
    pub n_blocks: i64,
    /// The light variant: the γ/β MLP reads the globally pooled map instead of the flattened
    /// one (reference `--light`; the full MLP has (size/4)²·4ngf·4ngf weights in its first
    /// layer: 268M at 256 px).
    pub light: bool,
}

impl Default for UgatitGeneratorConfig {
    fn default() -> Self {
        Self {
            ngf: 64,
            n_blocks: 4,
            light: true,
        }
    }
}

impl UgatitGeneratorConfig {
    /// Checks every field for images of side `image_size`.
    pub fn validate(&self, prefix: &str, image_size: i64) -> Result<()> {
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
        let fc_in = (image_size / 4).pow(2) * 4 * self.ngf;
        if !self.light && fc_in * 4 * self.ngf > 300_000_000 {
            return Err(GanError::config(
                format!("{prefix}.light"),
                format!(
                    "the full MLP would have {} weights in its first layer at {image_size} px; use light = true or a smaller ngf",
                    fc_in * 4 * self.ngf
                ),
            ));
        }
        Ok(())
    }

    /// Builds the generator under `path` for `c_in` → `c_out` channels at `image_size`.
    pub fn init(&self, path: nn::Path, c_in: i64, c_out: i64, image_size: i64) -> UgatitGenerator {
        let ngf = self.ngf;
        let c = 4 * ngf;
        let conv = |p: nn::Path, i, o, k, stride, bias| {
            nn::conv2d(
                p,
                i,
                o,
                k,
                nn::ConvConfig {
                    stride,
                    bias,
                    ws_init: N002,
                    bs_init: Init::Const(0.0),
                    ..Default::default()
                },
            )
        };
        let lin = |p: nn::Path, i, o| nn::linear(p, i, o, linear_cfg(false));
        let blocks = |name: &str| -> Vec<(nn::Conv2D, nn::Conv2D)> {
            (0..self.n_blocks)
                .map(|i| {
                    let p = &path / format!("{name}{i}");
                    (
                        conv(&p / "conv0", c, c, 3, 1, false),
                        conv(&p / "conv1", c, c, 3, 1, false),
                    )
                })
                .collect()
        };
        let fc_in = if self.light {
            c
        } else {
            (image_size / 4).pow(2) * c
        };
        UgatitGenerator {
            stem: conv(&path / "stem", c_in, ngf, 7, 1, false),
            down: (0..2)
                .map(|i| {
                    let m = 1 << i;
                    conv(
                        &path / format!("down{i}"),
                        ngf * m,
                        ngf * m * 2,
                        3,
                        2,
                        false,
                    )
                })
                .collect(),
            enc: blocks("enc"),
            gap_fc: lin(&path / "gap_fc", c, 1),
            gmp_fc: lin(&path / "gmp_fc", c, 1),
            conv1x1: conv(&path / "conv1x1", 2 * c, c, 1, 1, true),
            fc: [lin(&path / "fc0", fc_in, c), lin(&path / "fc1", c, c)],
            gamma: lin(&path / "gamma", c, c),
            beta: lin(&path / "beta", c, c),
            dec: blocks("dec")
                .into_iter()
                .enumerate()
                .map(|(i, (c0, c1))| {
                    let p = &path / format!("dec{i}");
                    (
                        c0,
                        AdaIln::new(&p / "norm0", c),
                        c1,
                        AdaIln::new(&p / "norm1", c),
                    )
                })
                .collect(),
            up: (0..2)
                .map(|i| {
                    let m = 4 >> i;
                    let p = &path / format!("up{i}");
                    (
                        conv(&p / "conv", ngf * m, ngf * m / 2, 3, 1, false),
                        Iln::new(&p / "norm", ngf * m / 2),
                    )
                })
                .collect(),
            out: conv(&path / "out", ngf, c_out, 7, 1, false),
            light: self.light,
        }
    }
}

/// N(0, 0.02) linear layers (see module docs), with or without a zero bias.
fn linear_cfg(bias: bool) -> nn::LinearConfig {
    nn::LinearConfig {
        ws_init: N002,
        bs_init: bias.then_some(Init::Const(0.0)),
        bias,
    }
}

fn pad(x: &Tensor, p: i64) -> Tensor {
    x.reflection_pad2d([p, p, p, p])
}

/// What a U-GAT-IT network returns: the image (G) or patch logits (D), the CAM logits
/// [n, 2] (GAP, GMP) and the attention heat map [n, 1, h, w].
#[derive(Debug)]
pub struct CamOutput {
    /// G: the translated image; D: the patch logits.
    pub out: Tensor,
    /// The auxiliary classifier's logits [n, 2].
    pub cam_logit: Tensor,
    /// Σ over channels of the re-weighted feature map.
    pub heatmap: Tensor,
}

/// Re-weights `x` [n, C, h, w] by the CAM weights `w_gap`, `w_gmp` [1, C] and concatenates:
/// [x ⊙ w_gap, x ⊙ w_gmp].
fn cam_weighting(x: &Tensor, w_gap: &Tensor, w_gmp: &Tensor) -> Tensor {
    let w = |w: &Tensor| w.view([1, -1, 1, 1]);
    Tensor::cat(&[x * w(w_gap), x * w(w_gmp)], 1)
}

/// The pooled features (GAP, GMP) of `x` [n, C, h, w], each [n, C].
fn pools(x: &Tensor) -> (Tensor, Tensor) {
    (
        x.mean_dim(&[2i64, 3][..], false, Kind::Float),
        x.amax(&[2i64, 3][..], false),
    )
}

/// The U-GAT-IT generator (see module docs).
#[derive(Debug)]
pub struct UgatitGenerator {
    stem: nn::Conv2D,
    down: Vec<nn::Conv2D>,
    enc: Vec<(nn::Conv2D, nn::Conv2D)>,
    gap_fc: nn::Linear,
    gmp_fc: nn::Linear,
    conv1x1: nn::Conv2D,
    fc: [nn::Linear; 2],
    gamma: nn::Linear,
    beta: nn::Linear,
    dec: Vec<(nn::Conv2D, AdaIln, nn::Conv2D, AdaIln)>,
    up: Vec<(nn::Conv2D, Iln)>,
    out: nn::Conv2D,
    light: bool,
}

impl UgatitGenerator {
    /// Translates `x` [n, c_in, H, W] (H, W multiples of 4).
    pub fn forward(&self, x: &Tensor) -> CamOutput {
        let in_relu = |h: Tensor| instance_norm(&h).relu();
        let mut h = in_relu(self.stem.forward(&pad(x, 3)));
        for d in &self.down {
            h = in_relu(d.forward(&pad(&h, 1)));
        }
        for (c0, c1) in &self.enc {
            let r = in_relu(c0.forward(&pad(&h, 1)));
            h = &h + instance_norm(&c1.forward(&pad(&r, 1)));
        }
        let (gap, gmp) = pools(&h);
        let cam_logit = Tensor::cat(&[self.gap_fc.forward(&gap), self.gmp_fc.forward(&gmp)], 1);
        let h = self
            .conv1x1
            .forward(&cam_weighting(&h, &self.gap_fc.ws, &self.gmp_fc.ws))
            .relu();
        let heatmap = h.sum_dim_intlist(1, true, Kind::Float);
        let code = if self.light {
            h.mean_dim(&[2i64, 3][..], false, Kind::Float)
        } else {
            h.flatten(1, -1)
        };
        let code = self.fc[1].forward(&self.fc[0].forward(&code).relu()).relu();
        let (gamma, beta) = (self.gamma.forward(&code), self.beta.forward(&code));
        let mut h = h;
        for (c0, n0, c1, n1) in &self.dec {
            let r = n0.forward(&c0.forward(&pad(&h, 1)), &gamma, &beta).relu();
            h = &h + n1.forward(&c1.forward(&pad(&r, 1)), &gamma, &beta);
        }
        for (conv, norm) in &self.up {
            let (hh, ww) = (h.size()[2], h.size()[3]);
            let u = h.upsample_nearest2d([2 * hh, 2 * ww], 2.0, 2.0);
            h = norm.forward(&conv.forward(&pad(&u, 1))).relu();
        }
        CamOutput {
            out: self.out.forward(&pad(&h, 3)).tanh(),
            cam_logit,
            heatmap,
        }
    }
}

/// Shape of the U-GAT-IT discriminators. The reference's depths, global 7 layers (receptive
/// field 286 px) and local 5 (70 px), are for 256 px images and leave no map at 64 px; the
/// defaults here are their 64 px counterparts: global 6 (142 px, the whole image) and local 4
/// (34 px, about the same share of the image as 70 of 256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UgatitDiscriminatorConfig {
    /// Filters of the first layer (reference: 64).
    pub ndf: i64,
    /// Layers of the global D (default 6 for 64 px; reference at 256 px: 7).
    pub global_layers: i64,
    /// Layers of the local D (default 4 for 64 px; reference at 256 px: 5).
    pub local_layers: i64,
    /// Timestep embedding (used with Diffusion-GAN only).
    pub t_embedding: TimestepEmbeddingConfig,
}

impl Default for UgatitDiscriminatorConfig {
    fn default() -> Self {
        Self {
            ndf: 64,
            global_layers: 6,
            local_layers: 4,
            t_embedding: Default::default(),
        }
    }
}

impl UgatitDiscriminatorConfig {
    /// Checks every field for images of side `image_size`: the map before the last two
    /// stride-1 convolutions must be at least 3×3.
    pub fn validate(&self, prefix: &str, image_size: i64) -> Result<()> {
        if !(1..=512).contains(&self.ndf) {
            return Err(GanError::config(
                format!("{prefix}.ndf"),
                format!("must be in [1, 512], got {}", self.ndf),
            ));
        }
        for (f, n) in [
            ("global_layers", self.global_layers),
            ("local_layers", self.local_layers),
        ] {
            let halvings = n - 2;
            if !(3..=9).contains(&n) || (image_size >> halvings) < 3 {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!(
                        "must be in [3, 9] and leave a map of at least 3×3 after its n − 2 stride-2 layers at {image_size} px, got {n}"
                    ),
                ));
            }
        }
        self.t_embedding.validate(&format!("{prefix}.t_embedding"))
    }

    /// Builds a discriminator of `n_layers` under `path` for `c_in` channels; `with_t`:
    /// D(y, t).
    pub fn init(
        &self,
        path: nn::Path,
        c_in: i64,
        n_layers: i64,
        with_t: bool,
    ) -> UgatitDiscriminator {
        let ndf = self.ndf;
        let sn_conv = |p: nn::Path, i, o, stride, bias| {
            SnConv2d::new(
                p,
                i,
                o,
                4,
                nn::ConvConfig {
                    stride,
                    bias,
                    ws_init: N002,
                    bs_init: Init::Const(0.0),
                    ..Default::default()
                },
            )
        };
        let mut convs = vec![sn_conv(&path / "conv0", c_in, ndf, 2, true)];
        for i in 1..n_layers - 2 {
            let m = 1 << (i - 1);
            convs.push(sn_conv(
                &path / format!("conv{i}"),
                ndf * m,
                ndf * m * 2,
                2,
                true,
            ));
        }
        let m = 1 << (n_layers - 3);
        let c = ndf * m * 2;
        convs.push(sn_conv(
            &path / format!("conv{}", n_layers - 2),
            ndf * m,
            c,
            1,
            true,
        ));
        let sn_lin = |p: nn::Path| SnLinear::new(p, c, 1, linear_cfg(false));
        UgatitDiscriminator {
            convs,
            gap_fc: sn_lin(&path / "gap_fc"),
            gmp_fc: sn_lin(&path / "gmp_fc"),
            conv1x1: nn::conv2d(
                &path / "conv1x1",
                2 * c,
                c,
                1,
                nn::ConvConfig {
                    ws_init: N002,
                    bs_init: Init::Const(0.0),
                    ..Default::default()
                },
            ),
            out: sn_conv(&path / "out", c, 1, 1, false),
            t_embed: with_t.then(|| self.t_embedding.init(&path / "t_embed", ndf)),
            act: LeakyRelu::new(0.2),
        }
    }
}

/// A U-GAT-IT discriminator (see module docs).
#[derive(Debug)]
pub struct UgatitDiscriminator {
    convs: Vec<SnConv2d>,
    gap_fc: SnLinear,
    gmp_fc: SnLinear,
    conv1x1: nn::Conv2D,
    out: SnConv2d,
    t_embed: Option<TimestepEmbedding>,
    act: LeakyRelu,
}

impl UgatitDiscriminator {
    /// Scores `y` [n, c_in, H, W] at diffusion steps `t` [n] (ignored without the embedding).
    pub fn forward(&self, y: &Tensor, t: &Tensor) -> CamOutput {
        let mut h = self.convs[0].forward(&pad(y, 1));
        if let Some(e) = &self.t_embed {
            h = &h + e.forward(t).unsqueeze(-1).unsqueeze(-1);
        }
        h = self.act.forward(&h);
        for conv in &self.convs[1..] {
            h = self.act.forward(&conv.forward(&pad(&h, 1)));
        }
        let (gap, gmp) = pools(&h);
        let (w_gap, w_gmp) = (self.gap_fc.weight(), self.gmp_fc.weight());
        let cam_logit = Tensor::cat(
            &[
                self.gap_fc.forward_with(&gap, &w_gap),
                self.gmp_fc.forward_with(&gmp, &w_gmp),
            ],
            1,
        );
        let h = self
            .act
            .forward(&self.conv1x1.forward(&cam_weighting(&h, &w_gap, &w_gmp)));
        let heatmap = h.sum_dim_intlist(1, true, Kind::Float);
        CamOutput {
            out: self.out.forward(&pad(&h, 1)),
            cam_logit,
            heatmap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Output shapes at 64 px: G keeps the size, CAM logits [n, 2], heat map at a quarter
    /// side; D's patch maps follow s/2^(n−2) − 2 (closed form of the layer arithmetic: 64 px
    /// with 5 layers → 6², with 4 → 14²); too deep a D names the field.
    #[test]
    fn shapes() {
        let _rng = crate::test_rng_lock();
        let vs = nn::VarStore::new(Device::Cpu);
        for light in [true, false] {
            let g = UgatitGeneratorConfig {
                ngf: 4,
                n_blocks: 2,
                light,
            }
            .init(vs.root() / format!("g{light}"), 3, 3, 32);
            let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
            let o = g.forward(&x);
            assert_eq!(o.out.size(), vec![2, 3, 32, 32]);
            assert_eq!(o.cam_logit.size(), vec![2, 2]);
            assert_eq!(o.heatmap.size(), vec![2, 1, 8, 8]);
        }
        let cfg = UgatitDiscriminatorConfig {
            ndf: 4,
            ..Default::default()
        };
        let t = Tensor::zeros([2], (Kind::Int64, Device::Cpu));
        let y = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        for (n, side) in [(5, 6), (4, 14)] {
            let d = cfg.init(vs.root() / format!("d{n}"), 3, n, true);
            let o = d.forward(&y, &t);
            assert_eq!(o.out.size(), vec![2, 1, side, side], "{n} layers");
            assert_eq!(o.cam_logit.size(), vec![2, 2]);
        }
        cfg.validate("ugatit.discriminator", 64).unwrap();
        let e = UgatitDiscriminatorConfig {
            global_layers: 7,
            ..cfg
        }
        .validate("ugatit.discriminator", 64)
        .unwrap_err();
        assert!(
            e.to_string().contains("ugatit.discriminator.global_layers"),
            "{e}"
        );
    }
}
