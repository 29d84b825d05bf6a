//! ganlab: a GAN laboratory on libtorch (tch). Diffusion-GAN at its heart (the
//! [`diffusion`] augment stage), the classic objectives, trainers that write
//! reproducible, resumable run directories, verified metrics and reports.
//!
//! Layout: ground floor `io`, `device`, `progress`, `rng`; `data` (samplers), `nn` (layers),
//! `models` (networks), `objectives` (losses), `diffusion` (Diffusion-GAN's augment stage),
//! `tasks` (training methods), `train` (the generic loop, optimizers, checkpoints), `run`
//! (the run handle), `metrics`, `report` (plots, HTML), `experiments` (reproductions of the
//! papers' claims).

pub mod bench;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod dist;
pub mod error;
pub mod experiments;
pub mod fuzz;
pub mod io;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod objectives;
pub mod progress;
pub mod refine;
pub mod report;
pub mod rng;
pub mod run;
pub mod tasks;
pub mod train;

pub use error::{GanError, Result};

/// libtorch's default generator is process-global and tests run on parallel threads: every
/// test that draws from it (a `rand`/`randn`, a network's initialisation, a training run)
/// holds this lock, not only those that need reproducible draws — an unlocked draw in one
/// test shifts the stream of a locked one (CI failed on exactly that, 2026-12-07).
#[cfg(test)]
pub(crate) fn test_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps freed tensor memory in the process for reuse instead of returning it to the OS.
///
/// libtorch allocates CPU tensors with `malloc`. glibc serves blocks of 32 MiB and more (a
/// [65536, 128] f32 activation) with a fresh `mmap` each time and unmaps them when freed, so
/// every such tensor pays a page fault per 4 KiB page on first touch: measured here, a
/// LeakyReLU on [65536, 128] took 22 ms out of place vs 2.1 ms in place, and 3.0 ms once
/// blocks were reused. This turns off glibc's `mmap` path and heap trimming (`mallopt`
/// M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB), which `ganlab` does at start-up; the cost is a
/// peak RSS that stays at its high-water mark (`ganlab bench` reports it). Set
/// `GANLAB_MALLOC=default` to leave glibc's settings alone. Does nothing off glibc.
#[allow(unsafe_code)] // the one FFI call into glibc, see SAFETY below
pub fn tune_allocator() {
    if std::env::var("GANLAB_MALLOC").is_ok_and(|v| v == "default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_MAX: std::ffi::c_int = -4;
        // SAFETY: mallopt only sets allocator parameters; called before any tensor exists.
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
