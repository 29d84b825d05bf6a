//! How D(y, t) sees t. Diffusion-GAN Appendix H injects t through StyleGAN2's mapping
//! network in place of the class label; for our MLP and conv discriminators we use the
//! same idea in its simplest form: a fixed sinusoidal code of t (Vaswani et al. 2017, as
//! in DDPM) followed by a learned two-layer MLP (the "mapping network"), whose output is
//! added to D's first hidden layer. t = 0 (no diffusion) is an ordinary input.

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::error::{GanError, Result};

/// sin/cos code of integer steps `t` ([n], Int64) with `dim` (even) channels and periods
/// from 2π to 2π·10000: [n, dim] in float32.
pub fn sinusoidal_embedding(t: &Tensor, dim: i64) -> Tensor {
    sinusoidal_code(t, &sinusoidal_freqs(dim, t.device()))
}

/// The `dim / 2` angular frequencies 10000^(−k/(dim/2)) of [`sinusoidal_embedding`].
fn sinusoidal_freqs(dim: i64, device: Device) -> Tensor {
    let half = dim / 2;
    (Tensor::arange(half, (Kind::Float, device)) * (-(10000f64.ln()) / half as f64))
        .exp()
        .unsqueeze(0)
}

fn sinusoidal_code(t: &Tensor, freqs: &Tensor) -> Tensor {
    let args = t.to_kind(Kind::Float).unsqueeze(1) * freqs;
    Tensor::cat(&[args.sin(), args.cos()], 1)
}

/// Config of the learned timestep embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimestepEmbeddingConfig {
    /// Channels of the sinusoidal code (even).
    pub code_dim: i64,
}

impl Default for TimestepEmbeddingConfig {
    fn default() -> Self {
        Self { code_dim: 32 }
    }
}

impl TimestepEmbeddingConfig {
    /// Checks the fields; `prefix` is the TOML section used in error messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if self.code_dim < 2 || self.code_dim % 2 != 0 || self.code_dim > 4096 {
            return Err(GanError::config(
                format!("{prefix}.code_dim"),
                format!("must be even and in [2, 4096], got {}", self.code_dim),
            ));
        }
        Ok(())
    }

    /// Builds the embedding producing `out_dim` channels under `path`.
    pub fn init(&self, path: nn::Path, out_dim: i64) -> TimestepEmbedding {
        let hidden = out_dim;
        TimestepEmbedding {
            freqs: sinusoidal_freqs(self.code_dim, path.device()),
            act: super::LeakyRelu::new(0.2),
            fc1: nn::linear(&path / "fc1", self.code_dim, hidden, Default::default()),
            fc2: nn::linear(&path / "fc2", hidden, out_dim, Default::default()),
        }
    }
}

/// sinusoidal code → Linear → LeakyReLU(0.2) → Linear.
#[derive(Debug)]
pub struct TimestepEmbedding {
    freqs: Tensor,
    act: super::LeakyRelu,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl TimestepEmbedding {
    /// Embeds steps `t` ([n], Int64) to [n, out_dim].
    pub fn forward(&self, t: &Tensor) -> Tensor {
        use tch::nn::Module;
        let code = sinusoidal_code(t, &self.freqs);
        self.fc2
            .forward(&self.act.forward(&self.fc1.forward(&code)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_of_zero_and_distinct_steps() {
        let t = Tensor::from_slice(&[0i64, 1, 500]);
        let e = sinusoidal_embedding(&t, 8);
        assert_eq!(e.size(), vec![3, 8]);
        // t = 0: sin = 0, cos = 1.
        assert_eq!(
            Vec::<f32>::try_from(e.get(0)).unwrap(),
            vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        );
        let d = (e.get(1) - e.get(2))
            .abs()
            .sum(Kind::Float)
            .double_value(&[]);
        assert!(d > 0.5);
    }
}
