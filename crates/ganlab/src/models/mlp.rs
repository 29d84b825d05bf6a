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
    /// Scale s of the data in the networks' units: G(z) = s·net(z) and D(y, t) = net(y/s, t),
    /// i.e. the networks work on data divided by s, as a data standardisation would, while
    /// samples, the diffusion noise (σ) and every metric stay in data units. The 25-Gaussian
    /// grid spans ±4, so s = 4 puts it in [-1, 1]. 1 = no scaling.
    pub data_scale: f64,
    /// Timestep embedding of D.
    pub t_embedding: TimestepEmbeddingConfig,
    /// Also condition D's output on t by projection, as StyleGAN2's D conditions on its
    /// mapping-network output (Diffusion-GAN Appendix H injects t there):
    /// D(y, t) = ψ(φ) + ⟨E(t), φ⟩/√hidden, with φ the last hidden layer and E(t) the same
    /// embedding that is added to the first layer. Off: t enters the first layer only.
    pub t_projection: bool,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            data_dim: 2,
            latent_dim: 2,
            hidden: 128,
            layers: 2,
            leaky_slope: 0.2,
            data_scale: 1.0,
            t_embedding: Default::default(),
            t_projection: false,
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
        // G's weight matrices (D's are as many; biases and the t-embedding are few).
        let (h, l) = (self.hidden, self.layers as i64);
        let params = (self.latent_dim + self.data_dim) * h + (l - 1) * h * h;
        if params > super::MAX_PARAMS {
            return Err(GanError::config(
                format!("{prefix}.hidden"),
                format!(
                    "{h} units × {l} layers need about {params} parameters per network, more \
                     than the limit of {} (1 GiB of weights); use fewer units or layers",
                    super::MAX_PARAMS
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.leaky_slope) {
            return Err(GanError::config(
                format!("{prefix}.leaky_slope"),
                format!("must be in [0, 1), got {}", self.leaky_slope),
            ));
        }
        if !(self.data_scale > 0.0 && self.data_scale <= 1e6) {
            return Err(GanError::config(
                format!("{prefix}.data_scale"),
                format!("must be in (0, 1e6], got {}", self.data_scale),
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
            scale: self.data_scale,
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
            inv_scale: 1.0 / self.data_scale,
            projection: (with_t && self.t_projection).then(|| 1.0 / (self.hidden as f64).sqrt()),
        }
    }
}

/// z → [Linear → LeakyReLU] × layers → Linear → ×data_scale.
#[derive(Debug)]
pub struct MlpGenerator {
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    act: LeakyRelu,
    latent_dim: i64,
    scale: f64,
}

impl Generator for MlpGenerator {
    fn forward(&self, z: &Tensor) -> Tensor {
        let h = self
            .layers
            .iter()
            .fold(z.shallow_clone(), |h, l| self.act.forward(&l.forward(&h)));
        let x = self.out.forward(&h);
        if self.scale == 1.0 {
            x
        } else {
            x * self.scale
        }
    }

    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
}

/// (y, t) → LeakyReLU(Linear(y/data_scale) [+ E(t)]) → [Linear → LeakyReLU] × (layers − 1)
/// → Linear.
#[derive(Debug)]
pub struct MlpDiscriminator {
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    t_embed: Option<TimestepEmbedding>,
    act: LeakyRelu,
    inv_scale: f64,
    /// 1/√hidden when the output is also conditioned on t by projection.
    projection: Option<f64>,
}

impl MlpDiscriminator {
    /// The last hidden layer φ(y, t) and E(t) (when D takes t).
    fn hidden_and_embedding(&self, y: &Tensor, t: &Tensor) -> (Tensor, Option<Tensor>) {
        let h0 = if self.inv_scale == 1.0 {
            self.layers[0].forward(y)
        } else {
            self.layers[0].forward(&(y * self.inv_scale))
        };
        let e = self.t_embed.as_ref().map(|e| e.forward(t));
        let mut h = match &e {
            Some(e) => self.act.forward(&(h0 + e)),
            None => self.act.forward(&h0),
        };
        for l in &self.layers[1..] {
            h = self.act.forward(&l.forward(&h));
        }
        (h, e)
    }

    /// ψ(φ) [+ ⟨E(t), φ⟩/√hidden].
    fn score(&self, f: &Tensor, e: Option<&Tensor>) -> Tensor {
        let s = self.out.forward(f);
        match (self.projection, e) {
            (Some(k), Some(e)) => s + (f * e).sum_dim_intlist(1, true, f.kind()) * k,
            _ => s,
        }
    }
}

impl Discriminator for MlpDiscriminator {
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.score_and_features(y, t).0
    }

    fn feature_dim(&self) -> i64 {
        self.out.ws.size()[1]
    }

    fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let (f, e) = self.hidden_and_embedding(y, t);
        (self.score(&f, e.as_ref()), f)
    }

    fn features(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.hidden_and_embedding(y, t).0
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
        let err = MlpConfig {
            hidden: 0,
            ..cfg.clone()
        }
        .validate("model")
        .unwrap_err();
        assert!(err.to_string().contains("model.hidden"));
        // Issue 18 item 5: 65,536 units pass the per-field range but need 2^32 weights.
        let err = MlpConfig {
            hidden: 65536,
            ..cfg
        }
        .validate("model")
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("model.hidden") && err.contains("1 GiB"),
            "{err}"
        );
    }

    /// data_scale s: G_s(z) = s·G_1(z) and D_s(y, t) = D_1(y/s, t) with the same weights;
    /// t_projection adds exactly ⟨E(t), φ⟩/√hidden to the score. Tolerance 1e-5 (f32).
    #[test]
    fn data_scale_and_t_projection_closed_forms() {
        let _rng = crate::test_rng_lock();
        let o = (Kind::Float, tch::Device::Cpu);
        let build = |cfg: &MlpConfig| {
            tch::manual_seed(3);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let g = cfg.init_generator(vs.root() / "g");
            let d = cfg.init_discriminator(vs.root() / "d", true);
            (vs, g, d)
        };
        let max_diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        let plain = MlpConfig::default();
        let scaled = MlpConfig {
            data_scale: 4.0,
            ..plain.clone()
        };
        let (_v1, g1, d1) = build(&plain);
        let (_v4, g4, d4) = build(&scaled);
        let z = Tensor::randn([6, 2], o);
        let y = Tensor::randn([6, 2], o) * 3.0;
        let t = Tensor::from_slice(&[0i64, 5, 50, 100, 250, 499]);
        assert!(max_diff(&g4.forward(&z), &(g1.forward(&z) * 4.0)) < 1e-5);
        assert!(max_diff(&d4.forward(&y, &t), &d1.forward(&(&y / 4.0), &t)) < 1e-5);

        let projected = MlpConfig {
            t_projection: true,
            ..plain.clone()
        };
        let (_vp, _gp, dp) = build(&projected);
        let (phi, e) = dp.hidden_and_embedding(&y, &t);
        let e = e.expect("D takes t");
        let expect = dp.out.forward(&phi)
            + (&phi * &e).sum_dim_intlist(1, true, Kind::Float) / (plain.hidden as f64).sqrt();
        assert!(max_diff(&dp.forward(&y, &t), &expect) < 1e-5);
        // Same weights without projection: the scores differ by the projection term.
        assert!(max_diff(&dp.forward(&y, &t), &d1.forward(&y, &t)) > 1e-3);
    }
}
