//! Tests of the unpaired translation tasks (CycleGAN, U-GAT-IT) and their shared parts.

use std::path::{Path, PathBuf};

use tch::{nn, Device, Kind, Tensor};

use super::cyclegan::CycleGan;
use super::unpaired::{l1, lsgan_sign_sum, mse};
use super::{Mode, Task};
use crate::progress::Silent;
use crate::train::{TrainConfig, Trainer};

pub(crate) fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ganlab-unpaired-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// (parameter count, sorted shapes) of the trainable variables of `vs`.
fn summary(vs: &nn::VarStore) -> (i64, Vec<Vec<i64>>) {
    let vars = vs.trainable_variables();
    let mut shapes: Vec<Vec<i64>> = vars.iter().map(|t| t.size()).collect();
    shapes.sort();
    (vars.iter().map(|t| t.numel() as i64).sum(), shapes)
}

fn check(want: &serde_json::Value, key: &str, vs: &nn::VarStore) {
    let (n, shapes) = summary(vs);
    let w = &want[key];
    assert_eq!(n, w["params"].as_i64().unwrap(), "{key}: parameter count");
    let ws: Vec<Vec<i64>> = serde_json::from_value(w["shapes"].clone()).unwrap();
    assert_eq!(shapes, ws, "{key}: parameter shapes");
}

/// The networks of the shipped reference configs have the reference implementations'
/// parameters, shape for shape (expected values: tests/fixtures/translation_reference.py,
/// PyTorch; exact): CycleGAN at 256 px (ResNet-9 G 11,378,179; instance-norm PatchGAN
/// 2,764,737), U-GAT-IT at 256 px (light G 10,589,888; global D 53,130,176; local D
/// 3,290,560) and the full U-GAT-IT G at 64 px (27,301,568).
#[test]
fn networks_match_the_reference_implementations() {
    let _rng = crate::test_rng_lock();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("translation_reference.json")).unwrap(),
    )
    .unwrap();
    let configs = fixtures().join("../../configs");
    let cg = TrainConfig::load(&configs.join("cyclegan-horse2zebra.toml")).unwrap();
    assert_eq!(cg.cyclegan.data.image_size, 256);
    let vs = nn::VarStore::new(Device::Cpu);
    cg.cyclegan.generator.init(vs.root(), 3, 3);
    check(&want, "cyclegan_g_256", &vs);
    let vs = nn::VarStore::new(Device::Cpu);
    cg.cyclegan.discriminator.init(vs.root(), 3, false);
    check(&want, "cyclegan_d_256", &vs);
    let ug = TrainConfig::load(&configs.join("ugatit-selfie2anime.toml")).unwrap();
    let u = &ug.ugatit;
    assert_eq!(u.data.image_size, 256);
    let vs = nn::VarStore::new(Device::Cpu);
    u.generator.init(vs.root(), 3, 3, 256);
    check(&want, "ugatit_g_light_256", &vs);
    for (key, n) in [
        ("ugatit_d_global_256", u.discriminator.global_layers),
        ("ugatit_d_local_256", u.discriminator.local_layers),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        u.discriminator.init(vs.root(), 3, n, false);
        check(&want, key, &vs);
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let full = crate::models::ugatit::UgatitGeneratorConfig {
        light: false,
        ..u.generator.clone()
    };
    full.init(vs.root(), 3, 3, 64);
    check(&want, "ugatit_g_full_64", &vs);
}

/// The loss terms against hand-computed values: MSE((0.5, 2), 1) = (0.25 + 1)/2 = 0.625;
/// L1((1, −1), (0, 0)) = 1; the LSGAN votes of per-image mean outputs (0.9, 0.2, 0.6) are
/// +1 −1 +1 = 1; BCE-with-logits of U-GAT-IT's CAM terms: BCE(0, 1) = ln 2, BCE(ln 3, 0) =
/// ln(1 + 3) = ln 4 (tolerance 1e-6).
#[test]
fn loss_terms_by_hand() {
    let t = |v: &[f32]| Tensor::from_slice(v);
    assert!((mse(&t(&[0.5, 2.0]), 1.0).double_value(&[]) - 0.625).abs() < 1e-6);
    assert!((l1(&t(&[1.0, -1.0]), &t(&[0.0, 0.0])).double_value(&[]) - 1.0).abs() < 1e-6);
    let pred = t(&[0.8, 1.0, 0.1, 0.3, 0.6, 0.6]).view([3, 1, 1, 2]);
    assert_eq!(lsgan_sign_sum(&pred), 1.0);
    let b1 = super::ugatit::bce(&t(&[0.0]), true).double_value(&[]);
    let b0 = super::ugatit::bce(&t(&[3f32.ln()]), false).double_value(&[]);
    assert!((b1 - 2f64.ln()).abs() < 1e-6 && (b0 - 4f64.ln()).abs() < 1e-6);
}

/// A tiny unpaired set: A smooth random images, B their colour inverse (different draws).
pub(crate) fn write_domains(dir: &Path, split: &str, n: i64, size: i64) {
    for (side, sign) in [("A", 1.0), ("B", -1.0)] {
        let d = dir.join(format!("{split}{side}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let x = (Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu)) * 2 - 1)
                .upsample_bilinear2d([size, size], false, None, None)
                .squeeze_dim(0)
                * sign;
            crate::data::write_png(&d.join(format!("{i:03}.png")), &x).unwrap();
        }
    }
}

pub(crate) fn tiny(kind: &str, data: &Path, steps: u64) -> TrainConfig {
    let mut cfg =
        TrainConfig::from_toml_str(&format!("[task]\nkind = \"{kind}\"\n"), Path::new("t"))
            .unwrap();
    cfg.run.steps = steps;
    cfg.run.batch_size = 2;
    cfg.run.log_every = 1;
    cfg.run.eval_every = 3;
    cfg.run.checkpoint_every = 3;
    cfg.run.eval_samples = 8;
    cfg.run.device = "cpu".into();
    let constant = crate::train::LrSchedule::Constant;
    // Constant lr: a linear decay depends on run.steps, which a resume with a new budget
    // changes.
    match kind {
        "cyclegan" => {
            let c = &mut cfg.cyclegan;
            c.data.dir = data.to_path_buf();
            c.data.image_size = 32;
            c.data.load_size = 36;
            c.generator.ngf = 4;
            c.generator.n_blocks = 2;
            c.discriminator.ndf = 4;
            c.discriminator.n_layers = 2;
            c.pool_size = 3;
            c.probes = 2;
            c.optim.g.schedule = constant;
            c.optim.d.schedule = constant;
        }
        _ => {
            let u = &mut cfg.ugatit;
            u.data.dir = data.to_path_buf();
            u.data.image_size = 32;
            u.data.load_size = 36;
            u.generator.ngf = 4;
            u.generator.n_blocks = 2;
            u.discriminator.ndf = 4;
            u.discriminator.global_layers = 5;
            u.discriminator.local_layers = 4;
            u.probes = 2;
            u.optim.g.schedule = constant;
            u.optim.d.schedule = constant;
        }
    }
    cfg
}

/// Each task end to end on a tiny set: L_G equals the sum of its logged terms; run
/// directory (per-direction grids, test cycle L1 in
/// eval.jsonl, FID/KID per direction in summary.json when the Inception is fetched, report),
/// a bit-identical resume from a checkpoint taken with a full, swapping image pool (CycleGAN)
/// and with ρ clipping (U-GAT-IT), translation both ways through the run handle; with
/// Diffusion-GAN every D takes t and T is logged.
#[test]
fn both_tasks_train_resume_and_translate() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    let data = tmp("data");
    write_domains(&data, "train", 5, 32);
    write_domains(&data, "test", 3, 32);
    let inception = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/inception/default_1.pt");
    for kind in ["cyclegan", "ugatit"] {
        let (a, b) = (tmp(&format!("{kind}-full")), tmp(&format!("{kind}-half")));
        let mut cfg = tiny(kind, &data, 6);
        cfg.cyclegan.data.inception = inception.clone();
        cfg.ugatit.data.inception = inception.clone();
        let mut full = Trainer::new(cfg.clone(), &a).unwrap();
        let s = full.run(&mut Silent).unwrap();
        for f in [
            "samples/step-0000003.png",
            "translations_a2b.png",
            "translations_b2a.png",
            "report.html",
        ] {
            assert!(a.join(f).is_file(), "{kind}: {f} missing");
        }
        assert_eq!(full.evals().len(), 2);
        // L_G is the sum of its logged, weighted terms (relative tolerance 1e-5, float32).
        let row = &full.rows()[0];
        let parts: &[&str] = if kind == "cyclegan" {
            &[
                "loss_g_a",
                "loss_g_b",
                "loss_cycle_a",
                "loss_cycle_b",
                "loss_idt_a",
                "loss_idt_b",
            ]
        } else {
            &["loss_g_adv", "loss_cycle", "loss_identity", "loss_cam"]
        };
        let sum: f64 = parts.iter().map(|k| row.get(k)).sum();
        let total = row.get("loss_g");
        assert!(
            (sum - total).abs() < 1e-5 * total.abs().max(1.0),
            "{kind}: {sum} vs {total}"
        );
        assert!(full.evals()[0].get("test_cycle_a2b").is_finite());
        if inception.is_file() {
            for k in ["fid_a2b", "fid_b2a", "kid_a2b", "kid_b2a"] {
                assert!(s[k].as_f64().is_some_and(f64::is_finite), "{kind}: {k}");
            }
            assert_eq!(s["test_a2b"], 3);
        } else {
            assert!(s["scores_skipped"].is_string());
        }
        let grid = crate::data::folder::load_image(&a.join("translations_a2b.png")).unwrap();
        let cols = if kind == "ugatit" { 4 } else { 3 };
        assert_eq!(
            grid.size(),
            vec![3, 2 * 34 + 2, cols * 34 + 2],
            "{kind}: 2 probes × {cols} columns"
        );
        let mut half = cfg.clone();
        half.run.steps = 3;
        Trainer::new(half, &b).unwrap().run(&mut Silent).unwrap();
        let mut r = Trainer::resume(&b, Some(6), None).unwrap();
        r.run(&mut Silent).unwrap();
        for ((k, x), (_, y)) in full.weights().iter().zip(r.weights()) {
            assert!(x.equal(&y), "{kind}: {k} differs after resume");
        }
        let run = crate::run::Run::open(&a).unwrap();
        let tr = run.translator().unwrap();
        assert_eq!(tr.directions(), vec!["a2b", "b2a"]);
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2 - 1;
        for d in ["a2b", "b2a"] {
            assert_eq!(tr.translate(&x, d).unwrap().size(), vec![2, 3, 32, 32]);
        }
        let e = tr.translate(&x, "a2c").unwrap_err();
        assert!(e.to_string().contains("--direction"), "{e}");
        let e = tr.translate(&x.narrow(2, 0, 16), "a2b").unwrap_err();
        assert!(e.to_string().contains("[n, 3, 32, 32]"), "{e}");
        // Diffusion-GAN on every D.
        let mut dg = tiny(kind, &data, 4);
        dg.diffusion.enabled = true;
        dg.diffusion.ada_kimg = 0.01;
        let dgdir = tmp(&format!("{kind}-diffusion"));
        let mut t = Trainer::new(dg, &dgdir).unwrap();
        t.run(&mut Silent).unwrap();
        assert!(
            t.rows().iter().all(|r| r.get("T") >= 5.0),
            "{kind}: T logged"
        );
        assert!(
            t.task()
                .groups()
                .get("d")
                .var_store()
                .variables()
                .keys()
                .any(|k| k.contains("t_embed")),
            "{kind}: D takes t"
        );
        for d in [a, b, dgdir] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let _ = std::fs::remove_dir_all(data);
}

/// ρ of every AdaILN and ILN stays in [0, 1]: after 3 steps at lr 0.5 (Adam moves each ρ by
/// about lr per step, so unclipped values would leave [0, 1] — ILN's ρ starts at 0, AdaILN's
/// at 0.9) every ρ is inside, and some sit exactly on a bound, so the clamp did act.
#[test]
fn rho_stays_in_unit_interval() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    let data = tmp("rho");
    write_domains(&data, "train", 3, 32);
    let mut cfg = tiny("ugatit", &data, 3);
    cfg.ugatit.optim.g.lr = 0.5;
    let dir = tmp("rho-run");
    let mut t = Trainer::new(cfg, &dir).unwrap();
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    let vs = t.task().groups().get("g").var_store();
    let rhos: Vec<f32> = vs
        .variables()
        .iter()
        .filter(|(k, _)| k.ends_with("rho"))
        .flat_map(|(_, v)| Vec::<f32>::try_from(v.reshape([-1])).unwrap())
        .collect();
    assert!(!rhos.is_empty());
    assert!(
        rhos.iter().all(|r| (0.0..=1.0).contains(r)),
        "ρ out of [0, 1]"
    );
    assert!(
        rhos.iter().any(|&r| r == 0.0 || r == 1.0),
        "the clamp never acted"
    );
    for d in [data, dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A CycleGAN built for inference loads no data and refuses to train.
#[test]
fn inference_task_has_no_data() {
    let _rng = crate::test_rng_lock();
    let cfg = tiny("cyclegan", Path::new("/nonexistent"), 1);
    let mut t = CycleGan::new(&cfg, Mode::Inference).unwrap();
    let e = t
        .step(super::StepContext { step: 1, total: 1 })
        .unwrap_err();
    assert!(e.to_string().contains("inference"), "{e}");
}
