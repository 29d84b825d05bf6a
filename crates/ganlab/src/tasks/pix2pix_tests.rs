//! Tests of the pix2pix task: parity of the networks with the reference implementation,
//! a run end to end (directory, resume, translation), and learning a known mapping.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::*;
use crate::progress::Silent;
use crate::train::Trainer;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ganlab-p2p-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Trainable parameter count and sorted shapes of a group.
fn summary(g: &Group) -> (i64, Vec<Vec<i64>>) {
    let mut shapes: Vec<Vec<i64>> = g
        .var_store()
        .trainable_variables()
        .iter()
        .map(|t| t.size())
        .collect();
    shapes.sort();
    (g.numel(), shapes)
}

/// G and D at the reference's settings have the reference's parameters, shape for shape:
/// 256 px (configs/pix2pix-facades.toml: unet_256, 54,413,955; PatchGAN on 6 channels,
/// 2,768,705) and 64 px (6 downs). Expected values: tests/fixtures/pix2pix_reference.py
/// (PyTorch), exact.
#[test]
fn networks_match_the_reference_implementation() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("pix2pix_reference.json")).unwrap(),
    )
    .unwrap();
    let facades = fixtures.join("../../configs/pix2pix-facades.toml");
    let mut cfg = TrainConfig::load_with(&facades, &["run.device=\"cpu\"".into()]).unwrap();
    for size in [256, 64] {
        cfg.pix2pix.data.image_size = size;
        cfg.pix2pix.data.load_size = 0;
        cfg.pix2pix.unet.num_downs = 0;
        let task = Pix2pix::new(&cfg, Mode::Inference).unwrap();
        for (group, key) in [
            ("g", format!("unet_{size}")),
            ("d", format!("patchgan_{size}")),
        ] {
            let (n, shapes) = summary(task.groups().get(group));
            let w = &want[&key];
            assert_eq!(n, w["params"].as_i64().unwrap(), "{key}: parameter count");
            let ws: Vec<Vec<i64>> = serde_json::from_value(w["shapes"].clone()).unwrap();
            assert_eq!(shapes, ws, "{key}: parameter shapes");
        }
    }
}

/// A tiny paired set in the aligned layout: A a smooth random image (8×8 noise upsampled
/// bilinearly), B = −A (a colour inversion).
fn write_pairs(dir: &Path, split: &str, n: i64, size: i64) {
    let d = dir.join(split);
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..n {
        let a = (Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu)) * 2 - 1)
            .upsample_bilinear2d([size, size], false, None, None)
            .squeeze_dim(0);
        let ab = Tensor::cat(&[&a, &(-&a)], 2);
        crate::data::write_png(&d.join(format!("{i:03}.png")), &ab).unwrap();
    }
}

fn tiny(data: &Path, steps: u64) -> TrainConfig {
    let mut cfg =
        TrainConfig::from_toml_str("[task]\nkind = \"pix2pix\"\n", Path::new("t")).unwrap();
    cfg.run.steps = steps;
    cfg.run.batch_size = 4;
    cfg.run.log_every = 1;
    cfg.run.eval_every = 3;
    cfg.run.checkpoint_every = 3;
    cfg.run.eval_samples = 8;
    cfg.run.device = "cpu".into();
    let p = &mut cfg.pix2pix;
    p.data.dir = data.to_path_buf();
    p.data.image_size = 32;
    p.data.load_size = 36;
    p.unet.ngf = 4;
    p.patchgan.ndf = 4;
    p.patchgan.n_layers = 2;
    p.probes = 3;
    // Constant lr: the linear decay depends on run.steps, which a resume with a new budget
    // changes.
    p.optim.g.schedule = crate::train::LrSchedule::Constant;
    p.optim.d.schedule = crate::train::LrSchedule::Constant;
    cfg
}

/// A pix2pix run end to end: run directory (grids of input | output | target, test L1 in
/// eval.jsonl and summary.json, report), bit-identical resume, translation through the run
/// handle; the L1-only variant has no D; with Diffusion-GAN the PatchGAN takes t and T is
/// logged.
#[test]
fn trains_resumes_and_translates() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    let data = tmp("data");
    write_pairs(&data, "train", 6, 32);
    write_pairs(&data, "test", 3, 32);
    let (a, b) = (tmp("full"), tmp("half"));
    let mut full = Trainer::new(tiny(&data, 6), &a).unwrap();
    let s = full.run(&mut Silent).unwrap();
    for f in [
        "samples/step-0000003.png",
        "samples.png",
        "report.html",
        "eval.jsonl",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    assert!(s["test_l1"].as_f64().unwrap().is_finite() && s["test_pairs"] == 3);
    assert_eq!(full.evals().len(), 2);
    let row = &full.rows()[0];
    for k in [
        "loss_d",
        "loss_g_gan",
        "loss_g_l1",
        "loss_g",
        "d_real",
        "d_fake",
    ] {
        assert!(row.get(k).is_finite(), "{k} logged");
    }
    let grid = crate::data::folder::load_image(&a.join("samples.png")).unwrap();
    assert_eq!(
        grid.size(),
        vec![3, 3 * 34 + 2, 3 * 34 + 2],
        "3 probes × (input, output, target)"
    );
    Trainer::new(tiny(&data, 3), &b)
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    let mut r = Trainer::resume(&b, Some(6), None).unwrap();
    r.run(&mut Silent).unwrap();
    for ((k, x), (_, y)) in full.weights().iter().zip(r.weights()) {
        assert!(x.equal(&y), "{k} differs after resume");
    }
    let run = crate::run::Run::open(&a).unwrap();
    assert!(run.generative().is_err());
    let tr = run.translator().unwrap();
    assert_eq!(tr.directions(), vec!["a2b"]);
    let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(tr.translate(&x, "a2b").unwrap().size(), vec![2, 3, 32, 32]);
    let e = tr.translate(&x.narrow(2, 0, 16), "a2b").unwrap_err();
    assert!(e.to_string().contains("[n, 3, 32, 32]"), "{e}");
    assert!(tr.translate(&x, "b2a").is_err());
    // L1 only: one group; Diffusion-GAN: T in the log.
    let mut l1 = tiny(&data, 2);
    l1.pix2pix.gan_loss = GanLoss::None;
    let t = Trainer::new(l1, &tmp("l1")).unwrap();
    assert_eq!(t.task().groups().iter().count(), 1);
    let mut dg = tiny(&data, 4);
    dg.diffusion.enabled = true;
    dg.diffusion.ada_kimg = 0.01;
    let dgdir = tmp("diffusion");
    let mut t = Trainer::new(dg, &dgdir).unwrap();
    t.run(&mut Silent).unwrap();
    assert!(t.rows().iter().all(|r| r.get("T") >= 5.0));
    for d in [data, a, b, tmp("l1"), dgdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The L1-only U-Net learns B = −A on held-out images: after 300 steps (batch 4, 32 px,
/// ngf 16, no dropout, lr 2e-3 constant) the test L1 is below a third of the untrained
/// net's (measured here: 0.345 → 0.049, seed 1; a broken skip, loss sign or optimizer
/// leaves it near the untrained value, whose output is close to 0).
#[test]
fn l1_unet_learns_a_known_mapping() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    let data = tmp("learn");
    write_pairs(&data, "train", 16, 32);
    write_pairs(&data, "test", 8, 32);
    let mut cfg = tiny(&data, 300);
    cfg.run.eval_every = 300;
    cfg.run.checkpoint_every = 300;
    cfg.run.log_every = 50;
    cfg.pix2pix.gan_loss = GanLoss::None;
    cfg.pix2pix.unet.ngf = 16;
    cfg.pix2pix.unet.dropout = false;
    cfg.pix2pix.optim.g.lr = 2e-3;
    let dir = tmp("learn-run");
    let before = Pix2pix::new(&cfg, Mode::Train)
        .unwrap()
        .test_l1()
        .unwrap()
        .0;
    let mut t = Trainer::new(cfg, &dir).unwrap();
    let s = t.run(&mut Silent).unwrap();
    let after = s["test_l1"].as_f64().unwrap();
    assert!(after < before / 3.0, "test L1 {before} → {after}");
    for d in [data, dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
