//! Devices: parsing "auto" / "cpu" / "cuda" / "cuda:N", checking they exist, and comparing
//! two spellings of one device ("cuda" and "cuda:0" are the same device).

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
