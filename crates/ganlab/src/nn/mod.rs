//! Reusable layers that tch lacks: LeakyReLU with a slope, spectral normalisation, the
//! timestep embedding of D(y, t).

pub mod spectral;
pub mod timestep;

pub use spectral::{sn_conv2d, sn_linear, SnConv2d, SnLinear, SpectralNorm};

pub use timestep::{sinusoidal_embedding, TimestepEmbedding, TimestepEmbeddingConfig};

use tch::{Kind, Tensor};

/// LeakyReLU with negative slope `slope` ∈ [0, 1).
///
/// tch binds only the default slope (0.01) of `aten::leaky_relu`, so this computes
/// x · f with f = slope + (1 − slope)·[x > 0] built without gradient: autograd records one
/// multiply, whose backward g · f is exactly LeakyReLU's derivative (and its own derivative,
/// 0 almost everywhere, is right for double backward too). Measured forward + backward on a
/// 512×128 batch, 2 CPU cores (`examples/leaky_relu_variants.rs`): 135 µs, against 220 µs
/// for `aten::prelu` with a constant weight and ~600 µs for `max(x, slope·x)`.
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu {
    slope: f64,
}

impl LeakyRelu {
    /// The activation with negative slope `slope`.
    pub fn new(slope: f64) -> Self {
        Self { slope }
    }

    /// Its negative slope.
    pub fn slope(&self) -> f64 {
        self.slope
    }

    /// Applies the activation (any shape and float dtype).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if !x.requires_grad() {
            // No graph to build (sampling, D scoring fakes): one fused kernel.
            let w = Tensor::full([1], self.slope, (x.kind(), x.device()));
            return x.prelu(&w);
        }
        let factor = tch::no_grad(|| {
            let positive = x.gt(0.0);
            // bool × f64 gives float32; other dtypes convert first to keep their precision.
            let positive = if x.kind() == Kind::Float {
                positive
            } else {
                positive.to_kind(x.kind())
            };
            positive * (1.0 - self.slope) + self.slope
        });
        x * factor
    }
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    /// Values and gradients against the closed form (slope where x < 0, 1 where x > 0), in
    /// f32 and f64, on both paths (with and without a graph).
    #[test]
    fn leaky_relu_values_and_gradient() {
        for kind in [Kind::Float, Kind::Double] {
            let act = super::LeakyRelu::new(0.2);
            let x = Tensor::from_slice(&[-2.0f64, -0.5, 3.0])
                .to_kind(kind)
                .set_requires_grad(true);
            let plain = act.forward(&x.detach());
            let y = act.forward(&x);
            assert!(plain.equal(&y.detach()));
            assert_eq!(y.kind(), kind);
            let v = Vec::<f64>::try_from(&y).unwrap();
            for (a, b) in v.iter().zip([-0.4, -0.1, 3.0]) {
                assert!((a - b).abs() < 1e-6, "{v:?}");
            }
            y.sum(Kind::Double).backward();
            let g = Vec::<f64>::try_from(x.grad()).unwrap();
            let want = [0.2, 0.2, 1.0];
            for (a, b) in g.iter().zip(want) {
                assert!((a - b).abs() < 1e-7, "{g:?}");
            }
        }
    }
}
