//! Adversarial objectives of gan-lecture.txt, on D's raw outputs (logits for the
//! log-loss family):
//!
//! * `minimax`: D minimises −log σ(D(x)) − log(1 − σ(D(G(z)))); G minimises
//!   log(1 − σ(D(G(z)))) (saturating, Goodfellow et al. 2014).
//! * `non_saturating`: same D; G minimises −log σ(D(G(z))).
//! * `lsgan`: D minimises ½(D(x) − 1)² + ½D(G(z))²; G minimises ½(D(G(z)) − 1)² (Mao et al.).
//! * `wgan`: critic minimises E D(G(z)) − E D(x), G minimises −E D(G(z)); weights clipped to
//!   [−c, c] after every critic step, n_critic critic steps per G step, RMSProp with
//!   lr 5e-5 (the lecture's Algorithm 1: α = 0.00005, c = 0.01, m = 64, n_critic = 5).
//! * `hinge`: D minimises E relu(1 − D(x)) + E relu(1 + D(G(z))); G minimises −E D(G(z)).
//!
//! One-sided label smoothing (GAN hacks: real target 0.9) applies to the log-loss and
//! LSGAN real targets.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{GanError, Result};

/// Which adversarial loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Saturating minimax game.
    Minimax,
    /// Non-saturating generator loss (the usual choice).
    NonSaturating,
    /// Least squares GAN.
    Lsgan,
    /// Wasserstein GAN with weight clipping.
    Wgan,
    /// Hinge loss.
    Hinge,
}

/// The objective section of a training config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveConfig {
    /// The adversarial loss.
    pub kind: ObjectiveKind,
    /// Target for real samples (1.0 = none; 0.9 = one-sided label smoothing). Log-loss and LSGAN only.
    pub real_label: f64,
    /// Discriminator (critic) steps per generator step (WGAN: 5).
    pub n_critic: usize,
    /// Weight clipping bound c after each D step (WGAN: 0.01); 0 disables clipping.
    pub clip: f64,
    /// R1 penalty weight γ: (γ/2)·E‖∇D(y_real)‖² added to D's loss (0 = off).
    pub r1_gamma: f64,
    /// Lazy regularisation (StyleGAN2 §B, "reg interval" 16 in its official code): R1 is
    /// added on every `r1_every`-th D step only, with weight γ·`r1_every`, so its expected
    /// weight per step is unchanged (1: every step). Unlike the official code, which spends
    /// a separate optimizer step on the penalty (and rescales Adam's lr and betas by 16/17
    /// for it), the penalty joins that step's loss: one D update per D step either way.
    pub r1_every: u64,
    /// WGAN-GP weight λ: λ·E(‖∇D(ŷ)‖ − 1)² on real/fake interpolates (0 = off; 10 with
    /// `kind = "wgan"` and `clip = 0` is WGAN-GP).
    pub gp_lambda: f64,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            kind: ObjectiveKind::NonSaturating,
            real_label: 1.0,
            n_critic: 1,
            clip: 0.0,
            r1_gamma: 0.0,
            r1_every: 1,
            gp_lambda: 0.0,
        }
    }
}

impl ObjectiveConfig {
    /// The lecture's WGAN setting: n_critic = 5, c = 0.01 (pair it with RMSProp, lr 5e-5).
    pub fn wgan() -> Self {
        Self {
            kind: ObjectiveKind::Wgan,
            real_label: 1.0,
            n_critic: 5,
            clip: 0.01,
            ..Self::default()
        }
    }

    /// Checks every field; `prefix` is the TOML section used in error messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(self.real_label > 0.5 && self.real_label <= 1.0) {
            return Err(GanError::config(
                format!("{prefix}.real_label"),
                format!("must be in (0.5, 1], got {}", self.real_label),
            ));
        }
        if self.real_label != 1.0 && matches!(self.kind, ObjectiveKind::Wgan | ObjectiveKind::Hinge)
        {
            return Err(GanError::config(
                format!("{prefix}.real_label"),
                "label smoothing applies to minimax, non_saturating and lsgan only",
            ));
        }
        if !(1..=100).contains(&self.n_critic) {
            return Err(GanError::config(
                format!("{prefix}.n_critic"),
                format!("must be in [1, 100], got {}", self.n_critic),
            ));
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return Err(GanError::config(
                format!("{prefix}.clip"),
                format!("must be >= 0, got {}", self.clip),
            ));
        }
        if !(1..=1000).contains(&self.r1_every) {
            return Err(GanError::config(
                format!("{prefix}.r1_every"),
                format!("must be in [1, 1000], got {}", self.r1_every),
            ));
        }
        for (name, v) in [("r1_gamma", self.r1_gamma), ("gp_lambda", self.gp_lambda)] {
            if !(0.0..=1e6).contains(&v) {
                return Err(GanError::config(
                    format!("{prefix}.{name}"),
                    format!("must be in [0, 1e6], got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// A validated objective.
#[derive(Debug, Clone)]
pub struct Objective {
    cfg: ObjectiveConfig,
}

impl Objective {
    /// Validates and wraps the config.
    pub fn new(cfg: ObjectiveConfig) -> Result<Self> {
        cfg.validate("objective")?;
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &ObjectiveConfig {
        &self.cfg
    }

    /// Discriminator loss from D's outputs on real and generated samples.
    pub fn d_loss(&self, real: &Tensor, fake: &Tensor) -> Tensor {
        let s = self.cfg.real_label;
        match self.cfg.kind {
            ObjectiveKind::Minimax | ObjectiveKind::NonSaturating => {
                // BCE(r, s) = s·softplus(−r) + (1 − s)·softplus(r); BCE(f, 0) = softplus(f).
                let real_term = if s == 1.0 {
                    (-real).softplus().mean(Kind::Float)
                } else {
                    ((-real).softplus() * s + real.softplus() * (1.0 - s)).mean(Kind::Float)
                };
                real_term + fake.softplus().mean(Kind::Float)
            }
            ObjectiveKind::Lsgan => {
                ((real - s).square().mean(Kind::Float) + fake.square().mean(Kind::Float)) * 0.5
            }
            ObjectiveKind::Wgan => fake.mean(Kind::Float) - real.mean(Kind::Float),
            ObjectiveKind::Hinge => {
                (-real + 1.0).relu().mean(Kind::Float) + (fake + 1.0).relu().mean(Kind::Float)
            }
        }
    }

    /// Generator loss from D's outputs on generated samples.
    pub fn g_loss(&self, fake: &Tensor) -> Tensor {
        match self.cfg.kind {
            ObjectiveKind::Minimax => -fake.softplus().mean(Kind::Float),
            ObjectiveKind::NonSaturating => (-fake).softplus().mean(Kind::Float),
            ObjectiveKind::Lsgan => (fake - 1.0).square().mean(Kind::Float) * 0.5,
            ObjectiveKind::Wgan | ObjectiveKind::Hinge => -fake.mean(Kind::Float),
        }
    }

    /// sign(D(y, t) − 0.5) in the units of this objective: the sign of the logit for the
    /// log-loss family (σ(l) > 0.5 ⇔ l > 0), of D − 0.5 for LSGAN (targets 0 and 1), and of
    /// the raw score for WGAN and hinge (real above 0). Used for r_d of eq. (5).
    pub fn real_signs(&self, real: &Tensor) -> Tensor {
        match self.cfg.kind {
            ObjectiveKind::Lsgan => (real - 0.5).sign(),
            _ => real.sign(),
        }
    }

    /// D's output on the scale plotted as "D(real)/D(fake)": σ(logit) for the log-loss
    /// family, the raw output otherwise.
    pub fn d_score(&self, out: &Tensor) -> Tensor {
        match self.cfg.kind {
            ObjectiveKind::Minimax | ObjectiveKind::NonSaturating => out.sigmoid(),
            _ => out.shallow_clone(),
        }
    }

    /// Weight-clipping bound to apply after each D step, if any.
    pub fn clip(&self) -> Option<f64> {
        (self.cfg.clip > 0.0).then_some(self.cfg.clip)
    }

    /// D steps per G step.
    pub fn n_critic(&self) -> usize {
        self.cfg.n_critic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values: tests/fixtures/objectives_reference.py (PyTorch's own
    /// binary_cross_entropy_with_logits / mse_loss / relu), printed to
    /// tests/fixtures/objectives_reference.txt. Tolerance 1e-6 (f32 arithmetic on O(1) values).
    #[test]
    fn losses_match_pytorch_reference() {
        let r = Tensor::from_slice(&[0.0f32, 2.0, -0.5]);
        let f = Tensor::from_slice(&[-1.0f32, 0.5, 1.5]);
        let obj = |kind, real_label| {
            Objective::new(ObjectiveConfig {
                kind,
                real_label,
                ..Default::default()
            })
            .unwrap()
        };
        let v = |t: Tensor| t.double_value(&[]);
        let cases = [
            (
                v(obj(ObjectiveKind::Minimax, 1.0).d_loss(&r, &f)),
                1.594301375154702,
            ),
            (
                v(obj(ObjectiveKind::Minimax, 1.0).g_loss(&f)),
                -0.996250649893694,
            ),
            (
                v(obj(ObjectiveKind::NonSaturating, 1.0).d_loss(&r, &f)),
                1.594301375154702,
            ),
            (
                v(obj(ObjectiveKind::NonSaturating, 1.0).g_loss(&f)),
                0.662917316560361,
            ),
            (
                v(obj(ObjectiveKind::NonSaturating, 0.9).d_loss(&r, &f)),
                1.644301375154702,
            ),
            (
                v(obj(ObjectiveKind::Lsgan, 1.0).d_loss(&r, &f)),
                1.291666666666667,
            ),
            (v(obj(ObjectiveKind::Lsgan, 1.0).g_loss(&f)), 0.75),
            (
                v(obj(ObjectiveKind::Wgan, 1.0).d_loss(&r, &f)),
                -0.166666666666667,
            ),
            (
                v(obj(ObjectiveKind::Wgan, 1.0).g_loss(&f)),
                -0.333333333333333,
            ),
            (
                v(obj(ObjectiveKind::Hinge, 1.0).d_loss(&r, &f)),
                2.166666666666667,
            ),
            (
                v(obj(ObjectiveKind::Hinge, 1.0).g_loss(&f)),
                -0.333333333333333,
            ),
        ];
        for (i, (got, want)) in cases.iter().enumerate() {
            assert!((got - want).abs() < 1e-6, "case {i}: {got} vs {want}");
        }
    }

    #[test]
    fn signs_and_validation() {
        let out = Tensor::from_slice(&[-0.2f32, 0.3, 0.7]);
        let ns = Objective::new(ObjectiveConfig::default()).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(ns.real_signs(&out)).unwrap(),
            vec![-1.0, 1.0, 1.0]
        );
        let ls = Objective::new(ObjectiveConfig {
            kind: ObjectiveKind::Lsgan,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(ls.real_signs(&out)).unwrap(),
            vec![-1.0, -1.0, 1.0]
        );
        let err = Objective::new(ObjectiveConfig {
            real_label: 0.3,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("objective.real_label"), "{err}");
        let err = Objective::new(ObjectiveConfig {
            n_critic: 0,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("objective.n_critic"), "{err}");
        let w = Objective::new(ObjectiveConfig::wgan()).unwrap();
        assert_eq!((w.n_critic(), w.clip()), (5, Some(0.01)));
    }
}
