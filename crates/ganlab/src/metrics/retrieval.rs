//! Text–image retrieval scores: R-precision as AttnGAN (Xu et al. 2018 §4) reports it for
//! text-to-image models, with R = 1: for each query (a generated or real image), its own
//! caption is ranked among `k` candidates (itself and k − 1 captions of other test items,
//! drawn at random); the score is the share of queries whose own candidate scores highest.
//! The compatibility is the inner product of the joint embedding (DS-SJE).

use tch::{Kind, Tensor};

use crate::rng::SplitMix64;

/// R-precision (R = 1) of `queries` [n, d] against `keys` [n, d], query i matching key i,
/// among `k` candidates each (all n when n < k), the distractors drawn from `seed`. A tie
/// with a distractor counts as a miss.
pub fn r_precision(queries: &Tensor, keys: &Tensor, k: i64, seed: u64) -> f64 {
    let n = queries.size()[0];
    if n == 0 {
        return f64::NAN;
    }
    let scores = queries
        .to_kind(Kind::Double)
        .matmul(&keys.to_kind(Kind::Double).tr());
    let s: Vec<f64> = Vec::<f64>::try_from(scores.flatten(0, -1)).expect("f64 scores");
    let k = k.min(n) as usize;
    let n = n as usize;
    let mut rng = SplitMix64::new(seed);
    let mut hits = 0usize;
    for i in 0..n {
        // k − 1 distinct distractors ≠ i: a partial Fisher–Yates over the other indices.
        let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        for a in 0..k - 1 {
            let b = a + rng.below((others.len() - a) as u64) as usize;
            others.swap(a, b);
        }
        let own = s[i * n + i];
        if others[..k - 1].iter().all(|&j| s[i * n + j] < own) {
            hits += 1;
        }
    }
    hits as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Closed forms: identical one-hot queries and keys score 1; a key set that matches
    /// query i to key i + 1 scores 0; with all-equal scores every query ties (0); with k = 2
    /// and keys that only separate the first half of the items, the share is between the
    /// first half's 1 and the second half's ties (0): exactly 0.5.
    #[test]
    fn closed_forms() {
        let eye = Tensor::eye(6, (Kind::Float, Device::Cpu));
        assert_eq!(r_precision(&eye, &eye, 100, 0), 1.0);
        assert_eq!(r_precision(&eye, &eye.roll([1], [0]), 3, 0), 0.0);
        let ones = Tensor::ones([6, 2], (Kind::Float, Device::Cpu));
        assert_eq!(r_precision(&ones, &ones, 4, 0), 0.0);
        let half = eye.narrow(1, 0, 3).copy(); // items 3..5 have all-zero rows: every score ties
        assert_eq!(r_precision(&half, &half, 2, 1), 0.5);
    }
}
