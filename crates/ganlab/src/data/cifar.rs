//! CIFAR-10 binary batches (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`):
//! records of 1 label byte and 3072 pixel bytes (the red, green and blue 32×32 planes, row
//! by row). Images come out [n, 3, 32, 32] scaled x/127.5 − 1, labels [n] in 0..10.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::{ImageSet, Split};
use crate::error::{GanError, IoContext, Result};

const RECORD: usize = 1 + 3 * 32 * 32;

/// The batch files of `split` present in `dir` (train: data_batch_1..5.bin, in order).
pub fn batch_files(dir: &Path, split: Split) -> Vec<PathBuf> {
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    names
        .into_iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// Loads the CIFAR-10 `split` from `dir`; a truncated file or a label outside 0..10 is an
/// error naming the file.
pub fn load_cifar10(dir: &Path, split: Split) -> Result<ImageSet> {
    let files = batch_files(dir, split);
    if files.is_empty() {
        return Err(GanError::Input(format!(
            "{}: no CIFAR-10 {} batches (data_batch_N.bin / test_batch.bin)",
            dir.display(),
            if split == Split::Train {
                "train"
            } else {
                "test"
            }
        )));
    }
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for f in &files {
        let bytes = std::fs::read(f).at(f)?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(GanError::Input(format!(
                "{}: {} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated or not CIFAR-10)",
                f.display(),
                bytes.len()
            )));
        }
        for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
            if r[0] > 9 {
                return Err(GanError::Input(format!(
                    "{}: record {i} has label {} (CIFAR-10 labels are 0..9)",
                    f.display(),
                    r[0]
                )));
            }
            labels.push(r[0] as i64);
            pixels.extend_from_slice(&r[1..]);
        }
    }
    let n = labels.len() as i64;
    let images = Tensor::from_slice(&pixels)
        .view([n, 3, 32, 32])
        .to_kind(Kind::Float)
        / 127.5
        - 1.0;
    Ok(ImageSet {
        images,
        labels: Some(Tensor::from_slice(&labels)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two records round-trip (planes, label, scaling); truncated files and bad labels are
    /// errors naming the file; a missing split says what it looked for.
    #[test]
    fn reads_records_and_rejects_bad_files() {
        let dir = std::env::temp_dir().join(format!("ganlab-cifar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = Vec::new();
        for (label, value) in [(3u8, 0u8), (7, 255)] {
            bytes.push(label);
            bytes.extend(std::iter::repeat_n(value, 1024)); // red
            bytes.extend(std::iter::repeat_n(value / 2, 1024)); // green
            bytes.extend(std::iter::repeat_n(10, 1024)); // blue
        }
        std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
        let set = load_cifar10(&dir, Split::Test).unwrap();
        assert_eq!(set.images.size(), vec![2, 3, 32, 32]);
        let labels: Vec<i64> = Vec::try_from(set.labels.unwrap()).unwrap();
        assert_eq!(labels, vec![3, 7]);
        let px = |i: i64, c: i64| set.images.double_value(&[i, c, 5, 9]);
        assert_eq!(px(0, 0), -1.0);
        assert_eq!(px(1, 0), 1.0);
        assert!((px(1, 1) - (127.0 / 127.5 - 1.0)).abs() < 1e-6);
        assert!((px(1, 2) - (10.0 / 127.5 - 1.0)).abs() < 1e-6);
        let e = load_cifar10(&dir, Split::Train).unwrap_err().to_string();
        assert!(e.contains("no CIFAR-10 train batches"), "{e}");
        std::fs::write(dir.join("test_batch.bin"), &bytes[..RECORD + 100]).unwrap();
        let e = load_cifar10(&dir, Split::Test).unwrap_err().to_string();
        assert!(
            e.contains("test_batch.bin") && e.contains("truncated"),
            "{e}"
        );
        bytes[RECORD] = 12;
        std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
        let e = load_cifar10(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("label 12"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
