//! NumPy `.npy` (format 1.0) writer and reader for float32 arrays, so 2-D samples can be
//! opened with `numpy.load`.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{GanError, IoContext, Result};

/// Writes `t` as a little-endian float32 C-order .npy file (atomically).
pub fn write_f32(path: &Path, t: &Tensor) -> Result<()> {
    let shape = t.size();
    let data: Vec<f32> = Vec::try_from(
        t.to_kind(Kind::Float)
            .to_device(tch::Device::Cpu)
            .reshape([-1]),
    )?;
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a
    // multiple of 64 and ended by '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * data.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::io::write_atomic(path, &bytes)
}

/// Reads a float32 .npy file written by [`write_f32`] (or numpy, C order, '<f4').
pub fn read_f32(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).at(path)?;
    let bad =
        |m: &str| GanError::Input(format!("{}: not a float32 .npy file ({m})", path.display()));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("bad magic"));
    }
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(
        bytes
            .get(10..10 + hlen)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|_| bad("header is not text"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("only little-endian float32 in C order is supported"));
    }
    let shape_txt = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    // Dimensions are non-negative integers whose product (in bytes) fits the file.
    let shape: Vec<i64> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map(i64::from)
                .map_err(|_| bad(&format!("bad dimension {s:?}")))
        })
        .collect::<Result<_>>()?;
    let n = shape
        .iter()
        .try_fold(1i64, |a, &d| a.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| bad("shape overflows"))?;
    let body = &bytes[10 + hlen..];
    if body.len() as u64 != 4 * n as u64 {
        return Err(bad(&format!(
            "expected {} data bytes, found {}",
            4 * n,
            body.len()
        )));
    }
    let data: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Tensor::from_slice(&data).view(shape.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let p = std::env::temp_dir().join(format!("ganlab-npy-{}.npy", std::process::id()));
        let t = Tensor::from_slice(&[1.0f32, -2.5, 3.0, 4.0, 5.0, 6.0]).view([3, 2]);
        write_f32(&p, &t).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        assert!(read_f32(&p).unwrap().equal(&t));
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_f32(&p).unwrap_err().to_string().contains("data bytes"));
        std::fs::remove_file(p).unwrap();
    }
}
