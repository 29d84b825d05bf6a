//! StyleGAN2's layers (Karras et al. 2020), as the official StyleGAN2-ADA code builds them
//! (NVlabs/stylegan2-ada-pytorch, `training/networks.py` and `torch_utils/ops`):
//!
//! - **Equalized learning rate**: weights are drawn N(0, 1/lr_mult²) and scaled at run time by
//!   lr_mult/√fan_in (so Adam's step on the output scales with lr_mult: the mapping network's
//!   0.01); biases by lr_mult.
//! - **bias_act**: leaky ReLU (slope 0.2) times √2 (its "def_gain"), times a per-call gain,
//!   then clamped to ±conv_clamp·gain.
//! - **FIR resampling** with the filter [1, 3, 3, 1] ⊗ [1, 3, 3, 1] / 64 (`setup_filter`):
//!   up-sampling is zero insertion then the filter with gain 4 (a depthwise transposed conv,
//!   stride 2); down-sampling the filter then stride 2. Paddings are the official ones
//!   (`conv2d_resample`): for a 3×3 conv with up = 2 a transposed conv (pad 0) then the filter
//!   with pad 1; with down = 2 the filter with pad 2 then the conv with stride 2.
//! - **Modulated convolution** (`modulated_conv2d`, the non-fused path the official code
//!   trains with): x·s → conv(W) → ·d with d_o = (Σ_{i,k} (W_oik·s_i)² + 1e-8)^{-1/2}.
//!
//! tests/fixtures/stylegan2_reference.py restates these layers in PyTorch; its networks match
//! the official ones numerically, and `models::stylegan2`'s tests match them.

use std::f64::consts::SQRT_2;

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// The leaky ReLU slope of every StyleGAN2 activation.
const SLOPE: f64 = 0.2;

/// `bias_act`: x + b, then (leaky ReLU · √2 when `lrelu`) · `gain`, clamped to ±`clamp`
/// (0: no clamp).
pub fn bias_act(x: &Tensor, b: Option<&Tensor>, lrelu: bool, gain: f64, clamp: f64) -> Tensor {
    let x = match b {
        Some(b) => {
            let mut shape = vec![1i64, -1];
            shape.extend(std::iter::repeat_n(1, x.dim() - 2));
            x + b.view(shape.as_slice())
        }
        None => x.shallow_clone(),
    };
    let x = if lrelu {
        super::LeakyRelu::new(SLOPE).forward(&x) * (SQRT_2 * gain)
    } else if gain != 1.0 {
        x * gain
    } else {
        x
    };
    if clamp > 0.0 {
        x.clamp(-clamp * gain, clamp * gain)
    } else {
        x
    }
}

/// x·(mean(x²) + 1e-8)^{-1/2} over dim 1 (`normalize_2nd_moment`).
pub fn normalize_2nd_moment(x: &Tensor) -> Tensor {
    x * (x.square().mean_dim(1, true, Kind::Float) + 1e-8).rsqrt()
}

/// The 4×4 low-pass filter [1, 3, 3, 1]⊗[1, 3, 3, 1]/64 as a depthwise kernel for `c`
/// channels ([c, 1, 4, 4]), times `gain`.
fn fir(c: i64, gain: f64, like: &Tensor) -> Tensor {
    let f1 = [1.0f32, 3.0, 3.0, 1.0];
    let f: Vec<f32> = f1
        .iter()
        .flat_map(|a| f1.iter().map(move |b| a * b / 64.0 * gain as f32))
        .collect();
    Tensor::from_slice(&f)
        .to_device(like.device())
        .to_kind(like.kind())
        .view([1, 1, 4, 4])
        .expand([c, 1, 4, 4], false)
}

/// The low-pass filter at stride 1 with padding `pad` (each side).
fn filter(x: &Tensor, pad: i64, stride: i64) -> Tensor {
    let c = x.size()[1];
    x.conv2d(&fir(c, 1.0, x), None::<Tensor>, [stride], [pad], [1], c)
}

/// `upsample2d`: ×2 by zero insertion and the filter with gain 4 ([n, c, 2h, 2w]).
pub fn upsample2d(x: &Tensor) -> Tensor {
    let c = x.size()[1];
    x.conv_transpose2d(&fir(c, 4.0, x), None::<Tensor>, [2], [1], [0], c, [1])
}

/// `downsample2d`: the filter, then every second sample ([n, c, h/2, w/2]).
pub fn downsample2d(x: &Tensor) -> Tensor {
    filter(x, 1, 2)
}

/// `FullyConnectedLayer`: y = act(x·(W·g)ᵀ + b·lr_mult), g = lr_mult/√in.
#[derive(Debug)]
pub struct EqLinear {
    weight: Tensor,
    bias: Tensor,
    weight_gain: f64,
    bias_gain: f64,
    lrelu: bool,
}

impl EqLinear {
    /// `in_dim` → `out_dim` under `p`; weights N(0, 1/lr_mult²), biases `bias_init`.
    pub fn new(
        p: nn::Path,
        in_dim: i64,
        out_dim: i64,
        lrelu: bool,
        lr_mult: f64,
        bias_init: f64,
    ) -> Self {
        Self {
            weight: p.var(
                "weight",
                &[out_dim, in_dim],
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0 / lr_mult,
                },
            ),
            bias: p.var("bias", &[out_dim], Init::Const(bias_init)),
            weight_gain: lr_mult / (in_dim as f64).sqrt(),
            bias_gain: lr_mult,
            lrelu,
        }
    }

    /// x [n, in] → [n, out].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.matmul(&(&self.weight * self.weight_gain).tr());
        bias_act(
            &y,
            Some(&(&self.bias * self.bias_gain)),
            self.lrelu,
            1.0,
            0.0,
        )
    }
}

/// `Conv2dLayer`: a k×k conv with equalized learning rate, optional ×2 down-sampling, bias,
/// activation and clamp.
#[derive(Debug)]
pub struct EqConv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    weight_gain: f64,
    down: bool,
    lrelu: bool,
    clamp: f64,
}

impl EqConv2d {
    /// `cin` → `cout`, kernel `k`, under `p`.
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, o: ConvOptions) -> Self {
        let weight = p.var(
            "weight",
            &[cout, cin, k, k],
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        Self {
            weight,
            bias: o.bias.then(|| p.var("bias", &[cout], Init::Const(0.0))),
            weight_gain: 1.0 / ((cin * k * k) as f64).sqrt(),
            down: o.down,
            lrelu: o.lrelu,
            clamp: o.clamp,
        }
    }

    /// The layer at activation gain `gain` (the residual branches use √0.5).
    pub fn forward(&self, x: &Tensor, gain: f64) -> Tensor {
        let w = &self.weight * self.weight_gain;
        let k = w.size()[3];
        let y = match (self.down, k) {
            (false, _) => x.conv2d(&w, None::<Tensor>, [1], [k / 2], [1], 1),
            (true, 1) => downsample2d(x).conv2d(&w, None::<Tensor>, [1], [0], [1], 1),
            (true, _) => filter(x, 2, 1).conv2d(&w, None::<Tensor>, [2], [0], [1], 1),
        };
        bias_act(&y, self.bias.as_ref(), self.lrelu, gain, self.clamp)
    }
}

/// Options of [`EqConv2d`].
#[derive(Debug, Clone, Copy)]
pub struct ConvOptions {
    /// Learnt bias.
    pub bias: bool,
    /// ×2 down-sampling.
    pub down: bool,
    /// Leaky ReLU · √2 (else linear).
    pub lrelu: bool,
    /// Clamp of the output (0: none).
    pub clamp: f64,
}

/// `SynthesisLayer` (and, with `demodulate` false and no noise, `ToRGBLayer`): a style
/// affine A(w) (bias 1), a modulated conv, per-pixel noise with a learnt strength, bias and
/// activation.
#[derive(Debug)]
pub struct ModConv {
    affine: EqLinear,
    weight: Tensor,
    noise_strength: Option<Tensor>,
    bias: Tensor,
    up: bool,
    demodulate: bool,
    clamp: f64,
}

impl ModConv {
    /// A synthesis layer `cin` → `cout` (3×3, demodulated, lrelu), ×2 up-sampling if `up`.
    pub fn synthesis(
        p: nn::Path,
        cin: i64,
        cout: i64,
        w_dim: i64,
        up: bool,
        noise: bool,
        clamp: f64,
    ) -> Self {
        Self::new(p, cin, cout, w_dim, 3, up, noise, true, clamp)
    }

    /// A ToRGB layer `cin` → `cout` (1×1, not demodulated, linear).
    pub fn to_rgb(p: nn::Path, cin: i64, cout: i64, w_dim: i64, clamp: f64) -> Self {
        Self::new(p, cin, cout, w_dim, 1, false, false, false, clamp)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        p: nn::Path,
        cin: i64,
        cout: i64,
        w_dim: i64,
        k: i64,
        up: bool,
        noise: bool,
        demodulate: bool,
        clamp: f64,
    ) -> Self {
        Self {
            affine: EqLinear::new(&p / "affine", w_dim, cin, false, 1.0, 1.0),
            weight: p.var(
                "weight",
                &[cout, cin, k, k],
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
            noise_strength: noise.then(|| p.var("noise_strength", &[], Init::Const(0.0))),
            bias: p.var("bias", &[cout], Init::Const(0.0)),
            up,
            demodulate,
            clamp,
        }
    }

    /// x [n, cin, h, w] under styles from w [n, w_dim] → [n, cout, h', w'] at activation
    /// gain `gain`.
    pub fn forward(&self, x: &Tensor, w: &Tensor, gain: f64) -> Tensor {
        let [cout, cin, k, _] = self.weight.size()[..] else {
            unreachable!("a conv weight has four dimensions")
        };
        let s = self.affine.forward(w);
        let s = if self.demodulate {
            s
        } else {
            s * (1.0 / ((cin * k * k) as f64).sqrt())
        };
        let n = x.size()[0];
        let x = x * s.view([n, cin, 1, 1]);
        let y = if self.up {
            let t = self.weight.transpose(0, 1);
            let y = x.conv_transpose2d(&t, None::<Tensor>, [2], [0], [0], 1, [1]);
            filter(&y, 1, 1) * 4.0
        } else {
            x.conv2d(&self.weight, None::<Tensor>, [1], [k / 2], [1], 1)
        };
        let y = if self.demodulate {
            // Σ_{i,k}(W_oik s_i)² = Σ_i s_i² Σ_k W_oik²: one [n, cin]·[cin, cout] product.
            let w2 = self
                .weight
                .square()
                .sum_dim_intlist([2, 3].as_slice(), false, Kind::Float);
            let d = (s.square().matmul(&w2.tr()) + 1e-8).rsqrt();
            y * d.view([n, cout, 1, 1])
        } else {
            y
        };
        let y = match &self.noise_strength {
            Some(strength) => {
                let (sz, opts) = (y.size(), (y.kind(), y.device()));
                y + Tensor::randn([n, 1, sz[2], sz[3]], opts) * strength
            }
            None => y,
        };
        bias_act(&y, Some(&self.bias), self.demodulate, gain, self.clamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Up-sampling a constant image keeps it constant away from the border (the filter sums
    /// to 1 per output phase after the gain of 4), and down-sampling a constant keeps it
    /// too; shapes double and halve. Closed forms, to 1e-5.
    #[test]
    fn fir_resampling_preserves_constants() {
        let x = Tensor::full([1, 2, 8, 8], 3.0, (Kind::Float, Device::Cpu));
        let up = upsample2d(&x);
        assert_eq!(up.size(), vec![1, 2, 16, 16]);
        let inner = up.narrow(2, 2, 12).narrow(3, 2, 12);
        assert!((inner - 3.0).abs().max().double_value(&[]) < 1e-5);
        let down = downsample2d(&x);
        assert_eq!(down.size(), vec![1, 2, 4, 4]);
        let inner = down.narrow(2, 1, 2).narrow(3, 1, 2);
        assert!((inner - 3.0).abs().max().double_value(&[]) < 1e-5);
    }

    /// A demodulated 1×1 modulated conv on one pixel against its closed form:
    /// y_o = lrelu(Σ_i W_oi s_i x_i · d_o)·√2 with d_o = (Σ_i W_oi² s_i² + 1e-8)^{-1/2} and
    /// s = A(w), evaluated directly per sample (tolerance 1e-5).
    #[test]
    fn modulated_conv_matches_its_closed_form() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = ModConv::new(vs.root(), 4, 3, 5, 1, false, false, true, 0.0);
        let x = Tensor::randn([2, 4, 1, 1], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([2, 5], (Kind::Float, Device::Cpu));
        let got = layer.forward(&x, &w, 1.0).view([2, 3]);
        let s = layer.affine.forward(&w); // [2, 4]
        let wt = layer.weight.view([3, 4]);
        let eff = wt.unsqueeze(0) * s.unsqueeze(1); // [2, 3, 4]
        let d = (eff.square().sum_dim_intlist(2, false, Kind::Float) + 1e-8).rsqrt();
        let lin = (eff * x.view([2, 1, 4])).sum_dim_intlist(2, false, Kind::Float) * d;
        let want = crate::nn::LeakyRelu::new(0.2).forward(&lin) * SQRT_2;
        let err = (got - want).abs().max().double_value(&[]);
        assert!(err < 1e-5, "modulated conv error {err}");
    }

    /// Equalized learning rate: at lr_mult 0.01 the stored weights are 100× the N(0, 1)
    /// draw and the effective weight W·g has std 1/√in (1,024 weights; within 10%).
    #[test]
    fn equalized_linear_scales() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let fc = EqLinear::new(vs.root(), 64, 16, false, 0.01, 0.0);
        let std = (&fc.weight * fc.weight_gain).std(true).double_value(&[]);
        assert!((std * 8.0 - 1.0).abs() < 0.1, "effective std {std}");
        assert!((fc.weight.std(true).double_value(&[]) / 100.0 - 1.0).abs() < 0.1);
    }
}
