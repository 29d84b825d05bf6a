//! Image folders (PNG and JPEG) and PNG output.
//!
//! Loading: every `.png`, `.jpg`, `.jpeg` file directly in the folder (case-insensitive,
//! sorted by name, so the order is reproducible), decoded to 8 bits (16-bit PNG is
//! rounded, palettes expanded, transparency composited on white). If every image is grey the set has one channel,
//! otherwise three (grey images are repeated to RGB). With `size = Some(s)` each image is
//! resized so its shorter side is s (bilinear, antialiased when shrinking) and centre-cropped
//! to s × s; without it all images must share one size. Values are scaled to [-1, 1].
//! An image beyond [`MAX_SIDE`] pixels a side or [`MAX_PIXELS`] pixels is refused from its
//! header, before decoding.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::idx::ImageSet;
use crate::error::{GanError, IoContext, Result};

/// One decoded image: 8-bit, `channels` (1 or 3) interleaved, row-major.
struct Decoded {
    width: usize,
    height: usize,
    channels: usize,
    pixels: Vec<u8>,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> GanError {
    GanError::Input(format!("{}: cannot read image: {msg}", path.display()))
}

/// A colour value `v` with opacity `a` composited on white (non-premultiplied alpha):
/// v·a/255 + 255·(1 − a/255), rounded. Transparent pixels of emoji and icons carry arbitrary
/// colour (often black); dropping alpha would show it.
fn over_white(v: u8, a: u8) -> u8 {
    let (v, a) = (v as u32, a as u32);
    ((v * a + 255 * (255 - a) + 127) / 255) as u8
}

/// The largest side of an image ganlab decodes, in pixels.
pub const MAX_SIDE: u64 = 8192;
/// The most pixels of an image ganlab decodes (2^25, 32 Mpx: 96 MiB as 8-bit RGB).
pub const MAX_PIXELS: u64 = 1 << 25;

/// Refuses an image whose header gives a side beyond [`MAX_SIDE`], more than
/// [`MAX_PIXELS`], or no pixels — checked before decoding allocates anything.
fn check_dims(path: &Path, w: u64, h: u64) -> Result<()> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || w * h > MAX_PIXELS {
        return Err(bad(
            path,
            format!(
                "{w} × {h} pixels; ganlab reads images of 1 to {MAX_SIDE} pixels a side and \
                 at most {MAX_PIXELS} pixels"
            ),
        ));
    }
    Ok(())
}

/// Decodes a .png, .jpg or .jpeg file (by its extension).
fn decode(path: &Path) -> Result<Decoded> {
    let ext = path
        .extension()
        .and_then(|x| x.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "png" => decode_png(path),
        "jpg" | "jpeg" => decode_jpeg(path),
        _ => Err(bad(path, "not a .png, .jpg or .jpeg file")),
    }
}

fn decode_png(path: &Path) -> Result<Decoded> {
    let mut dec = png::Decoder::new(BufReader::new(File::open(path).at(path)?));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(|e| bad(path, e))?;
    let (w, h) = reader.info().size();
    check_dims(path, w as u64, h as u64)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(path, e))?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width as usize, info.height as usize);
    let (channels, pixels) = match info.color_type {
        png::ColorType::Grayscale => (1, buf),
        png::ColorType::GrayscaleAlpha => {
            (1, buf.chunks(2).map(|p| over_white(p[0], p[1])).collect())
        }
        png::ColorType::Rgb => (3, buf),
        png::ColorType::Rgba => (
            3,
            buf.chunks(4)
                .flat_map(|p| [0, 1, 2].map(|c| over_white(p[c], p[3])))
                .collect(),
        ),
        other => return Err(bad(path, format!("unsupported PNG colour type {other:?}"))),
    };
    Ok(Decoded {
        width: w,
        height: h,
        channels,
        pixels,
    })
}

fn decode_jpeg(path: &Path) -> Result<Decoded> {
    let mut dec = jpeg_decoder::Decoder::new(BufReader::new(File::open(path).at(path)?));
    dec.read_info().map_err(|e| bad(path, e))?;
    let head = dec.info().ok_or_else(|| bad(path, "no JPEG header"))?;
    check_dims(path, head.width as u64, head.height as u64)?;
    let pixels = dec.decode().map_err(|e| bad(path, e))?;
    let info = dec.info().ok_or_else(|| bad(path, "no JPEG header"))?;
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => {
            return Err(bad(
                path,
                format!("unsupported JPEG pixel format {other:?}"),
            ))
        }
    };
    Ok(Decoded {
        width: info.width as usize,
        height: info.height as usize,
        channels,
        pixels,
    })
}

/// Image files directly in `dir`, sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .at(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                    matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(GanError::Input(format!(
            "{}: no .png/.jpg/.jpeg images",
            dir.display()
        )));
    }
    Ok(files)
}

/// [C, H, W] float in [0, 255] → resized (shorter side `s`) and centre-cropped to s × s.
pub fn resize_crop(x: &Tensor, s: i64) -> Tensor {
    let (h, w) = (x.size()[1], x.size()[2]);
    let scale = s as f64 / h.min(w) as f64;
    let (nh, nw) = (
        ((h as f64 * scale).round() as i64).max(s),
        ((w as f64 * scale).round() as i64).max(s),
    );
    let y = if (nh, nw) == (h, w) {
        x.shallow_clone()
    } else {
        x.unsqueeze(0)
            .internal_upsample_bilinear2d_aa([nh, nw], false, None, None)
            .squeeze_dim(0)
    };
    y.narrow(1, (nh - s) / 2, s).narrow(2, (nw - s) / 2, s)
}

/// Images [n, C, h, w] resized to s × s (bilinear, antialiased when shrinking); the
/// input itself when it has that size.
pub fn resize_batch(x: &Tensor, s: i64) -> Tensor {
    let sz = x.size();
    if sz[2] == s && sz[3] == s {
        return x.shallow_clone();
    }
    x.internal_upsample_bilinear2d_aa([s, s], false, None, None)
}

/// One PNG or JPEG file as [C, H, W] in [−1, 1] (C = 1 grey or 3 RGB, transparency
/// composited on white).
pub fn load_image(path: &Path) -> Result<Tensor> {
    let d = decode(path)?;
    let x = Tensor::from_slice(&d.pixels)
        .view([d.height as i64, d.width as i64, d.channels as i64])
        .permute([2, 0, 1])
        .to_kind(Kind::Float);
    Ok((x / 127.5 - 1.0).clamp(-1.0, 1.0))
}

/// Images [n, C, H, W] converted to `channels` (1: mean of RGB; 3: grey repeated).
pub fn to_channels(images: Tensor, channels: i64) -> Tensor {
    match (images.size()[1], channels) {
        (3, 1) => images.mean_dim(1, true, tch::Kind::Float),
        (1, 3) => images.repeat([1, 3, 1, 1]),
        _ => images,
    }
}

/// Loads every image in `dir` (see the module doc) as [n, C, H, W] in [-1, 1], no labels.
pub fn load_image_folder(dir: &Path, size: Option<i64>) -> Result<ImageSet> {
    let files = image_files(dir)?;
    let decoded: Vec<(PathBuf, Decoded)> = files
        .into_iter()
        .map(|p| {
            let d = decode(&p)?;
            Ok((p, d))
        })
        .collect::<Result<_>>()?;
    let channels = if decoded.iter().all(|(_, d)| d.channels == 1) {
        1
    } else {
        3
    };
    let (h0, w0) = (decoded[0].1.height, decoded[0].1.width);
    let mut images = Vec::with_capacity(decoded.len());
    for (p, d) in &decoded {
        let x = Tensor::from_slice(&d.pixels)
            .view([d.height as i64, d.width as i64, d.channels as i64])
            .permute([2, 0, 1])
            .to_kind(Kind::Float);
        let x = if d.channels < channels {
            x.expand([channels as i64, d.height as i64, d.width as i64], false)
        } else {
            x
        };
        let x = match size {
            Some(s) => resize_crop(&x, s),
            None if (d.height, d.width) != (h0, w0) => {
                return Err(GanError::Input(format!(
                    "{}: {}×{} but the first image is {h0}×{w0}; pass a size to resize",
                    p.display(),
                    d.width,
                    d.height
                )))
            }
            None => x,
        };
        images.push(x);
    }
    let images = Tensor::stack(&images, 0) / 127.5 - 1.0;
    Ok(ImageSet {
        images: images.clamp(-1.0, 1.0),
        labels: None,
    })
}

/// [C, H, W] in [-1, 1] (C = 1 or 3) → 8-bit values, rounded (the quantisation the metrics
/// protocol assumes).
fn to_u8(image: &Tensor) -> Result<(usize, usize, usize, Vec<u8>)> {
    let s = image.size();
    if s.len() != 3 || !(s[0] == 1 || s[0] == 3) {
        return Err(GanError::Input(format!(
            "PNG: expected an image [1 or 3, H, W], got {s:?}"
        )));
    }
    let v = ((image.to_kind(Kind::Float).clamp(-1.0, 1.0) + 1.0) * 127.5)
        .round()
        .permute([1, 2, 0])
        .contiguous()
        .to_kind(Kind::Uint8)
        .flatten(0, -1);
    Ok((
        s[0] as usize,
        s[1] as usize,
        s[2] as usize,
        Vec::<u8>::try_from(&v)?,
    ))
}

/// Writes one image [C, H, W] in [-1, 1] as an 8-bit grey or RGB PNG (atomically).
pub fn write_png(path: &Path, image: &Tensor) -> Result<()> {
    let (c, h, w, data) = to_u8(image)?;
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w as u32, h as u32);
        enc.set_color(if c == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc
            .write_header()
            .map_err(|e| GanError::Input(format!("PNG encoder: {e}")))?;
        wr.write_image_data(&data)
            .map_err(|e| GanError::Input(format!("PNG encoder: {e}")))?;
    }
    crate::io::write_atomic(path, &bytes)
}

/// Tiles images [n, C, H, W] into one [C, rows·(H+pad)+pad, cols·(W+pad)+pad] image with
/// `pad` pixels of white (1.0) between and around tiles; `cols` per row.
pub fn grid(images: &Tensor, cols: i64, pad: i64) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 4 || s[0] < 1 || cols < 1 {
        return Err(GanError::Input(format!(
            "grid: expected images [n >= 1, C, H, W] and cols >= 1, got {s:?}"
        )));
    }
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let rows = (n + cols - 1) / cols;
    let out = Tensor::ones(
        [c, rows * (h + pad) + pad, cols * (w + pad) + pad],
        (Kind::Float, images.device()),
    );
    for i in 0..n {
        let (r, k) = (i / cols, i % cols);
        out.narrow(1, pad + r * (h + pad), h)
            .narrow(2, pad + k * (w + pad), w)
            .copy_(&images.get(i).to_kind(Kind::Float));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32 of PNG chunks (ISO 3309 polynomial, bitwise).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// A PNG whose IHDR claims `w` × `h` RGB pixels, with a one-byte IDAT (the file is
    /// ~60 bytes whatever it claims).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            out.extend((data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend(data);
            out.extend(&body);
            out.extend(crc32(&body).to_be_bytes());
        };
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[0x78]);
        chunk(b"IEND", &[]);
        out
    }

    /// Issue 18 item 1: headers claiming 2^31 rows, 1 × 4,000,000, 20000 × 20000 or
    /// 6000 × 6000 pixels (within the side limit, over the pixel budget) are refused from
    /// the header, naming the limits, by both the single-image and the folder loader; the
    /// CRC helper matches a PNG the png crate wrote.
    #[test]
    fn oversized_headers_are_refused_before_decoding() {
        let dir = std::env::temp_dir().join(format!("ganlab-huge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_png(
            &dir.join("ok.png"),
            &Tensor::zeros([3, 2, 3], (Kind::Float, tch::Device::Cpu)),
        )
        .unwrap();
        let ok = std::fs::read(dir.join("ok.png")).unwrap();
        assert_eq!(
            &ok[29..33],
            &crc32(&ok[12..29]).to_be_bytes(),
            "IHDR CRC of a real PNG"
        );
        for (w, h) in [(1, 1 << 31), (1, 4_000_000), (20_000, 20_000), (6000, 6000)] {
            let f = dir.join("big.png");
            std::fs::write(&f, png_claiming(w, h)).unwrap();
            let e = load_image(&f).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{w} × {h} pixels")) && e.contains("8192"),
                "{e}"
            );
            let e = load_image_folder(&dir, Some(8)).unwrap_err().to_string();
            assert!(e.contains("big.png") && e.contains("8192"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Transparency over white, by hand: a fully transparent pixel is white whatever its
    /// colour, an opaque one keeps it, half-transparent black is (255·127 + 127)/255 → 127.
    #[test]
    fn alpha_is_composited_on_white() {
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(10, 255), 10);
        assert_eq!(over_white(0, 128), 127);
        assert_eq!(over_white(200, 128), 227);
    }

    /// PNG round trip (grey and RGB, values survive 8-bit quantisation exactly), a grid's
    /// geometry, folder loading with resize/crop, mixed sizes without a size, and corrupt
    /// files as clear errors.
    #[test]
    fn png_roundtrip_folder_and_errors() {
        let dir = std::env::temp_dir().join(format!("ganlab-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Exactly representable values: k/127.5 − 1 for integers k.
        let rgb = (Tensor::arange(3 * 4 * 6, (Kind::Float, tch::Device::Cpu)).view([3, 4, 6])
            * 3.0)
            / 127.5
            - 1.0;
        write_png(&dir.join("b.png"), &rgb).unwrap();
        write_png(&dir.join("a.PNG"), &rgb.narrow(0, 0, 1)).unwrap();
        let set = load_image_folder(&dir, None).unwrap();
        assert_eq!(set.images.size(), vec![2, 3, 4, 6]);
        // a.PNG (grey) sorts first and is repeated to RGB.
        let a = set.images.get(0);
        assert!((a.get(0) - a.get(2)).abs().max().double_value(&[]) == 0.0);
        let diff = (set.images.get(1) - &rgb).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "round trip error {diff}");
        let sq = load_image_folder(&dir, Some(2)).unwrap();
        assert_eq!(sq.images.size(), vec![2, 3, 2, 2]);

        let g = grid(&set.images, 2, 1).unwrap();
        assert_eq!(g.size(), vec![3, 1 + 4 + 1, 1 + 2 * (6 + 1)]);
        assert_eq!(g.double_value(&[0, 0, 0]), 1.0);

        write_png(&dir.join("c.png"), &rgb.narrow(1, 0, 2)).unwrap();
        let e = load_image_folder(&dir, None).unwrap_err().to_string();
        assert!(e.contains("c.png") && e.contains("pass a size"), "{e}");
        std::fs::write(dir.join("d.jpg"), b"not a jpeg").unwrap();
        let e = load_image_folder(&dir, Some(2)).unwrap_err().to_string();
        assert!(
            e.contains("d.jpg") && e.contains("cannot read image"),
            "{e}"
        );
        std::fs::remove_file(dir.join("d.jpg")).unwrap();
        std::fs::write(dir.join("e.png"), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
        let e = load_image_folder(&dir, Some(2)).unwrap_err().to_string();
        assert!(e.contains("e.png"), "{e}");
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(load_image_folder(&empty, None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
