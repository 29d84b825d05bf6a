//! Mode coverage on 2-D mixtures (the standard 25-Gaussians protocol of Srivastava et al.
//! 2017 / Lin et al. 2018): each sample is assigned to its nearest centre; it is
//! *high quality* if within 3σ of it; a mode is *covered* when it holds at least
//! `min_count` high-quality samples; `mode_kl` is KL(histogram of the high-quality samples
//! over modes ‖ uniform), 0 for a perfect spread and ln 25 ≈ 3.22 when one mode has them all.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{GanError, Result};

/// Scores of a set of 2-D samples against mixture modes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeStats {
    /// Modes holding at least `min_count` high-quality samples.
    pub modes_covered: usize,
    /// Number of modes.
    pub n_modes: usize,
    /// Fraction of samples within 3σ of their nearest centre.
    pub high_quality_fraction: f64,
    /// KL(mode histogram of high-quality samples ‖ uniform), in nats (ln n_modes if none).
    pub mode_kl: f64,
    /// High-quality samples per mode.
    pub counts: Vec<usize>,
    /// The coverage threshold used.
    pub min_count: usize,
}

/// Computes [`ModeStats`] of `samples` [n, 2]. `min_count` = 0 picks the default: 10% of
/// the count a uniform spread would give each mode (at least 1).
pub fn mode_stats(
    samples: &Tensor,
    centres: &[[f64; 2]],
    std: f64,
    min_count: usize,
) -> Result<ModeStats> {
    if centres.is_empty() {
        return Err(GanError::Input(
            "mode statistics need a data set with modes".into(),
        ));
    }
    let size = samples.size();
    if size.len() != 2 || size[1] != 2 {
        return Err(GanError::Input(format!(
            "mode statistics need samples of shape [n, 2], got {size:?}"
        )));
    }
    let n = size[0] as usize;
    let pts: Vec<f64> = Vec::try_from(
        samples
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .reshape([-1]),
    )
    .map_err(GanError::Tch)?;
    let mut counts = vec![0usize; centres.len()];
    let mut hq = 0usize;
    let r2 = (3.0 * std).powi(2);
    for p in pts.chunks_exact(2) {
        let (k, d2) = centres
            .iter()
            .enumerate()
            .map(|(k, c)| (k, (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)))
            .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        if d2 <= r2 {
            counts[k] += 1;
            hq += 1;
        }
    }
    let min_count = if min_count == 0 {
        (n / centres.len() / 10).max(1)
    } else {
        min_count
    };
    let k = centres.len() as f64;
    let mode_kl = if hq == 0 {
        k.ln()
    } else {
        counts
            .iter()
            .filter(|c| **c > 0)
            .map(|c| {
                let p = *c as f64 / hq as f64;
                p * (p * k).ln()
            })
            .sum()
    };
    Ok(ModeStats {
        modes_covered: counts.iter().filter(|c| **c >= min_count).count(),
        n_modes: centres.len(),
        high_quality_fraction: if n == 0 { 0.0 } else { hq as f64 / n as f64 },
        mode_kl,
        counts,
        min_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Sampler, Toy2d, Toy2dConfig};

    #[test]
    fn perfect_and_collapsed_samples() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let mut data = Toy2d::new(Toy2dConfig::default());
        let x = data.sample(2500, tch::Device::Cpu).unwrap();
        let s = mode_stats(&x, data.centres(), 0.05, 0).unwrap();
        assert_eq!(s.modes_covered, 25);
        // P(|N(0, σ²I)| ≤ 3σ) in 2-D = 1 − exp(−9/2) = 0.9889; 2500 samples: SE 0.002.
        assert!(
            (s.high_quality_fraction - 0.9889).abs() < 0.01,
            "{}",
            s.high_quality_fraction
        );
        // Multinomial noise only: KL of 2500 draws from uniform over 25 is ≈ 24/(2·2472) ≈ 0.005.
        assert!(s.mode_kl < 0.03, "{}", s.mode_kl);
        let one = Tensor::zeros([100, 2], (Kind::Float, tch::Device::Cpu));
        let c = mode_stats(&one, data.centres(), 0.05, 0).unwrap();
        assert_eq!((c.modes_covered, c.high_quality_fraction), (1, 1.0));
        assert!((c.mode_kl - 25f64.ln()).abs() < 1e-12);
        let far = Tensor::full([10, 2], 1.0, (Kind::Float, tch::Device::Cpu));
        let f = mode_stats(&far, data.centres(), 0.05, 0).unwrap();
        assert_eq!((f.modes_covered, f.high_quality_fraction), (0, 0.0));
        assert!(mode_stats(
            &Tensor::zeros([3, 3], (Kind::Float, tch::Device::Cpu)),
            data.centres(),
            0.05,
            0
        )
        .is_err());
    }
}
