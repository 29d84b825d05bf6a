//! Reproductions of the seed papers' claims, run by `ganlab experiment NAME`.

pub mod gaussians25;
pub mod js_toy;
pub mod ladiffgan;
pub mod pix2pix;
pub mod refine;
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
];

use std::path::Path;

use crate::error::Result;
use crate::train::{TrainConfig, Trainer};

/// Trains `cfg` into `dir`, or picks up what is there: a finished run (summary.json) is not
/// trained again and its summary is returned; an interrupted one (checkpoints, no summary)
/// resumes to the config's step budget; a missing one starts. `label` names the progress
/// bar (None: silent). Experiments that chain stages use it to resume any stage already done.
pub fn train_or_resume(
    cfg: &TrainConfig,
    dir: &Path,
    label: Option<&str>,
) -> Result<serde_json::Value> {
    let summary = dir.join("summary.json");
    if summary.is_file() {
        let text = std::fs::read_to_string(&summary)
            .map_err(|e| crate::error::GanError::Input(format!("{}: {e}", summary.display())))?;
        return Ok(serde_json::from_str(&text)?);
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
