//! β schedules of the forward diffusion chain and the cumulative products ᾱ_t.

use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How β_t grows over t = 1..T (Diffusion-GAN Appendix G uses `Linear`; the others are the
/// alternatives of the official code, kept for experiments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// β_t linear from `beta_start` to `beta_end` (Ho et al. 2020; the paper's choice).
    #[default]
    Linear,
    /// √β_t linear from √beta_start to √beta_end.
    Quadratic,
    /// Nichol & Dhariwal (2021) cosine schedule, β clipped to 0.999; ignores beta_start/end.
    Cosine,
}

impl BetaSchedule {
    /// β_1..β_T for a chain of `t_max` steps (index 0 holds β_1). `t_max` ≥ 1.
    pub fn betas(self, beta_start: f64, beta_end: f64, t_max: usize) -> Vec<f64> {
        let lin = |a: f64, b: f64, i: usize| {
            if t_max == 1 {
                a
            } else {
                a + (b - a) * i as f64 / (t_max - 1) as f64
            }
        };
        match self {
            BetaSchedule::Linear => (0..t_max).map(|i| lin(beta_start, beta_end, i)).collect(),
            BetaSchedule::Quadratic => (0..t_max)
                .map(|i| lin(beta_start.sqrt(), beta_end.sqrt(), i).powi(2))
                .collect(),
            BetaSchedule::Cosine => {
                let s = 0.008;
                let f = |t: f64| {
                    (((t / t_max as f64) + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (1..=t_max)
                    .map(|t| (1.0 - f(t as f64) / f(t as f64 - 1.0)).clamp(0.0, 0.999))
                    .collect()
            }
        }
    }
}

/// ᾱ_0..ᾱ_T with ᾱ_0 = 1 (no noise at t = 0) and ᾱ_t = Π_{s≤t} (1 − β_s).
pub fn alphas_bar(betas: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(betas.len() + 1);
    let mut acc = 1.0;
    out.push(acc);
    for b in betas {
        acc *= 1.0 - b;
        out.push(acc);
    }
    out
}

/// The forward process q(y_t | y_0) = N(a_t·y_0, b_t²·I), one (a, b) per sample of `x`
/// ([n, ...]), computed in place on `noise` ~ N(0, I) (same shape as `x`, consumed):
/// y = a·x + b·ε. DDPM's and LaDiffGAN's Eq. 2 take a = √ᾱ_t, b = √(1 − ᾱ_t); Diffusion-GAN
/// scales b by its σ. The one q(y_t | y_0) of the codebase: the augment stage, the latent
/// DDPM and LaDiffGAN's latent terms all call it. Differentiable in `x`.
pub fn q_sample(x: &Tensor, noise: Tensor, a: &[f32], b: &[f32]) -> Tensor {
    let n = x.size()[0];
    let mut shape = vec![n];
    shape.extend(std::iter::repeat_n(1, x.dim() - 1));
    let coef = |v: &[f32]| {
        Tensor::from_slice(v)
            .to_kind(x.kind())
            .to_device(x.device())
            .view(shape.as_slice())
    };
    // ε·b + x·a in place on ε: two kernels and one allocation (measured in the
    // diffusion_noise benchmark; the out-of-place form allocates three batch-sized tensors).
    let mut y = noise;
    y *= coef(b);
    let _ = y.addcmul_(x, &coef(a));
    y
}

/// ᾱ_t for each step of `t` ([n], Int64), read from ᾱ_0..ᾱ_T = `ab`.
pub fn alphas_bar_at(ab: &[f64], t: &Tensor) -> crate::error::Result<Vec<f64>> {
    let tv = Vec::<i64>::try_from(t).map_err(|e| crate::error::GanError::Input(e.to_string()))?;
    tv.iter()
        .map(|&t| {
            usize::try_from(t)
                .ok()
                .and_then(|i| ab.get(i))
                .copied()
                .ok_or_else(|| {
                    crate::error::GanError::Input(format!("step {t} outside 0..={}", ab.len() - 1))
                })
        })
        .collect()
}

/// [`q_sample`]'s coefficients for DDPM's forward process (σ = 1): (√ᾱ_t, √(1 − ᾱ_t)) per
/// sample of `abt` (ᾱ_t of each sample, e.g. from [`alphas_bar_at`]).
pub fn ddpm_coefficients(abt: &[f64]) -> (Vec<f32>, Vec<f32>) {
    (
        abt.iter().map(|a| a.sqrt() as f32).collect(),
        abt.iter().map(|a| (1.0 - a).sqrt() as f32).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_endpoints_and_alpha_bar() {
        let b = BetaSchedule::Linear.betas(1e-4, 0.02, 1000);
        assert_eq!(b.len(), 1000);
        assert!((b[0] - 1e-4).abs() < 1e-15 && (b[999] - 0.02).abs() < 1e-15);
        let ab = alphas_bar(&b);
        assert_eq!(ab[0], 1.0);
        assert!(ab.windows(2).all(|w| w[1] < w[0]));
        // Closed form: log ᾱ_T = Σ log(1-β_t); with Σβ = 1000·(1e-4+0.02)/2 = 10.05 and
        // log(1-β) ≈ -β - β²/2, ᾱ_1000 ≈ 4.0e-5 (DDPM's well-known value); 5% tolerance.
        assert!((ab[1000] / 4.04e-5 - 1.0).abs() < 0.05, "{}", ab[1000]);
    }

    #[test]
    fn other_schedules_are_valid() {
        for s in [BetaSchedule::Quadratic, BetaSchedule::Cosine] {
            let b = s.betas(1e-4, 0.02, 50);
            assert!(b.iter().all(|x| *x > 0.0 && *x < 1.0), "{s:?}");
        }
        assert_eq!(BetaSchedule::Linear.betas(1e-4, 0.02, 1), vec![1e-4]);
    }
}
