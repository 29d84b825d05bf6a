//! Gradient penalties on D, computed by double backward (the penalty's gradient with respect
//! to D's parameters differentiates through ∇ₓD, so the inner gradient keeps its graph):
//!
//! * R1 (Mescheder et al. 2018): (γ/2)·E_x ‖∇ₓ D(x)‖² on real samples.
//! * WGAN-GP (Gulrajani et al. 2017): λ·E (‖∇ D(x̂)‖₂ − 1)², x̂ = εx + (1 − ε)x_g with one
//!   ε ∼ U[0, 1] per sample.
//!
//! With Diffusion-GAN the samples are the diffused y and D is D(·, t) at their steps t.

use tch::{Kind, Tensor};

/// ∇ₓ Σᵢ D(x)ᵢ with its graph kept (row i is ∇ of D(x)ᵢ for a batch-independent D).
fn input_gradient(d: &dyn Fn(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let x = x.detach().set_requires_grad(true);
    let out = d(&x).sum(Kind::Float);
    Tensor::run_backward(&[out], &[&x], true, true)
        .pop()
        .expect("one input, one gradient")
}

/// Per-sample squared gradient norms ‖∇ₓD‖² [n].
fn grad_norm2(g: &Tensor) -> Tensor {
    g.square()
        .flatten(1, -1)
        .sum_dim_intlist(1, false, g.kind())
}

/// (γ/2)·E‖∇ₓ D(x)‖² at real samples `real`.
pub fn r1(d: &dyn Fn(&Tensor) -> Tensor, real: &Tensor, gamma: f64) -> Tensor {
    grad_norm2(&input_gradient(d, real)).mean(real.kind()) * (gamma / 2.0)
}

/// λ·E(‖∇D(x̂)‖₂ − 1)² at x̂ = εx + (1 − ε)x_g; `eps` [n] (the caller draws it, U[0, 1]).
pub fn gradient_penalty(
    d: &dyn Fn(&Tensor) -> Tensor,
    real: &Tensor,
    fake: &Tensor,
    eps: &Tensor,
    lambda: f64,
) -> Tensor {
    let mut shape = vec![-1i64];
    shape.extend(std::iter::repeat_n(1, real.dim() - 1));
    let e = eps.view(shape.as_slice());
    let x_hat = real.detach() * &e + fake.detach() * (1.0 - &e);
    let norm = grad_norm2(&input_gradient(d, &x_hat)).sqrt();
    (norm - 1.0).square().mean(real.kind()) * lambda
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// A tiny f64 network d(x) = w2·tanh(W1 x + b1) with parameters θ = (W1, b1, w2).
    fn net(theta: &Tensor) -> impl Fn(&Tensor) -> Tensor + '_ {
        move |x: &Tensor| {
            let w1 = theta.narrow(0, 0, 6).view([3, 2]);
            let b1 = theta.narrow(0, 6, 3);
            let w2 = theta.narrow(0, 9, 3).view([3, 1]);
            (x.matmul(&w1.tr()) + b1).tanh().matmul(&w2).view([-1])
        }
    }

    /// The penalty's parameter gradient by double backward equals the central difference
    /// (P(θ + h·e_k) − P(θ − h·e_k))/2h in f64 with h = 1e-6 (truncation O(h²) ≈ 1e-12,
    /// rounding ≈ 1e-16/h = 1e-10): relative tolerance 1e-6, for R1 and WGAN-GP.
    #[test]
    fn penalty_gradients_match_central_differences() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(11);
        let opts = (Kind::Double, Device::Cpu);
        let theta0 = Tensor::randn([12], opts);
        let real = Tensor::randn([5, 2], opts);
        let fake = Tensor::randn([5, 2], opts) * 2.0;
        let eps = Tensor::rand([5], opts);
        type Penalty = Box<dyn Fn(&Tensor) -> Tensor>;
        let cases: Vec<(&str, Penalty)> = vec![
            (
                "r1",
                Box::new({
                    let real = real.shallow_clone();
                    move |th: &Tensor| r1(&net(th), &real, 10.0)
                }),
            ),
            (
                "gp",
                Box::new(move |th: &Tensor| gradient_penalty(&net(th), &real, &fake, &eps, 10.0)),
            ),
        ];
        for (name, p) in cases {
            let theta = theta0.copy().set_requires_grad(true);
            let auto = Tensor::run_backward(&[p(&theta)], &[&theta], false, false)
                .pop()
                .unwrap();
            let h = 1e-6;
            let numeric: Vec<f64> = (0..12)
                .map(|k| {
                    let e = Tensor::zeros([12], opts).index_fill(0, &Tensor::from(k as i64), h);
                    let up = p(&(&theta0 + &e)).double_value(&[]);
                    let down = p(&(&theta0 - &e)).double_value(&[]);
                    (up - down) / (2.0 * h)
                })
                .collect();
            let numeric = Tensor::from_slice(&numeric);
            let err = (&auto - &numeric).abs().max().double_value(&[]);
            let scale = numeric.abs().max().double_value(&[]);
            assert!(scale > 1e-3, "{name}: the penalty must depend on θ");
            assert!(
                err <= 1e-6 * scale,
                "{name}: |autograd − central| = {err} (scale {scale})"
            );
        }
    }

    /// Closed forms: for linear d(x) = a·x, ‖∇D‖ = ‖a‖ everywhere, so R1 = (γ/2)‖a‖² and
    /// GP = λ(‖a‖ − 1)².
    #[test]
    fn penalties_of_a_linear_critic() {
        let _rng = crate::test_rng_lock();
        let opts = (Kind::Double, Device::Cpu);
        let a = Tensor::from_slice(&[3.0f64, 4.0]);
        let d = |x: &Tensor| x.matmul(&a);
        let x = Tensor::randn([7, 2], opts);
        assert!((r1(&d, &x, 2.0).double_value(&[]) - 25.0).abs() < 1e-12);
        let g = gradient_penalty(&d, &x, &x.flip([0]), &Tensor::rand([7], opts), 10.0);
        assert!((g.double_value(&[]) - 160.0).abs() < 1e-9);
    }
}
