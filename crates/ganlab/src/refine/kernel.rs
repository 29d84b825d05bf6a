//! Kernel estimators of the refinement flows (eqs. 3–5 of latent-optimization-wgf.txt, see
//! the module doc of `refine`): the Gaussian kernel with the median-heuristic bandwidth, the
//! KRR weights w = λ(K̃ + λI)⁻¹1 solved by conjugate gradients, and the weighted density
//! estimate log Σⱼ wⱼ K̃(x, cⱼ).

use tch::{Kind, Tensor};

use crate::error::{GanError, Result};

/// Squared Euclidean distances [n, m] between rows of `a` [n, F] and `b` [m, F].
pub(super) fn sq_dists(a: &Tensor, b: &Tensor) -> Tensor {
    let a2 = a.square().sum_dim_intlist(1, true, Kind::Float);
    let b2 = b
        .square()
        .sum_dim_intlist(1, true, Kind::Float)
        .transpose(0, 1);
    (a2 + b2 - a.matmul(&b.transpose(0, 1)) * 2.0).clamp_min(0.0)
}

/// The median heuristic b² = median‖hᵢ − hⱼ‖²/(2 ln(n + 1)) over distinct pairs of `f`.
pub fn median_bandwidth(f: &Tensor) -> f64 {
    let _g = tch::no_grad_guard();
    let n = f.size()[0];
    let f = f.to_kind(Kind::Float);
    let d = sq_dists(&f, &f);
    let mask = Tensor::ones([n, n], (Kind::Bool, f.device())).triu(1);
    let pairs = d.masked_select(&mask);
    let med = if pairs.numel() == 0 {
        1.0
    } else {
        pairs.median().double_value(&[])
    };
    let b2 = med / (2.0 * ((n + 1) as f64).ln());
    if b2 > 0.0 && b2.is_finite() {
        b2.sqrt()
    } else {
        1.0
    }
}

/// K(a, b) = exp(−‖a − b‖²/(2b²)), [n, m].
pub fn gaussian_kernel(a: &Tensor, b: &Tensor, bandwidth: f64) -> Tensor {
    (sq_dists(a, b) / (-2.0 * bandwidth * bandwidth)).exp()
}

/// KRR weights w = λ'(K + λ'I)⁻¹1 of a kernel matrix K [n, n] (symmetrised; solved in
/// f64), with λ' = λ·‖K‖₂: `lambda` is relative to K's largest eigenvalue, so one value
/// means the same for any n and bandwidth (the seed gives no scale; ‖K‖₂ grows with n).
pub fn krr_weights(k: &Tensor, lambda: f64) -> Result<Tensor> {
    let _g = tch::no_grad_guard();
    let n = k.size()[0];
    let k = k.to_kind(Kind::Double);
    let k = (&k + k.transpose(0, 1)) * 0.5;
    let top = top_eigenvalue(&k).max(1e-12);
    let lambda = lambda * top;
    let ones = Tensor::ones([n, 1], (Kind::Double, k.device()));
    let w = conjugate_gradient(&k, lambda, &ones)? * lambda;
    Ok(w.reshape([n]).to_kind(Kind::Float))
}

/// Solves (K + λI)x = b by conjugate gradients (K symmetric PSD). With λ = lambda·‖K‖₂ the
/// condition number is at most 1 + 1/lambda, so a few dozen O(n²) iterations reach 1e-10
/// relative residual where a factorisation costs O(n³).
fn conjugate_gradient(k: &Tensor, lambda: f64, b: &Tensor) -> Result<Tensor> {
    let apply = |v: &Tensor| k.matmul(v) + v * lambda;
    let mut x = b / (1.0 + lambda);
    let mut r = b - apply(&x);
    let mut p = r.copy();
    let mut rr = r.square().sum(Kind::Double).double_value(&[]);
    let tol = 1e-20 * b.square().sum(Kind::Double).double_value(&[]);
    for _ in 0..10_000 {
        if rr <= tol {
            return Ok(x);
        }
        let ap = apply(&p);
        let alpha = rr / (&p * &ap).sum(Kind::Double).double_value(&[]);
        x += &p * alpha;
        r -= ap * alpha;
        let rr_new = r.square().sum(Kind::Double).double_value(&[]);
        p = &r + p * (rr_new / rr);
        rr = rr_new;
    }
    Err(GanError::Input(format!(
        "KRR weights did not converge (λ = {lambda:.3e}); raise refine.lambda"
    )))
}

/// The largest eigenvalue of a symmetric PSD matrix by power iteration from 1 (an
/// entrywise-positive kernel matrix's top eigenvector is positive, so 1 is not orthogonal to
/// it), stopped when it changes by < 1e-9 relative or after 100 iterations, and O(n²) per iteration where an eigendecomposition is O(n³).
pub fn top_eigenvalue(k: &Tensor) -> f64 {
    let _g = tch::no_grad_guard();
    let n = k.size()[0];
    let mut v = Tensor::ones([n, 1], (k.kind(), k.device())) / (n as f64).sqrt();
    let mut lambda = 0.0;
    for _ in 0..100 {
        let w = k.matmul(&v);
        let norm = w.norm().double_value(&[]);
        if norm <= 0.0 || !norm.is_finite() {
            return 0.0;
        }
        let done = (norm - lambda).abs() <= 1e-9 * norm;
        lambda = norm;
        v = w / norm;
        if done {
            break;
        }
    }
    lambda
}

/// A weighted kernel density estimate on fixed centres: log Σⱼ wⱼ K̃(x, cⱼ) (up to a constant).
#[derive(Debug)]
pub struct KernelDensity {
    centres: Tensor,
    weights: Tensor,
    bandwidth: f64,
}

impl KernelDensity {
    /// Fits the weights on centres' features `centres` [m, F] (detached) and their
    /// mollified copies `noisy` (M tensors [m, F]: features of cⱼ + ξ_m): unit weights when
    /// `lambda` is None (KDE), else KRR weights of K̃ᵢⱼ = (1/M)Σ_m K(noisy_m[i], cⱼ).
    pub fn fit(
        centres: &Tensor,
        noisy: &[Tensor],
        bandwidth: f64,
        lambda: Option<f64>,
    ) -> Result<Self> {
        let centres = centres.detach();
        let m = centres.size()[0];
        let weights = match lambda {
            None => Tensor::ones([m], (Kind::Float, centres.device())),
            Some(l) => {
                let _g = tch::no_grad_guard();
                let k = noisy
                    .iter()
                    .map(|f| gaussian_kernel(f, &centres, bandwidth))
                    .fold(
                        Tensor::zeros([m, m], (Kind::Float, centres.device())),
                        |a, b| a + b,
                    )
                    / noisy.len() as f64;
                krr_weights(&k, l)?
            }
        };
        Ok(Self {
            centres,
            weights,
            bandwidth,
        })
    }

    /// The weights (1 for a KDE).
    pub fn weights(&self) -> &Tensor {
        &self.weights
    }

    /// log p̂ at points whose (mollified) features are `feats` (M tensors [n, F], with grad):
    /// log((1/M)Σ_m Σⱼ wⱼ K(feats_m, cⱼ)), [n]; non-positive sums are clamped.
    pub fn log_density(&self, feats: &[Tensor]) -> Tensor {
        let e = Tensor::stack(
            &feats
                .iter()
                .map(|f| sq_dists(f, &self.centres) / (-2.0 * self.bandwidth * self.bandwidth))
                .collect::<Vec<_>>(),
            0,
        ); // [M, n, m]
        let shift = e.amax([0, 2], true).detach();
        let s = ((e - &shift).exp() * self.weights.view([1, 1, -1])).sum_dim_intlist(
            [0, 2].as_slice(),
            false,
            Kind::Float,
        ) / feats.len() as f64;
        s.clamp_min(1e-30).log() + shift.view([-1])
    }
}
