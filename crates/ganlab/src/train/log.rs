//! Named scalars and where they go. A task's step and evaluation report
//! [`Scalars`] (StyleGAN2-ADA's `training_stats.report(name, value)` idea: the loop does not
//! know their names); the loop writes them as rows of `metrics.jsonl` (steps) and
//! `eval.jsonl` (evaluations), to TensorBoard when asked, and keeps them for the report.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::report::tensorboard::EventWriter;

/// Named scalars in the order a task reports them; NaN is written as null.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scalars(pub Vec<(String, f64)>);

impl Scalars {
    /// No scalars.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name = value` (builder style).
    pub fn with(mut self, name: &str, value: f64) -> Self {
        self.push(name, value);
        self
    }

    /// Adds `name = value`.
    pub fn push(&mut self, name: &str, value: f64) {
        self.0.push((name.to_string(), value));
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: Scalars) {
        self.0.extend(other.0);
    }

    /// The value called `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The first non-finite value among those whose names `must_be_finite` accepts.
    pub fn first_non_finite(&self, must_be_finite: impl Fn(&str) -> bool) -> Option<(&str, f64)> {
        self.0
            .iter()
            .find(|(k, v)| !v.is_finite() && must_be_finite(k))
            .map(|(k, v)| (k.as_str(), *v))
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One logged row: a step and its scalars.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// Training steps completed.
    pub step: u64,
    /// The scalars.
    pub scalars: Scalars,
}

impl LogRow {
    /// The value called `name` (NaN when absent or null).
    pub fn get(&self, name: &str) -> f64 {
        self.scalars.get(name).unwrap_or(f64::NAN)
    }

    /// One JSON object, `step` first, then the scalars in order (non-finite → null).
    pub fn to_json(&self) -> String {
        let mut s = format!("{{\"step\":{}", self.step);
        for (k, v) in &self.scalars.0 {
            let key = serde_json::to_string(k).unwrap_or_default();
            let val = if v.is_finite() {
                serde_json::to_string(v).unwrap_or_else(|_| "null".into())
            } else {
                "null".into()
            };
            s += &format!(",{key}:{val}");
        }
        s + "}"
    }

    /// Parses a line written by [`LogRow::to_json`] (None for anything else).
    pub fn from_json(line: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let obj = v.as_object()?;
        let step = obj.get("step")?.as_u64()?;
        let scalars = obj
            .iter()
            .filter(|(k, _)| *k != "step")
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        Some(Self {
            step,
            scalars: Scalars(scalars),
        })
    }
}

/// A JSONL log of rows, appended as training goes.
#[derive(Debug)]
pub struct JsonlLog {
    path: PathBuf,
    file: std::fs::File,
}

impl JsonlLog {
    /// Opens `path` for appending (created if missing).
    pub fn append(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .at(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one row.
    pub fn write(&mut self, row: &LogRow) -> Result<()> {
        writeln!(self.file, "{}", row.to_json()).at(&self.path)
    }

    /// Flushes to the OS.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().at(&self.path)
    }
}

/// The rows of the log at `path` up to step `last` (inclusive), and rewrites the file to
/// hold just those lines (a run that died after its checkpoint logged steps the weights
/// no longer have). A missing file is an empty log.
pub fn truncate_log(path: &Path, last: u64) -> Result<Vec<LogRow>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut kept = String::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(row) = LogRow::from_json(line).filter(|r| r.step <= last) {
            kept += line;
            kept.push('\n');
            rows.push(row);
        }
    }
    crate::io::write_atomic(path, kept.as_bytes())?;
    Ok(rows)
}

/// Where logged rows go besides memory: the JSONL file and, optionally, TensorBoard (one
/// tag per scalar name).
#[derive(Debug)]
pub struct Sinks {
    jsonl: JsonlLog,
    tensorboard: Option<EventWriter>,
}

impl Sinks {
    /// Appends to `jsonl`; also to TensorBoard event files in `tensorboard` when given.
    pub fn open(jsonl: &Path, tensorboard: Option<&Path>) -> Result<Self> {
        Ok(Self {
            jsonl: JsonlLog::append(jsonl)?,
            tensorboard: tensorboard.map(EventWriter::create).transpose()?,
        })
    }

    /// Writes one row to every sink.
    pub fn write(&mut self, row: &LogRow) -> Result<()> {
        self.jsonl.write(row)?;
        self.write_tensorboard(row)
    }

    /// Writes one row to TensorBoard only (rows kept in a JSONL file of their own).
    pub fn write_tensorboard(&mut self, row: &LogRow) -> Result<()> {
        if let Some(w) = &mut self.tensorboard {
            let pairs: Vec<(&str, f64)> = row
                .scalars
                .0
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect();
            w.scalars(row.step, &pairs)?;
        }
        Ok(())
    }

    /// Flushes every sink.
    pub fn flush(&mut self) -> Result<()> {
        self.jsonl.flush()?;
        if let Some(w) = &mut self.tensorboard {
            w.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_nulls() {
        let row = LogRow {
            step: 3,
            scalars: Scalars::new()
                .with("loss_d", 0.5)
                .with("T", 5.0)
                .with("r_d", f64::NAN),
        };
        let line = row.to_json();
        assert_eq!(line, r#"{"step":3,"loss_d":0.5,"T":5.0,"r_d":null}"#);
        let back = LogRow::from_json(&line).unwrap();
        assert_eq!(back.step, 3);
        assert_eq!(back.get("loss_d"), 0.5);
        assert!(back.get("r_d").is_nan() && back.get("absent").is_nan());
        assert!(LogRow::from_json("{\"loss\":1}").is_none());
    }
}
