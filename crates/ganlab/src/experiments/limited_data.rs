//! Diffusion-GAN §4.3 (limited data, Table 3) and Table 8 (DCGAN / SNGAN ± Diffusion-GAN) at
//! CPU scale, on Fashion-MNIST (`scripts/fetch-data fashion-mnist`).
//!
//! Arms: for each training-set size n (the first n images, `data.idx.max_images`; default
//! 200, 1,000, 5,000) DCGAN vanilla vs Diffusion-DCGAN (configs/fashion-dcgan-diffusion.toml
//! with `diffusion.enabled` off / on), and on the full set (Table 8) the same pair plus SNGAN
//! vs Diffusion-SNGAN (configs/fashion-sngan-diffusion.toml) and Projected GAN vs Diffusion
//! ProjectedGAN (§4.2, noise on frozen features: configs/fashion-projected-diffusion.toml),
//! each at every seed, equal budget within a pair. Every finished run is scored by FID with the FID Inception:
//! `fid_samples` samples of the EMA generator against the whole test split (10,000 images;
//! its statistics are cached in the experiment directory), and its D(real)/D(fake) curves are
//! drawn. Runs and scores are resumable: a checkpoint already scored with the same sample
//! count (`fid-step-N.json` in its run directory) is not scored again; a finished run extended
//! to more steps (a larger `run.steps`) is scored at its new final step.
//!
//! `--set experiment.fid_steps=[5000,10000]` also scores the kept checkpoints of those steps
//! (same sample count, cached in `fid-step-N.json`; `run.keep_checkpoints` is raised so that
//! they are kept), for FID over training: where a vanilla run starts to degrade.
//!
//! Every scored checkpoint also gets D's overfitting probe ([`crate::metrics::overfit`]): D's
//! mean output on (up to) 1,000 of its training images, 1,000 test images and 1,000 samples,
//! and StyleGAN2-ADA's r_v — memorisation seen directly, where D(real)/D(fake) only suggest it.
//!
//! `--set experiment.subsets=[200,1000]` (`[]`: none), `--set experiment.fid_samples=2000`,
//! `--set experiment.table8=false` (or a list such as `[projected]`) and `--set
//! experiment.methods=[diffusion]` (one arm of each pair: a diffusion preset ablated into a new
//! directory without training the vanilla baseline again) change the plan; every other `--set`
//! applies to every arm.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::mean_sd;
use crate::error::{GanError, IoContext, Result};
use crate::io::write_atomic;
use crate::metrics::extractors::{extract_all, FeatureExtractor};
use crate::metrics::features::{frechet_distance, FeatureStats};
use crate::metrics::overfit::{d_overfit, DOverfit};
use crate::report::{d_outputs_curve, Report};
use crate::train::log::LogRow;
use crate::train::TrainConfig;

/// One arm: a config and where it sits in the tables.
#[derive(Debug, Clone)]
pub struct Arm {
    /// "dcgan", "sngan" or "projected".
    pub family: String,
    /// "vanilla" or "diffusion".
    pub method: String,
    /// Training images (0: the whole split).
    pub images: i64,
    /// The run's config (seed set per run).
    pub cfg: TrainConfig,
}

/// What the experiment runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The arms, in table order.
    pub arms: Vec<Arm>,
    /// Generated images scored per run.
    pub fid_samples: i64,
    /// Earlier steps whose checkpoints are scored as well (ascending, each a multiple of
    /// `run.checkpoint_every` below `run.steps`).
    pub fid_steps: Vec<u64>,
}

/// One scored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// "dcgan", "sngan" or "projected".
    pub family: String,
    /// "vanilla" or "diffusion".
    pub method: String,
    /// Training images (0: all).
    pub images: i64,
    /// run.seed.
    pub seed: u64,
    /// FID against the test split (None without an extractor).
    pub fid: Option<f64>,
    /// Generated images scored.
    pub fid_samples: i64,
    /// (step, FID) of the checkpoints of `experiment.fid_steps`.
    #[serde(default)]
    pub fid_at: Vec<(u64, f64)>,
    /// (step, D's overfitting probe) at each scored checkpoint, the final step last.
    #[serde(default)]
    pub d_probe: Vec<(u64, DOverfit)>,
    /// Mean sigmoid D score on real (clean or diffused) samples over the last quarter of
    /// the logged steps; and on fakes.
    pub d_real: f64,
    /// See `d_real`.
    pub d_fake: f64,
    /// T at the end (0 for vanilla).
    pub final_t: f64,
    /// Training seconds.
    pub train_seconds: f64,
}

/// The items of a `[a,b]` list written in a `--set` value (`[]`: none).
fn list(value: &str) -> Vec<String> {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The built-in plan, with `sets` applied (see module docs).
pub fn plan(sets: &[String]) -> Result<Plan> {
    let load = |text: &str, name: &str| TrainConfig::from_toml_str(text, Path::new(name));
    let dcgan = load(
        include_str!("../../../../configs/fashion-dcgan-diffusion.toml"),
        "configs/fashion-dcgan-diffusion.toml",
    )?;
    let sngan = load(
        include_str!("../../../../configs/fashion-sngan-diffusion.toml"),
        "configs/fashion-sngan-diffusion.toml",
    )?;
    let projected = load(
        include_str!("../../../../configs/fashion-projected-diffusion.toml"),
        "configs/fashion-projected-diffusion.toml",
    )?;
    let full_families = ["dcgan", "sngan", "projected"];
    let (mut subsets, mut fid_samples) = (vec![200i64, 1000, 5000], 5000i64);
    let mut full: Vec<String> = full_families.iter().map(|f| f.to_string()).collect();
    let all_methods = ["vanilla", "diffusion"];
    let mut methods: Vec<String> = all_methods.iter().map(|m| m.to_string()).collect();
    let mut fid_steps: Vec<u64> = Vec::new();
    let mut own = Vec::new();
    for s in sets {
        let Some(rest) = s.strip_prefix("experiment.") else {
            own.push(s.clone());
            continue;
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        let bad = |m: &str| GanError::config(format!("experiment.{key}"), m.to_string());
        match key.trim() {
            "subsets" => {
                subsets = list(value)
                    .iter()
                    .map(|v| v.parse::<i64>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| bad("must be a list of image counts, e.g. [200,1000] or []"))?;
                if subsets
                    .iter()
                    .any(|&n| !(1..=crate::data::MAX_IMAGES).contains(&n))
                {
                    return Err(bad(&format!(
                        "every count must be in [1, {}]",
                        crate::data::MAX_IMAGES
                    )));
                }
            }
            "fid_samples" => {
                fid_samples = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (2..=100_000).contains(n))
                    .ok_or_else(|| bad("must be in [2, 100000]"))?;
            }
            "table8" => {
                full = match value.trim() {
                    "true" => full_families.iter().map(|f| f.to_string()).collect(),
                    "false" => Vec::new(),
                    v => list(v),
                };
                if let Some(f) = full.iter().find(|f| !full_families.contains(&f.as_str())) {
                    return Err(bad(&format!(
                        "must be true, false or a list of dcgan, sngan, projected; got {f:?}"
                    )));
                }
            }
            "methods" => {
                methods = list(value);
                if methods.is_empty() || methods.iter().any(|m| !all_methods.contains(&m.as_str()))
                {
                    return Err(bad(&format!(
                        "must be a non-empty list of vanilla, diffusion; got {value:?}"
                    )));
                }
            }
            "fid_steps" => {
                fid_steps = list(value)
                    .iter()
                    .map(|v| v.parse::<u64>().ok().filter(|&s| s >= 1))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("must be a list of steps ≥ 1, e.g. [5000,10000] or []"))?;
                fid_steps.sort_unstable();
                fid_steps.dedup();
            }
            _ => {
                return Err(bad(
                    "unknown; known: subsets, fid_samples, fid_steps, table8, methods",
                ))
            }
        }
    }
    let with = |cfg: &TrainConfig, family: &str, method: &str, images: i64| -> Result<Arm> {
        let mut c = TrainConfig::from_toml_with(&cfg.to_toml(), Path::new(family), &own)?;
        c.diffusion.enabled = method == "diffusion";
        c.data.idx.max_images = images;
        let n = images_label(images);
        c.run.name = format!("fashion-{family}-{method}-n{n}");
        keep_scored_steps(&mut c, &fid_steps)?;
        Ok(Arm {
            family: family.into(),
            method: method.into(),
            images,
            cfg: c,
        })
    };
    // Each chosen method once, in the canonical order (a repeated name must not double a row).
    let chosen: Vec<&str> = all_methods
        .into_iter()
        .filter(|m| methods.iter().any(|c| c == m))
        .collect();
    let mut arms = Vec::new();
    for &n in &subsets {
        for m in &chosen {
            arms.push(with(&dcgan, "dcgan", m, n)?);
        }
    }
    for (family, cfg) in [
        ("dcgan", &dcgan),
        ("sngan", &sngan),
        ("projected", &projected),
    ] {
        if full.iter().any(|f| f == family) {
            for m in &chosen {
                arms.push(with(cfg, family, m, 0)?);
            }
        }
    }
    Ok(Plan {
        arms,
        fid_samples,
        fid_steps,
    })
}

/// Checks that every step of `experiment.fid_steps` gets a checkpoint under `c` (a multiple
/// of `run.checkpoint_every` below `run.steps`) and raises `run.keep_checkpoints` so that the
/// earliest one is still kept at the end: checkpoints are written at every multiple of
/// `checkpoint_every` and at the last step, and only the newest `keep_checkpoints` stay.
fn keep_scored_steps(c: &mut TrainConfig, steps: &[u64]) -> Result<()> {
    let (last, every) = (c.run.steps, c.run.checkpoint_every);
    if let Some(&s) = steps.iter().find(|&&s| s >= last || s % every != 0) {
        return Err(GanError::config(
            "experiment.fid_steps",
            format!(
                "step {s} gets no earlier checkpoint: each step must be a multiple of \
                 run.checkpoint_every ({every}) below run.steps ({last}); the final step is \
                 always scored"
            ),
        ));
    }
    if let Some(&first) = steps.first() {
        let written_from_first =
            (last / every - first / every + 1) as usize + usize::from(last % every != 0);
        c.run.keep_checkpoints = c.run.keep_checkpoints.max(written_from_first);
    }
    Ok(())
}

/// "all" for the whole split (0), else the image count.
fn images_label(images: i64) -> String {
    if images == 0 {
        "all".into()
    } else {
        images.to_string()
    }
}

/// The directory of `arm` at `seed` under `out`.
fn run_dir(out: &Path, arm: &Arm, seed: u64) -> PathBuf {
    let n = images_label(arm.images);
    out.join(format!("{}-{}-n{n}-s{seed}", arm.family, arm.method))
}

/// The logged rows of a run.
fn log_rows(dir: &Path) -> Result<Vec<LogRow>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).at(&path)?;
    Ok(text.lines().filter_map(LogRow::from_json).collect())
}

/// Inception statistics of the test split of `cfg`'s data, cached in `out`.
fn real_stats(cfg: &TrainConfig, ex: &dyn FeatureExtractor, out: &Path) -> Result<FeatureStats> {
    let set = crate::data::load_image_set(&cfg.data.idx.dir, crate::data::Split::Test)?;
    let key = crate::metrics::eval::content_hash(
        format!(
            "{} {:?} {}",
            ex.name(),
            cfg.data.idx.dir,
            set.images.size()[0]
        )
        .as_bytes(),
    );
    let cache = out.join(format!("real_test_stats-{key:016x}.safetensors"));
    if cache.is_file() {
        return FeatureStats::load(&cache);
    }
    let (f, _) = extract_all(ex, &set.images, &mut crate::progress::Silent)?;
    let stats = FeatureStats::from_features(&f)?;
    stats.save(&cache)?;
    Ok(stats)
}

/// Images of each kind the overfitting probe scores (fewer training images when the subset
/// is smaller).
const PROBE_IMAGES: i64 = 1000;

/// The probe's training images (the first of the run's subset) and held-out images (the
/// first of the test split).
fn probe_sets(cfg: &TrainConfig) -> Result<(Tensor, Tensor)> {
    let dir = &cfg.data.idx.dir;
    let train = crate::tasks::gan_data::first_images(
        crate::data::load_image_set(dir, cfg.data.idx.split()?)?,
        cfg.data.idx.max_images,
    )?
    .images;
    let held = crate::data::load_image_set(dir, crate::data::Split::Test)?.images;
    // A copy, so that the whole loaded split is not kept alive by a view while the arm trains.
    let first = |x: Tensor| {
        let n = x.size()[0].min(PROBE_IMAGES);
        x.narrow(0, 0, n).copy()
    };
    Ok((first(train), first(held)))
}

/// D's overfitting probe of the run in `dir` at its kept checkpoint of `step` (as [`score`]).
fn probe(dir: &Path, step: u64, sets: &(Tensor, Tensor)) -> Result<DOverfit> {
    let run = crate::run::Run::open_at(dir, Some(step))?;
    d_overfit(run.generative()?, &sets.0, &sets.1, PROBE_IMAGES, 0x0BE5)
}

/// FID of `n` samples of the run in `dir` at its kept checkpoint of `step` against `real`,
/// cached in `dir/fid-step-N.json` (keyed by the step, so the cache of a run's old final step
/// is never taken for a later one).
fn score(
    dir: &Path,
    step: u64,
    n: i64,
    ex: &dyn FeatureExtractor,
    real: &FeatureStats,
) -> Result<f64> {
    let cache = dir.join(format!("fid-step-{step}.json"));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        if v["samples"].as_i64() == Some(n) {
            if let Some(f) = v["fid"].as_f64() {
                return Ok(f);
            }
        }
    }
    let run = crate::run::Run::open_at(dir, Some(step))?;
    let gen = run.generative()?;
    // Samples in chunks of 500 (codes of seed s + chunk index), moved to the CPU.
    let chunks: Vec<Tensor> = (0..n)
        .step_by(500)
        .map(|lo| {
            let k = 500.min(n - lo);
            let _g = tch::no_grad_guard();
            gen.sample(k, 0x5EED + lo as u64).to_device(Device::Cpu)
        })
        .collect();
    let (f, _) = extract_all(ex, &Tensor::cat(&chunks, 0), &mut crate::progress::Silent)?;
    let fid = frechet_distance(real, &FeatureStats::from_features(&f)?)?;
    write_atomic(
        &cache,
        serde_json::json!({"samples": n, "fid": fid})
            .to_string()
            .as_bytes(),
    )?;
    Ok(fid)
}

/// Trains (or resumes) and scores every arm at every seed into `out`; writes results.json,
/// results.md, curves.svg and report.html. `ex`: the FID extractor (None: no FID).
pub fn run(
    plan: &Plan,
    seeds: &[u64],
    out: &Path,
    ex: Option<&dyn FeatureExtractor>,
    show_progress: bool,
) -> Result<Vec<Row>> {
    if seeds.is_empty() {
        return Err(GanError::config("--seeds", "needs at least one seed"));
    }
    std::fs::create_dir_all(out).at(out)?;
    let real = match (ex, plan.arms.first()) {
        (Some(ex), Some(a)) => Some(real_stats(&a.cfg, ex, out)?),
        _ => None,
    };
    let (mut rows, mut curves) = (Vec::new(), Vec::new());
    for arm in &plan.arms {
        // The probe's images depend on the arm's data only, not on the seed.
        let sets = probe_sets(&arm.cfg)?;
        for &seed in seeds {
            let mut cfg = arm.cfg.clone();
            cfg.run.seed = seed;
            let dir = run_dir(out, arm, seed);
            let label = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let summary =
                super::train_or_resume(&cfg, &dir, label.as_deref().filter(|_| show_progress))?;
            let log = log_rows(&dir)?;
            let tail = &log[log.len() * 3 / 4..];
            let mean =
                |k: &str| tail.iter().map(|r| r.get(k)).sum::<f64>() / tail.len().max(1) as f64;
            let (mut fid, mut fid_at) = (None, Vec::new());
            if let (Some(ex), Some(real)) = (ex, &real) {
                fid = Some(score(&dir, cfg.run.steps, plan.fid_samples, ex, real)?);
                for &s in &plan.fid_steps {
                    fid_at.push((s, score(&dir, s, plan.fid_samples, ex, real)?));
                }
            }
            let mut d_probe = Vec::new();
            for &s in &plan.fid_steps {
                d_probe.push((s, probe(&dir, s, &sets)?));
            }
            d_probe.push((cfg.run.steps, probe(&dir, cfg.run.steps, &sets)?));
            if seed == seeds[0] {
                let n = images_label(arm.images);
                curves.push(d_outputs_curve(
                    &log,
                    &format!("{} {}, n = {n}: D(real), D(fake)", arm.family, arm.method),
                ));
            }
            rows.push(Row {
                family: arm.family.clone(),
                method: arm.method.clone(),
                images: arm.images,
                seed,
                fid,
                fid_samples: plan.fid_samples,
                fid_at,
                d_probe,
                d_real: mean("d_real"),
                d_fake: mean("d_fake"),
                final_t: summary["final_T"].as_f64().unwrap_or(0.0),
                train_seconds: summary["train_seconds"].as_f64().unwrap_or(f64::NAN),
            });
        }
    }
    let fig = crate::report::svg::grid(&curves, (400.0, 300.0), 2);
    write_atomic(&out.join("curves.svg"), fig.as_bytes())?;
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    let md = markdown(&rows);
    write_atomic(&out.join("results.md"), md.as_bytes())?;
    let mut r = Report::new("Limited data and Table 8: vanilla vs Diffusion-GAN on Fashion-MNIST");
    r.pre(&md).figure(&fig);
    write_atomic(&out.join("report.html"), r.render().as_bytes())?;
    Ok(rows)
}

/// Per-run rows, then per (family, images) the FID mean ± sd over seeds of both methods.
pub fn markdown(rows: &[Row]) -> String {
    let n = images_label;
    let mut s = String::from(
        "| family | images | method | seed | FID | D(real) | D(fake) | final T | seconds |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {:.0} |\n",
            r.family,
            n(r.images),
            r.method,
            r.seed,
            r.fid.map_or("–".into(), |f| format!("{f:.1}")),
            r.d_real,
            r.d_fake,
            r.final_t,
            r.train_seconds
        );
    }
    // The paired summary, only where both arms of a (family, images) pair have an FID (a
    // one-method run, `experiment.methods`, has none).
    let mut summary = String::new();
    let mut keys: Vec<(String, i64)> = rows.iter().map(|r| (r.family.clone(), r.images)).collect();
    keys.dedup();
    for (family, images) in keys {
        let fids = |m: &str| -> Vec<f64> {
            rows.iter()
                .filter(|r| r.family == family && r.images == images && r.method == m)
                .filter_map(|r| r.fid)
                .collect()
        };
        let (v, d) = (fids("vanilla"), fids("diffusion"));
        if v.is_empty() || d.is_empty() {
            continue;
        }
        let ((mv, sv), (md, sd)) = (mean_sd(&v), mean_sd(&d));
        summary += &format!(
            "| {family} | {} | {mv:.1} ± {sv:.1} | {md:.1} ± {sd:.1} | {:+.1} (n = {}) |\n",
            n(images),
            md - mv,
            v.len().min(d.len())
        );
    }
    if !summary.is_empty() {
        s += "\n| family | images | vanilla FID | diffusion FID | difference |\n|---|---|---|---|---|\n";
        s += &summary;
    }
    s + &over_training(rows) + &probe_table(rows)
}

/// D's overfitting probe at every scored checkpoint, one row per (run, step).
fn probe_table(rows: &[Row]) -> String {
    if rows.iter().all(|r| r.d_probe.is_empty()) {
        return String::new();
    }
    let mut s = String::from(
        "\nD on its training images, held-out test images and samples (clean, t = 0; r_v = \
         (D_train − D_held) / (D_train − D_fake) on raw outputs)\n\n\
         | family | images | method | seed | step | D(train) | D(held-out) | D(fake) | r_v |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        for (step, p) in &r.d_probe {
            s += &format!(
                "| {} | {} | {} | {} | {step} | {:.3} | {:.3} | {:.3} | {:.2} |\n",
                r.family,
                images_label(r.images),
                r.method,
                r.seed,
                p.d_train,
                p.d_held,
                p.d_fake,
                p.r_v
            );
        }
    }
    s
}

/// FID at the scored earlier steps and at the end, one row per run (empty without
/// `experiment.fid_steps`).
fn over_training(rows: &[Row]) -> String {
    let Some(steps) = rows.iter().map(|r| &r.fid_at).find(|a| !a.is_empty()) else {
        return String::new();
    };
    let cols: Vec<String> = steps.iter().map(|(s, _)| format!("step {s}")).collect();
    let mut s = format!(
        "\nFID over training\n\n| family | images | method | seed | {} | final |\n|---|---|---|---|{}---|\n",
        cols.join(" | "),
        "---|".repeat(cols.len())
    );
    for r in rows {
        let at: Vec<String> = r.fid_at.iter().map(|(_, f)| format!("{f:.1}")).collect();
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.family,
            images_label(r.images),
            r.method,
            r.seed,
            at.join(" | "),
            r.fid.map_or("–".into(), |f| format!("{f:.1}"))
        );
    }
    s
}
