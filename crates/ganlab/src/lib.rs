//! ganlab: a GAN laboratory on libtorch (tch). Diffusion-GAN at its heart (the
//! [`diffusion`] augment stage), the classic objectives, trainers that write
//! reproducible, resumable run directories, verified metrics and reports.
//!
//! Layout: `data` (samplers), `nn` (layers), `models` (G/D families), `objectives`
//! (losses), `diffusion` (Diffusion-GAN), `train` (loop, optimizers, checkpoints),
//! `metrics`, `report` (plots, HTML), `experiments` (reproductions of the papers' claims).

pub mod bench;
pub mod data;
pub mod diffusion;
pub mod error;
pub mod experiments;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod objectives;
pub mod refine;
pub mod report;
pub mod rng;
pub mod train;

pub use error::{GanError, Result};

/// libtorch's default generator is process-global and tests run on parallel threads:
/// tests that need reproducible draws hold this lock.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
