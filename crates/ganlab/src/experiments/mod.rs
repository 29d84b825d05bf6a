//! Reproductions of the seed papers' claims, run by `ganlab experiment NAME`.

pub mod gaussians25;
pub mod js_toy;
pub mod ladiffgan;
pub mod limited_data;
#[cfg(test)]
mod limited_data_tests;
pub mod multi_attribute;
pub mod pix2pix;
pub mod refine;
pub mod simgan_digits;
pub mod text2image;
pub mod translation;

/// Names accepted by `ganlab experiment`.
pub const NAMES: &[&str] = &[
    "gaussians25",
    "js-toy",
    "refine-gaussians25",
    "refine-mnist",
    "pix2pix-openmoji",
    "translation-emoji",
    "ladiffgan-emoji",
    "multi-attribute-emoji",
    "limited-data",
    "simgan-digits",
    "text2image-emoji",
];

use std::path::Path;

use crate::error::{GanError, Result};
use crate::train::{TrainConfig, Trainer};

/// Mean and sample standard deviation (0 for a single value) of `v` (not empty).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

/// Trains `cfg` into `dir`, or picks up what is there: a run finished (summary.json) at the
/// config's step budget is not trained again and its summary is returned; an interrupted one (checkpoints, no summary)
/// resumes to the config's step budget, and so does one finished short of it (its last
/// checkpoint is its final step; a run finished beyond the budget is an error, never
/// reported as a shorter one); a missing one starts. `label` names the progress
/// bar (None: silent). Experiments that chain stages use it to resume any stage already done.
/// A run in `dir` made from a different config (other than its step budget) is an error, not
/// reused: an experiment re-run with other `--set` values must not report the old runs.
pub fn train_or_resume(
    cfg: &TrainConfig,
    dir: &Path,
    label: Option<&str>,
) -> Result<serde_json::Value> {
    if dir.is_dir()
        && !dir.join("summary.json").is_file()
        && !dir.join("checkpoints/state.json").is_file()
    {
        discard_unstarted(dir)?;
    }
    if dir.join("config.toml").is_file() {
        check_same_config(cfg, dir)?;
    }
    let summary = dir.join("summary.json");
    if summary.is_file() {
        let text = std::fs::read_to_string(&summary)
            .map_err(|e| GanError::Input(format!("{}: {e}", summary.display())))?;
        let done: serde_json::Value = serde_json::from_str(&text)?;
        let steps = done["steps"].as_u64();
        if steps == Some(cfg.run.steps) {
            return Ok(done);
        }
        if steps.is_none_or(|s| s > cfg.run.steps) {
            return Err(GanError::Input(format!(
                "{} holds a run finished at step {}, beyond this budget of {} steps; \
                 remove it or choose another --out",
                dir.display(),
                done["steps"],
                cfg.run.steps
            )));
        }
    }
    let mut t = if dir.join("checkpoints").is_dir() {
        Trainer::resume(dir, Some(cfg.run.steps), None)?
    } else {
        Trainer::new(cfg.clone(), dir)?
    };
    match label {
        Some(l) => t.run(&mut crate::progress::ProgressBar::new(l)),
        None => t.run(&mut crate::progress::Silent),
    }
}

/// Removes the run directory `dir` of a run stopped before its first checkpoint (nothing to
/// resume), so it can start again; only when it holds nothing but what the loop writes
/// before then (config.toml, the logs, an empty checkpoints/ and samples/): anything else
/// is an error, never deleted.
fn discard_unstarted(dir: &Path) -> Result<()> {
    let known = [
        crate::io::LOCK_FILE,
        "config.toml",
        "metrics.jsonl",
        "eval.jsonl",
        "checkpoints",
        "samples",
    ];
    for e in
        std::fs::read_dir(dir).map_err(|e| GanError::Input(format!("{}: {e}", dir.display())))?
    {
        let name = e
            .map_err(|e| GanError::Input(format!("{}: {e}", dir.display())))?
            .file_name();
        let name = name.to_string_lossy();
        let empty_dir = |d: &str| {
            std::fs::read_dir(dir.join(d))
                .map(|mut r| r.next().is_none())
                .unwrap_or(false)
        };
        if !known.contains(&name.as_ref()) || (name == "checkpoints" && !empty_dir("checkpoints")) {
            return Err(GanError::Input(format!(
                "{} has no checkpoint to resume but holds `{name}`; remove it or choose another --out",
                dir.display()
            )));
        }
    }
    std::fs::remove_dir_all(dir).map_err(|e| GanError::Input(format!("{}: {e}", dir.display())))
}

/// Errors when the run in `dir` was configured otherwise than `cfg`, naming the first line
/// that differs; the step budget may differ (the run resumes to `cfg`'s budget).
fn check_same_config(cfg: &TrainConfig, dir: &Path) -> Result<()> {
    let mut stored = crate::train::load_run_config(dir)?;
    stored.run.steps = cfg.run.steps;
    let (old, new) = (stored.to_toml(), cfg.to_toml());
    if old == new {
        return Ok(());
    }
    let diff = old
        .lines()
        .zip(new.lines())
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("the run has `{a}`, this experiment asks for `{b}`"))
        .unwrap_or_else(|| "the configs differ in length".into());
    Err(GanError::Input(format!(
        "{} holds a run made from another config ({diff}); remove it or choose another --out",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished run is reused for the same config and budget, trained on to a longer
    /// budget (ending where a run trained for it from the start ends), refused for a shorter
    /// one, and refused, naming the differing line, for another config.
    #[test]
    fn finished_run_is_reused_only_for_its_config() {
        let _rng = crate::test_rng_lock();
        let tmp = |n: &str| {
            let d = std::env::temp_dir().join(format!("ganlab-{n}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            d
        };
        let (dir, straight) = (tmp("reuse"), tmp("reuse-straight"));
        let mut cfg = crate::train::tests::tiny_config(3);
        train_or_resume(&cfg, &dir, None).unwrap();
        cfg.run.steps = 5;
        let longer = train_or_resume(&cfg, &dir, None).unwrap();
        let again = train_or_resume(&cfg, &dir, None).unwrap();
        assert_eq!(
            (longer["steps"].as_u64(), &longer["train_seconds"]),
            (Some(5), &again["train_seconds"])
        );
        // The extended run's last logged losses equal a 5-step run's (wall time aside).
        train_or_resume(&cfg, &straight, None).unwrap();
        let last = |d: &Path| {
            let rows = crate::train::log::truncate_log(&d.join("metrics.jsonl"), 5).unwrap();
            let mut r = rows.last().unwrap().clone();
            r.scalars.0.retain(|(k, _)| k != "wall_s");
            (r.step, r.scalars.0)
        };
        assert_eq!(last(&dir), last(&straight));
        cfg.run.steps = 4;
        let err = train_or_resume(&cfg, &dir, None).unwrap_err().to_string();
        assert!(err.contains("finished at step 5"), "{err}");
        cfg.run.steps = 5;
        cfg.run.seed += 1;
        let err = train_or_resume(&cfg, &dir, None).unwrap_err().to_string();
        assert!(
            err.contains("another config") && err.contains("seed"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&straight);
    }
}
