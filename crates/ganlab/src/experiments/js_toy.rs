//! Diffusion-GAN Fig. 2 / Appendix D: the JS divergence between the diffused real
//! distribution of x = (0, Z) and the diffused generated distribution of x_g = (θ, Z),
//! Z ~ U[0, 1], as a function of θ for several t.
//!
//! With a_t = √ᾱ_t and b_t = (1 − ᾱ_t)σ², the second coordinate has the same law under
//! both and cancels (Appendix D), leaving the JS divergence of N(0, b_t) and N(a_tθ, b_t).
//! Writing δ = |a_tθ| / √b_t and u ~ N(0, 1), the likelihood ratio is exp(uδ − δ²/2), so
//! both halves of the JS divergence are equal and
//!
//!   JS(t, θ) = log 2 − E_u[ softplus(uδ − δ²/2) ],
//!
//! integrated by composite Simpson's rule on u ∈ [−12, 12] (the Gaussian mass outside is
//! below 4e-33). At t = 0, b = 0: JS = log 2 for θ ≠ 0 and 0 at θ = 0 (discontinuous).
//! The optimal discriminator along y₁ is D*(y₁) = N(y₁|0,b)/(N(y₁|0,b)+N(y₁|aθ,b)).
//!
//! The diffusion is the paper's pixel config: linear β from 1e-4 to 0.02 over T = 1000,
//! σ = 0.05 (our assumption: Fig. 2's schedule is not stated; with it t = 200 still has flat
//! regions and t = 800 is nearly flat, as the text describes).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diffusion::{alphas_bar, BetaSchedule};
use crate::error::{IoContext, Result};
use crate::io::write_atomic;
use crate::report::{LinePlot, Report, Series};

/// Settings of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsToyConfig {
    /// Diffusion steps shown as curves.
    pub ts: Vec<usize>,
    /// θ grid: from −theta_max to theta_max.
    pub theta_max: f64,
    /// Number of θ grid points.
    pub n_theta: usize,
    /// Noise scale σ.
    pub sigma: f64,
    /// Chain length T of the linear schedule.
    pub t_total: usize,
    /// Simpson intervals on [−12, 12] (even).
    pub intervals: usize,
}

impl Default for JsToyConfig {
    fn default() -> Self {
        Self {
            ts: vec![0, 10, 50, 100, 200, 500, 800],
            theta_max: 1.0,
            n_theta: 401,
            sigma: 0.05,
            t_total: 1000,
            intervals: 4000,
        }
    }
}

/// One curve of JS(t, θ) over the θ grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsCurve {
    /// Diffusion step.
    pub t: usize,
    /// JS divergence at each grid θ (nats).
    pub js: Vec<f64>,
}

/// The experiment's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsToyResult {
    /// The θ grid.
    pub theta: Vec<f64>,
    /// One curve per t.
    pub curves: Vec<JsCurve>,
    /// Largest |JS(n) − JS(2n)| over all points between Simpson with n and 2n intervals:
    /// an estimate of the integration error.
    pub integration_error: f64,
}

/// JS divergence between N(0, 1) and N(δ, 1) in nats by Simpson's rule with `intervals`
/// (even) subintervals of [−12, 12].
pub fn js_gaussian_shift(delta: f64, intervals: usize) -> f64 {
    if delta == 0.0 {
        return 0.0;
    }
    if !delta.is_finite() {
        return std::f64::consts::LN_2;
    }
    let (a, b) = (-12.0f64, 12.0f64);
    let h = (b - a) / intervals as f64;
    let f = |u: f64| {
        let phi = (-0.5 * u * u).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let z = u * delta.abs() - 0.5 * delta * delta;
        let softplus = if z > 30.0 { z } else { z.exp().ln_1p() };
        phi * softplus
    };
    let mut s = f(a) + f(b);
    for i in 1..intervals {
        s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    (std::f64::consts::LN_2 - s * h / 3.0).max(0.0)
}

/// (a_t, b_t) = (√ᾱ_t, (1 − ᾱ_t)σ²) for the config's schedule.
fn coefficients(cfg: &JsToyConfig) -> Vec<(f64, f64)> {
    let ab = alphas_bar(&BetaSchedule::Linear.betas(1e-4, 0.02, cfg.t_total));
    ab.iter()
        .map(|a| (a.sqrt(), (1.0 - a) * cfg.sigma * cfg.sigma))
        .collect()
}

fn js_at(a: f64, b: f64, theta: f64, intervals: usize) -> f64 {
    if theta == 0.0 {
        0.0
    } else if b == 0.0 {
        std::f64::consts::LN_2
    } else {
        js_gaussian_shift(a * theta / b.sqrt(), intervals)
    }
}

/// Computes all curves.
pub fn compute(cfg: &JsToyConfig) -> JsToyResult {
    let coef = coefficients(cfg);
    let theta: Vec<f64> = (0..cfg.n_theta)
        .map(|i| -cfg.theta_max + 2.0 * cfg.theta_max * i as f64 / (cfg.n_theta - 1) as f64)
        .map(|v| if v.abs() < 1e-12 { 0.0 } else { v })
        .collect();
    let mut err: f64 = 0.0;
    let curves = cfg
        .ts
        .iter()
        .map(|&t| {
            let (a, b) = coef[t.min(cfg.t_total)];
            let js = theta
                .iter()
                .map(|&th| {
                    let v = js_at(a, b, th, cfg.intervals);
                    err = err.max((v - js_at(a, b, th, 2 * cfg.intervals)).abs());
                    v
                })
                .collect();
            JsCurve { t, js }
        })
        .collect();
    JsToyResult {
        theta,
        curves,
        integration_error: err,
    }
}

const COLORS: &[&str] = &[
    "#000000", "#1f5fbf", "#2f9e44", "#d9480f", "#9c36b5", "#e8590c", "#868e96", "#0b7285",
];

/// Runs the experiment: writes js_toy.svg (JS vs θ, and D* along y₁ for θ = 0.5),
/// js_toy.json and report.html into `out`.
pub fn run(cfg: &JsToyConfig, out: &Path) -> Result<JsToyResult> {
    std::fs::create_dir_all(out).at(out)?;
    let res = compute(cfg);
    let js_plot = LinePlot {
        title: "JS(p_r,t ‖ p_g,t) vs θ".into(),
        xlabel: "θ".into(),
        ylabel: "JS divergence (nats)".into(),
        series: res
            .curves
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Series::new(
                    format!("t = {}", c.t),
                    res.theta
                        .iter()
                        .copied()
                        .zip(c.js.iter().copied())
                        .collect(),
                    COLORS[i % COLORS.len()],
                )
            })
            .collect(),
        bounds: Some((-cfg.theta_max, cfg.theta_max, 0.0, 0.75)),
        size: (480.0, 340.0),
    }
    .to_svg();
    let coef = coefficients(cfg);
    let theta = 0.5;
    let ys: Vec<f64> = (0..=200).map(|i| -0.5 + i as f64 * 1.5 / 200.0).collect();
    let d_plot = LinePlot {
        title: "optimal D*(y₁), θ = 0.5".into(),
        xlabel: "y₁".into(),
        ylabel: "D*".into(),
        series: cfg
            .ts
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let (a, b) = coef[t.min(cfg.t_total)];
                let pts = ys
                    .iter()
                    .map(|&y| {
                        let d = if b == 0.0 {
                            if y == 0.0 {
                                1.0
                            } else if (y - theta).abs() < 1e-12 {
                                0.0
                            } else {
                                f64::NAN
                            }
                        } else {
                            1.0 / (1.0
                                + ((2.0 * y * a * theta - (a * theta).powi(2)) / (2.0 * b)).exp())
                        };
                        (y, d)
                    })
                    .collect();
                Series::new(format!("t = {t}"), pts, COLORS[i % COLORS.len()])
            })
            .collect(),
        bounds: Some((-0.5, 1.0, -0.05, 1.05)),
        size: (480.0, 340.0),
    }
    .to_svg();
    let fig = crate::report::svg::grid(&[js_plot.clone(), d_plot.clone()], (480.0, 340.0), 2);
    write_atomic(&out.join("js_toy.svg"), fig.as_bytes())?;
    write_atomic(
        &out.join("js_toy.json"),
        serde_json::to_string_pretty(&res)?.as_bytes(),
    )?;
    let mut r = Report::new("Diffusion-GAN JS toy example (Fig. 2, Appendix D)");
    r.paragraph(&format!(
        "x = (0, Z) vs x_g = (θ, Z); linear β 1e-4→0.02 over T = {}, σ = {}. Simpson integration on [−12, 12] with {} intervals; estimated integration error {:.2e} nats.",
        cfg.t_total, cfg.sigma, cfg.intervals, res.integration_error
    ));
    r.figure(&js_plot).figure(&d_plot);
    write_atomic(&out.join("report.html"), r.render().as_bytes())?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_closed_form_checks() {
        // JS(N(0,1), N(δ,1)) → log 2 as δ → ∞ and ≈ δ²/8 for small δ (Fisher information 1).
        assert!((js_gaussian_shift(40.0, 4000) - std::f64::consts::LN_2).abs() < 1e-9);
        let d = 0.01;
        assert!((js_gaussian_shift(d, 4000) / (d * d / 8.0) - 1.0).abs() < 1e-3);
    }

    /// Fig. 2: t = 0 is log 2 for θ ≠ 0 and 0 at θ = 0; every t > 0 curve is continuous
    /// (moving θ by 1e-6 anywhere on the grid, including θ = 0, changes JS by < 1e-3 nats,
    /// whereas t = 0 jumps by log 2 at θ = 0), below log 2, symmetric, and flatter for larger t.
    #[test]
    fn fig2_properties() {
        let cfg = JsToyConfig::default();
        let r = compute(&cfg);
        assert!(
            r.integration_error < 1e-10,
            "integration error {}",
            r.integration_error
        );
        let zero = r.theta.iter().position(|t| *t == 0.0).unwrap();
        let c0 = &r.curves[0];
        assert_eq!(c0.t, 0);
        for (i, v) in c0.js.iter().enumerate() {
            let want = if i == zero {
                0.0
            } else {
                std::f64::consts::LN_2
            };
            assert_eq!(*v, want);
        }
        for c in &r.curves[1..] {
            // Below log 2 (equal to it only to rounding, far out where δ > 40).
            assert!(
                c.js.iter()
                    .all(|v| *v <= std::f64::consts::LN_2 && *v >= 0.0),
                "t={}",
                c.t
            );
            assert!(
                c.js[zero + 1] < std::f64::consts::LN_2 - 0.1,
                "t={}: no jump next to θ = 0",
                c.t
            );
            let (a, b) = coefficients(&cfg)[c.t];
            for &th in &r.theta {
                let jump = (js_at(a, b, th + 1e-6, 4000) - js_at(a, b, th, 4000)).abs();
                assert!(jump < 1e-3, "t={} θ={th}: jump {jump}", c.t);
            }
            let n = c.js.len();
            assert!((c.js[0] - c.js[n - 1]).abs() < 1e-12, "symmetric in θ");
            assert_eq!(c.js[zero], 0.0);
        }
        // Larger t: smaller divergence at θ = 1 (flatter curves).
        let last: Vec<f64> = r.curves.iter().map(|c| *c.js.last().unwrap()).collect();
        assert!(last.windows(2).all(|w| w[1] <= w[0] + 1e-12), "{last:?}");
        assert!(last[6] < 0.2, "t = 800 is nearly flat: {}", last[6]);
    }
}
