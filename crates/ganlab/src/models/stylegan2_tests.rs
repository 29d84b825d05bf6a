//! Tests of the StyleGAN2 networks: parity with the official structure, shapes, t in D and
//! the minibatch-stddev layer.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::*;

fn summary(vs: &nn::VarStore) -> (i64, Vec<Vec<i64>>) {
    let mut shapes: Vec<Vec<i64>> = vs.trainable_variables().iter().map(|t| t.size()).collect();
    shapes.sort();
    (
        shapes.iter().map(|s| s.iter().product::<i64>()).sum(),
        shapes,
    )
}

/// The settings of tests/fixtures/stylegan2_reference.py's SETTINGS, by name.
fn setting(name: &str) -> (Stylegan2Config, bool) {
    let cifar = Stylegan2Config {
        d_architecture: DArchitecture::Orig,
        ..Default::default()
    };
    match name {
        "cifar" => (cifar, false),
        "cifar_t" => (cifar, true),
        _ => (
            Stylegan2Config {
                image_size: 64,
                latent_dim: 64,
                w_dim: 64,
                channel_base: 1024,
                channel_max: 64,
                mapping_layers: 2,
                d_mapping_layers: 2,
                mbstd_group: 4,
                ..Default::default()
            },
            true,
        ),
    }
}

/// G and D have the official networks' parameters, shape for shape: StyleGAN2-ADA's CIFAR
/// setting at 32 px (configs/stylegan2-cifar.toml; G 19,947,539 and D 20,720,641, D with t
/// 22,822,401), and a 64 px residual-D CPU setting. Expected values:
/// tests/fixtures/stylegan2_reference.py (PyTorch, whose CIFAR totals equal the official
/// code's), exact.
#[test]
fn networks_match_the_official_structure() {
    // Building networks draws from the global RNG; other tests seed it and rely on their
    // sequence (the SNGAN test's power iterations), so take the lock.
    let _rng = crate::test_rng_lock();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("stylegan2_reference.json")).unwrap(),
    )
    .unwrap();
    for name in ["cifar", "cifar_t", "cpu64_resnet_t"] {
        let (cfg, with_t) = setting(name);
        cfg.validate("model.stylegan2").unwrap();
        let (g_vs, d_vs) = (
            nn::VarStore::new(Device::Cpu),
            nn::VarStore::new(Device::Cpu),
        );
        let _g = cfg.init_generator(g_vs.root());
        let _d = cfg.init_discriminator(d_vs.root(), with_t);
        for (net, vs) in [("g", &g_vs), ("d", &d_vs)] {
            let key = format!("{net}_{name}");
            let (n, shapes) = summary(vs);
            let w = &want[&key];
            assert_eq!(n, w["params"].as_i64().unwrap(), "{key}: parameter count");
            let ws: Vec<Vec<i64>> = serde_json::from_value(w["shapes"].clone()).unwrap();
            assert_eq!(shapes, ws, "{key}: parameter shapes");
        }
    }
    // The configs file is the CIFAR setting.
    let cfg = crate::train::TrainConfig::load(&fixtures.join("../../configs/stylegan2-cifar.toml"))
        .unwrap();
    assert_eq!(cfg.model.stylegan2, setting("cifar").0);
    assert!(!cfg.diffusion.enabled);
}

/// tests/fixtures/stylegan2_reference.py's `fill`: h(k) = 2·frac(43758.5453·sin(12.9898·k +
/// o)) − 1, o = (sum of the name's bytes) mod 97, ×100 in the mapping layers; noise 0.
fn fill(vs: &nn::VarStore) {
    let _guard = tch::no_grad_guard();
    for (name, mut p) in vs.variables() {
        if name.ends_with("noise_strength") {
            let _ = p.zero_();
            continue;
        }
        let o = f64::from(name.bytes().map(u32::from).sum::<u32>() % 97);
        let scale = if name.starts_with("mapping.fc") {
            100.0
        } else {
            1.0
        };
        let v: Vec<f32> = (0..p.numel())
            .map(|k| {
                let v = (12.9898 * k as f64 + o).sin() * 43758.5453;
                (scale * (2.0 * (v - v.floor()) - 1.0)) as f32
            })
            .collect();
        p.copy_(&Tensor::from_slice(&v).view(p.size().as_slice()));
    }
}

/// The forward passes equal the reference's (whose networks equal the official ones) on
/// parameters set by a closed form: D's scores with t (orig and resnet) and G's image (mean,
/// std, first 64 values), 32 px, channel_base 512, channel_max 32, mbstd group 2, batch 4.
/// Tolerance 1e-4 relative to the largest value: float32 sums in another order.
#[test]
fn forward_matches_the_reference() {
    // Building networks draws from the global RNG; other tests seed it and rely on their
    // sequence (the SNGAN test's power iterations), so take the lock.
    let _rng = crate::test_rng_lock();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("stylegan2_reference.json")).unwrap(),
    )
    .unwrap();
    let want = &want["parity"];
    let floats = |v: &serde_json::Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
    let close = |got: &[f64], want: &[f64], what: &str| {
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 1e-4 * scale, "{what}[{i}]: {a} vs {b}");
        }
        assert_eq!(got.len(), want.len(), "{what}");
    };
    let cfg = |arch| Stylegan2Config {
        image_size: 32,
        latent_dim: 16,
        w_dim: 16,
        channel_base: 512,
        channel_max: 32,
        mapping_layers: 2,
        d_mapping_layers: 2,
        d_architecture: arch,
        mbstd_group: 2,
        ..Default::default()
    };
    for (arch, key) in [
        (DArchitecture::Orig, "d_orig"),
        (DArchitecture::Resnet, "d_resnet"),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let d = cfg(arch).init_discriminator(vs.root(), true);
        fill(&vs);
        let k = Tensor::arange(4 * 3 * 32 * 32, (Kind::Double, Device::Cpu));
        let x = (k * 0.3).cos().to_kind(Kind::Float).view([4, 3, 32, 32]);
        let t = Tensor::from_slice(&[0i64, 7, 150, 499]);
        let s = Vec::<f64>::try_from(d.forward(&x, &t).flatten(0, -1)).unwrap();
        close(&s, &floats(&want[key]), key);
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let g = cfg(DArchitecture::Orig).init_generator(vs.root());
    fill(&vs);
    let k = Tensor::arange(4 * 16, (Kind::Double, Device::Cpu));
    let img = g.forward(&(k * 0.5).sin().to_kind(Kind::Float).view([4, 16]));
    let w = &want["g"];
    let first = Vec::<f64>::try_from(img.flatten(0, -1).narrow(0, 0, 64)).unwrap();
    close(&first, &floats(&w["first"]), "g.first");
    let stats = [
        img.mean(Kind::Float).double_value(&[]),
        img.std(true).double_value(&[]),
    ];
    close(
        &stats,
        &[w["mean"].as_f64().unwrap(), w["std"].as_f64().unwrap()],
        "g.stats",
    );
}

fn tiny(size: i64, arch: DArchitecture) -> Stylegan2Config {
    Stylegan2Config {
        image_size: size,
        channels: 3,
        latent_dim: 16,
        w_dim: 16,
        channel_base: 128,
        channel_max: 16,
        d_mapping_layers: 2,
        d_architecture: arch,
        mbstd_group: 4,
        ..Default::default()
    }
}

/// Images have the configured shape; D gives one score per image, depends on t only when
/// built with it, and its features do not depend on t (t enters by projection only).
#[test]
fn shapes_and_t_conditioning() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    for (size, arch) in [(32, DArchitecture::Orig), (64, DArchitecture::Resnet)] {
        let cfg = tiny(size, arch);
        cfg.validate("m").unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let g = cfg.init_generator(vs.root() / "g");
        let x = g.forward(&Tensor::randn([8, 16], (Kind::Float, Device::Cpu)));
        assert_eq!(x.size(), vec![8, 3, size, size]);
        assert!(x.isfinite().all().int64_value(&[]) == 1);
        for with_t in [false, true] {
            let d = cfg.init_discriminator(vs.root() / format!("d{with_t}"), with_t);
            let t0 = Tensor::zeros([8], (Kind::Int64, Device::Cpu));
            let t1 = Tensor::full([8], 300, (Kind::Int64, Device::Cpu));
            let (s0, f0) = d.score_and_features(&x, &t0);
            let (s1, f1) = d.score_and_features(&x, &t1);
            assert_eq!(s0.size(), vec![8, 1]);
            assert_eq!(f0.size(), vec![8, d.feature_dim()]);
            assert!(f0.equal(&f1));
            assert_eq!(
                !s0.equal(&s1),
                with_t,
                "{size}: D depends on t iff built with it"
            );
        }
    }
}

/// Minibatch stddev against its closed form: two groups of 2 samples (group 2 of a batch of
/// 4, one feature): sample i is grouped with i ± 2, and each appended channel holds the mean
/// over channels and pixels of |a − b|/2 for the pair (the population std of two values).
#[test]
fn minibatch_stddev_closed_form() {
    let x = Tensor::arange(4 * 2 * 2 * 2, (Kind::Float, Device::Cpu))
        .view([4, 2, 2, 2])
        .square();
    let y = minibatch_stddev(&x, 2, 1);
    assert_eq!(y.size(), vec![4, 3, 2, 2]);
    for i in 0..4 {
        let j = (i + 2) % 4;
        let a = x.get(i);
        let b = x.get(j);
        let want = ((a - b).abs() / 2.0).mean(Kind::Float).double_value(&[]);
        let got = y.get(i).get(2);
        let err = (got - want).abs().max().double_value(&[]);
        assert!(err < 1e-3 * want.max(1.0), "sample {i}: {err}");
    }
    assert!(y.narrow(1, 0, 2).equal(&x));
    // A batch of 6 with group 4 uses groups of 3 (the largest divisor not above 4).
    assert_eq!(group_size(6, 4), 3);
    assert_eq!(group_size(5, 32), 5);
    assert_eq!(group_size(7, 4), 1);
}

/// Out-of-range fields are named.
#[test]
fn invalid_configs_name_the_field() {
    for (cfg, field) in [
        (
            Stylegan2Config {
                image_size: 28,
                ..Default::default()
            },
            "image_size",
        ),
        (
            Stylegan2Config {
                mbstd_channels: 3,
                ..Default::default()
            },
            "mbstd_channels",
        ),
        (
            Stylegan2Config {
                mapping_layers: 0,
                ..Default::default()
            },
            "mapping_layers",
        ),
    ] {
        let e = cfg.validate("model.stylegan2").unwrap_err().to_string();
        assert!(e.contains(&format!("model.stylegan2.{field}")), "{e}");
    }
}
