//! StackGAN's networks (Zhang et al., ICCV 2017; gan-lecture.txt "StackGAN"), layer for
//! layer as the official code (hanzhanggit/StackGAN-Pytorch `code/model.py`) at any output
//! side, on a frozen text embedding (parameter counts at the official settings equal those of
//! tests/fixtures/stackgan_reference.py, a PyTorch restatement of `model.py`):
//!
//! - **Conditioning augmentation** [`CaNet`]: fc(φ_t) → ReLU → (μ, log σ²) halves (as the
//!   official `CA_NET`, ReLU included), c = μ + σ ⊙ ε, ε ~ N(0, I); its regulariser
//!   [`kl_loss`] = KL(N(μ, σ²) ‖ N(0, I)) averaged over batch and dimensions (`KL_loss`).
//! - **Stage-I G**: [z ‖ c] → linear (no bias) to 4 × 4 × ngf + BatchNorm1d + ReLU →
//!   up-blocks (nearest ×2, conv 3×3 without bias, BatchNorm, ReLU) halving the width up to
//!   the output side → conv 3×3 to RGB → tanh. No noise vector in Stage-II.
//! - **Stage-II G**: the Stage-I image → encoder (conv 3×3 to ngf + ReLU, two conv 4×4/2 with
//!   BatchNorm + ReLU, to 4·ngf at a quarter of the side) → joint with c replicated
//!   spatially (conv 3×3 + BatchNorm + ReLU) → `res_blocks` residual blocks → up-blocks from
//!   4·ngf to the output side → conv 3×3 → tanh.
//! - **D** (both stages): conv 4×4/2 without bias down to 4 × 4, widths ndf·2^i
//!   (BatchNorm + LeakyReLU 0.2 after all but the first), then conv 3×3 + BatchNorm +
//!   LeakyReLU halving back to 8·ndf (the official Stage-II D at 256 px: 32 → 16 → 8);
//!   conditional logits: [h ‖ μ replicated to 4 × 4] → conv 3×3 (8·ndf) + BatchNorm +
//!   LeakyReLU → conv 4×4 stride 4 → one logit; Stage-II also has unconditional logits (conv
//!   4×4 stride 4 on h). We return logits and apply BCE with logits (the official code
//!   ends in a sigmoid and applies BCE: the same loss).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use crate::error::{GanError, Result};
use crate::nn::LeakyRelu;

/// `[stackgan.net]` (official defaults: z 100, c 128, Stage-I ngf = GF_DIM·8 = 1,024,
/// Stage-II ngf = GF_DIM = 128, ndf = DF_DIM = 64, R_NUM = 4 residual blocks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackNetConfig {
    /// Noise dimension (Stage-I only).
    pub z_dim: i64,
    /// Dimension of the augmented condition c.
    pub c_dim: i64,
    /// Stage-I G's width at 4 × 4 (official 1,024); Stage-II G's base width (official 128).
    pub ngf: i64,
    /// D's first width.
    pub ndf: i64,
    /// Residual blocks of Stage-II G.
    pub res_blocks: i64,
}

impl Default for StackNetConfig {
    fn default() -> Self {
        Self {
            z_dim: 100,
            c_dim: 128,
            ngf: 1024,
            ndf: 64,
            res_blocks: 4,
        }
    }
}

impl StackNetConfig {
    /// Checks every field; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (f, v, lo, hi) in [
            ("z_dim", self.z_dim, 1, 1024),
            ("c_dim", self.c_dim, 1, 1024),
            ("ngf", self.ngf, 2, 4096),
            ("ndf", self.ndf, 1, 1024),
            ("res_blocks", self.res_blocks, 0, 16),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [{lo}, {hi}], got {v}"),
                ));
            }
        }
        Ok(())
    }
}

fn conv3(p: nn::Path, cin: i64, cout: i64) -> nn::Conv2D {
    let c = nn::ConvConfig {
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, 3, c)
}

fn conv4s2(p: nn::Path, cin: i64, cout: i64) -> nn::Conv2D {
    let c = nn::ConvConfig {
        stride: 2,
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, 4, c)
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, Default::default())
}

/// Conditioning augmentation (module docs).
#[derive(Debug)]
pub struct CaNet {
    fc: nn::Linear,
    c_dim: i64,
}

impl CaNet {
    /// `dim`-d embeddings → `c_dim` conditions under `p`.
    pub fn new(p: nn::Path, dim: i64, c_dim: i64) -> Self {
        Self {
            fc: nn::linear(p / "fc", dim, 2 * c_dim, Default::default()),
            c_dim,
        }
    }

    /// (c, μ, log σ²) of embeddings [n, dim]; ε from libtorch's generator.
    pub fn forward(&self, h: &Tensor) -> (Tensor, Tensor, Tensor) {
        let x = self.fc.forward(h).relu();
        let (mu, logvar) = (
            x.narrow(1, 0, self.c_dim),
            x.narrow(1, self.c_dim, self.c_dim),
        );
        let c =
            &mu + (&logvar * 0.5).exp() * crate::dist::randn(&mu.size(), (mu.kind(), mu.device()));
        (c, mu, logvar)
    }
}

/// KL(N(μ, σ²) ‖ N(0, I)) as the official `KL_loss`: −½ · mean(1 + log σ² − μ² − σ²).
pub fn kl_loss(mu: &Tensor, logvar: &Tensor) -> Tensor {
    (logvar + 1.0 - mu.square() - logvar.exp()).mean(Kind::Float) * -0.5
}

/// Nearest ×2, conv 3×3, BatchNorm, ReLU.
#[derive(Debug)]
struct UpBlock(nn::Conv2D, nn::BatchNorm);

impl UpBlock {
    fn new(p: nn::Path, cin: i64, cout: i64) -> Self {
        Self(conv3(&p / "conv", cin, cout), bn(&p / "bn", cout))
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let s = x.size();
        let up = x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None);
        self.1.forward_t(&self.0.forward(&up), train).relu()
    }
}

/// Up-blocks from `c` channels at `from` px to `to` px, halving the width; and the last width.
fn up_stack(p: &nn::Path, mut c: i64, from: i64, to: i64) -> (Vec<UpBlock>, i64) {
    let mut ups = Vec::new();
    let mut s = from;
    while s < to {
        ups.push(UpBlock::new(p / format!("up{}", ups.len()), c, c / 2));
        c /= 2;
        s *= 2;
    }
    (ups, c)
}

/// Stage-I generator (module docs).
#[derive(Debug)]
pub struct Stage1Generator {
    ca: CaNet,
    fc: nn::Linear,
    bn: nn::BatchNorm,
    ups: Vec<UpBlock>,
    img: nn::Conv2D,
    ngf: i64,
}

impl Stage1Generator {
    /// G for `dim`-d embeddings and `size`-px images under `p`.
    pub fn new(p: nn::Path, cfg: &StackNetConfig, dim: i64, size: i64) -> Self {
        let ngf = cfg.ngf;
        let (ups, last) = up_stack(&p, ngf, 4, size);
        let nobias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        Self {
            ca: CaNet::new(&p / "ca", dim, cfg.c_dim),
            fc: nn::linear(&p / "fc", cfg.z_dim + cfg.c_dim, ngf * 16, nobias),
            bn: nn::batch_norm1d(&p / "fc_bn", ngf * 16, Default::default()),
            ups,
            img: conv3(&p / "img", last, 3),
            ngf,
        }
    }

    /// (image, μ, log σ²) for embeddings `h` and noise `z`.
    pub fn forward_t(&self, h: &Tensor, z: &Tensor, train: bool) -> (Tensor, Tensor, Tensor) {
        let (c, mu, logvar) = self.ca.forward(h);
        let x = self
            .bn
            .forward_t(&self.fc.forward(&Tensor::cat(&[z, &c], 1)), train)
            .relu();
        let mut x = x.view([-1, self.ngf, 4, 4]);
        for u in &self.ups {
            x = u.forward_t(&x, train);
        }
        (self.img.forward(&x).tanh(), mu, logvar)
    }
}

/// Stage-II generator (module docs).
#[derive(Debug)]
pub struct Stage2Generator {
    ca: CaNet,
    enc: (
        nn::Conv2D,
        nn::Conv2D,
        nn::BatchNorm,
        nn::Conv2D,
        nn::BatchNorm,
    ),
    joint: (nn::Conv2D, nn::BatchNorm),
    res: Vec<(nn::Conv2D, nn::BatchNorm, nn::Conv2D, nn::BatchNorm)>,
    ups: Vec<UpBlock>,
    img: nn::Conv2D,
}

impl Stage2Generator {
    /// G refining `in_size`-px Stage-I images to `size` px, for `dim`-d embeddings, under `p`.
    pub fn new(p: nn::Path, cfg: &StackNetConfig, dim: i64, in_size: i64, size: i64) -> Self {
        let g = cfg.ngf;
        let res = (0..cfg.res_blocks)
            .map(|i| {
                let q = &p / format!("res{i}");
                (
                    conv3(&q / "conv1", 4 * g, 4 * g),
                    bn(&q / "bn1", 4 * g),
                    conv3(&q / "conv2", 4 * g, 4 * g),
                    bn(&q / "bn2", 4 * g),
                )
            })
            .collect();
        let (ups, last) = up_stack(&p, 4 * g, in_size / 4, size);
        Self {
            ca: CaNet::new(&p / "ca", dim, cfg.c_dim),
            enc: (
                conv3(&p / "enc0", 3, g),
                conv4s2(&p / "enc1", g, 2 * g),
                bn(&p / "enc1_bn", 2 * g),
                conv4s2(&p / "enc2", 2 * g, 4 * g),
                bn(&p / "enc2_bn", 4 * g),
            ),
            joint: (
                conv3(&p / "joint", cfg.c_dim + 4 * g, 4 * g),
                bn(&p / "joint_bn", 4 * g),
            ),
            res,
            ups,
            img: conv3(&p / "img", last, 3),
        }
    }

    /// (image, μ, log σ²) refining Stage-I images `x1` for embeddings `h`.
    pub fn forward_t(&self, x1: &Tensor, h: &Tensor, train: bool) -> (Tensor, Tensor, Tensor) {
        let e = &self.enc;
        let x = e.0.forward(x1).relu();
        let x = e.2.forward_t(&e.1.forward(&x), train).relu();
        let x = e.4.forward_t(&e.3.forward(&x), train).relu();
        let (c, mu, logvar) = self.ca.forward(h);
        let s = x.size();
        let c = c
            .unsqueeze(-1)
            .unsqueeze(-1)
            .expand([s[0], -1, s[2], s[3]], false);
        let mut x = self
            .joint
            .1
            .forward_t(&self.joint.0.forward(&Tensor::cat(&[x, c], 1)), train)
            .relu();
        for (c1, b1, c2, b2) in &self.res {
            let y = b2.forward_t(
                &c2.forward(&b1.forward_t(&c1.forward(&x), train).relu()),
                train,
            );
            x = (y + &x).relu();
        }
        for u in &self.ups {
            x = u.forward_t(&x, train);
        }
        (self.img.forward(&x).tanh(), mu, logvar)
    }
}

/// StackGAN's discriminator (module docs), with unconditional logits when `uncond`.
#[derive(Debug)]
pub struct StackDiscriminator {
    downs: Vec<(nn::Conv2D, Option<nn::BatchNorm>)>,
    back: Vec<(nn::Conv2D, nn::BatchNorm)>,
    cond: (nn::Conv2D, nn::BatchNorm, nn::Conv2D),
    uncond: Option<nn::Conv2D>,
}

impl StackDiscriminator {
    /// D of `size`-px images with `c_dim` conditions under `p`.
    pub fn new(p: nn::Path, cfg: &StackNetConfig, size: i64, uncond: bool) -> Self {
        let (mut cin, mut s, mut downs) = (3, size, Vec::new());
        while s > 4 {
            let i = downs.len() as i64;
            let w = cfg.ndf << i;
            let norm = (i > 0).then(|| bn(&p / format!("down{i}_bn"), w));
            downs.push((conv4s2(&p / format!("down{i}"), cin, w), norm));
            (cin, s) = (w, s / 2);
        }
        let mut back = Vec::new();
        while cin > 8 * cfg.ndf {
            let i = back.len();
            back.push((
                conv3(&p / format!("back{i}"), cin, cin / 2),
                bn(&p / format!("back{i}_bn"), cin / 2),
            ));
            cin /= 2;
        }
        let out = nn::ConvConfig {
            stride: 4,
            ..Default::default()
        };
        Self {
            downs,
            back,
            cond: (
                conv3(&p / "cond", cin + cfg.c_dim, cin),
                bn(&p / "cond_bn", cin),
                nn::conv2d(&p / "cond_out", cin, 1, 4, out),
            ),
            uncond: uncond.then(|| nn::conv2d(&p / "uncond_out", cin, 1, 4, out)),
        }
    }

    /// The image code [n, 8·ndf, 4, 4].
    pub fn encode(&self, x: &Tensor, train: bool) -> Tensor {
        let act = LeakyRelu::new(0.2);
        let mut h = x.shallow_clone();
        for (conv, norm) in &self.downs {
            h = conv.forward(&h);
            if let Some(b) = norm {
                h = b.forward_t(&h, train);
            }
            h = act.forward(&h);
        }
        for (conv, b) in &self.back {
            h = act.forward(&b.forward_t(&conv.forward(&h), train));
        }
        h
    }

    /// Conditional logits [n] of image codes with conditions μ [n, c_dim].
    pub fn cond_logits(&self, code: &Tensor, mu: &Tensor, train: bool) -> Tensor {
        let s = code.size();
        let c = mu
            .unsqueeze(-1)
            .unsqueeze(-1)
            .expand([s[0], -1, s[2], s[3]], false);
        let (conv, b, out) = &self.cond;
        let h = LeakyRelu::new(0.2)
            .forward(&b.forward_t(&conv.forward(&Tensor::cat(&[code, &c], 1)), train));
        out.forward(&h).flatten(0, -1)
    }

    /// Unconditional logits [n] (Stage-II's D), None without them.
    pub fn uncond_logits(&self, code: &Tensor) -> Option<Tensor> {
        self.uncond.as_ref().map(|u| u.forward(code).flatten(0, -1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tch::Device;

    /// KL by closed form: μ = 0, log σ² = 0 gives 0; μ = 1, log σ² = 0 gives ½ per element;
    /// μ = 0, log σ² = ln 2 gives −½(1 + ln 2 − 2) = 0.15343 (per element, averaged). CA's
    /// c has mean μ and variance σ² (10,000 draws, tolerance 4 standard errors). Shapes of
    /// both stages and D at 64 → 128 px; parameter counts of the official Stage-I G and D at
    /// 64 px (z 100, c 128, ngf 1,024, ndf 64, 1,024-d embedding) by closed form.
    #[test]
    fn kl_ca_shapes_and_counts() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let z = |v: f64| Tensor::full([4, 3], v, (Kind::Float, Device::Cpu));
        assert!(kl_loss(&z(0.0), &z(0.0)).double_value(&[]).abs() < 1e-7);
        assert!((kl_loss(&z(1.0), &z(0.0)).double_value(&[]) - 0.5).abs() < 1e-6);
        let want = -0.5 * (1.0 + 2f64.ln() - 2.0);
        assert!((kl_loss(&z(0.0), &z(2f64.ln())).double_value(&[]) - want).abs() < 1e-6);

        let vs = nn::VarStore::new(Device::Cpu);
        let ca = CaNet::new(vs.root() / "ca", 2, 1);
        tch::no_grad(|| {
            let mut v = vs.variables();
            // fc: x ↦ (relu(x0 + 0.5), relu(x1 + 0.2)) → μ = 0.5, log σ² = 0.2 on h = 0.
            let _ = v.get_mut("ca.fc.weight").unwrap().zero_();
            v.get_mut("ca.fc.bias")
                .unwrap()
                .copy_(&Tensor::from_slice(&[0.5f32, 0.2]));
        });
        let (c, mu, lv) = ca.forward(&Tensor::zeros([10_000, 2], (Kind::Float, Device::Cpu)));
        assert!(
            (mu.double_value(&[0, 0]) - 0.5).abs() < 1e-6
                && (lv.double_value(&[0, 0]) - 0.2).abs() < 1e-6
        );
        let (m, var) = (
            c.mean(Kind::Float).double_value(&[]),
            c.var(true).double_value(&[]),
        );
        let sd = 0.2f64.exp().sqrt();
        assert!((m - 0.5).abs() < 4.0 * sd / 100.0, "mean {m}");
        assert!(
            (var - sd * sd).abs() < 4.0 * sd * sd * (2.0f64 / 9999.0).sqrt(),
            "var {var}"
        );

        let cfg = StackNetConfig {
            ngf: 64,
            ndf: 8,
            c_dim: 16,
            z_dim: 8,
            res_blocks: 2,
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let g1 = Stage1Generator::new(vs.root() / "g1", &cfg, 10, 64);
        let g2 = Stage2Generator::new(
            vs.root() / "g2",
            &StackNetConfig {
                ngf: 16,
                ..cfg.clone()
            },
            10,
            64,
            128,
        );
        let d1 = StackDiscriminator::new(vs.root() / "d1", &cfg, 64, false);
        let d2 = StackDiscriminator::new(vs.root() / "d2", &cfg, 128, true);
        let h = Tensor::randn([2, 10], (Kind::Float, Device::Cpu));
        let (x1, mu, _) =
            g1.forward_t(&h, &Tensor::randn([2, 8], (Kind::Float, Device::Cpu)), true);
        assert_eq!((x1.size(), mu.size()), (vec![2, 3, 64, 64], vec![2, 16]));
        let (x2, _, _) = g2.forward_t(&x1, &h, true);
        assert_eq!(x2.size(), vec![2, 3, 128, 128]);
        let code = d2.encode(&x2, true);
        assert_eq!(code.size(), vec![2, 64, 4, 4]);
        assert_eq!(d2.cond_logits(&code, &mu, true).size(), vec![2]);
        assert_eq!(d2.uncond_logits(&code).unwrap().size(), vec![2]);
        assert!(d1.uncond_logits(&d1.encode(&x1, true)).is_none());

        let official = StackNetConfig::default();
        let vs = nn::VarStore::new(Device::Cpu);
        let _g = Stage1Generator::new(vs.root() / "g", &official, 1024, 64);
        let _d = StackDiscriminator::new(vs.root() / "d", &official, 64, false);
        let count = |prefix: &str| -> i64 {
            vs.variables()
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && !k.contains("running"))
                .map(|(_, v)| v.numel() as i64)
                .sum()
        };
        let g_want = (1024 * 256 + 256) // CA
            + 228 * 16384 + 2 * 16384 // fc + BN1d
            + (1024 * 512 + 512 * 256 + 256 * 128 + 128 * 64) * 9 + 2 * (512 + 256 + 128 + 64) // up-blocks
            + 64 * 3 * 9; // img
        let d_want = (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512) * 16 + 2 * (128 + 256 + 512)
            + (512 + 128) * 512 * 9 + 2 * 512 // cond conv + BN
            + 512 * 16 + 1; // cond out
        assert_eq!(count("g."), g_want);
        assert_eq!(count("d."), d_want);
    }

    /// Trainable parameter counts equal the official networks' at their settings (Stage-I
    /// at 64 px, Stage-II at 256 px, 1,024-d embeddings, c 128, GF_DIM 128, DF_DIM 64, 4
    /// residual blocks), as tests/fixtures/stackgan_reference.py (PyTorch) counts them; exact.
    #[test]
    fn counts_match_the_official_code() {
        let _rng = crate::test_rng_lock();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/stackgan_reference.json");
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
        let s1 = StackNetConfig::default();
        let s2 = StackNetConfig {
            ngf: 128,
            ..s1.clone()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let _g1 = Stage1Generator::new(vs.root() / "g1", &s1, 1024, 64);
        let _d1 = StackDiscriminator::new(vs.root() / "d1", &s1, 64, false);
        let _g2 = Stage2Generator::new(vs.root() / "g2", &s2, 1024, 64, 256);
        let _d2 = StackDiscriminator::new(vs.root() / "d2", &s2, 256, true);
        let count = |prefix: &str| -> i64 {
            vs.variables()
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && !k.contains("running"))
                .map(|(_, v)| v.numel() as i64)
                .sum::<i64>()
        };
        for (prefix, key) in [
            ("g1.", "stage1_g_64"),
            ("d1.", "stage1_d_64"),
            ("g2.", "stage2_g_256"),
            ("d2.", "stage2_d_256"),
        ] {
            assert_eq!(count(prefix), want[key].as_i64().unwrap(), "{key}");
        }
    }
}
