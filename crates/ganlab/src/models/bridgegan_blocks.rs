//! The building blocks of the multi-attribute networks (`models::bridgegan`): TF-slim-style
//! layers (Glorot-uniform weights, zero biases, 'same' or 'valid' padding), SPADE, and the
//! pre-activation residual block with its norms, activations and resampling, as the module
//! docs of `models::bridgegan` describe them.

use tch::nn::{self, Init, Module};
use tch::Tensor;

use crate::nn::LeakyRelu;

/// Glorot-uniform bound of a layer with `fan_in` and `fan_out`.
pub(super) fn glorot(fan_in: i64, fan_out: i64) -> Init {
    let b = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// A k × k conv with bias, 'same' padding (odd k) or 'valid' (`valid`).
pub(super) fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, valid: bool) -> nn::Conv2D {
    nn::conv2d(
        p,
        cin,
        cout,
        k,
        nn::ConvConfig {
            padding: if valid { 0 } else { k / 2 },
            ws_init: glorot(cin * k * k, cout * k * k),
            bs_init: Init::Const(0.0),
            ..Default::default()
        },
    )
}

pub(super) fn linear(p: nn::Path, cin: i64, cout: i64) -> nn::Linear {
    nn::linear(
        p,
        cin,
        cout,
        nn::LinearConfig {
            ws_init: glorot(cin, cout),
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        },
    )
}

/// Instance norm without parameters, ε 1e-6 (TF-slim's).
pub(super) fn in_plain(x: &Tensor) -> Tensor {
    x.instance_norm::<Tensor>(None, None, None, None, true, 0.1, 1e-6, false)
}

/// SPADE (see module docs).
#[derive(Debug)]
pub struct Spade {
    shared: nn::Conv2D,
    gamma: nn::Conv2D,
    beta: nn::Conv2D,
}

impl Spade {
    /// SPADE of a `c`-channel input driven by `style_ch`-channel maps.
    pub fn new(p: nn::Path, c: i64, style_ch: i64, hidden: i64) -> Self {
        Self {
            shared: conv(&p / "shared", style_ch, hidden, 3, false),
            gamma: conv(&p / "gamma", hidden, c, 3, false),
            beta: conv(&p / "beta", hidden, c, 3, false),
        }
    }

    /// x̂·(1 + γ(s)) + β(s).
    pub fn forward(&self, x: &Tensor, s: &Tensor) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let s = if s.size()[2..] == [h, w] {
            s.shallow_clone()
        } else {
            s.upsample_nearest2d([h, w], None, None)
        };
        let a = self.shared.forward(&s).relu();
        in_plain(x) * (self.gamma.forward(&a) + 1.0) + self.beta.forward(&a)
    }
}

/// The norm of a ResBlk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockNorm {
    /// Instance norm with a learnt shift.
    In,
    /// SPADE on the style map.
    Spade,
    /// None (D).
    None,
}

#[derive(Debug)]
enum NormLayer {
    In(Tensor),
    Spade(Box<Spade>),
    None,
}

impl NormLayer {
    fn new(p: nn::Path, norm: BlockNorm, c: i64, style_ch: i64, hidden: i64) -> Self {
        match norm {
            BlockNorm::In => NormLayer::In(p.var("beta", &[c], Init::Const(0.0))),
            BlockNorm::Spade => NormLayer::Spade(Box::new(Spade::new(p, c, style_ch, hidden))),
            BlockNorm::None => NormLayer::None,
        }
    }

    fn forward(&self, x: &Tensor, s: Option<&Tensor>) -> Tensor {
        match self {
            NormLayer::In(beta) => in_plain(x) + beta.view([1, -1, 1, 1]),
            NormLayer::Spade(sp) => sp.forward(x, s.expect("a SPADE block needs a style map")),
            NormLayer::None => x.shallow_clone(),
        }
    }
}

/// Activation of a ResBlk.
#[derive(Debug, Clone, Copy)]
pub enum Act {
    /// ReLU (G, M, E).
    Relu,
    /// LeakyReLU 0.2 (D).
    Lrelu,
}

impl Act {
    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Act::Relu => x.relu(),
            Act::Lrelu => LeakyRelu::new(0.2).forward(x),
        }
    }
}

/// Resampling of a ResBlk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// None.
    Keep,
    /// Nearest ×2 before the first conv.
    Up,
    /// Average pooling /2 after the second conv.
    Down,
}

/// The pre-activation residual block (see module docs).
#[derive(Debug)]
pub struct ResBlk {
    norm1: NormLayer,
    conv1: nn::Conv2D,
    norm2: NormLayer,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
    act: Act,
    resample: Resample,
}

/// What a ResBlk is: widths, norm, activation, resampling, and the style width / SPADE
/// hidden width its SPADE norms use.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    /// Input width.
    pub cin: i64,
    /// Output width.
    pub cout: i64,
    /// Norm.
    pub norm: BlockNorm,
    /// Activation.
    pub act: Act,
    /// Resampling.
    pub resample: Resample,
    /// Style-map width (SPADE only).
    pub style_ch: i64,
    /// SPADE hidden width (SPADE only).
    pub hidden: i64,
}

impl ResBlk {
    /// The block `b` under `p`.
    pub fn new(p: nn::Path, b: BlockSpec) -> Self {
        let learned = b.cin != b.cout || b.resample != Resample::Keep;
        Self {
            norm1: NormLayer::new(&p / "norm1", b.norm, b.cin, b.style_ch, b.hidden),
            conv1: conv(&p / "conv1", b.cin, b.cout, 3, false),
            norm2: NormLayer::new(&p / "norm2", b.norm, b.cout, b.style_ch, b.hidden),
            conv2: conv(&p / "conv2", b.cout, b.cout, 3, false),
            shortcut: learned.then(|| conv(&p / "shortcut", b.cin, b.cout, 1, false)),
            act: b.act,
            resample: b.resample,
        }
    }

    /// The block on `x`, with style map `s` for SPADE norms.
    pub fn forward(&self, x: &Tensor, s: Option<&Tensor>) -> Tensor {
        let up = |t: &Tensor| {
            let (h, w) = (t.size()[2], t.size()[3]);
            t.upsample_nearest2d([2 * h, 2 * w], None, None)
        };
        let mut y = self.act.apply(&self.norm1.forward(x, s));
        if self.resample == Resample::Up {
            y = up(&y);
        }
        y = self.conv1.forward(&y);
        y = self
            .conv2
            .forward(&self.act.apply(&self.norm2.forward(&y, s)));
        if self.resample == Resample::Down {
            y = y.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None);
        }
        let sc = match (&self.shortcut, self.resample) {
            (None, _) => x.shallow_clone(),
            (Some(c), Resample::Up) => c.forward(&up(x)),
            (Some(c), Resample::Down) => {
                c.forward(x)
                    .avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
            }
            (Some(c), Resample::Keep) => c.forward(x),
        };
        y + sc
    }
}

pub(super) fn block(
    cin: i64,
    cout: i64,
    norm: BlockNorm,
    act: Act,
    resample: Resample,
) -> BlockSpec {
    BlockSpec {
        cin,
        cout,
        norm,
        act,
        resample,
        style_ch: 0,
        hidden: 0,
    }
}
