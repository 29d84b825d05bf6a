//! The self-contained HTML run report: summary table, curves and plots inlined as SVG.

use std::fmt::Write;

use super::svg::escape;

/// A report page under construction.
#[derive(Debug, Default)]
pub struct Report {
    title: String,
    body: String,
}

impl Report {
    /// An empty report with a title.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            body: String::new(),
        }
    }

    /// A section heading.
    pub fn heading(&mut self, text: &str) -> &mut Self {
        let _ = write!(self.body, "<h2>{}</h2>", escape(text));
        self
    }

    /// A paragraph of plain text.
    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        let _ = write!(self.body, "<p>{}</p>", escape(text));
        self
    }

    /// A two-column key/value table.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) -> &mut Self {
        self.body.push_str("<table><tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body.push_str("</tr>");
        for r in rows {
            self.body.push_str("<tr>");
            for c in r {
                let _ = write!(self.body, "<td>{}</td>", escape(c));
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</table>");
        self
    }

    /// Inlines an SVG figure.
    pub fn figure(&mut self, svg: &str) -> &mut Self {
        let _ = write!(self.body, "<div class=\"fig\">{svg}</div>");
        self
    }

    /// Preformatted text (e.g. the resolved config).
    pub fn pre(&mut self, text: &str) -> &mut Self {
        let _ = write!(self.body, "<pre>{}</pre>", escape(text));
        self
    }

    /// The full HTML document.
    pub fn render(&self) -> String {
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
             body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}\
             table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
             .fig{{display:inline-block;margin:6px}}pre{{background:#f6f6f6;padding:8px;font-size:12px}}\
             </style></head><body><h1>{t}</h1>{b}</body></html>",
            t = escape(&self.title),
            b = self.body
        )
    }
}
