//! `ganlab render-digits` (used by `scripts/fetch-data synth-digits`): SimGAN's *simulator*
//! for digits. Digits 0–9 are drawn from the outlines of TrueType fonts (read with
//! ttf-parser, filled with anti-aliasing by tiny-skia, which resvg already brings) with a
//! random affine jitter, and laid out as MNIST lays out its digits: white on black, 28×28,
//! the glyph scaled so that its larger side is 20 px, then moved so that its centre of mass
//! is the image centre (LeCun et al.'s description of MNIST). The jitter per digit:
//! rotation U(−12°, 12°), shear U(−0.25, 0.25), scale U(0.8, 1.05), horizontal squeeze
//! U(0.75, 1.1), extra stroke width U(0, 1.5) px, and a shift U(−1, 1) px after centring.
//! The digits are clean and regular; real handwriting is not, which is the gap SimGAN's
//! refiner is trained to close (`ganlab::tasks::simgan`).
//!
//! Output: the MNIST file layout (`{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`) and
//! `render.json` (the fonts, counts and seed), so `ganlab::data::idx` reads it like MNIST.
//! The same fonts, counts and seed give the same bytes.

use std::path::{Path, PathBuf};

use clap::Args;
use ganlab::error::GanError;
use ganlab::rng::SplitMix64;
use resvg::tiny_skia;

/// Arguments of `ganlab render-digits`.
#[derive(Args, Debug)]
pub struct RenderDigitsArgs {
    /// TrueType/OpenType font files to draw from (each digit picks one at random).
    #[arg(long = "font", required = true)]
    fonts: Vec<PathBuf>,
    /// Output directory (created; must be new or empty).
    #[arg(long)]
    out: PathBuf,
    /// Training digits.
    #[arg(long, default_value_t = 60000)]
    train: usize,
    /// Test digits.
    #[arg(long, default_value_t = 10000)]
    test: usize,
    /// Seed of every random choice (font, digit, jitter).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Image side (MNIST's).
pub const SIDE: u32 = 28;

/// A font's digit outlines as tiny-skia paths in font units (y up), with their bounding boxes.
pub struct DigitFont {
    glyphs: Vec<(tiny_skia::Path, tiny_skia::Rect)>,
}

/// Collects a glyph outline into a tiny-skia path.
struct Outline(tiny_skia::PathBuilder);

impl ttf_parser::OutlineBuilder for Outline {
    fn move_to(&mut self, x: f32, y: f32) {
        self.0.move_to(x, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.0.line_to(x, y);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        self.0.quad_to(x1, y1, x, y);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        self.0.cubic_to(x1, y1, x2, y2, x, y);
    }
    fn close(&mut self) {
        self.0.close();
    }
}

impl DigitFont {
    /// Reads the outlines of '0'…'9' from the font file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let data = std::fs::read(path)
            .map_err(|e| GanError::Input(format!("font {}: {e}", path.display())))?;
        let face = ttf_parser::Face::parse(&data, 0).map_err(|e| {
            GanError::Input(format!(
                "{}: not a TrueType/OpenType font ({e})",
                path.display()
            ))
        })?;
        let mut glyphs = Vec::new();
        for ch in '0'..='9' {
            let missing = || GanError::Input(format!("{}: no glyph for {ch:?}", path.display()));
            let id = face.glyph_index(ch).ok_or_else(missing)?;
            let mut o = Outline(tiny_skia::PathBuilder::new());
            face.outline_glyph(id, &mut o).ok_or_else(missing)?;
            let p = o.0.finish().ok_or_else(missing)?;
            let b = p.bounds();
            glyphs.push((p, b));
        }
        Ok(Self { glyphs })
    }
}

/// One digit's random draw: which glyph and how it is placed.
#[derive(Debug, Clone, Copy)]
pub struct Jitter {
    /// Radians.
    pub rotation: f32,
    /// x += shear · y.
    pub shear: f32,
    /// Overall scale of the 20 px box.
    pub scale: f32,
    /// Horizontal scale on top of `scale`.
    pub squeeze: f32,
    /// Stroke width added around the filled outline, px.
    pub stroke: f32,
    /// Shift after centring, px.
    pub shift: (f32, f32),
}

impl Jitter {
    /// No jitter: the glyph as MNIST would lay it out.
    #[cfg(test)]
    pub const NONE: Jitter = Jitter {
        rotation: 0.0,
        shear: 0.0,
        scale: 1.0,
        squeeze: 1.0,
        stroke: 0.0,
        shift: (0.0, 0.0),
    };

    /// A random jitter (module docs give the ranges).
    pub fn draw(rng: &mut SplitMix64) -> Self {
        let mut u = |a: f32, b: f32| a + (b - a) * rng.next_f64() as f32;
        Jitter {
            rotation: u(-12.0, 12.0).to_radians(),
            shear: u(-0.25, 0.25),
            scale: u(0.8, 1.05),
            squeeze: u(0.75, 1.1),
            stroke: u(0.0, 1.5),
            shift: (u(-1.0, 1.0), u(-1.0, 1.0)),
        }
    }
}

/// Fills (and strokes, when `stroke` > 0) `path` (already in pixels) into a SIDE² coverage
/// image, row-major, 0–255.
fn coverage(path: &tiny_skia::Path, stroke: f32) -> Vec<u8> {
    let mut pixmap = tiny_skia::Pixmap::new(SIDE, SIDE).expect("28×28 is a valid size");
    let mut paint = tiny_skia::Paint::default();
    paint.set_color(tiny_skia::Color::WHITE);
    paint.anti_alias = true;
    let id = tiny_skia::Transform::identity();
    pixmap.fill_path(path, &paint, tiny_skia::FillRule::Winding, id, None);
    if stroke > 0.0 {
        let s = tiny_skia::Stroke {
            width: stroke,
            line_join: tiny_skia::LineJoin::Round,
            ..Default::default()
        };
        pixmap.stroke_path(path, &paint, &s, id, None);
    }
    pixmap.data().chunks_exact(4).map(|p| p[3]).collect()
}

/// Digit `digit` of `font` with `jitter`, laid out as MNIST: 28×28 bytes, white on black.
pub fn render(font: &DigitFont, digit: usize, jitter: Jitter) -> Vec<u8> {
    let (path, b) = &font.glyphs[digit];
    let k = 20.0 / b.width().max(b.height());
    let (cx, cy) = (b.x() + b.width() / 2.0, b.y() + b.height() / 2.0);
    let c = SIDE as f32 / 2.0;
    // Font units (y up) → a 20 px box about the origin (y down) → jitter → the image centre.
    let linear = tiny_skia::Transform::from_translate(-cx, -cy)
        .post_scale(k, -k)
        .post_scale(jitter.scale * jitter.squeeze, jitter.scale)
        .post_concat(tiny_skia::Transform::from_row(
            1.0,
            0.0,
            jitter.shear,
            1.0,
            0.0,
            0.0,
        ))
        .post_concat(tiny_skia::Transform::from_rotate(
            jitter.rotation.to_degrees(),
        ))
        .post_translate(c, c);
    let placed = |t: tiny_skia::Transform| {
        path.clone()
            .transform(t)
            .expect("a finite affine map of a glyph outline")
    };
    let first = coverage(&placed(linear), jitter.stroke);
    // Centre of mass to the image centre (plus the shift).
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (i, &v) in first.iter().enumerate() {
        let (y, x) = (
            (i / SIDE as usize) as f64 + 0.5,
            (i % SIDE as usize) as f64 + 0.5,
        );
        m += v as f64;
        mx += v as f64 * x;
        my += v as f64 * y;
    }
    if m == 0.0 {
        return first;
    }
    let dx = c - (mx / m) as f32 + jitter.shift.0;
    let dy = c - (my / m) as f32 + jitter.shift.1;
    coverage(&placed(linear.post_translate(dx, dy)), jitter.stroke)
}

/// `n` digits with labels: digit i mod 10 (balanced), font and jitter drawn from `rng`.
pub fn render_set(fonts: &[DigitFont], n: usize, rng: &mut SplitMix64) -> (Vec<u8>, Vec<u8>) {
    let mut images = Vec::with_capacity(n * (SIDE * SIDE) as usize);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let digit = i % 10;
        let font = &fonts[rng.below(fonts.len() as u64) as usize];
        let j = Jitter::draw(rng);
        images.extend(render(font, digit, j));
        labels.push(digit as u8);
    }
    (images, labels)
}

/// `ganlab render-digits`.
pub fn run(a: RenderDigitsArgs) -> anyhow::Result<()> {
    for (flag, n) in [("--train", a.train), ("--test", a.test)] {
        if !(1..=1_000_000).contains(&n) {
            return Err(GanError::config(flag, format!("must be in [1, 1000000], got {n}")).into());
        }
    }
    let fonts = a
        .fonts
        .iter()
        .map(|p| DigitFont::load(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    ganlab::io::create_output_dir(&a.out)?;
    let mut rng = SplitMix64::new(a.seed);
    for (prefix, n) in [("train", a.train), ("t10k", a.test)] {
        let (images, labels) = render_set(&fonts, n, &mut rng);
        let s = SIDE as usize;
        let dir = &a.out;
        ganlab::data::idx::write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[n, s, s],
            &images,
        )?;
        ganlab::data::idx::write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            &[n],
            &labels,
        )?;
    }
    let names: Vec<String> = a
        .fonts
        .iter()
        .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into())
        .collect();
    let meta = serde_json::json!({
        "fonts": names, "train": a.train, "test": a.test, "seed": a.seed, "side": SIDE,
    });
    ganlab::io::write_atomic(
        &a.out.join("render.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    println!(
        "rendered {} + {} digits from {} fonts into {}",
        a.train,
        a.test,
        fonts.len(),
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

    /// Without jitter a digit is laid out as MNIST: its larger side 20 px (±1 px of
    /// anti-aliasing), its centre of mass at the centre (±0.5 px); a jittered set is
    /// balanced, deterministic for a seed, and differs between seeds. Needs Debian's
    /// fonts-dejavu-core (`scripts/fetch-data synth-digits` installs it; .ci/run too).
    #[test]
    fn digits_are_laid_out_as_mnist() {
        let font = DigitFont::load(Path::new(FONT)).expect("fonts-dejavu-core is installed");
        for digit in [0, 1, 7] {
            let img = render(&font, digit, Jitter::NONE);
            let on: Vec<(usize, usize)> = (0..img.len())
                .filter(|&i| img[i] > 0)
                .map(|i| (i / 28, i % 28))
                .collect();
            let rows =
                on.iter().map(|p| p.0).max().unwrap() - on.iter().map(|p| p.0).min().unwrap() + 1;
            let cols =
                on.iter().map(|p| p.1).max().unwrap() - on.iter().map(|p| p.1).min().unwrap() + 1;
            assert!(
                (20..=22).contains(&rows.max(cols)),
                "digit {digit}: {rows}×{cols}"
            );
            let m: f64 = img.iter().map(|&v| v as f64).sum();
            let cy: f64 = img
                .iter()
                .enumerate()
                .map(|(i, &v)| v as f64 * ((i / 28) as f64 + 0.5))
                .sum::<f64>()
                / m;
            let cx: f64 = img
                .iter()
                .enumerate()
                .map(|(i, &v)| v as f64 * ((i % 28) as f64 + 0.5))
                .sum::<f64>()
                / m;
            assert!(
                (cy - 14.0).abs() < 0.5 && (cx - 14.0).abs() < 0.5,
                "digit {digit}: centre ({cx}, {cy})"
            );
        }
        let fonts = [font];
        let (a, la) = render_set(&fonts, 20, &mut SplitMix64::new(3));
        let (b, lb) = render_set(&fonts, 20, &mut SplitMix64::new(3));
        let (c, _) = render_set(&fonts, 20, &mut SplitMix64::new(4));
        assert_eq!((a.len(), &la), (20 * 784, &lb));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(la[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let e = DigitFont::load(Path::new("/nonexistent.ttf"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("nonexistent.ttf"), "{e}");
    }
}
