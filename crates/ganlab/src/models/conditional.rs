//! Class-conditional G and D around any family (gan-lecture.txt, conditional GANs):
//!
//! - G(z, c) = G_inner([z, E_G(c)]): a learned class embedding concatenated to z (the inner
//!   generator is built for latent_dim + embed_dim inputs).
//! - D(y, t, c) = ψ(φ(y, t)) + ⟨E_D(c), φ(y, t)⟩: the projection discriminator (Miyato &
//!   Koyama 2018) on the inner D's features φ and score ψ.
//!
//! Without labels, G draws balanced labels (sample i gets class i mod K) and D returns the
//! unconditional part ψ(φ) (used by refinement and evaluation, which have no labels). With
//! `mismatched = true` the trainer adds the lecture's (GAN-CLS) negatives: real images paired
//! with a wrong label are scored as fakes.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::{Discriminator, Generator};
use crate::error::{GanError, Result};

/// `[model.conditional]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConditionalConfig {
    /// Number of classes; 0 = unconditional.
    pub num_classes: i64,
    /// Size of G's class embedding.
    pub embed_dim: i64,
    /// Add real-image/wrong-label pairs as negatives for D.
    pub mismatched: bool,
}

impl Default for ConditionalConfig {
    fn default() -> Self {
        Self {
            num_classes: 0,
            embed_dim: 16,
            mismatched: false,
        }
    }
}

impl ConditionalConfig {
    /// Checks every field; `prefix` names the section in errors.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(0..=100_000).contains(&self.num_classes) {
            return Err(GanError::config(
                format!("{prefix}.num_classes"),
                format!("must be in [0, 100000], got {}", self.num_classes),
            ));
        }
        if !(1..=4096).contains(&self.embed_dim) {
            return Err(GanError::config(
                format!("{prefix}.embed_dim"),
                format!("must be in [1, 4096], got {}", self.embed_dim),
            ));
        }
        if self.mismatched && self.num_classes < 2 {
            return Err(GanError::config(
                format!("{prefix}.mismatched"),
                "needs num_classes ≥ 2",
            ));
        }
        Ok(())
    }

    /// True when the models are conditional.
    pub fn enabled(&self) -> bool {
        self.num_classes > 0
    }
}

/// Balanced labels for `n` samples without labels: i mod K.
pub fn balanced_labels(n: i64, classes: i64, device: tch::Device) -> Tensor {
    Tensor::arange(n, (Kind::Int64, device)).remainder(classes)
}

/// G(z, c) = G_inner([z, E(c)]).
#[derive(Debug)]
pub struct ConditionalGenerator {
    inner: Box<dyn Generator>,
    embed: nn::Embedding,
    classes: i64,
    z_dim: i64,
}

impl ConditionalGenerator {
    /// Wraps `inner`, built for `z_dim + cfg.embed_dim` inputs; the embedding lives under `path`.
    pub fn new(inner: Box<dyn Generator>, path: nn::Path, cfg: &ConditionalConfig) -> Self {
        let z_dim = inner.latent_dim() - cfg.embed_dim;
        Self {
            embed: nn::embedding(path, cfg.num_classes, cfg.embed_dim, Default::default()),
            inner,
            classes: cfg.num_classes,
            z_dim,
        }
    }
}

impl Generator for ConditionalGenerator {
    fn forward(&self, z: &Tensor) -> Tensor {
        let c = balanced_labels(z.size()[0], self.classes, z.device());
        self.forward_c(z, Some(&c))
    }

    fn latent_dim(&self) -> i64 {
        self.z_dim
    }

    fn forward_c(&self, z: &Tensor, c: Option<&Tensor>) -> Tensor {
        let Some(c) = c else {
            return self.forward(z);
        };
        self.inner
            .forward(&Tensor::cat(&[z, &self.embed.forward(c)], 1))
    }

    fn num_classes(&self) -> i64 {
        self.classes
    }
}

/// D(y, t, c) = ψ(φ) + ⟨E(c), φ⟩.
#[derive(Debug)]
pub struct ConditionalDiscriminator {
    inner: Box<dyn Discriminator>,
    embed: nn::Embedding,
}

impl ConditionalDiscriminator {
    /// Wraps `inner`; the projection embedding (classes × feature_dim) lives under `path`.
    pub fn new(inner: Box<dyn Discriminator>, path: nn::Path, classes: i64) -> Self {
        let f = inner.feature_dim();
        let init = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0 / (f as f64).sqrt(),
            },
            ..Default::default()
        };
        Self {
            embed: nn::embedding(path, classes, f, init),
            inner,
        }
    }
}

impl Discriminator for ConditionalDiscriminator {
    fn forward(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.inner.forward(y, t)
    }

    fn features(&self, y: &Tensor, t: &Tensor) -> Tensor {
        self.inner.features(y, t)
    }

    fn feature_dim(&self) -> i64 {
        self.inner.feature_dim()
    }

    fn score_and_features(&self, y: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        self.inner.score_and_features(y, t)
    }

    fn forward_c(&self, y: &Tensor, t: &Tensor, c: Option<&Tensor>) -> Tensor {
        let Some(c) = c else {
            return self.forward(y, t);
        };
        let (score, phi) = self.inner.score_and_features(y, t);
        let proj = (self.embed.forward(c) * &phi).sum_dim_intlist(1, true, phi.kind());
        score + proj
    }

    fn batch_independent(&self) -> bool {
        self.inner.batch_independent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::mlp::MlpConfig;
    use tch::Device;

    /// The projection is exactly ψ(φ) + ⟨E(c), φ⟩ (to 1e-6); labels change G's output and
    /// D's score; without labels G cycles classes and D gives ψ(φ).
    #[test]
    fn projection_and_embedding() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(14);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ConditionalConfig {
            num_classes: 5,
            embed_dim: 4,
            mismatched: true,
        };
        cfg.validate("model.conditional").unwrap();
        let mlp = MlpConfig {
            latent_dim: 2 + 4,
            hidden: 16,
            ..Default::default()
        };
        let g = ConditionalGenerator::new(
            Box::new(mlp.init_generator(vs.root() / "g")),
            vs.root() / "g" / "class_embed",
            &cfg,
        );
        let d = ConditionalDiscriminator::new(
            Box::new(mlp.init_discriminator(vs.root() / "d", false)),
            vs.root() / "d" / "class_embed",
            5,
        );
        assert_eq!(g.latent_dim(), 2);
        let z = Tensor::randn([6, 2], (Kind::Float, Device::Cpu));
        let c0 = Tensor::zeros([6], (Kind::Int64, Device::Cpu));
        let c1 = Tensor::ones([6], (Kind::Int64, Device::Cpu));
        assert!(!g
            .forward_c(&z, Some(&c0))
            .equal(&g.forward_c(&z, Some(&c1))));
        let balanced = balanced_labels(6, 5, Device::Cpu);
        assert!(g.forward(&z).equal(&g.forward_c(&z, Some(&balanced))));
        let t = Tensor::zeros([6], (Kind::Int64, Device::Cpu));
        let x = g.forward(&z);
        let (psi, phi) = d.score_and_features(&x, &t);
        let expect = &psi + (d.embed.forward(&c1) * &phi).sum_dim_intlist(1, true, Kind::Float);
        let got = d.forward_c(&x, &t, Some(&c1));
        assert!((got - expect).abs().max().double_value(&[]) < 1e-6);
        assert!(d.forward(&x, &t).equal(&psi));
        let e = ConditionalConfig {
            num_classes: 1,
            mismatched: true,
            ..Default::default()
        }
        .validate("model.conditional")
        .unwrap_err();
        assert!(
            e.to_string().contains("model.conditional.mismatched"),
            "{e}"
        );
    }
}
