//! pix2pix vs an L1-only U-Net at equal budget (gan-lecture.txt, "Image-to-image
//! translation": the conditional GAN objective plus L1; Isola et al. 2017 §4.2: L1 alone
//! gives blurry results, the cGAN term sharper, more realistic ones). Both arms are the same
//! config, seed and step budget; the L1 arm sets `gan_loss = "none"`.
//!
//! Measured on the test split: mean L1 of the outputs to the targets (what the L1 arm
//! optimises directly), and FID / KID of the outputs against the targets with the FID
//! Inception (realism: whether outputs look like real colour emoji). With a few hundred test
//! images FID is biased upwards (both arms by the same n); KID is unbiased. Writes the runs,
//! grid.png (input | L1 | pix2pix | target, 16 test pairs), results.json and results.md.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::error::{IoContext, Result};
use crate::io::write_atomic;
use crate::metrics::eval::{evaluate, EvalOptions};
use crate::tasks::pix2pix::GanLoss;
use crate::train::{step_seed, TrainConfig, Trainer};

/// One arm's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// "l1" or "pix2pix".
    pub arm: String,
    /// Seed of the run.
    pub seed: u64,
    /// Steps trained.
    pub steps: u64,
    /// Mean |G(A) − B| over the test pairs (images in [−1, 1]).
    pub test_l1: f64,
    /// FID of outputs vs targets (None without the Inception: scripts/fetch-data inception).
    pub fid: Option<f64>,
    /// KID mean of outputs vs targets.
    pub kid: Option<f64>,
    /// KID standard deviation over subsets.
    pub kid_std: Option<f64>,
    /// Test pairs.
    pub n_test: i64,
    /// Wall-clock training seconds.
    pub train_seconds: f64,
}

/// The built-in base config, configs/pix2pix-openmoji.toml.
pub fn built_in() -> Result<TrainConfig> {
    TrainConfig::from_toml_str(
        include_str!("../../../../configs/pix2pix-openmoji.toml"),
        Path::new("configs/pix2pix-openmoji.toml"),
    )
}

/// The two arms: L1 only, and pix2pix as configured (identical otherwise).
pub fn configs(base: &TrainConfig) -> [(String, TrainConfig); 2] {
    let mut l1 = base.clone();
    l1.pix2pix.gan_loss = GanLoss::None;
    l1.run.name = format!("{}-l1", base.run.name);
    let mut gan = base.clone();
    if gan.pix2pix.gan_loss == GanLoss::None {
        gan.pix2pix.gan_loss = GanLoss::Vanilla;
    }
    [("l1".into(), l1), ("pix2pix".into(), gan)]
}

/// Trains both arms into `out/<arm>` and evaluates them on the test split; `data_dir` holds
/// the Inception (FID/KID are left out when it is missing).
pub fn run(
    base: &TrainConfig,
    out: &Path,
    data_dir: &Path,
    show_progress: bool,
) -> Result<Vec<Row>> {
    base.validate()?;
    std::fs::create_dir_all(out).at(out)?;
    let d = &base.pix2pix.data;
    let (ca, cb) = (d.input_channels, d.output_channels);
    let (a, b) = d.load_pairs("test", d.image_size)?;
    let inception = data_dir.join("inception/default_1.pt");
    let ex = if inception.is_file() {
        Some(crate::metrics::InceptionFid::load(
            &inception,
            crate::device::parse_device("auto")?,
        )?)
    } else {
        None
    };
    let mut rows = Vec::new();
    let mut outputs = Vec::new();
    for (arm, cfg) in configs(base) {
        let dir = out.join(&arm);
        let mut t = Trainer::new(cfg.clone(), &dir)?;
        let summary = if show_progress {
            t.run(&mut crate::progress::ProgressBar::new(&arm))?
        } else {
            t.run(&mut crate::progress::Silent)?
        };
        drop(t);
        let run = crate::run::Run::open(&dir)?;
        let tr = run.translator()?;
        let direction = tr.directions()[0];
        tch::manual_seed(step_seed(cfg.run.seed, u64::MAX - 5));
        let y = tr.translate(&a, direction)?.to_device(Device::Cpu);
        crate::report::npy::write_f32(&dir.join("test_outputs.npy"), &y)?;
        let test_l1 = (&y - &b).abs().mean(tch::Kind::Double).double_value(&[]);
        let (mut fid, mut kid, mut kid_std) = (None, None, None);
        if let Some(ex) = &ex {
            let opts = EvalOptions {
                metrics: vec!["fid".into(), "kid".into()],
                // Subsets of 100 (of the 247 test pairs): with torch-fidelity's 1000 every
                // subset would be the whole set and the spread over subsets 0.
                kid_subsets: 100,
                kid_subset_size: 100,
                is_splits: 10,
                seed: 0,
                cache_dir: None,
            };
            let r = evaluate(ex, &b, &y, &opts, &mut crate::progress::Silent)?;
            fid = r.fid;
            kid = r.kid.map(|k| k.mean);
            kid_std = r.kid.map(|k| k.std);
        }
        rows.push(Row {
            arm,
            seed: cfg.run.seed,
            steps: cfg.run.steps,
            test_l1,
            fid,
            kid,
            kid_std,
            n_test: a.size()[0],
            train_seconds: summary["train_seconds"].as_f64().unwrap_or(f64::NAN),
        });
        outputs.push(y);
    }
    // input | L1 | pix2pix | target for 16 test pairs spread evenly over the split.
    let n = a.size()[0];
    let k = n.min(16);
    let idx = Tensor::from_slice(&(0..k).map(|i| i * n / k).collect::<Vec<i64>>());
    let c = ca.max(cb);
    let to = |x: &Tensor| crate::data::folder::to_channels(x.index_select(0, &idx), c);
    let cols = [to(&a), to(&outputs[0]), to(&outputs[1]), to(&b)];
    let grid = crate::data::grid(&Tensor::stack(&cols, 1).flatten(0, 1), 4, 2)?;
    crate::data::write_png(&out.join("grid.png"), &grid)?;
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    write_atomic(&out.join("results.md"), table_markdown(&rows).as_bytes())?;
    Ok(rows)
}

/// The results as a Markdown table.
pub fn table_markdown(rows: &[Row]) -> String {
    let opt = |v: Option<f64>, d: usize| v.map_or("—".into(), |v| format!("{v:.d$}"));
    let mut s = String::from(
        "| arm | seed | steps | test L1 | FID (outputs vs targets) | KID | test pairs | train s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {:.4} | {} | {} ± {} | {} | {:.0} |\n",
            r.arm,
            r.seed,
            r.steps,
            r.test_l1,
            opt(r.fid, 2),
            opt(r.kid, 4),
            opt(r.kid_std, 4),
            r.n_test,
            r.train_seconds
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arms differ only in the GAN loss; a 2-step run on a tiny aligned set writes both
    /// runs, the grid and the table (FID/KID when the Inception is fetched).
    #[test]
    fn arms_and_outputs() {
        let _rng = crate::test_rng_lock();
        let base = built_in().unwrap();
        let [(n1, l1), (n2, gan)] = configs(&base);
        assert_eq!((n1.as_str(), n2.as_str()), ("l1", "pix2pix"));
        assert_eq!(l1.pix2pix.gan_loss, GanLoss::None);
        assert_eq!(gan, base);
        let mut other = l1.clone();
        other.pix2pix.gan_loss = gan.pix2pix.gan_loss;
        other.run.name = gan.run.name.clone();
        assert_eq!(other, gan, "nothing else differs");
        let root = std::env::temp_dir().join(format!("ganlab-exp-p2p-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for split in ["train", "test"] {
            let d = root.join("data").join(split);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..3 {
                let x = Tensor::rand([3, 32, 64], (tch::Kind::Float, Device::Cpu)) * 2 - 1;
                crate::data::write_png(&d.join(format!("{i}.png")), &x).unwrap();
            }
        }
        let mut cfg = base.clone();
        cfg.run.steps = 2;
        cfg.run.device = "cpu".into();
        cfg.pix2pix.data.dir = root.join("data");
        cfg.pix2pix.data.image_size = 32;
        cfg.pix2pix.data.load_size = 32;
        cfg.pix2pix.unet.ngf = 4;
        cfg.pix2pix.patchgan.ndf = 4;
        cfg.pix2pix.patchgan.n_layers = 2;
        let data = std::env::var_os("GANLAB_DATA").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"),
            std::path::PathBuf::from,
        );
        let out = root.join("out");
        let rows = run(&cfg, &out, &data, false).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.test_l1.is_finite() && r.n_test == 3));
        for f in [
            "grid.png",
            "results.md",
            "results.json",
            "l1/report.html",
            "pix2pix/test_outputs.npy",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        if data.join("inception/default_1.pt").is_file() {
            assert!(rows.iter().all(|r| r.fid.is_some_and(f64::is_finite)));
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}
