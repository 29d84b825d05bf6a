//! Minimal SVG charts: scatter plots and line plots with axes, ticks and a legend.
//! SVG keeps the report self-contained (inlined in report.html) and needs no raster code.

use std::fmt::Write;

/// One named series of (x, y) points with a CSS colour.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// CSS colour.
    pub color: String,
}

impl Series {
    /// A series from points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, color: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            points,
            color: color.into(),
        }
    }
}

struct Frame {
    w: f64,
    h: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

const ML: f64 = 52.0;
const MR: f64 = 12.0;
const MT: f64 = 26.0;
const MB: f64 = 34.0;

impl Frame {
    fn px(&self, x: f64) -> f64 {
        ML + (x - self.x0) / (self.x1 - self.x0) * (self.w - ML - MR)
    }
    fn py(&self, y: f64) -> f64 {
        self.h - MB - (y - self.y0) / (self.y1 - self.y0) * (self.h - MT - MB)
    }
}

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + 1e-9 * span {
        out.push(if t.abs() < 1e-12 * span { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Escapes text for SVG/HTML.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn bounds(series: &[Series], fixed: Option<(f64, f64, f64, f64)>) -> (f64, f64, f64, f64) {
    if let Some(b) = fixed {
        return b;
    }
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if !x0.is_finite() {
        return (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    (x0, x1, y0 - pad, y1 + pad)
}

fn frame_svg(
    f: &Frame,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    out: &mut String,
) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#,
        w = f.w,
        h = f.h
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="16" text-anchor="middle" font-size="13">{}</text>"#,
        f.w / 2.0,
        escape(title)
    );
    let _ = write!(
        out,
        r##"<rect x="{ML}" y="{MT}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        f.w - ML - MR,
        f.h - MT - MB
    );
    for t in nice_ticks(f.x0, f.x1, 6) {
        let x = f.px(t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#444"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            f.h - MB,
            f.h - MB + 4.0,
            f.h - MB + 15.0,
            fmt_tick(t)
        );
    }
    for t in nice_ticks(f.y0, f.y1, 5) {
        let y = f.py(t);
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{y:.1}" x2="{ML}" y2="{y:.1}" stroke="#444"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            ML - 4.0,
            ML - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (ML + f.w - MR) / 2.0,
        f.h - 4.0,
        escape(xlabel)
    );
    let _ = write!(
        out,
        r#"<text transform="translate(12,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (MT + f.h - MB) / 2.0,
        escape(ylabel)
    );
    for (i, s) in series.iter().enumerate() {
        let y = MT + 12.0 + 14.0 * i as f64;
        let x = f.w - MR - 8.0;
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" text-anchor="end">{}</text>"#,
            x,
            y - 9.0,
            s.color,
            x - 4.0,
            y,
            escape(&s.name)
        );
    }
}

/// A scatter plot.
#[derive(Debug, Clone)]
pub struct ScatterPlot {
    /// Title.
    pub title: String,
    /// Series drawn in order (later on top).
    pub series: Vec<Series>,
    /// Fixed (x0, x1, y0, y1), or None to fit the data.
    pub bounds: Option<(f64, f64, f64, f64)>,
    /// Size in pixels.
    pub size: (f64, f64),
}

impl ScatterPlot {
    /// Renders the SVG document.
    pub fn to_svg(&self) -> String {
        let (x0, x1, y0, y1) = bounds(&self.series, self.bounds);
        let f = Frame {
            w: self.size.0,
            h: self.size.1,
            x0,
            x1,
            y0,
            y1,
        };
        let mut out = String::new();
        frame_svg(&f, &self.title, "x₁", "x₂", &self.series, &mut out);
        for s in &self.series {
            let _ = write!(out, r#"<g fill="{}" fill-opacity="0.55">"#, s.color);
            for (x, y) in &s.points {
                if x.is_finite() && y.is_finite() && *x >= x0 && *x <= x1 && *y >= y0 && *y <= y1 {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="1.6"/>"#,
                        f.px(*x),
                        f.py(*y)
                    );
                }
            }
            out.push_str("</g>");
        }
        out.push_str("</svg>");
        out
    }
}

/// A line plot.
#[derive(Debug, Clone)]
pub struct LinePlot {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub xlabel: String,
    /// y-axis label.
    pub ylabel: String,
    /// Series.
    pub series: Vec<Series>,
    /// Fixed (x0, x1, y0, y1), or None to fit the data.
    pub bounds: Option<(f64, f64, f64, f64)>,
    /// Size in pixels.
    pub size: (f64, f64),
}

impl LinePlot {
    /// Renders the SVG document.
    pub fn to_svg(&self) -> String {
        let (x0, x1, y0, y1) = bounds(&self.series, self.bounds);
        let f = Frame {
            w: self.size.0,
            h: self.size.1,
            x0,
            x1,
            y0,
            y1,
        };
        let mut out = String::new();
        frame_svg(
            &f,
            &self.title,
            &self.xlabel,
            &self.ylabel,
            &self.series,
            &mut out,
        );
        for s in &self.series {
            let mut d = String::new();
            let mut pen = false;
            for (x, y) in &s.points {
                if x.is_finite() && y.is_finite() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen { "L" } else { "M" },
                        f.px(*x),
                        f.py(y.clamp(y0, y1))
                    );
                    pen = true;
                } else {
                    pen = false;
                }
            }
            let _ = write!(
                out,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
                s.color
            );
        }
        out.push_str("</svg>");
        out
    }
}

/// Lays SVG panels side by side (rows of `per_row`) in one SVG document.
pub fn grid(panels: &[String], panel_size: (f64, f64), per_row: usize) -> String {
    let rows = panels.len().div_ceil(per_row.max(1));
    let (w, h) = (panel_size.0 * per_row as f64, panel_size.1 * rows as f64);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#
    );
    for (i, p) in panels.iter().enumerate() {
        let (x, y) = (
            (i % per_row) as f64 * panel_size.0,
            (i / per_row) as f64 * panel_size.1,
        );
        let inner = p.replacen("<svg ", &format!(r#"<svg x="{x}" y="{y}" "#), 1);
        out.push_str(&inner);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_documents() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(nice_ticks(-4.5, 4.5, 6), vec![-4.0, -2.0, 0.0, 2.0, 4.0]);
        let p = LinePlot {
            title: "a<b".into(),
            xlabel: "step".into(),
            ylabel: "T".into(),
            series: vec![Series::new(
                "T",
                vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)],
                "red",
            )],
            bounds: None,
            size: (300.0, 200.0),
        };
        let svg = p.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>") && svg.contains("a&lt;b"));
        let d = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 2, "a NaN breaks the line: {d}");
        let s = ScatterPlot {
            title: "s".into(),
            series: vec![Series::new("g", vec![(0.0, 0.0), (9.0, 9.0)], "blue")],
            bounds: Some((-1.0, 1.0, -1.0, 1.0)),
            size: (200.0, 200.0),
        };
        assert_eq!(
            s.to_svg().matches("<circle").count(),
            1,
            "points outside the bounds are dropped"
        );
        assert_eq!(
            grid(&[svg.clone(), svg], (300.0, 200.0), 2)
                .matches("<svg")
                .count(),
            3
        );
    }
}
