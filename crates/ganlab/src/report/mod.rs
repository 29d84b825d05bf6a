//! Plots (SVG, no dependencies), .npy output and the self-contained HTML run report.

pub mod html;
pub mod npy;
pub mod svg;
pub mod tensorboard;

pub use html::Report;
pub use svg::{LinePlot, ScatterPlot, Series};

use tch::{Kind, Tensor};

use crate::tasks::{Curve, Section};
use crate::train::LogRow;

/// Colours used throughout the reports.
pub const REAL: &str = "#9a9a9a";
/// Generated samples.
pub const FAKE: &str = "#1f5fbf";
/// A third series.
pub const THIRD: &str = "#d9480f";

fn points(t: &Tensor) -> Vec<(f64, f64)> {
    let v: Vec<f64> = Vec::try_from(
        t.to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .reshape([-1]),
    )
    .unwrap_or_default();
    v.chunks_exact(2).map(|c| (c[0], c[1])).collect()
}

/// Real vs generated 2-D points on the 25-Gaussians frame [−6, 6]².
pub fn scatter_real_fake(real: &Tensor, fake: &Tensor, title: &str) -> String {
    ScatterPlot {
        title: title.into(),
        series: vec![
            Series::new("real", points(real), REAL),
            Series::new("generated", points(fake), FAKE),
        ],
        bounds: Some((-6.0, 6.0, -6.0, 6.0)),
        size: (360.0, 360.0),
    }
    .to_svg()
}

/// A line plot of the named scalars of logged rows (rows without a value are skipped).
pub fn curve(rows: &[LogRow], title: &str, ylabel: &str, series: &[(&str, &str)]) -> String {
    LinePlot {
        title: title.into(),
        xlabel: "step".into(),
        ylabel: ylabel.into(),
        series: series
            .iter()
            .map(|(name, color)| {
                Series::new(
                    *name,
                    rows.iter()
                        .map(|r| (r.step as f64, r.get(name)))
                        .filter(|(_, v)| v.is_finite())
                        .collect(),
                    *color,
                )
            })
            .collect(),
        bounds: None,
        size: (400.0, 260.0),
    }
    .to_svg()
}

/// D(real) and D(fake) over training (Fig. 5, bottom row).
pub fn d_outputs_curve(rows: &[LogRow], title: &str) -> String {
    curve(
        rows,
        title,
        "mean D score",
        &[("d_real", REAL), ("d_fake", FAKE)],
    )
}

/// Everything a run's report.html shows; the report never sees the trainer.
#[derive(Debug)]
pub struct RunReport<'a> {
    /// The run's name.
    pub title: &'a str,
    /// summary.json.
    pub summary: &'a serde_json::Value,
    /// The task's sections (samples, translations, ...).
    pub sections: &'a [Section],
    /// Logged step rows.
    pub rows: &'a [LogRow],
    /// Logged evaluations.
    pub evals: &'a [LogRow],
    /// The task's curves (scalars not in any get a plot of their own).
    pub curves: &'a [Curve],
    /// Fixed-probe grids under samples/, in step order.
    pub grids: &'a [String],
    /// The resolved config.
    pub config_toml: &'a str,
}

/// Scalar names of `rows` in first-seen order.
fn scalar_names(rows: &[LogRow]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        for (k, _) in &r.scalars.0 {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

/// The report.html of a run.
pub fn run_report(rr: &RunReport) -> String {
    let mut r = Report::new(&format!("ganlab run: {}", rr.title));
    let rows: Vec<Vec<String>> = rr
        .summary
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::Null => "n/a".to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) if n.is_f64() => {
                            format!("{:.4}", n.as_f64().unwrap_or(f64::NAN))
                        }
                        other => other.to_string(),
                    };
                    vec![k.replace('_', " "), text]
                })
                .collect()
        })
        .unwrap_or_default();
    r.heading("Summary").table(&["metric", "value"], &rows);
    for s in rr.sections {
        r.heading(&s.heading).figure(&s.html);
    }
    if !rr.grids.is_empty() {
        r.heading("Fixed-probe grids during training");
        for n in rr.grids {
            let step = n.trim_start_matches("step-").trim_end_matches(".png");
            r.figure(&format!(
                "<figure><img src=\"samples/{n}\" alt=\"grid at step {step}\"><figcaption>step {}</figcaption></figure>",
                step.trim_start_matches('0')
            ));
        }
    }
    r.heading("Training curves");
    let colors = [THIRD, FAKE, REAL, "#2b8a3e", "#862e9c"];
    let mut drawn: Vec<&str> = Vec::new();
    for c in rr.curves {
        let series: Vec<(&str, &str)> = c
            .series
            .iter()
            .zip(colors.iter().cycle())
            .map(|(n, col)| (*n, *col))
            .collect();
        r.figure(&curve(rr.rows, c.title, c.ylabel, &series));
        drawn.extend(c.series.iter());
    }
    for name in scalar_names(rr.rows) {
        if name != "wall_s" && !drawn.contains(&name.as_str()) {
            r.figure(&curve(rr.rows, &name, &name, &[(&name, FAKE)]));
        }
    }
    if !rr.evals.is_empty() {
        r.heading("Evaluations");
        for name in scalar_names(rr.evals) {
            r.figure(&curve(rr.evals, &name, &name, &[(&name, FAKE)]));
        }
    }
    r.heading("Config").pre(rr.config_toml);
    r.render()
}
