//! Reproductions of the seed papers' claims, run by `ganlab experiment NAME`.

pub mod gaussians25;
pub mod js_toy;
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
];
