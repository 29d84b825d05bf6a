//! `ganlab rasterize` (used by `scripts/fetch-data openmoji`): paired SVG drawings rendered
//! to square PNGs on white, with resvg, into the paired-folder layout of
//! `ganlab::data::paired` (`<split>A/`, `<split>B/`, matched by name).

use std::path::{Path, PathBuf};

use clap::Args;
use ganlab::error::GanError;
use resvg::{tiny_skia, usvg};

/// Arguments of `ganlab rasterize`.
#[derive(Args, Debug)]
pub struct RasterizeArgs {
    /// Lines "NAME SPLIT": NAME.svg is read from --src-a and --src-b, SPLIT is train or test.
    #[arg(long)]
    list: PathBuf,
    /// SVGs of the A side (e.g. OpenMoji black line art).
    #[arg(long)]
    src_a: PathBuf,
    /// SVGs of the B side (e.g. OpenMoji colour).
    #[arg(long)]
    src_b: PathBuf,
    /// Output directory (created; must be new or empty).
    #[arg(long)]
    out: PathBuf,
    /// Side of the square PNGs.
    #[arg(long, default_value_t = 64)]
    size: u32,
}

/// Renders the SVG at `path` into a `size`×`size` image [3, size, size] in [−1, 1]: scaled to
/// fit, centred, composited on white.
pub fn rasterize(path: &Path, size: u32) -> anyhow::Result<tch::Tensor> {
    let data =
        std::fs::read(path).map_err(|e| GanError::Input(format!("{}: {e}", path.display())))?;
    let tree = usvg::Tree::from_data(&data, &usvg::Options::default())
        .map_err(|e| GanError::Input(format!("{}: not a valid SVG: {e}", path.display())))?;
    let mut pixmap = tiny_skia::Pixmap::new(size, size)
        .ok_or_else(|| GanError::config("--size", format!("must be in [1, 8192], got {size}")))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let s = tree.size();
    let scale = size as f32 / s.width().max(s.height());
    let (dx, dy) = (
        (size as f32 - s.width() * scale) / 2.0,
        (size as f32 - s.height() * scale) / 2.0,
    );
    let t = tiny_skia::Transform::from_scale(scale, scale).post_translate(dx, dy);
    resvg::render(&tree, t, &mut pixmap.as_mut());
    // Opaque after the white fill: premultiplied RGBA equals straight RGBA.
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let n = size as i64;
    Ok(tch::Tensor::from_slice(&rgb)
        .view([n, n, 3])
        .permute([2, 0, 1])
        .to_kind(tch::Kind::Float)
        / 127.5
        - 1.0)
}

/// `ganlab rasterize`.
pub fn run(a: RasterizeArgs) -> anyhow::Result<()> {
    if !(1..=8192).contains(&a.size) {
        return Err(
            GanError::config("--size", format!("must be in [1, 8192], got {}", a.size)).into(),
        );
    }
    let list = std::fs::read_to_string(&a.list)
        .map_err(|e| GanError::Input(format!("{}: {e}", a.list.display())))?;
    let mut entries = Vec::new();
    for (i, line) in list
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(split), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(GanError::Input(format!(
                "{} line {}: expected \"NAME SPLIT\"",
                a.list.display(),
                i + 1
            ))
            .into());
        };
        if name.contains(['/', '\\']) || !["train", "test"].contains(&split) {
            return Err(GanError::Input(format!(
                "{} line {}: bad name or split (train|test) in {line:?}",
                a.list.display(),
                i + 1
            ))
            .into());
        }
        entries.push((name.to_string(), split.to_string()));
    }
    ganlab::io::create_output_dir(&a.out)?;
    for split in ["train", "test"] {
        for side in ["A", "B"] {
            std::fs::create_dir_all(a.out.join(format!("{split}{side}")))?;
        }
    }
    use ganlab::progress::Progress;
    let mut bar = ganlab::progress::ProgressBar::new("rasterize");
    for (k, (name, split)) in entries.iter().enumerate() {
        for (side, src) in [("A", &a.src_a), ("B", &a.src_b)] {
            let x = rasterize(&src.join(format!("{name}.svg")), a.size)?;
            let dst = a
                .out
                .join(format!("{split}{side}"))
                .join(format!("{name}.png"));
            ganlab::data::write_png(&dst, &x)?;
        }
        bar.update(k as u64 + 1, entries.len() as u64, name);
    }
    bar.finish();
    println!(
        "rasterized {} pairs into {}",
        entries.len(),
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A red square on the left half of a 2:1 viewBox: centred vertically, red where drawn,
    /// white elsewhere (closed form: the image is 64×32 scaled to 64 px wide, rows 16–47).
    #[test]
    fn renders_on_white_fitted_and_centred() {
        let dir = std::env::temp_dir().join(format!("ganlab-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.svg");
        std::fs::write(
            &p,
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10" width="20" height="10"><rect x="0" y="0" width="10" height="10" fill="#ff0000"/></svg>"##,
        )
        .unwrap();
        let x = rasterize(&p, 64).unwrap();
        assert_eq!(x.size(), vec![3, 64, 64]);
        let px = |c: i64, i: i64, j: i64| x.double_value(&[c, i, j]);
        assert_eq!(
            (px(0, 32, 10), px(1, 32, 10), px(2, 32, 10)),
            (1.0, -1.0, -1.0),
            "red"
        );
        assert_eq!(px(1, 32, 50), 1.0, "white right half");
        assert_eq!(px(1, 5, 10), 1.0, "white above the fitted drawing");
        assert!(rasterize(&dir.join("missing.svg"), 64).is_err());
        std::fs::write(&p, "<svg").unwrap();
        assert!(rasterize(&p, 64)
            .unwrap_err()
            .to_string()
            .contains("not a valid SVG"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
