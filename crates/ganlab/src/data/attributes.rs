//! Images with binary attributes in CelebA's layout (multi-attribute translation,
//! multi-attribute-translation-supplement.txt; ../shared/specs/translation.md §4):
//!
//! - `<dir>/<attr_file>`: line 1 the number of images, line 2 the attribute names, then one
//!   line per image: its file name and one value per attribute, `1` or `-1`
//!   (`list_attr_celeba.txt`);
//! - `<dir>/<images>/`: the image files it names (`img_align_celeba/`);
//! - `<dir>/<partition>`: one line per image, its file name and 0 (train), 1 (validation) or
//!   2 (test) (`list_eval_partition.txt`). Validation images count as test here.
//!
//! The config names the attributes the model edits, in order (any subset of the file's), and
//! declares **exclusive groups**, sets of attributes of which at most one may be 1 (CelebA's
//! hair colours). Labels are Y = (v + 1)/2 ∈ {0, 1} as the official code's `(l + 1) // 2`.
//! Editing a label (setting attribute a to 1) follows the official code's conflict rule
//! (BridgeGAN `data_noise_in.py` `check_attribute_conflict`, after AttGAN/STGAN): every other
//! member of a group that contains a is set to 0. Asking for two members of one group at
//! once is an error ([`AttributeSet::edit`]). CelebA's rule (hair colours exclusive; Bangs
//! against Bald and Receding_Hairline; Straight_Hair against Wavy_Hair) is the groups
//! `[[Black_Hair, Blond_Hair, Brown_Hair, Gray_Hair], [Bangs, Bald], [Bangs,
//! Receding_Hairline], [Straight_Hair, Wavy_Hair]]` restricted to the chosen attributes.
//!
//! Images are cropped (CelebA in the official code: rows 26…195, columns 3…172, a 170² square
//! of the 178 × 218 aligned image), resized to `image_size` (bilinear, antialiased) and kept in
//! memory as 8-bit values (3·s² bytes an image: 182,000 CelebA images at 128 px take 8.9 GB;
//! `max_images` caps the count).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::folder::{load_image, resize_crop, to_channels};
use crate::error::{GanError, IoContext, Result};

/// `[<task>.data]`: an attribute-labelled image set (see module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeDataConfig {
    /// Directory of the set (relative paths: from the working directory).
    pub dir: PathBuf,
    /// The attribute list, relative to `dir` (CelebA: list_attr_celeba.txt).
    pub attr_file: String,
    /// The image folder, relative to `dir` (CelebA: img_align_celeba).
    pub images: String,
    /// The partition file, relative to `dir` (CelebA: list_eval_partition.txt).
    pub partition: String,
    /// The attributes the model edits, in order (names as in `attr_file`).
    pub attributes: Vec<String>,
    /// Groups of attributes of which at most one is 1 (see module docs).
    pub exclusive: Vec<Vec<String>>,
    /// Crop before resizing: [top, left, size] (CelebA: [26, 3, 170]); size 0 = no crop.
    pub crop: [i64; 3],
    /// Side of the images the networks see.
    pub image_size: i64,
    /// Random horizontal flips when training.
    pub flip: bool,
    /// At most this many images per split (0 = all), the first ones in file order.
    pub max_images: i64,
    /// The FID Inception (`scripts/fetch-data inception`), for the metrics of a finished run.
    pub inception: PathBuf,
}

impl Default for AttributeDataConfig {
    fn default() -> Self {
        Self {
            dir: "data/emoji-people".into(),
            attr_file: "list_attr.txt".into(),
            images: "images".into(),
            partition: "list_eval_partition.txt".into(),
            attributes: ["Man", "Woman", "Skin_Tone_1", "Skin_Tone_2", "Skin_Tone_3"]
                .iter()
                .chain(&["Skin_Tone_4", "Skin_Tone_5", "Google"])
                .map(|s| s.to_string())
                .collect(),
            exclusive: vec![
                vec!["Man".into(), "Woman".into()],
                (1..=5).map(|k| format!("Skin_Tone_{k}")).collect(),
            ],
            crop: [0, 0, 0],
            image_size: 64,
            flip: true,
            max_images: 0,
            inception: "data/inception/default_1.pt".into(),
        }
    }
}

impl AttributeDataConfig {
    /// Checks every field that does not need the files; `prefix` names the section.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let err = |f: &str, m: String| Err(GanError::config(format!("{prefix}.{f}"), m));
        if ![32, 64, 128, 256].contains(&self.image_size) {
            return err(
                "image_size",
                format!("must be 32, 64, 128 or 256, got {}", self.image_size),
            );
        }
        if self.attributes.is_empty() || self.attributes.len() > 40 {
            return err(
                "attributes",
                format!("needs 1 to 40 names, got {}", self.attributes.len()),
            );
        }
        for (i, a) in self.attributes.iter().enumerate() {
            if self.attributes[..i].contains(a) {
                return err("attributes", format!("names `{a}` twice"));
            }
        }
        for g in &self.exclusive {
            if g.len() < 2 {
                return err(
                    "exclusive",
                    format!("each group needs at least 2 attributes, got {g:?}"),
                );
            }
            if let Some(a) = g.iter().find(|a| !self.attributes.contains(a)) {
                return err(
                    "exclusive",
                    format!("`{a}` is not one of `attributes` {:?}", self.attributes),
                );
            }
        }
        let [top, left, size] = self.crop;
        if top < 0 || left < 0 || !(0..=8192).contains(&size) {
            return err(
                "crop",
                format!(
                    "must be [top ≥ 0, left ≥ 0, size in [0, 8192]], got {:?}",
                    self.crop
                ),
            );
        }
        if !(0..=super::MAX_IMAGES).contains(&self.max_images) {
            return err(
                "max_images",
                format!(
                    "must be in [0, {}], got {}",
                    super::MAX_IMAGES,
                    self.max_images
                ),
            );
        }
        for (f, v) in [
            ("attr_file", &self.attr_file),
            ("images", &self.images),
            ("partition", &self.partition),
        ] {
            if v.is_empty() {
                return err(f, "must name a file or folder inside `dir`".into());
            }
        }
        Ok(())
    }

    /// The index of each group member's group mates: `mates[i]` lists the attributes that
    /// setting attribute i to 1 turns to 0.
    pub fn mates(&self) -> Vec<Vec<usize>> {
        let idx = |a: &String| self.attributes.iter().position(|b| b == a).unwrap_or(0);
        let mut mates = vec![Vec::new(); self.attributes.len()];
        for g in &self.exclusive {
            for a in g {
                for b in g {
                    if a != b && !mates[idx(a)].contains(&idx(b)) {
                        mates[idx(a)].push(idx(b));
                    }
                }
            }
        }
        mates
    }

    /// Loads `split` ("train" or "test": partition 0, or 1 and 2).
    pub fn load(&self, split: &str) -> Result<AttributeSet> {
        let attr_path = self.dir.join(&self.attr_file);
        if !attr_path.is_file() {
            return Err(GanError::Input(format!(
                "{} not found: `scripts/fetch-data emoji-people` makes the emoji people set; for CelebA put \
                 list_attr_celeba.txt, list_eval_partition.txt and img_align_celeba/ in {} \
                 (configs/bridgegan-celeba128.toml)",
                attr_path.display(),
                self.dir.display()
            )));
        }
        let text = std::fs::read_to_string(&attr_path).at(&attr_path)?;
        let table = parse_attr_file(&text, &attr_path)?;
        let cols: Vec<usize> = self
            .attributes
            .iter()
            .map(|a| {
                table.names.iter().position(|n| n == a).ok_or_else(|| {
                    GanError::Input(format!(
                        "{}: no attribute `{a}` (it has {})",
                        attr_path.display(),
                        table.names.join(", ")
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let part_path = self.dir.join(&self.partition);
        let text = std::fs::read_to_string(&part_path).at(&part_path)?;
        let parts = parse_partition(&text, &part_path)?;
        let want = |p: u8| if split == "train" { p == 0 } else { p != 0 };
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (file, values) in &table.rows {
            let p = *parts.get(file.as_str()).ok_or_else(|| {
                GanError::Input(format!(
                    "{}: `{file}` of {} has no line",
                    part_path.display(),
                    attr_path.display()
                ))
            })?;
            if !want(p) {
                continue;
            }
            if self.max_images > 0 && files.len() as i64 >= self.max_images {
                break;
            }
            files.push(file.clone());
            labels.extend(cols.iter().map(|&c| (values[c] > 0) as u8 as f32));
        }
        if files.is_empty() {
            return Err(GanError::Input(format!(
                "{}: no {split} images (partition {})",
                attr_path.display(),
                if split == "train" { "0" } else { "1 or 2" }
            )));
        }
        let n = files.len() as i64;
        let labels = Tensor::from_slice(&labels).view([n, self.attributes.len() as i64]);
        let folder = self.dir.join(&self.images);
        let images = files
            .iter()
            .map(|f| self.load_one(&folder.join(f)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AttributeSet {
            images: Tensor::stack(&images, 0),
            labels,
            files,
            names: self.attributes.clone(),
            mates: self.mates(),
        })
    }

    /// One image: cropped, resized, as 3 × s × s 8-bit values.
    fn load_one(&self, path: &Path) -> Result<Tensor> {
        let x = load_image(path)?;
        let x = to_channels(x.unsqueeze(0), 3).squeeze_dim(0);
        let [top, left, size] = self.crop;
        let x = if size > 0 {
            let (h, w) = (x.size()[1], x.size()[2]);
            if top + size > h || left + size > w {
                return Err(GanError::Input(format!(
                    "{}: {w}×{h} is too small for crop {:?} (top, left, size)",
                    path.display(),
                    self.crop
                )));
            }
            x.narrow(1, top, size).narrow(2, left, size)
        } else {
            x
        };
        let x = resize_crop(&((x + 1.0) * 127.5), self.image_size);
        Ok(x.round().clamp(0.0, 255.0).to_kind(Kind::Uint8))
    }
}

/// A parsed attribute file.
struct AttrTable {
    names: Vec<String>,
    rows: Vec<(String, Vec<i8>)>,
}

fn parse_attr_file(text: &str, path: &Path) -> Result<AttrTable> {
    let bad =
        |line: usize, m: String| GanError::Input(format!("{}: line {line}: {m}", path.display()));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, count) = lines
        .next()
        .ok_or_else(|| bad(1, "empty file (expected the number of images)".into()))?;
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| bad(1, format!("expected the number of images, got `{count}`")))?;
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad(2, "expected the attribute names".into()))?;
    let names: Vec<String> = header.split_whitespace().map(String::from).collect();
    let mut rows = Vec::with_capacity(count.min(1 << 20));
    for (i, line) in lines {
        let mut parts = line.split_whitespace();
        let file = parts.next().unwrap_or_default().to_string();
        let values = parts
            .map(|v| match v {
                "1" => Ok(1),
                "-1" => Ok(-1),
                "0" => Ok(-1),
                _ => Err(bad(i + 1, format!("`{v}` is not 1 or -1"))),
            })
            .collect::<Result<Vec<i8>>>()?;
        if values.len() != names.len() {
            return Err(bad(
                i + 1,
                format!("{} values for {} attributes", values.len(), names.len()),
            ));
        }
        rows.push((file, values));
    }
    if rows.len() != count {
        return Err(bad(
            1,
            format!("says {count} images but {} lines follow", rows.len()),
        ));
    }
    Ok(AttrTable { names, rows })
}

fn parse_partition<'a>(text: &'a str, path: &Path) -> Result<HashMap<&'a str, u8>> {
    let mut parts = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_whitespace();
        let (Some(file), Some(p), None) = (it.next(), it.next(), it.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(GanError::Input(format!(
                "{}: line {}: expected `<file> <0|1|2>`",
                path.display(),
                i + 1
            )));
        };
        let p = match p {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            _ => {
                return Err(GanError::Input(format!(
                    "{}: line {}: partition `{p}` is not 0, 1 or 2",
                    path.display(),
                    i + 1
                )))
            }
        };
        parts.insert(file, p);
    }
    Ok(parts)
}

/// One split of an attribute set, in memory.
#[derive(Debug)]
pub struct AttributeSet {
    /// [n, 3, s, s] 8-bit images.
    pub images: Tensor,
    /// [n, k] labels in {0, 1}, f32.
    pub labels: Tensor,
    /// File names, in order.
    pub files: Vec<String>,
    /// Attribute names, in order.
    pub names: Vec<String>,
    mates: Vec<Vec<usize>>,
}

impl AttributeSet {
    /// Number of images.
    pub fn len(&self) -> i64 {
        self.images.size()[0]
    }

    /// True when empty (never: loading refuses an empty split).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `idx` [n] as float [n, 3, s, s] in [−1, 1] on `device`.
    pub fn images_at(&self, idx: &Tensor, device: Device) -> Tensor {
        let x = self.images.index_select(0, idx).to_device(device);
        x.to_kind(Kind::Float) / 127.5 - 1.0
    }

    /// Labels `idx` [n] as [n, k] on `device`.
    pub fn labels_at(&self, idx: &Tensor, device: Device) -> Tensor {
        self.labels.index_select(0, idx).to_device(device)
    }

    /// `n` random images and their labels (libtorch's generator, reseeded per step by the
    /// loop), flipped at random when `flip`.
    pub fn sample(&self, n: i64, flip: bool, device: Device) -> (Tensor, Tensor) {
        let idx = crate::dist::randint(0, self.len(), &[n], (Kind::Int64, Device::Cpu));
        let flips = crate::dist::rand(&[n, 1, 1, 1], (Kind::Float, Device::Cpu)).lt(0.5);
        let mut x = self.images_at(&idx, Device::Cpu);
        if flip {
            x = x.flip([3]).where_self(&flips, &x);
        }
        (x.to_device(device), self.labels_at(&idx, device))
    }

    /// Index of attribute `name`.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            GanError::Input(format!(
                "no attribute `{name}`; this model edits {}",
                self.names.join(", ")
            ))
        })
    }

    /// Labels `y` [n, k] with attribute `j` flipped in every row (see [`flip_attribute`]).
    pub fn flip(&self, y: &Tensor, j: usize) -> Tensor {
        flip_attribute(&self.mates, y, j)
    }

    /// The group mates of each attribute (see [`flip_attribute`]).
    pub fn mates(&self) -> &[Vec<usize>] {
        &self.mates
    }

    /// Labels `y` [n, k] with the attributes of `set` (index, value in {0, 1}) set, by the
    /// conflict rule (see module docs): setting an attribute to 1 sets its group mates to 0.
    /// Two members of one group both set to 1 is an error.
    pub fn edit(&self, y: &Tensor, set: &[(usize, f64)]) -> Result<Tensor> {
        edit_labels(&self.names, &self.mates, y, set)
    }
}

/// Labels `y` [n, k] with attribute `j` flipped in every row by the conflict rule: a row
/// where it turns 1 has its group mates (`mates[j]`) set to 0.
pub fn flip_attribute(mates: &[Vec<usize>], y: &Tensor, j: usize) -> Tensor {
    let col = y.narrow(1, j as i64, 1);
    let on = col.eq(0.0); // rows where j becomes 1
    let out = y.copy();
    for &m in &mates[j] {
        let mut c = out.narrow(1, m as i64, 1);
        c.copy_(&c.where_self(&on.logical_not(), &c.zeros_like()));
    }
    out.narrow(1, j as i64, 1).copy_(&(1.0 - &col));
    out
}

/// [`AttributeSet::edit`] on names and group mates alone (a finished run has no data).
pub fn edit_labels(
    names: &[String],
    mates: &[Vec<usize>],
    y: &Tensor,
    set: &[(usize, f64)],
) -> Result<Tensor> {
    for (i, &(a, va)) in set.iter().enumerate() {
        if a >= names.len() || !(va == 0.0 || va == 1.0) {
            return Err(GanError::Input(format!(
                "attribute index {a} = {va}: needs an index below {} and a value 0 or 1",
                names.len()
            )));
        }
        if let Some(&(b, _)) = set[..i]
            .iter()
            .find(|&&(b, vb)| va == 1.0 && vb == 1.0 && mates[a].contains(&b))
        {
            return Err(GanError::Input(format!(
                "`{}` and `{}` cannot both be 1 (they are exclusive)",
                names[b], names[a]
            )));
        }
    }
    let out = y.copy();
    for &(a, v) in set {
        if v == 1.0 {
            for &m in &mates[a] {
                let _ = out.narrow(1, m as i64, 1).fill_(0.0);
            }
        }
    }
    for &(a, v) in set {
        let _ = out.narrow(1, a as i64, 1).fill_(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny synthetic set in CelebA's layout: 4 train + 2 test images, 5 attributes, and
    /// the file's attribute columns chosen and reordered by the config.
    fn celeba_like(dir: &Path) -> AttributeDataConfig {
        std::fs::create_dir_all(dir.join("img")).unwrap();
        let names = "Black_Hair Blond_Hair Smiling Bangs Receding_Hairline";
        let mut attr = format!("6\n{names}\n");
        let mut part = String::new();
        for i in 0..6 {
            let f = format!("{:06}.png", i + 1);
            let v: Vec<&str> = (0..5)
                .map(|j| if (i + j) % 3 == 0 { "1" } else { "-1" })
                .collect();
            attr += &format!("{f}  {}\n", v.join(" "));
            part += &format!("{f} {}\n", if i < 4 { 0 } else { 2 });
            // A 20 × 24 (W × H) image, grey level 40·i.
            let img = Tensor::full(
                [3, 24, 20],
                (i as f64 * 40.0) / 127.5 - 1.0,
                (Kind::Float, Device::Cpu),
            );
            crate::data::folder::write_png(&dir.join("img").join(&f), &img).unwrap();
        }
        std::fs::write(dir.join("attrs.txt"), attr).unwrap();
        std::fs::write(dir.join("parts.txt"), part).unwrap();
        AttributeDataConfig {
            dir: dir.to_path_buf(),
            attr_file: "attrs.txt".into(),
            images: "img".into(),
            partition: "parts.txt".into(),
            attributes: vec!["Smiling".into(), "Black_Hair".into(), "Blond_Hair".into()],
            exclusive: vec![vec!["Black_Hair".into(), "Blond_Hair".into()]],
            crop: [2, 1, 16],
            image_size: 32,
            ..Default::default()
        }
    }

    #[test]
    fn celeba_layout_loads_chosen_attributes_and_splits() {
        let tmp = std::env::temp_dir().join(format!("ganlab-attrs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let cfg = celeba_like(&tmp);
        cfg.validate("x.data").unwrap();
        let train = cfg.load("train").unwrap();
        let test = cfg.load("test").unwrap();
        assert_eq!((train.len(), test.len()), (4, 2));
        assert_eq!(train.images.size(), [4, 3, 32, 32]);
        assert_eq!(train.files[1], "000002.png");
        // Image i, attribute column j of the file is 1 when (i + j) % 3 == 0; config order
        // is Smiling (j = 2), Black_Hair (0), Blond_Hair (1).
        let want = |i: i64| [2, 0, 1].map(|j| ((i + j) % 3 == 0) as u8 as f32).to_vec();
        for i in 0..4 {
            assert_eq!(
                Vec::<f32>::try_from(train.labels.get(i)).unwrap(),
                want(i),
                "image {i}"
            );
        }
        assert_eq!(Vec::<f32>::try_from(test.labels.get(0)).unwrap(), want(4));
        // Grey level 40·i survives crop and resize exactly (a constant image).
        assert_eq!(test.images.get(1).int64_value(&[0, 5, 5]), 200);
        // Errors name what is wrong.
        let e = AttributeDataConfig {
            attributes: vec!["Smiling".into(), "Eyeglasses".into()],
            exclusive: vec![],
            ..cfg.clone()
        }
        .load("train")
        .unwrap_err()
        .to_string();
        assert!(e.contains("no attribute `Eyeglasses`"), "{e}");
        let e = AttributeDataConfig {
            dir: tmp.join("missing"),
            ..cfg.clone()
        }
        .load("train")
        .unwrap_err()
        .to_string();
        assert!(e.contains("scripts/fetch-data emoji-people"), "{e}");
        let e = AttributeDataConfig {
            crop: [10, 0, 20],
            ..cfg.clone()
        }
        .load("train")
        .unwrap_err()
        .to_string();
        assert!(e.contains("too small for crop"), "{e}");
        std::fs::write(tmp.join("attrs.txt"), "3\nA B\nx.png 1 -1\n").unwrap();
        let e = cfg.load("train").unwrap_err().to_string();
        assert!(e.contains("says 3 images but 1 lines follow"), "{e}");
        let e = AttributeDataConfig {
            exclusive: vec![vec!["Smiling".into(), "Bald".into()]],
            ..cfg
        }
        .validate("x.data")
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("x.data.exclusive") && e.contains("`Bald`"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }

    /// The official conflict rule: a hair colour set to 1 clears the others; two at once is
    /// an error; setting 0 touches nothing else.
    #[test]
    fn conflict_rule_clears_group_mates() {
        let names: Vec<String> = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Smiling"]
            .map(String::from)
            .to_vec();
        let cfg = AttributeDataConfig {
            attributes: names.clone(),
            exclusive: vec![names[..3].to_vec()],
            ..Default::default()
        };
        let mates = cfg.mates();
        let y = Tensor::from_slice(&[1f32, 0., 0., 1.]).view([1, 4]);
        let e = |set: &[(usize, f64)]| {
            Vec::<f32>::try_from(edit_labels(&names, &mates, &y, set).unwrap().view([-1])).unwrap()
        };
        assert_eq!(e(&[(1, 1.0)]), [0., 1., 0., 1.]);
        assert_eq!(e(&[(0, 0.0)]), [0., 0., 0., 1.]);
        assert_eq!(e(&[(2, 1.0), (3, 0.0)]), [0., 0., 1., 0.]);
        let err = edit_labels(&names, &mates, &y, &[(1, 1.0), (2, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`Blond_Hair` and `Brown_Hair` cannot both be 1"),
            "{err}"
        );
        // Flipping Blond_Hair per row: row 0 (black) turns blond and loses black; row 1
        // (blond) loses blond and keeps the rest.
        let y2 = Tensor::from_slice(&[1f32, 0., 0., 1., 0., 1., 0., 0.]).view([2, 4]);
        let f = Vec::<f32>::try_from(flip_attribute(&mates, &y2, 1).view([-1])).unwrap();
        assert_eq!(f, [0., 1., 0., 1., 0., 0., 0., 0.]);
    }
}
