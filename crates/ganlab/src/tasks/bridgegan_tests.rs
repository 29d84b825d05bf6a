//! Tests of the multi-attribute translation task and its networks.

use std::path::{Path, PathBuf};

use tch::{nn, Device, Kind, Tensor};

use super::bridgegan::{att_ak, att_diff, bce_logits, l1, mode_seeking, BridgeGan};
use super::translation_tests::tmp;
use super::Task;
use crate::data::attributes::AttributeDataConfig;
use crate::models::bridgegan::{
    BridgeGenerator, BridgeModelConfig, DiscriminatorClassifier, MappingNetwork, Spade,
    StyleEncoder,
};
use crate::progress::Silent;
use crate::train::{TrainConfig, Trainer};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn vec(t: &Tensor) -> Vec<f32> {
    Vec::try_from(t.view([-1])).unwrap()
}

/// att_diff and att_ak by hand (supplement eqs. 10–11; Fig. 1's numbers are not in the
/// text, so an example of the same kind): Y_s = (1, 0, 1, 0, 1), Y_t = (1, 1, 0, 0, 1) →
/// d = (0, 1, −1, 0, 0); 1 − |d| = (1, 0, 0, 1, 1); 1 − 2Y_s = (−1, 1, −1, 1, −1);
/// att_ak = (−1, 0, 0, 1, −1): the kept attributes, with the sign that flips them.
#[test]
fn att_diff_and_att_ak_by_hand() {
    let y_s = Tensor::from_slice(&[1f32, 0., 1., 0., 1.]).view([1, 5]);
    let y_t = Tensor::from_slice(&[1f32, 1., 0., 0., 1.]).view([1, 5]);
    let d = att_diff(&y_s, &y_t);
    assert_eq!(vec(&d), [0., 1., -1., 0., 0.]);
    assert_eq!(vec(&att_ak(&d, &y_s)), [-1., 0., 0., 1., -1.]);
}

/// The loss pieces on hand-computed inputs (f32; tolerance 1e-6):
/// - BCE with logits (0, 2) against (1, 0): (ln 2 + 2 + ln(1 + e^−2)) / 2 = 1.410038;
/// - L1 mean |(1, −2) − (0, 0)| = 1.5;
/// - L_ms with |r₁ − r|₁ = 0.5 and |x₁ − x|₁ = 0.25: 0.5 / 0.25001 = 1.999920.
#[test]
fn loss_pieces_by_hand() {
    let x = Tensor::from_slice(&[0f32, 2.]);
    let y = Tensor::from_slice(&[1f32, 0.]);
    let want = (2f64.ln() + 2.0 + (1.0 + (-2f64).exp()).ln()) / 2.0;
    assert!((bce_logits(&x, &y).double_value(&[]) - want).abs() < 1e-6);
    let a = Tensor::from_slice(&[1f32, -2.]);
    assert!((l1(&a, &a.zeros_like()).double_value(&[]) - 1.5).abs() < 1e-6);
    let r = Tensor::zeros([2, 4], (Kind::Float, Device::Cpu));
    let r1 = r.ones_like() * 0.5;
    let x0 = Tensor::zeros([2, 3, 2, 2], (Kind::Float, Device::Cpu));
    let x1 = x0.ones_like() * 0.25;
    let ms = mode_seeking(&r1, &r, &x1, &x0).double_value(&[]);
    assert!((ms - 0.5 / 0.25001).abs() < 1e-6, "{ms}");
}

/// SPADE against its closed form: with 3×3 kernels that are zero but for the centre tap, a
/// constant style map s₀ gives constant γ_c = g_c·ReLU(a·s₀) + g_c⁰ and β_c = b_c·ReLU(a·s₀) +
/// b_c⁰, and the output is the instance-normalised input x̂ (ε 1e-6) times (1 + γ_c) plus β_c.
/// Input channel 0 is (1, 2, 3, 4) on a 2×2 map (mean 2.5, variance 1.25), channel 1 is
/// (0, 0, 0, 8) (mean 2, variance 12); s₀ = 2 on a 1×1 map (nearest-resized), a = 0.5,
/// g = (0.3, −0.2), g⁰ = (0.1, 0), b = (1, 2), b⁰ = (0, −1). Tolerance 1e-5.
#[test]
fn spade_is_an_affine_map_of_the_normalised_input() {
    let _rng = crate::test_rng_lock();
    let vs = nn::VarStore::new(Device::Cpu);
    let sp = Spade::new(vs.root() / "s", 2, 1, 1);
    let set = |name: &str, centre: &[f32], bias: &[f32]| {
        let vars = vs.variables();
        let mut w = vars[&format!("s.{name}.weight")].shallow_clone();
        let mut b = vars[&format!("s.{name}.bias")].shallow_clone();
        tch::no_grad(|| {
            let _ = w.zero_();
            for (o, v) in centre.iter().enumerate() {
                let _ = w.get(o as i64).get(0).get(1).get(1).fill_(*v as f64);
            }
            b.copy_(&Tensor::from_slice(bias));
        });
    };
    set("shared", &[0.5], &[0.0]);
    set("gamma", &[0.3, -0.2], &[0.1, 0.0]);
    set("beta", &[1.0, 2.0], &[0.0, -1.0]);
    let x = Tensor::from_slice(&[1f32, 2., 3., 4., 0., 0., 0., 8.]).view([1, 2, 2, 2]);
    let s = Tensor::from_slice(&[2f32]).view([1, 1, 1, 1]);
    let out = vec(&sp.forward(&x, &s));
    let a = (0.5f64 * 2.0).max(0.0);
    let (gamma, beta) = ([0.3 * a + 0.1, -0.2 * a], [a, 2.0 * a - 1.0]);
    let xs = [[1., 2., 3., 4.], [0., 0., 0., 8.]];
    for c in 0..2 {
        let mean = xs[c].iter().sum::<f64>() / 4.0;
        let var = xs[c].iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        for i in 0..4 {
            let want = (xs[c][i] - mean) / (var + 1e-6).sqrt() * (1.0 + gamma[c]) + beta[c];
            let got = out[c * 4 + i] as f64;
            assert!(
                (got - want).abs() < 1e-5,
                "channel {c}, pixel {i}: {got} vs {want}"
            );
        }
    }
}

/// (parameter count, sorted shapes) of the variables under `prefix` in `vs`.
fn summary(vs: &nn::VarStore, prefix: &str) -> (i64, Vec<Vec<i64>>) {
    let vars = vs.variables();
    let mut shapes = Vec::new();
    let mut n = 0;
    for (k, t) in &vars {
        if k.starts_with(prefix) {
            shapes.push(t.size());
            n += t.numel() as i64;
        }
    }
    shapes.sort();
    (n, shapes)
}

/// The four networks equal the official code's, layer for layer: parameter counts and
/// shapes from tests/fixtures/bridgegan_reference.py (PyTorch, written from BridgeGAN's
/// `models_712.py`; exact) at the paper's setting, configs/bridgegan-celeba128.toml (128 px,
/// 14 attributes: G 7,217,827, M 121,568, E 71,536, D/C 9,613,039), and at 64 px with the
/// emoji set's 8 attributes (M 95,808, E 71,440, D/C 3,320,041); output shapes too.
#[test]
fn networks_match_the_official_code() {
    let _rng = crate::test_rng_lock();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("bridgegan_reference.json")).unwrap(),
    )
    .unwrap();
    let paper = TrainConfig::load(&fixtures().join("../../configs/bridgegan-celeba128.toml"))
        .unwrap()
        .bridgegan;
    assert_eq!(
        (paper.data.image_size, paper.data.attributes.len()),
        (128, 14)
    );
    assert_eq!(paper.model, BridgeModelConfig::default());
    for (key, size, k) in [("celeba128", 128, 14), ("emoji64", 64, 8)] {
        let c = BridgeModelConfig::default();
        let vs = nn::VarStore::new(Device::Cpu);
        let g = BridgeGenerator::new(vs.root() / "g", &c);
        let m = MappingNetwork::new(vs.root() / "m", &c, k, size);
        let e = StyleEncoder::new(vs.root() / "e", &c, k);
        let dc = DiscriminatorClassifier::new(vs.root() / "d", &c, k, size);
        let x = Tensor::zeros([2, 3, size, size], (Kind::Float, Device::Cpu));
        let d = Tensor::zeros([2, k], (Kind::Float, Device::Cpu));
        let s = m.forward(&Tensor::zeros([2, 16], (Kind::Float, Device::Cpu)), &d);
        let outs = [
            ("g", g.forward(&x, &s).size()),
            ("m", s.size()),
            ("e", e.forward(&x, &d).size()),
            ("d", dc.forward(&x).0.size()),
        ];
        assert_eq!(dc.forward(&x).1.size(), [2, k]);
        assert_eq!(dc.forward_split(&x, 1).1.size(), [1, k]);
        for (net, shape) in outs {
            let w = &want[key][net];
            let (n, shapes) = summary(&vs, &format!("{net}."));
            assert_eq!(
                n,
                w["params"].as_i64().unwrap(),
                "{key} {net}: parameter count"
            );
            let ws: Vec<Vec<i64>> = serde_json::from_value(w["shapes"].clone()).unwrap();
            assert_eq!(shapes, ws, "{key} {net}: parameter shapes");
            let wo: Vec<i64> = serde_json::from_value(w["output"].clone()).unwrap();
            assert_eq!(shape, wo, "{key} {net}: output shape");
        }
    }
}

/// `model.head_relu`: with it, M's and E's style maps are ReLU(IN(conv) + β) ≥ 0; without
/// it (the code's `..._wIN_concat`), each channel of each map is instance-normalised plus β,
/// so its spatial mean is β and its variance 1 (ε 1e-6; closed form, tolerance 1e-3) — it
/// cannot be zero, which is the collapse the option exists to avoid. β is set to −0.5.
#[test]
fn head_relu_switches_the_last_relu_of_m_and_e() {
    let _rng = crate::test_rng_lock();
    for relu in [true, false] {
        let c = BridgeModelConfig {
            head_relu: relu,
            ..BridgeModelConfig::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let m = MappingNetwork::new(vs.root() / "m", &c, 3, 32);
        let e = StyleEncoder::new(vs.root() / "e", &c, 3);
        tch::no_grad(|| {
            for (k, mut v) in vs.variables() {
                if k.ends_with("head.norm.beta") {
                    let _ = v.fill_(-0.5);
                }
            }
        });
        let d = Tensor::from_slice(&[1f32, -1., 0., 0., 1., 1.]).view([2, 3]);
        let r = Tensor::randn([2, 16], (Kind::Float, Device::Cpu));
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
        for s in [m.forward(&r, &d), e.forward(&x, &d)] {
            assert_eq!(s.size(), [2, 32, 16, 16]);
            let min = s.min().double_value(&[]);
            if relu {
                assert!(min >= 0.0, "ReLU head gave {min}");
                continue;
            }
            let mean = vec(&s.mean_dim(&[2i64, 3][..], false, Kind::Float));
            let var = vec(&s.var_dim(&[2i64, 3][..], false, false));
            for (mu, v) in mean.iter().zip(&var) {
                assert!((mu + 0.5).abs() < 1e-3, "channel mean {mu}, want β = -0.5");
                assert!((v - 1.0).abs() < 1e-3, "channel variance {v}, want 1");
            }
        }
    }
}

/// `model.att_film`: each channel of M's and E's style maps (heads without ReLU) is the
/// instance-normalised conv output scaled by 1 + W_γ·a and shifted by β + W_β·a, so over
/// space its mean is β + (W_β a)_c and its variance (1 + (W_γ a)_c)² (closed form; ε 1e-6,
/// tolerance 1e-3). W_γ, W_β and β are set to known values; a = d for M and E alike. Off, the
/// networks hold no `film` variables (the paper's parameter counts are unchanged).
#[test]
fn att_film_modulates_the_heads_by_the_attributes() {
    let _rng = crate::test_rng_lock();
    let c = BridgeModelConfig {
        head_relu: false,
        att_film: true,
        ..BridgeModelConfig::default()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let m = MappingNetwork::new(vs.root() / "m", &c, 3, 32);
    let e = StyleEncoder::new(vs.root() / "e", &c, 3);
    // W[ch, att] = (ch + 1)·(att + 1)/100 for γ, −(ch + 1)/50·(att − 1) for β; β = 0.25.
    let wg: Vec<f32> = (0..32 * 3)
        .map(|i| ((i / 3 + 1) * (i % 3 + 1)) as f32 / 100.0)
        .collect();
    let wb: Vec<f32> = (0..32 * 3)
        .map(|i| -((i / 3 + 1) as f32) / 50.0 * ((i % 3) as f32 - 1.0))
        .collect();
    tch::no_grad(|| {
        for (k, mut v) in vs.variables() {
            if k.ends_with("head.film.gamma") {
                v.copy_(&Tensor::from_slice(&wg).view([32, 3]));
            } else if k.ends_with("head.film.beta") {
                v.copy_(&Tensor::from_slice(&wb).view([32, 3]));
            } else if k.ends_with("head.norm.beta") {
                let _ = v.fill_(0.25);
            }
        }
    });
    let d = [[1f32, -1., 0.], [0., 1., 1.]];
    let dt = Tensor::from_slice(&d.concat()).view([2, 3]);
    let r = Tensor::randn([2, 16], (Kind::Float, Device::Cpu));
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
    for s in [m.forward(&r, &dt), e.forward(&x, &dt)] {
        let mean = vec(&s.mean_dim(&[2i64, 3][..], false, Kind::Float));
        let var = vec(&s.var_dim(&[2i64, 3][..], false, false));
        for n in 0..2 {
            for ch in 0..32 {
                let dot = |w: &[f32]| (0..3).map(|a| w[ch * 3 + a] * d[n][a]).sum::<f32>();
                let (want_mu, want_var) = (0.25 + dot(&wb), (1.0 + dot(&wg)).powi(2));
                let (mu, v) = (mean[n * 32 + ch], var[n * 32 + ch]);
                assert!((mu - want_mu).abs() < 1e-3, "mean {mu}, want {want_mu}");
                assert!((v - want_var).abs() < 1e-3, "variance {v}, want {want_var}");
            }
        }
    }
    let off = nn::VarStore::new(Device::Cpu);
    let c_off = BridgeModelConfig {
        att_film: false,
        ..c
    };
    let _ = MappingNetwork::new(off.root() / "m", &c_off, 3, 32);
    let _ = StyleEncoder::new(off.root() / "e", &c_off, 3);
    let film = |v: &nn::VarStore| v.variables().keys().filter(|k| k.contains("film")).count();
    assert_eq!((film(&vs), film(&off)), (4, 0));
}

/// `model.g_down`: G has that many down- and SPADE up-sampling blocks (2·g_down + 2 blocks),
/// keeps the image shape, and its widest blocks are g_ch·2^g_down; out of [1, log2(size) − 2]
/// the config is refused, naming the field.
#[test]
fn g_down_sets_the_depth_of_g() {
    let _rng = crate::test_rng_lock();
    for (size, down) in [(32, 1), (32, 2), (64, 3)] {
        let c = BridgeModelConfig {
            g_ch: 4,
            g_down: down,
            style_ch: 4,
            spade_hidden: 4,
            ..BridgeModelConfig::default()
        };
        c.validate("bridgegan.model", size).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let g = BridgeGenerator::new(vs.root() / "g", &c);
        let vars = vs.variables();
        let blocks: std::collections::BTreeSet<&str> = vars
            .keys()
            .filter_map(|k| k.split('.').nth(1))
            .filter(|b| b.starts_with("block"))
            .collect();
        assert_eq!(
            blocks.len() as i64,
            2 * down + 2,
            "{size} px, g_down {down}"
        );
        let widest = &vars[&format!("g.block{}.conv1.weight", down - 1)];
        assert_eq!(widest.size()[0], 4 << down, "the last down block's width");
        let x = Tensor::zeros([2, 3, size, size], (Kind::Float, Device::Cpu));
        let s = Tensor::zeros([2, 4, size / 2, size / 2], (Kind::Float, Device::Cpu));
        assert_eq!(g.forward(&x, &s).size(), [2, 3, size, size]);
    }
    for (size, down) in [(32, 4), (32, 0), (64, 5)] {
        let c = BridgeModelConfig {
            g_down: down,
            ..BridgeModelConfig::default()
        };
        let e = c.validate("bridgegan.model", size).unwrap_err().to_string();
        assert!(e.contains("bridgegan.model.g_down"), "{e}");
    }
}

/// `model.shared_trunk = false`: C has a trunk of its own, with the same parameter shapes as
/// D's, under `c_trunk/`; changing D's trunk moves D and not C, changing C's moves C and not D
/// (exact: the two read disjoint weights).
#[test]
fn a_separate_trunk_splits_c_from_the_critic() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let c = BridgeModelConfig {
        d_ch: 4,
        shared_trunk: false,
        ..BridgeModelConfig::default()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let dc = DiscriminatorClassifier::new(vs.root() / "d", &c, 3, 32);
    let vars = vs.variables();
    let shapes = |pre: &str| {
        let mut v: Vec<(String, Vec<i64>)> = vars
            .iter()
            .filter(|(k, _)| k.starts_with(pre) && !k.contains("c_trunk"))
            .filter(|(k, _)| k.contains("stem") || k.contains("block"))
            .map(|(k, t)| (k.trim_start_matches(pre).to_string(), t.size()))
            .collect();
        v.sort();
        v
    };
    let own: Vec<(String, Vec<i64>)> = {
        let mut v: Vec<_> = vars
            .iter()
            .filter(|(k, _)| k.starts_with("d.c_trunk."))
            .map(|(k, t)| (k.trim_start_matches("d.c_trunk.").to_string(), t.size()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(own, shapes("d."));
    assert!(!own.is_empty());
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (d0, c0) = dc.forward(&x);
    assert_eq!(d0, dc.critic(&x));
    assert_eq!(c0, dc.classify(&x));
    let (d_split, c_split) = dc.forward_split(&x, 1);
    assert_eq!(d_split, d0);
    assert_eq!(c_split, dc.classify(&x.narrow(0, 0, 1)));
    let bump = |name: &str| {
        let _g = tch::no_grad_guard();
        let mut t = vars[name].shallow_clone();
        let _ = t.g_add_scalar_(0.5);
    };
    bump("d.stem.weight");
    let (d1, c1) = dc.forward(&x);
    assert_ne!(d1, d0);
    assert_eq!(c1, c0);
    bump("d.c_trunk.stem.weight");
    let (d2, c2) = dc.forward(&x);
    assert_eq!(d2, d1);
    assert_ne!(c2, c1);
}

/// StarGAN's networks equal the official code's (yunjey/stargan `model.py`, rewritten in
/// tests/fixtures/bridgegan_reference.py; exact): at the paper's CelebA setting with 14
/// attributes (G 8,458,752, D 44,835,776) and at configs/stargan-emoji.toml's (G 2,122,816,
/// D 2,808,800); output shapes too.
#[test]
fn stargan_networks_match_the_official_code() {
    use crate::models::stargan::{StarDiscriminator, StarGenerator};
    let _rng = crate::test_rng_lock();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("bridgegan_reference.json")).unwrap(),
    )
    .unwrap();
    for (key, file) in [
        ("stargan_celeba128", "stargan-celeba128.toml"),
        ("stargan_emoji64", "stargan-emoji.toml"),
    ] {
        let cfg = TrainConfig::load(&fixtures().join("../../configs").join(file))
            .unwrap()
            .stargan;
        let (k, size) = (cfg.data.attributes.len() as i64, cfg.data.image_size);
        let vs = nn::VarStore::new(Device::Cpu);
        let g = StarGenerator::new(vs.root() / "g", &cfg.model, k);
        let d = StarDiscriminator::new(vs.root() / "d", &cfg.model, k, size);
        let x = Tensor::zeros([2, 3, size, size], (Kind::Float, Device::Cpu));
        let y = Tensor::zeros([2, k], (Kind::Float, Device::Cpu));
        let (src, cls) = d.forward(&x);
        assert_eq!(cls.size(), [2, k]);
        for (net, shape) in [("g", g.forward(&x, &y).size()), ("d", src.size())] {
            let w = &want[key][net];
            let (n, shapes) = summary(&vs, &format!("{net}."));
            assert_eq!(
                n,
                w["params"].as_i64().unwrap(),
                "{key} {net}: parameter count"
            );
            let ws: Vec<Vec<i64>> = serde_json::from_value(w["shapes"].clone()).unwrap();
            assert_eq!(shapes, ws, "{key} {net}: parameter shapes");
            let wo: Vec<i64> = serde_json::from_value(w["output"].clone()).unwrap();
            assert_eq!(shape, wo, "{key} {net}: output shape");
        }
    }
}

/// A tiny set in CelebA's layout: `n` random 32 px images, attributes A, B (exclusive) and C,
/// the last 4 images in the test partition.
pub(crate) fn write_attribute_set(dir: &Path, n: i64) -> AttributeDataConfig {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut attr = format!("{n}\nA B C\n");
    let mut part = String::new();
    for i in 0..n {
        let f = format!("{i:04}.png");
        let v = match i % 3 {
            0 => " 1 -1",
            1 => "-1  1",
            _ => "-1 -1",
        };
        attr += &format!("{f} {v} {}\n", if i % 2 == 0 { 1 } else { -1 });
        part += &format!("{f} {}\n", if i >= n - 4 { 2 } else { 0 });
        let x = Tensor::rand([3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
        crate::data::write_png(&dir.join("img").join(&f), &x).unwrap();
    }
    std::fs::write(dir.join("list_attr.txt"), attr).unwrap();
    std::fs::write(dir.join("list_eval_partition.txt"), part).unwrap();
    AttributeDataConfig {
        dir: dir.to_path_buf(),
        images: "img".into(),
        attributes: vec!["A".into(), "B".into(), "C".into()],
        exclusive: vec![vec!["A".into(), "B".into()]],
        image_size: 32,
        ..Default::default()
    }
}

/// A tiny bridgegan config on `data`.
pub(crate) fn tiny(data: &AttributeDataConfig, steps: u64) -> TrainConfig {
    let mut cfg =
        TrainConfig::from_toml_str("[task]\nkind = \"bridgegan\"\n", Path::new("x.toml")).unwrap();
    cfg.run.steps = steps;
    cfg.run.batch_size = 4;
    cfg.run.log_every = 1;
    cfg.run.eval_every = 3;
    cfg.run.checkpoint_every = 3;
    cfg.run.eval_samples = 4;
    cfg.run.device = "cpu".into();
    let c = &mut cfg.bridgegan;
    c.data = data.clone();
    c.n_critic = 2;
    c.probes = 3;
    c.model = BridgeModelConfig {
        g_ch: 4,
        g_down: 3,
        style_ch: 4,
        noise_dim: 3,
        d_ch: 4,
        spade_hidden: 4,
        head_relu: true,
        att_film: false,
        shared_trunk: true,
    };
    cfg.validate().unwrap();
    cfg
}

/// Trains `cfg` into `a`, and into `b` for 3 steps then resumed to the budget; asserts the
/// weights are bit-identical and that the first logged loss_g is the sum of `parts`
/// (relative tolerance 1e-5: f32 sums). Returns the full run, its summary and the resumed
/// run.
fn full_and_resumed(
    cfg: &TrainConfig,
    a: &Path,
    b: &Path,
    parts: &[&str],
) -> (Trainer, serde_json::Value, Trainer) {
    let mut full = Trainer::new(cfg.clone(), a).unwrap();
    let s = full.run(&mut Silent).unwrap();
    let row = &full.rows()[0];
    let sum: f64 = parts.iter().map(|k| row.get(k)).sum();
    let total = row.get("loss_g");
    assert!(
        (sum - total).abs() < 1e-5 * total.abs().max(1.0),
        "{sum} vs {total}"
    );
    let mut half = cfg.clone();
    half.run.steps = 3;
    Trainer::new(half, b).unwrap().run(&mut Silent).unwrap();
    let mut r = Trainer::resume(b, Some(cfg.run.steps), None).unwrap();
    r.run(&mut Silent).unwrap();
    for ((k, x), (_, y)) in full.weights().iter().zip(r.weights()) {
        assert!(x.equal(&y), "{k} differs after resume");
    }
    (full, s, r)
}

/// End to end on a tiny set: L_G equals the sum of its logged terms; the run directory
/// holds both grids (Fig. 9 and Fig. 6 layouts, sizes checked) and C's accuracies; a
/// resume from step 3 is bit-identical to the uninterrupted run, with and without the code's
/// noise table (which is saved with the checkpoint and moves); both synthesis modes give
/// images of the input's shape.
#[test]
fn trains_resumes_bit_identically_and_synthesises() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    let data_dir = tmp("attr-data");
    let data = write_attribute_set(&data_dir, 12);
    for table in [false, true] {
        let (a, b) = (
            tmp(&format!("bg-full-{table}")),
            tmp(&format!("bg-half-{table}")),
        );
        let mut cfg = tiny(&data, 6);
        cfg.bridgegan.noise_table = table;
        let (full, s, r) = full_and_resumed(
            &cfg,
            &a,
            &b,
            &[
                "loss_g_adv",
                "loss_g_cls",
                "loss_rec",
                "loss_cyc",
                "loss_ak",
                "loss_sty",
                "loss_ms",
            ],
        );
        for k in ["c_acc_real", "c_acc_label", "c_acc_ref", "c_acc_label_A"] {
            assert!(
                s[k].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)),
                "{k}"
            );
        }
        // Fig. 9: sources + 3 attributes + 1 reference row, 3 probes wide; Fig. 6: 1 + 3
        // rows of 1 + 3 cells (32 px, 2 px gaps).
        let g = crate::data::folder::load_image(&a.join("label_based.png")).unwrap();
        assert_eq!(g.size(), [3, 5 * 34 + 2, 3 * 34 + 2]);
        let g = crate::data::folder::load_image(&a.join("reference_based.png")).unwrap();
        assert_eq!(g.size(), [3, 4 * 34 + 2, 4 * 34 + 2]);
        let t1 = full.task().state_tensors();
        let t2 = r.task().state_tensors();
        assert_eq!(t1.len(), table as usize);
        for ((_, x), (_, y)) in t1.iter().zip(&t2) {
            assert!(x.equal(y), "noise table differs after resume");
            assert!(x.abs().max().double_value(&[]) <= 4.0);
        }
        for d in [a, b] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    // Both modes on new images, from a task built for inference.
    let cfg = tiny(&data, 1);
    let task = BridgeGan::new(&cfg, super::Mode::Inference).unwrap();
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
    let y_s = Tensor::from_slice(&[1f32, 0., 1., 0., 1., 0.]).view([2, 3]);
    let y_t = Tensor::from_slice(&[0f32, 1., 1., 0., 0., 1.]).view([2, 3]);
    assert_eq!(task.label_based(&x, &y_s, &y_t).size(), [2, 3, 32, 32]);
    assert_eq!(
        task.reference_based(&x, &y_s, &y_t, &x.flip([0])).size(),
        [2, 3, 32, 32]
    );
    assert_eq!(task.kind(), "bridgegan");
    let _ = std::fs::remove_dir_all(data_dir);
}

/// `c_warmup_steps = 2`: steps 1–2 update D/C only (G's weights stay bit-identical to
/// their initial values and only loss_d_cls is logged), step 3 trains G; a resume from the
/// middle of the warm-up is bit-identical; a warm-up over the range is a config error.
#[test]
fn c_warmup_trains_c_alone_first() {
    let _rng = crate::test_rng_lock();
    let data_dir = tmp("attr-warm-data");
    let data = write_attribute_set(&data_dir, 12);
    let mut cfg = tiny(&data, 2);
    cfg.bridgegan.c_warmup_steps = 2;
    let a = tmp("bg-warm-a");
    let mut t = Trainer::new(cfg.clone(), &a).unwrap();
    let flat = |t: &Trainer, g: &str| t.task().groups().get(g).opt().flat().copy();
    let g0 = flat(&t, "g");
    t.run(&mut Silent).unwrap();
    assert!(flat(&t, "g").equal(&g0), "G moved during the warm-up");
    let row = &t.rows()[0];
    assert!(row.get("loss_d_cls").is_finite());
    assert!(
        row.get("loss_g").is_nan(),
        "no G step is logged in the warm-up"
    );
    let d_warm = flat(&t, "d");
    let b = tmp("bg-warm-b");
    let mut full = cfg.clone();
    full.run.steps = 3;
    let mut u = Trainer::new(full.clone(), &b).unwrap();
    u.run(&mut Silent).unwrap();
    assert!(!flat(&u, "g").equal(&g0), "G trains after the warm-up");
    drop(t);
    let mut r = Trainer::resume(&a, Some(3), None).unwrap();
    r.run(&mut Silent).unwrap();
    for ((k, x), (_, y)) in u.weights().iter().zip(r.weights()) {
        assert!(x.equal(&y), "{k} differs after resume");
    }
    assert!(!d_warm.equal(&flat(&u, "d")));
    cfg.bridgegan.c_warmup_steps = 2_000_000;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("bridgegan.c_warmup_steps"), "{e}");
    for d in [a, b, data_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// StarGAN end to end on the tiny set: L_G is the sum of its logged terms, the grid has one
/// row per attribute (no reference row), a resume from step 3 is bit-identical, and the
/// editor refuses references.
#[test]
fn stargan_trains_and_resumes_bit_identically() {
    use crate::models::stargan::StarGanModelConfig;
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    let data_dir = tmp("star-data");
    let data = write_attribute_set(&data_dir, 12);
    let mut cfg = tiny(&data, 6);
    cfg.task.kind = crate::train::config::TaskKind::Stargan;
    cfg.stargan.data = data.clone();
    cfg.stargan.n_critic = 2;
    cfg.stargan.probes = 3;
    cfg.stargan.model = StarGanModelConfig {
        g_ch: 4,
        res_blocks: 1,
        d_ch: 4,
        d_layers: 3,
    };
    cfg.validate().unwrap();
    let (a, b) = (tmp("star-full"), tmp("star-half"));
    let (full, s, _) = full_and_resumed(&cfg, &a, &b, &["loss_g_adv", "loss_g_cls", "loss_rec"]);
    assert!(s["c_acc_label"].as_f64().is_some() && s.get("c_acc_ref").is_none());
    let g = crate::data::folder::load_image(&a.join("label_based.png")).unwrap();
    assert_eq!(g.size(), [3, 4 * 34 + 2, 3 * 34 + 2]);
    let ed = full.task().editor().unwrap();
    let x = Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::zeros([1, 3], (Kind::Float, Device::Cpu));
    assert_eq!(
        ed.edit(&x, &y, &y, None, 1.0).unwrap().size(),
        [1, 3, 32, 32]
    );
    let e = ed.edit(&x, &y, &y, Some(&x), 0.0).unwrap_err().to_string();
    assert!(e.contains("no reference"), "{e}");
    let e = ed
        .edit(&x, &y.narrow(1, 0, 2), &y, None, 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("source labels: expected [1, 3]"), "{e}");
    for d in [a, b, data_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The attribute classifier learns a visible attribute: on 40 grey images whose level is
/// +0.6 when A = 1 and −0.6 otherwise (noise sd 0.2), with B independent of the pixels, 80
/// Adam steps of batch 16 give test accuracy 1 on A (bound: ≥ 0.9 of the 10 test images;
/// a classifier that ignores the pixels scores 0.5 in expectation) — and the run's summary
/// lists per-attribute accuracy.
#[test]
fn attribute_classifier_learns_a_visible_attribute() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let dir = tmp("cls-data");
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let (mut attr, mut part) = ("40\nA B\n".to_string(), String::new());
    for i in 0..40 {
        let a = i % 2 == 0;
        let b = (i * 7 / 3) % 2 == 0;
        let f = format!("{i:02}.png");
        attr += &format!(
            "{f} {} {}\n",
            if a { 1 } else { -1 },
            if b { 1 } else { -1 }
        );
        part += &format!("{f} {}\n", if i >= 30 { 2 } else { 0 });
        let level = if a { 0.6 } else { -0.6 };
        let x =
            (Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)) * 0.2 + level).clamp(-1.0, 1.0);
        crate::data::write_png(&dir.join("img").join(&f), &x).unwrap();
    }
    std::fs::write(dir.join("list_attr.txt"), attr).unwrap();
    std::fs::write(dir.join("list_eval_partition.txt"), part).unwrap();
    let mut cfg = TrainConfig::from_toml_str(
        "[task]\nkind = \"attribute_classifier\"\n",
        Path::new("x.toml"),
    )
    .unwrap();
    let c = &mut cfg.attribute_classifier;
    c.data = AttributeDataConfig {
        dir: dir.clone(),
        images: "img".into(),
        attributes: vec!["A".into(), "B".into()],
        exclusive: vec![],
        image_size: 32,
        ..Default::default()
    };
    c.width = 8;
    c.blocks = 3;
    cfg.run.steps = 80;
    cfg.run.batch_size = 16;
    cfg.run.eval_every = 40;
    cfg.run.device = "cpu".into();
    cfg.validate().unwrap();
    let out = tmp("cls-run");
    let s = Trainer::new(cfg, &out).unwrap().run(&mut Silent).unwrap();
    let acc_a = s["test_acc_A"].as_f64().unwrap();
    assert!(acc_a >= 0.9, "accuracy on A {acc_a}");
    assert!(s["test_acc_B"].as_f64().is_some() && s["test_acc"].as_f64().is_some());
    let run = crate::run::Run::open(&out).unwrap();
    let cl = run.task().attribute_classifier().unwrap();
    let x = Tensor::full([2, 3, 32, 32], 0.6, (Kind::Float, Device::Cpu));
    assert!(cl.logits(&x).unwrap().get(0).double_value(&[0]) > 0.0);
    assert!(cl.logits(&x.narrow(2, 0, 16)).is_err());
    for d in [dir, out] {
        let _ = std::fs::remove_dir_all(d);
    }
}
