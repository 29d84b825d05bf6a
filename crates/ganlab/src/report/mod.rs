//! Plots (SVG, no dependencies), .npy output and the self-contained HTML run report.

pub mod html;
pub mod npy;
pub mod svg;
pub mod tensorboard;

pub use html::Report;
pub use svg::{LinePlot, ScatterPlot, Series};

use tch::{Kind, Tensor};

use crate::train::{StepStats, Summary, Trainer};

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

/// A curve to draw from the logged statistics: (legend, field accessor, colour).
pub type Field<'a> = (&'a str, fn(&StepStats) -> f64, &'a str);

/// A line plot of fields of the logged statistics.
pub fn curve(history: &[StepStats], title: &str, ylabel: &str, fields: &[Field]) -> String {
    LinePlot {
        title: title.into(),
        xlabel: "step".into(),
        ylabel: ylabel.into(),
        series: fields
            .iter()
            .map(|(name, f, color)| {
                Series::new(
                    *name,
                    history.iter().map(|s| (s.step as f64, f(s))).collect(),
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
pub fn d_outputs_curve(history: &[StepStats], title: &str) -> String {
    curve(
        history,
        title,
        "mean D score",
        &[
            ("D(real)", |s| s.d_real, REAL),
            ("D(fake)", |s| s.d_fake, FAKE),
        ],
    )
}

/// The report.html of a run.
pub fn run_report(t: &Trainer, summary: &Summary, scatter: &str) -> String {
    let h = t.history();
    let mut r = Report::new(&format!("ganlab run: {}", t.config().run.name));
    let opt = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
    r.heading("Summary").table(
        &["metric", "value"],
        &[
            vec!["steps".into(), summary.steps.to_string()],
            vec![
                "modes covered".into(),
                opt(summary
                    .modes_covered
                    .zip(summary.n_modes)
                    .map(|(a, b)| format!("{a} / {b}"))),
            ],
            vec![
                "high-quality fraction (within 3σ)".into(),
                opt(summary.high_quality_fraction.map(|v| format!("{v:.4}"))),
            ],
            vec![
                "mode KL from uniform (nats)".into(),
                opt(summary.mode_kl.map(|v| format!("{v:.4}"))),
            ],
            vec!["final T".into(), summary.final_t.to_string()],
            vec![
                "training time (s)".into(),
                format!("{:.1}", summary.train_seconds),
            ],
            vec!["device".into(), summary.device.clone()],
        ],
    );
    r.heading("Samples").figure(scatter);
    r.heading("Training curves")
        .figure(&curve(
            h,
            "losses",
            "loss",
            &[("D", |s| s.loss_d, THIRD), ("G", |s| s.loss_g, FAKE)],
        ))
        .figure(&d_outputs_curve(h, "discriminator outputs"))
        .figure(&curve(
            h,
            "adaptive diffusion: T",
            "T",
            &[("T", |s| s.t_max as f64, THIRD)],
        ))
        .figure(&curve(
            h,
            "overfitting measure r_d",
            "r_d",
            &[("r_d", |s| s.r_d.unwrap_or(f64::NAN), THIRD)],
        ));
    let mh = t.mode_history();
    if !mh.is_empty() {
        r.figure(
            &LinePlot {
                title: "modes covered".into(),
                xlabel: "step".into(),
                ylabel: "modes".into(),
                series: vec![Series::new(
                    "covered",
                    mh.iter()
                        .map(|(s, m)| (*s as f64, m.modes_covered as f64))
                        .collect(),
                    FAKE,
                )],
                bounds: None,
                size: (400.0, 260.0),
            }
            .to_svg(),
        );
    }
    r.heading("Config").pre(&t.config().to_toml());
    r.render()
}
