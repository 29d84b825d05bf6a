//! A mutation fuzzer for every parser of user files, on stable Rust, driven as library
//! calls: IDX (raw and gzip), PNG (single files, with CRCs left as mutated and recomputed,
//! and folders), JPEG (baseline and progressive), `.npy`, safetensors checkpoints and
//! their `state.json`, and TOML configs. Each target starts from valid seed inputs (written
//! here, except the two JPEGs in crates/ganlab/fixtures, made by
//! scripts/make-jpeg-seeds.py: there is no JPEG encoder in our dependencies), mutates them
//! (bit flips, interesting bytes, insertions, deletions, truncation, splices; for text,
//! interesting numbers in place of numbers) and runs the parser under `catch_unwind`: any panic is a finding
//! (its input is kept). An error is the right answer to a bad input; only panics count.
//!
//! `scripts/fuzz` runs ≥ 10⁶ executions through `examples/fuzz.rs`, which also records the
//! largest single allocation Rust made (the cap it checks: [`ALLOC_CAP`]); a seeded run of
//! a few thousand executions is a unit test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::rng::SplitMix64;
use crate::train::config::TrainConfig;

/// The largest single allocation a parser may make on a fuzzed input (256 MiB: twice a
/// [`crate::data::folder::MAX_PIXELS`] RGB image, four MNIST training sets).
pub const ALLOC_CAP: usize = 256 << 20;

/// A parser run on a mutated input (`path`: where file parsers write it first).
type Parse = Box<dyn Fn(&[u8], &Path)>;

/// One fuzz target: a name, seed inputs, and the parser run on a mutated input.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    text: bool,
    run: Parse,
    /// Executions per unit of the budget (heavier targets take fewer).
    weight: u64,
}

/// What a fuzzing session found.
#[derive(Debug, Default)]
pub struct Report {
    /// Executions per target.
    pub executions: Vec<(&'static str, u64)>,
    /// Inputs that made a parser panic: (target, file the input was kept in, message).
    pub panics: Vec<(String, PathBuf, String)>,
}

impl Report {
    /// Executions in total.
    pub fn total(&self) -> u64 {
        self.executions.iter().map(|(_, n)| n).sum()
    }
}

/// Writes `bytes` to `path`, panicking on failure (the harness's own I/O, not a finding:
/// it happens outside `catch_unwind`).
fn put(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("fuzz: {}: {e}", path.display()));
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

/// `png` with every chunk's CRC recomputed, so that a mutation inside a chunk reaches the
/// decoder instead of stopping at the checksum (most mutants of a PNG otherwise do).
fn fix_png_crcs(png: &[u8]) -> Vec<u8> {
    let mut b = png.to_vec();
    let mut at = 8;
    while at + 12 <= b.len() {
        let len = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= b.len()) else {
            break;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&b[at + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        at = end + 4;
    }
    b
}

/// A target that writes the mutated input, passed through `prepare`, as one image file
/// with extension `ext` and decodes it.
fn image_file(
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    ext: &'static str,
    prepare: fn(&[u8]) -> Vec<u8>,
) -> Target {
    Target {
        name,
        seeds,
        text: false,
        run: Box::new(move |b, p| {
            let p = p.with_extension(ext);
            put(&p, &prepare(b));
            let _ = crate::data::folder::load_image(&p);
        }),
        weight: 4,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip in memory");
    gz.finish().expect("gzip in memory")
}

/// A run directory with a 1-step checkpoint of a tiny MLP GAN (the checkpoint targets'
/// seed), in `dir`.
fn tiny_run(dir: &Path) -> crate::error::Result<()> {
    let mut cfg = TrainConfig::default();
    cfg.run.steps = 1;
    cfg.run.batch_size = 8;
    cfg.run.eval_samples = 16;
    cfg.run.device = "cpu".into();
    cfg.model.mlp.hidden = 8;
    crate::train::Trainer::new(cfg, dir)?.run(&mut crate::progress::Silent)?;
    Ok(())
}

/// The targets, with seeds written under `work`.
fn targets(work: &Path) -> crate::error::Result<Vec<Target>> {
    let img = |c: i64| Tensor::rand([c, 5, 7], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let seed_file = |name: &str, write: &dyn Fn(&Path) -> crate::error::Result<()>| {
        let p = work.join(name);
        write(&p).map(|_| std::fs::read(&p).unwrap_or_default())
    };
    let png_rgb = seed_file("seed-rgb.png", &|p| crate::data::write_png(p, &img(3)))?;
    let png_grey = seed_file("seed-grey.png", &|p| crate::data::write_png(p, &img(1)))?;
    let npy = seed_file("seed.npy", &|p| {
        crate::report::npy::write_f32(p, &img(3).unsqueeze(0))
    })?;
    let raw_idx = idx(&[2, 3, 4], &(0..24).collect::<Vec<u8>>());
    let run = work.join("seed-run");
    tiny_run(&run)?;
    let ckpt = run.join("checkpoints");
    let state = std::fs::read(ckpt.join("state.json")).unwrap_or_default();
    let st_name = crate::train::checkpoint::load_state(&ckpt)?.tensors;
    let tensors = std::fs::read(ckpt.join(&st_name)).unwrap_or_default();
    let config = std::fs::read(run.join("config.toml")).unwrap_or_default();
    let folder = work.join("folder");
    std::fs::create_dir_all(&folder).ok();
    put(&folder.join("b.png"), &png_grey);
    let (ck1, ck2) = (ckpt.clone(), ckpt.clone());
    let st1 = st_name.clone();
    Ok(vec![
        Target {
            name: "idx",
            seeds: vec![raw_idx.clone(), gzip(&raw_idx), idx(&[3], &[1, 2, 3])],
            text: false,
            run: Box::new(|b, p| {
                put(p, b);
                let _ = crate::data::idx::read_idx(p);
            }),
            weight: 4,
        },
        image_file("png", vec![png_rgb.clone(), png_grey], "png", |b| {
            b.to_vec()
        }),
        image_file("png-crc-fixed", vec![png_rgb.clone()], "png", fix_png_crcs),
        // Made by scripts/make-jpeg-seeds.py: baseline RGB 4:2:0, progressive grey.
        image_file(
            "jpeg",
            vec![
                include_bytes!("../fixtures/seed-rgb-7x5.jpg").to_vec(),
                include_bytes!("../fixtures/seed-grey-progressive-9x6.jpg").to_vec(),
            ],
            "jpg",
            |b| b.to_vec(),
        ),
        Target {
            name: "png-folder",
            seeds: vec![png_rgb],
            text: false,
            run: Box::new(move |b, _| {
                put(&folder.join("a.png"), b);
                let _ = crate::data::load_image_folder(&folder, None);
                let _ = crate::data::load_image_folder(&folder, Some(4));
            }),
            weight: 2,
        },
        Target {
            name: "npy",
            seeds: vec![npy],
            text: false,
            run: Box::new(|b, p| {
                let p = p.with_extension("npy");
                put(&p, b);
                let _ = crate::metrics::eval::ImageSpec::Npy(p).load(Path::new("."), None, None);
            }),
            weight: 4,
        },
        Target {
            name: "toml-config",
            seeds: vec![config],
            text: true,
            run: Box::new(|b, _| {
                let text = String::from_utf8_lossy(b);
                if let Ok(c) = TrainConfig::from_toml_str(&text, Path::new("fuzz.toml")) {
                    let _ = c.validate();
                }
            }),
            weight: 4,
        },
        Target {
            name: "checkpoint-safetensors",
            seeds: vec![tensors],
            text: false,
            run: Box::new(move |b, _| {
                put(&ck1.join(&st1), b);
                let _ = crate::run::Run::open(ck1.parent().unwrap_or(Path::new(".")));
            }),
            weight: 1,
        },
        Target {
            name: "checkpoint-state",
            seeds: vec![state],
            text: true,
            run: Box::new(move |b, _| {
                put(&ck2.join("state.json"), b);
                let _ = crate::run::Run::open(ck2.parent().unwrap_or(Path::new(".")));
            }),
            weight: 1,
        },
    ])
}

/// Numbers worth trying in text formats and as bytes.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "65536",
    "2147483648",
    "4294967296",
    "1e9",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "0.5",
    "1e-300",
    "9999999999999999999999",
];
const BYTES: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, 0xfe, b'\n', b'"', b'[', b'}'];

/// One mutation of `input` (from `seeds`, for splices).
fn mutate(rng: &mut SplitMix64, input: &[u8], seeds: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut b = input.to_vec();
    let pos = |rng: &mut SplitMix64, len: usize| rng.below(len.max(1) as u64) as usize;
    for _ in 0..1 + rng.below(4) {
        match rng.below(if text { 8 } else { 7 }) {
            0 if !b.is_empty() => {
                let i = pos(rng, b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = pos(rng, b.len());
                b[i] = BYTES[rng.below(BYTES.len() as u64) as usize];
            }
            2 => {
                let i = pos(rng, b.len() + 1).min(b.len());
                let n = 1 + rng.below(16) as usize;
                let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                b.splice(i..i, ins);
            }
            3 if !b.is_empty() => {
                let i = pos(rng, b.len());
                let n = (1 + rng.below(64) as usize).min(b.len() - i);
                b.drain(i..i + n);
            }
            4 => {
                let n = pos(rng, b.len() + 1);
                b.truncate(n);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len() as u64) as usize];
                let i = pos(rng, b.len() + 1).min(b.len());
                let j = pos(rng, other.len() + 1).min(other.len());
                b.truncate(i);
                b.extend(&other[j..]);
            }
            6 if b.len() >= 4 => {
                // A 32-bit field (sizes, dimensions, offsets) set to an extreme.
                let i = pos(rng, b.len() - 3);
                let v: u32 = [0, 1, u32::MAX, 1 << 31, 1 << 16, 0x7fff_ffff][rng.below(6) as usize];
                let bytes = if rng.below(2) == 0 {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                b[i..i + 4].copy_from_slice(&bytes);
            }
            7 => {
                // A number in text replaced by an interesting one.
                let s = String::from_utf8_lossy(&b).into_owned();
                let starts: Vec<usize> = s
                    .char_indices()
                    .filter(|(i, c)| {
                        c.is_ascii_digit()
                            && !s[..*i].ends_with(|p: char| p.is_ascii_digit() || p == '.')
                    })
                    .map(|(i, _)| i)
                    .collect();
                if let Some(&i) = starts.get(rng.below(starts.len().max(1) as u64) as usize) {
                    let end = s[i..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                        .map_or(s.len(), |e| i + e);
                    let n = NUMBERS[rng.below(NUMBERS.len() as u64) as usize];
                    b = format!("{}{n}{}", &s[..i], &s[end..]).into_bytes();
                }
            }
            _ => {}
        }
    }
    b
}

/// Runs about `budget` executions spread over the targets (by weight), seeded by `seed`,
/// in the scratch directory `work` (created; panicking inputs are kept in
/// `work/findings`). `only` limits it to targets whose name contains it.
pub fn run(
    budget: u64,
    seed: u64,
    work: &Path,
    only: Option<&str>,
) -> crate::error::Result<Report> {
    use crate::error::IoContext;
    std::fs::create_dir_all(work.join("findings")).at(work)?;
    let targets = targets(work)?;
    let total_weight: u64 = targets.iter().map(|t| t.weight).sum();
    let mut report = Report::default();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let scratch = work.join("input");
    for t in targets
        .iter()
        .filter(|t| only.is_none_or(|o| t.name.contains(o)))
    {
        let n = (budget * t.weight).div_ceil(total_weight).max(1);
        let mut rng = SplitMix64::new(seed ^ crate::rng::mix64(t.name.len() as u64 + t.weight));
        // Mutants of mutants too: a small corpus grown from the seeds.
        let mut corpus = t.seeds.clone();
        for i in 0..n {
            let base = &corpus[rng.below(corpus.len() as u64) as usize];
            let input = mutate(&mut rng, base, &t.seeds, t.text);
            let r = catch_unwind(AssertUnwindSafe(|| (t.run)(&input, &scratch)));
            if let Err(e) = r {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let keep = work.join("findings").join(format!("{}-{i}", t.name));
                put(&keep, &input);
                report.panics.push((t.name.to_string(), keep, msg));
            }
            if corpus.len() < 64 && rng.below(16) == 0 {
                corpus.push(input);
            }
        }
        report.executions.push((t.name, n));
    }
    std::panic::set_hook(quiet);
    Ok(report)
}

#[cfg(test)]
mod tests {
    /// A seeded short session (about 3,000 executions over all targets, a few seconds):
    /// no parser panics. The full session is `scripts/fuzz` (≥ 10⁶ executions).
    #[test]
    fn seeded_fuzz_session_finds_no_panic() {
        let _rng = crate::test_rng_lock();
        let work = std::env::temp_dir().join(format!("ganlab-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let r = super::run(3000, 7, &work, None).unwrap();
        assert!(r.total() >= 2900, "{:?}", r.executions);
        assert!(r.panics.is_empty(), "{:#?}", r.panics);
        std::fs::remove_dir_all(&work).unwrap();
    }
}
