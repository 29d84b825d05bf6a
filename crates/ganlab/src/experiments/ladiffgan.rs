//! `ganlab experiment ladiffgan-emoji`: the LaDiffGAN seed's comparison at CPU scale
//! (ladiffgan-supplement.txt Table 1 and Fig. A) on Twitter ↔ Google emoji at 64 px
//! (`scripts/fetch-data emoji-twitter-google`), end to end:
//!
//! 1. pretraining, once, at the configs' seed:
//!    - `ae-a`, `ae-b`: the autoencoders (configs/autoencoder-emoji.toml, with the
//!      translation arms' data);
//!    - `ddpm-a`, `ddpm-b`: the latent DDPMs on them (configs/ddpm-emoji.toml);
//! 2. five translation arms at equal budget, at every seed:
//!    - `ugatit` and `ugatit-diffusion` (pixel Diffusion-GAN on the Ds), as
//!      `translation-emoji` has them;
//!    - `ladiffgan-ldg` (latent diffusion GAN loss only), `ladiffgan-hcd` (SDS only) and
//!      `ladiffgan` (both), from configs/ladiffgan-emoji.toml.
//!
//! Every stage lives in `out/<stage>`. Rerunning the command resumes: a finished stage
//! (summary.json) is kept, an interrupted one resumes from its checkpoint. results.md holds
//! Table 1's FID/KID per direction for every run and per arm (mean ± sd over seeds), the
//! pretraining checks (autoencoder test PSNR; the DDPM's FID beside its floor and ceiling)
//! and each stage's training minutes. grid_a2b.png / grid_b2a.png hold input and every
//! arm's translation at the first seed.
//!
//! `--set` goes to the stages that have the section. `run.*` goes to the translation arms
//! only; `pretrain.run.*` goes to the four pretraining stages (e.g.
//! `--set pretrain.run.steps=200`). Data set with `--set ugatit.data.*` reaches the
//! autoencoders too.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::translation::{self, Row};
use crate::error::{GanError, IoContext, Result};
use crate::io::write_atomic;
use crate::train::TrainConfig;

/// The experiment's stages and arms.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pretraining stages in order: (name, config).
    pub pretrain: Vec<(String, TrainConfig)>,
    /// Translation arms: (name, config).
    pub arms: Vec<(String, TrainConfig)>,
}

/// The marker that makes a directory this experiment's (so it may be resumed).
const MARKER: &str = "experiment.json";

/// The built-in plan writing into `out`, after `--set` entries (see module docs).
pub fn plan(out: &Path, sets: &[String]) -> Result<Plan> {
    let load = |text: &str, name: &str| TrainConfig::from_toml_str(text, Path::new(name));
    let arm_sets: Vec<String> = sets
        .iter()
        .filter(|s| {
            !["autoencoder.", "ddpm.", "pretrain."]
                .iter()
                .any(|p| s.starts_with(p))
        })
        .cloned()
        .collect();
    let pre_sets: Vec<String> = sets
        .iter()
        .filter_map(|s| match s.strip_prefix("pretrain.") {
            Some(rest) => Some(rest.to_string()),
            None => (!s.starts_with("run.") && !s.starts_with("diffusion.")).then(|| s.clone()),
        })
        .collect();
    let mut arms: Vec<(String, TrainConfig)> = translation::built_in()?
        .into_iter()
        .filter(|(a, _)| a != "cyclegan")
        .collect();
    let mut ld = load(
        include_str!("../../../../configs/ladiffgan-emoji.toml"),
        "configs/ladiffgan-emoji.toml",
    )?;
    ld.ladiffgan.ddpm_a = out.join("ddpm-a");
    ld.ladiffgan.ddpm_b = out.join("ddpm-b");
    for (name, ldg, hcd) in [
        ("ladiffgan-ldg", true, false),
        ("ladiffgan-hcd", false, true),
        ("ladiffgan", true, true),
    ] {
        let mut c = ld.clone();
        if !ldg {
            c.ladiffgan.ldg_weight = 0.0;
        }
        if !hcd {
            c.ladiffgan.hcd_weight = 0.0;
        }
        c.run.name = format!("{name}-emoji");
        arms.push((name.to_string(), c));
    }
    let arms = translation::with_overrides(arms, &arm_sets)?;
    let data = arms[0].1.ugatit.data.clone();
    let ae = load(
        include_str!("../../../../configs/autoencoder-emoji.toml"),
        "configs/autoencoder-emoji.toml",
    )?;
    let ddpm = load(
        include_str!("../../../../configs/ddpm-emoji.toml"),
        "configs/ddpm-emoji.toml",
    )?;
    let mut pretrain = Vec::new();
    for d in ["a", "b"] {
        let mut c = ae.clone();
        c.autoencoder.domain = d.into();
        c.autoencoder.data = data.clone();
        c.autoencoder.data.inception = ae.autoencoder.data.inception.clone();
        pretrain.push((format!("ae-{d}"), c));
    }
    for d in ["a", "b"] {
        let mut c = ddpm.clone();
        c.ddpm.autoencoder = out.join(format!("ae-{d}"));
        pretrain.push((format!("ddpm-{d}"), c));
    }
    let pretrain = translation::with_overrides(pretrain, &pre_sets)?;
    Ok(Plan { pretrain, arms })
}

/// One pretraining stage's checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stage {
    /// ae-a, ae-b, ddpm-a or ddpm-b.
    pub name: String,
    /// Training seconds.
    pub train_seconds: f64,
    /// Autoencoders: test-split PSNR (dB).
    pub test_psnr: Option<f64>,
    /// DDPMs: FID of decoded samples, of decoded Gaussian latents (floor) and of
    /// reconstructions (ceiling), against the domain's training images.
    pub fid_ddpm: Option<f64>,
    /// The floor.
    pub fid_gaussian: Option<f64>,
    /// The ceiling.
    pub fid_reconstruction: Option<f64>,
}

/// Runs (or resumes) the plan into `out` at `seeds`; writes results.json / results.md and the
/// grids.
pub fn run(
    plan: &Plan,
    seeds: &[u64],
    out: &Path,
    show_progress: bool,
) -> Result<(Vec<Stage>, Vec<Row>)> {
    if seeds.is_empty() {
        return Err(GanError::config("--seeds", "needs at least one seed"));
    }
    let marker = out.join(MARKER);
    if out.exists() && !marker.is_file() && std::fs::read_dir(out).at(out)?.next().is_some() {
        return Err(GanError::Input(format!(
            "{} is not empty and not a ladiffgan-emoji experiment directory; choose a new one",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).at(out)?;
    write_atomic(&marker, br#"{"experiment": "ladiffgan-emoji"}"#)?;
    let mut stages = Vec::new();
    for (name, cfg) in &plan.pretrain {
        let s =
            super::train_or_resume(cfg, &out.join(name), show_progress.then_some(name.as_str()))?;
        let f = |k: &str| s.get(k).and_then(|v| v.as_f64());
        stages.push(Stage {
            name: name.clone(),
            train_seconds: f("train_seconds").unwrap_or(f64::NAN),
            test_psnr: f("test_psnr"),
            fid_ddpm: f("fid_ddpm"),
            fid_gaussian: f("fid_gaussian"),
            fid_reconstruction: f("fid_reconstruction"),
        });
    }
    let mut rows = Vec::new();
    for &seed in seeds {
        for (arm, base) in &plan.arms {
            let mut cfg = base.clone();
            cfg.run.seed = seed;
            cfg.validate()?;
            let label = format!("{arm} s{seed}");
            let dir = out.join(format!("{arm}-s{seed}"));
            let s = super::train_or_resume(&cfg, &dir, show_progress.then_some(label.as_str()))?;
            rows.push(Row::of(arm, seed, cfg.run.steps, &s));
        }
    }
    translation::write_grids(&plan.arms, seeds[0], out)?;
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&serde_json::json!({"pretraining": stages, "runs": rows}))?
            .as_bytes(),
    )?;
    write_atomic(&out.join("results.md"), markdown(&stages, &rows).as_bytes())?;
    Ok((stages, rows))
}

/// results.md: the pretraining checks, then Table 1 per run and per arm.
pub fn markdown(stages: &[Stage], rows: &[Row]) -> String {
    let opt = |v: Option<f64>, d: usize| v.map_or("—".into(), |v| format!("{v:.d$}"));
    let mut s = String::from(
        "Pretraining (once; FIDs against the domain's training images)\n\n| stage | minutes | test PSNR dB | FID DDPM samples | FID Gaussian latents (floor) | FID reconstructions (ceiling) |\n|---|---|---|---|---|---|\n",
    );
    for st in stages {
        s += &format!(
            "| {} | {:.1} | {} | {} | {} | {} |\n",
            st.name,
            st.train_seconds / 60.0,
            opt(st.test_psnr, 2),
            opt(st.fid_ddpm, 1),
            opt(st.fid_gaussian, 1),
            opt(st.fid_reconstruction, 1)
        );
    }
    s + "\nTranslation (FID/KID of translated test images against the target domain's test images)\n\n"
        + &translation::table_markdown(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan: 4 pretraining stages wired to each other and to the arms (DDPMs on the
    /// autoencoders, LaDiffGAN arms on the DDPMs), the three LaDiffGAN arms differ only in
    /// their two weights and from U-GAT-IT only by the latent terms, `--set` routing (run.*
    /// to arms only, ugatit.data.* to the autoencoders too), and a non-experiment directory
    /// is refused.
    #[test]
    fn plan_wiring_and_overrides() {
        let out = Path::new("/tmp/x");
        let p = plan(
            out,
            &[
                "run.steps=7".into(),
                "ugatit.data.image_size=32".into(),
                "ugatit.data.load_size=32".into(),
                "ugatit.discriminator.global_layers=5".into(),
                "ddpm.t_max=50".into(),
                "pretrain.run.steps=3".into(),
            ],
        )
        .unwrap();
        let names: Vec<&str> = p.pretrain.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ae-a", "ae-b", "ddpm-a", "ddpm-b"]);
        assert_eq!(p.pretrain[1].1.autoencoder.domain, "b");
        assert_eq!(p.pretrain[0].1.autoencoder.data.image_size, 32);
        assert_eq!(p.pretrain[3].1.ddpm.autoencoder, out.join("ae-b"));
        assert_eq!(p.pretrain[3].1.ddpm.t_max, 50);
        assert!(p.pretrain.iter().all(|(_, c)| c.run.steps == 3));
        let arms: Vec<&str> = p.arms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            arms,
            [
                "ugatit",
                "ugatit-diffusion",
                "ladiffgan-ldg",
                "ladiffgan-hcd",
                "ladiffgan"
            ]
        );
        assert!(p.arms.iter().all(|(_, c)| c.run.steps == 7));
        let l = |i: usize| &p.arms[i].1.ladiffgan;
        assert_eq!((l(2).ldg_weight, l(2).hcd_weight), (1.0, 0.0));
        assert_eq!((l(3).ldg_weight, l(3).hcd_weight), (0.0, 0.1));
        assert_eq!(l(4).ddpm_b, out.join("ddpm-b"));
        assert_eq!(p.arms[4].1.ugatit, p.arms[0].1.ugatit, "the same U-GAT-IT");
        let dir = std::env::temp_dir().join(format!("ganlab-exp-ld-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine.txt"), "x").unwrap();
        let e = run(&p, &[0], &dir, false).unwrap_err().to_string();
        assert!(e.contains("not a ladiffgan-emoji experiment"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The whole pipeline at toy scale (2 steps a stage, 32 px): nine run directories, the
    /// tables and grids; a second call trains nothing and gives the same rows.
    #[test]
    fn pipeline_runs_and_resumes() {
        let _rng = crate::test_rng_lock();
        let root = std::env::temp_dir().join(format!("ganlab-exp-ldp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("data");
        crate::tasks::translation_tests::write_domains(&data, "train", 4, 32);
        crate::tasks::translation_tests::write_domains(&data, "test", 2, 32);
        let d = data.display();
        let sets: Vec<String> = [
            "run.steps=2".to_string(),
            "run.device=\"cpu\"".into(),
            "run.eval_samples=4".into(),
            "pretrain.run.steps=2".into(),
            "pretrain.run.device=\"cpu\"".into(),
            format!("ugatit.data.dir=\"{d}\""),
            "ugatit.data.image_size=32".into(),
            "ugatit.data.load_size=32".into(),
            "ugatit.generator.ngf=4".into(),
            "ugatit.discriminator.ndf=4".into(),
            "ugatit.discriminator.global_layers=5".into(),
            "ugatit.discriminator.local_layers=4".into(),
            "ladiffgan.latent_d.ndf=4".into(),
            "autoencoder.model.nf=4".into(),
            "autoencoder.model.mults=[1, 2]".into(),
            "autoencoder.perceptual.net=\"none\"".into(),
            "ddpm.t_max=20".into(),
            "ddpm.samples=0".into(),
            "ddpm.model.ch=8".into(),
            "ddpm.model.blocks=1".into(),
        ]
        .into();
        let out = root.join("out");
        let p = plan(&out, &sets).unwrap();
        let (stages, rows) = run(&p, &[0], &out, false).unwrap();
        assert_eq!(stages.len(), 4);
        assert_eq!(rows.len(), 5);
        for f in [
            "grid_a2b.png",
            "results.md",
            "results.json",
            "ladiffgan-s0/report.html",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        let md = std::fs::read_to_string(out.join("results.md")).unwrap();
        assert!(
            md.contains("| ddpm-b |") && md.contains("| ladiffgan-hcd | 1 |"),
            "{md}"
        );
        assert!(rows[4].final_t_latent.is_some() && rows[3].final_t_latent.is_none());
        let (_, again) = run(&p, &[0], &out, false).unwrap();
        assert_eq!(again, rows);
        std::fs::remove_dir_all(root).unwrap();
    }
}
