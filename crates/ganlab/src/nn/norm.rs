//! Normalisations of the translation networks: parameter-free instance norm (CycleGAN's
//! `InstanceNorm2d(affine=False)`), and U-GAT-IT's layer-instance norms (Kim et al. 2020,
//! eq. 1; UGATIT-pytorch `networks.py`): AdaILN, whose γ, β come from the generator's MLP,
//! and ILN, whose γ, β are learnt. Both mix instance- and layer-normalised activations with a
//! learnable ratio ρ per channel that the task clamps to [0, 1] after every G update
//! ([`clip_rho`]), as the reference's `RhoClipper`.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// ε of every normalisation here (PyTorch's and U-GAT-IT's 1e-5).
const EPS: f64 = 1e-5;

/// Instance normalisation without affine parameters or running statistics: each channel
/// of each image to zero mean, unit (biased) variance, as `nn.InstanceNorm2d(c)`.
pub fn instance_norm(x: &Tensor) -> Tensor {
    x.instance_norm::<Tensor>(None, None, None, None, true, 0.1, EPS, false)
}

/// ρ·x̂_I + (1 − ρ)·x̂_L: x̂_I normalised over (H, W) per channel, x̂_L over (C, H, W), with
/// the *unbiased* variance of `torch.var` as the PyTorch reference (the TensorFlow one uses
/// the biased variance; ../shared/specs/translation.md §2 recommends PyTorch's).
fn layer_instance_mix(x: &Tensor, rho: &Tensor) -> Tensor {
    let norm = |dims: &[i64]| {
        let (var, mean) = x.var_mean_dim(dims, true, true);
        (x - mean) / (var + EPS).sqrt()
    };
    let x_in = norm(&[2, 3]);
    let x_ln = norm(&[1, 2, 3]);
    &x_ln + rho * (x_in - &x_ln)
}

/// The ρ parameter of a norm over `c` channels, shape [1, c, 1, 1], initialised to `init`.
fn rho(path: &nn::Path, c: i64, init: f64) -> Tensor {
    path.var("rho", &[1, c, 1, 1], Init::Const(init))
}

/// Adaptive layer-instance normalisation: γ ⊙ (ρ·x̂_I + (1 − ρ)·x̂_L) + β with γ, β [n, c]
/// given per image. ρ is initialised to 0.9 (PyTorch reference; TF: 1 − 0.1 smoothing).
#[derive(Debug)]
pub struct AdaIln {
    rho: Tensor,
}

impl AdaIln {
    /// The norm over `c` channels under `path`.
    pub fn new(path: nn::Path, c: i64) -> Self {
        Self {
            rho: rho(&path, c, 0.9),
        }
    }

    /// Normalises `x` [n, c, H, W] with the per-image affine `gamma`, `beta` [n, c].
    pub fn forward(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Tensor {
        layer_instance_mix(x, &self.rho) * gamma.unsqueeze(-1).unsqueeze(-1)
            + beta.unsqueeze(-1).unsqueeze(-1)
    }
}

/// Layer-instance normalisation with learnt γ (init 1), β (init 0) and ρ (init 0) per
/// channel: U-GAT-IT's up-sampling norm.
#[derive(Debug)]
pub struct Iln {
    rho: Tensor,
    gamma: Tensor,
    beta: Tensor,
}

impl Iln {
    /// The norm over `c` channels under `path`.
    pub fn new(path: nn::Path, c: i64) -> Self {
        Self {
            rho: rho(&path, c, 0.0),
            gamma: path.var("gamma", &[1, c, 1, 1], Init::Const(1.0)),
            beta: path.var("beta", &[1, c, 1, 1], Init::Const(0.0)),
        }
    }

    /// Normalises `x` [n, c, H, W].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        layer_instance_mix(x, &self.rho) * &self.gamma + &self.beta
    }
}

/// Clamps every variable of `vs` whose name ends in `rho` to [0, 1] (the reference's
/// `RhoClipper(0, 1)`, applied after each generator update).
pub fn clip_rho(vs: &nn::VarStore) {
    let _guard = tch::no_grad_guard();
    for (name, mut v) in vs.variables() {
        if name.ends_with("rho") {
            let _ = v.clamp_(0.0, 1.0);
        }
    }
}

/// The mean of every `rho` of `vs` (logged: how instance-like the norms have become).
pub fn mean_rho(vs: &nn::VarStore) -> f64 {
    let rhos: Vec<Tensor> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| n.ends_with("rho"))
        .map(|(_, v)| v.detach().reshape([-1]))
        .collect();
    if rhos.is_empty() {
        return f64::NAN;
    }
    Tensor::cat(&rhos, 0).mean(Kind::Float).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Closed forms: with ρ = 1 ILN is instance norm with the unbiased variance, with ρ = 0
    /// layer norm; AdaILN applies the given γ, β per image; instance_norm has zero mean and
    /// unit biased variance per channel (tolerance 1e-4, float32); clip_rho clamps to [0, 1].
    #[test]
    fn norms_and_rho_clipping() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(3);
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu)) * 3 + 1;
        let y = instance_norm(&x);
        let (var, mean) = y.var_mean_dim(&[2i64, 3][..], false, false);
        assert!(mean.abs().max().double_value(&[]) < 1e-4);
        assert!((var - 1.0).abs().max().double_value(&[]) < 1e-3);
        let vs = nn::VarStore::new(Device::Cpu);
        let iln = Iln::new(vs.root() / "iln", 3);
        let ada = AdaIln::new(vs.root() / "ada", 3);
        tch::no_grad(|| {
            let mut r = iln.rho.shallow_clone();
            let _ = r.fill_(1.0);
        });
        let n = 20.0; // H·W
        let want_in = {
            let (v, m) = x.var_mean_dim(&[2i64, 3][..], false, true);
            (&x - m) / (v * n / (n - 1.0) + EPS).sqrt()
        };
        let err = (iln.forward(&x) - &want_in).abs().max().double_value(&[]);
        assert!(err < 1e-4, "ILN(ρ=1) vs unbiased instance norm: {err}");
        tch::no_grad(|| {
            let mut r = iln.rho.shallow_clone();
            let _ = r.fill_(0.0);
        });
        let y = iln.forward(&x);
        let (v, m) = y.var_mean_dim(&[1i64, 2, 3][..], true, false);
        assert!(m.abs().max().double_value(&[]) < 1e-4);
        assert!((v - 1.0).abs().max().double_value(&[]) < 1e-3);
        let gamma = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
        let beta = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let base = layer_instance_mix(&x, &ada.rho);
        let out = ada.forward(&x, &gamma, &beta);
        let want = &base * gamma.view([2, 3, 1, 1]) + 1.0;
        assert!((out - want).abs().max().double_value(&[]) < 1e-5);
        tch::no_grad(|| {
            let mut r = ada.rho.shallow_clone();
            r.copy_(&Tensor::from_slice(&[-0.5f32, 0.5, 1.5]).view([1, 3, 1, 1]));
        });
        clip_rho(&vs);
        let r: Vec<f32> = Vec::try_from(ada.rho.reshape([-1])).unwrap();
        assert_eq!(r, vec![0.0, 0.5, 1.0]);
    }
}
