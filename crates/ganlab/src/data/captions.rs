//! (text, image) pairs for text-to-image synthesis: an image folder and a captions file.
//!
//! Layout: `captions.tsv` holds lines `NAME<TAB>caption` (several lines per name = several
//! captions per image; `scripts/fetch-data emoji-captions` writes it for the OpenMoji colour
//! images from the annotations and tags of npm `openmoji` and the names of npm
//! `emoji-datasource`), and the images are `<dir>/<split>/NAME.png`. Every image of the split
//! must have at least one caption; captions of names not in the split are ignored (they
//! belong to the other split). Captions are read as Unicode and encoded character by
//! character ([`encode`]).

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

use super::folder::{image_files, load_image, resize_crop, to_channels};
use crate::error::{GanError, IoContext, Result};

/// Characters the text encoders read, in token order after padding (0) and unknown (1).
pub const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789 ,:-'!?.&()/";

/// Tokens of the character vocabulary: padding, unknown, then [`ALPHABET`].
pub fn vocab_size() -> i64 {
    ALPHABET.chars().count() as i64 + 2
}

/// The tokens of `text` (lower-cased), padded with 0 or cut to `len`: 2 + the position in
/// [`ALPHABET`] for a known character, 1 for any other.
pub fn encode(text: &str, len: usize) -> Vec<i64> {
    let mut out: Vec<i64> = text
        .chars()
        .flat_map(char::to_lowercase)
        .take(len)
        .map(|c| {
            ALPHABET
                .chars()
                .position(|a| a == c)
                .map_or(1, |p| p as i64 + 2)
        })
        .collect();
    out.resize(len, 0);
    out
}

/// Token tensor [n, len] of several captions.
pub fn encode_batch(texts: &[&str], len: usize) -> Tensor {
    let flat: Vec<i64> = texts.iter().flat_map(|t| encode(t, len)).collect();
    Tensor::from_slice(&flat).view([texts.len() as i64, len as i64])
}

/// One split of a captioned image set.
#[derive(Debug)]
pub struct CaptionSet {
    /// Images [n, 3, s, s] in [−1, 1].
    pub images: Tensor,
    /// The captions of each image (at least one each).
    pub captions: Vec<Vec<String>>,
    /// Image names (file stems), sorted.
    pub names: Vec<String>,
}

impl CaptionSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Reads `captions` (the TSV of the module docs): name → captions, in file order.
pub fn read_captions(path: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(path).at(path)?;
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, caption)) = line.split_once('\t') else {
            return Err(GanError::Input(format!(
                "{} line {}: expected NAME<TAB>caption, got {line:?}",
                path.display(),
                i + 1
            )));
        };
        let caption = caption.trim();
        if name.is_empty() || caption.is_empty() {
            return Err(GanError::Input(format!(
                "{} line {}: empty name or caption",
                path.display(),
                i + 1
            )));
        }
        map.entry(name.to_string())
            .or_default()
            .push(caption.to_string());
    }
    Ok(map)
}

/// The images of `dir/split` at side `size` (RGB) with their captions from `captions`.
pub fn load_caption_set(dir: &Path, split: &str, captions: &Path, size: i64) -> Result<CaptionSet> {
    let all = read_captions(captions)?;
    let files = image_files(&dir.join(split))?;
    if files.is_empty() {
        return Err(GanError::Input(format!(
            "{}: no images",
            dir.join(split).display()
        )));
    }
    let (mut images, mut caps, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for f in files {
        let name = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Some(c) = all.get(&name) else {
            return Err(GanError::Input(format!(
                "{}: no caption for image {name} in {}",
                f.display(),
                captions.display()
            )));
        };
        let x = load_image(&f)?;
        let x = if x.size()[1..] == [size, size] {
            x
        } else {
            resize_crop(&x, size)
        };
        images.push(to_channels(x.unsqueeze(0), 3));
        caps.push(c.clone());
        names.push(name);
    }
    Ok(CaptionSet {
        images: Tensor::cat(&images, 0).to_kind(Kind::Float),
        captions: caps,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens by closed form: "Ab 9!" → a = 2, b = 3, space = 38, 9 = 37, ! = 43, then
    /// padding; "é" is unknown (1); long text is cut. The loader pairs images with their
    /// captions and refuses an image without one and a malformed line.
    #[test]
    fn tokens_and_loading() {
        assert_eq!(encode("Ab 9!", 7), vec![2, 3, 38, 37, 43, 0, 0]);
        assert_eq!(encode("é", 2), vec![1, 0]);
        assert_eq!(encode("abcdef", 3), vec![2, 3, 4]);
        assert_eq!(vocab_size(), 50);
        assert_eq!(encode_batch(&["a", "b"], 2).size(), vec![2, 2]);
        let dir = std::env::temp_dir().join(format!("ganlab-captions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("train")).unwrap();
        for n in ["x1", "x2"] {
            let img = Tensor::zeros([3, 8, 8], (Kind::Float, tch::Device::Cpu));
            crate::data::write_png(&dir.join("train").join(format!("{n}.png")), &img).unwrap();
        }
        let tsv = dir.join("c.tsv");
        std::fs::write(
            &tsv,
            "x1\tred apple\nx2\tgreen pear\nx1\tfruit\nx9\tother split\n",
        )
        .unwrap();
        let set = load_caption_set(&dir, "train", &tsv, 4).unwrap();
        assert_eq!(set.names, ["x1", "x2"]);
        assert_eq!(set.captions[0], ["red apple", "fruit"]);
        assert_eq!(set.images.size(), vec![2, 3, 4, 4]);
        std::fs::write(&tsv, "x1\tred apple\n").unwrap();
        let e = load_caption_set(&dir, "train", &tsv, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no caption for image x2"), "{e}");
        std::fs::write(&tsv, "x1 red apple\n").unwrap();
        let e = read_captions(&tsv).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("NAME<TAB>caption"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
