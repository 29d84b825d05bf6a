//! Text-to-image on emoji (gan-lecture.txt "Text-to-image synthesis" and "StackGAN"):
//! `ganlab experiment text2image-emoji` trains, in sequence and resuming any finished stage,
//! the text encoder (configs/text-encoder-emoji.toml, once, at the first seed), then per seed
//! GAN-INT-CLS (configs/gan-int-cls-emoji.toml), StackGAN Stage-I
//! (configs/stackgan-stage1-emoji.toml) and Stage-II on that Stage-I run
//! (configs/stackgan-stage2-emoji.toml), and scores each on the test split (captions and
//! images of emoji never trained on):
//!
//! - R-precision (AttnGAN, R = 1): one image per test image's first caption, ranked with the
//!   trained encoder among 100 captions; the encoder's own score on the real test images
//!   bounds it;
//! - FID (FID Inception) between those generated images and the real test images. With
//!   247 images per side the values are biased upwards; they compare arms at equal n only.
//!
//! `--set` routing: `encoder.KEY=V` goes to the text encoder's config, `gan_int_cls.*` to
//! GAN-INT-CLS's, `stage1.KEY=V` / `stage2.KEY=V` to one StackGAN stage, `stackgan.*` to both,
//! and `run.*` to the three GANs (equal budget).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{mean_sd, train_or_resume};
use crate::error::{GanError, Result};
use crate::io::write_atomic;
use crate::metrics::extractors::{extract_all, FeatureExtractor};
use crate::metrics::features::{frechet_distance, FeatureStats};
use crate::train::TrainConfig;

/// The four configs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The text encoder.
    pub encoder: TrainConfig,
    /// GAN-INT-CLS.
    pub gan_int_cls: TrainConfig,
    /// StackGAN Stage-I.
    pub stage1: TrainConfig,
    /// StackGAN Stage-II.
    pub stage2: TrainConfig,
}

/// One scored arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// run.seed.
    pub seed: u64,
    /// "GAN-INT-CLS", "StackGAN Stage-I" or "StackGAN Stage-I+II".
    pub method: String,
    /// R-precision of its images for the test captions.
    pub r_precision: f64,
    /// FID of those images against the real test images (None without an extractor).
    pub fid: Option<f64>,
    /// Test images (= generated images) scored.
    pub n: i64,
}

/// The methods, in table order, with their run directory prefixes.
pub const METHODS: [(&str, &str); 3] = [
    ("GAN-INT-CLS", "gan-int-cls"),
    ("StackGAN Stage-I", "stackgan1"),
    ("StackGAN Stage-I+II", "stackgan2"),
];

/// The built-in plan with `sets` routed (module docs).
pub fn plan(sets: &[String]) -> Result<Plan> {
    let (mut enc, mut gic, mut s1, mut s2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for s in sets {
        let key = s.split('=').next().unwrap_or("");
        if let Some(rest) = s.strip_prefix("encoder.") {
            enc.push(rest.to_string());
        } else if let Some(rest) = s.strip_prefix("stage1.") {
            s1.push(rest.to_string());
        } else if let Some(rest) = s.strip_prefix("stage2.") {
            s2.push(rest.to_string());
        } else if key.starts_with("gan_int_cls.") {
            gic.push(s.clone());
        } else if key.starts_with("stackgan.") {
            s1.push(s.clone());
            s2.push(s.clone());
        } else if key.starts_with("run.") {
            gic.push(s.clone());
            s1.push(s.clone());
            s2.push(s.clone());
        } else {
            return Err(GanError::config(
                key,
                "route it with a prefix: encoder., stage1., stage2., or a gan_int_cls., stackgan. or run. key",
            ));
        }
    }
    let load = |text: &str, name: &str, sets: &[String]| {
        TrainConfig::from_toml_with(text, Path::new(name), sets)
    };
    Ok(Plan {
        encoder: load(
            include_str!("../../../../configs/text-encoder-emoji.toml"),
            "configs/text-encoder-emoji.toml",
            &enc,
        )?,
        gan_int_cls: load(
            include_str!("../../../../configs/gan-int-cls-emoji.toml"),
            "configs/gan-int-cls-emoji.toml",
            &gic,
        )?,
        stage1: load(
            include_str!("../../../../configs/stackgan-stage1-emoji.toml"),
            "configs/stackgan-stage1-emoji.toml",
            &s1,
        )?,
        stage2: load(
            include_str!("../../../../configs/stackgan-stage2-emoji.toml"),
            "configs/stackgan-stage2-emoji.toml",
            &s2,
        )?,
    })
}

/// FID of `fake` against precomputed real statistics.
fn fid(ex: &dyn FeatureExtractor, real: &FeatureStats, fake: &Tensor) -> Result<f64> {
    let (f, _) = extract_all(ex, fake, &mut crate::progress::Silent)?;
    frechet_distance(real, &FeatureStats::from_features(&f)?)
}

/// Runs the plan at every seed into `dir` (resuming what is there): the encoder's own
/// R-precision on real test images, and the scored rows.
pub fn run(
    plan: &Plan,
    seeds: &[u64],
    dir: &Path,
    ex: Option<&dyn FeatureExtractor>,
    progress: bool,
) -> Result<(f64, Vec<Row>)> {
    std::fs::create_dir_all(dir).map_err(|e| GanError::Input(format!("{}: {e}", dir.display())))?;
    let label = |s: String| progress.then_some(s);
    let enc_dir = dir.join("text-encoder");
    let mut enc = plan.encoder.clone();
    enc.run.seed = seeds.first().copied().unwrap_or(enc.run.seed);
    let enc_summary = train_or_resume(&enc, &enc_dir, label("text encoder".into()).as_deref())?;
    let bound = enc_summary["r_precision"].as_f64().unwrap_or(f64::NAN);
    let data = &plan.encoder.text_encoder.data;
    let test = data.load(&data.test)?;
    let caps: Vec<&str> = test.captions.iter().map(|c| c[0].as_str()).collect();
    let real = match ex {
        Some(ex) => Some(FeatureStats::from_features(
            &extract_all(ex, &test.images, &mut crate::progress::Silent)?.0,
        )?),
        None => None,
    };
    let mut rows = Vec::new();
    for &seed in seeds {
        let mut gic = plan.gan_int_cls.clone();
        gic.gan_int_cls.text_encoder = enc_dir.clone();
        let mut s1 = plan.stage1.clone();
        s1.stackgan.text_encoder = enc_dir.clone();
        let mut s2 = plan.stage2.clone();
        s2.stackgan.text_encoder = enc_dir.clone();
        let s1_dir = dir.join(format!("stackgan1-s{seed}"));
        s2.stackgan.stage1 = s1_dir.clone();
        for (cfg, (method, prefix)) in [&mut gic, &mut s1, &mut s2].into_iter().zip(METHODS) {
            cfg.run.seed = seed;
            let run_dir = dir.join(format!("{prefix}-s{seed}"));
            let summary = train_or_resume(
                cfg,
                &run_dir,
                label(format!("{method} seed {seed}")).as_deref(),
            )?;
            let r_precision = summary["r_precision"].as_f64().unwrap_or(f64::NAN);
            let fid = match (ex, &real) {
                (Some(ex), Some(real)) => {
                    let run = crate::run::Run::open(&run_dir)?;
                    let t2i = run.task().text_to_image().ok_or_else(|| {
                        GanError::Input(format!("{}: not a text-to-image run", run_dir.display()))
                    })?;
                    Some(fid(
                        ex,
                        real,
                        &t2i.sample_text(&caps, seed)?.to_device(tch::Device::Cpu),
                    )?)
                }
                _ => None,
            };
            rows.push(Row {
                seed,
                method: method.into(),
                r_precision,
                fid,
                n: caps.len() as i64,
            });
            write_atomic(
                &dir.join("results.json"),
                serde_json::to_string_pretty(&rows)?.as_bytes(),
            )?;
        }
    }
    write_atomic(&dir.join("results.md"), markdown(bound, &rows).as_bytes())?;
    Ok((bound, rows))
}

/// The table: one row per method, R-precision and FID per seed with mean ± sd.
pub fn markdown(bound: f64, rows: &[Row]) -> String {
    let mut seeds: Vec<u64> = rows.iter().map(|r| r.seed).collect();
    seeds.sort();
    seeds.dedup();
    let n = rows.first().map_or(0, |r| r.n);
    let mut out = format!(
        "Text encoder on real test images: R-precision {:.1} % (the bound; chance 1 %)\n\n\
         | method | R-precision % (seeds {}) | mean ± sd | FID (n = {n}) | mean ± sd |\n|---|---|---|---|---|\n",
        100.0 * bound,
        seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
    );
    for (method, _) in METHODS {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.method == method).collect();
        if mine.is_empty() {
            continue;
        }
        let r: Vec<f64> = mine.iter().map(|r| 100.0 * r.r_precision).collect();
        let f: Vec<f64> = mine.iter().filter_map(|r| r.fid).collect();
        let (rm, rs) = mean_sd(&r);
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let fid = if f.is_empty() {
            ("–".to_string(), "–".to_string())
        } else {
            let (fm, fs) = mean_sd(&f);
            (fmt(&f), format!("{fm:.1} ± {fs:.1}"))
        };
        out += &format!(
            "| {method} | {} | {rm:.1} ± {rs:.1} | {} | {} |\n",
            fmt(&r),
            fid.0,
            fid.1
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--set` routing by prefix, and an unrouted key is an error naming it; the table's
    /// mean ± sd by closed form.
    #[test]
    fn routing_and_table() {
        let p = plan(&[
            "run.steps=7".into(),
            "encoder.run.steps=9".into(),
            "stage2.run.batch_size=4".into(),
            "stackgan.kl_weight=1.5".into(),
        ])
        .unwrap();
        assert_eq!(
            (
                p.gan_int_cls.run.steps,
                p.stage1.run.steps,
                p.stage2.run.steps
            ),
            (7, 7, 7)
        );
        assert_eq!((p.encoder.run.steps, p.stage2.run.batch_size), (9, 4));
        assert_eq!(
            (p.stage1.stackgan.kl_weight, p.stage2.stackgan.kl_weight),
            (1.5, 1.5)
        );
        let e = plan(&["text_encoder.margin=2".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("text_encoder.margin") && e.contains("encoder."),
            "{e}"
        );
        let rows: Vec<Row> = [(0, 0.02, 100.0), (1, 0.04, 120.0)]
            .iter()
            .map(|&(seed, r, f)| Row {
                seed,
                method: "GAN-INT-CLS".into(),
                r_precision: r,
                fid: Some(f),
                n: 247,
            })
            .collect();
        let md = markdown(0.2, &rows);
        assert!(md.contains("R-precision 20.0 %"), "{md}");
        assert!(
            md.contains("| GAN-INT-CLS | 2.0, 4.0 | 3.0 ± 1.4 | 100.0, 120.0 | 110.0 ± 14.1 |"),
            "{md}"
        );
    }
}
