//! IDX files (LeCun's MNIST format, also Fashion-MNIST), raw or gzip-compressed:
//! magic 0x00 0x00, a type byte (0x08 = unsigned byte is the only one image sets use), the
//! number of dimensions, each dimension as a big-endian u32, then the data in C order.

use std::io::Read;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use crate::error::{GanError, IoContext, Result};

/// An IDX array of unsigned bytes.
#[derive(Debug)]
pub struct IdxArray {
    /// Dimensions, e.g. [60000, 28, 28].
    pub dims: Vec<usize>,
    /// The bytes in C order.
    pub data: Vec<u8>,
}

/// The most data bytes an IDX file may declare (1 GiB; MNIST's training images are 47 MB).
pub const MAX_IDX_BYTES: usize = 1 << 30;

/// Reads an IDX file; `.gz` (by content, not name) is decompressed — as a stream, never
/// beyond the bytes its header declares (a decompression bomb is refused after at most
/// that many bytes plus one).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path).at(path)?);
    let gzip = std::io::BufRead::fill_buf(&mut file)
        .at(path)?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_idx(&mut reader).map_err(|e| match e {
        Bad::Format(m) => bad(path, &m),
        Bad::Io(e) if gzip => bad(path, &format!("corrupt gzip stream ({e})")),
        Bad::Io(e) => GanError::Input(format!("{}: {e}", path.display())),
    })
}

/// Writes an IDX array of unsigned bytes (gzip-compressed when `path` ends in `.gz`), as
/// [`read_idx`] reads it; refuses data whose length is not the product of `dims`.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) -> Result<()> {
    use std::io::Write;
    if dims.iter().product::<usize>() != data.len() || dims.is_empty() || dims.len() > 255 {
        return Err(GanError::Input(format!(
            "{}: {} bytes do not fill dimensions {dims:?}",
            path.display(),
            data.len()
        )));
    }
    let mut bytes = vec![0u8, 0, 8, dims.len() as u8];
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| bad(path, &format!("dimension {d} > u32")))?;
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if path.extension().is_some_and(|e| e == "gz") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).at(path)?;
        bytes = gz.finish().at(path)?;
    }
    crate::io::write_atomic(path, &bytes)
}

fn bad(path: &Path, msg: &str) -> GanError {
    GanError::Input(format!("{}: not a valid IDX file: {msg}", path.display()))
}

/// Why an IDX stream was refused.
enum Bad {
    Format(String),
    Io(std::io::Error),
}

impl From<String> for Bad {
    fn from(m: String) -> Self {
        Bad::Format(m)
    }
}

/// Reads up to `n` bytes (fewer only at the end of the stream).
fn read_up_to(r: &mut dyn Read, n: usize) -> std::result::Result<Vec<u8>, Bad> {
    let mut out = Vec::new();
    r.take(n as u64).read_to_end(&mut out).map_err(Bad::Io)?;
    Ok(out)
}

fn parse_idx(r: &mut dyn Read) -> std::result::Result<IdxArray, Bad> {
    let b = read_up_to(r, 4)?;
    if b.len() < 4 || b[0] != 0 || b[1] != 0 {
        return Err(Bad::Format("bad magic (expected 00 00 type ndim)".into()));
    }
    if b[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02x} unsupported (only 0x08, unsigned byte)",
            b[2]
        )
        .into());
    }
    let ndim = b[3] as usize;
    let head = read_up_to(r, 4 * ndim)?;
    if ndim == 0 || head.len() < 4 * ndim {
        return Err(format!("header truncated ({ndim} dimensions)").into());
    }
    let dims: Vec<usize> = head
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            format!("dimensions {dims:?} declare more than {MAX_IDX_BYTES} bytes (the limit)")
        })?;
    let data = read_up_to(r, n + 1)?;
    if data.len() != n {
        return Err(format!(
            "dimensions {dims:?} need {n} bytes of data, file has {}",
            if data.len() < n {
                format!("{} (truncated)", data.len())
            } else {
                "more".to_string()
            }
        )
        .into());
    }
    Ok(IdxArray { dims, data })
}

/// Images with optional labels, scaled to [-1, 1]: images [n, C, H, W] f32, labels [n] i64.
#[derive(Debug)]
pub struct ImageSet {
    /// Images in [-1, 1].
    pub images: Tensor,
    /// Class labels, where the format has them.
    pub labels: Option<Tensor>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> i64 {
        self.images.size()[0]
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which part of an IDX image set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-*` files.
    Train,
    /// `t10k-*` files.
    Test,
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(GanError::Input(format!(
        "{}: no {stem}[.gz] (fetch it with scripts/fetch-data)",
        dir.display()
    )))
}

/// Loads the MNIST-layout set in `dir` (`train-images-idx3-ubyte[.gz]` and labels, or
/// `t10k-...`): images [n, 1, 28, 28] scaled x/127.5 − 1, labels [n].
pub fn load_idx_images(dir: &Path, split: Split) -> Result<ImageSet> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let img_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let img = read_idx(&img_path)?;
    if img.dims.len() != 3 {
        return Err(bad(
            &img_path,
            &format!("images need 3 dimensions, got {:?}", img.dims),
        ));
    }
    let (n, h, w) = (img.dims[0] as i64, img.dims[1] as i64, img.dims[2] as i64);
    if n == 0 || h == 0 || w == 0 {
        return Err(bad(
            &img_path,
            &format!("holds no images (dimensions {:?})", img.dims),
        ));
    }
    let images = Tensor::from_slice(&img.data)
        .view([n, 1, h, w])
        .to_kind(Kind::Float)
        / 127.5
        - 1.0;
    let labels = match find(dir, &format!("{prefix}-labels-idx1-ubyte")) {
        Ok(p) => {
            let l = read_idx(&p)?;
            if l.dims != [n as usize] {
                return Err(bad(&p, &format!("{:?} labels for {n} images", l.dims)));
            }
            Some(Tensor::from_slice(&l.data).to_kind(Kind::Int64))
        }
        Err(_) => None,
    };
    Ok(ImageSet { images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    /// A 2-image set written raw and gzipped loads to the same scaled tensor and labels;
    /// truncated data, a bad magic, a wrong type and corrupt gzip are clear errors.
    #[test]
    fn reads_raw_gzip_and_rejects_bad_files() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("ganlab-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pixels: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
        let img = idx(&[2, 2, 3], &pixels);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&img).unwrap();
        std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[2], &[7, 3])).unwrap();
        let set = load_idx_images(&dir, Split::Train).unwrap();
        assert_eq!(set.images.size(), vec![2, 1, 2, 3]);
        let v = Vec::<f32>::try_from(set.images.flatten(0, -1)).unwrap();
        assert_eq!(v[0], -1.0);
        assert!((v[11] - (220.0 / 127.5 - 1.0)).abs() < 1e-6);
        assert_eq!(
            Vec::<i64>::try_from(set.labels.unwrap()).unwrap(),
            vec![7, 3]
        );

        let cases: [(&str, Vec<u8>, &str); 4] = [
            ("trunc", idx(&[2, 2, 3], &pixels[..10]), "truncated"),
            ("magic", vec![1, 2, 8, 1, 0, 0, 0, 1, 5], "bad magic"),
            ("type", vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 5], "unsupported"),
            ("gzip", vec![0x1f, 0x8b, 8, 0, 1, 2, 3], "corrupt gzip"),
        ];
        for (name, bytes, want) in cases {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = read_idx(&p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(name), "{name}: {e}");
        }
        // Issue 18 items 2 and 6: an empty set, and a 4-byte image set whose gzip stream
        // inflates to 64 MiB, are refused (the bomb after reading 5 bytes of data).
        std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx(&[0, 28, 28], &[])).unwrap();
        let e = load_idx_images(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("holds no images"), "{e}");
        std::fs::remove_file(dir.join("t10k-images-idx3-ubyte")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&idx(&[1, 2, 2], &[0; 4])).unwrap();
        for _ in 0..64 {
            gz.write_all(&[0; 1 << 20]).unwrap();
        }
        let p = dir.join("bomb");
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() < 1 << 20);
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(e.contains("file has more"), "{e}");
        let p = dir.join("huge");
        std::fs::write(&p, idx(&[1 << 16, 1 << 16], &[])).unwrap();
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(e.contains("the limit"), "{e}");
        let e = load_idx_images(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
