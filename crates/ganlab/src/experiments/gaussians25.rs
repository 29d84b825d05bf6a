//! Diffusion-GAN Fig. 5: vanilla GAN vs Diffusion-GAN on 25 Gaussians, same networks
//! (MLPs, two 128-unit hidden layers, LeakyReLU), same seed, same step budget. Writes a
//! side-by-side figure (samples; D(real)/D(fake) over training), a table and both run
//! directories.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::io::write_atomic;
use crate::progress::ProgressBar;
use crate::report::{d_outputs_curve, Report};
use crate::tasks::gan::{scatter_svg, Summary};
use crate::train::{TrainConfig, Trainer};

/// One row of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// "vanilla" or "diffusion".
    pub method: String,
    /// run.seed of both arms.
    pub seed: u64,
    /// Final summary of the run.
    pub summary: Summary,
}

/// The built-in base config of the experiment: `ganlab train`'s built-in run
/// ([`TrainConfig::built_in`]), so that the default run and the experiment's Diffusion-GAN
/// arm are one config.
pub fn built_in() -> Result<TrainConfig> {
    Ok(TrainConfig::built_in())
}

/// The two configs compared: the default Diffusion-GAN config and the same with the
/// diffusion stage disabled.
pub fn configs(base: &TrainConfig) -> [(String, TrainConfig); 2] {
    let mut vanilla = base.clone();
    vanilla.diffusion.enabled = false;
    vanilla.run.name = "gaussians25-vanilla".into();
    let mut diffusion = base.clone();
    diffusion.diffusion.enabled = true;
    diffusion.run.name = "gaussians25-diffusion".into();
    [("vanilla".into(), vanilla), ("diffusion".into(), diffusion)]
}

/// Runs both arms at each of `seeds` (run directories `<method>` for one seed,
/// `<method>-s<seed>` for several) and writes figure.svg (samples of every run; D(real),
/// D(fake) of the first seed), results.json, results.md and report.html into `out`.
pub fn run(base: &TrainConfig, seeds: &[u64], out: &Path, show_progress: bool) -> Result<Vec<Row>> {
    std::fs::create_dir_all(out).at(out)?;
    let mut rows = Vec::new();
    let mut panels = Vec::new();
    let mut curves = Vec::new();
    let runs = seeds.iter().flat_map(|&seed| {
        configs(base).map(move |(method, mut cfg)| {
            cfg.run.seed = seed;
            (method, seed, cfg)
        })
    });
    for (method, seed, cfg) in runs {
        let dir = match seeds.len() {
            1 => out.join(&method),
            _ => out.join(format!("{method}-s{seed}")),
        };
        let mut t = Trainer::new(cfg, &dir)?;
        let summary = Summary::from_value(if show_progress {
            t.run(&mut ProgressBar::new(&method))?
        } else {
            t.run(&mut crate::progress::Silent)?
        })?;
        let gen = t
            .task()
            .generative()
            .expect("the GAN task generates from noise");
        let samples = gen.sample(t.config().run.eval_samples, t.config().run.seed);
        let title = format!(
            "{method}, seed {seed}: {}/25 modes",
            summary.modes_covered.unwrap_or(0)
        );
        panels.push(scatter_svg(t.config(), &samples, &title)?);
        if seed == seeds[0] {
            curves.push(d_outputs_curve(
                t.rows(),
                &format!("{method}, seed {seed}: D(real), D(fake)"),
            ));
        }
        rows.push(Row {
            method,
            seed,
            summary,
        });
    }
    let scatter_panels: Vec<String> = panels
        .iter()
        .map(|p| {
            p.replace(
                "width=\"360\" height=\"360\"",
                "width=\"400\" height=\"400\"",
            )
        })
        .collect();
    let mut all = scatter_panels;
    all.extend(curves.iter().cloned());
    let fig = crate::report::svg::grid(&all, (400.0, 400.0), 2);
    write_atomic(&out.join("figure.svg"), fig.as_bytes())?;
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    let md = table_markdown(&rows);
    write_atomic(&out.join("results.md"), md.as_bytes())?;
    let mut r = Report::new("25 Gaussians: vanilla GAN vs Diffusion-GAN (Fig. 5)");
    r.table(
        &[
            "method",
            "seed",
            "modes covered",
            "high-quality fraction",
            "mode KL",
            "final T",
            "seconds",
        ],
        &table_rows(&rows),
    )
    .figure(&fig);
    write_atomic(&out.join("report.html"), r.render().as_bytes())?;
    Ok(rows)
}

fn table_rows(rows: &[Row]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            let s = &r.summary;
            vec![
                r.method.clone(),
                r.seed.to_string(),
                format!(
                    "{}/{}",
                    s.modes_covered.unwrap_or(0),
                    s.n_modes.unwrap_or(0)
                ),
                format!("{:.4}", s.high_quality_fraction.unwrap_or(0.0)),
                format!("{:.4}", s.mode_kl.unwrap_or(f64::NAN)),
                s.final_t.to_string(),
                format!("{:.1}", s.train_seconds),
            ]
        })
        .collect()
}

/// The comparison as a Markdown table.
pub fn table_markdown(rows: &[Row]) -> String {
    let mut s = String::from("| method | seed | modes covered | high-quality fraction | mode KL | final T | seconds |\n|---|---|---|---|---|---|---|\n");
    for r in table_rows(rows) {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in base parses; the arms differ in diffusion.enabled (and names) only; a
    /// short run writes the figure, the table and both run directories.
    #[test]
    fn arms_differ_only_in_diffusion_and_outputs_are_written() {
        let base = built_in().unwrap();
        assert_eq!(base.run.steps, 60000);
        assert_eq!(
            (base.objective.r1_gamma, base.diffusion.d_target),
            (0.1, 0.3)
        );
        let [(_, mut v), (_, mut d)] = configs(&base);
        assert!(!v.diffusion.enabled && d.diffusion.enabled);
        v.diffusion.enabled = true;
        v.run.name.clear();
        d.run.name.clear();
        assert_eq!(v, d);

        let mut small = base.clone();
        small.run.steps = 20;
        small.run.eval_every = 10;
        small.run.eval_samples = 200;
        let out = std::env::temp_dir().join(format!("ganlab-g25-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let rows = run(&small, &[0, 1], &out, false).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].seed, rows[3].seed), (0, 1));
        for f in ["figure.svg", "results.json", "results.md", "report.html"] {
            assert!(out.join(f).is_file(), "{f}");
        }
        assert!(out.join("vanilla-s0/summary.json").is_file());
        assert!(out.join("diffusion-s1/summary.json").is_file());
        std::fs::remove_dir_all(&out).unwrap();
    }
}
