//! `ganlab experiment refine-*`: every latent-refinement method on one trained run, side by
//! side at equal budget (same particles, same seed, same number of updates), with quality
//! before and after (latent-optimization-wgf.txt Table 2's comparison, on our models).
//! The configs are configs/refine-*.toml (built in under their names).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{GanError, Result};
use crate::io::write_atomic;
use crate::refine::run::{refine_run, write_outputs, KernelSpace, Quality, RunOptions};
use crate::refine::{Condition, RefineConfig};
use crate::train::{TrainConfig, Trainer};

/// Built-in experiment configs: (experiment name, TOML text).
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "refine-gaussians25",
        include_str!("../../../../configs/refine-gaussians25.toml"),
    ),
    (
        "refine-mnist",
        include_str!("../../../../configs/refine-mnist.toml"),
    ),
];

/// A refinement comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefineExperiment {
    /// The trained run to refine; trained from `train_config` first when it does not exist.
    pub run: PathBuf,
    /// Train config of the base run.
    pub train_config: PathBuf,
    /// Particles.
    pub n: i64,
    /// Seed of codes, real samples and noise (shared by all methods).
    pub seed: u64,
    /// Condition (`none`, `class:K`, `inpaint:I[:mask]`).
    #[serde(default = "none")]
    pub condition: String,
    /// Kernel features (`d`, `data`, `mnist-cnn`).
    #[serde(default = "d")]
    pub kernel: String,
    /// σ of the inpainting observation model.
    #[serde(default = "sigma")]
    pub inpaint_sigma: f64,
    /// The methods, each with its hyper-parameters; all must have the same `steps`.
    pub refine: Vec<RefineConfig>,
}

fn none() -> String {
    "none".into()
}
fn d() -> String {
    "d".into()
}
fn sigma() -> f64 {
    0.1
}

/// One row of the result table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Method name.
    pub method: String,
    /// ε.
    pub step_size: f64,
    /// Updates.
    pub steps: usize,
    /// Quality before (the same for every row).
    pub before: Quality,
    /// Quality after.
    pub after: Quality,
    /// Refinement wall time.
    pub seconds: f64,
}

impl RefineExperiment {
    /// Parses and checks a config (`origin` names it in errors).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let e: Self = toml::from_str(text).map_err(|e| GanError::ConfigParse {
            path: PathBuf::from(origin),
            message: e.message().to_string(),
        })?;
        if e.refine.is_empty() {
            return Err(GanError::config("refine", "list at least one method"));
        }
        for r in &e.refine {
            r.validate()?;
            if r.steps != e.refine[0].steps {
                return Err(GanError::config(
                    "refine.steps",
                    format!(
                        "every method gets the same budget: {} has {} steps, {} has {}",
                        e.refine[0].method.name(),
                        e.refine[0].steps,
                        r.method.name(),
                        r.steps
                    ),
                ));
            }
        }
        Condition::parse(&e.condition)?;
        KernelSpace::parse(&e.kernel)?;
        Ok(e)
    }

    /// The built-in config of experiment `name`.
    pub fn built_in(name: &str) -> Option<Result<Self>> {
        BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Self::from_toml_str(text, n))
    }
}

/// Runs the comparison: trains the base run if missing, refines with each method into
/// `out/<method>`, writes results.md and results.json into `out` (created; must be new).
pub fn run(e: &RefineExperiment, out: &Path, data_dir: &Path, quiet: bool) -> Result<Vec<Row>> {
    crate::io::create_output_dir(out)?;
    if !e.run.join("checkpoints").is_dir() {
        let cfg = TrainConfig::load(&e.train_config)?;
        if !quiet {
            eprintln!(
                "training the base run {} ({} steps of {})",
                e.run.display(),
                cfg.run.steps,
                e.train_config.display()
            );
        }
        let mut t = Trainer::new(cfg, &e.run)?;
        if quiet {
            t.run(&mut crate::progress::Silent)?;
        } else {
            t.run(&mut crate::progress::ProgressBar::new("train base"))?;
        }
    }
    let condition = Condition::parse(&e.condition)?;
    let kernel = KernelSpace::parse(&e.kernel)?;
    let mut rows = Vec::new();
    for r in &e.refine {
        let t = crate::run::Run::open(&e.run)?;
        let o = RunOptions {
            refine: r.clone(),
            n: e.n,
            seed: e.seed,
            condition: condition.clone(),
            inpaint_sigma: e.inpaint_sigma,
            kernel,
            data_dir: data_dir.to_path_buf(),
        };
        if !quiet {
            eprintln!("refining with {} ({} steps)", r.method.name(), r.steps);
        }
        let outcome = refine_run(&t, &o)?;
        write_outputs(&out.join(r.method.name()), &outcome, &t)?;
        rows.push(Row {
            method: r.method.name().into(),
            step_size: r.step_size,
            steps: r.steps,
            before: outcome.report.before.clone(),
            after: outcome.report.after.clone(),
            seconds: outcome.report.seconds,
        });
    }
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    write_atomic(&out.join("results.md"), table_markdown(&rows).as_bytes())?;
    Ok(rows)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

/// The comparison as a Markdown table: the unrefined generator first, then each method.
pub fn table_markdown(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let toy = first.before.modes.is_some();
    let mut s = if toy {
        "| method | steps | ε | modes | high-quality | mode KL | mean d | class acc. | s |\n|---|---|---|---|---|---|---|---|---|\n".to_string()
    } else {
        "| method | steps | ε | FID (mnist-cnn) | precision | recall | mean d | class acc. | known-pixel MSE | s |\n|---|---|---|---|---|---|---|---|---|---|\n".to_string()
    };
    let line = |name: &str, steps: String, eps: String, q: &Quality, secs: String| {
        if let Some(m) = &q.modes {
            format!(
                "| {name} | {steps} | {eps} | {}/{} | {:.3} | {:.3} | {:.3} | {} | {secs} |\n",
                m.modes_covered,
                m.n_modes,
                m.high_quality_fraction,
                m.mode_kl,
                q.critic,
                opt(q.class_accuracy, 3)
            )
        } else {
            format!(
                "| {name} | {steps} | {eps} | {} | {} | {} | {:.3} | {} | {} | {secs} |\n",
                opt(q.fid, 2),
                opt(q.precision, 3),
                opt(q.recall, 3),
                q.critic,
                opt(q.class_accuracy, 3),
                opt(q.known_pixel_mse, 4)
            )
        }
    };
    s += &line(
        "G (no refinement)",
        "0".into(),
        "—".into(),
        &first.before,
        "—".into(),
    );
    for r in rows {
        s += &line(
            &r.method,
            r.steps.to_string(),
            format!("{}", r.step_size),
            &r.after,
            format!("{:.1}", r.seconds),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in configs parse and give every method the same budget; a config with
    /// unequal budgets is refused naming the field.
    #[test]
    fn built_in_configs_parse() {
        for (name, _) in BUILT_IN {
            let e = RefineExperiment::built_in(name).unwrap().unwrap();
            assert_eq!(e.refine.len(), 4, "{name}: all four methods");
        }
        let bad = "run = \"r\"\ntrain_config = \"c\"\nn = 10\nseed = 0\n\
                   [[refine]]\nmethod = \"kde\"\nsteps = 5\n\
                   [[refine]]\nmethod = \"dot\"\nsteps = 6\n";
        let e = RefineExperiment::from_toml_str(bad, "bad").unwrap_err();
        assert!(e.to_string().contains("refine.steps"), "{e}");
    }
}
