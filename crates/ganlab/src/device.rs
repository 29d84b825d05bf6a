//! Devices: parsing "auto" / "cpu" / "cuda" / "cuda:N", checking they exist, and comparing
//! two spellings of one device ("cuda" and "cuda:0" are the same device).
//!
//! A CUDA wheel's `libtorch_cuda.so` registers libtorch's CUDA backend when it is loaded, but
//! no symbol of ours refers to it, so the linker drops it (`readelf -d`: no NEEDED entry) and
//! `tch::Cuda::is_available()` would be false even on a GPU machine. Linking it always costs
//! every process 0.15 s and ~390 MB of resident memory at start (measured: `ganlab --version`
//! 0.21 → 0.36 s, 116 → 510 MB), CPU-only runs included. So it is loaded here, once, when a
//! CUDA device or `auto` is asked for on a machine with an NVIDIA driver (`libcuda.so.1`
//! loads), with `dlopen` from the libtorch the binary was built against.

use tch::Device;

use crate::error::{GanError, Result};

/// Parses "auto", "cpu", "cuda" or "cuda:N".
pub fn parse_device(s: &str) -> Result<Device> {
    let bad = || {
        GanError::config(
            "run.device",
            format!("must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got {s:?}"),
        )
    };
    if s == "auto" || s.starts_with("cuda") {
        load_cuda_backend();
    }
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(bad),
    }
}

/// Loads libtorch's CUDA backend where an NVIDIA driver is installed (module docs); once per
/// process, a no-op elsewhere. Returns whether it is loaded.
pub fn load_cuda_backend() -> bool {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOADED.get_or_init(|| ffi::driver_present() && ffi::load_torch_cuda())
}

/// `dlopen` of the NVIDIA driver and of libtorch_cuda.so.
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{c_char, c_int, c_void, CString};

    const RTLD_LAZY: c_int = 1;
    const RTLD_NOW: c_int = 2;
    const RTLD_GLOBAL: c_int = 0x100;

    extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    }

    fn open(path: &str, flags: c_int) -> bool {
        let Ok(p) = CString::new(path) else {
            return false;
        };
        // SAFETY: a NUL-terminated path; the handle is kept open for the process's life.
        !unsafe { dlopen(p.as_ptr(), flags) }.is_null()
    }

    /// Whether the NVIDIA driver's user-space library loads.
    pub(super) fn driver_present() -> bool {
        open("libcuda.so.1", RTLD_LAZY)
    }

    /// Loads libtorch_cuda.so next to the libtorch of the build (else by name), globally so
    /// that its static initialisers register the CUDA backend.
    pub(super) fn load_torch_cuda() -> bool {
        let by_dir = option_env!("GANLAB_LIBTORCH_LIB")
            .map(|d| format!("{d}/libtorch_cuda.so"))
            .is_some_and(|p| open(&p, RTLD_NOW | RTLD_GLOBAL));
        by_dir || open("libtorch_cuda.so", RTLD_NOW | RTLD_GLOBAL)
    }
}

/// Resolves a device and checks it exists.
pub fn resolve_device(s: &str) -> Result<Device> {
    let d = parse_device(s)?;
    if let Device::Cuda(i) = d {
        if !tch::Cuda::is_available() || i >= tch::Cuda::device_count() as usize {
            return Err(GanError::config(
                "run.device",
                format!("{s:?} requested but no such CUDA device is available"),
            ));
        }
    }
    Ok(d)
}

/// True when two device spellings name the same device on this machine ("cuda" = "cuda:0";
/// "auto" is whatever it resolves to here).
pub fn same_device(a: &str, b: &str) -> Result<bool> {
    Ok(parse_device(a)? == parse_device(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a CUDA wheel, loading libtorch_cuda.so registers the CUDA backend: a CUDA tensor
    /// then fails (on a machine without a GPU) for want of a driver, not with libtorch's
    /// "Could not run ... from the 'CUDA' backend" it gives while the library is not loaded
    /// (checked by hand before this fix: that message, from the binary as linked). Skipped
    /// with a note for a CPU-only libtorch.
    #[test]
    fn cuda_backend_loads_from_the_wheel() {
        let lib = option_env!("GANLAB_LIBTORCH_LIB").map(|d| format!("{d}/libtorch_cuda.so"));
        if !lib.is_some_and(|p| std::path::Path::new(&p).is_file()) {
            eprintln!("skipped: this libtorch has no libtorch_cuda.so");
            return;
        }
        assert!(super::ffi::load_torch_cuda());
        if tch::Cuda::is_available() {
            return;
        }
        let e = tch::Tensor::f_zeros([1], (tch::Kind::Float, Device::Cuda(0)))
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("Could not run"),
            "the CUDA backend is not registered: {e}"
        );
    }

    #[test]
    fn spellings_of_one_device() {
        assert!(same_device("cuda", "cuda:0").unwrap());
        assert!(!same_device("cuda:1", "cuda:0").unwrap());
        assert!(same_device("cpu", "cpu").unwrap());
        assert!(!same_device("cpu", "cuda").unwrap());
        let e = parse_device("tpu").unwrap_err();
        assert!(e.to_string().contains("run.device"), "{e}");
    }
}
