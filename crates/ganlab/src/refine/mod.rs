//! Latent refinement of a trained GAN: move latent codes z (particles) so that G(z) follows a
//! better distribution, without touching G's or D's weights (latent-optimization-wgf.txt,
//! "generative-model inference"), with the KDE, DOT and DDLS baselines.
//!
//! # Reconstructed equations
//! The seed lost most symbols in extraction; these are the equations implemented, rebuilt
//! from its text and the cited methods.
//!
//! **Target and flow (Theorem 3, eq. 2).** With condition c, the target is
//! p(x|c) ∝ p_data(x)·p(c|x). The Wasserstein gradient flow of KL(q ‖ p(·|c)) moves each
//! sample with velocity
//!   v(x) = ∇ₓ log p_data(x) + ∇ₓ log p(c|x) − ∇ₓ log q(x).
//! A particle is x = G(z), so the chain rule moves the latent code (eq. 6):
//!   z ← z + ε·∇_z[ η_d·log p̂_data(G(z)) − η_e·log q̂(G(z)) + η_D·log σ(d(G(z))) + η_c·log p(c|G(z)) ]
//! where d is D's raw score at t = 0. The seed approximates p(c|x) of plain image generation
//! ("x belongs to the training set") by D: log p(c|x) ≈ log D(x) = log σ(d(x)) (the DDLS
//! gradient); we keep that term (η_D) separate from a user condition (η_c) so both can act.
//!
//! **Kernel (eq. 3).** K(x, x') = exp(−‖h(x) − h(x')‖² / (2b²)) on features h (D's
//! penultimate activations, a named extractor, or the raw data). The regularised kernel is
//! its convolution with a mollifier φ = N(0, s²I) in data space, estimated with M samples:
//!   K̃(x, x') = E_{ξ∼φ} K(x + ξ, x') ≈ (1/M) Σ_m K(x + ξ_m, x').
//! (Theorem 4: the smoothing error is O(s²).) With identity features this has the closed
//! form (b²/(b²+s²))^{D/2} exp(−‖x − x'‖²/(2(b² + s²))), which the tests check.
//! b defaults to the median heuristic: b² = median‖hᵢ − hⱼ‖² / (2 ln(n + 1)).
//!
//! **KRR density (eq. 4, Theorem 5).** q(x) = ∫K̃(x, x')f(x')dx' ≈ (1/n) Σⱼ K̃(x, xⱼ) wⱼ with
//! xⱼ ∼ q. The weights solve the regularised fit
//!   min_w  λ‖w − 1‖² + wᵀK̃w    ⇒    w = λ(K̃ + λI)⁻¹ 1,
//! K̃ the (symmetrised) kernel matrix of the xⱼ; ganlab's `lambda` is relative to ‖K̃‖₂
//! (λ = lambda·‖K̃‖₂), since the seed gives no scale and ‖K̃‖₂ grows with n. Theorem 5 bounds
//! ‖λ(K̃ + λI)⁻¹ − I‖_F ≤ √r‖K̃‖₂/(λ_min(K̃) + λ), so as λ grows w → 1 and the estimator
//! becomes the KDE (1/n) Σⱼ K̃(x, xⱼ) — tested. log p̂_data (eq. 5) is the same estimator on
//! real samples. A negative estimate (possible with signed weights) is clamped, so that
//! particle gets no push from that term.
//!
//! **Baselines.**
//! - `kde` (Zhou, Chen and Xu 2021): the same flow with w = 1 and no mollifier.
//! - `ddls` (Che et al. 2020): Langevin dynamics on the energy E(z) = ‖z‖²/2 − d(G(z)):
//!   z ← z − (ε/2)∇E(z) + √ε·ξ (noise scaled by `langevin_noise`); its stationary law is
//!   p₀(z)e^{d(G(z))}/Z, which for an optimal D is the data distribution pulled back to z.
//! - `dot` (Tanaka 2019, latent-space DOT): with y = the initial code,
//!   z ← z − ε∇_z[ √(‖z − y‖² + δ²) − u(G(z))/k_eff ], u = η_D·d (+ η_c·log p(c|x)),
//!   k_eff = max_{i≠j} |u(G(zᵢ)) − u(G(zⱼ))| / ‖zᵢ − zⱼ‖ over the initial batch. Tanaka uses
//!   Adam for this inner problem; plain gradient steps keep one step-size meaning for all
//!   methods.
//!
//! The condition term is added to every method so the baselines run the conditional tasks.

pub mod conditions;
mod kernel;
pub mod run;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{GanError, Result};

pub use conditions::Condition;
use kernel::sq_dists;
pub use kernel::{gaussian_kernel, krr_weights, median_bandwidth, top_eigenvalue, KernelDensity};

/// The particle update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// KRR-weighted, mollified Wasserstein gradient flow (the seed's method).
    #[default]
    KrrWgf,
    /// The same flow with KDE estimates (unit weights, no mollifier).
    Kde,
    /// Discriminator optimal transport in latent space.
    Dot,
    /// Discriminator-driven latent Langevin sampling.
    Ddls,
}

impl Method {
    /// Names accepted by [`Method::parse`].
    pub const NAMES: &'static [&'static str] = &["krr-wgf", "kde", "dot", "ddls"];

    /// Parses a method name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "krr-wgf" => Self::KrrWgf,
            "kde" => Self::Kde,
            "dot" => Self::Dot,
            "ddls" => Self::Ddls,
            _ => {
                return Err(GanError::config(
                    "method",
                    format!("must be one of {}, got {s:?}", Self::NAMES.join(", ")),
                ))
            }
        })
    }

    /// The name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::KrrWgf => "krr-wgf",
            Self::Kde => "kde",
            Self::Dot => "dot",
            Self::Ddls => "ddls",
        }
    }
}

/// Hyper-parameters of a refinement (defaults: the seed's 10 steps of size 0.3, Appendix F).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefineConfig {
    /// Particle update.
    pub method: Method,
    /// Number of updates K (seed: 5–15).
    pub steps: usize,
    /// ε (seed: 0.1–1).
    pub step_size: f64,
    /// η_d: weight of the data term ∇ log p̂_data (flows only).
    pub eta_data: f64,
    /// η_e: weight of the entropy term −∇ log q̂ (flows only).
    pub eta_entropy: f64,
    /// η_D: weight of the discriminator term (log σ(d) in the flows, d in DDLS and DOT).
    pub eta_critic: f64,
    /// η_c: weight of the condition term ∇ log p(c|x).
    pub eta_condition: f64,
    /// λ of the KRR weights (`krr-wgf`).
    pub lambda: f64,
    /// Kernel bandwidth b on the features; 0 = median heuristic.
    pub bandwidth: f64,
    /// Mollifier standard deviation s in data units (`krr-wgf`; 0 = no smoothing).
    pub mollifier_std: f64,
    /// Mollifier samples M (`krr-wgf`).
    pub mollifier_samples: i64,
    /// Real samples for the data term (flows).
    pub n_real: i64,
    /// Scale of DDLS's √ε noise (1 = Langevin; 0 = gradient ascent on the energy).
    pub langevin_noise: f64,
    /// δ of DOT's smoothed distance.
    pub dot_delta: f64,
    /// DOT's k_eff; 0 = estimate it from the initial batch.
    pub dot_k_eff: f64,
    /// Particles per forward/backward pass (memory bound; the flow itself uses all).
    pub chunk: i64,
}

impl Default for RefineConfig {
    fn default() -> Self {
        Self {
            method: Method::KrrWgf,
            steps: 10,
            step_size: 0.3,
            eta_data: 1.0,
            eta_entropy: 1.0,
            eta_critic: 1.0,
            eta_condition: 1.0,
            lambda: 1.0,
            bandwidth: 0.0,
            mollifier_std: 0.05,
            mollifier_samples: 4,
            n_real: 1000,
            langevin_noise: 1.0,
            dot_delta: 1e-3,
            dot_k_eff: 0.0,
            chunk: 250,
        }
    }
}

impl RefineConfig {
    /// Checks every field (errors name the field and the allowed range).
    pub fn validate(&self) -> Result<()> {
        let range = |name: &str, v: f64, lo: f64, hi: f64, incl_lo: bool| -> Result<()> {
            let ok = v.is_finite() && (if incl_lo { v >= lo } else { v > lo }) && v <= hi;
            if ok {
                Ok(())
            } else {
                let open = if incl_lo { '[' } else { '(' };
                Err(GanError::config(
                    format!("refine.{name}"),
                    format!("must be in {open}{lo}, {hi}], got {v}"),
                ))
            }
        };
        if !(1..=100_000).contains(&self.steps) {
            return Err(GanError::config(
                "refine.steps",
                format!("must be in [1, 100000], got {}", self.steps),
            ));
        }
        range("step_size", self.step_size, 0.0, 100.0, false)?;
        for (n, v) in [
            ("eta_data", self.eta_data),
            ("eta_entropy", self.eta_entropy),
            ("eta_critic", self.eta_critic),
            ("eta_condition", self.eta_condition),
        ] {
            range(n, v, 0.0, 1e6, true)?;
        }
        range("lambda", self.lambda, 0.0, 1e12, false)?;
        range("bandwidth", self.bandwidth, 0.0, 1e6, true)?;
        range("mollifier_std", self.mollifier_std, 0.0, 100.0, true)?;
        range("langevin_noise", self.langevin_noise, 0.0, 100.0, true)?;
        range("dot_delta", self.dot_delta, 0.0, 1.0, false)?;
        range("dot_k_eff", self.dot_k_eff, 0.0, 1e9, true)?;
        for (n, v, hi) in [
            ("mollifier_samples", self.mollifier_samples, 64),
            ("n_real", self.n_real, 100_000),
            ("chunk", self.chunk, 1_000_000),
        ] {
            if !(1..=hi).contains(&v) {
                return Err(GanError::config(
                    format!("refine.{n}"),
                    format!("must be in [1, {hi}], got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Mollifier (s, M) as this method uses it: `kde` never smooths.
    fn mollifier(&self) -> (f64, i64) {
        match self.method {
            Method::KrrWgf if self.mollifier_std > 0.0 => {
                (self.mollifier_std, self.mollifier_samples)
            }
            _ => (0.0, 1),
        }
    }
}

/// A function of a batch (differentiable in its input).
pub type BatchFn<'a> = &'a dyn Fn(&Tensor) -> Tensor;

/// What a refinement acts through. All functions take and return batches.
pub struct Potentials<'a> {
    /// G: z [n, k] → x [n, ...].
    pub generator: BatchFn<'a>,
    /// d: x → raw discriminator score [n] (at t = 0); None skips every D term.
    pub critic: Option<BatchFn<'a>>,
    /// h: x → kernel features [n, F].
    pub features: BatchFn<'a>,
    /// log p(c|x) per sample [n]; None = unconditional.
    pub condition: Option<BatchFn<'a>>,
}

impl std::fmt::Debug for Potentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Potentials")
            .field("critic", &self.critic.is_some())
            .field("condition", &self.condition.is_some())
            .finish()
    }
}

/// Statistics of the particles before an update (and after the last).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepLog {
    /// Updates done.
    pub step: usize,
    /// Mean d(G(z)) (when there is a critic).
    pub critic: Option<f64>,
    /// Mean log p(c|G(z)) (when there is a condition).
    pub condition: Option<f64>,
    /// Mean ‖z − z₀‖.
    pub moved: f64,
}

/// The outcome of [`refine`].
#[derive(Debug)]
pub struct Refined {
    /// Refined latent codes [n, k].
    pub z: Tensor,
    /// G(z) of the refined codes.
    pub x: Tensor,
    /// One entry per update, and one after the last.
    pub log: Vec<StepLog>,
    /// The kernel bandwidth used (flows).
    pub bandwidth: Option<f64>,
    /// DOT's Lipschitz estimate.
    pub k_eff: Option<f64>,
}

/// Runs `f` over row chunks of `x` and concatenates the results.
fn chunked(x: &Tensor, chunk: i64, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let n = x.size()[0];
    let parts: Vec<Tensor> = (0..n)
        .step_by(chunk as usize)
        .map(|lo| f(&x.narrow(0, lo, chunk.min(n - lo))))
        .collect();
    Tensor::cat(&parts, 0)
}

fn mean(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
}

fn finite(t: &Tensor, what: &str) -> Result<()> {
    if t.isfinite().all().int64_value(&[]) == 1 {
        Ok(())
    } else {
        Err(GanError::Input(format!(
            "refinement diverged: {what} is not finite (try a smaller step size)"
        )))
    }
}

/// Refines latent codes `z0` [n, k] under `pot`. `real` [m, ...] (data samples) feeds the
/// data term of the flows; without it that term is off. Seeded draws (mollifier, Langevin
/// noise) come from libtorch's generator: seed it first for reproducible runs.
pub fn refine(
    z0: &Tensor,
    real: Option<&Tensor>,
    pot: &Potentials,
    cfg: &RefineConfig,
) -> Result<Refined> {
    cfg.validate()?;
    let s = z0.size();
    if s.len() != 2 || s[0] < 2 {
        return Err(GanError::Input(format!(
            "refine: latent codes must be [n ≥ 2, k], got {s:?}"
        )));
    }
    if matches!(cfg.method, Method::Dot | Method::Ddls) && pot.critic.is_none() {
        return Err(GanError::Input(format!(
            "refine: {} needs a discriminator",
            cfg.method.name()
        )));
    }
    let z0 = z0.detach().to_kind(Kind::Float);
    let chunk = cfg.chunk;
    let mut z = z0.copy();
    let mut log = Vec::new();
    let stats = |z: &Tensor| -> StepLog {
        let _g = tch::no_grad_guard();
        let x = chunked(z, chunk, |zc| (pot.generator)(zc));
        StepLog {
            step: 0,
            critic: pot.critic.map(|d| mean(&chunked(&x, chunk, |xc| d(xc)))),
            condition: pot.condition.map(|c| mean(&chunked(&x, chunk, |xc| c(xc)))),
            moved: mean(
                &(z - &z0)
                    .square()
                    .sum_dim_intlist(1, false, Kind::Float)
                    .sqrt(),
            ),
        }
    };
    let (mut bandwidth, mut k_eff) = (None, None);
    match cfg.method {
        Method::KrrWgf | Method::Kde => {
            let (s_mol, m_mol) = cfg.mollifier();
            let lambda = (cfg.method == Method::KrrWgf).then_some(cfg.lambda);
            let x0 = tch::no_grad(|| chunked(&z0, chunk, |zc| (pot.generator)(zc)));
            let b = if cfg.bandwidth > 0.0 {
                cfg.bandwidth
            } else {
                median_bandwidth(&tch::no_grad(|| chunked(&x0, chunk, |x| (pot.features)(x))))
            };
            bandwidth = Some(b);
            let noise = |like: &Tensor| -> Vec<Tensor> {
                (0..m_mol)
                    .map(|_| like.randn_like() * s_mol)
                    .collect::<Vec<_>>()
            };
            // Features of x (clean) and of its mollified copies x + ξ_m, without grad.
            let feats_of = |x: &Tensor, xi: &[Tensor]| -> (Tensor, Vec<Tensor>) {
                let _g = tch::no_grad_guard();
                let clean = chunked(x, chunk, |c| (pot.features)(c));
                let noisy = if s_mol > 0.0 {
                    xi.iter()
                        .map(|e| chunked(&(x + e), chunk, |c| (pot.features)(c)))
                        .collect()
                } else {
                    vec![clean.shallow_clone()]
                };
                (clean, noisy)
            };
            let data = match (real, cfg.eta_data > 0.0) {
                (Some(r), true) => {
                    let r = r.to_kind(Kind::Float);
                    let (clean, noisy) = feats_of(&r, &noise(&r));
                    Some(KernelDensity::fit(&clean, &noisy, b, lambda)?)
                }
                _ => None,
            };
            for step in 0..cfg.steps {
                log.push(StepLog { step, ..stats(&z) });
                let x = tch::no_grad(|| chunked(&z, chunk, |zc| (pot.generator)(zc)));
                let xi = noise(&x);
                let entropy = if cfg.eta_entropy > 0.0 {
                    let (clean, noisy) = feats_of(&x, &xi);
                    Some(KernelDensity::fit(&clean, &noisy, b, lambda)?)
                } else {
                    None
                };
                let n = z.size()[0];
                let mut grads = Vec::new();
                for lo in (0..n).step_by(chunk as usize) {
                    let len = chunk.min(n - lo);
                    let zc = z.narrow(0, lo, len).detach().set_requires_grad(true);
                    let xc = (pot.generator)(&zc);
                    let feats: Vec<Tensor> = if s_mol > 0.0 {
                        xi.iter()
                            .map(|e| (pot.features)(&(&xc + e.narrow(0, lo, len))))
                            .collect()
                    } else if data.is_some() || entropy.is_some() {
                        vec![(pot.features)(&xc)]
                    } else {
                        Vec::new()
                    };
                    let mut obj = Tensor::zeros([len], (Kind::Float, zc.device()));
                    if let Some(p) = &data {
                        obj += p.log_density(&feats) * cfg.eta_data;
                    }
                    if let Some(q) = &entropy {
                        obj -= q.log_density(&feats) * cfg.eta_entropy;
                    }
                    if let (Some(d), true) = (pot.critic, cfg.eta_critic > 0.0) {
                        obj += d(&xc).reshape([-1]).log_sigmoid() * cfg.eta_critic;
                    }
                    if let (Some(c), true) = (pot.condition, cfg.eta_condition > 0.0) {
                        obj += c(&xc).reshape([-1]) * cfg.eta_condition;
                    }
                    grads.push(ascent(&obj, &zc));
                }
                let g = Tensor::cat(&grads, 0);
                finite(&g, "the flow's velocity")?;
                z += g * cfg.step_size;
            }
        }
        Method::Ddls => {
            for step in 0..cfg.steps {
                log.push(StepLog { step, ..stats(&z) });
                let g = chunked(&z, chunk, |zc| {
                    let zc = zc.detach().set_requires_grad(true);
                    let obj = potential(pot, cfg, &(pot.generator)(&zc))
                        - zc.square().sum_dim_intlist(1, false, Kind::Float) * 0.5;
                    ascent(&obj, &zc)
                });
                finite(&g, "the Langevin drift")?;
                let noise = z.randn_like() * (cfg.step_size.sqrt() * cfg.langevin_noise);
                z = z + g * (cfg.step_size / 2.0) + noise;
            }
        }
        Method::Dot => {
            let k = if cfg.dot_k_eff > 0.0 {
                cfg.dot_k_eff
            } else {
                let u0 = tch::no_grad(|| {
                    chunked(&z0, chunk, |zc| potential(pot, cfg, &(pot.generator)(zc)))
                });
                lipschitz_estimate(&z0, &u0)
            };
            k_eff = Some(k);
            for step in 0..cfg.steps {
                log.push(StepLog { step, ..stats(&z) });
                let n = z.size()[0];
                let mut grads = Vec::new();
                for lo in (0..n).step_by(chunk as usize) {
                    let len = chunk.min(n - lo);
                    let zc = z.narrow(0, lo, len).detach().set_requires_grad(true);
                    let y = z0.narrow(0, lo, len);
                    let dist = ((&zc - &y).square().sum_dim_intlist(1, false, Kind::Float)
                        + cfg.dot_delta * cfg.dot_delta)
                        .sqrt();
                    let obj = potential(pot, cfg, &(pot.generator)(&zc)) / k - dist;
                    grads.push(ascent(&obj, &zc));
                }
                let g = Tensor::cat(&grads, 0);
                finite(&g, "the transport step")?;
                z += g * cfg.step_size;
            }
        }
    }
    log.push(StepLog {
        step: cfg.steps,
        ..stats(&z)
    });
    let x = tch::no_grad(|| chunked(&z, chunk, |zc| (pot.generator)(zc)));
    finite(&x, "G(z)")?;
    Ok(Refined {
        z,
        x,
        log,
        bandwidth,
        k_eff,
    })
}

/// u(x) = η_D·d(x) + η_c·log p(c|x) per sample (DDLS's and DOT's potential).
fn potential(pot: &Potentials, cfg: &RefineConfig, x: &Tensor) -> Tensor {
    let n = x.size()[0];
    let mut u = Tensor::zeros([n], (Kind::Float, x.device()));
    if let Some(d) = pot.critic {
        u += d(x).reshape([-1]) * cfg.eta_critic;
    }
    if let (Some(c), true) = (pot.condition, cfg.eta_condition > 0.0) {
        u += c(x).reshape([-1]) * cfg.eta_condition;
    }
    u
}

/// ∇_z Σᵢ objᵢ (each objᵢ depends on zᵢ alone, so row i is the gradient of objᵢ).
fn ascent(obj: &Tensor, z: &Tensor) -> Tensor {
    Tensor::run_backward(&[obj.sum(Kind::Float)], &[z], false, false)
        .pop()
        .unwrap_or_else(|| z.zeros_like())
        .detach()
}

/// k_eff = max_{i≠j} |uᵢ − uⱼ| / ‖zᵢ − zⱼ‖ (DOT's Lipschitz estimate), at least 1e-6.
pub fn lipschitz_estimate(z: &Tensor, u: &Tensor) -> f64 {
    let _g = tch::no_grad_guard();
    let n = z.size()[0];
    let dz = sq_dists(z, z).sqrt();
    let u = u.reshape([-1, 1]);
    let du = (&u - u.transpose(0, 1)).abs();
    let off = Tensor::ones([n, n], (Kind::Bool, z.device())).triu(1);
    let ratio = du.masked_select(&off) / dz.masked_select(&off).clamp_min(1e-12);
    ratio.max().double_value(&[]).max(1e-6)
}

/// Standard normal latent codes [n, k] on `device` from libtorch's generator.
pub fn latents(n: i64, k: i64, device: Device) -> Tensor {
    Tensor::randn([n, k], (Kind::Float, device))
}

#[cfg(test)]
mod tests;
