//! SNGAN's ResNet generator and discriminator (Miyato et al. 2018, the CIFAR-10 architecture
//! of its Table 4 / Diffusion-GAN's Table 8 SNGAN rows), for 28, 32 and 64 px:
//!
//! - G: z → Linear → [ch, s0, s0] → n_up × GBlock(up) → BN → ReLU → Conv3×3 → tanh, with
//!   GBlock(x) = Conv3×3(ReLU(BN(Conv3×3(Up(ReLU(BN(x))))))) + Conv1×1(Up(x)), nearest 2× up.
//! - D (every conv and linear spectrally normalised): OptimizedBlock (Conv3×3 → ReLU →
//!   Conv3×3 → AvgPool2, shortcut AvgPool2 → Conv1×1), (n_up − 2) more down blocks, two
//!   plain blocks, ReLU, global sum pooling, Linear → 1. DBlock(x) = Conv3×3(ReLU(Conv3×3(
//!   ReLU(x)))) [→ AvgPool2] + shortcut (Conv1×1 [→ AvgPool2] when it downsamples).
//!
//! s0 = 7 for 28 px (2 up-blocks), 4 for 32 px (3) and 64 px (4).
//!
//! For Diffusion-GAN, D(y, t) = ψ(φ(y)) + ⟨e(t), φ(y)⟩: t enters at the output by
//! projection, as SNGAN's own conditional D takes its class (Miyato & Koyama 2018) and as
//! Diffusion-StyleGAN2 takes t (its D maps t through a mapping network to a code that the
//! epilogue projects the features onto, StyleGAN2-ADA's `DiscriminatorEpilogue` with
//! `cmap_dim` > 0). e is the spectrally normalised embedding of `crate::nn::timestep`, so
//! D stays 1-Lipschitz in t's code per unit of ‖φ(y)‖. Until 2026-12-07 e(t) was added
//! to the first block's output, unnormalised, as in DCGAN: it grew to ‖e(t) − e(0)‖ ≈ 5
//! at t ≤ 5, as large as the image features, and D's score followed t (r_d ≈ 0, T stuck
//! at T_min; docs/DIFFUSION-GAN.md).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::{Discriminator, Generator};
use crate::error::{GanError, Result};
use crate::nn::{
    sn_conv2d, sn_linear, SnConv2d, SnLinear, TimestepEmbedding, TimestepEmbeddingConfig,
};

/// `[model.sngan]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnganConfig {
    /// Image side: 28, 32 or 64.
    pub image_size: i64,
    /// 1 (grey) or 3 (RGB).
    pub channels: i64,
    /// Dimension of z (Miyato: 128).
    pub latent_dim: i64,
    /// G's channels (Miyato: 256).
    pub g_width: i64,
    /// D's channels (Miyato: 128).
    pub d_width: i64,
    /// The timestep embedding of D(y, t) (Diffusion-GAN).
    pub t_embedding: TimestepEmbeddingConfig,
}

impl Default for SnganConfig {
    fn default() -> Self {
        Self {
            image_size: 32,
            channels: 3,
            latent_dim: 128,
            g_width: 256,
            d_width: 128,
            t_embedding: Default::default(),
        }
    }
}

impl SnganConfig {
    /// (s0, number of up-blocks).
    fn plan(&self) -> (i64, i64) {
        let (s0, n) = super::image_plan(self.image_size);
        (s0, i64::from(n))
    }

    /// Checks every field; `prefix` names the section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        super::validate_image(prefix, self.image_size, self.channels)?;
        for (f, v) in [
            ("latent_dim", self.latent_dim),
            ("g_width", self.g_width),
            ("d_width", self.d_width),
        ] {
            if !(1..=4096).contains(&v) {
                return err(f, format!("must be in [1, 4096], got {v}"));
            }
        }
        self.t_embedding.validate(&format!("{prefix}.t_embedding"))
    }

    /// Builds G under `path`.
    pub fn init_generator(&self, path: nn::Path) -> SnganGenerator {
        let (s0, n_up) = self.plan();
        let c = self.g_width;
        let conv = |p: nn::Path, cin, cout, k, pad| {
            nn::conv2d(
                p,
                cin,
                cout,
                k,
                nn::ConvConfig {
                    padding: pad,
                    ..Default::default()
                },
            )
        };
        let blocks = (0..n_up)
            .map(|i| {
                let p = &path / format!("block{i}");
                GBlock {
                    bn1: nn::batch_norm2d(&p / "bn1", c, Default::default()),
                    conv1: conv(&p / "conv1", c, c, 3, 1),
                    bn2: nn::batch_norm2d(&p / "bn2", c, Default::default()),
                    conv2: conv(&p / "conv2", c, c, 3, 1),
                    shortcut: conv(&p / "shortcut", c, c, 1, 0),
                }
            })
            .collect();
        SnganGenerator {
            input: nn::linear(
                &path / "input",
                self.latent_dim,
                c * s0 * s0,
                Default::default(),
            ),
            blocks,
            bn: nn::batch_norm2d(&path / "bn", c, Default::default()),
            out: conv(&path / "out", c, self.channels, 3, 1),
            s0,
            width: c,
            latent_dim: self.latent_dim,
        }
    }

    /// Builds D under `path`; `with_t` as for the other families.
    pub fn init_discriminator(&self, path: nn::Path, with_t: bool) -> SnganDiscriminator {
        let (_, n_up) = self.plan();
        let c = self.d_width;
        let block = |p: nn::Path, cin: i64, down: bool, optimized: bool| DBlock {
            conv1: sn_conv2d(&p / "conv1", cin, c, 3, 1),
            conv2: sn_conv2d(&p / "conv2", c, c, 3, 1),
            shortcut: (down || cin != c).then(|| sn_conv2d(&p / "shortcut", cin, c, 1, 0)),
            down,
            optimized,
        };
        let mut blocks = vec![block(&path / "block0", self.channels, true, true)];
        for i in 1..(n_up - 1) {
            blocks.push(block(&path / format!("block{i}"), c, true, false));
        }
        for i in 0..2 {
            blocks.push(block(&path / format!("plain{i}"), c, false, false));
        }
        SnganDiscriminator {
            blocks,
            width: c,
            out: sn_linear(&path / "out", c, 1),
            t_embed: with_t.then(|| self.t_embedding.init_sn(&path / "t_embed", c)),
        }
    }
}

#[derive(Debug)]
struct GBlock {
    bn1: nn::BatchNorm,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
    shortcut: nn::Conv2D,
}

fn up2(x: &Tensor) -> Tensor {
    let s = x.size();
    x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None)
}

impl GBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = up2(&self.bn1.forward_t(x, true).relu());
        let h = self.conv1.forward(&h);
        let h = self.conv2.forward(&self.bn2.forward_t(&h, true).relu());
        h + self.shortcut.forward(&up2(x))
    }
}

/// SNGAN ResNet generator.
#[derive(Debug)]
pub struct SnganGenerator {
    input: nn::Linear,
    blocks: Vec<GBlock>,
    bn: nn::BatchNorm,
    out: nn::Conv2D,
    s0: i64,
    width: i64,
    latent_dim: i64,
}

impl Generator for SnganGenerator {
    fn forward(&self, z: &Tensor) -> Tensor {
        let n = z.size()[0];
        let h = self
            .input
            .forward(z)
            .view([n, self.width, self.s0, self.s0]);
        let h = self.blocks.iter().fold(h, |h, b| b.forward(&h));
        self.out.forward(&self.bn.forward_t(&h, true).relu()).tanh()
    }

    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
}

#[derive(Debug)]
struct DBlock {
    conv1: SnConv2d,
    conv2: SnConv2d,
    shortcut: Option<SnConv2d>,
    down: bool,
    optimized: bool,
}

fn pool(x: &Tensor) -> Tensor {
    x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
}

impl DBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        let pre = if self.optimized {
            x.shallow_clone()
        } else {
            x.relu()
        };
        let mut h = self.conv2.forward(&self.conv1.forward(&pre).relu());
        if self.down {
            h = pool(&h);
        }
        let s = match (&self.shortcut, self.optimized) {
            // The optimized block pools first, then projects (Miyato's order).
            (Some(c), true) => c.forward(&pool(x)),
            (Some(c), false) => {
                let s = c.forward(x);
                if self.down {
                    pool(&s)
                } else {
                    s
                }
            }
            (None, _) => x.shallow_clone(),
        };
        h + s
    }
}

/// SNGAN ResNet discriminator (spectrally normalised; raw score per image).
#[derive(Debug)]
pub struct SnganDiscriminator {
    blocks: Vec<DBlock>,
    width: i64,
    out: SnLinear,
    t_embed: Option<TimestepEmbedding>,
}

impl SnganDiscriminator {
    /// ψ(f) + ⟨e(t), f⟩ for features `f` (ψ(f) alone without the embedding).
    fn score(&self, f: &Tensor, t: &Tensor) -> Tensor {
        let s = self.out.forward(f);
        match &self.t_embed {
            Some(e) => s + (e.forward(t) * f).sum_dim_intlist(1, true, f.kind()),
            None => s,
        }
    }
}

impl Discriminator for SnganDiscriminator {
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.score(&self.features(y, t), t)
    }

    fn feature_dim(&self) -> i64 {
        self.width
    }

    fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let f = self.features(y, t);
        (self.score(&f, t), f)
    }

    /// φ(y): the image path, which does not see t (it enters at the output).
    fn features(&self, y: &Tensor, _t: &Tensor) -> Tensor {
        let h = self
            .blocks
            .iter()
            .fold(y.shallow_clone(), |h, b| b.forward(&h));
        h.relu().sum_dim_intlist([2, 3].as_slice(), false, h.kind())
    }

    fn batch_independent(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Every size gives images of that size in [-1, 1] and one score per image; D depends on
    /// t only when built with it; D has no batch statistics (a sample's score does not
    /// change with its batch); every D weight, the t embedding's included, is spectrally
    /// normalised (one u per weight).
    #[test]
    fn shapes_t_and_batch_independence() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        for (size, ch) in [(28, 1), (32, 3), (64, 3)] {
            let cfg = SnganConfig {
                image_size: size,
                channels: ch,
                latent_dim: 16,
                g_width: 8,
                d_width: 8,
                ..Default::default()
            };
            cfg.validate("model.sngan").unwrap();
            let vs = nn::VarStore::new(Device::Cpu);
            let g = cfg.init_generator(vs.root() / "g");
            let d = cfg.init_discriminator(vs.root() / "d", true);
            let x = g.forward(&Tensor::randn([4, 16], (Kind::Float, Device::Cpu)));
            assert_eq!(x.size(), vec![4, ch, size, size]);
            assert!(x.abs().max().double_value(&[]) <= 1.0);
            let t0 = Tensor::zeros([4], (Kind::Int64, Device::Cpu));
            let t1 = Tensor::full([4], 200, (Kind::Int64, Device::Cpu));
            // Let the power iterations settle so that successive calls use the same weights.
            for _ in 0..100 {
                let _ = d.forward(&x, &t0);
            }
            let s0 = d.forward(&x, &t0);
            assert_eq!(s0.size(), vec![4, 1]);
            assert!(!s0.equal(&d.forward(&x, &t1)), "{size}: D must depend on t");
            let one = d.forward(&x.narrow(0, 0, 1), &t0.narrow(0, 0, 1));
            let diff = (one - s0.narrow(0, 0, 1)).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{size}: batch-dependent score ({diff})");
            let d_vars = vs.variables();
            let n_u = d_vars
                .keys()
                .filter(|k| k.starts_with("d.") && k.ends_with("sn_u"))
                .count();
            let n_w = d_vars
                .keys()
                .filter(|k| k.starts_with("d.") && k.ends_with("weight"))
                .count();
            assert_eq!(n_u, n_w, "{size}: one u per D weight");
        }
        let e = SnganConfig {
            d_width: 0,
            ..Default::default()
        }
        .validate("model.sngan")
        .unwrap_err();
        assert!(e.to_string().contains("model.sngan.d_width"), "{e}");
    }

    /// t moves D's score no more than ‖code(t) − code(t')‖ · ‖φ(y)‖ (closed form: the score's
    /// t term is ⟨e(t), φ(y)⟩ with a 1-Lipschitz e), even with the embedding's weights ×100
    /// (what training did to the old, added-inside embedding); tolerance 1e-3 relative for
    /// the power-iteration estimate of σ. The image path φ must not see t: with t added
    /// inside it (the old design) φ itself carries the ×100 embedding and the bound means
    /// nothing, so that is asserted first.
    #[test]
    fn t_moves_the_score_within_its_bound() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(1);
        let cfg = SnganConfig {
            image_size: 28,
            channels: 1,
            d_width: 8,
            ..Default::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let d = cfg.init_discriminator(vs.root() / "d", true);
        crate::nn::timestep::scale_weights(&vs, |name| name.contains("t_embed"), 100.0);
        let y = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let steps = [0i64, 1, 3, 5, 200];
        let at = |s: i64| Tensor::full([3], s, (Kind::Int64, Device::Cpu));
        for _ in 0..200 {
            for s in steps {
                let _ = d.forward(&y, &at(s));
            }
        }
        let f = d.features(&y, &at(0));
        let scale = f.abs().max().double_value(&[]);
        for s in &steps[1..] {
            // Not bit-equal: every call advances σ's power iteration (settled above).
            let moved = (&f - d.features(&y, &at(*s))).abs().max().double_value(&[]);
            assert!(
                moved <= 1e-4 * scale,
                "t = {s} reached the image path ({moved})"
            );
        }
        let f_norm = f.norm_scalaropt_dim(2, [1].as_slice(), false);
        let code_dim = cfg.t_embedding.code_dim;
        for s in &steps[1..] {
            let moved = (d.forward(&y, &at(*s)) - d.forward(&y, &at(0)))
                .abs()
                .squeeze_dim(1);
            let dc = (crate::nn::sinusoidal_embedding(&at(*s), code_dim)
                - crate::nn::sinusoidal_embedding(&at(0), code_dim))
            .norm_scalaropt_dim(2, [1].as_slice(), false);
            let ratio = (moved / (dc * &f_norm)).max().double_value(&[]);
            assert!(ratio <= 1.0 + 1e-3, "t = {s}: D moved {ratio} × its bound");
        }
    }
}
