//! MLP generator and discriminator for points and feature vectors: Diffusion-GAN §4.2
//! ("generator and discriminator are both parameterized by MLPs with two 128-unit
//! hidden layers and LeakyReLU nonlinearities"). D receives t through
//! [`crate::nn::TimestepEmbedding`], added to its first hidden layer.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use super::{Discriminator, Generator};
use crate::error::{GanError, Result};
use crate::nn::{LeakyRelu, TimestepEmbedding, TimestepEmbeddingConfig};

/// Shape of both MLPs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Dimension of the data (2 for points).
    pub data_dim: i64,
    /// Dimension of z ~ N(0, I).
    pub latent_dim: i64,
    /// Units per hidden layer (paper: 128).
    pub hidden: i64,
    /// Number of hidden layers (paper: 2).
    pub layers: usize,
    /// Negative slope of LeakyReLU (GAN hacks: 0.2).
    pub leaky_slope: f64,
    /// Timestep embedding of D.
    pub t_embedding: TimestepEmbeddingConfig,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            data_dim: 2,
            latent_dim: 2,
            hidden: 128,
            layers: 2,
            leaky_slope: 0.2,
            t_embedding: Default::default(),
        }
    }
}

impl MlpConfig {
    /// Checks every field; `prefix` is the TOML section used in error messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let range = |name: &str, v: i64, lo: i64, hi: i64| {
            if v < lo || v > hi {
                Err(GanError::config(
                    format!("{prefix}.{name}"),
                    format!("must be in [{lo}, {hi}], got {v}"),
                ))
            } else {
                Ok(())
            }
        };
        range("data_dim", self.data_dim, 1, 1 << 20)?;
        range("latent_dim", self.latent_dim, 1, 1 << 16)?;
        range("hidden", self.hidden, 1, 1 << 16)?;
        range("layers", self.layers as i64, 1, 64)?;
        if !(0.0..1.0).contains(&self.leaky_slope) {
            return Err(GanError::config(
                format!("{prefix}.leaky_slope"),
                format!("must be in [0, 1), got {}", self.leaky_slope),
            ));
        }
        self.t_embedding.validate(&format!("{prefix}.t_embedding"))
    }

    /// Builds the generator under `path`.
    pub fn init_generator(&self, path: nn::Path) -> MlpGenerator {
        let mut layers = Vec::new();
        let mut d = self.latent_dim;
        for i in 0..self.layers {
            layers.push(nn::linear(
                &path / format!("fc{i}"),
                d,
                self.hidden,
                Default::default(),
            ));
            d = self.hidden;
        }
        let out = nn::linear(&path / "out", d, self.data_dim, Default::default());
        MlpGenerator {
            layers,
            out,
            act: LeakyRelu::new(self.leaky_slope),
            latent_dim: self.latent_dim,
        }
    }

    /// Builds the discriminator under `path`; `with_t`: D(y, t) with a timestep embedding
    /// (Diffusion-GAN), else D(y) ignores t (a vanilla GAN has no t input).
    pub fn init_discriminator(&self, path: nn::Path, with_t: bool) -> MlpDiscriminator {
        let mut layers = Vec::new();
        let mut d = self.data_dim;
        for i in 0..self.layers {
            layers.push(nn::linear(
                &path / format!("fc{i}"),
                d,
                self.hidden,
                Default::default(),
            ));
            d = self.hidden;
        }
        let out = nn::linear(&path / "out", d, 1, Default::default());
        let t_embed = with_t.then(|| self.t_embedding.init(&path / "t_embed", self.hidden));
        MlpDiscriminator {
            layers,
            out,
            t_embed,
            act: LeakyRelu::new(self.leaky_slope),
        }
    }
}

/// z → [Linear → LeakyReLU] × layers → Linear.
#[derive(Debug)]
pub struct MlpGenerator {
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    act: LeakyRelu,
    latent_dim: i64,
}

impl Generator for MlpGenerator {
    fn forward(&self, z: &Tensor) -> Tensor {
        let h = self
            .layers
            .iter()
            .fold(z.shallow_clone(), |h, l| self.act.forward(&l.forward(&h)));
        self.out.forward(&h)
    }

    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
}

/// (y, t) → LeakyReLU(Linear(y) [+ E(t)]) → [Linear → LeakyReLU] × (layers − 1) → Linear.
#[derive(Debug)]
pub struct MlpDiscriminator {
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    t_embed: Option<TimestepEmbedding>,
    act: LeakyRelu,
}

impl Discriminator for MlpDiscriminator {
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.out.forward(&self.features(y, t))
    }

    fn feature_dim(&self) -> i64 {
        self.out.ws.size()[1]
    }

    fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let f = self.features(y, t);
        (self.out.forward(&f), f)
    }

    fn features(&self, y: &Tensor, t: &Tensor) -> Tensor {
        let h0 = self.layers[0].forward(y);
        let mut h = match &self.t_embed {
            Some(e) => self.act.forward(&(h0 + e.forward(t))),
            None => self.act.forward(&h0),
        };
        for l in &self.layers[1..] {
            h = self.act.forward(&l.forward(&h));
        }
        h
    }

    fn batch_independent(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn shapes_and_t_dependence() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = MlpConfig::default();
        let g = cfg.init_generator(vs.root() / "g");
        let d = cfg.init_discriminator(vs.root() / "d", true);
        let z = Tensor::randn([5, 2], (Kind::Float, tch::Device::Cpu));
        let x = g.forward(&z);
        assert_eq!(x.size(), vec![5, 2]);
        let s0 = d.forward(&x, &Tensor::zeros([5], (Kind::Int64, tch::Device::Cpu)));
        let s1 = d.forward(&x, &Tensor::full([5], 300, (Kind::Int64, tch::Device::Cpu)));
        assert_eq!(s0.size(), vec![5, 1]);
        assert!(
            (s0 - s1).abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "D must depend on t"
        );
        let plain = cfg.init_discriminator(vs.root() / "plain", false);
        let p0 = plain.forward(&x, &Tensor::zeros([5], (Kind::Int64, tch::Device::Cpu)));
        let p1 = plain.forward(&x, &Tensor::full([5], 300, (Kind::Int64, tch::Device::Cpu)));
        assert!(p0.equal(&p1), "a D built without t must ignore t");
        let err = MlpConfig { hidden: 0, ..cfg }
            .validate("model")
            .unwrap_err();
        assert!(err.to_string().contains("model.hidden"));
    }
}
