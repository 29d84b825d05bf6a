//! Tests of the generic loop, with the GAN task as the vehicle (bit-identical resume and
//! seeds, NaN handling, logs, TensorBoard, EMA, run directory layout, old run directories).

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::*;
use crate::data::{Sampler, Toy2d};
use crate::progress::Silent;
use crate::tasks::gan::GanTask;
use crate::tasks::Generative;

/// The GAN task of a trainer (these tests train GANs).
fn gen(t: &Trainer) -> &dyn Generative {
    t.task().generative().expect("a GAN run")
}

pub(crate) fn tiny_config(steps: u64) -> TrainConfig {
    let mut cfg = TrainConfig::default();
    cfg.run.steps = steps;
    cfg.run.batch_size = 32;
    cfg.run.log_every = 2;
    cfg.run.eval_every = 5;
    cfg.run.checkpoint_every = 5;
    cfg.run.eval_samples = 200;
    cfg.run.device = "cpu".into();
    cfg.model.mlp.hidden = 16;
    cfg.diffusion.ada_kimg = 0.2; // T moves visibly within a few steps
    cfg
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ganlab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A fresh directory `tmp(name)` holding a [`tiny_config`] run trained to `steps`.
fn finished_run(name: &str, steps: u64) -> PathBuf {
    let d = tmp(name);
    Trainer::new(tiny_config(steps), &d)
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    d
}

/// Determinism: two fresh runs with the same seed on the same backend have bit-identical
/// G and D weights after N steps; another seed gives different weights.
#[test]
fn same_seed_same_weights() {
    let _rng = crate::test_rng_lock();
    let weights = |seed: u64, name: &str| {
        let mut cfg = tiny_config(8);
        cfg.run.seed = seed;
        let dir = tmp(name);
        let mut t = Trainer::new(cfg, &dir).unwrap();
        t.run(&mut Silent).unwrap();
        let w = t.weights();
        assert!(w.iter().any(|(k, _)| k.starts_with("d.")));
        std::fs::remove_dir_all(dir).unwrap();
        w
    };
    let (a, b, c) = (
        weights(3, "det-a"),
        weights(3, "det-b"),
        weights(4, "det-c"),
    );
    for ((ka, ta), (kb, tb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert!(ta.equal(tb), "{ka} differs between two runs with one seed");
    }
    assert!(a.iter().zip(&c).any(|((_, x), (_, y))| !x.equal(y)));
}

/// Resume after N steps equals an uninterrupted run: same generator weights bit for
/// bit, same T, same logged losses.
#[test]
fn resume_equals_uninterrupted() {
    let _rng = crate::test_rng_lock();
    let (a, b) = (tmp("full"), tmp("half"));
    let mut full = Trainer::new(tiny_config(20), &a).unwrap();
    full.run(&mut Silent).unwrap();
    let mut half = Trainer::new(tiny_config(10), &b).unwrap();
    half.run(&mut Silent).unwrap();
    drop(half);
    let mut resumed = Trainer::resume(&b, Some(20), None).unwrap();
    assert_eq!(resumed.step(), 10);
    resumed.run(&mut Silent).unwrap();
    assert_eq!(
        full.task().state().unwrap(),
        resumed.task().state().unwrap()
    );
    for ((ka, ta), (kb, tb)) in full.weights().iter().zip(resumed.weights()) {
        assert_eq!(ka, &kb);
        assert!(ta.equal(&tb), "{ka} differs after resume");
    }
    let la: Vec<f64> = full.rows().iter().map(|s| s.get("loss_g")).collect();
    let lb: Vec<f64> = resumed.rows().iter().map(|s| s.get("loss_g")).collect();
    assert_eq!(la, lb);
    // The evaluations before the resume point are kept (the report's curves start at step 5).
    let ea: Vec<u64> = full.evals().iter().map(|r| r.step).collect();
    let eb: Vec<u64> = resumed.evals().iter().map(|r| r.step).collect();
    assert_eq!((ea.clone(), eb), (vec![5, 10, 15, 20], ea));
    assert!(full
        .rows()
        .iter()
        .any(|s| s.get("T") > 5.0 || s.get("r_d").is_finite()));
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A resumed run's clock goes on from where it stopped: `wall_s` after the resume point and
/// summary.json's `train_seconds` add the seconds trained before it, read from the checkpoint
/// or, for a checkpoint written before it kept them, from the last kept `wall_s` (they
/// restarted at 0 before). The first 10 steps are made to have taken 1,000 s by editing the
/// files, so the expected range is closed-form: [1000, 1000 + this test's own resume time].
#[test]
fn resume_continues_the_training_clock() {
    let _rng = crate::test_rng_lock();
    for (name, in_checkpoint) in [("clock", true), ("clock-old", false)] {
        let d = finished_run(name, 10);
        let state_path = d.join("checkpoints").join("state.json");
        let mut state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
        assert!(state["train_seconds"].as_f64().unwrap() > 0.0);
        let log_path = d.join("metrics.jsonl");
        let mut lines: Vec<serde_json::Value> = std::fs::read_to_string(&log_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.last().unwrap()["step"], 10);
        match in_checkpoint {
            true => state["train_seconds"] = 1000.0.into(),
            false => {
                state.as_object_mut().unwrap().remove("train_seconds");
                lines.last_mut().unwrap()["wall_s"] = 1000.0.into();
            }
        }
        std::fs::write(&state_path, state.to_string()).unwrap();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&log_path, text).unwrap();
        let clock = std::time::Instant::now();
        let mut resumed = Trainer::resume(&d, Some(20), None).unwrap();
        let summary = resumed.run(&mut Silent).unwrap();
        let bound = 1000.0 + clock.elapsed().as_secs_f64();
        let seconds = summary["train_seconds"].as_f64().unwrap();
        assert!((1000.0..=bound).contains(&seconds), "{name}: {seconds}");
        for row in resumed.rows().iter().filter(|r| r.step > 10) {
            let wall = row.get("wall_s");
            assert!(
                (1000.0..=bound).contains(&wall),
                "{name} step {}: {wall}",
                row.step
            );
        }
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Resuming with a budget below the step a run has reached is a config error naming
/// `--steps`, and leaves config.toml as it was (issue 18, item 10).
#[test]
fn resume_refuses_a_budget_below_the_run() {
    let _rng = crate::test_rng_lock();
    let d = finished_run("shorter", 4);
    let before = std::fs::read(d.join("config.toml")).unwrap();
    let err = Trainer::resume(&d, Some(2), None).unwrap_err();
    assert!(
        matches!(&err, GanError::Config { field, .. } if field == "--steps"),
        "{err}"
    );
    assert!(err.to_string().contains("already at step 4"), "{err}");
    assert_eq!(std::fs::read(d.join("config.toml")).unwrap(), before);
    std::fs::remove_dir_all(d).unwrap();
}

/// Issue 18 item 7: a checkpoint whose G weights hold a NaN is refused, naming the tensor,
/// by `sample` (Run::open) and by resume alike — both read the weights from one place.
#[test]
fn nan_weights_in_a_checkpoint_are_refused_everywhere() {
    let _rng = crate::test_rng_lock();
    let d = finished_run("nan-ckpt", 2);
    let ckpt = d.join("checkpoints");
    let (state, tensors) = checkpoint::load(&ckpt).unwrap();
    let key = tensors
        .iter()
        .map(|(k, _)| k.clone())
        .find(|k| k.starts_with("g."))
        .unwrap();
    let poisoned: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(k, t)| {
            let t = if *k == key {
                t.full_like(f64::NAN)
            } else {
                t.shallow_clone()
            };
            (k.as_str(), t)
        })
        .collect();
    crate::io::write_safetensors_atomic(&ckpt.join(&state.tensors), &poisoned).unwrap();
    let e = crate::run::Run::open(&d).unwrap_err().to_string();
    assert!(e.contains(&key) && e.contains("NaN"), "{e}");
    let e = Trainer::resume(&d, None, None).unwrap_err().to_string();
    assert!(e.contains(&key) && e.contains("NaN"), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

/// Issue 18 item 9: a resumed run keeps the log lines before its checkpoint byte for byte
/// (they are not re-parsed and re-printed), in metrics.jsonl and eval.jsonl.
#[test]
fn resume_keeps_logged_lines_byte_for_byte() {
    let _rng = crate::test_rng_lock();
    let d = finished_run("log-bytes", 10);
    let before: Vec<Vec<u8>> = ["metrics.jsonl", "eval.jsonl"]
        .iter()
        .map(|f| std::fs::read(d.join(f)).unwrap())
        .collect();
    Trainer::resume(&d, Some(14), None)
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    for (f, old) in ["metrics.jsonl", "eval.jsonl"].iter().zip(before) {
        let new = std::fs::read(d.join(f)).unwrap();
        assert!(new.len() > old.len() && new.starts_with(&old), "{f}");
    }
    std::fs::remove_dir_all(d).unwrap();
}

#[derive(Debug)]
struct NanAfter {
    inner: Toy2d,
    calls: u64,
    after: u64,
}

impl Sampler for NanAfter {
    fn sample(&mut self, n: i64, device: Device) -> Result<Tensor> {
        self.calls += 1;
        let x = self.inner.sample(n, device)?;
        Ok(if self.calls > self.after {
            x * f64::NAN
        } else {
            x
        })
    }
}

/// A NaN in the data makes the loss NaN: training stops with a clear error and the
/// last good checkpoint (step 5) is kept and loadable.
#[test]
fn nan_stops_training_and_keeps_checkpoint() {
    let _rng = crate::test_rng_lock();
    let dir = tmp("nan");
    let cfg = tiny_config(20);
    let data = Box::new(NanAfter {
        inner: Toy2d::new(cfg.data.toy2d.clone()),
        calls: 0,
        after: 7,
    });
    let task = GanTask::with_sampler(&cfg, data).unwrap();
    let mut t = Trainer::with_task(cfg, &dir, Box::new(task)).unwrap();
    let err = t.run(&mut Silent).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("non-finite loss_d at step 8"), "{msg}");
    assert!(msg.contains("last good checkpoint"), "{msg}");
    // Nothing was committed for the failed step: the step count, the EMA-free weights'
    // controller state and the logs stop at step 7.
    assert_eq!(t.step(), 7);
    assert!(t.rows().iter().all(|r| r.step <= 7));
    let (state, _) = checkpoint::load(&dir.join("checkpoints")).unwrap();
    assert_eq!(state.step, 5);
    drop(t);
    let resumed = Trainer::resume(&dir, None, None).unwrap();
    assert_eq!(resumed.step(), 5);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 18 items 12 and 14: a NaN at step 3, before the first checkpoint, says that no
/// checkpoint exists (not that one is kept); `--resume` then starts again from step 0 with
/// the stored config and ends bit-identical to a run that never failed.
#[test]
fn a_run_stopped_before_its_first_checkpoint_resumes_from_step_0() {
    let _rng = crate::test_rng_lock();
    let (dir, clean) = (tmp("nan-early"), tmp("nan-early-clean"));
    let cfg = tiny_config(6);
    let data = Box::new(NanAfter {
        inner: Toy2d::new(cfg.data.toy2d.clone()),
        calls: 0,
        after: 2,
    });
    let task = GanTask::with_sampler(&cfg, data).unwrap();
    let mut t = Trainer::with_task(cfg.clone(), &dir, Box::new(task)).unwrap();
    let msg = t.run(&mut Silent).unwrap_err().to_string();
    assert!(msg.contains("no checkpoint had been written yet"), "{msg}");
    drop(t);
    let mut r = Trainer::resume(&dir, None, None).unwrap();
    assert_eq!(r.step(), 0);
    r.run(&mut Silent).unwrap();
    let mut c = Trainer::new(cfg, &clean).unwrap();
    c.run(&mut Silent).unwrap();
    for ((k, a), (_, b)) in r.weights().iter().zip(c.weights()) {
        assert!(a.equal(&b), "{k} differs from an uninterrupted run");
    }
    for d in [dir, clean] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Issue 18 items 11 and 13: while a run directory is locked (by a live trainer or a racing
/// process), neither a new run nor a resume may use it; the lock goes with the trainer; a
/// resume removes the temporary files an interrupted atomic write left.
#[test]
fn run_directories_are_locked_and_stale_temporaries_removed() {
    let _rng = crate::test_rng_lock();
    let d = tmp("locked");
    std::fs::create_dir_all(&d).unwrap();
    let racer = crate::io::RunLock::acquire(&d).unwrap();
    let e = Trainer::new(tiny_config(2), &d).unwrap_err().to_string();
    assert!(e.contains("in use by another ganlab process"), "{e}");
    drop(racer);
    let mut t = Trainer::new(tiny_config(2), &d).unwrap();
    t.run(&mut Silent).unwrap();
    let e = Trainer::resume(&d, Some(4), None).unwrap_err().to_string();
    assert!(e.contains("in use by another ganlab process"), "{e}");
    drop(t);
    let junk = d.join("checkpoints/step-9.safetensors.tmp");
    std::fs::write(&junk, b"half a checkpoint").unwrap();
    Trainer::resume(&d, Some(4), None).unwrap();
    assert!(!junk.exists());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn existing_run_dir_is_not_overwritten() {
    let _rng = crate::test_rng_lock();
    let dir = tmp("exists");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let err = Trainer::new(tiny_config(2), &dir).unwrap_err();
    assert!(err.to_string().contains("already exists") && err.is_user_error());
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The run directory holds what DESIGN.md lists.
/// DCGAN with Diffusion-GAN on a tiny IDX set (16 random 28×28 images written here):
/// trains, writes fixed-noise grids and samples.png, resumes bit-identically, and a data /
/// model shape mismatch names the field.
#[test]
fn dcgan_on_idx_images() {
    let _rng = crate::test_rng_lock();
    // 16 grey images of side `s` in IDX format.
    let idx = |name: &str, s: u32| {
        let data = tmp(name);
        std::fs::create_dir_all(&data).unwrap();
        let mut bytes = vec![0u8, 0, 8, 3];
        for d in [16u32, s, s] {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend((0..16 * s * s).map(|i| ((i * 37) % 256) as u8));
        std::fs::write(data.join("train-images-idx3-ubyte"), bytes).unwrap();
        data
    };
    let data = idx("idxdata", 28);
    let mut cfg = tiny_config(4);
    cfg.data.source = DataSource::Idx;
    cfg.data.idx.dir = data.clone();
    cfg.model.family = ModelFamily::Dcgan;
    cfg.model.dcgan.width = 4;
    cfg.model.dcgan.latent_dim = 8;
    cfg.run.batch_size = 8;
    cfg.run.eval_every = 2;
    cfg.run.checkpoint_every = 2;
    cfg.run.eval_samples = 16;
    // SNGAN with both gradient penalties: also resumes exactly (spectral-norm u vectors
    // are checkpointed).
    let mut sn = cfg.clone();
    sn.model.family = ModelFamily::Sngan;
    sn.model.sngan = crate::models::sngan::SnganConfig {
        image_size: 28,
        channels: 1,
        latent_dim: 8,
        g_width: 4,
        d_width: 4,
        ..Default::default()
    };
    sn.objective.r1_gamma = 1.0;
    sn.objective.gp_lambda = 1.0;
    // StyleGAN2 (with t in D) at 32 px with lazy R1 every 2nd D step: the phase survives
    // the resume at step 2.
    let mut sg = cfg.clone();
    sg.data.idx.dir = idx("idxdata32", 32);
    sg.model.family = ModelFamily::Stylegan2;
    sg.model.stylegan2 = crate::models::stylegan2::Stylegan2Config {
        image_size: 32,
        channels: 1,
        latent_dim: 8,
        w_dim: 8,
        channel_base: 64,
        channel_max: 4,
        d_mapping_layers: 2,
        mbstd_group: 4,
        ..Default::default()
    };
    sg.objective.r1_gamma = 1.0;
    sg.objective.r1_every = 2;
    assert!(sg.diffusion.enabled);
    // DCGAN's G with a projected D (feature-level noise) on a random ccexam-layout backbone.
    let mut pj = cfg.clone();
    pj.model.projected = crate::models::projected::ProjectedConfig {
        enabled: true,
        weights: data.join("mnist_cnn.safetensors"),
        channels: 4,
        width: 4,
        ..Default::default()
    };
    crate::metrics::MnistCnn::write_random(&pj.model.projected.weights).unwrap();
    let mut dirs = vec![data.clone(), sg.data.idx.dir.clone()];
    for (name, cfg) in [
        ("dcgan", cfg.clone()),
        ("sngan", sn),
        ("stylegan2", sg),
        ("projected", pj),
    ] {
        let dir = tmp(name);
        let mut t = Trainer::new(cfg.clone(), &dir).unwrap();
        t.run(&mut Silent).unwrap();
        for f in [
            "samples.png",
            "samples/step-0000002.png",
            "samples.npy",
            "report.html",
        ] {
            assert!(dir.join(f).exists(), "{name}: {f} missing");
        }
        assert!(t.rows().iter().all(|s| s.get("loss_d").is_finite()));
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(
            html.contains("samples/step-0000002.png"),
            "{name}: report shows the grids"
        );
        let full = t.weights();
        if name == "projected" {
            // The random projections stay as drawn; the mini-discriminators learn; T moves.
            let fresh_dir = tmp("projected-fresh");
            let fresh = Trainer::new(cfg.clone(), &fresh_dir).unwrap();
            for ((k, a), (_, b)) in full.iter().zip(fresh.weights()) {
                let frozen = k.contains("projection");
                if frozen || k.contains("disc0.down0.weight") {
                    assert_eq!(a.equal(&b), frozen, "{k}");
                }
            }
            drop(fresh);
            dirs.push(fresh_dir);
        }
        // Resume from step 2 of a copy of the run equals the uninterrupted run.
        let half = tmp(&format!("{name}-half"));
        let mut h = Trainer::new(
            TrainConfig {
                run: RunConfig {
                    steps: 2,
                    ..cfg.run.clone()
                },
                ..cfg.clone()
            },
            &half,
        )
        .unwrap();
        h.run(&mut Silent).unwrap();
        drop(h);
        let mut r = Trainer::resume(&half, Some(4), None).unwrap();
        r.run(&mut Silent).unwrap();
        for ((k, a), (_, b)) in full.iter().zip(r.weights()) {
            assert!(a.equal(&b), "{name}: {k} differs after resume");
        }
        // Samples are images in [-1, 1] (StyleGAN2's unsquashed output is clamped). Last:
        // sampling runs DCGAN's BatchNorm in training mode, which moves its running stats.
        let x = t.task().generative().unwrap().sample(8, 0);
        assert!(
            x.abs().max().double_value(&[]) <= 1.0,
            "{name}: samples outside [-1, 1]"
        );
        dirs.extend([dir, half]);
    }
    // A folder of RGB PNGs of another size trains a grey 28 px model (resized, cropped,
    // converted).
    let pngs = tmp("pngs");
    std::fs::create_dir_all(&pngs).unwrap();
    for i in 0..3 {
        let img = Tensor::rand([3, 40, 36], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        crate::data::write_png(&pngs.join(format!("{i}.png")), &img).unwrap();
    }
    let mut folder_cfg = cfg.clone();
    folder_cfg.data.idx.dir = pngs.clone();
    let folder_run = tmp("folder-run");
    let mut t = Trainer::new(folder_cfg, &folder_run).unwrap();
    t.run(&mut Silent).unwrap();
    dirs.extend([pngs, folder_run]);
    cfg.model.dcgan.image_size = 32;
    let e = Trainer::new(cfg, &tmp("dcgan-bad"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.dcgan.image_size"), "{e}");
    for d in dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A class-conditional MLP GAN on 25 Gaussians (label = mode) with GAN-CLS negatives
/// learns its labels: after 1500 steps, ≥ 50% of the samples drawn per class (80 for each
/// of the 25) lie within 1 (half the grid spacing; squared distance < 1) of their own
/// class's centre, against 4% by chance. (Measured 0.93 here; every sample of classes 0
/// and 12 within 1 at 3000 steps with the default nets.) Unknown classes and unlabelled data are errors
/// naming the field.
#[test]
fn conditional_toy_learns_its_labels() {
    let _rng = crate::test_rng_lock();
    let mut cfg = tiny_config(1500);
    cfg.model.mlp.hidden = 64;
    cfg.run.batch_size = 128;
    cfg.run.eval_every = 1500;
    cfg.run.checkpoint_every = 1500;
    cfg.model.conditional.num_classes = 25;
    cfg.model.conditional.mismatched = true;
    let dir = tmp("conditional");
    let mut t = Trainer::new(cfg.clone(), &dir).unwrap();
    t.run(&mut Silent).unwrap();
    // Over all 25 classes, 80 samples each: the fraction within 1 of its own centre.
    let toy = Toy2d::new(cfg.data.toy2d.clone());
    let mut hits = 0.0;
    for (k, c) in toy.centres().iter().enumerate() {
        let x = gen(&t).sample_class(80, 7, k as i64).unwrap();
        let centre = Tensor::from_slice(&[c[0] as f32, c[1] as f32]);
        hits += (x - centre)
            .square()
            .sum_dim_intlist(1, false, Kind::Float)
            .lt(1.0)
            .to_kind(Kind::Double)
            .sum(Kind::Double)
            .double_value(&[]);
    }
    let acc = hits / (25.0 * 80.0);
    assert!(
        acc >= 0.5,
        "{acc} of the samples within 1 of their class's centre"
    );
    assert!(gen(&t)
        .sample_class(4, 0, 25)
        .unwrap_err()
        .to_string()
        .contains("--class"));
    let mut bad = cfg.clone();
    bad.model.conditional.num_classes = 10;
    let e = Trainer::new(bad, &tmp("cond-bad")).unwrap_err().to_string();
    assert!(e.contains("model.conditional.num_classes"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `run.tensorboard = true` writes event files that our reader opens: every logged
/// step's losses and the mode statistics of every evaluation, equal to metrics.jsonl.
#[test]
fn tensorboard_events_match_the_log() {
    let _rng = crate::test_rng_lock();
    let mut cfg = tiny_config(10);
    cfg.run.tensorboard = true;
    let dir = tmp("tb");
    let mut t = Trainer::new(cfg, &dir).unwrap();
    t.run(&mut Silent).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.join("tensorboard"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let s = crate::report::tensorboard::read_scalars(&files[0]).unwrap();
    let loss_d: Vec<(i64, f32)> = s
        .iter()
        .filter(|(_, tag, _)| tag == "loss_d")
        .map(|(st, _, v)| (*st, *v))
        .collect();
    let logged: Vec<(i64, f32)> = t
        .rows()
        .iter()
        .map(|h| (h.step as i64, h.get("loss_d") as f32))
        .collect();
    assert_eq!(loss_d, logged);
    assert_eq!(
        s.iter()
            .filter(|(_, tag, _)| tag == "modes/covered")
            .count(),
        2
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// EMA: after k steps it equals the recurrence e ← β e + (1 − β) θ_k started at θ_1 (to
/// 1e-6), sampling uses it, and it survives a checkpoint round trip bit for bit.
#[test]
fn ema_of_generator() {
    let _rng = crate::test_rng_lock();
    let mut cfg = tiny_config(6);
    cfg.run.ema_beta = 0.9;
    let dir = tmp("ema");
    let mut t = Trainer::new(cfg, &dir).unwrap();
    let mut want: Option<Tensor> = None;
    let flat_g = |t: &Trainer| t.task().groups().get("g").opt().flat().copy();
    for _ in 0..6 {
        t.train_step().unwrap();
        let theta = flat_g(&t);
        want = Some(match want {
            None => theta,
            Some(e) => e * 0.9 + theta * 0.1,
        });
    }
    let want = want.unwrap();
    let got = t.task().groups().get("g").ema().unwrap().copy();
    assert!((&got - &want).abs().max().double_value(&[]) < 1e-6);
    // Sampling uses the EMA weights and restores the trained ones.
    let before = flat_g(&t);
    let s = gen(&t).sample(8, 3);
    assert!(flat_g(&t).equal(&before));
    let mut flat = t.task().groups().get("g").opt().flat().shallow_clone();
    tch::no_grad(|| flat.copy_(&want));
    let z = gen(&t).latent_codes(8, 3);
    let direct = tch::no_grad(|| gen(&t).generator().forward(&z));
    assert!((s - direct).abs().max().double_value(&[]) < 1e-5);
    tch::no_grad(|| flat.copy_(&before));
    t.save_checkpoint().unwrap();
    // The run handle generates with the EMA weights (to 1e-5 of the trained trainer's
    // EMA samples: the same codes through the same weights).
    let back = crate::run::Run::open(&dir).unwrap();
    let again = back.generative().unwrap().sample(8, 3);
    let s = gen(&t).sample(8, 3);
    assert!((again - s).abs().max().double_value(&[]) < 1e-6);
    drop(t);
    let mut r = Trainer::resume(&dir, None, None).unwrap();
    assert!(r.task().groups().get("g").ema().unwrap().equal(&got));
    r.train_step().unwrap();
    let e = TrainConfig::from_toml_str("[run]\nema_beta = 1.0\n", Path::new("x.toml")).unwrap_err();
    assert!(e.to_string().contains("run.ema_beta"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// EMA ramp-up: with `run.ema_rampup` r the EMA follows e ← β_k e + (1 − β_k) θ_k with
/// β_k = min(β, 0.5^(1/(r·(k − 1)))) (StyleGAN2-ADA's rule, written out here rather than
/// calling `ema_decay`; to 1e-6), and a run resumed from a step-3 checkpoint reaches the same
/// EMA at step 6 bit for bit (β_k depends on k alone).
#[test]
fn ema_rampup_follows_stylegan2_ada() {
    let _rng = crate::test_rng_lock();
    let mut cfg = tiny_config(6);
    cfg.run.ema_beta = 0.9;
    cfg.run.ema_rampup = 0.5; // β_k < 0.9 for k ≤ 6: 0, 0.25, 0.5, 0.63, 0.71, 0.76
    cfg.run.checkpoint_every = 3;
    let dir = tmp("ema-rampup");
    let mut t = Trainer::new(cfg, &dir).unwrap();
    let mut want: Option<Tensor> = None;
    for k in 1..=6u64 {
        t.train_step().unwrap();
        if k == 3 {
            t.save_checkpoint().unwrap();
        }
        let theta = t.task().groups().get("g").opt().flat().copy();
        let beta = f64::min(0.9, 0.5f64.powf(1.0 / (0.5 * (k - 1) as f64)));
        want = Some(match want {
            None => theta,
            Some(e) => e * beta + theta * (1.0 - beta),
        });
    }
    let got = t.task().groups().get("g").ema().unwrap().copy();
    let want = want.unwrap();
    assert!((&got - &want).abs().max().double_value(&[]) < 1e-6);
    // A constant β = 0.9 would have kept 0.9^5 = 59% of θ_1; the ramp-up keeps 0.25·0.5·0.63·0.71·0.76 = 4%.
    drop(t);
    let mut r = Trainer::resume(&dir, None, None).unwrap();
    for _ in 0..3 {
        r.train_step().unwrap();
    }
    assert!(r.task().groups().get("g").ema().unwrap().equal(&got));
    for bad in ["-0.1", "1.5", "nan"] {
        let e = TrainConfig::from_toml_str(
            &format!("[run]\nema_rampup = {bad}\n"),
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("run.ema_rampup"), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_directory_layout() {
    let _rng = crate::test_rng_lock();
    let dir = tmp("layout");
    let mut t = Trainer::new(tiny_config(6), &dir).unwrap();
    let s = t.run(&mut Silent).unwrap();
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "samples.svg",
        "samples.npy",
        "report.html",
        "checkpoints/state.json",
        "checkpoints/step-6.safetensors",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let cfg_text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(
        cfg_text.contains("sigma = 0.5") && cfg_text.contains("epl_zeros = 32"),
        "every default written out"
    );
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    let v: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    for k in ["step", "loss_d", "loss_g", "T", "r_d", "d_real", "d_fake"] {
        assert!(v.get(k).is_some(), "{k} missing in metrics.jsonl");
    }
    let sum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(sum["modes_covered"], s["modes_covered"]);
    let typed = crate::tasks::gan::Summary::from_value(s).unwrap();
    assert_eq!(typed.steps, 6);
    assert!(cfg_text.contains("[task]\nkind = \"gan\"") && !cfg_text.contains("[pix2pix"));
    assert!(dir.join("eval.jsonl").is_file());
    assert!(
        sum.get("final_T").is_some()
            && sum.get("mode_kl").is_some()
            && sum.get("high_quality_fraction").is_some()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run directory written before tasks existed (state.json with opt_g_steps, opt_d_steps
/// and diffusion at the top; config.toml without [task]) resumes, bit-identical to an
/// uninterrupted run.
#[test]
fn pre_task_run_directory_resumes() {
    let _rng = crate::test_rng_lock();
    let (a, b) = (tmp("old-full"), tmp("old-half"));
    let mut full = Trainer::new(tiny_config(10), &a).unwrap();
    full.run(&mut Silent).unwrap();
    Trainer::new(tiny_config(5), &b)
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    // Rewrite the checkpoint's JSON half and the config in the old layout.
    let state_path = b.join("checkpoints/state.json");
    let new: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let old = serde_json::json!({
        "step": new["step"], "tensors": new["tensors"],
        "opt_g_steps": new["optim_steps"]["g"], "opt_d_steps": new["optim_steps"]["d"],
        "diffusion": new["task"]["diffusion"], "version": "0.1.0"
    });
    std::fs::write(&state_path, old.to_string()).unwrap();
    let cfg = std::fs::read_to_string(b.join("config.toml")).unwrap();
    let without_task = cfg.replace("[task]\nkind = \"gan\"\n\n", "");
    assert_ne!(cfg, without_task);
    std::fs::write(b.join("config.toml"), without_task).unwrap();
    let mut r = Trainer::resume(&b, Some(10), None).unwrap();
    r.run(&mut Silent).unwrap();
    for ((k, x), (_, y)) in full.weights().iter().zip(r.weights()) {
        assert!(
            x.equal(&y),
            "{k} differs after resuming an old run directory"
        );
    }
    // --device cuda:0 and cuda are one device; cpu vs another device is refused.
    assert!(crate::device::same_device("cuda", "cuda:0").unwrap());
    let e = Trainer::resume(&b, None, Some("cuda:1")).unwrap_err();
    assert!(e.to_string().contains("--device cuda:1 differs"), "{e}");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// With n_critic = 3 the controller counts the 3·m real images D saw per step: one update
/// moves p by 3·m·ada_interval/(ada_kimg·1000), closed form (StyleGAN2-ADA's ada_kimg is
/// in images shown to D).
#[test]
fn ada_kimg_counts_images_seen_by_d() {
    let _rng = crate::test_rng_lock();
    let mut cfg = tiny_config(4);
    cfg.objective.n_critic = 3;
    cfg.diffusion.ada_interval = 4;
    cfg.diffusion.ada_kimg = 100.0;
    // r_d ≥ −1 > d_target − ε: the update always moves p up by exactly one step.
    cfg.diffusion.d_target = -1.0;
    let dir = tmp("ncritic");
    let mut t = Trainer::new(cfg, &dir).unwrap();
    let ps: Vec<f64> = (0..4).map(|_| t.train_step().unwrap().get("p")).collect();
    let step = 3.0 * 32.0 * 4.0 / (100.0 * 1000.0);
    assert_eq!(
        &ps[..3],
        &[0.0, 0.0, 0.0],
        "no update before ada_interval steps"
    );
    assert!((ps[3] - step).abs() < 1e-12, "p = {}, want {step}", ps[3]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 18 item 14: `--resume --device cpu` on a run whose device is `auto` is accepted
/// (was refused on a GPU machine although the run trained on a CPU); a run that named a
/// device is held to it; a misspelt device names the field.
#[test]
fn resume_device_rule() {
    assert_eq!(super::resume_device("cpu", "auto").unwrap(), "cpu");
    assert_eq!(super::resume_device("cuda:0", "cuda").unwrap(), "cuda");
    assert_eq!(super::resume_device("cpu", "cpu").unwrap(), "cpu");
    let e = super::resume_device("cuda", "cpu").unwrap_err().to_string();
    assert!(e.contains("differs from the run's device cpu"), "{e}");
    let e = super::resume_device("tpu", "auto").unwrap_err().to_string();
    assert!(e.contains("run.device"), "{e}");
}

/// Issue 18 item 14: a checkpoint of another model width names the same tensor on every
/// attempt (the alphabetically first that does not fit; was: whichever a hash map gave).
#[test]
fn shape_mismatch_names_one_tensor_every_time() {
    let _rng = crate::test_rng_lock();
    let d = finished_run("shape-mismatch", 2);
    let toml = std::fs::read_to_string(d.join("config.toml")).unwrap();
    assert!(toml.contains("hidden = 16"));
    std::fs::write(
        d.join("config.toml"),
        toml.replace("hidden = 16", "hidden = 24"),
    )
    .unwrap();
    let msgs: Vec<String> = (0..4)
        .map(|_| crate::run::Run::open(&d).unwrap_err().to_string())
        .collect();
    assert!(msgs.iter().all(|m| *m == msgs[0]), "{msgs:?}");
    assert!(
        msgs[0].contains("has shape") && msgs[0].contains("`g."),
        "{}",
        msgs[0]
    );
    std::fs::remove_dir_all(d).unwrap();
}

/// `Run::open_at` loads a kept older checkpoint: a 10-step run opened at step 5 samples
/// exactly as a 5-step run of the same seed (training is deterministic; tolerance 0), at
/// step 10 as opening it without a step; a step that is not kept is an error listing the
/// kept ones; `ganlab eval`'s `DIR@STEP` parses to that step, and a non-integer step is an
/// error naming the spec.
#[test]
fn open_at_a_kept_step() {
    let _rng = crate::test_rng_lock();
    let long = finished_run("open-at-10", 10);
    let short = finished_run("open-at-5", 5);
    let draw = |d: &Path, step: Option<u64>| {
        let r = crate::run::Run::open_at(d, step).unwrap();
        let s = r.generative().unwrap().sample(16, 7);
        (r.step(), s)
    };
    let (s5, at5) = draw(&long, Some(5));
    let (_, five) = draw(&short, None);
    assert_eq!(s5, 5);
    assert!(at5.equal(&five));
    let (s10, at10) = draw(&long, Some(10));
    let (_, newest) = draw(&long, None);
    assert_eq!(s10, 10);
    assert!(at10.equal(&newest));
    assert!(!at10.equal(&at5));
    let e = crate::run::Run::open_at(&long, Some(7))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no checkpoint of step 7") && e.contains("[5, 10]"),
        "{e}"
    );
    use crate::metrics::eval::ImageSpec;
    let spec = ImageSpec::parse(&format!("{}@5", long.display())).unwrap();
    assert!(matches!(spec, ImageSpec::Run(_, Some(5))), "{spec:?}");
    let e = ImageSpec::parse(&format!("{}@five", long.display())).unwrap_err();
    assert!(e.to_string().contains("checkpoint step"), "{e}");
    for d in [long, short] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
