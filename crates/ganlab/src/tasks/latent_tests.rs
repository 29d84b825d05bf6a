//! Tests of LaDiffGAN's pretraining tasks: the autoencoder and the latent DDPM.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::ddpm::ancestral;
use super::translation_tests::write_domains;
use crate::diffusion::schedule::{alphas_bar, q_sample, BetaSchedule};
use crate::progress::Silent;
use crate::train::{TrainConfig, Trainer};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ganlab-latent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// q(z_t | z_0) is a·z_0 + b·ε exactly (closed form, float32 tolerance 1e-6), and with
/// ε ~ N(0, I), z_0 ~ N(0, I) the diffused latents keep unit variance at every t
/// (ᾱ + (1 − ᾱ) = 1; 40,000 values, tolerance 3%).
#[test]
fn forward_process_closed_form() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let x = Tensor::randn([4, 2, 3, 3], (Kind::Float, Device::Cpu));
    let e = Tensor::randn([4, 2, 3, 3], (Kind::Float, Device::Cpu));
    let (a, b) = ([1.0f32, 0.5, 0.1, 0.0], [0.0f32, 0.8, 0.99, 1.0]);
    let y = q_sample(&x, e.copy(), &a, &b);
    for i in 0..4 {
        let want = x.get(i) * a[i as usize] as f64 + e.get(i) * b[i as usize] as f64;
        assert!((y.get(i) - want).abs().max().double_value(&[]) < 1e-6);
    }
    let ab = alphas_bar(&BetaSchedule::Linear.betas(1e-4, 0.02, 1000));
    let z = Tensor::randn([4, 10_000], (Kind::Float, Device::Cpu));
    let t = [1usize, 100, 500, 1000];
    let abt: Vec<f64> = t.iter().map(|&t| ab[t]).collect();
    let (a, b) = crate::diffusion::schedule::ddpm_coefficients(&abt);
    let y = q_sample(&z, z.randn_like(), &a, &b);
    for i in 0..4 {
        let v = y.get(i).var(true).double_value(&[]);
        assert!(
            (v - 1.0).abs() < 0.03,
            "t = {}: variance {v}",
            t[i as usize]
        );
    }
}

/// Ancestral sampling (eq. S1) with the exact ε-predictor of Gaussian data N(0, s²): z_t ~
/// N(0, v_t) with v_t = ᾱ_t s² + 1 − ᾱ_t, so E[ε | z_t] = √(1 − ᾱ_t)·z_t / v_t (closed
/// form). From z_T ~ N(0, I), 20,000 samples must come out with standard deviation s = 0.5
/// within 4% (σ_t² = β_t adds O(1/T) bias); an ε-predictor of 0 leaves them near
/// 1/√ᾱ-scaled noise, nowhere near 0.5.
#[test]
fn ancestral_sampling_recovers_a_gaussian() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(4);
    let betas = BetaSchedule::Linear.betas(1e-4, 0.02, 1000);
    let ab = alphas_bar(&betas);
    let s2 = 0.25;
    let exact = |z: &Tensor, t: &Tensor| {
        let t = t.int64_value(&[0]) as usize;
        let v = ab[t] * s2 + 1.0 - ab[t];
        z * ((1.0 - ab[t]).sqrt() / v)
    };
    let z_t = Tensor::randn([20_000, 1], (Kind::Float, Device::Cpu));
    let z0 = ancestral(&betas, &z_t, &exact);
    let sd = z0.std(true).double_value(&[]);
    assert!((sd - 0.5).abs() < 0.02, "std {sd}");
    assert!(z0.mean(Kind::Float).double_value(&[]).abs() < 0.02);
}

fn tiny_autoencoder(data: &Path, domain: &str) -> TrainConfig {
    let mut cfg =
        TrainConfig::from_toml_str("[task]\nkind = \"autoencoder\"\n", Path::new("t")).unwrap();
    cfg.run.steps = 4;
    cfg.run.batch_size = 2;
    cfg.run.eval_every = 2;
    cfg.run.checkpoint_every = 2;
    cfg.run.device = "cpu".into();
    let c = &mut cfg.autoencoder;
    c.domain = domain.into();
    c.data.dir = data.to_path_buf();
    c.data.image_size = 32;
    c.data.load_size = 32;
    c.model.nf = 8;
    c.model.mults = vec![1, 2];
    c.probes = 2;
    // The perceptual net from a torchvision-layout file: the narrow VGG-19 fixture.
    c.perceptual.net = crate::models::perceptual::PerceptualKind::Vgg19;
    c.perceptual.vgg19_weights = fixtures().join("vgg19_narrow.pth");
    c.perceptual.input_size = 32;
    cfg.validate().unwrap();
    cfg
}

fn tiny_ddpm(ae_dir: &Path) -> TrainConfig {
    let mut d = TrainConfig::from_toml_str("[task]\nkind = \"ddpm\"\n", Path::new("t")).unwrap();
    d.run.steps = 6;
    d.run.batch_size = 4;
    d.run.checkpoint_every = 3;
    d.run.device = "cpu".into();
    d.ddpm.autoencoder = ae_dir.to_path_buf();
    d.ddpm.t_max = 50;
    d.ddpm.samples = 0;
    d.ddpm.model.ch = 8;
    d.ddpm.model.blocks = 1;
    d
}

/// Tiny autoencoders and DDPMs of both domains of `data` (32 px), trained under `dir`:
/// the DDPM run directories of A and B.
pub(crate) fn pretrained(data: &Path, dir: &Path) -> [PathBuf; 2] {
    ["a", "b"].map(|k| {
        let ae = dir.join(format!("ae-{k}"));
        let mut c = tiny_autoencoder(data, k);
        c.autoencoder.perceptual.net = crate::models::perceptual::PerceptualKind::None;
        c.run.steps = 2;
        Trainer::new(c, &ae).unwrap().run(&mut Silent).unwrap();
        let ddpm = dir.join(format!("ddpm-{k}"));
        let mut d = tiny_ddpm(&ae);
        d.run.steps = 2;
        Trainer::new(d, &ddpm).unwrap().run(&mut Silent).unwrap();
        ddpm
    })
}

/// Autoencoder → DDPM end to end on a tiny set: the autoencoder run says which perceptual
/// network it used, its loss is the sum of its terms and it offers a codec with the
/// configured latent shape; the DDPM trains on that run's latents, resumes bit-identically
/// (its latent scale restored from the checkpoint) and offers a denoiser whose samples
/// have the latent shape.
#[test]
fn autoencoder_then_ddpm_train_resume_and_sample() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    let data = tmp("data");
    write_domains(&data, "train", 5, 32);
    write_domains(&data, "test", 2, 32);
    let ae_dir = tmp("ae");
    let cfg = tiny_autoencoder(&data, "b");
    let mut t = Trainer::new(cfg, &ae_dir).unwrap();
    let s = t.run(&mut Silent).unwrap();
    assert!(
        s["perceptual"].as_str().unwrap().contains("VGG-19"),
        "{s:?}"
    );
    assert!(s["test_psnr"].as_f64().unwrap().is_finite());
    assert_eq!(s["latent_shape"], serde_json::json!([4, 8, 8]));
    let row = &t.rows()[0];
    let sum = row.get("loss_l1") + row.get("loss_perceptual");
    assert!((sum - row.get("loss")).abs() < 1e-5 * sum.max(1.0));
    assert!(row.get("loss_perceptual") > 0.0);
    assert!(ae_dir.join("reconstructions.png").is_file());
    let config = std::fs::read_to_string(ae_dir.join("config.toml")).unwrap();
    assert!(config.contains("net = \"vgg19\""), "{config}");

    let d = tiny_ddpm(&ae_dir);
    let (full_dir, half_dir) = (tmp("ddpm-full"), tmp("ddpm-half"));
    let mut full = Trainer::new(d.clone(), &full_dir).unwrap();
    let s = full.run(&mut Silent).unwrap();
    let scale = s["latent_scale"].as_f64().unwrap();
    assert!(scale > 0.0 && scale.is_finite());
    assert!(full.rows().iter().all(|r| r.get("loss").is_finite()));
    let mut half = d.clone();
    half.run.steps = 3;
    Trainer::new(half, &half_dir)
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    let mut r = Trainer::resume(&half_dir, Some(6), None).unwrap();
    r.run(&mut Silent).unwrap();
    for ((k, x), (_, y)) in full.weights().iter().zip(r.weights()) {
        assert!(x.equal(&y), "{k} differs after resume");
    }
    let run = crate::run::Run::open(&full_dir).unwrap();
    let den = run.task().denoiser().unwrap();
    assert_eq!(den.scale(), scale);
    assert_eq!(den.alphas_bar().len(), 51);
    let z = Tensor::randn([3, 4, 8, 8], (Kind::Float, Device::Cpu));
    assert_eq!(
        den.eps(&z, &Tensor::from_slice(&[1i64, 20, 50])).size(),
        [3, 4, 8, 8]
    );
    assert_eq!(den.autoencoder().domain(), "b");
    // A DDPM on a run that is not an autoencoder is a clear config error.
    let mut bad = d.clone();
    bad.ddpm.autoencoder = full_dir.clone();
    let e = Trainer::new(bad, &tmp("bad")).unwrap_err().to_string();
    assert!(
        e.contains("ddpm.autoencoder") && e.contains("not an autoencoder"),
        "{e}"
    );
}

/// The autoencoder and the latent U-Net have the PyTorch definitions' parameters, shape for
/// shape (tests/fixtures/ladiffgan_reference.py; exact): the shipped configs' autoencoder
/// (1,741,831) and U-Net (902,852), and the default U-Net (3,595,652).
#[test]
fn networks_match_the_pytorch_definitions() {
    let _rng = crate::test_rng_lock();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("ladiffgan_reference.json")).unwrap(),
    )
    .unwrap();
    let configs = fixtures().join("../../configs");
    let check = |key: &str, vs: &tch::nn::VarStore| {
        let vars = vs.trainable_variables();
        let mut shapes: Vec<Vec<i64>> = vars.iter().map(|t| t.size()).collect();
        shapes.sort();
        let n: i64 = vars.iter().map(|t| t.numel() as i64).sum();
        assert_eq!(n, want[key]["params"].as_i64().unwrap(), "{key}");
        let ws: Vec<Vec<i64>> = serde_json::from_value(want[key]["shapes"].clone()).unwrap();
        assert_eq!(shapes, ws, "{key}");
    };
    let ae = TrainConfig::load(&configs.join("autoencoder-emoji.toml")).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    ae.autoencoder.model.init(vs.root(), 3);
    check("autoencoder_emoji", &vs);
    let dd = TrainConfig::load(&configs.join("ddpm-emoji.toml")).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    dd.ddpm.model.init(vs.root(), 4);
    check("unet_emoji", &vs);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    crate::models::latent_unet::LatentUnetConfig::default().init(vs.root(), 4);
    check("unet_default", &vs);
}
