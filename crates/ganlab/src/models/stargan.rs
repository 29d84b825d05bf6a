//! StarGAN's networks (Choi et al. 2018), layer for layer as the official code
//! (yunjey/stargan `model.py`), the baseline of multi-attribute translation:
//!
//! - **G(x, c)**: the target labels c tiled as extra input channels; conv7×7 → w, IN, ReLU;
//!   2 × (conv4×4 stride 2, IN, ReLU) to 4w; `res_blocks` residual blocks (conv3, IN, ReLU,
//!   conv3, IN, plus the input); 2 × (transposed conv4×4 stride 2, IN, ReLU) to w; conv7×7 →
//!   3; tanh. Convs without bias; IN with learnt scale and shift (`affine=True`).
//! - **D(x)**: conv4×4 stride 2 (with bias) → w, LeakyReLU 0.01, then `d_layers − 1` more to
//!   w·2^(d_layers − 1); two heads without bias: conv3×3 → 1 (PatchGAN realness map) and a conv
//!   over the whole remaining map → k attribute logits.
//!
//! The official code keeps IN's running statistics (`track_running_stats=True`) but always
//! trains and tests in training mode, so the statistics are never used; here IN always
//! normalises with the image's own statistics.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use crate::error::{GanError, Result};
use crate::nn::LeakyRelu;

/// `[stargan.model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StarGanModelConfig {
    /// G's first width (official `g_conv_dim`: 64).
    pub g_ch: i64,
    /// G's residual blocks (official `g_repeat_num`: 6).
    pub res_blocks: i64,
    /// D's first width (official `d_conv_dim`: 64).
    pub d_ch: i64,
    /// D's stride-2 convs (official `d_repeat_num`: 6 at 128 px).
    pub d_layers: i64,
}

impl Default for StarGanModelConfig {
    fn default() -> Self {
        Self {
            g_ch: 64,
            res_blocks: 6,
            d_ch: 64,
            d_layers: 6,
        }
    }
}

impl StarGanModelConfig {
    /// Checks every field; `size` is the image side.
    pub fn validate(&self, prefix: &str, size: i64) -> Result<()> {
        for (f, v, lo, hi) in [
            ("g_ch", self.g_ch, 1, 256),
            ("res_blocks", self.res_blocks, 0, 16),
            ("d_ch", self.d_ch, 1, 256),
            ("d_layers", self.d_layers, 1, 8),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{f}"),
                    format!("must be in [{lo}, {hi}], got {v}"),
                ));
            }
        }
        if size % 4 != 0 || size >> self.d_layers < 1 || size % (1 << self.d_layers) != 0 {
            return Err(GanError::config(
                format!("{prefix}.d_layers"),
                format!(
                    "{} halvings must divide the image side {size} (at least 1 px left)",
                    self.d_layers
                ),
            ));
        }
        Ok(())
    }
}

fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, pad: i64, bias: bool) -> nn::Conv2D {
    nn::conv2d(
        p,
        cin,
        cout,
        k,
        nn::ConvConfig {
            stride,
            padding: pad,
            bias,
            ..Default::default()
        },
    )
}

/// Instance norm with learnt scale and shift (`nn.InstanceNorm2d(c, affine=True)`).
#[derive(Debug)]
struct InAffine {
    w: Tensor,
    b: Tensor,
}

impl InAffine {
    fn new(p: nn::Path, c: i64) -> Self {
        Self {
            w: p.var("weight", &[c], nn::Init::Const(1.0)),
            b: p.var("bias", &[c], nn::Init::Const(0.0)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.instance_norm(
            Some(&self.w),
            Some(&self.b),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.1,
            1e-5,
            false,
        )
    }
}

/// G(x, c) (see module docs).
#[derive(Debug)]
pub struct StarGenerator {
    convs: Vec<(nn::Conv2D, InAffine)>,
    res: Vec<[(nn::Conv2D, InAffine); 2]>,
    ups: Vec<(nn::ConvTranspose2D, InAffine)>,
    out: nn::Conv2D,
}

impl StarGenerator {
    /// G under `p` for `k` attributes.
    pub fn new(p: nn::Path, c: &StarGanModelConfig, k: i64) -> Self {
        let w = c.g_ch;
        let mut convs = vec![(
            conv(&p / "stem", 3 + k, w, 7, 1, 3, false),
            InAffine::new(&p / "stem_in", w),
        )];
        for i in 0..2 {
            let (a, b) = (w << i, w << (i + 1));
            convs.push((
                conv(&p / format!("down{i}"), a, b, 4, 2, 1, false),
                InAffine::new(&p / format!("down{i}_in"), b),
            ));
        }
        let cw = 4 * w;
        let res = (0..c.res_blocks)
            .map(|i| {
                let q = &p / format!("res{i}");
                [0, 1].map(|j| {
                    (
                        conv(&q / format!("conv{j}"), cw, cw, 3, 1, 1, false),
                        InAffine::new(&q / format!("in{j}"), cw),
                    )
                })
            })
            .collect();
        let ups = (0..2)
            .map(|i| {
                let (a, b) = (cw >> i, cw >> (i + 1));
                let cfg = nn::ConvTransposeConfig {
                    stride: 2,
                    padding: 1,
                    bias: false,
                    ..Default::default()
                };
                (
                    nn::conv_transpose2d(&p / format!("up{i}"), a, b, 4, cfg),
                    InAffine::new(&p / format!("up{i}_in"), b),
                )
            })
            .collect();
        Self {
            convs,
            res,
            ups,
            out: conv(&p / "out", w, 3, 7, 1, 3, false),
        }
    }

    /// G(x, c): images [n, 3, H, W] and target labels [n, k] → images.
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Tensor {
        let s = x.size();
        let c = c
            .view([s[0], -1, 1, 1])
            .expand([s[0], c.size()[1], s[2], s[3]], false);
        let mut h = Tensor::cat(&[x, &c], 1);
        for (cv, n) in &self.convs {
            h = n.forward(&cv.forward(&h)).relu();
        }
        for [(c0, n0), (c1, n1)] in &self.res {
            h = &h + n1.forward(&c1.forward(&n0.forward(&c0.forward(&h)).relu()));
        }
        for (cv, n) in &self.ups {
            h = n.forward(&cv.forward(&h)).relu();
        }
        self.out.forward(&h).tanh()
    }
}

/// D(x) → (realness map, attribute logits) (see module docs).
#[derive(Debug)]
pub struct StarDiscriminator {
    convs: Vec<nn::Conv2D>,
    src: nn::Conv2D,
    cls: nn::Conv2D,
}

impl StarDiscriminator {
    /// D under `p` for `k` attributes and `size` px images.
    pub fn new(p: nn::Path, c: &StarGanModelConfig, k: i64, size: i64) -> Self {
        let mut convs = Vec::new();
        let mut w = 3;
        for i in 0..c.d_layers {
            let out = c.d_ch << i;
            convs.push(conv(&p / format!("conv{i}"), w, out, 4, 2, 1, true));
            w = out;
        }
        let side = size >> c.d_layers;
        Self {
            convs,
            src: conv(&p / "src", w, 1, 3, 1, 1, false),
            cls: conv(&p / "cls", w, k, side, 1, 0, false),
        }
    }

    /// (realness map [n, 1, h, w], logits [n, k]).
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let act = LeakyRelu::new(0.01);
        let mut h = x.shallow_clone();
        for cv in &self.convs {
            h = act.forward(&cv.forward(&h));
        }
        let n = x.size()[0];
        (self.src.forward(&h), self.cls.forward(&h).view([n, -1]))
    }
}
