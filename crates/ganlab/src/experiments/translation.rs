//! The LaDiffGAN seed's unpaired comparison at CPU scale (ladiffgan-supplement.txt Fig. A:
//! U-GAT-IT with and without Diffusion-GAN; Table 1's format of FID/KID per direction), with
//! CycleGAN beside them: three arms at equal budget and seed on one real unpaired set,
//! Twitter ↔ Google emoji at 64 px (`scripts/fetch-data emoji-twitter-google`):
//!
//! - `cyclegan`: configs/cyclegan-emoji.toml;
//! - `ugatit`: configs/ugatit-emoji.toml;
//! - `ugatit-diffusion`: the same with `[diffusion] enabled = true` (adaptive T on all four
//!   Ds, the pixel preset of Appendix G).
//!
//! `--set` entries go to the configs that have their section (`run.*` and `diffusion.*` to
//! all, `cyclegan.*` or `ugatit.*` to one); every arm runs at every seed. Each run's
//! summary.json holds its per-direction FID/KID of translated test images against the target
//! domain's test images; the experiment collects them into results.json / results.md (per
//! run, then mean ± sd over seeds per arm) and a side-by-side grid per direction of the first
//! seed: input | CycleGAN | U-GAT-IT | U-GAT-IT + Diffusion-GAN.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::error::{GanError, IoContext, Result};
use crate::io::write_atomic;
use crate::train::{step_seed, TrainConfig};

/// One run's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// cyclegan, ugatit or ugatit-diffusion.
    pub arm: String,
    /// Seed of the run.
    pub seed: u64,
    /// Steps trained.
    pub steps: u64,
    /// FID / KID of a2b (translated test A vs test B) and b2a.
    pub fid_a2b: Option<f64>,
    /// KID mean, a2b.
    pub kid_a2b: Option<f64>,
    /// FID, b2a.
    pub fid_b2a: Option<f64>,
    /// KID mean, b2a.
    pub kid_b2a: Option<f64>,
    /// Final T of the diffusion controller (Diffusion-GAN arm).
    pub final_t: Option<u64>,
    /// Final T of the latent controller (LaDiffGAN arms with the latent GAN loss).
    #[serde(default)]
    pub final_t_latent: Option<u64>,
    /// Wall-clock training seconds.
    pub train_seconds: f64,
}

impl Row {
    /// The row of a run's summary.json.
    pub fn of(arm: &str, seed: u64, steps: u64, s: &serde_json::Value) -> Self {
        let f = |k: &str| s.get(k).and_then(|v| v.as_f64());
        Row {
            arm: arm.to_string(),
            seed,
            steps,
            fid_a2b: f("fid_a2b"),
            kid_a2b: f("kid_a2b"),
            fid_b2a: f("fid_b2a"),
            kid_b2a: f("kid_b2a"),
            final_t: s.get("final_T").and_then(|v| v.as_u64()),
            final_t_latent: s.get("final_T_latent").and_then(|v| v.as_u64()),
            train_seconds: f("train_seconds").unwrap_or(f64::NAN),
        }
    }
}

/// The arms' base configs (the shipped 64 px emoji configs).
pub fn built_in() -> Result<Vec<(String, TrainConfig)>> {
    let load = |text: &str, name: &str| TrainConfig::from_toml_str(text, Path::new(name));
    let cg = load(
        include_str!("../../../../configs/cyclegan-emoji.toml"),
        "configs/cyclegan-emoji.toml",
    )?;
    let ug = load(
        include_str!("../../../../configs/ugatit-emoji.toml"),
        "configs/ugatit-emoji.toml",
    )?;
    let mut dg = ug.clone();
    dg.diffusion.enabled = true;
    dg.run.name = "ugatit-diffusion-emoji".into();
    Ok(vec![
        ("cyclegan".into(), cg),
        ("ugatit".into(), ug),
        ("ugatit-diffusion".into(), dg),
    ])
}

/// Applies `--set` entries to each arm whose config has the section (see module docs).
pub fn with_overrides(
    arms: Vec<(String, TrainConfig)>,
    sets: &[String],
) -> Result<Vec<(String, TrainConfig)>> {
    arms.into_iter()
        .map(|(arm, cfg)| {
            let own: Vec<String> = sets
                .iter()
                .filter(|s| {
                    let section = s.split(['.', '=']).next().unwrap_or("");
                    ["run", "diffusion", "task"].contains(&section)
                        || cfg.task.kind.sections().contains(&section)
                })
                .cloned()
                .collect();
            let cfg = TrainConfig::from_toml_with(&cfg.to_toml(), Path::new(&arm), &own)?;
            Ok((arm, cfg))
        })
        .collect()
}

/// Trains every arm at every seed into `out/<arm>-s<seed>` and writes the tables and grids.
pub fn run(
    arms: &[(String, TrainConfig)],
    seeds: &[u64],
    out: &Path,
    show_progress: bool,
) -> Result<Vec<Row>> {
    if seeds.is_empty() {
        return Err(GanError::config("--seeds", "needs at least one seed"));
    }
    std::fs::create_dir_all(out).at(out)?;
    let mut rows = Vec::new();
    for &seed in seeds {
        for (arm, base) in arms {
            let mut cfg = base.clone();
            cfg.run.seed = seed;
            cfg.validate()?;
            let dir = out.join(format!("{arm}-s{seed}"));
            let label = format!("{arm} s{seed}");
            let s = super::train_or_resume(&cfg, &dir, show_progress.then_some(label.as_str()))?;
            rows.push(Row::of(arm, seed, cfg.run.steps, &s));
        }
    }
    write_grids(arms, seeds[0], out)?;
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    write_atomic(&out.join("results.md"), table_markdown(&rows).as_bytes())?;
    Ok(rows)
}

/// grid_<dir>.png: 8 test inputs spread over the split, one row each: input and every arm's
/// translation (runs of `seed`).
pub(crate) fn write_grids(arms: &[(String, TrainConfig)], seed: u64, out: &Path) -> Result<()> {
    let Some(d) = arms.first().map(|(_, c)| match c.task.kind {
        crate::train::config::TaskKind::Cyclegan => c.cyclegan.data.clone(),
        _ => c.ugatit.data.clone(),
    }) else {
        return Ok(());
    };
    if !d.has_split("test") {
        return Ok(());
    }
    let (ta, tb) = d.load("test", d.image_size)?;
    let runs: Vec<crate::run::Run> = arms
        .iter()
        .map(|(arm, _)| crate::run::Run::open(&out.join(format!("{arm}-s{seed}"))))
        .collect::<Result<_>>()?;
    for (dir, x) in [("a2b", ta), ("b2a", tb)] {
        let n = x.size()[0];
        let k = n.min(8);
        let idx = Tensor::from_slice(&(0..k).map(|i| i * n / k).collect::<Vec<i64>>());
        let x = x.index_select(0, &idx);
        let mut cols = vec![x.shallow_clone()];
        for r in &runs {
            tch::manual_seed(step_seed(seed, u64::MAX - 5));
            cols.push(r.translator()?.translate(&x, dir)?.to_device(Device::Cpu));
        }
        let w = cols.len() as i64;
        let grid = crate::data::grid(&Tensor::stack(&cols, 1).flatten(0, 1), w, 2)?;
        crate::data::write_png(&out.join(format!("grid_{dir}.png")), &grid)?;
    }
    Ok(())
}

/// Mean and sample standard deviation of the present values.
fn mean_sd(v: &[Option<f64>]) -> Option<(f64, f64, usize)> {
    let xs: Vec<f64> = v.iter().flatten().copied().collect();
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    Some((m, sd, xs.len()))
}

/// The results as Markdown: one row per run, then mean ± sd per arm.
pub fn table_markdown(rows: &[Row]) -> String {
    let opt = |v: Option<f64>, d: usize| v.map_or("—".into(), |v| format!("{v:.d$}"));
    let mut s = String::from(
        "| arm | seed | steps | FID a2b | KID a2b | FID b2a | KID b2a | final T | final latent T | train s |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
            r.arm,
            r.seed,
            r.steps,
            opt(r.fid_a2b, 2),
            opt(r.kid_a2b, 4),
            opt(r.fid_b2a, 2),
            opt(r.kid_b2a, 4),
            r.final_t.map_or("—".into(), |t| t.to_string()),
            r.final_t_latent.map_or("—".into(), |t| t.to_string()),
            r.train_seconds
        );
    }
    s += "\n| arm | seeds | FID a2b | KID a2b | FID b2a | KID b2a |\n|---|---|---|---|---|---|\n";
    let mut arms: Vec<&str> = Vec::new();
    for r in rows {
        if !arms.contains(&r.arm.as_str()) {
            arms.push(&r.arm);
        }
    }
    for arm in arms {
        let of: Vec<&Row> = rows.iter().filter(|r| r.arm == arm).collect();
        let cell = |get: fn(&Row) -> Option<f64>, d: usize| {
            let v: Vec<Option<f64>> = of.iter().map(|r| get(r)).collect();
            mean_sd(&v).map_or("—".into(), |(m, sd, _)| format!("{m:.d$} ± {sd:.d$}"))
        };
        s += &format!(
            "| {arm} | {} | {} | {} | {} | {} |\n",
            of.len(),
            cell(|r| r.fid_a2b, 2),
            cell(|r| r.kid_a2b, 4),
            cell(|r| r.fid_b2a, 2),
            cell(|r| r.kid_b2a, 4)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arms differ only where they should (U-GAT-IT ± diffusion); `--set` reaches the
    /// configs that own the section; a 2-step run of every arm on a tiny set writes the runs,
    /// grids and tables.
    #[test]
    fn arms_overrides_and_outputs() {
        let _rng = crate::test_rng_lock();
        let arms = built_in().unwrap();
        let names: Vec<&str> = arms.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(names, vec!["cyclegan", "ugatit", "ugatit-diffusion"]);
        let (ug, dg) = (&arms[1].1, &arms[2].1);
        assert!(!ug.diffusion.enabled && dg.diffusion.enabled);
        let mut same = dg.clone();
        same.diffusion.enabled = false;
        same.run.name = ug.run.name.clone();
        assert_eq!(&same, ug, "nothing else differs");
        let root = std::env::temp_dir().join(format!("ganlab-exp-tr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("data");
        crate::tasks::translation_tests::write_domains(&data, "train", 3, 32);
        crate::tasks::translation_tests::write_domains(&data, "test", 3, 32);
        let d = data.display();
        let sets: Vec<String> = [
            "run.steps=2".to_string(),
            "run.device=\"cpu\"".into(),
            "run.eval_samples=4".into(),
            format!("cyclegan.data.dir=\"{d}\""),
            format!("ugatit.data.dir=\"{d}\""),
            "cyclegan.data.image_size=32".into(),
            "cyclegan.data.load_size=32".into(),
            "ugatit.data.image_size=32".into(),
            "ugatit.data.load_size=32".into(),
            "cyclegan.generator.ngf=4".into(),
            "cyclegan.discriminator.ndf=4".into(),
            "cyclegan.discriminator.n_layers=2".into(),
            "ugatit.generator.ngf=4".into(),
            "ugatit.discriminator.ndf=4".into(),
            "ugatit.discriminator.global_layers=5".into(),
            "ugatit.discriminator.local_layers=4".into(),
        ]
        .into();
        let arms = with_overrides(arms, &sets).unwrap();
        assert!(arms.iter().all(|(_, c)| c.run.steps == 2));
        assert_eq!(arms[0].1.cyclegan.generator.ngf, 4);
        assert_eq!(arms[2].1.ugatit.generator.ngf, 4);
        let out = root.join("out");
        let rows = run(&arms, &[0], &out, false).unwrap();
        assert_eq!(rows.len(), 3);
        for f in [
            "grid_a2b.png",
            "grid_b2a.png",
            "results.md",
            "results.json",
            "ugatit-diffusion-s0/report.html",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        assert!(rows[2].final_t.is_some() && rows[1].final_t.is_none());
        assert!(table_markdown(&rows).contains("| ugatit-diffusion | 1 |"));
        std::fs::remove_dir_all(root).unwrap();
    }
}
