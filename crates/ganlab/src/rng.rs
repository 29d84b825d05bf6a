//! A small, serializable random number generator for host-side choices (the diffusion
//! exploration list, t sampling). Tensor randomness goes through libtorch's generator,
//! which the trainer reseeds every step (see `train::step_seed`).

use serde::{Deserialize, Serialize};

/// SplitMix64 (Steele, Lea & Flood 2014): 64-bit state, passes BigCrush, trivially
/// saved in a checkpoint as one integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    /// The whole generator state.
    pub state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A uniform float in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in [0, n); `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift; the bias is below 2^-64 * n, irrelevant here.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Index drawn from the unnormalised non-negative `weights` (inverse CDF).
    pub fn categorical(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut u = self.next_f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }
}

/// The SplitMix64 output function; also used to derive independent per-step seeds.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_mean_and_categorical_proportions() {
        let mut r = SplitMix64::new(7);
        let n = 200_000;
        let mean = (0..n).map(|_| r.next_f64()).sum::<f64>() / n as f64;
        // Standard error of the mean of U(0,1) over 2e5 draws is 6.5e-4; 5e-3 is > 7 sigma.
        assert!((mean - 0.5).abs() < 5e-3, "mean {mean}");
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[r.categorical(&[1.0, 2.0, 7.0])] += 1;
        }
        let p2 = counts[2] as f64 / n as f64;
        assert!((p2 - 0.7).abs() < 5e-3, "p2 {p2}");
        assert_eq!(counts.iter().sum::<usize>(), n);
    }
}
