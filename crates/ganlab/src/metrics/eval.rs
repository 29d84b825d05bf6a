//! `ganlab eval`: image sets named by SPEC, features by an extractor, metrics on the
//! features; real-set features cached by content hash. Protocol: docs/METRICS.md.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::extractors::{extract_all, FeatureExtractor, InceptionFid, MnistCnn};
use super::features::{frechet_distance, inception_score, kid, prdc, FeatureStats, MeanStd};
use crate::data::{load_image_set, Split};
use crate::error::{GanError, IoContext, Result};
use crate::io::{named, write_safetensors_atomic};
use crate::progress::Progress;

/// Where images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSpec {
    /// `NAME[:train|:test]`: the IDX set in `<data>/NAME` (mnist, fashion-mnist), train by default.
    Dataset(String, Split),
    /// A directory holding MNIST-layout IDX files, with `:train`/`:test`.
    IdxDir(PathBuf, Split),
    /// A float32 .npy of images [n, C, H, W] in [-1, 1] (e.g. generated samples).
    Npy(PathBuf),
    /// A folder of PNG/JPEG images ([`crate::data::load_image_folder`]).
    Folder(PathBuf),
    /// A run directory with an image generator: samples from its newest checkpoint, or
    /// (`DIR@STEP`) from the kept checkpoint of that step.
    Run(PathBuf, Option<u64>),
}

impl ImageSpec {
    /// Parses SPEC: `x.npy`; a run directory, `DIR@STEP` for one of its kept checkpoints; a
    /// directory holding images; `DIR[:split]` for a directory of IDX files; else
    /// `NAME[:split]`.
    pub fn parse(s: &str) -> Result<Self> {
        if s.ends_with(".npy") {
            return Ok(Self::Npy(PathBuf::from(s)));
        }
        if let Some((dir, step)) = s.rsplit_once('@') {
            if Path::new(dir).join("checkpoints").is_dir() && !Path::new(s).exists() {
                let step = step.parse().map_err(|_| {
                    GanError::config(
                        "SPEC",
                        format!(
                            "{s:?}: after @ comes a checkpoint step (an integer), got {step:?}"
                        ),
                    )
                })?;
                return Self::run_dir(dir).map(|d| Self::Run(d, Some(step)));
            }
        }
        let (base, split) = match s.rsplit_once(':') {
            Some((b, "train")) => (b, Split::Train),
            Some((b, "test")) => (b, Split::Test),
            Some((_, other)) => {
                return Err(GanError::config(
                    "SPEC",
                    format!("split must be :train or :test, got :{other} in {s:?}"),
                ))
            }
            None => (s, Split::Train),
        };
        if Path::new(s).join("checkpoints").is_dir() {
            return Self::run_dir(s).map(|d| Self::Run(d, None));
        }
        if Path::new(s).is_dir() && crate::data::folder::image_files(Path::new(s)).is_ok() {
            return Ok(Self::Folder(PathBuf::from(s)));
        }
        if Path::new(base).is_dir() {
            let idx = ["train", "t10k"].iter().any(|p| {
                ["", ".gz"].iter().any(|z| {
                    Path::new(base)
                        .join(format!("{p}-images-idx3-ubyte{z}"))
                        .is_file()
                })
            });
            let cifar = [Split::Train, Split::Test]
                .iter()
                .any(|&sp| !crate::data::cifar::batch_files(Path::new(base), sp).is_empty());
            if !idx && !cifar {
                return Err(GanError::Input(format!(
                    "{base}: holds no .png/.jpg/.jpeg images, no IDX files \
                     (train-images-idx3-ubyte[.gz]), no CIFAR batches and is not a run directory \
                     (config.toml + checkpoints/)"
                )));
            }
            return Ok(Self::IdxDir(PathBuf::from(base), split));
        }
        match base {
            "mnist" | "fashion-mnist" => Ok(Self::Dataset(base.to_string(), split)),
            _ => Err(GanError::config(
                "SPEC",
                format!(
                    "{s:?} is not a .npy file, a directory or a dataset name (mnist, fashion-mnist)"
                ),
            )),
        }
    }

    /// `s`, a directory with checkpoints/, as a run directory: it must hold its config.toml.
    fn run_dir(s: &str) -> Result<PathBuf> {
        if !Path::new(s).join("config.toml").is_file() {
            // Not read as an image folder of its grids: that would score the wrong images
            // without a word.
            return Err(GanError::Input(format!(
                "{s}: a run directory (it has checkpoints/) without its config.toml; \
                 restore config.toml or pass the images as a folder of their own"
            )));
        }
        Ok(PathBuf::from(s))
    }

    /// Loads the images (all of them; `n` takes the first n); `size` resizes and
    /// centre-crops folder images to size × size (other sources keep their size).
    ///
    /// `n` must be in [1, [`MAX_EVAL_IMAGES`]] and `size` in [1, [`MAX_EVAL_SIZE`]]; the
    /// images must be [n ≥ 1, 1 or 3, H ≥ 1, W ≥ 1] with finite values in [−1, 1] (up to
    /// [`RANGE_SLACK`] of rounding) — data in [0, 1] or [0, 255] is refused, not clamped.
    pub fn load(&self, data_dir: &Path, n: Option<i64>, size: Option<i64>) -> Result<Tensor> {
        if let Some(n) = n.filter(|n| !(1..=MAX_EVAL_IMAGES).contains(n)) {
            return Err(GanError::config(
                "--n",
                format!("must be in [1, {MAX_EVAL_IMAGES}], got {n}"),
            ));
        }
        if let Some(s) = size.filter(|s| !(1..=MAX_EVAL_SIZE).contains(s)) {
            return Err(GanError::config(
                "--size",
                format!("must be in [1, {MAX_EVAL_SIZE}], got {s}"),
            ));
        }
        let images = match self {
            Self::Dataset(name, split) => load_image_set(&data_dir.join(name), *split)?.images,
            Self::IdxDir(dir, split) => load_image_set(dir, *split)?.images,
            Self::Npy(p) => crate::report::npy::read_f32(p)?,
            Self::Folder(p) => crate::data::load_image_folder(p, size)?.images,
            Self::Run(dir, step) => sample_run(dir, *step, n)?,
        };
        let sz = images.size();
        if sz.len() != 4 || sz[0] < 1 || !matches!(sz[1], 1 | 3) || sz[2] < 1 || sz[3] < 1 {
            return Err(GanError::Input(format!(
                "{self:?}: expected images [n ≥ 1, 1 or 3 channels, H, W], got shape {sz:?}"
            )));
        }
        let have = sz[0];
        let images = match n {
            Some(n) if n > have => {
                return Err(GanError::Input(format!(
                    "{self:?}: asked for {n} images, it has {have}"
                )))
            }
            Some(n) => images.narrow(0, 0, n),
            None => images,
        };
        let finite = bool::try_from(images.isfinite().all())?;
        let (lo, hi) = (
            images.min().double_value(&[]),
            images.max().double_value(&[]),
        );
        if !finite || lo < -1.0 - RANGE_SLACK || hi > 1.0 + RANGE_SLACK {
            return Err(GanError::Input(format!(
                "{self:?}: pixel values must be finite and in [-1, 1] (found {}); scale \
                 [0, 255] data by x / 127.5 - 1 and [0, 1] data by 2x - 1",
                if finite {
                    format!("[{lo}, {hi}]")
                } else {
                    "NaN or inf".to_string()
                }
            )));
        }
        Ok(images)
    }
}

/// The most images `ganlab eval --n` takes from one set.
pub const MAX_EVAL_IMAGES: i64 = 1_000_000;
/// The largest `ganlab eval --size`.
pub const MAX_EVAL_SIZE: i64 = 1024;
/// How far outside [−1, 1] a pixel may be (rounding of a generator's tanh or of a scaling).
pub const RANGE_SLACK: f64 = 1e-3;

/// `n` samples (default: the run's `eval_samples`) of the run in `dir`, drawn in chunks of
/// 1000 latent codes (seeds 0, 1, ...; BatchNorm statistics per chunk).
fn sample_run(dir: &Path, step: Option<u64>, n: Option<i64>) -> Result<Tensor> {
    let run = crate::run::Run::open_at(dir, step)?;
    let t = run.generative()?;
    let n = n.unwrap_or(run.config().run.eval_samples);
    let mut parts = Vec::new();
    let mut done = 0;
    while done < n {
        let len = 1000.min(n - done);
        parts.push(t.sample(len, parts.len() as u64).to_device(Device::Cpu));
        done += len;
    }
    let x = Tensor::cat(&parts, 0);
    if x.dim() != 4 {
        return Err(GanError::Input(format!(
            "{}: the run generates {:?} samples, not images",
            dir.display(),
            x.size()
        )));
    }
    Ok(x)
}

/// Which extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractorKind {
    /// The FID Inception-v3 (2048-d).
    Inception,
    /// ccexam's MNIST CNN (128-d, 10 logits).
    MnistCnn,
}

impl ExtractorKind {
    /// Parses `inception` or `mnist-cnn`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "inception" => Ok(Self::Inception),
            "mnist-cnn" => Ok(Self::MnistCnn),
            _ => Err(GanError::config(
                "--extractor",
                format!("must be inception or mnist-cnn, got {s:?}"),
            )),
        }
    }

    /// Loads it from `<data>/inception/default_1.pt` or `<data>/ccexam/mnist_cnn.safetensors`.
    pub fn load(self, data_dir: &Path, device: Device) -> Result<Box<dyn FeatureExtractor>> {
        Ok(match self {
            Self::Inception => Box::new(InceptionFid::load(
                &data_dir.join("inception/default_1.pt"),
                device,
            )?),
            Self::MnistCnn => Box::new(MnistCnn::load(
                &data_dir.join("ccexam/mnist_cnn.safetensors"),
                device,
            )?),
        })
    }
}

/// Metric names accepted by `--metrics`.
pub const METRICS: &[&str] = &["fid", "kid", "is", "pr", "dc"];

/// Settings of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Subset of [`METRICS`].
    pub metrics: Vec<String>,
    /// KID subsets (torch-fidelity: 100).
    pub kid_subsets: usize,
    /// KID subset size (torch-fidelity: 1000; clipped to the smaller set).
    pub kid_subset_size: i64,
    /// IS splits (10).
    pub is_splits: i64,
    /// Seed of KID's subsets.
    pub seed: u64,
    /// Feature cache directory for the real set (None: no cache).
    pub cache_dir: Option<PathBuf>,
}

/// What `ganlab eval` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Extractor name.
    pub extractor: String,
    /// Images in each set.
    pub n_real: i64,
    /// Images in the generated set.
    pub n_fake: i64,
    /// FID.
    pub fid: Option<f64>,
    /// KID mean/std over subsets.
    pub kid: Option<MeanStd>,
    /// KID subset size used.
    pub kid_subset_size: Option<i64>,
    /// Inception Score (or the extractor's analogue) of the generated set.
    pub inception_score: Option<MeanStd>,
    /// Precision (k = 3).
    pub precision: Option<f64>,
    /// Recall (k = 3).
    pub recall: Option<f64>,
    /// Density (k = 5).
    pub density: Option<f64>,
    /// Coverage (k = 5).
    pub coverage: Option<f64>,
    /// Whether the real features came from the cache.
    pub real_cached: bool,
    /// Seconds spent extracting features.
    pub extract_seconds: f64,
    /// Images per second of extraction (both sets, cache hits excluded).
    pub images_per_second: f64,
}

/// 64-bit content hash (FNV-1a over bytes, finished with SplitMix64's mixer).
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    crate::rng::mix64(h)
}

/// Features (and logits) of `images`, from the cache when present.
fn features_cached(
    ex: &dyn FeatureExtractor,
    images: &Tensor,
    cache: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<(Tensor, Option<Tensor>, bool)> {
    let bytes = Vec::<u8>::try_from(
        images
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1)
            .view_dtype(Kind::Uint8),
    )?;
    // v1: the preprocessing of docs/METRICS.md; bump when it changes.
    let key = format!(
        "{}-v1-{:016x}-{}.safetensors",
        ex.name(),
        content_hash(&bytes),
        images
            .size()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x")
    );
    if let Some(dir) = cache {
        let p = dir.join(&key);
        if let Ok(tensors) = Tensor::read_safetensors(&p) {
            let get = |k: &str| named(&tensors, k).map(Tensor::shallow_clone);
            if let Some(f) = get("features") {
                return Ok((f, get("logits"), true));
            }
        }
    }
    let (f, l) = extract_all(ex, images, progress)?;
    if let Some(dir) = cache {
        std::fs::create_dir_all(dir).at(dir)?;
        let mut tensors = vec![("features", &f)];
        if let Some(l) = &l {
            tensors.push(("logits", l));
        }
        write_safetensors_atomic(&dir.join(&key), &tensors)?;
    }
    Ok((f, l, false))
}

/// Extracts features of both sets and computes the requested metrics.
pub fn evaluate(
    ex: &dyn FeatureExtractor,
    real: &Tensor,
    fake: &Tensor,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<EvalReport> {
    for m in &opts.metrics {
        if !METRICS.contains(&m.as_str()) {
            return Err(GanError::config(
                "--metrics",
                format!("unknown metric {m:?}; known: {}", METRICS.join(", ")),
            ));
        }
    }
    let want = |m: &str| opts.metrics.iter().any(|x| x == m);
    let t0 = Instant::now();
    let (fr, _, real_cached) = features_cached(ex, real, opts.cache_dir.as_deref(), progress)?;
    let (ff, logits, _) = features_cached(ex, fake, None, progress)?;
    let extract_seconds = t0.elapsed().as_secs_f64();
    let extracted = fake.size()[0] + if real_cached { 0 } else { real.size()[0] };
    let mut r = EvalReport {
        extractor: ex.name().to_string(),
        n_real: real.size()[0],
        n_fake: fake.size()[0],
        fid: None,
        kid: None,
        kid_subset_size: None,
        inception_score: None,
        precision: None,
        recall: None,
        density: None,
        coverage: None,
        real_cached,
        extract_seconds,
        images_per_second: extracted as f64 / extract_seconds.max(1e-9),
    };
    if want("fid") {
        let a = FeatureStats::from_features(&fr)?;
        let b = FeatureStats::from_features(&ff)?;
        r.fid = Some(frechet_distance(&a, &b)?);
    }
    if want("kid") {
        let m = opts.kid_subset_size.min(r.n_real).min(r.n_fake);
        r.kid = Some(kid(&fr, &ff, opts.kid_subsets, m, opts.seed)?);
        r.kid_subset_size = Some(m);
    }
    if want("is") {
        let l = logits.ok_or_else(|| {
            GanError::config(
                "--metrics",
                format!(
                    "is needs class logits; the {} extractor has none (use mnist-cnn)",
                    ex.name()
                ),
            )
        })?;
        r.inception_score = Some(inception_score(&l, opts.is_splits)?);
    }
    if want("pr") || want("dc") {
        let p = prdc(&fr, &ff, 3, 5)?;
        if want("pr") {
            r.precision = Some(p.precision);
            r.recall = Some(p.recall);
        }
        if want("dc") {
            r.density = Some(p.density);
            r.coverage = Some(p.coverage);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 item 14: a run directory without config.toml is an error naming what is
    /// missing, not an image folder of its grids scored without a word.
    #[test]
    fn a_run_without_its_config_is_not_an_image_folder() {
        let dir = std::env::temp_dir().join(format!("ganlab-noconf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        let img = Tensor::zeros([3, 4, 4], (Kind::Float, Device::Cpu));
        crate::data::write_png(&dir.join("grid.png"), &img).unwrap();
        let e = ImageSpec::parse(dir.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("without its config.toml"), "{e}");
        assert!(e.is_user_error());
        std::fs::write(dir.join("config.toml"), "").unwrap();
        assert!(matches!(
            ImageSpec::parse(dir.to_str().unwrap()),
            Ok(ImageSpec::Run(_, None))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 18 items 2, 3 and 8: bad `--n` and `--size` are config errors naming the flag;
    /// .npy files of shape (), (0, 3, 8, 8), (2, 2, 8, 8), with a negative or overflowing
    /// dimension, with [0, 255] values, with inf or NaN are clear errors, not panics or
    /// clamped data; a [−1, 1] file within rounding loads.
    #[test]
    fn bad_eval_inputs_are_clear_errors() {
        let _rng = crate::test_rng_lock();
        let dir = std::env::temp_dir().join(format!("ganlab-evalin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let npy = |name: &str, t: &Tensor| {
            let p = dir.join(name);
            crate::report::npy::write_f32(&p, t).unwrap();
            ImageSpec::Npy(p)
        };
        let opts = (Kind::Float, Device::Cpu);
        let ok = npy("ok.npy", &(Tensor::rand([2, 3, 8, 8], opts) * 2.0 - 1.0001));
        assert_eq!(ok.load(&dir, None, None).unwrap().size(), [2, 3, 8, 8]);
        for (n, size, flag) in [(Some(0), None, "--n"), (Some(-5), None, "--n")]
            .into_iter()
            .chain([(None, Some(0), "--size"), (None, Some(100_000), "--size")])
        {
            let e = ok.load(&dir, n, size).unwrap_err();
            assert!(
                matches!(&e, GanError::Config { field, .. } if field == flag),
                "{e}"
            );
        }
        let cases: Vec<(ImageSpec, &str)> = vec![
            (npy("scalar.npy", &Tensor::from(0.5f32)), "expected images"),
            (
                npy("empty.npy", &Tensor::zeros([0, 3, 8, 8], opts)),
                "expected images",
            ),
            (
                npy("chan.npy", &Tensor::zeros([2, 2, 8, 8], opts)),
                "expected images",
            ),
            (
                npy("bytes.npy", &(Tensor::rand([2, 3, 8, 8], opts) * 255.0)),
                "in [-1, 1]",
            ),
            (
                npy("inf.npy", &Tensor::full([1, 1, 8, 8], f64::INFINITY, opts)),
                "NaN or inf",
            ),
            (
                npy("nan.npy", &Tensor::full([1, 1, 8, 8], f64::NAN, opts)),
                "NaN or inf",
            ),
        ];
        for (spec, want) in cases {
            let e = spec.load(&dir, None, None).unwrap_err().to_string();
            assert!(e.contains(want), "{spec:?}: {e}");
        }
        // Hand-edited headers: a negative and an overflowing dimension.
        let data = vec![0u8; 4 * 2 * 3 * 64];
        for (dims, want) in [
            ("(-2, 3, 8, 8)", "bad dimension"),
            ("(4294967295, 4294967295, 4294967295, 3)", "overflows"),
        ] {
            let p = dir.join("edited.npy");
            let h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}\n");
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend((h.len() as u16).to_le_bytes());
            b.extend(h.as_bytes());
            b.extend(&data);
            std::fs::write(&p, b).unwrap();
            let e = ImageSpec::Npy(p)
                .load(&dir, None, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{dims}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn specs_parse_or_name_the_problem() {
        assert_eq!(
            ImageSpec::parse("mnist:test").unwrap(),
            ImageSpec::Dataset("mnist".into(), Split::Test)
        );
        assert_eq!(
            ImageSpec::parse("fashion-mnist").unwrap(),
            ImageSpec::Dataset("fashion-mnist".into(), Split::Train)
        );
        assert_eq!(
            ImageSpec::parse("x/s.npy").unwrap(),
            ImageSpec::Npy("x/s.npy".into())
        );
        let e = ImageSpec::parse("mnist:val").unwrap_err().to_string();
        assert!(e.contains(":train or :test"), "{e}");
        let e = ImageSpec::parse("cifar").unwrap_err().to_string();
        assert!(e.contains("dataset name"), "{e}");
        assert_ne!(content_hash(b"ab"), content_hash(b"ba"));
        let dir = std::env::temp_dir().join(format!("ganlab-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu));
        crate::data::write_png(&dir.join("0.png"), &img).unwrap();
        let spec = ImageSpec::parse(dir.to_str().unwrap()).unwrap();
        assert_eq!(spec, ImageSpec::Folder(dir.clone()));
        let x = spec.load(Path::new("unused"), None, Some(4)).unwrap();
        assert_eq!(x.size(), vec![1, 1, 4, 4]);
        // Issue 18 item 14: a folder with nothing ganlab reads says so (it used to report a
        // missing IDX file).
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = ImageSpec::parse(empty.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no .png/.jpg/.jpeg images"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use crate::metrics::extractors::FirstValues;
    const FLAT: FirstValues = FirstValues(6);

    /// Identical sets: FID ≈ 0 (< 1e-6), precision = recall = coverage = 1; the second call
    /// reads the real features from the cache; IS without logits is a named error.
    #[test]
    fn evaluate_identical_sets_and_cache() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(1);
        let x = Tensor::rand([30, 1, 4, 4], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let dir = std::env::temp_dir().join(format!("ganlab-evalcache-{}", std::process::id()));
        let mut opts = EvalOptions {
            metrics: vec!["fid".into(), "kid".into(), "pr".into(), "dc".into()],
            kid_subsets: 5,
            kid_subset_size: 1000,
            is_splits: 10,
            seed: 0,
            cache_dir: Some(dir.clone()),
        };
        let mut quiet = crate::progress::Silent;
        let r = evaluate(&FLAT, &x, &x, &opts, &mut quiet).unwrap();
        assert!(r.fid.unwrap().abs() < 1e-6);
        assert_eq!(r.kid_subset_size, Some(30));
        assert_eq!(
            (r.precision, r.recall, r.coverage),
            (Some(1.0), Some(1.0), Some(1.0))
        );
        assert!(!r.real_cached);
        let again = evaluate(&FLAT, &x, &x, &opts, &mut quiet).unwrap();
        assert!(again.real_cached);
        assert_eq!(again.fid, r.fid);
        opts.metrics = vec!["is".into()];
        let e = evaluate(&FLAT, &x, &x, &opts, &mut quiet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("logits"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
