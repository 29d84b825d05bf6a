//! Metrics. One metric per file; [`toy`] scores 2-D samples against known modes.

pub mod toy;

pub use toy::{mode_stats, ModeStats};
