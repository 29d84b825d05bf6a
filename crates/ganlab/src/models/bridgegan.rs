//! The networks of multi-attribute translation by label- and reference-based synthesis
//! (Huang et al., ICCV 2021; multi-attribute-translation-supplement.txt Figs. 2–5), layer for
//! layer as the official code builds them (huangqiusheng/BridgeGAN `models_712.py`:
//! `Generator2_wRelu`, `MappingNet_multiStream_deconv_wIN_wRelu_concat`,
//! `Encoder4_wIN_wRelu_concat`, `Discriminator`, `ResBlk`, with `train_arch9.py`'s
//! arguments; ../shared/specs/translation.md §4):
//!
//! - **ResBlk** (pre-activation): norm → act → [nearest ×2] → conv3 → norm → act → conv3 →
//!   [avgpool 2], plus the input, through a 1×1 conv (with bias; after the ×2 or before the
//!   pool) whenever the width changes or the block resamples. Norms: instance norm with a
//!   learnt shift and no scale (TF-slim's `instance_norm` defaults, ε 1e-6), SPADE, or none.
//! - **SPADE**: parameter-free instance norm x̂, the style map nearest-resized to x's size,
//!   a = ReLU(conv3(s → 128)), γ = conv3(a → C), β = conv3(a → C); out = x̂·(1 + γ) + β. Each
//!   SPADE block has two (one per norm), each with its own convs.
//! - **G** (ReLU): conv1×1 → 32; 3 ResBlk↓ IN to 64, 128, 256; ResBlk IN; ResBlk SPADE;
//!   3 ResBlk↑ SPADE to 128, 64, 32; ReLU; conv1×1 → 3; tanh (`model.g_down` sets the 3).
//! - **M**: FC(R ‖ att_diff → 4·4·2c) reshaped to 2c × 4 × 4; ResBlk↑ (IN, ReLU) to c, as
//!   many as reach the style side (4 at 128 px); ReLU; conv1×1 c; IN; ReLU.
//! - **E**: conv1×1(X ‖ tiled att → c/2); ResBlk↓ (IN, ReLU) to c; 3 × ResBlk c; ReLU;
//!   conv1×1 c; IN; ReLU. Style maps are c × H/2 × W/2 (32 × 64 × 64 at 128 px). Both
//!   heads' last ReLU is `model.head_relu` (off: the code's `..._wIN_concat` variant);
//!   `model.att_film` (off: the paper) also modulates both heads by their attribute input.
//! - **D / C**: conv1×1 → 16; 4 × ResBlk↓ (no norm, LReLU 0.2) to 32 … 256 at H/16; LReLU;
//!   two unshared heads, each conv(H/16 × H/16, valid) 256 + LReLU + FC → 1 (D) or k (C).
//!   `model.shared_trunk` off (not the paper) gives C a trunk of its own.
//!
//! Weights are Glorot-uniform and biases zero (TF-slim's defaults). M's reshape is
//! channel-first here (TF reshapes channel-last); the FC's output is relabelled, which
//! changes neither the function class nor the parameter count.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, Module};
use tch::Tensor;

use super::bridgegan_blocks::{block, conv, glorot, in_plain, linear};
pub use super::bridgegan_blocks::{Act, BlockNorm, BlockSpec, ResBlk, Resample, Spade};
use crate::error::{GanError, Result};
use crate::nn::LeakyRelu;

/// `[<task>.model]`: widths of the four networks (the block counts are the paper's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeModelConfig {
    /// G's first width (code `ch_gen`: 32); doubled by each of its down-samplings.
    pub g_ch: i64,
    /// G's down-sampling blocks, and as many SPADE up-sampling blocks (the paper: 3, which
    /// leaves a 16 × 16 bottleneck at 128 px, 8 × 8 at 64, 4 × 4 at 32). Fewer keep the
    /// bottleneck's side at small image sizes (2 at 32 px: 8 × 8); not the paper's network.
    pub g_down: i64,
    /// Channels of the style maps (code: 2·`ch_enc` = 32); E starts at half of it.
    pub style_ch: i64,
    /// Length of the noise vector R (code `dim_noise`: 16).
    pub noise_dim: i64,
    /// D's first width (code `ch_dis`: 16); doubled by each of its 4 down-samplings.
    pub d_ch: i64,
    /// Hidden width of every SPADE (SPADE: 128).
    pub spade_hidden: i64,
    /// Whether M's and E's heads end in a ReLU (`train_arch9.py`'s `..._wIN_wRelu_concat`
    /// networks: true) or stop at the instance norm (the official code's
    /// `MappingNet_multiStream_deconv_wIN_concat`, line 854: false). With the ReLU, a head
    /// whose shift β turns negative outputs exactly zero with zero gradient: on the emoji set
    /// both heads died between steps 550 and 725 of a 1,500-step run (docs/ATTRIBUTES.md),
    /// after which every style map is zero and G cannot edit.
    pub head_relu: bool,
    /// Whether M's and E's heads are also modulated by the attribute vector they are given:
    /// IN(conv(z))·(1 + W_γ·a) + β + W_β·a, W_γ and W_β linear maps [k → style_ch] without
    /// bias (Glorot-uniform). Off in the paper and the official code, where E sees its
    /// attributes only as tiled input channels: after E's first 1×1 conv they are a constant
    /// per channel, which every instance norm removes, so E is all but blind to them (a
    /// trained 32 px run's reference-based output moved by 0.004–0.007 in mean |Δpixel|
    /// when one attribute flipped, against 0.089 for another noise R; 0.047–0.060 with this
    /// on; `examples/bridgegan_probe.rs`, docs/ATTRIBUTES.md). The scale term is
    /// what separates E(X_s, −d) + E(X_r, d) from E(X_s, 0) + E(X_r, 0): a shift alone cancels
    /// between ±d. A reconstruction, not the paper's network.
    pub att_film: bool,
    /// Whether C shares D's trunk (the supplement's Fig. 3 and the code: true) or has a trunk
    /// of its own, same layers, trained by the classification term alone. A diagnostic, not
    /// the paper's network: on the emoji set C alone on the trunk reads 0.85–0.87 of the
    /// test labels within 100–300 steps, shared with the WGAN-GP critic 0.75–0.80 (the
    /// all-zeros floor is 0.75; docs/ATTRIBUTES.md), and G's classification term is only as
    /// good as C.
    pub shared_trunk: bool,
}

impl Default for BridgeModelConfig {
    fn default() -> Self {
        Self {
            g_ch: 32,
            g_down: 3,
            style_ch: 32,
            noise_dim: 16,
            d_ch: 16,
            spade_hidden: 128,
            head_relu: true,
            att_film: false,
            shared_trunk: true,
        }
    }
}

impl BridgeModelConfig {
    /// Checks every field; `size` is the image side (a power of 2 from 32).
    pub fn validate(&self, prefix: &str, size: i64) -> Result<()> {
        for (f, v, lo, hi) in [
            ("g_ch", self.g_ch, 1, 256),
            ("style_ch", self.style_ch, 2, 512),
            ("noise_dim", self.noise_dim, 1, 1024),
            ("d_ch", self.d_ch, 1, 256),
            ("spade_hidden", self.spade_hidden, 1, 1024),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [{lo}, {hi}], got {v}"),
                ));
            }
        }
        if self.style_ch % 2 != 0 {
            return Err(GanError::config(
                format!("{prefix}.style_ch"),
                format!(
                    "must be even (E starts at half of it), got {}",
                    self.style_ch
                ),
            ));
        }
        if size < 32 || size.count_ones() != 1 {
            return Err(GanError::config(
                prefix.to_string(),
                format!("needs an image side that is a power of 2 from 32, got {size}"),
            ));
        }
        let max_down = size.trailing_zeros() as i64 - 2;
        if !(1..=max_down).contains(&self.g_down) {
            return Err(GanError::config(
                format!("{prefix}.g_down"),
                format!(
                    "must be in [1, {max_down}] at {size} px (a bottleneck of at least 4 × 4), got {}",
                    self.g_down
                ),
            ));
        }
        Ok(())
    }

    /// M's up-sampling blocks: from 4 × 4 to the style side H/2.
    pub fn mapping_blocks(size: i64) -> i64 {
        (size / 2 / 4).trailing_zeros() as i64
    }
}

/// G(X_s, S): the translator (Fig. 2).
#[derive(Debug)]
pub struct BridgeGenerator {
    stem: nn::Conv2D,
    blocks: Vec<ResBlk>,
    out: nn::Conv2D,
}

impl BridgeGenerator {
    /// G under `p` for the config `c`.
    pub fn new(p: nn::Path, c: &BridgeModelConfig) -> Self {
        let mut ch = c.g_ch;
        let mut specs = Vec::new();
        for _ in 0..c.g_down {
            specs.push(block(ch, 2 * ch, BlockNorm::In, Act::Relu, Resample::Down));
            ch *= 2;
        }
        specs.push(block(ch, ch, BlockNorm::In, Act::Relu, Resample::Keep));
        specs.push(block(ch, ch, BlockNorm::Spade, Act::Relu, Resample::Keep));
        for _ in 0..c.g_down {
            specs.push(block(ch, ch / 2, BlockNorm::Spade, Act::Relu, Resample::Up));
            ch /= 2;
        }
        let blocks = specs
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let b = BlockSpec {
                    style_ch: c.style_ch,
                    hidden: c.spade_hidden,
                    ..b
                };
                ResBlk::new(&p / format!("block{i}"), b)
            })
            .collect();
        Self {
            stem: conv(&p / "stem", 3, c.g_ch, 1, false),
            blocks,
            out: conv(&p / "out", c.g_ch, 3, 1, false),
        }
    }

    /// G(x, s): images [n, 3, H, W] and style maps [n, style_ch, H/2, W/2] → images.
    pub fn forward(&self, x: &Tensor, s: &Tensor) -> Tensor {
        let mut z = self.stem.forward(x);
        for b in &self.blocks {
            z = b.forward(&z, Some(s));
        }
        self.out.forward(&z.relu()).tanh()
    }
}

/// The final ReLU + 1×1 conv + IN (+ ReLU unless `head_relu` is off) of M and E, with the
/// attribute modulation of `att_film` when on.
#[derive(Debug)]
struct Head {
    conv: nn::Conv2D,
    beta: Tensor,
    relu: bool,
    /// (W_γ, W_β) of `att_film`.
    film: Option<(Tensor, Tensor)>,
}

impl Head {
    fn new(p: nn::Path, c: i64, cfg: &BridgeModelConfig, n_att: i64) -> Self {
        let film = cfg.att_film.then(|| {
            let q = &p / "film";
            let w = |name: &str| q.var(name, &[c, n_att], glorot(n_att, c));
            (w("gamma"), w("beta"))
        });
        Self {
            conv: conv(&p / "conv", c, c, 1, false),
            beta: (&p / "norm").var("beta", &[c], Init::Const(0.0)),
            relu: cfg.head_relu,
            film,
        }
    }

    /// The head on `z` [n, c, h, w] given the network's attribute input `a` [n, k].
    fn forward(&self, z: &Tensor, a: &Tensor) -> Tensor {
        let mut s = in_plain(&self.conv.forward(&z.relu()));
        if let Some((wg, wb)) = &self.film {
            let col = |w: &Tensor| a.matmul(&w.tr()).unsqueeze(-1).unsqueeze(-1);
            s = s * (col(wg) + 1.0) + col(wb);
        }
        let s = s + self.beta.view([1, -1, 1, 1]);
        if self.relu {
            s.relu()
        } else {
            s
        }
    }
}

/// M(R, att_diff): label-based style maps (Fig. 4).
#[derive(Debug)]
pub struct MappingNetwork {
    fc: nn::Linear,
    blocks: Vec<ResBlk>,
    head: Head,
    ch: i64,
}

impl MappingNetwork {
    /// M under `p` for `n_att` attributes and `size` px images.
    pub fn new(p: nn::Path, c: &BridgeModelConfig, n_att: i64, size: i64) -> Self {
        let ch = c.style_ch;
        let blocks = (0..BridgeModelConfig::mapping_blocks(size))
            .map(|i| {
                let cin = if i == 0 { 2 * ch } else { ch };
                let b = block(cin, ch, BlockNorm::In, Act::Relu, Resample::Up);
                ResBlk::new(&p / format!("block{i}"), b)
            })
            .collect();
        Self {
            fc: linear(&p / "fc", c.noise_dim + n_att, 16 * 2 * ch),
            blocks,
            head: Head::new(&p / "head", ch, c, n_att),
            ch,
        }
    }

    /// M(r, d): noise [n, noise_dim] and attribute differences [n, k] → style maps.
    pub fn forward(&self, r: &Tensor, d: &Tensor) -> Tensor {
        let mut z = self
            .fc
            .forward(&Tensor::cat(&[r, d], 1))
            .view([-1, 2 * self.ch, 4, 4]);
        for b in &self.blocks {
            z = b.forward(&z, None);
        }
        self.head.forward(&z, d)
    }
}

/// E(X, att): reference-based style maps (Fig. 5).
#[derive(Debug)]
pub struct StyleEncoder {
    stem: nn::Conv2D,
    blocks: Vec<ResBlk>,
    head: Head,
}

impl StyleEncoder {
    /// E under `p` for `n_att` attributes.
    pub fn new(p: nn::Path, c: &BridgeModelConfig, n_att: i64) -> Self {
        let ch = c.style_ch;
        let mut blocks = vec![ResBlk::new(
            &p / "block0",
            block(ch / 2, ch, BlockNorm::In, Act::Relu, Resample::Down),
        )];
        for i in 1..4 {
            let b = block(ch, ch, BlockNorm::In, Act::Relu, Resample::Keep);
            blocks.push(ResBlk::new(&p / format!("block{i}"), b));
        }
        Self {
            stem: conv(&p / "stem", 3 + n_att, ch / 2, 1, false),
            blocks,
            head: Head::new(&p / "head", ch, c, n_att),
        }
    }

    /// E(x, a): images [n, 3, H, W] and attribute vectors [n, k] (tiled over the image) →
    /// style maps [n, style_ch, H/2, W/2].
    pub fn forward(&self, x: &Tensor, a: &Tensor) -> Tensor {
        let s = x.size();
        let tiled = a
            .view([s[0], -1, 1, 1])
            .expand([s[0], a.size()[1], s[2], s[3]], false);
        let mut z = self.stem.forward(&Tensor::cat(&[x, &tiled], 1));
        for b in &self.blocks {
            z = b.forward(&z, None);
        }
        self.head.forward(&z, a)
    }
}

/// D's trunk: conv1×1 → d_ch; 4 × ResBlk↓ (no norm, LReLU 0.2); LReLU.
#[derive(Debug)]
struct Trunk {
    stem: nn::Conv2D,
    blocks: Vec<ResBlk>,
}

impl Trunk {
    /// The trunk under `p`, and its output width.
    fn new(p: &nn::Path, d_ch: i64) -> (Self, i64) {
        let mut ch = d_ch;
        let mut blocks = Vec::new();
        for i in 0..4 {
            let b = block(ch, 2 * ch, BlockNorm::None, Act::Lrelu, Resample::Down);
            blocks.push(ResBlk::new(p / format!("block{i}"), b));
            ch *= 2;
        }
        let stem = conv(p / "stem", 3, d_ch, 1, false);
        (Self { stem, blocks }, ch)
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut z = self.stem.forward(x);
        for b in &self.blocks {
            z = b.forward(&z, None);
        }
        LeakyRelu::new(0.2).forward(&z)
    }
}

/// D and C: one trunk, two unshared heads (Fig. 3); with `model.shared_trunk` off, C has a
/// trunk of its own (under `c_trunk/`).
#[derive(Debug)]
pub struct DiscriminatorClassifier {
    trunk: Trunk,
    c_trunk: Option<Trunk>,
    heads: [(nn::Conv2D, nn::Linear); 2],
}

impl DiscriminatorClassifier {
    /// D/C under `p` for `n_att` attributes and `size` px images.
    pub fn new(p: nn::Path, c: &BridgeModelConfig, n_att: i64, size: i64) -> Self {
        let (trunk, ch) = Trunk::new(&p, c.d_ch);
        let c_trunk = (!c.shared_trunk).then(|| Trunk::new(&(&p / "c_trunk"), c.d_ch).0);
        let k = size / 16;
        let head = |name: &str, out: i64| {
            (
                conv(&p / name / "conv", ch, ch, k, true),
                linear(&p / name / "fc", ch, out),
            )
        };
        Self {
            trunk,
            c_trunk,
            heads: [head("adv", 1), head("cls", n_att)],
        }
    }

    fn head(&self, i: usize, z: &Tensor) -> Tensor {
        let (c, f) = &self.heads[i];
        f.forward(&LeakyRelu::new(0.2).forward(&c.forward(z)).flatten(1, -1))
    }

    /// D(x) [n] alone (the gradient penalty's critic).
    pub fn critic(&self, x: &Tensor) -> Tensor {
        self.head(0, &self.trunk.forward(x)).view([-1])
    }

    /// C(x) attribute logits [n, k] alone.
    pub fn classify(&self, x: &Tensor) -> Tensor {
        let t = self.c_trunk.as_ref().unwrap_or(&self.trunk);
        self.head(1, &t.forward(x))
    }

    /// (D(x) [n], C(x) attribute logits [n, k]).
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.forward_split(x, x.size()[0])
    }

    /// (D(x) [n], C(x[..m]) [m, k]): the critic on every row, the classifier on the first `m`
    /// alone (D's step classifies the reals only, so a trunk of C's own never runs on fakes).
    pub fn forward_split(&self, x: &Tensor, m: i64) -> (Tensor, Tensor) {
        let z = self.trunk.forward(x);
        let cls = match &self.c_trunk {
            Some(t) => self.head(1, &t.forward(&x.narrow(0, 0, m))),
            None => self.head(1, &z.narrow(0, 0, m)),
        };
        (self.head(0, &z).view([-1]), cls)
    }
}
