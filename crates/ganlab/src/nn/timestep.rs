//! How D(y, t) sees t. Diffusion-GAN Appendix H injects t through StyleGAN2's mapping
//! network in place of the class label; for our MLP and conv discriminators we use the
//! same idea in its simplest form: a fixed sinusoidal code of t (Vaswani et al. 2017, as
//! in DDPM) followed by a learned two-layer MLP (the "mapping network"), whose output is
//! added to D's first hidden layer (SNGAN's D projects its features onto it at the output
//! instead, `crate::models::sngan`). t = 0 (no diffusion) is an ordinary input.
//!
//! A spectrally normalised discriminator bounds only its image path; its t path is then
//! built by [`TimestepEmbeddingConfig::init_sn`] (both layers normalised, as SNGAN's
//! projection discriminator normalises its class embedding), so that the embedding moves
//! no more than the sinusoidal code does: ‖e(t) − e(t')‖ ≤ ‖code(t) − code(t')‖ at any
//! weights (LeakyReLU is 1-Lipschitz). Without it, Diffusion-SNGAN's embedding grew to
//! ‖e(t) − e(0)‖ ≈ 5 at t ≤ 5 and D's score followed t (docs/DIFFUSION-GAN.md).

use serde::{Deserialize, Serialize};
use tch::nn::Module;
use tch::{nn, Device, Kind, Tensor};

use super::{sn_linear, SnLinear};
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
        let fc = |p: nn::Path, i, o| Fc::Plain(nn::linear(p, i, o, Default::default()));
        self.build(&path, out_dim, fc)
    }

    /// [`TimestepEmbeddingConfig::init`] with both layers spectrally normalised (for
    /// spectrally normalised discriminators; see the module docs).
    pub fn init_sn(&self, path: nn::Path, out_dim: i64) -> TimestepEmbedding {
        self.build(&path, out_dim, |p, i, o| Fc::Sn(sn_linear(p, i, o)))
    }

    fn build(
        &self,
        path: &nn::Path,
        out_dim: i64,
        fc: impl Fn(nn::Path, i64, i64) -> Fc,
    ) -> TimestepEmbedding {
        let hidden = out_dim;
        TimestepEmbedding {
            freqs: sinusoidal_freqs(self.code_dim, path.device()),
            act: super::LeakyRelu::new(0.2),
            fc1: fc(path / "fc1", self.code_dim, hidden),
            fc2: fc(path / "fc2", hidden, out_dim),
        }
    }
}

/// One linear layer of the embedding, plain or spectrally normalised.
#[derive(Debug)]
enum Fc {
    Plain(nn::Linear),
    Sn(SnLinear),
}

impl Fc {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Fc::Plain(l) => l.forward(x),
            Fc::Sn(l) => l.forward(x),
        }
    }
}

/// Multiplies by `k` every trainable variable of `vs` whose name passes `pick` (a power
/// iteration's `sn_u` state is left alone): weights grown as training can grow them.
#[cfg(test)]
pub(crate) fn scale_weights(vs: &nn::VarStore, pick: impl Fn(&str) -> bool, k: f64) {
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            if pick(&name) && !name.ends_with("sn_u") {
                v.copy_(&(&v * k));
            }
        }
    });
}

/// sinusoidal code → Linear → LeakyReLU(0.2) → Linear.
#[derive(Debug)]
pub struct TimestepEmbedding {
    freqs: Tensor,
    act: super::LeakyRelu,
    fc1: Fc,
    fc2: Fc,
}

impl TimestepEmbedding {
    /// Embeds steps `t` ([n], Int64) to [n, out_dim].
    pub fn forward(&self, t: &Tensor) -> Tensor {
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

    /// The spectrally normalised embedding moves no more than its sinusoidal code, whatever
    /// the scale of its weights (closed form: two 1-Lipschitz layers and a 1-Lipschitz
    /// activation); the plain one, given the same weights, does not — a t path that can
    /// outgrow a spectrally normalised image path fails here. Weights and biases ×100
    /// stand for what training did to Diffusion-SNGAN's embedding. Tolerance 1e-3
    /// relative: σ(W) is a power-iteration estimate, settled by 200 calls first.
    #[test]
    fn sn_embedding_is_bounded_by_its_code() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(3);
        let cfg = TimestepEmbeddingConfig::default();
        let t = Tensor::from_slice(&[0i64, 1, 2, 5, 40, 500]);
        let code = sinusoidal_embedding(&t, cfg.code_dim);
        for sn in [true, false] {
            let vs = nn::VarStore::new(Device::Cpu);
            let e = if sn {
                cfg.init_sn(vs.root() / "e", 64)
            } else {
                cfg.init(vs.root() / "e", 64)
            };
            scale_weights(&vs, |_| true, 100.0);
            for _ in 0..200 {
                let _ = e.forward(&t);
            }
            let out = e.forward(&t);
            let mut worst = 0f64;
            for i in 0..6 {
                for j in 0..i {
                    let de = (out.get(i) - out.get(j)).norm().double_value(&[]);
                    let dc = (code.get(i) - code.get(j)).norm().double_value(&[]);
                    worst = worst.max(de / dc);
                }
            }
            if sn {
                assert!(worst <= 1.0 + 1e-3, "SN embedding stretches t by {worst}");
            } else {
                assert!(worst > 10.0, "plain embedding at ×100 weights: {worst}");
            }
        }
    }
}
