//! Closed-form checks of the refinement estimators and updates. Every tolerance is stated
//! with the source of its expected value.

use super::*;
use tch::Device;

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn identity(x: &Tensor) -> Tensor {
    x.shallow_clone()
}

fn mean_rows(x: &Tensor) -> Vec<f64> {
    Vec::try_from(x.mean_dim(0, false, Kind::Double)).unwrap()
}

fn var_rows(x: &Tensor) -> Vec<f64> {
    Vec::try_from(x.to_kind(Kind::Double).var_dim(0, false, false)).unwrap()
}

/// The Monte-Carlo mollified kernel equals the Gaussian convolution in closed form:
/// E_ξ exp(−‖x+ξ−x'‖²/(2b²)) = (b²/(b²+s²))^{D/2} exp(−‖x−x'‖²/(2(b²+s²))), D = 2.
/// 40 000 draws of values in [0, 1]: standard error < 0.0025, tolerance 0.01.
#[test]
fn mollified_kernel_matches_closed_form() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let (b, s) = (0.5, 0.3);
    let x = Tensor::from_slice(&[0.2f32, -0.1]).view([1, 2]);
    let y = Tensor::from_slice(&[0.6f32, 0.2]).view([1, 2]);
    let m = 40_000;
    let xi = Tensor::randn([m, 2], CPU) * s;
    let mc = gaussian_kernel(&(&x + xi), &y, b)
        .mean(Kind::Double)
        .double_value(&[]);
    let d2 = 0.4f64.powi(2) + 0.3f64.powi(2);
    let exact = b * b / (b * b + s * s) * (-d2 / (2.0 * (b * b + s * s))).exp();
    assert!((mc - exact).abs() < 0.01, "MC {mc} vs closed form {exact}");
    // s = 0 is the plain kernel.
    let plain = gaussian_kernel(&x, &y, b).double_value(&[0, 0]);
    assert!((plain - (-d2 / (2.0 * b * b)).exp()).abs() < 1e-6);
}

/// Theorem 5: ‖λ(K+λI)⁻¹ − I‖_F ≤ √r‖K‖₂/(λ_min(K) + λ) for every λ, it falls as λ grows,
/// and the KRR score ∇ log p̂ approaches the KDE score: relative 1e-3 at lambda = 1e5 (λ =
/// 1e5·‖K‖₂, where the bound gives ‖A − I‖_F < √30/1e5 and the score error is of that order).
#[test]
fn krr_approaches_kde_theorem_5() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(4);
    let n = 30;
    let pts = Tensor::randn([n, 2], CPU);
    let k = gaussian_kernel(&pts, &pts, 0.7).to_kind(Kind::Double);
    let eig = k.linalg_eigvalsh("L");
    let (lmin, lmax) = (
        eig.min().double_value(&[]).max(0.0),
        eig.max().double_value(&[]),
    );
    assert!(
        (top_eigenvalue(&k) - lmax).abs() < 1e-6 * lmax,
        "power iteration"
    );
    // krr_weights (conjugate gradients) equals a direct solve (relative 1e-5: it returns f32).
    for rel in [1e-3, 1.0] {
        let l = rel * top_eigenvalue(&k);
        let eye = Tensor::eye(n, (Kind::Double, Device::Cpu));
        let direct = (&k + &eye * l)
            .inverse()
            .sum_dim_intlist(1, false, Kind::Double)
            * l;
        let cg = krr_weights(&k, rel).unwrap().to_kind(Kind::Double);
        let err = (&cg - &direct).abs().max().double_value(&[]);
        assert!(
            err < 1e-5 * direct.abs().max().double_value(&[]),
            "λ={rel}: {err}"
        );
    }
    let mut last = f64::INFINITY;
    for lambda in [0.01, 0.1, 1.0, 10.0, 100.0, 1e4] {
        let eye = Tensor::eye(n, (Kind::Double, Device::Cpu));
        let a = (&k + &eye * lambda).inverse() * lambda;
        let frob = (a - &eye)
            .square()
            .sum(Kind::Double)
            .sqrt()
            .double_value(&[]);
        let bound = (n as f64).sqrt() * lmax / (lmin + lambda);
        assert!(
            frob <= bound * (1.0 + 1e-9),
            "λ={lambda}: {frob} > bound {bound}"
        );
        assert!(frob < last, "λ={lambda}: ‖A − I‖ must fall with λ");
        last = frob;
    }
    // Scores at query points: KRR(λ = 1e5) vs KDE.
    let q = (Tensor::randn([8, 2], CPU) * 0.5).set_requires_grad(true);
    let score = |lambda: Option<f64>| {
        let est = KernelDensity::fit(&pts, &[pts.shallow_clone()], 0.7, lambda).unwrap();
        let l = est.log_density(&[q.shallow_clone()]).sum(Kind::Float);
        Tensor::run_backward(&[l], &[&q], false, false)
            .pop()
            .unwrap()
    };
    let (kde, krr) = (score(None), score(Some(1e5)));
    let rel = ((&krr - &kde).norm().double_value(&[])) / kde.norm().double_value(&[]);
    assert!(rel < 1e-3, "KRR(λ=1e5) vs KDE score: relative {rel}");
    let small = score(Some(0.1));
    let rel_small = ((&small - &kde).norm().double_value(&[])) / kde.norm().double_value(&[]);
    assert!(
        rel_small > 10.0 * rel,
        "a small λ must differ from KDE ({rel_small})"
    );
}

/// A Gaussian target in 2-D with G = identity and the kernel on the points themselves:
/// the flow's fixed point is q = p_data = N((2, 0), I). From N(0, I), 400 particles and 400
/// real samples, the particle mean must reach (2, 0) within 0.15 and each variance must stay
/// in [0.7, 1.3] (the entropy term keeps the spread; without it the particles would collapse
/// onto the data mode). Bounds: several times the seed-to-seed spread of this estimator.
#[test]
fn flows_reach_a_gaussian_target() {
    let _rng = crate::test_rng_lock();
    for method in [Method::KrrWgf, Method::Kde] {
        tch::manual_seed(5);
        let real = Tensor::randn([400, 2], CPU) + Tensor::from_slice(&[2.0f32, 0.0]);
        let z0 = Tensor::randn([400, 2], CPU);
        let pot = Potentials {
            generator: &identity,
            critic: None,
            features: &identity,
            condition: None,
        };
        let cfg = RefineConfig {
            method,
            steps: 100,
            step_size: 0.15,
            bandwidth: 0.5,
            mollifier_std: 0.1,
            chunk: 128,
            ..Default::default()
        };
        let r = refine(&z0, Some(&real), &pot, &cfg).unwrap();
        let (m, v) = (mean_rows(&r.z), var_rows(&r.z));
        assert!(
            (m[0] - 2.0).abs() < 0.15 && m[1].abs() < 0.15,
            "{method:?}: mean {m:?}"
        );
        assert!(
            v.iter().all(|v| (0.7..1.3).contains(v)),
            "{method:?}: variances {v:?}"
        );
        assert_eq!(r.log.len(), cfg.steps + 1);
        eprintln!("{method:?}: mean {m:?} variances {v:?}");
    }
}

/// DDLS with G = identity and d(x) = μ·x samples p₀(z)e^{d(z)} ∝ N(μ, I) exactly (closed
/// form). The Euler–Maruyama chain z ← z + (ε/2)(μ − z) + √ε ξ has stationary variance
/// 1/(1 − ε/4) = 1.0127 at ε = 0.05. 4000 chains × 400 steps (time 10, e^{-5} of the start
/// left): mean within 0.06 of μ (standard error 0.016), variance within 0.06 of 1.0127.
#[test]
fn ddls_samples_the_tilted_prior() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(6);
    let mu = Tensor::from_slice(&[1.5f32, -1.0]);
    let critic = |x: &Tensor| x.matmul(&mu);
    let pot = Potentials {
        generator: &identity,
        critic: Some(&critic),
        features: &identity,
        condition: None,
    };
    let cfg = RefineConfig {
        method: Method::Ddls,
        steps: 400,
        step_size: 0.05,
        chunk: 4000,
        ..Default::default()
    };
    let r = refine(&Tensor::randn([4000, 2], CPU), None, &pot, &cfg).unwrap();
    let (m, v) = (mean_rows(&r.z), var_rows(&r.z));
    assert!(
        (m[0] - 1.5).abs() < 0.06 && (m[1] + 1.0).abs() < 0.06,
        "{m:?}"
    );
    let target = 1.0 / (1.0 - 0.05 / 4.0);
    assert!(v.iter().all(|v| (v - target).abs() < 0.06), "{v:?}");
}

/// Latent DOT with G = identity, d(x) = −‖x‖²/2 and k_eff = 1 minimises
/// ‖z − y‖ + ‖z‖²/2: the closed form is z* = y when ‖y‖ ≤ 1, else y/‖y‖ (the point at
/// distance k_eff from the optimum on the segment). Gradient steps of 0.01 from y, with
/// δ = 1e-3 smoothing: within 0.02 of z*.
#[test]
fn dot_reaches_its_closed_form() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(7);
    let critic = |x: &Tensor| x.square().sum_dim_intlist(1, false, Kind::Float) * -0.5;
    let pot = Potentials {
        generator: &identity,
        critic: Some(&critic),
        features: &identity,
        condition: None,
    };
    let y = Tensor::randn([64, 2], CPU) * 1.5;
    let cfg = RefineConfig {
        method: Method::Dot,
        steps: 1500,
        step_size: 0.01,
        dot_k_eff: 1.0,
        ..Default::default()
    };
    let r = refine(&y, None, &pot, &cfg).unwrap();
    let norm = y.norm_scalaropt_dim(2, [1], true);
    let star = y.where_self(&norm.le(1.0), &(&y / &norm));
    let err = (&r.z - star).abs().max().double_value(&[]);
    assert!(err < 0.02, "max error {err}");
    assert_eq!(r.k_eff, Some(1.0));
    // k_eff estimate of a linear potential u = a·z is ‖a‖ (the largest slope, reached along
    // a); with 200 random pairs directions the maximum is within 5%.
    let z = Tensor::randn([200, 2], CPU);
    let a = Tensor::from_slice(&[3.0f32, 4.0]);
    let k = lipschitz_estimate(&z, &z.matmul(&a));
    assert!((k - 5.0).abs() < 0.25 && k <= 5.0 + 1e-4, "k_eff {k}");
}

/// A class condition moves every particle to its mode: G = identity on 25-Gaussian-like
/// centres, the nearest-mode classifier with τ = 1, label 7 (centre (−2, 0)); with the
/// entropy term on, ≥ 95% of particles end nearest to that centre (an exact fixed point
/// would put all there), and the condition's mean log-likelihood rises at every logged step.
#[test]
fn class_condition_moves_particles_to_the_mode() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(8);
    let g = [-4.0, -2.0, 0.0, 2.0, 4.0];
    let centres: Vec<[f64; 2]> = g
        .iter()
        .flat_map(|x| g.iter().map(move |y| [*x, *y]))
        .collect();
    let cond = |x: &Tensor| {
        conditions::class_log_prob(&conditions::mode_logits(x, &centres, 1.0), 7).unwrap()
    };
    let pot = Potentials {
        generator: &identity,
        critic: None,
        features: &identity,
        condition: Some(&cond),
    };
    let cfg = RefineConfig {
        steps: 60,
        step_size: 0.2,
        eta_entropy: 0.05,
        bandwidth: 0.5,
        ..Default::default()
    };
    let z0 = Tensor::randn([300, 2], CPU) * 2.0;
    let r = refine(&z0, None, &pot, &cfg).unwrap();
    let logits = conditions::mode_logits(&r.z, &centres, 1.0);
    let hit = logits
        .argmax(1, false)
        .eq(7)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    assert!(hit >= 0.95, "fraction at mode 7: {hit}");
    // Rises until it levels off (float noise of ±1e-6 at the plateau).
    let c: Vec<f64> = r.log.iter().map(|l| l.condition.unwrap()).collect();
    assert!(c.windows(2).all(|w| w[1] > w[0] - 1e-4), "{c:?}");
    assert!(c[c.len() - 1] > c[0] + 3.0, "{c:?}");
}

/// Inpainting through a generator: known-pixel error falls at every step, unknown pixels
/// stay free (a tiny random tanh-linear G from 8-d codes to 1×4×4 images).
#[test]
fn inpainting_fits_the_known_pixels() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(9);
    let w = Tensor::randn([8, 16], CPU) * 0.5;
    let gen = |z: &Tensor| z.matmul(&w).tanh().view([-1, 1, 4, 4]);
    let known = gen(&Tensor::randn([1, 8], CPU));
    let mask = conditions::MaskKind::TopHalf.build(&[1, 1, 4, 4], Device::Cpu);
    assert_eq!(mask.sum(Kind::Float).double_value(&[]), 8.0);
    let cond = |x: &Tensor| conditions::inpaint_log_lik(x, &known, &mask, 0.1);
    let pot = Potentials {
        generator: &gen,
        critic: None,
        features: &|x: &Tensor| x.flatten(1, -1),
        condition: Some(&cond),
    };
    let cfg = RefineConfig {
        steps: 60,
        step_size: 0.005,
        eta_entropy: 0.0,
        ..Default::default()
    };
    let z0 = Tensor::randn([32, 8], CPU);
    let r = refine(&z0, None, &pot, &cfg).unwrap();
    let mse = |x: &Tensor| conditions::known_pixel_mse(x, &known, &mask).mean(Kind::Double);
    let (before, after) = (
        mse(&gen(&z0)).double_value(&[]),
        mse(&r.x).double_value(&[]),
    );
    assert!(after < 0.25 * before, "known-pixel MSE {before} → {after}");
    let c: Vec<f64> = r.log.iter().map(|l| l.condition.unwrap()).collect();
    assert!(c.windows(2).all(|w| w[1] >= w[0]), "{c:?}");
}

/// Bad configs and inputs name the field; conditions parse.
#[test]
fn errors_name_the_field() {
    let e = RefineConfig {
        lambda: 0.0,
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("refine.lambda"), "{e}");
    let e = RefineConfig {
        steps: 0,
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("refine.steps"), "{e}");
    assert!(Method::parse("sgld")
        .unwrap_err()
        .to_string()
        .contains("krr-wgf"));
    assert_eq!(Condition::parse("class:3").unwrap(), Condition::Class(3));
    assert_eq!(
        Condition::parse("inpaint:5:left").unwrap(),
        Condition::Inpaint {
            index: 5,
            mask: conditions::MaskKind::LeftHalf
        }
    );
    for bad in ["class:x", "inpaint:1:diagonal", "label:2", "class:-1"] {
        assert!(Condition::parse(bad).is_err(), "{bad}");
    }
    let pot = Potentials {
        generator: &identity,
        critic: None,
        features: &identity,
        condition: None,
    };
    let cfg = RefineConfig {
        method: Method::Ddls,
        ..Default::default()
    };
    let e = refine(&Tensor::zeros([4, 2], CPU), None, &pot, &cfg).unwrap_err();
    assert!(e.to_string().contains("needs a discriminator"), "{e}");
    let e = refine(
        &Tensor::zeros([4], CPU),
        None,
        &pot,
        &RefineConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("[n ≥ 2, k]"), "{e}");
}
