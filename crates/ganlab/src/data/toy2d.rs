//! Built-in 2-D sets: the 25-Gaussians grid of Diffusion-GAN §4.2 (5×5 centres at
//! {−4, −2, 0, 2, 4}², σ = 0.05), an 8-Gaussian ring, a swiss roll, and the (0, Z) line
//! of the JS toy example (Arjovsky et al. 2017).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::Sampler;
use crate::error::{GanError, Result};

/// Which 2-D set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toy2dKind {
    /// 25 Gaussians on a 5×5 grid with spacing 2.
    Gaussians25,
    /// 8 Gaussians on a circle of radius 2.
    Ring8,
    /// Swiss roll (no modes).
    SwissRoll,
    /// (0, Z), Z ~ U[0, 1] (no modes).
    Line,
}

/// The data section for 2-D sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Toy2dConfig {
    /// Which set.
    pub kind: Toy2dKind,
    /// Standard deviation of each Gaussian (paper: 0.05).
    pub std: f64,
}

impl Default for Toy2dConfig {
    fn default() -> Self {
        Self {
            kind: Toy2dKind::Gaussians25,
            std: 0.05,
        }
    }
}

impl Toy2dConfig {
    /// Checks the fields; `prefix` is the TOML section used in error messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if !(self.std > 0.0 && self.std <= 10.0) {
            return Err(GanError::config(
                format!("{prefix}.std"),
                format!("must be in (0, 10], got {}", self.std),
            ));
        }
        Ok(())
    }
}

/// A sampler for a built-in 2-D set.
#[derive(Debug, Clone)]
pub struct Toy2d {
    cfg: Toy2dConfig,
    centres: Vec<[f64; 2]>,
}

impl Toy2d {
    /// Builds the sampler (validate the config first).
    pub fn new(cfg: Toy2dConfig) -> Self {
        let centres = match cfg.kind {
            Toy2dKind::Gaussians25 => {
                let g = [-4.0, -2.0, 0.0, 2.0, 4.0];
                g.iter()
                    .flat_map(|x| g.iter().map(move |y| [*x, *y]))
                    .collect()
            }
            Toy2dKind::Ring8 => (0..8)
                .map(|k| {
                    let a = k as f64 * std::f64::consts::PI / 4.0;
                    [2.0 * a.cos(), 2.0 * a.sin()]
                })
                .collect(),
            Toy2dKind::SwissRoll | Toy2dKind::Line => Vec::new(),
        };
        Self { cfg, centres }
    }

    /// Mode centres (empty for sets without modes).
    pub fn centres(&self) -> &[[f64; 2]] {
        &self.centres
    }

    /// Standard deviation of each mode.
    pub fn std(&self) -> f64 {
        self.cfg.std
    }
}

impl Sampler for Toy2d {
    fn sample(&mut self, n: i64, device: Device) -> Result<Tensor> {
        Ok(self.sample_labeled(n, device)?.0)
    }

    /// Sets with modes label each point with its mode's index (the class of a conditional
    /// GAN on 25 Gaussians).
    fn sample_labeled(&mut self, n: i64, device: Device) -> Result<(Tensor, Option<Tensor>)> {
        let opts = (Kind::Float, device);
        Ok(match self.cfg.kind {
            Toy2dKind::Gaussians25 | Toy2dKind::Ring8 => {
                let flat: Vec<f32> = self
                    .centres
                    .iter()
                    .flat_map(|c| [c[0] as f32, c[1] as f32])
                    .collect();
                let centres = Tensor::from_slice(&flat).view([-1, 2]).to_device(device);
                let idx =
                    crate::dist::randint(0, self.centres.len() as i64, &[n], (Kind::Int64, device));
                let x = centres.index_select(0, &idx)
                    + crate::dist::randn(&[n, 2], opts) * self.cfg.std;
                (x, Some(idx))
            }
            Toy2dKind::SwissRoll => {
                // Marsland's swiss roll scaled to about [-4, 4]²: r = θ ∈ [1.5π, 4.5π].
                let theta = crate::dist::rand(&[n], opts) * (3.0 * std::f64::consts::PI)
                    + 1.5 * std::f64::consts::PI;
                let xy = Tensor::stack(&[&theta * theta.cos(), &theta * theta.sin()], 1) / 3.5;
                (xy + crate::dist::randn(&[n, 2], opts) * self.cfg.std, None)
            }
            Toy2dKind::Line => (
                Tensor::stack(
                    &[Tensor::zeros([n], opts), crate::dist::rand(&[n], opts)],
                    1,
                ),
                None,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussians25_grid_and_spread() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(3);
        let mut s = Toy2d::new(Toy2dConfig::default());
        assert_eq!(s.centres().len(), 25);
        assert!(s.centres().contains(&[-4.0, 4.0]) && s.centres().contains(&[0.0, 0.0]));
        let x = s.sample(20000, Device::Cpu).unwrap();
        // Nearest grid point: round((x+4)/2)*2-4; residual std must be 0.05 (±5%: 40000 values).
        let snapped = ((&x + 4.0) / 2.0).round() * 2.0 - 4.0;
        let resid = (&x - snapped).std(true).double_value(&[]);
        assert!((resid - 0.05).abs() < 0.0025, "residual std {resid}");
        // Uniform over modes: mean ≈ 0 (std of the mean: 2.83/sqrt(20000) = 0.02).
        let m = x.mean_dim(0, false, Kind::Float);
        assert!(m.abs().max().double_value(&[]) < 0.1);
    }
}
