//! Metrics. One metric per file; [`toy`] scores 2-D samples against known modes.

pub mod eval;
pub mod extractors;
pub mod features;
pub mod overfit;
pub mod retrieval;
pub mod toy;

pub use extractors::{extract_all, FeatureExtractor, InceptionFid, MnistCnn};
pub use features::{frechet_distance, inception_score, kid, prdc, FeatureStats, MeanStd, Prdc};
pub use toy::{mode_stats, ModeStats};
